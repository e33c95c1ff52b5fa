//! Items (physical copies): their status, and how they are read from the
//! holdings fields of an imported record (852, 949 or a library's own tag).

use serde::{Deserialize, Serialize};
use shoko_marc::Record;

use crate::{Barcode, CampusCode, ItemTypeCode, LocationCode};

/// Where an item is in its life. Circulation moves items between these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemStatus {
    /// On the shelf, loanable.
    Available,
    /// Checked out to a patron.
    OnLoan,
    /// Moving between campuses.
    InTransit,
    /// Waiting on the hold shelf for a patron.
    OnHoldShelf,
    /// Ordered or being catalogued, not yet on the shelf.
    InProcessing,
    /// Not found on the shelf.
    Missing,
    /// Declared lost by a patron or staff.
    Lost,
    /// Removed from the collection.
    Withdrawn,
}

impl ItemStatus {
    /// Every status, for listings and checks.
    pub const ALL: [ItemStatus; 8] = [
        ItemStatus::Available,
        ItemStatus::OnLoan,
        ItemStatus::InTransit,
        ItemStatus::OnHoldShelf,
        ItemStatus::InProcessing,
        ItemStatus::Missing,
        ItemStatus::Lost,
        ItemStatus::Withdrawn,
    ];

    /// The stable code stored in the database.
    pub fn code(self) -> &'static str {
        match self {
            ItemStatus::Available => "available",
            ItemStatus::OnLoan => "on_loan",
            ItemStatus::InTransit => "in_transit",
            ItemStatus::OnHoldShelf => "on_hold_shelf",
            ItemStatus::InProcessing => "in_processing",
            ItemStatus::Missing => "missing",
            ItemStatus::Lost => "lost",
            ItemStatus::Withdrawn => "withdrawn",
        }
    }

    /// Parses a stored or imported code.
    pub fn from_code(code: &str) -> Option<ItemStatus> {
        ItemStatus::ALL
            .into_iter()
            .find(|s| s.code() == code.trim())
    }
}

/// Which subfields of a holdings field hold which item data. Configurable per
/// library: migrations bring 852, Koha's 952, or any local 9XX.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ItemFieldMapping {
    /// The field tag, e.g. "949".
    pub tag: String,
    /// Subfield with the barcode (required for an item to be made).
    pub barcode: char,
    /// Subfield with the campus code.
    pub campus: char,
    /// Subfield with the location code.
    pub location: Option<char>,
    /// Subfields whose values, joined by a space, make the call number.
    pub call_number: String,
    /// Subfield with the item type code.
    pub item_type: Option<char>,
    /// Subfield with a status code (see [`ItemStatus::code`]).
    pub status: Option<char>,
}

impl ItemFieldMapping {
    /// The mappings Shoko uses when a library configures none: MARC 21
    /// holdings 852 ($b campus, $c location, $h $i call number, $p barcode)
    /// and Shoko's own 949 ($a campus, $b location, $c call number, $d item
    /// type, $p barcode, $s status).
    pub fn defaults() -> Vec<ItemFieldMapping> {
        vec![
            ItemFieldMapping {
                tag: "852".into(),
                barcode: 'p',
                campus: 'b',
                location: Some('c'),
                call_number: "hi".into(),
                item_type: None,
                status: None,
            },
            ItemFieldMapping {
                tag: "949".into(),
                barcode: 'p',
                campus: 'a',
                location: Some('b'),
                call_number: "c".into(),
                item_type: Some('d'),
                status: Some('s'),
            },
        ]
    }
}

/// An item as read from a record, ready to be stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ItemSpec {
    /// The barcode.
    pub barcode: Barcode,
    /// Campus that owns the item.
    pub campus: CampusCode,
    /// Shelving location at that campus.
    pub location: Option<LocationCode>,
    /// Call number as printed on the spine label.
    pub call_number: Option<String>,
    /// Item type (axis of the loan policy).
    pub item_type: ItemTypeCode,
    /// Status; new items are available unless the file says otherwise.
    pub status: ItemStatus,
}

/// Reads items out of a record's holdings fields. A field that cannot make an
/// item (no barcode, a malformed code) yields an error naming the field and
/// why; the other items and the record itself are not affected.
pub fn items_from_record(
    record: &Record,
    mappings: &[ItemFieldMapping],
    default_item_type: &ItemTypeCode,
) -> Vec<Result<ItemSpec, String>> {
    let mut out = Vec::new();
    for m in mappings {
        for (n, f) in record.fields_with(&m.tag).enumerate() {
            let at = format!("{} #{}", m.tag, n + 1);
            out.push(
                item_from_field(f, m, default_item_type).map_err(|e| format!("item in {at}: {e}")),
            );
        }
    }
    out
}

fn item_from_field(
    f: &shoko_marc::Field,
    m: &ItemFieldMapping,
    default_item_type: &ItemTypeCode,
) -> Result<ItemSpec, String> {
    let barcode = Barcode::parse(f.first(m.barcode).unwrap_or(""))
        .map_err(|e| format!("${}: {e}", m.barcode))?;
    let campus = CampusCode::parse(f.first(m.campus).unwrap_or(""))
        .map_err(|e| format!("${}: {e}", m.campus))?;
    let location = match m.location.and_then(|c| f.first(c).map(|v| (c, v))) {
        Some((c, v)) => Some(LocationCode::parse(v).map_err(|e| format!("${c}: {e}"))?),
        None => None,
    };
    let call: Vec<&str> = f
        .subfields()
        .iter()
        .filter(|s| m.call_number.contains(s.code))
        .map(|s| s.value.trim())
        .filter(|s| !s.is_empty())
        .collect();
    let item_type = match m.item_type.and_then(|c| f.first(c).map(|v| (c, v))) {
        Some((c, v)) => ItemTypeCode::parse(v).map_err(|e| format!("${c}: {e}"))?,
        None => default_item_type.clone(),
    };
    let status = match m.status.and_then(|c| f.first(c).map(|v| (c, v))) {
        Some((c, v)) => {
            ItemStatus::from_code(v).ok_or_else(|| format!("${c}: unknown status {v:?}"))?
        }
        None => ItemStatus::Available,
    };
    Ok(ItemSpec {
        barcode,
        campus,
        location,
        call_number: (!call.is_empty()).then(|| call.join(" ")),
        item_type,
        status,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoko_marc::{Field, Subfield, Tag};

    fn f949(subs: &[(char, &str)]) -> Field {
        Field::Data {
            tag: "949".parse::<Tag>().expect("tag"),
            ind1: ' ',
            ind2: ' ',
            subfields: subs
                .iter()
                .map(|(c, v)| Subfield {
                    code: *c,
                    value: (*v).into(),
                })
                .collect(),
        }
    }

    #[test]
    fn a_949_field_makes_an_item_and_a_field_without_barcode_is_reported() {
        let mut r = Record::new();
        r.fields = vec![
            f949(&[
                ('a', "hongo"),
                ('b', "stacks"),
                ('c', "913.6 A12"),
                ('p', "HG0001"),
            ]),
            f949(&[('a', "KOMABA"), ('c', "913.6 A12")]),
        ];
        let book = ItemTypeCode::parse("BOOK").expect("code");
        let items = items_from_record(&r, &ItemFieldMapping::defaults(), &book);
        assert_eq!(items.len(), 2);
        let first = items[0].as_ref().expect("first item");
        assert_eq!(first.campus.as_str(), "HONGO");
        assert_eq!(first.call_number.as_deref(), Some("913.6 A12"));
        assert_eq!(first.status, ItemStatus::Available);
        let err = items[1].as_ref().expect_err("no barcode");
        assert!(
            err.starts_with("item in 949 #2: $p: barcode is empty"),
            "{err}"
        );
    }

    #[test]
    fn status_codes_round_trip() {
        for s in ItemStatus::ALL {
            assert_eq!(ItemStatus::from_code(s.code()), Some(s));
        }
    }
}
