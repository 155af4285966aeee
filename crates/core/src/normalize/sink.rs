//! One table being written: typing and checking each row against the model (NOT NULL,
//! lengths, types, foreign keys, keys already holding another row), the Parquet output, and
//! the quarantine with the rule, column, value and origin of every rejected row.

use std::collections::hash_map::Entry;
use std::collections::BTreeMap;
use std::fs::File;
use std::hash::{Hash, Hasher};
use std::io::{BufWriter, Write};

use serde::Serialize;

use crate::coerce::{ColumnRule, RawCell, Value};
use crate::model::{ModelSpec, TargetTable};
use crate::write::{ParquetEncoder, ParquetPart};

use super::plan::Cell;
use super::previous::Prev;
use super::{recycle, FastMap, KeyRepr, NormalizeError, Run, TableReport};

/// Where a target row came from, for quarantine records.
#[derive(Debug, Clone, Serialize)]
pub(super) struct Origin<'a> {
    pub(super) dataset: &'a str,
    pub(super) file: &'a str,
    /// 1-based row within the curated file.
    pub(super) row: u64,
}

#[derive(Serialize)]
pub(super) struct QuarantineRecord<'a> {
    pub(super) model: &'a str,
    pub(super) table: &'a str,
    pub(super) rule: &'a str,
    pub(super) column: &'a str,
    pub(super) value: Option<&'a str>,
    pub(super) message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) source: Option<Origin<'a>>,
    pub(super) row: serde_json::Map<String, serde_json::Value>,
}

/// One table being written.
pub(super) struct Sink<'a> {
    pub(super) table: &'a TargetTable,
    pub(super) rules: Vec<ColumnRule>,
    /// Per column: the table its foreign key points at.
    pub(super) references: Vec<Option<&'a str>>,
    pub(super) skip: Vec<usize>,
    pub(super) part: ParquetPart,
    pub(super) quarantine: BufWriter<File>,
    pub(super) keys: FastMap<KeyRepr, u64>,
    pub(super) key_col: usize,
    pub(super) audit: Option<String>,
    pub(super) as_of_micros: i64,
    /// The previous build of this table, by key.
    pub(super) previous: FastMap<KeyRepr, Prev>,
    pub(super) report: TableReport,
    pub(super) rejects: BTreeMap<(String, String), u64>,
    /// The typed row's buffer, reused from row to row.
    pub(super) typed: Vec<Value<'static>>,
    /// Per column: the last foreign key found in its parent table.
    pub(super) found: Vec<Option<String>>,
}

impl Sink<'_> {
    /// Checks a row against the model and writes it, or quarantines it. True when written.
    pub(super) fn accept(
        &mut self,
        run: &Run<'_>,
        encoder: &mut ParquetEncoder,
        values: &[Cell<'_>],
        origin: Option<&Origin<'_>>,
    ) -> Result<bool, NormalizeError> {
        let mut typed = recycle(std::mem::take(&mut self.typed));
        for (i, v) in values.iter().enumerate() {
            let raw = v.as_deref().map_or(RawCell::Empty, RawCell::Text);
            match self.rules[i].coerce(raw) {
                Ok(x) => typed.push(x),
                Err(rej) => {
                    let column = self.rules[i].name.clone();
                    self.reject(
                        run.model,
                        rej.reason.as_str(),
                        &column,
                        v.as_deref(),
                        &rej.message,
                        origin,
                        values,
                    )?;
                    return Ok(false);
                }
            }
            if let (Some(parent), Some(v)) = (self.references[i], v) {
                // The parent was built before this table and does not change while it is: a
                // value found there once (the previous row's, say: a borrower's two phone
                // numbers point at one role) is there again.
                let known = &mut self.found[i];
                if known.as_deref() != Some(v.as_ref())
                    && !run
                        .keys
                        .get(parent)
                        .is_some_and(|k| k.contains_key(&KeyRepr::of(v)))
                {
                    let column = self.rules[i].name.clone();
                    let message = format!("{parent} has no row with key {v}");
                    self.reject(
                        run.model,
                        "foreign_key",
                        &column,
                        Some(v),
                        &message,
                        origin,
                        values,
                    )?;
                    return Ok(false);
                }
                match known {
                    Some(k) => {
                        k.clear();
                        k.push_str(v);
                    }
                    None => *known = Some(v.to_string()),
                }
            }
        }
        let key_text = values[self.key_col].as_deref().unwrap_or_default();
        let hash = row_hash(&typed);
        // One probe: a new key's slot is taken here and filled once the row is written.
        let slot = match self.keys.entry(KeyRepr::of(key_text)) {
            Entry::Vacant(slot) => slot,
            Entry::Occupied(seen) if *seen.get() == hash => {
                self.report.duplicates_collapsed += 1;
                return Ok(false);
            }
            Entry::Occupied(_) => {
                let column = self.rules[self.key_col].name.clone();
                self.reject(
                    run.model,
                    "duplicate_key",
                    &column,
                    Some(key_text),
                    "the key already holds a different row (the first one seen was kept)",
                    origin,
                    values,
                )?;
                return Ok(false);
            }
        };
        if let Some(by) = &self.audit {
            let now = self.as_of_micros;
            let (created, created_by, updated, updated_by) = match self.previous.get(slot.key()) {
                Some(p) => {
                    let created_by = p.created_by.as_deref().unwrap_or(by);
                    if p.hash == hash {
                        (p.created, created_by, p.updated, p.updated_by.as_deref())
                    } else {
                        self.report.rows_changed += 1;
                        (p.created, created_by, Some(now), Some(by.as_str()))
                    }
                }
                None => {
                    if !self.previous.is_empty() {
                        self.report.rows_new += 1;
                    }
                    (now, by.as_str(), None, None)
                }
            };
            typed.push(Value::Timestamp(created));
            typed.push(Value::Str(created_by.into()));
            typed.push(updated.map_or(Value::Null, Value::Timestamp));
            typed.push(updated_by.map_or(Value::Null, |u| Value::Str(u.into())));
        }
        self.part.push(encoder, &typed)?;
        slot.insert(hash);
        self.typed = recycle(typed);
        Ok(true)
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn reject(
        &mut self,
        model: &ModelSpec,
        rule: &str,
        column: &str,
        value: Option<&str>,
        message: &str,
        source: Option<&Origin<'_>>,
        values: &[Cell<'_>],
    ) -> Result<(), NormalizeError> {
        *self
            .rejects
            .entry((column.to_owned(), rule.to_owned()))
            .or_default() += 1;
        self.report.rows_quarantined += 1;
        let row = self
            .table
            .columns
            .iter()
            .zip(values)
            .map(|(c, v)| {
                (
                    c.name.clone(),
                    v.as_deref().map_or(serde_json::Value::Null, |v| {
                        serde_json::Value::String(v.to_owned())
                    }),
                )
            })
            .collect();
        let rec = QuarantineRecord {
            model: &model.model,
            table: &self.table.name,
            rule,
            column,
            value,
            message,
            source: source.cloned(),
            row,
        };
        serde_json::to_writer(&mut self.quarantine, &rec).map_err(std::io::Error::from)?;
        self.quarantine.write_all(b"\n")?;
        Ok(())
    }
}

/// A row's fingerprint over its typed values, to tell a repeated row from a different row
/// under the same key: foldhash's quality hasher with a fixed seed, the same on every run (a
/// previous build's rows are fingerprinted again when it is read, by the same code).
pub(super) fn row_hash(values: &[Value<'_>]) -> u64 {
    use std::hash::BuildHasher as _;
    let mut h = foldhash::quality::FixedState::with_seed(0x51u64).build_hasher();
    for v in values {
        match v {
            Value::Null => 0u8.hash(&mut h),
            Value::Int(x) => (1u8, x).hash(&mut h),
            Value::BigInt(x) => (2u8, x).hash(&mut h),
            Value::Double(x) => (3u8, x.to_bits()).hash(&mut h),
            Value::Decimal(x) => (4u8, x).hash(&mut h),
            Value::Bool(x) => (5u8, x).hash(&mut h),
            Value::Date(x) => (6u8, x).hash(&mut h),
            Value::Timestamp(x) => (7u8, x).hash(&mut h),
            Value::Str(x) => (8u8, x.as_ref()).hash(&mut h),
        }
    }
    h.finish()
}
