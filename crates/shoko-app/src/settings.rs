//! Catalogue settings: campuses, locations, item types and where items are
//! found in imported records. Defaults here; the binary loads overrides from
//! the configuration file and environment.

use serde::{Deserialize, Serialize};
use shoko_domain::{CampusCode, ItemFieldMapping, ItemTypeCode, LocationCode};
use shoko_store::ReferenceData;

/// A campus of the library.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CampusSetting {
    /// Code used in item data, e.g. `HONGO`.
    pub code: CampusCode,
    /// Name in Japanese.
    pub name_ja: String,
    /// Name in English.
    pub name_en: String,
    /// Shelving locations at this campus.
    #[serde(default)]
    pub locations: Vec<NamedCode<LocationCode>>,
}

/// A code with its names in both languages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamedCode<C> {
    /// The code.
    pub code: C,
    /// Name in Japanese.
    pub name_ja: String,
    /// Name in English.
    pub name_en: String,
}

/// Everything the catalogue needs to know about the library's set-up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CatalogueSettings {
    /// Campuses and their locations.
    pub campuses: Vec<CampusSetting>,
    /// Item types.
    pub item_types: Vec<NamedCode<ItemTypeCode>>,
    /// Item type given to an imported item whose field names none.
    pub default_item_type: ItemTypeCode,
    /// Holdings fields that become items on import.
    pub item_fields: Vec<ItemFieldMapping>,
    /// Records per import transaction (100–50,000). Larger batches import
    /// faster and lose more work to a crash (it is redone on re-import).
    pub import_batch_size: usize,
}

fn code<C>(parse: fn(&str) -> Result<C, shoko_domain::CodeError>, v: &str) -> C {
    parse(v).expect("built-in codes are valid")
}

impl Default for CatalogueSettings {
    /// A small library with one campus until configured; the demo and the
    /// tests configure four.
    fn default() -> CatalogueSettings {
        CatalogueSettings {
            campuses: vec![CampusSetting {
                code: code(CampusCode::parse, "MAIN"),
                name_ja: "本館".into(),
                name_en: "Main Library".into(),
                locations: vec![NamedCode {
                    code: code(LocationCode::parse, "STACKS"),
                    name_ja: "書庫".into(),
                    name_en: "Stacks".into(),
                }],
            }],
            item_types: vec![
                NamedCode {
                    code: code(ItemTypeCode::parse, "BOOK"),
                    name_ja: "図書".into(),
                    name_en: "Book".into(),
                },
                NamedCode {
                    code: code(ItemTypeCode::parse, "SERIAL"),
                    name_ja: "雑誌".into(),
                    name_en: "Serial".into(),
                },
                NamedCode {
                    code: code(ItemTypeCode::parse, "AV"),
                    name_ja: "視聴覚資料".into(),
                    name_en: "Audiovisual".into(),
                },
            ],
            default_item_type: code(ItemTypeCode::parse, "BOOK"),
            item_fields: ItemFieldMapping::defaults(),
            import_batch_size: 2000,
        }
    }
}

impl CatalogueSettings {
    /// The rows the store keeps for campuses, locations and item types.
    pub fn reference_data(&self) -> ReferenceData {
        ReferenceData {
            campuses: self
                .campuses
                .iter()
                .map(|c| (c.code.to_string(), c.name_ja.clone(), c.name_en.clone()))
                .collect(),
            locations: self
                .campuses
                .iter()
                .flat_map(|c| {
                    c.locations.iter().map(move |l| {
                        (
                            c.code.to_string(),
                            l.code.to_string(),
                            l.name_ja.clone(),
                            l.name_en.clone(),
                        )
                    })
                })
                .collect(),
            item_types: self
                .item_types
                .iter()
                .map(|t| (t.code.to_string(), t.name_ja.clone(), t.name_en.clone()))
                .collect(),
        }
    }

    /// Checks that an item refers only to configured codes.
    pub fn check_item(&self, item: &shoko_domain::ItemSpec) -> Result<(), String> {
        let campus = self
            .campuses
            .iter()
            .find(|c| c.code == item.campus)
            .ok_or_else(|| format!("item {}: unknown campus {}", item.barcode, item.campus))?;
        if let Some(loc) = &item.location
            && !campus.locations.iter().any(|l| &l.code == loc)
        {
            return Err(format!(
                "item {}: unknown location {} at campus {}",
                item.barcode, loc, item.campus
            ));
        }
        if !self.item_types.iter().any(|t| t.code == item.item_type) {
            return Err(format!(
                "item {}: unknown item type {}",
                item.barcode, item.item_type
            ));
        }
        Ok(())
    }
}
