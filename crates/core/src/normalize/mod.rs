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

mod plan;
mod previous;
mod sink;

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::hash::Hash;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use chrono::NaiveDateTime;
use serde::Serialize;

use crate::coerce::RawCell;
use crate::coerce::{micros_since_epoch, ColumnRule};
use crate::model::{json_text, ModelSpec, TargetTable};
use crate::read::ahead::{run_ahead_by, Ahead, Item, Stopped};
use crate::read::parquet::ParquetRows;
use crate::read::Row;
use crate::spec::{ColumnSpec, SpecError};
use crate::write::{ParquetEncoder, ParquetPart, WriteError};

pub use crate::read::files::DataFile;
use plan::{Cell, Ctx, Plan, Planner};
use previous::load_previous;
use sink::{Origin, Sink};

/// The in-memory maps (keys, join partners, lookups): foldhash (hashbrown's default hasher,
/// fast on short keys) with fixed seeds, so every run is the same. Keys are our own data, not
/// an attacker's.
type FastMap<K, V> = HashMap<K, V, foldhash::fast::FixedState>;

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

impl From<crate::read::parquet::ParquetReadError> for NormalizeError {
    fn from(e: crate::read::parquet::ParquetReadError) -> Self {
        NormalizeError::Read {
            file: e.file,
            message: e.message,
        }
    }
}

impl From<Stopped> for NormalizeError {
    fn from(_: Stopped) -> Self {
        // Only when the writing side failed first: its error is the one returned.
        NormalizeError::Read {
            file: String::new(),
            message: "the table's writer stopped".into(),
        }
    }
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

/// A key as held in memory: a canonical UUID (what `key` expressions make) as its 128 bits,
/// any other text as it is. Both are exact: two keys are equal when their texts are. The bits
/// are two `u64`s rather than a `u128` (aligned to 16 bytes): 24 bytes a key instead of 32,
/// and a map entry with its row hash 32 bytes instead of 48, so more of a table's keys stay
/// in the cache while later tables look them up.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum KeyRepr {
    Uuid(u64, u64),
    Text(Box<str>),
}

impl KeyRepr {
    /// Only the canonical text (lower-case hex, hyphenated) is held as bits: the uuid crate
    /// also reads upper case, braces, URNs and the simple form, which are other texts.
    fn of(text: &str) -> KeyRepr {
        let b = text.as_bytes();
        let canonical = b.len() == 36
            && b.iter().enumerate().all(|(i, c)| match i {
                8 | 13 | 18 | 23 => *c == b'-',
                _ => c.is_ascii_digit() || (b'a'..=b'f').contains(c),
            });
        match uuid::Uuid::try_parse(text) {
            Ok(u) if canonical => {
                let (high, low) = u.as_u64_pair();
                KeyRepr::Uuid(high, low)
            }
            _ => KeyRepr::Text(text.into()),
        }
    }
}

/// Empties a vector and hands back its allocation for the same type with another lifetime
/// (the in-place `collect` of an empty iterator reuses the buffer), so rows do not allocate.
fn recycle<T, U: Default>(mut v: Vec<T>) -> Vec<U> {
    v.clear();
    v.into_iter().map(|_| U::default()).collect()
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
    let mut k = KeyHasher::default();
    k.bytes(natural.as_bytes());
    k.finish()
}

/// A v5 UUID (namespace OID, RFC 9562 §5.5) hashed as its natural key's parts arrive, so no
/// natural-key string is built per row: `sluice/<model>/<table>`, then `\u{1f}` and each part.
/// The same bytes as `uuid::Uuid::new_v5` (tested); SHA-1 through the CPU's SHA instructions.
pub(crate) struct KeyHasher(sha1::Sha1);

impl Default for KeyHasher {
    fn default() -> Self {
        use sha1::Digest;
        let mut h = sha1::Sha1::new();
        h.update(uuid::Uuid::NAMESPACE_OID.as_bytes());
        KeyHasher(h)
    }
}

impl KeyHasher {
    pub(crate) fn bytes(&mut self, b: &[u8]) {
        sha1::Digest::update(&mut self.0, b);
    }

    /// The key in its canonical text (lower-case, hyphenated).
    pub(crate) fn finish(self) -> String {
        let digest = sha1::Digest::finalize(self.0);
        let mut first = [0u8; 16];
        first.copy_from_slice(&digest[..16]);
        let mut buf = uuid::Uuid::encode_buffer();
        uuid::Builder::from_sha1_bytes(first)
            .into_uuid()
            .hyphenated()
            .encode_lower(&mut buf)
            .to_owned()
    }
}

// ---------------------------------------------------------------------------------------------
// The run

pub struct NormalizeOptions {
    /// The `created` timestamp of every row.
    pub as_of: NaiveDateTime,
    /// How quarantine records name input files (e.g. their `s3://` URI); default: the path.
    pub names: HashMap<PathBuf, String>,
    /// Where the previous build's tables are, if anywhere: a row the previous build also had
    /// keeps its `created` (and `updated`, when unchanged); a changed row gets `updated` =
    /// `as_of`.
    pub previous: Option<Previous>,
    pub batch_rows: usize,
    pub row_group_rows: usize,
    pub memory_budget_bytes: usize,
    /// Tables that do not depend on each other (no foreign key between them) are built at the
    /// same time on up to this many threads, each with its Parquet encoder; the outputs are
    /// the same bytes whatever the number.
    pub threads: usize,
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
            threads: crate::cores(),
        }
    }
}

/// The previous build of a model's tables.
pub enum Previous {
    /// On disk: `<root>/data/<lake table>/<lake table>.parquet`.
    Dir(PathBuf),
    /// Each table's file by its lake key (`data/<lake table>/<lake table>.parquet`).
    Files(HashMap<String, DataFile>),
}

/// Builds every table of `model` from `inputs` (dataset → curated Parquet files) under `out`.
pub fn normalize(
    model: &ModelSpec,
    inputs: &BTreeMap<String, Vec<DataFile>>,
    out: &Path,
    opts: &NormalizeOptions,
) -> Result<NormalizeReport, NormalizeError> {
    let mut sources: BTreeMap<&str, ParquetRows> = BTreeMap::new();
    for (alias, s) in &model.sources {
        let files = inputs
            .get(&s.dataset)
            .filter(|f| !f.is_empty())
            .ok_or_else(|| NormalizeError::NoData {
                model: model.model.clone(),
                dataset: s.dataset.clone(),
            })?;
        sources.insert(alias, ParquetRows::open(&s.dataset, files, &opts.names)?);
    }
    let last_join = LastJoin::default();
    let mut run = Run {
        model,
        out,
        opts,
        lookups: HashMap::new(),
        keys: HashMap::new(),
        last_join: &last_join,
    };
    let mut rows_read = BTreeMap::new();
    let mut tables = Vec::new();
    let mut encoder = ParquetEncoder::start(opts.memory_budget_bytes);
    std::thread::scope(|scope| {
        // The first join's index is built beside the tables before it, which leave part of a
        // core idle (each is one reader and one writer in turn), instead of alone when its
        // table starts. The table then finds it made, or waits for it; it plans again itself
        // (with the lookups built by then), so nothing of this early plan but the index is
        // used, and any error in it is the table's to report.
        let early = model.tables.iter().find(|t| !t.join.is_empty());
        if let Some(t) = early.filter(|_| opts.threads > 1) {
            let planner = Run {
                lookups: HashMap::new(),
                keys: HashMap::new(),
                ..run
            };
            let sources = &sources;
            scope.spawn(move || drop(planner.plan_derived(t, sources)));
        }
        let mut next = 0;
        while next < model.tables.len() {
            let group = &model.tables[next..next + independent_run(model, next)];
            next += group.len();
            let built = if group.len() == 1 || opts.threads <= 1 {
                group
                    .iter()
                    .map(|t| run.table(t, &sources, &mut encoder))
                    .collect::<Vec<_>>()
            } else {
                run.tables_in_parallel(group, &sources)
            };
            // Applied in the model's order, whatever order the threads finished in.
            for (t, b) in group.iter().zip(built) {
                let b = b?;
                if let Some((alias, n)) = b.read {
                    rows_read.insert(alias, n);
                }
                for (k, v) in b.lookups {
                    run.lookups.entry(k).or_default().extend(v);
                }
                if let Some(keys) = b.keys {
                    run.keys.insert(t.name.clone(), keys);
                }
                tables.push(b.report);
            }
        }
        Ok::<_, NormalizeError>(())
    })?;
    encoder.finish()?;
    Ok(NormalizeReport {
        model: model.model.clone(),
        as_of: opts.as_of.format("%Y-%m-%d %H:%M:%S").to_string(),
        sources: rows_read,
        tables,
    })
}

/// How many tables from `first` on can be built at the same time: derived tables none of which
/// references another of them by foreign key. Lookup tables go one at a time (later tables
/// plan against their rows); a lookup expression can only name a lookup table (the model's
/// check), so it never ties two derived tables together.
fn independent_run(model: &ModelSpec, first: usize) -> usize {
    let tables = &model.tables;
    if tables[first].is_lookup() {
        return 1;
    }
    let mut n = 1;
    while let Some(t) = tables.get(first + n) {
        let group = &tables[first..first + n];
        let in_group = |name: &str| group.iter().any(|g| g.name == name);
        let depends = t.is_lookup()
            || t.columns
                .iter()
                .any(|c| c.references.as_deref().is_some_and(in_group));
        if depends {
            break;
        }
        n += 1;
    }
    n
}

/// What building one table adds to the run: its report, its keys (when a later table
/// references it), the rows read from its `from` source, a lookup table's values.
struct Built {
    report: TableReport,
    keys: Option<FastMap<KeyRepr, u64>>,
    read: Option<(String, u64)>,
    lookups: HashMap<(String, String), FastMap<String, String>>,
}

/// A joined source's rows by their join key.
type JoinIndex = FastMap<String, Vec<Vec<Option<String>>>>;

/// One join of a derived table: the `from` side's key columns, their names, the joined rows.
struct Join {
    left: Vec<usize>,
    names: Vec<String>,
    index: Arc<JoinIndex>,
}

/// The last join index built (source, its key columns, the columns read, the index): the next
/// table joining the same source the same way (Aspen's phone numbers, addresses and e-mails
/// all join the roles by borrower) reuses it instead of reading the source again.
type LastJoin = Mutex<Option<(String, Vec<usize>, Vec<bool>, Arc<JoinIndex>)>>;

/// What [`Run::plan_derived`] makes of a derived table.
struct Derived<'s> {
    from: &'s ParquetRows,
    columns: Vec<Plan>,
    explode: Vec<Vec<Plan>>,
    joins: Vec<Join>,
    /// The `from` source's columns the table reads.
    wanted: Vec<bool>,
    /// The `from` column holding the table's ADO rowset, and the fields its columns read.
    rowset: Option<(usize, Vec<String>)>,
}

/// The rowset fields an expression reads (`{"rowset": "Field"}`), added to `out` once each.
fn rowset_fields<'e>(e: &'e crate::model::Expr, out: &mut Vec<&'e str>) {
    use crate::model::Expr;
    match e {
        Expr::Rowset(n) => {
            if !out.contains(&n.as_str()) {
                out.push(n);
            }
        }
        Expr::Key { of, .. } => of.iter().for_each(|x| rowset_fields(x, out)),
        Expr::Lookup { value, .. } => rowset_fields(value, out),
        Expr::Case { when, otherwise } => {
            for w in when {
                rowset_fields(&w.test.value, out);
                rowset_fields(&w.then, out);
            }
            rowset_fields(otherwise, out);
        }
        Expr::Column(_) | Expr::Const(_) | Expr::Split { .. } | Expr::Explode(_) => {}
    }
}

struct Run<'a> {
    model: &'a ModelSpec,
    out: &'a Path,
    opts: &'a NormalizeOptions,
    /// (lookup table, column) → value → key
    lookups: HashMap<(String, String), FastMap<String, String>>,
    /// Table → key → hash of the row written under it.
    keys: HashMap<String, FastMap<KeyRepr, u64>>,
    last_join: &'a LastJoin,
}

impl<'a> Run<'a> {
    /// Builds `group` (independent tables) on up to `opts.threads` threads, each table with a
    /// Parquet encoder of its own; the results in the group's order.
    fn tables_in_parallel(
        &self,
        group: &'a [TargetTable],
        sources: &BTreeMap<&str, ParquetRows>,
    ) -> Vec<Result<Built, NormalizeError>> {
        let next = std::sync::atomic::AtomicUsize::new(0);
        let mut built: Vec<(usize, Result<Built, NormalizeError>)> = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..self.opts.threads.min(group.len()))
                .map(|_| {
                    scope.spawn(|| {
                        let mut mine = Vec::new();
                        loop {
                            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            let Some(t) = group.get(i) else { break mine };
                            let mut encoder = ParquetEncoder::start(self.opts.memory_budget_bytes);
                            let b = self
                                .table(t, sources, &mut encoder)
                                .and_then(|b| encoder.finish().map(|()| b).map_err(Into::into));
                            mine.push((i, b));
                        }
                    })
                })
                .collect();
            workers
                .into_iter()
                .flat_map(|w| w.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect()
        });
        built.sort_by_key(|(i, _)| *i);
        built.into_iter().map(|(_, b)| b).collect()
    }

    fn table(
        &self,
        t: &'a TargetTable,
        sources: &BTreeMap<&str, ParquetRows>,
        encoder: &mut ParquetEncoder,
    ) -> Result<Built, NormalizeError> {
        let lake = self.model.lake_table(&t.name);
        let lake_cols: Vec<ColumnSpec> = self.model.lake_columns(t);
        let output = format!("data/{lake}/{lake}.parquet");
        let quarantine = format!("quarantine/{lake}/{lake}.jsonl");
        for rel in [&output, &quarantine] {
            if let Some(dir) = self.out.join(rel).parent() {
                std::fs::create_dir_all(dir)?;
            }
        }
        // The columns made by `key` expressions hold random keys (see writer_properties).
        let random_keys: Vec<&str> = t
            .columns
            .iter()
            .filter(|c| matches!(c.value, Some(crate::model::Expr::Key { .. })))
            .map(|c| c.name.as_str())
            .collect();
        let part = ParquetPart::create(
            encoder,
            &self.out.join(&output),
            output.clone(),
            &lake_cols,
            self.opts.batch_rows,
            self.opts.row_group_rows,
            &random_keys,
        )?;
        let rules: Vec<ColumnRule> = lake_cols
            .iter()
            .take(t.columns.len())
            .map(|c| ColumnRule::new(c, &[]))
            .collect();
        let previous_file = match (&self.opts.previous, &self.model.audit) {
            (Some(Previous::Dir(root)), Some(_)) => {
                let p = root.join(&output);
                p.exists().then_some(DataFile::Local(p))
            }
            (Some(Previous::Files(files)), Some(_)) => files.get(&output).cloned(),
            _ => None,
        };
        let previous = match previous_file {
            Some(f) => load_previous(&f, t, &rules)?,
            None => FastMap::default(),
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
            typed: Vec::new(),
            found: vec![None; t.columns.len()],
        };
        let mut lookups = HashMap::new();
        let mut read = None;
        if t.is_lookup() {
            self.lookup_rows(&mut sink, encoder, &mut lookups)?;
        } else {
            read = Some(self.derived_rows(&mut sink, sources, encoder)?);
        }
        sink.part.flush(encoder)?;
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
        Ok(Built {
            report,
            keys: referenced.then_some(keys),
            read,
            lookups,
        })
    }

    fn lookup_rows(
        &self,
        sink: &mut Sink<'_>,
        encoder: &mut ParquetEncoder,
        lookups: &mut HashMap<(String, String), FastMap<String, String>>,
    ) -> Result<(), NormalizeError> {
        let t = sink.table;
        for row in &t.rows {
            let values: Vec<Cell<'_>> = t
                .columns
                .iter()
                .map(|c| row.get(&c.name).and_then(json_text).map(Cow::Owned))
                .collect();
            if sink.accept(self, encoder, &values, None)? {
                if let Some(key) = &values[sink.key_col] {
                    for (c, v) in t.columns.iter().zip(&values) {
                        if let Some(v) = v {
                            lookups
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

    /// A derived table's plan: its columns' and explode entries' expressions compiled
    /// against its sources, the joined sources indexed by their join keys, and which of the
    /// `from` source's columns it reads.
    fn plan_derived<'s>(
        &self,
        t: &TargetTable,
        sources: &'s BTreeMap<&str, ParquetRows>,
    ) -> Result<Derived<'s>, NormalizeError> {
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
        let explode_names: Vec<&str> = match &t.rowset {
            // The rowset fields the columns read, in first-use order.
            Some(_) => {
                let mut names = Vec::new();
                for c in &t.columns {
                    if let Some(v) = &c.value {
                        rowset_fields(v, &mut names);
                    }
                }
                names
            }
            None => t
                .explode
                .first()
                .map(|e| e.keys().map(String::as_str).collect())
                .unwrap_or_default(),
        };
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
        let mut joins: Vec<Join> = Vec::new();
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
            let same = |(s, r, w, _): &(String, Vec<usize>, Vec<bool>, Arc<JoinIndex>)| {
                *s == j.source && *r == right && *w == wanted
            };
            // Held while building: a table beside this one joining the same way waits for the
            // index and reuses it.
            let mut last = self.last_join.lock().unwrap_or_else(|p| p.into_inner());
            let index = match last.as_ref().filter(|c| same(c)) {
                Some((_, _, _, index)) => Arc::clone(index),
                None => {
                    let mut index = JoinIndex::default();
                    let mut key = String::new();
                    src.for_each_row::<NormalizeError>(&wanted, |_, _, cells| {
                        if join_key_of(cells, &right, &mut key) {
                            index.entry(key.clone()).or_default().push(cells.to_vec());
                        }
                        Ok(())
                    })?;
                    let index = Arc::new(index);
                    *last = Some((j.source.clone(), right.clone(), wanted, Arc::clone(&index)));
                    index
                }
            };
            drop(last);
            let names = j.on.keys().cloned().collect();
            joins.push(Join { left, names, index });
        }
        let rowset = match &t.rowset {
            Some(col) => {
                planner.field = format!("tables.{}.rowset", t.name);
                let (_, ci) = planner.column(&format!("{from_alias}.{col}"))?;
                Some((
                    ci,
                    planner
                        .explode_names
                        .iter()
                        .map(|n| n.to_string())
                        .collect(),
                ))
            }
            None => None,
        };
        let wanted = planner.used.borrow()[0].clone();
        Ok(Derived {
            from,
            columns,
            explode,
            joins,
            wanted,
            rowset,
        })
    }

    /// Streams the `from` source: each row joined to its partners, exploded, evaluated and
    /// written (or quarantined with the rule that failed). The rows read, by source alias.
    ///
    /// Two threads share the work: a reader decodes the source and makes the target rows
    /// (joins, keys, lookups) a batch ahead, and this thread checks them against the model and
    /// writes them, in the source's order, so the outputs are the same bytes as one thread's.
    fn derived_rows(
        &self,
        sink: &mut Sink<'_>,
        sources: &BTreeMap<&str, ParquetRows>,
        encoder: &mut ParquetEncoder,
    ) -> Result<(String, u64), NormalizeError> {
        let t = sink.table;
        let from_alias = t.from.as_deref().unwrap_or_default();
        let derived = self.plan_derived(t, sources)?;
        let from = derived.from;
        let skip = sink.skip.clone();
        let mut read = 0u64;
        let read_count = &mut read;
        let mut cells_buf: Vec<Cell<'static>> = Vec::new();
        // Its own queue depth, measured for this pair of threads: the work per batch varies on
        // both sides (a batch of exploded or rejected rows; a batch the Parquet encoder must
        // wait for), and 8 batches waiting keep both threads busier than 2 (200k Aspen
        // borrowers, four interleaved A/B runs of 6-10 reps: median 1.67 -> 1.59,
        // 1.70 -> 1.57, 1.55 -> 1.47 and 1.44 -> 1.44 s). 8 batches of 256 rows are well under
        // a megabyte.
        run_ahead_by(
            8,
            move |ahead: &mut Ahead<Made<'_>>| {
                *read_count = make_rows(t, &derived, &skip, ahead)?;
                Ok(())
            },
            |made: &mut Made<'_>| {
                let origin = Origin {
                    dataset: &from.dataset,
                    file: made.file,
                    row: made.row,
                };
                let mut values = recycle(std::mem::take(&mut cells_buf));
                values.extend((0..made.values.len()).map(|i| match made.values.get(i) {
                    RawCell::Text(v) => Some(Cow::Borrowed(v)),
                    _ => None,
                }));
                let done = match &made.what {
                    Verdict::Accept => sink.accept(self, encoder, &values, Some(&origin)).map(drop),
                    Verdict::Skip => {
                        sink.report.skipped_absent += 1;
                        Ok(())
                    }
                    Verdict::Reject {
                        rule,
                        column,
                        value,
                        message,
                    } => sink.reject(
                        self.model,
                        rule,
                        column,
                        value.as_deref(),
                        message,
                        Some(&origin),
                        &values,
                    ),
                };
                cells_buf = recycle(values);
                done
            },
        )?;
        Ok((from_alias.to_owned(), read))
    }
}

/// One target row made on [`Run::derived_rows`]'s reader thread: what the sink is to do with
/// it, where its source row is, and its values. Reused batch after batch.
#[derive(Default)]
struct Made<'s> {
    what: Verdict,
    file: &'s str,
    /// 1-based row within the curated file.
    row: u64,
    /// The target row's values (none for a source row rejected before it made any).
    values: Row,
}

#[derive(Default)]
enum Verdict {
    /// To check against the model and write.
    #[default]
    Accept,
    /// A `skip_when_null` column is NULL: no row, only counted.
    Skip,
    /// Could not be made: no join partner, an unreadable rowset, a lookup without a row.
    Reject {
        rule: &'static str,
        column: String,
        value: Option<String>,
        message: String,
    },
}

impl Item for Made<'_> {
    fn held(&self) -> usize {
        self.values.capacity()
    }
}

impl<'s> Made<'s> {
    /// Fills the next item of `ahead` and hands it on.
    fn send(
        ahead: &mut Ahead<Made<'s>>,
        what: Verdict,
        origin: (&'s str, u64),
        values: &[Cell<'_>],
    ) -> Result<(), Stopped> {
        let made = ahead.next();
        made.what = what;
        (made.file, made.row) = origin;
        made.values.clear();
        let mut bytes = 0;
        for (i, v) in values.iter().enumerate() {
            bytes += v.as_deref().map_or(0, str::len);
            made.values
                .put(i, v.as_deref().map_or(RawCell::Empty, RawCell::Text));
        }
        ahead.keep(bytes)
    }
}

/// The reader's half of a derived table: streams the `from` source, joins each row to its
/// partners, explodes it and evaluates the table's columns, handing every target row (or the
/// reason it could not be made) to `ahead`. The number of source rows read.
fn make_rows<'s>(
    t: &TargetTable,
    derived: &Derived<'s>,
    skip: &[usize],
    ahead: &mut Ahead<Made<'s>>,
) -> Result<u64, NormalizeError> {
    let Derived {
        from,
        columns,
        explode,
        joins,
        wanted,
        rowset,
    } = derived;
    let mut read = 0u64;
    let no_explode: Vec<Vec<Plan>> = vec![Vec::new()];
    let entries = if explode.is_empty() {
        &no_explode
    } else {
        explode
    };
    // Buffers reused from row to row.
    let mut join_key = String::new();
    let mut exploded_buf: Vec<Cell<'static>> = Vec::new();
    let mut values_buf: Vec<Cell<'static>> = Vec::with_capacity(columns.len());
    let mut matches: Vec<&[Vec<Option<String>>]> = Vec::with_capacity(joins.len());
    let mut pick: Vec<usize> = Vec::with_capacity(joins.len());
    let mut slots_buf: Vec<&[Option<String>]> = Vec::with_capacity(1 + joins.len());
    from.for_each_row::<NormalizeError>(wanted, |file, row_no, cells| {
        read += 1;
        let origin = (file, row_no);
        // The joined partners; a missing one quarantines the source row for this table.
        matches.clear();
        for (k, Join { left, names, index }) in joins.iter().enumerate() {
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
                    let column = names.join(",");
                    let message = format!(
                        "no {} row matches {column} = {}",
                        t.join[k].source,
                        value.as_deref().unwrap_or("NULL")
                    );
                    let what = Verdict::Reject {
                        rule: "join_no_match",
                        column,
                        value,
                        message,
                    };
                    return Ok(Made::send(ahead, what, origin, &[])?);
                }
            }
        }
        // A rowset: its z:rows, typed by its schema, are this source row's exploded values.
        let rowset_rows: Option<Vec<Vec<Option<String>>>> = match rowset {
            None => None,
            Some((ci, names)) => {
                let names: Vec<&str> = names.iter().map(String::as_str).collect();
                match cells[*ci]
                    .as_deref()
                    .map(|x| crate::rowset::rows_for(x, &names))
                {
                    None => Some(Vec::new()),
                    Some(Ok(rows)) => Some(rows),
                    Some(Err(message)) => {
                        let what = Verdict::Reject {
                            rule: "rowset_unreadable",
                            column: t.rowset.clone().unwrap_or_default(),
                            value: None,
                            message,
                        };
                        return Ok(Made::send(ahead, what, origin, &[])?);
                    }
                }
            }
        };
        let n_entries = rowset_rows.as_ref().map_or(entries.len(), Vec::len);
        // Every combination of partners (one each when the joins are one to one), as an
        // odometer over the partner lists.
        pick.clear();
        pick.resize(matches.len(), 0);
        let mut slots = recycle(std::mem::take(&mut slots_buf));
        loop {
            slots.clear();
            slots.push(cells);
            slots.extend(matches.iter().zip(&pick).map(|(m, &p)| m[p].as_slice()));
            for e_i in 0..n_entries {
                let base = Ctx {
                    slots: &slots,
                    exploded: &[],
                };
                let mut exploded = recycle(std::mem::take(&mut exploded_buf));
                let mut miss = None;
                match &rowset_rows {
                    Some(rows) => {
                        exploded.extend(rows[e_i].iter().map(|v| v.as_deref().map(Cow::Borrowed)))
                    }
                    None => {
                        for p in &entries[e_i] {
                            match p.eval(&base) {
                                Ok(v) => exploded.push(v),
                                Err(m) => {
                                    exploded.push(None);
                                    miss.get_or_insert((String::from("(explode)"), m));
                                }
                            }
                        }
                    }
                }
                let cx = Ctx {
                    exploded: &exploded,
                    ..base
                };
                let mut values = recycle(std::mem::take(&mut values_buf));
                for (c, p) in t.columns.iter().zip(columns) {
                    match p.eval(&cx) {
                        Ok(v) => values.push(v),
                        Err(m) => {
                            values.push(None);
                            miss.get_or_insert((c.name.clone(), m));
                        }
                    }
                }
                let what = if skip.iter().any(|&i| values[i].is_none()) {
                    Verdict::Skip
                } else if let Some((column, m)) = miss {
                    Verdict::Reject {
                        rule: m.rule,
                        column,
                        value: m.value,
                        message: m.message,
                    }
                } else {
                    Verdict::Accept
                };
                let values_sent: &[Cell<'_>] = match what {
                    Verdict::Skip => &[],
                    _ => &values,
                };
                Made::send(ahead, what, origin, values_sent)?;
                values_buf = recycle(values);
                exploded_buf = recycle(exploded);
            }
            // Next combination.
            let mut k = pick.len();
            loop {
                if k == 0 {
                    slots_buf = recycle(slots);
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
    Ok(read)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_with_no_foreign_key_between_them_are_grouped() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let model = ModelSpec::load(&root.join("config/models/aspen.json")).unwrap();
        let mut groups = Vec::new();
        let mut next = 0;
        while next < model.tables.len() {
            let n = independent_run(&model, next);
            let names: Vec<&str> = model.tables[next..next + n]
                .iter()
                .map(|t| t.name.as_str())
                .collect();
            groups.push(names.join("+"));
            next += n;
        }
        // user references user_profile, role_profile references user, the last three all
        // reference role_profile and not one another; lookups go one at a time.
        assert_eq!(
            groups,
            [
                "phone_number_type",
                "email_type",
                "role_profile_type",
                "user_profile",
                "user",
                "role_profile",
                "phone_number+address+email"
            ]
        );
    }

    #[test]
    fn only_canonical_uuid_texts_are_held_as_bits() {
        let text = "6ba7b812-9dad-11d1-80b4-00c04fd430c8";
        let (high, low) = uuid::Uuid::parse_str(text).unwrap().as_u64_pair();
        assert_eq!(KeyRepr::of(text), KeyRepr::Uuid(high, low));
        assert_eq!(
            KeyRepr::of("00000000-0000-0000-0000-000000000000"),
            KeyRepr::Uuid(0, 0)
        );
        assert_eq!(
            KeyRepr::of("ffffffff-ffff-ffff-ffff-ffffffffffff"),
            KeyRepr::Uuid(u64::MAX, u64::MAX)
        );
        // Texts the uuid crate would also read, but which are other texts than the canonical
        // one: held as they are, so two keys are equal only when their texts are.
        for other in [
            "6BA7B812-9DAD-11D1-80B4-00C04FD430C8",
            "6ba7b8129dad11d180b400c04fd430c8",
            "{6ba7b812-9dad-11d1-80b4-00c04fd430c8}",
            "urn:uuid:6ba7b812-9dad-11d1-80b4-00c04fd430c8",
            "6ba7b812-9dad-11d1-80b4-00c04fd430cg",
            "6ba7b812-9dad-11d1-80b4+00c04fd430c8",
            "6ba7b8129-dad-11d1-80b4-00c04fd430c8",
            "42",
            "",
        ] {
            assert_eq!(KeyRepr::of(other), KeyRepr::Text(other.into()), "{other}");
        }
    }

    #[test]
    fn keys_hashed_part_by_part_are_uuid_v5_of_the_whole_natural_key() {
        for natural in [
            "",
            "sluice/aspen/user\u{1f}42",
            "sluice/demo/person\u{1f}2\u{1f}Zoë 🚀",
            &"x".repeat(1000),
        ] {
            let want = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, natural.as_bytes());
            assert_eq!(stable_key(natural), want.to_string());
            // Fed in pieces, as Plan::Key does.
            let mut k = KeyHasher::default();
            for piece in natural.as_bytes().chunks(7) {
                k.bytes(piece);
            }
            assert_eq!(k.finish(), want.to_string());
        }
    }
}
