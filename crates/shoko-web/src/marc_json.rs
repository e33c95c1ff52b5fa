//! A MARC record as JSON, in the shape of the MARC-in-JSON convention:
//! `{"leader": "...", "fields": [{"001": "..."}, {"245": {"ind1": "1", "ind2": "0", "subfields": [{"a": "..."}]}}]}`.

use serde_json::{Map, Value, json};
use shoko_marc::{Field, Record};

/// Converts a record to MARC-in-JSON.
pub fn to_json(record: &Record) -> Value {
    let fields: Vec<Value> = record
        .fields
        .iter()
        .map(|f| {
            let mut m = Map::new();
            match f {
                Field::Control { tag, value } => {
                    m.insert(tag.to_string(), Value::String(value.clone()));
                }
                Field::Data {
                    tag,
                    ind1,
                    ind2,
                    subfields,
                } => {
                    let subs: Vec<Value> = subfields
                        .iter()
                        .map(|s| json!({ s.code.to_string(): s.value }))
                        .collect();
                    m.insert(
                        tag.to_string(),
                        json!({ "ind1": ind1.to_string(), "ind2": ind2.to_string(), "subfields": subs }),
                    );
                }
            }
            Value::Object(m)
        })
        .collect();
    json!({ "leader": record.leader_str(), "fields": fields })
}
