//! Normalize: curated datasets → the target tables of a [`ModelSpec`].
//!
//! Tables are built in the model's order, so every foreign key points at a table already
//! built. A derived table streams its `from` source file by file, batch by batch; only joined
//! sources are held in memory (by join key), plus, per table, each key and a hash of its row
//! (for duplicates and foreign keys). Every row that breaks the model — a NULL in a NOT NULL
//! column, a value too long or of the wrong type, a dangling foreign key, an unknown lookup
//! value, a missing join partner, a key already holding a different row — goes to the table's
//! quarantine with the rule, the column, the value and where the source row came from. Nothing
//! is truncated; nothing is dropped without a count. Rows identical to one already written
//! (a file loaded twice) are collapsed and counted.
//!
//! Outputs are whole tables with fixed names (`data/<lake table>/<lake table>.parquet`, and a
//! quarantine file beside it in `quarantine/`, empty when nothing was rejected), so running
//! again over the same inputs rewrites the same files with the same bytes.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Decimal128Type, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type,
    Int8Type, TimestampMicrosecondType, UInt16Type, UInt32Type, UInt64Type, UInt8Type,
};
use arrow_array::{Array, RecordBatch};
use arrow_schema::{DataType, TimeUnit};
use chrono::NaiveDateTime;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde::Serialize;

use crate::coerce::{
    date_from_days, decimal_text, float_text, micros_since_epoch, ColumnRule, RawCell, Value,
};
use crate::model::{json_text, Expr, ModelSpec, SplitPart, TargetTable, Test};
use crate::spec::{ColumnSpec, SpecError};
use crate::write::{ParquetEncoder, ParquetPart, WriteError};

#[derive(Debug, thiserror::Error)]
pub enum NormalizeError {
    #[error(transparent)]
    Model(#[from] SpecError),
    #[error("model {model}: dataset {dataset} has no curated files")]
    NoData { model: String, dataset: String },
    #[error("{file}: {message}")]
    Read { file: String, message: String },
    #[error("writing the outputs")]
    Write(#[from] WriteError),
}

impl From<std::io::Error> for NormalizeError {
    fn from(e: std::io::Error) -> Self {
        NormalizeError::Write(WriteError::from(e))
    }
}

/// What one run did, table by table.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct NormalizeReport {
    pub model: String,
    /// The `created` timestamp of every row.
    pub as_of: String,
    /// Rows read per source alias.
    pub sources: BTreeMap<String, u64>,
    pub tables: Vec<TableReport>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TableReport {
    pub table: String,
    pub lake_table: String,
    pub rows_written: u64,
    pub rows_quarantined: u64,
    /// Rows identical to one already written (the same entity loaded twice).
    pub duplicates_collapsed: u64,
    /// Rows not made because a `skip_when_null` column was NULL (an absent phone number).
    pub skipped_absent: u64,
    /// Of the rows written, those the previous build did not have, and those it had with other
    /// values (0 without a previous build or without audit columns).
    pub rows_new: u64,
    pub rows_changed: u64,
    /// Quarantined rows by column and rule.
    pub rejects: Vec<RuleCount>,
    /// The Parquet file, relative to the output root.
    pub output: String,
    /// The quarantine file (JSON lines), relative to the output root; empty when nothing was
    /// rejected.
    pub quarantine: String,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RuleCount {
    pub column: String,
    pub rule: String,
    pub rows: u64,
}

/// Where a target row came from, for quarantine records.
#[derive(Debug, Clone, Serialize)]
struct Origin<'a> {
    dataset: &'a str,
    file: &'a str,
    /// 1-based row within the curated file.
    row: u64,
}

#[derive(Serialize)]
struct QuarantineRecord<'a> {
    model: &'a str,
    table: &'a str,
    rule: &'a str,
    column: &'a str,
    value: Option<&'a str>,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<Origin<'a>>,
    row: serde_json::Map<String, serde_json::Value>,
}

// ---------------------------------------------------------------------------------------------
// Reading curated Parquet as text

/// The curated files of a dataset, read batch by batch as text cells.
struct SourceData {
    dataset: String,
    /// (path, the name quarantine records give it)
    files: Vec<(PathBuf, String)>,
    /// Column names of the first file: what the model's references are checked against.
    columns: Vec<String>,
}

impl SourceData {
    fn open(
        dataset: &str,
        files: &[PathBuf],
        names: &HashMap<PathBuf, String>,
    ) -> Result<SourceData, NormalizeError> {
        let mut files: Vec<(PathBuf, String)> = files
            .iter()
            .map(|p| {
                let name = names
                    .get(p)
                    .cloned()
                    .unwrap_or_else(|| p.display().to_string());
                (p.clone(), name)
            })
            .collect();
        files.sort();
        let (first, _) = files.first().ok_or_else(|| NormalizeError::Read {
            file: dataset.into(),
            message: "no files".into(),
        })?;
        let builder = ParquetRecordBatchReaderBuilder::try_new(open(first)?)
            .map_err(|e| read_err(first, e))?;
        let columns = builder
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        Ok(SourceData {
            dataset: dataset.into(),
            files,
            columns,
        })
    }

    /// Calls `f(file, 1-based row, cells)` for every row, cells in `self.columns` order (a
    /// column a later file lacks is NULL). Only the `wanted` columns are read; the others are
    /// NULL.
    fn for_each_row(
        &self,
        wanted: &[bool],
        mut f: impl FnMut(&str, u64, &[Option<String>]) -> Result<(), NormalizeError>,
    ) -> Result<(), NormalizeError> {
        let mut cells: Vec<Option<String>> = vec![None; self.columns.len()];
        for (path, name) in &self.files {
            let reader = ParquetRecordBatchReaderBuilder::try_new(open(path)?)
                .and_then(|b| b.with_batch_size(4096).build())
                .map_err(|e| read_err(path, e))?;
            let mut row_no = 0u64;
            for batch in reader {
                let batch = batch.map_err(|e| read_err(path, e))?;
                let schema = batch.schema();
                let map: Vec<Option<usize>> = self
                    .columns
                    .iter()
                    .zip(wanted)
                    .map(|(c, w)| schema.index_of(c).ok().filter(|_| *w))
                    .collect();
                for i in 0..batch.num_rows() {
                    for (slot, idx) in cells.iter_mut().zip(&map) {
                        match idx {
                            Some(j) => {
                                cell_text(&batch, *j, i, slot).map_err(|m| read_err(path, m))?
                            }
                            None => *slot = None,
                        }
                    }
                    row_no += 1;
                    f(name, row_no, &cells)?;
                }
            }
        }
        Ok(())
    }
}

fn open(path: &Path) -> Result<File, NormalizeError> {
    File::open(path).map_err(|e| read_err(path, e))
}

fn read_err(path: &Path, e: impl std::fmt::Display) -> NormalizeError {
    NormalizeError::Read {
        file: path.display().to_string(),
        message: e.to_string(),
    }
}

/// One cell as text, the way Sluice writes values elsewhere (CSV outputs, quarantine), into
/// `slot` (its buffer is reused from row to row).
fn cell_text(
    batch: &RecordBatch,
    col: usize,
    i: usize,
    slot: &mut Option<String>,
) -> Result<(), String> {
    use std::fmt::Write as _;
    let a = batch.column(col);
    if a.is_null(i) {
        *slot = None;
        return Ok(());
    }
    let out = slot.get_or_insert_with(String::new);
    out.clear();
    // Writing into a String cannot fail.
    let _ = match a.data_type() {
        DataType::Utf8 => out.write_str(a.as_string::<i32>().value(i)),
        DataType::LargeUtf8 => out.write_str(a.as_string::<i64>().value(i)),
        DataType::Utf8View => out.write_str(a.as_string_view().value(i)),
        DataType::Int8 => write!(out, "{}", a.as_primitive::<Int8Type>().value(i)),
        DataType::Int16 => write!(out, "{}", a.as_primitive::<Int16Type>().value(i)),
        DataType::Int32 => write!(out, "{}", a.as_primitive::<Int32Type>().value(i)),
        DataType::Int64 => write!(out, "{}", a.as_primitive::<Int64Type>().value(i)),
        DataType::UInt8 => write!(out, "{}", a.as_primitive::<UInt8Type>().value(i)),
        DataType::UInt16 => write!(out, "{}", a.as_primitive::<UInt16Type>().value(i)),
        DataType::UInt32 => write!(out, "{}", a.as_primitive::<UInt32Type>().value(i)),
        DataType::UInt64 => write!(out, "{}", a.as_primitive::<UInt64Type>().value(i)),
        DataType::Float32 => out.write_str(&float_text(f64::from(
            a.as_primitive::<Float32Type>().value(i),
        ))),
        DataType::Float64 => out.write_str(&float_text(a.as_primitive::<Float64Type>().value(i))),
        DataType::Boolean => write!(out, "{}", a.as_boolean().value(i)),
        DataType::Decimal128(_, scale) => out.write_str(&decimal_text(
            a.as_primitive::<Decimal128Type>().value(i),
            u8::try_from(*scale).unwrap_or(0),
        )),
        DataType::Date32 => match date_from_days(a.as_primitive::<Date32Type>().value(i)) {
            Some(d) => write!(out, "{}", d.format("%Y-%m-%d")),
            None => Ok(()),
        },
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            let us = a.as_primitive::<TimestampMicrosecondType>().value(i);
            match chrono::DateTime::from_timestamp_micros(us) {
                Some(t) => write!(out, "{}", t.naive_utc().format("%Y-%m-%d %H:%M:%S%.6f")),
                None => Ok(()),
            }
        }
        other => return Err(format!("column {col}: type {other} is not supported")),
    };
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Planning: expressions compiled against the sources' columns

/// A compiled expression: column references are (slot, index), where slot 0 is the `from`
/// source and slot k the k-th join.
enum Plan {
    Col(usize, usize),
    Const(Option<String>),
    Split(usize, usize, SplitPart),
    Key(String, Vec<Plan>),
    Lookup {
        table: String,
        by: String,
        /// The lookup's rows: `by` value → key.
        keys: FastMap<String, String>,
        value: Box<Plan>,
    },
    Explode(usize),
    Case(Vec<(Test, Plan, Plan)>, Box<Plan>),
}

/// A computed value: borrowed from the source row or the model where it can be.
type Cell<'a> = Option<Cow<'a, str>>;

/// Why a value could not be computed (a lookup without a row).
struct Miss {
    rule: &'static str,
    value: Option<String>,
    message: String,
}

struct Ctx<'a> {
    slots: &'a [&'a [Option<String>]],
    exploded: &'a [Cell<'a>],
}

impl Plan {
    fn eval<'a>(&'a self, cx: &Ctx<'a>) -> Result<Cell<'a>, Miss> {
        Ok(match self {
            Plan::Col(s, c) => cx.slots[*s][*c].as_deref().map(Cow::Borrowed),
            Plan::Const(v) => v.as_deref().map(Cow::Borrowed),
            Plan::Split(s, c, part) => cx.slots[*s][*c].as_deref().and_then(|v| {
                let v = v.trim();
                let (first, rest) = v.split_once(char::is_whitespace).unwrap_or((v, ""));
                let out = match part {
                    SplitPart::First => first,
                    SplitPart::Rest => rest.trim_start(),
                };
                (!out.is_empty()).then_some(Cow::Borrowed(out))
            }),
            Plan::Key(name, of) => {
                let mut natural = String::from(name);
                for p in of {
                    match p.eval(cx)? {
                        Some(v) => {
                            natural.push('\u{1f}');
                            natural.push_str(&v);
                        }
                        None => return Ok(None),
                    }
                }
                Some(Cow::Owned(stable_key(&natural)))
            }
            Plan::Lookup {
                table,
                by,
                keys,
                value,
            } => match value.eval(cx)? {
                None => None,
                Some(v) => match keys.get(v.as_ref()) {
                    Some(key) => Some(Cow::Borrowed(key.as_str())),
                    None => {
                        return Err(Miss {
                            rule: "lookup_miss",
                            message: format!("{table} has no row whose {by} is {v:?}"),
                            value: Some(v.into_owned()),
                        })
                    }
                },
            },
            Plan::Explode(i) => cx.exploded[*i].clone(),
            Plan::Case(whens, otherwise) => {
                for (test, value, then) in whens {
                    if value.eval(cx)?.is_some_and(|v| test.holds(&v)) {
                        return then.eval(cx);
                    }
                }
                otherwise.eval(cx)?
            }
        })
    }
}

/// What the previous build held under a key: the row's fingerprint and its audit values.
struct Prev {
    hash: u64,
    created: i64,
    created_by: Option<String>,
    updated: Option<i64>,
    updated_by: Option<String>,
}

/// The previous build of table `t` at `path` (none when the file does not exist), by key.
/// Fingerprints cover the model's columns as they are now: a column added since counts as a
/// change.
fn load_previous(
    path: &Path,
    t: &TargetTable,
    rules: &[ColumnRule],
) -> Result<FastMap<KeyRepr, Prev>, NormalizeError> {
    let mut out = FastMap::default();
    if !path.exists() {
        return Ok(out);
    }
    let src = SourceData::open("(previous build)", &[path.to_path_buf()], &HashMap::new())?;
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
    src.for_each_row(&wanted, |_, _, cells| {
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

/// A key as held in memory: a canonical UUID (what `key` expressions make) as its 128 bits,
/// any other text as it is. Both are exact: two keys are equal when their texts are.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum KeyRepr {
    Uuid(u128),
    Text(Box<str>),
}

impl KeyRepr {
    fn of(text: &str) -> KeyRepr {
        let b = text.as_bytes();
        let canonical = b.len() == 36
            && b.iter().enumerate().all(|(i, c)| match i {
                8 | 13 | 18 | 23 => *c == b'-',
                _ => c.is_ascii_digit() || (b'a'..=b'f').contains(c),
            });
        match uuid::Uuid::try_parse(text) {
            Ok(u) if canonical => KeyRepr::Uuid(u.as_u128()),
            _ => KeyRepr::Text(text.into()),
        }
    }
}

/// Empties a vector and hands back its allocation with another lifetime (the in-place
/// `collect` of an empty iterator reuses the buffer), so rows do not allocate.
fn recycle<'b>(mut v: Vec<Cell<'_>>) -> Vec<Cell<'b>> {
    v.clear();
    v.into_iter().map(|_| None).collect()
}

/// The join key of a row (its `columns`, unit-separated) into `key`; false when one is NULL.
fn join_key_of(cells: &[Option<String>], columns: &[usize], key: &mut String) -> bool {
    key.clear();
    for (n, &i) in columns.iter().enumerate() {
        let Some(v) = &cells[i] else { return false };
        if n > 0 {
            key.push('\u{1f}');
        }
        key.push_str(v);
    }
    true
}

/// A name-based (version 5) UUID: the same natural key gives the same key on every run.
pub fn stable_key(natural: &str) -> String {
    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, natural.as_bytes()).to_string()
}

struct Planner<'a> {
    model: &'a ModelSpec,
    /// (alias, columns) per slot.
    slots: Vec<(&'a str, &'a [String])>,
    explode_names: Vec<&'a str>,
    field: String,
    /// Per slot, per column: referenced by the table (only those are read).
    used: std::cell::RefCell<Vec<Vec<bool>>>,
    /// (lookup table, column) → value → key, of the lookups built so far.
    lookups: &'a HashMap<(String, String), FastMap<String, String>>,
}

impl Planner<'_> {
    fn err(&self, problem: String) -> SpecError {
        SpecError {
            file: format!("model {}", self.model.model),
            field: self.field.clone(),
            problem,
        }
    }

    fn column(&self, reference: &str) -> Result<(usize, usize), SpecError> {
        let (alias, name) = match reference.split_once('.') {
            Some((a, n)) => (Some(a), n),
            None => (None, reference),
        };
        for (s, (a, cols)) in self.slots.iter().enumerate() {
            if alias.is_some_and(|x| x != *a) {
                continue;
            }
            if let Some(c) = cols.iter().position(|c| c == name) {
                self.used.borrow_mut()[s][c] = true;
                return Ok((s, c));
            }
        }
        let known: Vec<String> = self
            .slots
            .iter()
            .map(|(a, cols)| format!("{a}: {}", cols.join(", ")))
            .collect();
        Err(self.err(format!(
            "no source column '{reference}' (the sources have {})",
            known.join("; ")
        )))
    }

    fn plan(&self, e: &Expr) -> Result<Plan, SpecError> {
        Ok(match e {
            Expr::Column(r) => {
                let (s, c) = self.column(r)?;
                Plan::Col(s, c)
            }
            Expr::Const(v) => Plan::Const(json_text(v)),
            Expr::Split { column, part } => {
                let (s, c) = self.column(column)?;
                Plan::Split(s, c, *part)
            }
            Expr::Key { table, of } => Plan::Key(
                format!("sluice/{}/{table}", self.model.model),
                of.iter().map(|e| self.plan(e)).collect::<Result<_, _>>()?,
            ),
            Expr::Lookup { table, by, value } => Plan::Lookup {
                table: table.clone(),
                by: by.clone(),
                keys: self
                    .lookups
                    .get(&(table.clone(), by.clone()))
                    .cloned()
                    .unwrap_or_default(),
                value: Box::new(self.plan(value)?),
            },
            Expr::Explode(name) => Plan::Explode(
                self.explode_names
                    .iter()
                    .position(|n| n == name)
                    .ok_or_else(|| self.err(format!("'{name}' is not an explode value")))?,
            ),
            Expr::Case { when, otherwise } => Plan::Case(
                when.iter()
                    .map(|w| {
                        Ok((
                            w.test.clone(),
                            self.plan(&w.test.value)?,
                            self.plan(&w.then)?,
                        ))
                    })
                    .collect::<Result<_, SpecError>>()?,
                Box::new(self.plan(otherwise)?),
            ),
        })
    }
}

// ---------------------------------------------------------------------------------------------
// The run

pub struct NormalizeOptions {
    /// The `created` timestamp of every row.
    pub as_of: NaiveDateTime,
    /// How quarantine records name input files (e.g. their `s3://` URI); default: the path.
    pub names: HashMap<PathBuf, String>,
    /// Where the previous build's tables are (`<root>/data/<lake table>/…`), if any: a row
    /// the previous build also had keeps its `created` (and `updated`, when unchanged); a
    /// changed row gets `updated` = `as_of`.
    pub previous: Option<PathBuf>,
    pub batch_rows: usize,
    pub row_group_rows: usize,
    pub memory_budget_bytes: usize,
}

impl NormalizeOptions {
    pub fn new(as_of: NaiveDateTime) -> NormalizeOptions {
        NormalizeOptions {
            as_of,
            names: HashMap::new(),
            previous: None,
            batch_rows: 8192,
            row_group_rows: 1 << 20,
            memory_budget_bytes: 64 << 20,
        }
    }
}

/// Builds every table of `model` from `inputs` (dataset → curated Parquet files) under `out`.
pub fn normalize(
    model: &ModelSpec,
    inputs: &BTreeMap<String, Vec<PathBuf>>,
    out: &Path,
    opts: &NormalizeOptions,
) -> Result<NormalizeReport, NormalizeError> {
    let mut sources: BTreeMap<&str, SourceData> = BTreeMap::new();
    for (alias, s) in &model.sources {
        let files = inputs
            .get(&s.dataset)
            .filter(|f| !f.is_empty())
            .ok_or_else(|| NormalizeError::NoData {
                model: model.model.clone(),
                dataset: s.dataset.clone(),
            })?;
        sources.insert(alias, SourceData::open(&s.dataset, files, &opts.names)?);
    }
    let mut run = Run {
        model,
        out,
        opts,
        lookups: HashMap::new(),
        keys: HashMap::new(),
        encoder: ParquetEncoder::start(opts.memory_budget_bytes),
        rows_read: BTreeMap::new(),
    };
    let mut tables = Vec::new();
    for t in &model.tables {
        tables.push(run.table(t, &sources)?);
    }
    let Run {
        encoder, rows_read, ..
    } = run;
    encoder.finish()?;
    Ok(NormalizeReport {
        model: model.model.clone(),
        as_of: opts.as_of.format("%Y-%m-%d %H:%M:%S").to_string(),
        sources: rows_read,
        tables,
    })
}

struct Run<'a> {
    model: &'a ModelSpec,
    out: &'a Path,
    opts: &'a NormalizeOptions,
    /// (lookup table, column) → value → key
    lookups: HashMap<(String, String), FastMap<String, String>>,
    /// Table → key → hash of the row written under it.
    keys: HashMap<String, FastMap<KeyRepr, u64>>,
    encoder: ParquetEncoder,
    rows_read: BTreeMap<String, u64>,
}

/// One table being written.
struct Sink<'a> {
    table: &'a TargetTable,
    rules: Vec<ColumnRule>,
    /// Per column: the table its foreign key points at.
    references: Vec<Option<&'a str>>,
    skip: Vec<usize>,
    part: ParquetPart,
    quarantine: BufWriter<File>,
    keys: FastMap<KeyRepr, u64>,
    key_col: usize,
    audit: Option<String>,
    as_of_micros: i64,
    /// The previous build of this table, by key.
    previous: FastMap<KeyRepr, Prev>,
    report: TableReport,
    rejects: BTreeMap<(String, String), u64>,
}

impl<'a> Run<'a> {
    fn table(
        &mut self,
        t: &'a TargetTable,
        sources: &BTreeMap<&str, SourceData>,
    ) -> Result<TableReport, NormalizeError> {
        let lake = self.model.lake_table(&t.name);
        let lake_cols: Vec<ColumnSpec> = self.model.lake_columns(t);
        let output = format!("data/{lake}/{lake}.parquet");
        let quarantine = format!("quarantine/{lake}/{lake}.jsonl");
        for rel in [&output, &quarantine] {
            if let Some(dir) = self.out.join(rel).parent() {
                std::fs::create_dir_all(dir)?;
            }
        }
        let part = ParquetPart::create(
            &mut self.encoder,
            &self.out.join(&output),
            output.clone(),
            &lake_cols,
            self.opts.batch_rows,
            self.opts.row_group_rows,
        )?;
        let rules: Vec<ColumnRule> = lake_cols
            .iter()
            .take(t.columns.len())
            .map(|c| ColumnRule::new(c, &[]))
            .collect();
        let previous = match (&self.opts.previous, &self.model.audit) {
            (Some(root), Some(_)) => load_previous(&root.join(&output), t, &rules)?,
            _ => FastMap::default(),
        };
        let mut sink = Sink {
            table: t,
            rules,
            references: t.columns.iter().map(|c| c.references.as_deref()).collect(),
            skip: t
                .skip_when_null
                .iter()
                .filter_map(|s| t.columns.iter().position(|c| &c.name == s))
                .collect(),
            part,
            quarantine: BufWriter::new(File::create(self.out.join(&quarantine))?),
            keys: FastMap::default(),
            key_col: t
                .columns
                .iter()
                .position(|c| c.name == t.primary_key)
                .unwrap_or(0),
            audit: self.model.audit.as_ref().map(|a| a.by.clone()),
            as_of_micros: micros_since_epoch(&self.opts.as_of),
            previous,
            report: TableReport {
                table: t.name.clone(),
                lake_table: lake,
                rows_written: 0,
                rows_quarantined: 0,
                duplicates_collapsed: 0,
                skipped_absent: 0,
                rows_new: 0,
                rows_changed: 0,
                rejects: Vec::new(),
                output,
                quarantine,
            },
            rejects: BTreeMap::new(),
        };
        if t.is_lookup() {
            self.lookup_rows(&mut sink)?;
        } else {
            self.derived_rows(&mut sink, sources)?;
        }
        sink.part.flush(&mut self.encoder)?;
        sink.quarantine.flush()?;
        let Sink {
            keys,
            mut report,
            rejects,
            part,
            ..
        } = sink;
        report.rows_written = part.rows();
        report.rejects = rejects
            .into_iter()
            .map(|((column, rule), rows)| RuleCount { column, rule, rows })
            .collect();
        // Keys are kept for the foreign keys of later tables; a table nobody references lets
        // its keys go.
        let referenced = self.model.tables.iter().any(|later| {
            later
                .columns
                .iter()
                .any(|c| c.references.as_deref() == Some(t.name.as_str()))
        });
        if referenced {
            self.keys.insert(t.name.clone(), keys);
        }
        Ok(report)
    }

    fn lookup_rows(&mut self, sink: &mut Sink<'_>) -> Result<(), NormalizeError> {
        let t = sink.table;
        for row in &t.rows {
            let values: Vec<Cell<'_>> = t
                .columns
                .iter()
                .map(|c| row.get(&c.name).and_then(json_text).map(Cow::Owned))
                .collect();
            if sink.accept(self, &values, None)? {
                if let Some(key) = &values[sink.key_col] {
                    for (c, v) in t.columns.iter().zip(&values) {
                        if let Some(v) = v {
                            self.lookups
                                .entry((t.name.clone(), c.name.clone()))
                                .or_default()
                                .insert(v.to_string(), key.to_string());
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn derived_rows(
        &mut self,
        sink: &mut Sink<'_>,
        sources: &BTreeMap<&str, SourceData>,
    ) -> Result<(), NormalizeError> {
        let t = sink.table;
        let from_alias = t.from.as_deref().unwrap_or_default();
        let get = |alias: &str| {
            sources.get(alias).ok_or_else(|| {
                NormalizeError::Model(SpecError {
                    file: format!("model {}", self.model.model),
                    field: format!("tables.{}", t.name),
                    problem: format!("no source '{alias}'"),
                })
            })
        };
        let from = get(from_alias)?;
        let mut slots: Vec<(&str, &[String])> = vec![(from_alias, &from.columns)];
        for j in &t.join {
            slots.push((j.source.as_str(), &get(&j.source)?.columns));
        }
        let explode_names: Vec<&str> = t
            .explode
            .first()
            .map(|e| e.keys().map(String::as_str).collect())
            .unwrap_or_default();
        let used = slots.iter().map(|(_, c)| vec![false; c.len()]).collect();
        let mut planner = Planner {
            model: self.model,
            slots,
            explode_names,
            field: String::new(),
            used: std::cell::RefCell::new(used),
            lookups: &self.lookups,
        };
        let mut columns = Vec::new();
        for c in &t.columns {
            planner.field = format!("tables.{}.columns.{}", t.name, c.name);
            let v = c
                .value
                .as_ref()
                .ok_or_else(|| planner.err("no value".into()))?;
            columns.push(planner.plan(v)?);
        }
        let mut explode: Vec<Vec<Plan>> = Vec::new();
        for e in &t.explode {
            planner.field = format!("tables.{}.explode", t.name);
            explode.push(
                planner
                    .explode_names
                    .iter()
                    .map(|n| e.get(*n).map_or(Ok(Plan::Const(None)), |x| planner.plan(x)))
                    .collect::<Result<_, _>>()?,
            );
        }
        // Each join: from-side key columns, and the joined rows by their key.
        type Index = FastMap<String, Vec<Vec<Option<String>>>>;
        let mut joins: Vec<(Vec<usize>, Vec<String>, Index)> = Vec::new();
        for (k, j) in t.join.iter().enumerate() {
            planner.field = format!("tables.{}.join", t.name);
            let src = get(&j.source)?;
            let mut left = Vec::new();
            let mut right = Vec::new();
            for (l, r) in &j.on {
                let (_, li) = planner.column(&format!("{from_alias}.{l}"))?;
                let ri = src.columns.iter().position(|c| c == r).ok_or_else(|| {
                    planner.err(format!("source '{}' has no column '{r}'", j.source))
                })?;
                left.push(li);
                right.push(ri);
                planner.used.borrow_mut()[k + 1][ri] = true;
            }
            let wanted = planner.used.borrow()[k + 1].clone();
            let mut index = Index::default();
            let mut key = String::new();
            src.for_each_row(&wanted, |_, _, cells| {
                if join_key_of(cells, &right, &mut key) {
                    index.entry(key.clone()).or_default().push(cells.to_vec());
                }
                Ok(())
            })?;
            let names = j.on.keys().cloned().collect();
            joins.push((left, names, index));
        }

        let mut read = 0u64;
        let no_explode: Vec<Vec<Plan>> = vec![Vec::new()];
        let entries = if explode.is_empty() {
            &no_explode
        } else {
            &explode
        };
        let wanted = planner.used.borrow()[0].clone();
        // Buffers reused from row to row.
        let mut join_key = String::new();
        let mut exploded_buf: Vec<Cell<'static>> = Vec::new();
        let mut values_buf: Vec<Cell<'static>> = Vec::with_capacity(columns.len());
        from.for_each_row(&wanted, |file, row_no, cells| {
            read += 1;
            let origin = Origin {
                dataset: &from.dataset,
                file,
                row: row_no,
            };
            // The joined partners; a missing one quarantines the source row for this table.
            let mut matches: Vec<&[Vec<Option<String>>]> = Vec::with_capacity(joins.len());
            for (k, (left, names, index)) in joins.iter().enumerate() {
                let found = join_key_of(cells, left, &mut join_key)
                    .then(|| index.get(join_key.as_str()))
                    .flatten();
                match found {
                    Some(rows) => matches.push(rows),
                    None => {
                        let value: Option<String> = left
                            .iter()
                            .map(|&i| cells[i].clone())
                            .collect::<Option<Vec<_>>>()
                            .map(|k| k.join(","));
                        let message = format!(
                            "no {} row matches {} = {}",
                            t.join[k].source,
                            names.join(","),
                            value.as_deref().unwrap_or("NULL")
                        );
                        return sink.reject(
                            self.model,
                            "join_no_match",
                            &names.join(","),
                            value.as_deref(),
                            &message,
                            Some(&origin),
                            &[],
                        );
                    }
                }
            }
            // Every combination of partners (one each when the joins are one to one), as an
            // odometer over the partner lists.
            let mut pick = vec![0usize; matches.len()];
            let mut slots: Vec<&[Option<String>]> = Vec::with_capacity(1 + matches.len());
            loop {
                slots.clear();
                slots.push(cells);
                slots.extend(matches.iter().zip(&pick).map(|(m, &p)| m[p].as_slice()));
                for entry in entries {
                    let base = Ctx {
                        slots: &slots,
                        exploded: &[],
                    };
                    let mut exploded = recycle(std::mem::take(&mut exploded_buf));
                    let mut miss = None;
                    for p in entry {
                        match p.eval(&base) {
                            Ok(v) => exploded.push(v),
                            Err(m) => {
                                exploded.push(None);
                                miss.get_or_insert((String::from("(explode)"), m));
                            }
                        }
                    }
                    let cx = Ctx {
                        exploded: &exploded,
                        ..base
                    };
                    let mut values = recycle(std::mem::take(&mut values_buf));
                    for (c, p) in t.columns.iter().zip(&columns) {
                        match p.eval(&cx) {
                            Ok(v) => values.push(v),
                            Err(m) => {
                                values.push(None);
                                miss.get_or_insert((c.name.clone(), m));
                            }
                        }
                    }
                    if sink.skip.iter().any(|&i| values[i].is_none()) {
                        sink.report.skipped_absent += 1;
                    } else if let Some((column, m)) = miss {
                        sink.reject(
                            self.model,
                            m.rule,
                            &column,
                            m.value.as_deref(),
                            &m.message,
                            Some(&origin),
                            &values,
                        )?;
                    } else {
                        sink.accept(self, &values, Some(&origin))?;
                    }
                    values_buf = recycle(values);
                    exploded_buf = recycle(exploded);
                }
                // Next combination.
                let mut k = pick.len();
                loop {
                    if k == 0 {
                        return Ok(());
                    }
                    k -= 1;
                    pick[k] += 1;
                    if pick[k] < matches[k].len() {
                        break;
                    }
                    pick[k] = 0;
                }
            }
        })?;
        *self.rows_read.entry(from_alias.to_owned()).or_default() = read;
        Ok(())
    }
}

impl Sink<'_> {
    fn loaded_previous(&self) -> bool {
        !self.previous.is_empty()
    }

    /// Checks a row against the model and writes it, or quarantines it. True when written.
    fn accept(
        &mut self,
        run: &mut Run<'_>,
        values: &[Cell<'_>],
        origin: Option<&Origin<'_>>,
    ) -> Result<bool, NormalizeError> {
        let mut typed: Vec<Value<'_>> = Vec::with_capacity(values.len() + 4);
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
                if !run
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
            }
        }
        let key_text = values[self.key_col].as_deref().unwrap_or_default();
        let key = KeyRepr::of(key_text);
        let hash = row_hash(&typed);
        match self.keys.get(&key) {
            Some(h) if *h == hash => {
                self.report.duplicates_collapsed += 1;
                return Ok(false);
            }
            Some(_) => {
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
            None => {}
        }
        if let Some(by) = &self.audit {
            let now = self.as_of_micros;
            let (created, created_by, updated, updated_by) = match self.previous.get(&key) {
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
                    if self.loaded_previous() {
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
        self.part.push(&mut run.encoder, &typed)?;
        self.keys.insert(key, hash);
        Ok(true)
    }

    #[allow(clippy::too_many_arguments)]
    fn reject(
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
/// under the same key: SipHash (std's, fixed keys: the same on every run).
fn row_hash(values: &[Value<'_>]) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
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

/// A fast hasher for the in-memory maps (keys, join partners, lookups): eight bytes per
/// multiply, as rustc's FxHash. Keys here are our own data, not an attacker's.
#[derive(Default, Clone, Copy)]
struct FastHasher(u64);

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut h = self.0;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(c);
            h = (h.rotate_left(5) ^ u64::from_le_bytes(word)).wrapping_mul(SEED);
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            h = (h.rotate_left(5) ^ u64::from_le_bytes(word)).wrapping_mul(SEED);
        }
        self.0 = h;
    }

    fn write_u8(&mut self, i: u8) {
        self.0 = (self.0.rotate_left(5) ^ u64::from(i)).wrapping_mul(SEED);
    }

    fn write_usize(&mut self, i: usize) {
        self.0 = (self.0.rotate_left(5) ^ i as u64).wrapping_mul(SEED);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FastHasher>>;
