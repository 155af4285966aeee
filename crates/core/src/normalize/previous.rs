//! The previous build of a table, by key: what keeps `created` and the audit columns of a row
//! that did not change, and tells a changed row from an unchanged one.

use crate::read::files::DataFile;
use std::collections::HashMap;

use chrono::NaiveDateTime;

use crate::coerce::{micros_since_epoch, ColumnRule, RawCell, Value};
use crate::model::TargetTable;
use crate::read::parquet::ParquetRows;

use super::sink::row_hash;
use super::{FastMap, KeyRepr, NormalizeError};

/// What the previous build held under a key: the row's fingerprint and its audit values.
pub(super) struct Prev {
    pub(super) hash: u64,
    pub(super) created: i64,
    pub(super) created_by: Option<String>,
    pub(super) updated: Option<i64>,
    pub(super) updated_by: Option<String>,
}

/// The previous build of table `t` in `file`, by key.
/// Fingerprints cover the model's columns as they are now: a column added since counts as a
/// change.
pub(super) fn load_previous(
    file: &DataFile,
    t: &TargetTable,
    rules: &[ColumnRule],
) -> Result<FastMap<KeyRepr, Prev>, NormalizeError> {
    let mut out = FastMap::default();
    let src = ParquetRows::open(
        "(previous build)",
        std::slice::from_ref(file),
        &HashMap::new(),
    )?;
    let at = |name: &str| src.columns.iter().position(|c| c == name);
    let cols: Vec<Option<usize>> = t.columns.iter().map(|c| at(&c.name)).collect();
    let (Some(key), Some(created)) = (at(&t.primary_key), at("created")) else {
        return Ok(out);
    };
    let (created_by, updated, updated_by) = (at("created_by"), at("updated"), at("updated_by"));
    let ts = |v: Option<&String>| {
        v.and_then(|s| NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f").ok())
            .map(|t| micros_since_epoch(&t))
    };
    let wanted = vec![true; src.columns.len()];
    src.for_each_row::<NormalizeError>(&wanted, |_, _, cells| {
        // Typed as the rules type new rows, so the fingerprints compare values, not texts.
        let values: Vec<Value<'_>> = cols
            .iter()
            .zip(rules)
            .map(|(c, rule)| {
                let raw = c
                    .and_then(|i| cells[i].as_deref())
                    .map_or(RawCell::Empty, RawCell::Text);
                rule.coerce(raw).unwrap_or(Value::Null)
            })
            .collect();
        let (Some(k), Some(created)) = (cells[key].as_deref(), ts(cells[created].as_ref())) else {
            return Ok(());
        };
        let text = |i: Option<usize>| i.and_then(|i| cells[i].clone());
        out.insert(
            KeyRepr::of(k),
            Prev {
                hash: row_hash(&values),
                created,
                created_by: text(created_by),
                updated: ts(updated.and_then(|i| cells[i].as_ref())),
                updated_by: text(updated_by),
            },
        );
        Ok(())
    })?;
    Ok(out)
}
