#!/usr/bin/env python3
"""Build fixtures/demo/demo.mrc, the catalogue `shoko demo` starts with.

Takes real Library of Congress records from fixtures/marc/loc/ (Japanese,
Chinese, Korean and English) and adds Shoko 949 item fields on four campuses:
$a campus, $b location, $c call number, $d item type, $p barcode.
Deterministic: the same input gives the same file. Needs `pip install pymarc`.
"""
import os
import pymarc

here = os.path.dirname(os.path.abspath(__file__))
loc = os.path.join(here, "..", "fixtures", "marc", "loc")
out_path = os.path.join(here, "..", "fixtures", "demo", "demo.mrc")

PICK = [
    ("loc_books2016_jpn300.mrc", 40),
    ("loc_books2016_chi100.mrc", 15),
    ("loc_books2016_kor100.mrc", 15),
    ("loc_books2016_first1000.mrc", 30),
]
CAMPUSES = [("HONGO", "STACKS"), ("KOMABA", "OPEN"), ("KASHIWA", "OPEN"), ("NAKANO", "OPEN"), ("HONGO", "REF")]

barcode = 100000
n = 0
with open(out_path, "wb") as out:
    for name, count in PICK:
        with open(os.path.join(loc, name), "rb") as fh:
            reader = pymarc.MARCReader(fh, to_unicode=True, force_utf8=True)
            for i, rec in enumerate(reader):
                if i >= count:
                    break
                call = " ".join(rec["050"].get_subfields("a", "b")) if rec["050"] else f"DEMO {n:04d}"
                for copy in range(1 + n % 3):
                    campus, location = CAMPUSES[(n + copy) % len(CAMPUSES)]
                    barcode += 1
                    rec.add_field(pymarc.Field(
                        tag="949", indicators=[" ", " "],
                        subfields=[
                            pymarc.Subfield("a", campus), pymarc.Subfield("b", location),
                            pymarc.Subfield("c", call), pymarc.Subfield("d", "BOOK"),
                            pymarc.Subfield("p", f"SHK{barcode:07d}"),
                        ]))
                out.write(rec.as_marc())
                n += 1
print(f"{out_path}: {n} records, {barcode - 100000} items")
