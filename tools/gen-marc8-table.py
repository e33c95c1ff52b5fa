#!/usr/bin/env python3
"""Regenerate crates/shoko-marc/data/marc8.tsv from the MARC-8 code tables.

The tables are the Library of Congress MARC-8 code tables (public domain) as
transcribed in pymarc's `marc8_mapping` module (BSD-2-Clause). Run once by a
developer after `pip install pymarc`; the output is committed, so nothing is
fetched at build or run time.

Output, one line per mapping:  charset<TAB>code<TAB>unicode<TAB>combining
(all hexadecimal; charset is the final byte of the escape sequence that
selects the graphic set, code is one byte or three for EACC). Lines with
charset "odd" are vendor (III) sequences seen in real data.
"""
import sys
from pymarc import marc8_mapping as m

out = sys.stdout
out.write("# MARC-8 -> Unicode. Source: LoC MARC-8 code tables via pymarc marc8_mapping (BSD-2-Clause).\n")
for charset in sorted(m.CODESETS):
    for code, (uni, comb) in sorted(m.CODESETS[charset].items()):
        out.write(f"{charset:02X}\t{code:X}\t{uni:X}\t{1 if comb else 0}\n")
for code, uni in sorted(m.ODD_MAP.items()):
    out.write(f"odd\t{code:X}\t{uni:X}\t0\n")
