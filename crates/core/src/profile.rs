//! Column profiles: what a file (or a dataset's curated files) holds, column by column, in one
//! streamed pass and bounded memory: counts of values, NULLs and values the spec refuses;
//! distinct values (exact up to [`DISTINCT_EXACT`], then a HyperLogLog estimate, said so); min,
//! max, mean, standard deviation; quantiles and a histogram (exact up to [`SAMPLE`] values, then
//! from a uniform reservoir sample, said so); the most frequent values (exact up to
//! [`TOP_TRACKED`] distinct values, then Misra–Gries lower bounds, said so); string lengths;
//! and duplicate primary keys. Values are the lake's: each cell is coerced by the spec's rule,
//! exactly as ingest does, so a profile's NULLs are the lake's NULLs.
//!
//! A compact profile (counts, distinct, range; no value lists) is what ingest stores beside a
//! file's outputs and what [`drift`] compares with the dataset's previous files.

use std::collections::{HashMap, HashSet};
use std::hash::BuildHasher;
use std::io::{Read, Seek};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::coerce::{date_from_days, float_text, ColumnRule, RawCell, RejectReason, Value};
use crate::ingest::{column_positions, read_source};
use crate::read::parquet::{ParquetReadError, ParquetRows};
use crate::read::{Limits, ReadError, Row, RowVisitor};
use crate::spec::{ColumnSpec, ColumnType, DriftSpec, SourceFormat, TableSpec};
use crate::write::push_value_text;

/// Distinct values counted exactly per column; past it, the HyperLogLog estimate is reported.
pub const DISTINCT_EXACT: usize = 1 << 15;
/// Values kept per column for quantiles and the histogram (a uniform sample past it).
pub const SAMPLE: usize = 8_192;
/// Distinct values whose counts are kept exactly; past it, Misra–Gries counters.
pub const TOP_TRACKED: usize = 4_096;
/// Most frequent values reported per column.
pub const TOP_REPORTED: usize = 10;
/// Primary keys remembered exactly for the duplicate count; past it, estimated.
pub const KEYS_EXACT: usize = 1 << 20;
/// Histogram bins.
pub const BINS: usize = 20;
const QUANTILES: [f64; 7] = [0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99];
/// String-length buckets: (label, largest length in it).
const LENGTH_BUCKETS: [(&str, usize); 8] = [
    ("0", 0),
    ("1-5", 5),
    ("6-10", 10),
    ("11-20", 20),
    ("21-50", 50),
    ("51-100", 100),
    ("101-255", 255),
    ("256+", usize::MAX),
];

/// A count, exact or estimated.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Count {
    pub value: u64,
    /// True when the count is an estimate (HyperLogLog, relative error about 0.8 %).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub estimated: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Quantile {
    pub q: f64,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopValue {
    pub value: String,
    pub count: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bin {
    pub from: String,
    pub to: String,
    pub count: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lengths {
    pub min: u64,
    pub max: u64,
    pub mean: f64,
    /// (bucket, values), buckets of [`LENGTH_BUCKETS`].
    pub buckets: Vec<(String, u64)>,
}

/// One column's profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnProfile {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: String,
    /// Non-NULL values the spec accepts.
    pub values: u64,
    pub nulls: u64,
    /// Cells the spec refuses (they would go to quarantine).
    pub invalid: u64,
    pub distinct: Count,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<String>,
    /// Numeric and date columns: min and max as numbers (days, microseconds for dates and
    /// timestamps): what the range drift check compares.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<(f64, f64)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub std_dev: Option<f64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub quantiles: Vec<Quantile>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub histogram: Vec<Bin>,
    /// Quantiles and histogram were computed from a uniform sample of [`SAMPLE`] values (the
    /// histogram's counts scaled to the column's).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sampled: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub top: Vec<TopValue>,
    /// The top values' counts are lower bounds (more than [`TOP_TRACKED`] distinct values).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub top_approximate: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lengths: Option<Lengths>,
}

impl ColumnProfile {
    /// NULLs as a share of the rows (0 to 1).
    pub fn null_rate(&self) -> f64 {
        let n = self.values + self.nulls + self.invalid;
        if n == 0 {
            0.0
        } else {
            self.nulls as f64 / n as f64
        }
    }
}

/// A file's (or a dataset's) profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    pub dataset: String,
    /// The file (or files) profiled.
    pub file: String,
    pub rows: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub primary_key: Vec<String>,
    /// Rows whose primary key an earlier row already had (rows with a NULL key part are not
    /// counted: the key column's NULLs say how many).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duplicate_keys: Option<Count>,
    pub columns: Vec<ColumnProfile>,
}

impl Profile {
    /// What ingest stores beside a file's outputs: counts, distinct and ranges, no values.
    pub fn compact(mut self) -> Profile {
        for c in &mut self.columns {
            c.quantiles.clear();
            c.histogram.clear();
            c.top.clear();
            c.top_approximate = false;
            c.sampled = false;
            c.lengths = None;
            c.min = None;
            c.max = None;
        }
        self
    }
}

// ---- the sketches ----

/// HyperLogLog with 2^14 registers (Flajolet et al. 2007, with linear counting for small
/// cardinalities): about 0.8 % relative error in 16 KiB.
struct Hll {
    registers: Vec<u8>,
}

const HLL_BITS: u32 = 14;

impl Hll {
    fn new() -> Hll {
        Hll {
            registers: vec![0; 1 << HLL_BITS],
        }
    }

    fn add(&mut self, h: u64) {
        let idx = (h >> (64 - HLL_BITS)) as usize;
        let rest = h << HLL_BITS;
        let rank = (rest.leading_zeros() + 1).min(64 - HLL_BITS + 1) as u8;
        if let Some(r) = self.registers.get_mut(idx) {
            *r = (*r).max(rank);
        }
    }

    fn estimate(&self) -> u64 {
        let m = self.registers.len() as f64;
        let alpha = 0.7213 / (1.0 + 1.079 / m);
        let sum: f64 = self.registers.iter().map(|&r| 2f64.powi(-(r as i32))).sum();
        let raw = alpha * m * m / sum;
        let zeros = self.registers.iter().filter(|&&r| r == 0).count();
        if raw <= 2.5 * m && zeros > 0 {
            (m * (m / zeros as f64).ln()).round() as u64
        } else {
            raw.round() as u64
        }
    }
}

/// A uniform sample (Vitter's algorithm R) with a fixed-seed generator: the same input gives
/// the same profile.
struct Reservoir {
    values: Vec<f64>,
    seen: u64,
    rng: u64,
}

impl Reservoir {
    fn new() -> Reservoir {
        Reservoir {
            values: Vec::new(),
            seen: 0,
            rng: 0x9E37_79B9_7F4A_7C15,
        }
    }

    fn add(&mut self, x: f64) {
        self.seen += 1;
        if self.values.len() < SAMPLE {
            self.values.push(x);
            return;
        }
        // xorshift64*
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        let r = self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D);
        let j = (r % self.seen) as usize;
        if let Some(slot) = self.values.get_mut(j) {
            *slot = x;
        }
    }
}

/// A value kept by [`Top`]: numbers as they are (no text made for each new value of a
/// high-cardinality column), text owned.
enum Repr {
    Int(i64),
    Double(f64),
    Decimal(i128),
    Bool(bool),
    Date(i32),
    Timestamp(i64),
    Text(String),
}

impl Repr {
    fn of(v: &Value<'_>) -> Repr {
        match v {
            Value::Int(x) => Repr::Int(*x as i64),
            Value::BigInt(x) => Repr::Int(*x),
            Value::Double(x) => Repr::Double(*x),
            Value::Decimal(x) => Repr::Decimal(*x),
            Value::Bool(b) => Repr::Bool(*b),
            Value::Date(d) => Repr::Date(*d),
            Value::Timestamp(t) => Repr::Timestamp(*t),
            Value::Str(t) => Repr::Text(t.to_string()),
            Value::Null => Repr::Text(String::new()),
        }
    }

    fn text(&self, t: ColumnType) -> String {
        let v = match self {
            Repr::Int(x) => Value::BigInt(*x),
            Repr::Double(x) => Value::Double(*x),
            Repr::Decimal(x) => Value::Decimal(*x),
            Repr::Bool(b) => Value::Bool(*b),
            Repr::Date(d) => Value::Date(*d),
            Repr::Timestamp(x) => Value::Timestamp(*x),
            Repr::Text(s) => return s.clone(),
        };
        value_text(&v, t)
    }
}

/// Exact counts of up to [`TOP_TRACKED`] distinct values, then Misra–Gries: a new value when
/// the table is full lowers every counter by one (amortised O(1); counts become lower bounds).
struct Top {
    counts: HashMap<u64, (u64, Repr), foldhash::fast::FixedState>,
    approximate: bool,
}

impl Top {
    fn new() -> Top {
        Top {
            counts: HashMap::with_hasher(foldhash::fast::FixedState::with_seed(7)),
            approximate: false,
        }
    }

    fn add(&mut self, h: u64, v: &Value<'_>) {
        if let Some((n, _)) = self.counts.get_mut(&h) {
            *n += 1;
            return;
        }
        if self.counts.len() < TOP_TRACKED {
            self.counts.insert(h, (1, Repr::of(v)));
            return;
        }
        self.approximate = true;
        self.counts.retain(|_, (n, _)| {
            *n -= 1;
            *n > 0
        });
    }

    fn report(&self, t: ColumnType) -> Vec<TopValue> {
        let mut v: Vec<(u64, String)> =
            self.counts.values().map(|(n, r)| (*n, r.text(t))).collect();
        v.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        v.into_iter()
            .take(TOP_REPORTED)
            .map(|(count, value)| TopValue { value, count })
            .collect()
    }
}

/// Distinct values: exact (hashes) up to [`DISTINCT_EXACT`], the HyperLogLog always.
struct Distinct {
    exact: Option<HashSet<u64, foldhash::fast::FixedState>>,
    hll: Hll,
}

impl Distinct {
    fn new() -> Distinct {
        Distinct {
            exact: Some(HashSet::with_hasher(foldhash::fast::FixedState::with_seed(
                11,
            ))),
            hll: Hll::new(),
        }
    }

    fn add(&mut self, h: u64, cap: usize) {
        self.hll.add(h);
        if let Some(set) = &mut self.exact {
            set.insert(h);
            if set.len() > cap {
                self.exact = None;
            }
        }
    }

    fn count(&self) -> Count {
        match &self.exact {
            Some(set) => Count {
                value: set.len() as u64,
                estimated: false,
            },
            None => Count {
                value: self.hll.estimate(),
                estimated: true,
            },
        }
    }
}

// ---- the profiler ----

struct Col {
    spec: ColumnSpec,
    values: u64,
    nulls: u64,
    invalid: u64,
    distinct: Distinct,
    top: Top,
    /// Numeric and date columns: (number, text) of the smallest and largest value.
    min: Option<(f64, String)>,
    max: Option<(f64, String)>,
    /// String columns: the smallest and largest text.
    smin: Option<String>,
    smax: Option<String>,
    /// Welford's running mean and sum of squared deviations.
    mean: f64,
    m2: f64,
    sample: Reservoir,
    len_min: u64,
    len_max: u64,
    len_sum: u64,
    len_buckets: [u64; LENGTH_BUCKETS.len()],
}

/// A value as a number for the numeric statistics (dates in days, timestamps in µs).
fn number(v: &Value<'_>, t: ColumnType) -> Option<f64> {
    match v {
        Value::Int(x) => Some(*x as f64),
        Value::BigInt(x) => Some(*x as f64),
        Value::Double(x) => Some(*x),
        Value::Decimal(x) => {
            let scale = match t {
                ColumnType::Decimal { scale, .. } => scale,
                _ => 0,
            };
            Some(*x as f64 / 10f64.powi(scale as i32))
        }
        Value::Date(d) => Some(*d as f64),
        Value::Timestamp(us) => Some(*us as f64),
        Value::Null | Value::Bool(_) | Value::Str(_) => None,
    }
}

/// A number of a column's type as people read it.
fn show(t: ColumnType, x: f64) -> String {
    match t {
        ColumnType::Int | ColumnType::BigInt => format!("{}", x.round() as i64),
        ColumnType::Decimal { scale, .. } => format!("{x:.prec$}", prec = scale as usize),
        ColumnType::Date => date_from_days(x.round() as i32)
            .map(|d| d.format("%Y-%m-%d").to_string())
            .unwrap_or_default(),
        ColumnType::Timestamp => chrono::DateTime::from_timestamp_micros(x.round() as i64)
            .map(|d| d.naive_utc().format("%Y-%m-%d %H:%M:%S").to_string())
            .unwrap_or_default(),
        ColumnType::Double | ColumnType::Boolean | ColumnType::String => float_text(x),
    }
}

fn hash_value<S: BuildHasher>(s: &S, v: &Value<'_>) -> u64 {
    match v {
        Value::Null => 0,
        Value::Int(x) => s.hash_one(*x as i64),
        Value::BigInt(x) => s.hash_one(*x),
        Value::Double(x) => s.hash_one(x.to_bits()),
        Value::Decimal(x) => s.hash_one(*x),
        Value::Bool(b) => s.hash_one(*b),
        Value::Date(d) => s.hash_one(*d as i64),
        Value::Timestamp(t) => s.hash_one(*t),
        Value::Str(t) => s.hash_one(t.as_bytes()),
    }
}

impl Col {
    fn new(spec: ColumnSpec) -> Col {
        Col {
            spec,
            values: 0,
            nulls: 0,
            invalid: 0,
            distinct: Distinct::new(),
            top: Top::new(),
            min: None,
            max: None,
            smin: None,
            smax: None,
            mean: 0.0,
            m2: 0.0,
            sample: Reservoir::new(),
            len_min: u64::MAX,
            len_max: 0,
            len_sum: 0,
            len_buckets: [0; LENGTH_BUCKETS.len()],
        }
    }

    fn add(&mut self, v: &Value<'_>, h: u64) {
        if matches!(v, Value::Null) {
            self.nulls += 1;
            return;
        }
        self.values += 1;
        let t = self.spec.ty;
        self.distinct.add(h, DISTINCT_EXACT);
        self.top.add(h, v);
        if let Some(x) = number(v, t) {
            if self.min.as_ref().is_none_or(|(m, _)| x < *m) {
                self.min = Some((x, value_text(v, t)));
            }
            if self.max.as_ref().is_none_or(|(m, _)| x > *m) {
                self.max = Some((x, value_text(v, t)));
            }
            let d = x - self.mean;
            self.mean += d / self.values as f64;
            self.m2 += d * (x - self.mean);
            self.sample.add(x);
        }
        if let Value::Str(s) = v {
            let len = if s.is_ascii() {
                s.len()
            } else {
                s.chars().count()
            };
            self.len_min = self.len_min.min(len as u64);
            self.len_max = self.len_max.max(len as u64);
            self.len_sum += len as u64;
            if let Some(b) = LENGTH_BUCKETS.iter().position(|(_, hi)| len <= *hi) {
                self.len_buckets[b] += 1;
            }
            if self.smin.as_deref().is_none_or(|m| s.as_ref() < m) {
                self.smin = Some(s.to_string());
            }
            if self.smax.as_deref().is_none_or(|m| s.as_ref() > m) {
                self.smax = Some(s.to_string());
            }
        }
    }

    fn finish(self) -> ColumnProfile {
        let t = self.spec.ty;
        let numeric = self.min.is_some();
        let is_date = matches!(t, ColumnType::Date | ColumnType::Timestamp);
        let mut sorted = self.sample.values;
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let quantiles = if n == 0 {
            Vec::new()
        } else {
            QUANTILES
                .iter()
                .map(|&q| {
                    // Nearest rank.
                    let rank = ((q * n as f64).ceil() as usize).clamp(1, n);
                    Quantile {
                        q,
                        value: show(t, sorted[rank - 1]),
                    }
                })
                .collect()
        };
        let sampled = self.sample.seen > n as u64;
        let histogram = match (&self.min, &self.max) {
            (Some((lo, _)), Some((hi, _))) if n > 0 => {
                let (lo, hi) = (*lo, *hi);
                let integral = !matches!(t, ColumnType::Double | ColumnType::Decimal { .. });
                // Whole-number columns with few values: one bin per value.
                let bins = if integral && hi - lo < BINS as f64 {
                    (hi - lo) as usize + 1
                } else {
                    BINS
                };
                let width = if bins > 1 && hi > lo {
                    (hi - lo) / bins as f64
                } else {
                    1.0
                };
                let mut counts = vec![0u64; bins];
                for x in &sorted {
                    let b = (((x - lo) / width) as usize).min(bins - 1);
                    counts[b] += 1;
                }
                let scale = self.sample.seen as f64 / n as f64;
                counts
                    .into_iter()
                    .enumerate()
                    .map(|(i, c)| Bin {
                        from: show(t, lo + width * i as f64),
                        to: show(t, lo + width * (i + 1) as f64),
                        count: (c as f64 * scale).round() as u64,
                    })
                    .collect()
            }
            _ => Vec::new(),
        };
        let lengths = (self.len_max > 0 || self.len_min == 0).then(|| Lengths {
            min: self.len_min,
            max: self.len_max,
            mean: self.len_sum as f64 / self.values.max(1) as f64,
            buckets: LENGTH_BUCKETS
                .iter()
                .zip(self.len_buckets)
                .map(|((label, _), c)| (label.to_string(), c))
                .collect(),
        });
        let std_dev = (numeric && !is_date && self.values > 1)
            .then(|| (self.m2 / (self.values - 1) as f64).sqrt());
        ColumnProfile {
            name: self.spec.name,
            ty: t.to_string(),
            values: self.values,
            nulls: self.nulls,
            invalid: self.invalid,
            distinct: self.distinct.count(),
            min: self.min.as_ref().map(|m| m.1.clone()).or(self.smin),
            max: self.max.as_ref().map(|m| m.1.clone()).or(self.smax),
            range: self
                .min
                .as_ref()
                .zip(self.max.as_ref())
                .map(|(a, b)| (a.0, b.0)),
            mean: (numeric && !is_date).then_some(self.mean),
            std_dev,
            quantiles,
            histogram,
            sampled,
            top: self.top.report(t),
            top_approximate: self.top.approximate,
            lengths,
        }
    }
}

fn value_text(v: &Value<'_>, t: ColumnType) -> String {
    let mut s = String::new();
    push_value_text(&mut s, v, t);
    s
}

/// Profiles rows of lake values, one column of the spec per value.
pub struct Profiler {
    dataset: String,
    file: String,
    cols: Vec<Col>,
    rows: u64,
    hasher: foldhash::quality::FixedState,
    key_columns: Vec<usize>,
    key: u64,
    /// The current row's key has a NULL part (not a key: never a duplicate).
    key_null: bool,
    keys: Distinct,
    keys_seen: u64,
}

impl Profiler {
    pub fn new(spec: &TableSpec, file: &str) -> Profiler {
        Profiler {
            dataset: spec.dataset.clone(),
            file: file.into(),
            cols: spec.columns.iter().cloned().map(Col::new).collect(),
            rows: 0,
            hasher: foldhash::quality::FixedState::with_seed(0x51_u64),
            key_columns: spec
                .primary_key
                .iter()
                .filter_map(|k| spec.columns.iter().position(|c| &c.name == k))
                .collect(),
            key: 0,
            key_null: false,
            keys: Distinct::new(),
            keys_seen: 0,
        }
    }

    /// Column `i`'s value in the current row.
    pub fn value(&mut self, i: usize, v: &Value<'_>) {
        let h = hash_value(&self.hasher, v);
        if self.key_columns.contains(&i) {
            self.key = self.key.rotate_left(17) ^ h ^ (i as u64);
            self.key_null |= matches!(v, Value::Null);
        }
        if let Some(c) = self.cols.get_mut(i) {
            c.add(v, h);
        }
    }

    /// Column `i`'s cell in the current row is one the spec refuses.
    pub fn invalid(&mut self, i: usize) {
        if self.key_columns.contains(&i) {
            self.key_null = true;
        }
        if let Some(c) = self.cols.get_mut(i) {
            c.invalid += 1;
        }
    }

    /// The current row is complete.
    pub fn end_row(&mut self) {
        self.rows += 1;
        if !self.key_columns.is_empty() && !self.key_null {
            // The key's hash mixed once more: the combination above is not uniform enough for
            // the HyperLogLog's registers.
            let h = self.hasher.hash_one(self.key);
            self.keys.add(h, KEYS_EXACT);
            self.keys_seen += 1;
        }
        self.key = 0;
        self.key_null = false;
    }

    /// A whole row of lake values (ingest's accepted rows).
    pub fn row(&mut self, values: &[Value<'_>]) {
        for (i, v) in values.iter().enumerate() {
            self.value(i, v);
        }
        self.end_row();
    }

    pub fn finish(self) -> Profile {
        let key_names: Vec<String> = self
            .key_columns
            .iter()
            .filter_map(|&i| self.cols.get(i).map(|c| c.spec.name.clone()))
            .collect();
        let duplicate_keys = (!self.key_columns.is_empty()).then(|| {
            let d = self.keys.count();
            Count {
                value: self.keys_seen.saturating_sub(d.value),
                estimated: d.estimated,
            }
        });
        Profile {
            dataset: self.dataset,
            file: self.file,
            rows: self.rows,
            primary_key: key_names,
            duplicate_keys,
            columns: self.cols.into_iter().map(Col::finish).collect(),
        }
    }
}

// ---- profiling a source file or the lake ----

/// Rows handed from the reader to the column workers at a time.
const BATCH_ROWS: usize = 2_048;
/// Column workers: each profiles its share of the columns of every batch, so a file's profile
/// takes the machine's cores (the reader is the third, lighter thread).
const WORKERS: usize = 2;

/// One worker's columns: it coerces and profiles only those (the key's columns all go to
/// worker 0, which counts duplicate keys).
fn share(spec: &TableSpec, worker: usize) -> Vec<usize> {
    let key: Vec<usize> = spec
        .primary_key
        .iter()
        .filter_map(|k| spec.columns.iter().position(|c| &c.name == k))
        .collect();
    // The other columns dealt in turn, starting where the key left off.
    let start = key.len() % WORKERS;
    let others = (0..spec.columns.len())
        .filter(|i| !key.contains(i))
        .enumerate()
        .filter(|(n, _)| (n + start) % WORKERS == worker)
        .map(|(_, i)| i);
    if worker == 0 {
        key.iter().copied().chain(others).collect()
    } else {
        others.collect()
    }
}

type Batch = Vec<Row>;
type Positions = std::sync::Arc<Vec<Option<usize>>>;

/// What the reader sends each worker: the header's positions once, then batches of rows.
enum Msg {
    Header(Positions),
    Rows(std::sync::Arc<Batch>),
}

struct Worker<'a> {
    columns: Vec<usize>,
    rules: &'a [ColumnRule],
    profiler: Profiler,
}

impl Worker<'_> {
    fn batch(&mut self, positions: &[Option<usize>], rows: &[Row]) {
        for row in rows {
            for &i in &self.columns {
                let raw = match positions.get(i).copied().flatten() {
                    Some(p) => row.get(p),
                    None => RawCell::Empty,
                };
                match self.rules[i].coerce(raw) {
                    Ok(v) => self.profiler.value(i, &v),
                    // A NULL where the spec wants a value is still a NULL.
                    Err(r) if r.reason == RejectReason::NullNotAllowed => {
                        self.profiler.value(i, &Value::Null)
                    }
                    Err(_) => self.profiler.invalid(i),
                }
            }
            self.profiler.end_row();
        }
    }
}

/// The reader's side: the header matched, rows copied into batches and sent to every worker,
/// the batches' buffers recycled.
struct FileVisitor<'a> {
    spec: &'a TableSpec,
    senders: Vec<std::sync::mpsc::SyncSender<Msg>>,
    returned: std::sync::mpsc::Receiver<std::sync::Arc<Batch>>,
    spare: Vec<Batch>,
    current: Batch,
    used: usize,
}

const STOPPED: &str = "a profile worker stopped";

impl FileVisitor<'_> {
    fn send(&self, msg: impl Fn() -> Msg) -> Result<(), ReadError> {
        for tx in &self.senders {
            tx.send(msg())
                .map_err(|_| ReadError::Internal(STOPPED.into()))?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), ReadError> {
        if self.used == 0 {
            return Ok(());
        }
        let mut batch = std::mem::take(&mut self.current);
        batch.truncate(self.used);
        self.used = 0;
        let shared = std::sync::Arc::new(batch);
        self.send(|| Msg::Rows(shared.clone()))?;
        drop(shared);
        // Take back the batches every worker is done with.
        while let Ok(done) = self.returned.try_recv() {
            if let Ok(b) = std::sync::Arc::try_unwrap(done) {
                self.spare.push(b);
            }
        }
        self.current = self.spare.pop().unwrap_or_default();
        Ok(())
    }
}

impl RowVisitor for FileVisitor<'_> {
    fn header(&mut self, headers: &[String]) -> Result<(), ReadError> {
        let positions: Positions = std::sync::Arc::new(column_positions(self.spec, headers)?);
        self.send(|| Msg::Header(positions.clone()))
    }

    fn row(&mut self, _line: u64, row: &Row) -> Result<(), ReadError> {
        if let Some(slot) = self.current.get_mut(self.used) {
            slot.copy_from(row);
        } else {
            let mut r = Row::default();
            r.copy_from(row);
            self.current.push(r);
        }
        self.used += 1;
        if self.used == BATCH_ROWS {
            self.flush()?;
        }
        Ok(())
    }
}

/// Profiles a source file as the spec reads it: the reader on this thread, the columns
/// coerced and profiled by [`WORKERS`] threads, in bounded memory (a few batches in flight).
/// A panic met on the way (a bug some file provokes) is this file's error,
/// [`ReadError::Internal`], never a crash.
pub fn profile_file<R: Read + Seek + Send>(
    spec: &TableSpec,
    key: &str,
    input: R,
) -> Result<Profile, ReadError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        profile_file_unguarded(spec, key, input)
    }))
    .unwrap_or_else(|panic| Err(ReadError::from_panic(panic.as_ref())))
}

fn profile_file_unguarded<R: Read + Seek + Send>(
    spec: &TableSpec,
    key: &str,
    input: R,
) -> Result<Profile, ReadError> {
    let format: SourceFormat = spec.format_for(key);
    let rules: Vec<ColumnRule> = spec
        .columns
        .iter()
        .map(|c| ColumnRule::new(c, &spec.null_tokens))
        .collect();
    std::thread::scope(|scope| {
        let (back_tx, back_rx) = std::sync::mpsc::channel::<std::sync::Arc<Batch>>();
        let mut senders = Vec::new();
        let mut handles = Vec::new();
        for w in 0..WORKERS {
            let (tx, rx) = std::sync::mpsc::sync_channel::<Msg>(4);
            senders.push(tx);
            let back = back_tx.clone();
            let rules = &rules;
            handles.push(scope.spawn(move || {
                let mut worker = Worker {
                    columns: share(spec, w),
                    rules,
                    profiler: Profiler::new(spec, key),
                };
                let mut positions: Positions = std::sync::Arc::new(Vec::new());
                for msg in rx {
                    match msg {
                        Msg::Header(p) => positions = p,
                        Msg::Rows(batch) => {
                            worker.batch(&positions, &batch);
                            let _ = back.send(batch);
                        }
                    }
                }
                worker
            }));
        }
        drop(back_tx);
        let mut v = FileVisitor {
            spec,
            senders,
            returned: back_rx,
            spare: Vec::new(),
            current: Vec::new(),
            used: 0,
        };
        let read =
            read_source(spec, format, input, &Limits::default(), &mut v).and_then(|_| v.flush());
        // Closing the channels ends the workers.
        v.senders.clear();
        let mut workers = Vec::new();
        for h in handles {
            workers.push(
                h.join()
                    .map_err(|_| ReadError::Internal("a profile worker panicked".into()))?,
            );
        }
        read?;
        Ok(merge(workers))
    })
}

/// One profile from the workers' shares: each column from the worker that profiled it, the
/// rows and keys from worker 0.
fn merge(workers: Vec<Worker<'_>>) -> Profile {
    let mut parts: Vec<(Vec<usize>, Profile)> = workers
        .into_iter()
        .map(|w| (w.columns, w.profiler.finish()))
        .collect();
    let mut out = match parts.first() {
        Some((_, p)) => p.clone(),
        None => {
            return Profile {
                dataset: String::new(),
                file: String::new(),
                rows: 0,
                primary_key: Vec::new(),
                duplicate_keys: None,
                columns: Vec::new(),
            }
        }
    };
    for (columns, p) in parts.iter_mut() {
        for &i in columns.iter() {
            if let (Some(slot), Some(c)) = (out.columns.get_mut(i), p.columns.get_mut(i)) {
                std::mem::swap(slot, c);
            }
        }
    }
    out
}

/// Profiles a dataset's curated Parquet files (the lake's values, read back as Sluice writes
/// them as text).
pub fn profile_lake(spec: &TableSpec, files: &[PathBuf]) -> Result<Profile, ParquetReadError> {
    let files: Vec<crate::read::files::DataFile> = files.iter().cloned().map(Into::into).collect();
    let rows = ParquetRows::open(&spec.dataset, &files, &HashMap::new())?;
    // The lake's text is canonical: ISO dates, `true`/`false`, no null tokens, no padding.
    let rules: Vec<ColumnRule> = spec
        .columns
        .iter()
        .map(|c| {
            let lake = ColumnSpec {
                formats: Vec::new(),
                true_values: None,
                false_values: None,
                null_tokens: Some(Vec::new()),
                pad_width: None,
                max_length: None,
                nullable: true,
                ..c.clone()
            };
            ColumnRule::new(&lake, &[])
        })
        .collect();
    let at: Vec<Option<usize>> = spec
        .columns
        .iter()
        .map(|c| rows.columns.iter().position(|n| n == &c.name))
        .collect();
    let mut p = Profiler::new(
        spec,
        &format!("{} curated file(s) of {}", files.len(), spec.dataset),
    );
    rows.for_each_row::<ParquetReadError>(&vec![true; rows.columns.len()], |_, _, cells| {
        for (i, rule) in rules.iter().enumerate() {
            let raw = match at[i].and_then(|j| cells.get(j)).and_then(|c| c.as_deref()) {
                Some(t) => RawCell::Text(t),
                None => RawCell::Empty,
            };
            match rule.coerce(raw) {
                Ok(v) => p.value(i, &v),
                Err(_) => p.invalid(i),
            }
        }
        p.end_row();
        Ok(())
    })?;
    Ok(p.finish())
}

// ---- drift ----

/// One column that moved past a threshold of the spec's `drift`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Drift {
    pub column: String,
    /// `null_rate`, `distinct` or `range`.
    pub check: String,
    /// What moved, in words: "null rate 90.0 % (previous files 1.2 %)".
    pub message: String,
}

/// The columns of `now` that moved past `spec`'s thresholds against the `previous` profiles of
/// the dataset (newest last; at most `spec.files` of them are used). No previous file, no drift.
pub fn drift(spec: &DriftSpec, now: &Profile, previous: &[Profile]) -> Vec<Drift> {
    let base: Vec<&Profile> = previous.iter().rev().take(spec.files).collect();
    if base.is_empty() {
        return Vec::new();
    }
    let mut out = Vec::new();
    for c in &now.columns {
        if !spec.columns.is_empty() && !spec.columns.contains(&c.name) {
            continue;
        }
        let prev: Vec<&ColumnProfile> = base
            .iter()
            .filter_map(|p| p.columns.iter().find(|o| o.name == c.name))
            .collect();
        if prev.is_empty() {
            continue;
        }
        let k = prev.len() as f64;
        if let Some(t) = spec.null_rate {
            let was = prev.iter().map(|p| p.null_rate()).sum::<f64>() / k;
            let is = c.null_rate();
            if (is - was).abs() > t {
                out.push(Drift {
                    column: c.name.clone(),
                    check: "null_rate".into(),
                    message: format!(
                        "{}: null rate {:.1} % (previous files {:.1} %; threshold ±{:.1} points)",
                        c.name,
                        is * 100.0,
                        was * 100.0,
                        t * 100.0
                    ),
                });
            }
        }
        if let Some(t) = spec.distinct {
            let was = prev.iter().map(|p| p.distinct.value as f64).sum::<f64>() / k;
            let is = c.distinct.value as f64;
            if was > 0.0 && ((is - was) / was).abs() > t {
                out.push(Drift {
                    column: c.name.clone(),
                    check: "distinct".into(),
                    message: format!(
                        "{}: {} distinct values (previous files {:.0} on average; threshold ±{:.0} %)",
                        c.name,
                        c.distinct.value,
                        was,
                        t * 100.0
                    ),
                });
            }
        }
        if let (Some(t), Some((lo, hi))) = (spec.range, c.range) {
            let ranges: Vec<(f64, f64)> = prev.iter().filter_map(|p| p.range).collect();
            if let Some((plo, phi)) = ranges
                .iter()
                .copied()
                .reduce(|a, b| (a.0.min(b.0), a.1.max(b.1)))
            {
                let ty = ColumnType::try_from(c.ty.clone()).unwrap_or(ColumnType::Double);
                let slack = (phi - plo).abs().max(f64::EPSILON) * t;
                if lo < plo - slack || hi > phi + slack {
                    out.push(Drift {
                        column: c.name.clone(),
                        check: "range".into(),
                        message: format!(
                            "{}: values from {} to {} (previous files {} to {}; threshold {:.0} % of that width)",
                            c.name,
                            show(ty, lo),
                            show(ty, hi),
                            show(ty, plo),
                            show(ty, phi),
                            t * 100.0
                        ),
                    });
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: &str) -> TableSpec {
        match serde_json::from_str(json) {
            Ok(s) => s,
            Err(e) => panic!("test spec: {e}"),
        }
    }

    const CREDIT: &str = r#"{"dataset":"t","source":{"pattern":"*.csv"},
        "null_tokens":["","NA"],"primary_key":["id"],
        "columns":[{"name":"id","type":"int","nullable":false},
                   {"name":"income","type":"double"},
                   {"name":"city","type":"string"},
                   {"name":"day","type":"date"}]}"#;

    fn profile(csv: &str) -> Profile {
        match profile_file(&spec(CREDIT), "x.csv", std::io::Cursor::new(csv.as_bytes())) {
            Ok(p) => p,
            Err(e) => panic!("profile: {e}"),
        }
    }

    #[test]
    fn counts_nulls_invalid_values_and_duplicate_keys_exactly() {
        let p = profile(
            "id,income,city,day\n1,10.5,Oslo,2024-01-02\n2,NA,,2024-01-03\n2,x,Oslo,2024-02-30\n3,4,Rome,\n",
        );
        assert_eq!(p.rows, 4);
        let income = &p.columns[1];
        assert_eq!((income.values, income.nulls, income.invalid), (2, 1, 1));
        assert_eq!(income.min.as_deref(), Some("4"));
        assert_eq!(income.max.as_deref(), Some("10.5"));
        assert_eq!(income.mean, Some(7.25));
        let city = &p.columns[2];
        assert_eq!((city.values, city.nulls, city.distinct.value), (3, 1, 2));
        assert_eq!(
            city.top[0],
            TopValue {
                value: "Oslo".into(),
                count: 2
            }
        );
        let day = &p.columns[3];
        assert_eq!((day.values, day.nulls, day.invalid), (2, 1, 1));
        assert_eq!(day.max.as_deref(), Some("2024-01-03"));
        assert_eq!(p.duplicate_keys.map(|d| d.value), Some(1));
    }

    #[test]
    fn rows_without_a_key_are_not_duplicates() {
        let p = profile("id,income,city,day\n,1,a,\n,2,a,\nx,3,a,\n1,4,a,\n1,5,a,\n");
        assert_eq!(p.columns[0].nulls, 2);
        assert_eq!(p.columns[0].invalid, 1);
        assert_eq!(p.duplicate_keys.map(|d| d.value), Some(1));
    }

    #[test]
    fn a_file_the_spec_refuses_is_an_error_and_an_empty_one_has_no_rows() {
        let refused = profile_file(
            &spec(CREDIT),
            "x.csv",
            std::io::Cursor::new(b"id,city\n1,a\n".to_vec()),
        );
        assert!(
            matches!(&refused, Err(ReadError::Rejected(m)) if m.contains("missing")),
            "{refused:?}"
        );
        let empty = profile("id,income,city,day\n");
        assert_eq!(empty.rows, 0);
        assert_eq!(empty.columns.len(), 4);
        assert_eq!(empty.columns[1].values, 0);
    }

    #[test]
    fn big_columns_switch_to_estimates_and_say_so() {
        let mut csv = String::from("id,income,city,day\n");
        for i in 0..100_000u32 {
            csv.push_str(&format!("{i},{},c{},2024-01-01\n", i % 1000, i % 7));
        }
        let p = profile(&csv);
        let id = &p.columns[0];
        assert!(id.distinct.estimated);
        let err = (id.distinct.value as f64 - 100_000.0).abs() / 100_000.0;
        assert!(
            err < 0.03,
            "HyperLogLog estimate {} too far",
            id.distinct.value
        );
        assert!(id.sampled && id.top_approximate);
        // The sampled histogram's counts are scaled back to the column's.
        let total: u64 = id.histogram.iter().map(|b| b.count).sum();
        assert!(
            (total as i64 - 100_000).abs() < 100,
            "histogram total {total}"
        );
        let income = &p.columns[1];
        assert!(!income.distinct.estimated);
        assert_eq!(income.distinct.value, 1000);
        let city = &p.columns[2];
        assert!(!city.top_approximate);
        assert_eq!(city.top.len(), 7);
        assert_eq!(city.top.iter().map(|t| t.count).sum::<u64>(), 100_000);
        assert_eq!(p.duplicate_keys.map(|d| d.value), Some(0));
    }

    #[test]
    fn quantiles_are_exact_on_small_columns() {
        let mut csv = String::from("id,income,city,day\n");
        for i in 1..=100 {
            csv.push_str(&format!("{i},{i},a,2024-01-01\n"));
        }
        let p = profile(&csv);
        let q: Vec<(f64, &str)> = p.columns[1]
            .quantiles
            .iter()
            .map(|q| (q.q, q.value.as_str()))
            .collect();
        assert!(q.contains(&(0.5, "50")) && q.contains(&(0.99, "99")) && q.contains(&(0.01, "1")));
        assert!(!p.columns[1].sampled);
        let sd = p.columns[1].std_dev.unwrap_or_default();
        assert!((sd - 29.011_491).abs() < 1e-5, "std dev {sd}");
    }

    #[test]
    fn a_column_that_suddenly_is_mostly_null_is_drift() {
        let normal = |seed: u32| {
            let mut csv = String::from("id,income,city,day\n");
            for i in 0..200 {
                let income = if (i + seed).is_multiple_of(50) {
                    "NA".to_string()
                } else {
                    format!("{}", 1000 + i)
                };
                csv.push_str(&format!("{i},{income},c{},2024-01-01\n", i % 5));
            }
            profile(&csv).compact()
        };
        let mut bad = String::from("id,income,city,day\n");
        for i in 0..200u32 {
            let income = if i.is_multiple_of(10) {
                format!("{}", 1000 + i)
            } else {
                "NA".into()
            };
            bad.push_str(&format!("{i},{income},c{},2024-01-01\n", i % 5));
        }
        let d = DriftSpec {
            null_rate: Some(0.2),
            distinct: None,
            range: Some(0.5),
            files: 5,
            columns: Vec::new(),
        };
        let previous = vec![normal(0), normal(1), normal(2)];
        assert!(drift(&d, &normal(3), &previous).is_empty());
        let found = drift(&d, &profile(&bad), &previous);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(
            (found[0].column.as_str(), found[0].check.as_str()),
            ("income", "null_rate")
        );
        assert!(found[0].message.contains("90.0 %"), "{}", found[0].message);
        // No previous file: nothing to compare with.
        assert!(drift(&d, &profile(&bad), &[]).is_empty());
        // Values far outside the previous range.
        let far = "id,income,city,day\n1,99999,c1,2024-01-01\n";
        let found = drift(&d, &profile(far), &previous);
        assert_eq!(
            found.iter().map(|d| d.check.as_str()).collect::<Vec<_>>(),
            ["range"]
        );
    }
}
