//! Reading the extract's input: a flat loans file (CSV or Parquet with `bank_name`,
//! `branch_id`, `amount`, `loan_date`), or a folder written by `sluice ingest` / the lake
//! layout (`data/<dataset>/**`), either flat (`data/loans`) or the group's operational model
//! (`data/bank_loans` → `account` → `client` → `branch` → `bank`, as its ERD says).

use std::collections::HashMap;
use std::path::Path;

pub use crate::read::files::DataFile;

use arrow_array::cast::AsArray;
use arrow_array::types::{Int16Type, Int32Type, Int64Type, Int8Type};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::DataType;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ProjectionMask;

use crate::coerce::parse_decimal;
use crate::extract::{Aggregator, Month, SCALE};
use crate::read::ahead::{run_ahead, Ahead, Stopped};
use crate::read::files::Opened;
use crate::read::split::guess_cuts;
use parquet::file::reader::Length;

#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    #[error("{0}")]
    Input(String),
    #[error("{path}: {message}")]
    File { path: String, message: String },
}

impl From<Stopped> for ExtractError {
    fn from(_: Stopped) -> ExtractError {
        ExtractError::Input("the aggregation stopped".into())
    }
}

fn file_err(file: &DataFile, message: impl std::fmt::Display) -> ExtractError {
    ExtractError::File {
        path: file.name(),
        message: message.to_string(),
    }
}

/// Every `.parquet` and `.csv` file under `dir`, sorted.
fn data_files(dir: &Path) -> Vec<DataFile> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("parquet" | "csv")
            ) {
                out.push(p);
            }
        }
    }
    out.sort();
    out.into_iter().map(DataFile::Local).collect()
}

/// A column of one batch, read as whatever the extract needs.
#[derive(Clone, Copy)]
enum Col<'a> {
    Arrow(&'a ArrayRef),
    /// A CSV cell (empty cells are `None`); the row index is ignored.
    Cell(Option<&'a str>),
}

fn days_to_month(days: i64) -> Month {
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    Month::new(y as i32, m as u32)
}

impl<'a> Col<'a> {
    fn text(&self, i: usize) -> Option<&'a str> {
        match *self {
            Col::Cell(v) => v,
            Col::Arrow(a) => {
                if a.is_null(i) {
                    return None;
                }
                match a.data_type() {
                    DataType::Utf8 => Some(a.as_string::<i32>().value(i)),
                    DataType::LargeUtf8 => Some(a.as_string::<i64>().value(i)),
                    DataType::Utf8View => Some(a.as_string_view().value(i)),
                    _ => None,
                }
            }
        }
    }

    fn int(&self, i: usize) -> Option<i64> {
        match self {
            Col::Cell(v) => v.and_then(|s| s.trim().parse().ok()),
            Col::Arrow(a) => {
                if a.is_null(i) {
                    return None;
                }
                match a.data_type() {
                    DataType::Int64 => Some(a.as_primitive::<Int64Type>().value(i)),
                    DataType::Int32 => Some(a.as_primitive::<Int32Type>().value(i) as i64),
                    DataType::Int16 => Some(a.as_primitive::<Int16Type>().value(i) as i64),
                    DataType::Int8 => Some(a.as_primitive::<Int8Type>().value(i) as i64),
                    DataType::Decimal128(_, 0) => a
                        .as_primitive::<arrow_array::types::Decimal128Type>()
                        .value(i)
                        .try_into()
                        .ok(),
                    _ => self.text(i).and_then(|s| s.trim().parse().ok()),
                }
            }
        }
    }

    fn micros(&self, i: usize) -> Option<i128> {
        let from_text = |s: &str| parse_decimal(s.trim(), 38, SCALE as u8).ok();
        match self {
            Col::Cell(v) => v.and_then(from_text),
            Col::Arrow(a) => {
                if a.is_null(i) {
                    return None;
                }
                match a.data_type() {
                    DataType::Decimal128(_, s) => {
                        let v = a
                            .as_primitive::<arrow_array::types::Decimal128Type>()
                            .value(i);
                        let s = *s as i32;
                        if s <= SCALE as i32 {
                            v.checked_mul(10i128.pow((SCALE as i32 - s) as u32))
                        } else {
                            None
                        }
                    }
                    DataType::Float64 => {
                        let f = a.as_primitive::<arrow_array::types::Float64Type>().value(i);
                        f.is_finite().then(|| (f * 1e6).round() as i128)
                    }
                    DataType::Int64 | DataType::Int32 | DataType::Int16 | DataType::Int8 => {
                        self.int(i).map(|v| v as i128 * 1_000_000)
                    }
                    _ => self.text(i).and_then(from_text),
                }
            }
        }
    }

    fn month(&self, i: usize) -> Option<Month> {
        match self {
            Col::Cell(v) => v.and_then(|s| Month::of_date(s.trim().as_bytes())),
            Col::Arrow(a) => {
                if a.is_null(i) {
                    return None;
                }
                match a.data_type() {
                    DataType::Date32 => Some(days_to_month(
                        a.as_primitive::<arrow_array::types::Date32Type>().value(i) as i64,
                    )),
                    DataType::Date64 => Some(days_to_month(
                        a.as_primitive::<arrow_array::types::Date64Type>()
                            .value(i)
                            .div_euclid(86_400_000),
                    )),
                    DataType::Timestamp(unit, _) => {
                        let v = match unit {
                            arrow_schema::TimeUnit::Second => {
                                a.as_primitive::<arrow_array::types::TimestampSecondType>()
                                    .value(i)
                                    * 1_000_000
                            }
                            arrow_schema::TimeUnit::Millisecond => {
                                a.as_primitive::<arrow_array::types::TimestampMillisecondType>()
                                    .value(i)
                                    * 1000
                            }
                            arrow_schema::TimeUnit::Microsecond => a
                                .as_primitive::<arrow_array::types::TimestampMicrosecondType>()
                                .value(i),
                            arrow_schema::TimeUnit::Nanosecond => {
                                a.as_primitive::<arrow_array::types::TimestampNanosecondType>()
                                    .value(i)
                                    / 1000
                            }
                        };
                        Some(days_to_month(v.div_euclid(86_400_000_000)))
                    }
                    _ => self
                        .text(i)
                        .and_then(|s| Month::of_date(s.trim().as_bytes())),
                }
            }
        }
    }
}

/// Dictionary-encoded strings → plain strings (Parquet writers use dictionaries for names).
fn arrow_cast_dict(a: &ArrayRef) -> Option<ArrayRef> {
    let DataType::Dictionary(_, value) = a.data_type() else {
        return None;
    };
    if **value != DataType::Utf8 {
        return None;
    }
    let dict = a.as_any_dictionary_opt()?;
    let keys = dict.normalized_keys();
    let values = dict.values().as_string::<i32>();
    let out: arrow_array::StringArray = keys
        .iter()
        .enumerate()
        .map(|(row, k)| (!a.is_null(row)).then(|| values.value(*k)))
        .collect();
    Some(std::sync::Arc::new(out))
}

/// What a scan does with the rows: `row` adds one to a state, which starts `fresh()` for each
/// part of a CSV file read at once; `merge` folds the parts' states in file order.
struct Fold<'f, S> {
    fresh: &'f (dyn Fn() -> S + Sync),
    merge: &'f (dyn Fn(&mut S, S) + Sync),
    #[allow(clippy::type_complexity)]
    row: &'f (dyn Fn(&mut S, &[Col], usize, &DataFile) -> Result<(), ExtractError> + Sync),
}

/// A CSV file is read in parts at once when each part gets at least this many bytes.
const PART_BYTES: u64 = 8 << 20;

/// Adds every row of every file, with the named columns, to `state`.
fn scan<S: Send>(
    files: &[DataFile],
    columns: &[&str],
    state: &mut S,
    fold: &Fold<S>,
) -> Result<(), ExtractError> {
    debug_assert!(columns.len() <= 4, "scan reads at most 4 columns");
    let cores = crate::cores();
    for path in files {
        let opened = path.open().map_err(|e| file_err(path, e))?;
        if path.is_parquet() {
            let f = opened;
            let builder =
                ParquetRecordBatchReaderBuilder::try_new(f).map_err(|e| file_err(path, e))?;
            let schema = builder.schema().clone();
            let mut indices = Vec::new();
            for c in columns {
                let i = schema.index_of(c).map_err(|_| {
                    file_err(
                        path,
                        format!(
                            "no column {c:?} (has {:?})",
                            schema.fields().iter().map(|f| f.name()).collect::<Vec<_>>()
                        ),
                    )
                })?;
                indices.push(i);
            }
            let mask = ProjectionMask::roots(builder.parquet_schema(), indices.clone());
            let reader = builder
                .with_projection(mask)
                .with_batch_size(64 * 1024)
                .build()
                .map_err(|e| file_err(path, e))?;
            for batch in reader {
                let batch: RecordBatch = batch.map_err(|e| file_err(path, e))?;
                let arrays: Vec<ArrayRef> = columns
                    .iter()
                    .map(|c| {
                        batch
                            .column_by_name(c)
                            .cloned()
                            .ok_or_else(|| file_err(path, format!("no column {c:?}")))
                    })
                    .collect::<Result<_, _>>()?;
                // Dictionary-encoded strings become plain strings once per batch.
                let arrays: Vec<ArrayRef> = arrays
                    .into_iter()
                    .map(|a| arrow_cast_dict(&a).unwrap_or(a))
                    .collect();
                let cols: Vec<Col> = arrays.iter().map(Col::Arrow).collect();
                for i in 0..batch.num_rows() {
                    (fold.row)(state, &cols, i, path)?;
                }
            }
        } else {
            let parts = cores
                .min((Length::len(&opened) / PART_BYTES) as usize)
                .clamp(1, 8);
            scan_csv(path, &opened, columns, parts, state, fold)?;
        }
    }
    Ok(())
}

/// One CSV file, in up to `parts` parts read at once (see [`crate::read::split`]); returns how
/// many parts it was read in. Any doubt about a part (a cut the part before did not land on, an
/// error or a record of the wrong width after a cut) and the file is read again from the start
/// in one part, so rows, errors and their positions are those of a reading from start to end.
///
/// The csv crate, not a SIMD parser: this also reads files written by anyone (`sluice extract
/// --input`), and a quote inside an unquoted field is kept as written (simd-csv, tried, turned
/// `Bank "North"` into `ank "North`).
fn scan_csv<S: Send>(
    path: &DataFile,
    opened: &Opened,
    columns: &[&str],
    parts: usize,
    state: &mut S,
    fold: &Fold<S>,
) -> Result<usize, ExtractError> {
    let io = |e: std::io::Error| file_err(path, e);
    let csv_err = |e: csv::Error| file_err(path, e);
    let open = |start: u64, headers: bool| -> Result<_, ExtractError> {
        Ok(csv::ReaderBuilder::new()
            .has_headers(headers)
            .buffer_capacity(64 * 1024)
            .from_reader(opened.reader_at(start).map_err(io)?))
    };
    let mut rdr = open(0, true)?;
    let headers = rdr.byte_headers().map_err(csv_err)?.clone();
    let header_text = |h: &[u8]| {
        String::from_utf8_lossy(h)
            .trim_start_matches('\u{feff}')
            .to_owned()
    };
    let mut indices = Vec::new();
    for c in columns {
        let i = headers
            .iter()
            .position(|h| header_text(h) == *c)
            .ok_or_else(|| file_err(path, format!("no column {c:?}")))?;
        indices.push(i);
    }
    let indices = &indices[..];
    let cuts = if parts > 1 {
        guess_cuts(opened, parts).map_err(io)?
    } else {
        Vec::new()
    };
    if !cuts.is_empty() {
        let ends: Vec<u64> = cuts.iter().copied().chain([u64::MAX]).collect();
        let width = headers.len();
        let (first, rest) = std::thread::scope(|scope| {
            let others: Vec<_> = cuts
                .iter()
                .zip(&ends[1..])
                .map(|(&start, &end)| {
                    scope.spawn(move || -> Option<S> {
                        let mut rdr = open(start, false).ok()?;
                        let part = Part {
                            start,
                            end,
                            width: Some(width),
                        };
                        part.read(&mut rdr, indices, fold, path).ok()?
                    })
                })
                .collect();
            let part = Part {
                start: 0,
                end: ends[0],
                width: None,
            };
            let first = part.read(&mut rdr, indices, fold, path);
            let rest: Vec<Option<S>> = others
                .into_iter()
                .map(|h| h.join().ok().flatten())
                .collect();
            (first, rest)
        });
        // The first part's error is the file's first.
        if let (Some(first), true) = (first?, rest.iter().all(Option::is_some)) {
            (fold.merge)(state, first);
            for part in rest.into_iter().flatten() {
                (fold.merge)(state, part);
            }
            return Ok(ends.len());
        }
        rdr = open(0, true)?;
        rdr.byte_headers().map_err(csv_err)?;
    }
    // One part: records are parsed a batch ahead, on a thread of their own (`run_ahead`).
    let name = path.name();
    run_ahead(
        |ahead: &mut Ahead<csv::ByteRecord>| loop {
            let rec = ahead.next();
            let more = rdr.read_byte_record(rec).map_err(|e| ExtractError::File {
                path: name.clone(),
                message: e.to_string(),
            })?;
            let bytes = rec.as_slice().len();
            if !more {
                ahead.drop_last();
                return Ok(());
            }
            ahead.keep(bytes)?;
        },
        |rec| (fold.row)(state, &cells(rec, indices)[..indices.len()], 0, path),
    )?;
    Ok(1)
}

/// The named columns of a CSV record (an empty field is NULL), in the first `indices.len()`.
fn cells<'r>(rec: &'r csv::ByteRecord, indices: &[usize]) -> [Col<'r>; 4] {
    let mut cells = [Col::Cell(None); 4];
    for (slot, &i) in cells.iter_mut().zip(indices) {
        *slot = Col::Cell(
            rec.get(i)
                .and_then(|b| std::str::from_utf8(b).ok())
                .filter(|s| !s.is_empty()),
        );
    }
    cells
}

/// The records of a CSV file that start in `start..end`, read by a reader opened at `start`.
struct Part {
    start: u64,
    end: u64,
    /// After a cut, the header's width, which every record must have (else the part is in
    /// doubt; the csv crate checks the first part itself).
    width: Option<usize>,
}

impl Part {
    /// The part's state, or `None` when the part is in doubt: its reader did not land on `end`
    /// (the cut after it fell inside a record), or a record had the wrong width.
    fn read<S, R: std::io::Read>(
        &self,
        rdr: &mut csv::Reader<R>,
        indices: &[usize],
        fold: &Fold<S>,
        path: &DataFile,
    ) -> Result<Option<S>, ExtractError> {
        let mut state = (fold.fresh)();
        let mut rec = csv::ByteRecord::new();
        loop {
            if !rdr
                .read_byte_record(&mut rec)
                .map_err(|e| file_err(path, e))?
            {
                return Ok((self.end == u64::MAX).then_some(state));
            }
            let at = self.start + rec.position().map_or(0, csv::Position::byte);
            if at >= self.end {
                return Ok((at == self.end).then_some(state));
            }
            if self.width.is_some_and(|w| w != rec.len()) {
                return Ok(None);
            }
            (fold.row)(&mut state, &cells(&rec, indices)[..indices.len()], 0, path)?;
        }
    }
}

fn bad_row(path: &DataFile, what: &str) -> ExtractError {
    file_err(path, format!("a row without a readable {what}"))
}

/// Whether the flat columns (bank_name, branch_id, amount, loan_date at `idx`) have the types
/// the typed path reads; other files go the general way.
fn fast_path_types(schema: &arrow_schema::Schema, idx: &[usize]) -> bool {
    let ty = |i: usize| schema.field(idx[i]).data_type();
    let text = matches!(
        ty(0),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
    ) || matches!(ty(0), DataType::Dictionary(_, v) if **v == DataType::Utf8);
    let branch = matches!(ty(1), DataType::Int32 | DataType::Int64);
    let amount = matches!(ty(2), DataType::Decimal128(_, s) if *s >= 0 && (*s as u32) <= SCALE);
    let date = matches!(ty(3), DataType::Date32);
    text && branch && amount && date
}

/// A flat Parquet file, column by column with typed arrays (the hot path: one bank lookup per
/// dictionary entry or per change of name, no allocation per row).
fn add_flat_parquet(agg: &mut Aggregator, path: &DataFile) -> Result<bool, ExtractError> {
    let f = path.open().map_err(|e| file_err(path, e))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(f).map_err(|e| file_err(path, e))?;
    let names = ["bank_name", "branch_id", "amount", "loan_date"];
    let mut idx = Vec::new();
    for n in names {
        idx.push(
            builder
                .schema()
                .index_of(n)
                .map_err(|_| file_err(path, format!("no column {n:?}")))?,
        );
    }
    if !fast_path_types(builder.schema(), &idx) {
        return Ok(false);
    }
    let mask = ProjectionMask::roots(builder.parquet_schema(), idx);
    let reader = builder
        .with_projection(mask)
        .with_batch_size(64 * 1024)
        .build()
        .map_err(|e| file_err(path, e))?;
    let unexpected = || file_err(path, "a column changed type between batches");
    for batch in reader {
        let batch = batch.map_err(|e| file_err(path, e))?;
        let col = |n: &str| {
            batch
                .column_by_name(n)
                .cloned()
                .ok_or_else(|| file_err(path, format!("no column {n:?}")))
        };
        let (bank, branch, amount, date) = (
            col("bank_name")?,
            col("branch_id")?,
            col("amount")?,
            col("loan_date")?,
        );
        let rows = batch.num_rows();
        if [&bank, &branch, &amount, &date]
            .iter()
            .any(|a| a.null_count() > 0)
        {
            return Err(file_err(
                path,
                "NULL in bank_name, branch_id, amount or loan_date",
            ));
        }
        // Bank index per row.
        let banks: Vec<u32> = match bank.data_type() {
            DataType::Dictionary(_, v) if **v == DataType::Utf8 => {
                let dict = bank
                    .as_any_dictionary_opt()
                    .ok_or_else(|| file_err(path, "bad dictionary"))?;
                let values = dict.values().as_string::<i32>();
                let ids: Vec<u32> = (0..values.len())
                    .map(|k| agg.bank(values.value(k)))
                    .collect();
                dict.normalized_keys().iter().map(|k| ids[*k]).collect()
            }
            DataType::Utf8 => bank
                .as_string::<i32>()
                .iter()
                .map(|v| agg.bank(v.unwrap_or_default()))
                .collect(),
            DataType::LargeUtf8 => bank
                .as_string::<i64>()
                .iter()
                .map(|v| agg.bank(v.unwrap_or_default()))
                .collect(),
            DataType::Utf8View => bank
                .as_string_view()
                .iter()
                .map(|v| agg.bank(v.unwrap_or_default()))
                .collect(),
            _ => return Err(unexpected()),
        };
        let branches: Vec<i64> = match branch.data_type() {
            DataType::Int32 => branch
                .as_primitive::<Int32Type>()
                .values()
                .iter()
                .map(|v| *v as i64)
                .collect(),
            DataType::Int64 => branch.as_primitive::<Int64Type>().values().to_vec(),
            _ => return Err(unexpected()),
        };
        let months: Vec<Month> = match date.data_type() {
            DataType::Date32 => {
                let mut cache: (i32, Month) = (i32::MIN, Month(0));
                date.as_primitive::<arrow_array::types::Date32Type>()
                    .values()
                    .iter()
                    .map(|d| {
                        if *d != cache.0 {
                            cache = (*d, days_to_month(*d as i64));
                        }
                        cache.1
                    })
                    .collect()
            }
            _ => return Err(unexpected()),
        };
        match amount.data_type() {
            DataType::Decimal128(_, s) if (*s as u32) <= SCALE => {
                let factor = 10i128.pow(SCALE - *s as u32);
                let values = amount
                    .as_primitive::<arrow_array::types::Decimal128Type>()
                    .values();
                for i in 0..rows {
                    agg.add_loan_at(banks[i], branches[i], values[i] * factor, months[i]);
                }
            }
            _ => return Err(unexpected()),
        }
    }
    Ok(true)
}

/// Adds a flat loans file or folder (`bank_name`, `branch_id`, `amount`, `loan_date`).
pub fn add_flat(agg: &mut Aggregator, files: &[DataFile]) -> Result<(), ExtractError> {
    let mut rest = Vec::new();
    for f in files {
        if !(f.is_parquet() && add_flat_parquet(agg, f)?) {
            rest.push(f.clone());
        }
    }
    scan(
        &rest,
        &["bank_name", "branch_id", "amount", "loan_date"],
        agg,
        &Fold {
            fresh: &Aggregator::default,
            merge: &Aggregator::merge,
            row: &|agg, c, i, p| {
                let bank = c[0].text(i).ok_or_else(|| bad_row(p, "bank_name"))?;
                let branch = c[1].int(i).ok_or_else(|| bad_row(p, "branch_id"))?;
                let amount = c[2].micros(i).ok_or_else(|| bad_row(p, "amount"))?;
                let month = c[3].month(i).ok_or_else(|| bad_row(p, "loan_date"))?;
                agg.add_loan(bank, branch, amount, month);
                Ok(())
            },
        },
    )
}

/// Adds the operational model's datasets: loans reach their bank through account → client →
/// branch → bank; every branch gets rows, loans or not. `files_of(dataset)`: its data files.
pub fn add_model(
    agg: &mut Aggregator,
    files_of: &dyn Fn(&str) -> Vec<DataFile>,
) -> Result<(), ExtractError> {
    // A key read twice keeps its last value, as when read from start to end.
    fn later_wins<V>(m: &mut HashMap<i64, V>, later: HashMap<i64, V>) {
        m.extend(later);
    }
    let pairs =
        |dataset: &str, key: &str, value: &str| -> Result<HashMap<i64, i64>, ExtractError> {
            let mut m = HashMap::new();
            let fold = Fold {
                fresh: &HashMap::new,
                merge: &later_wins,
                row: &|m: &mut HashMap<i64, i64>, c, i, p| {
                    m.insert(
                        c[0].int(i).ok_or_else(|| bad_row(p, key))?,
                        c[1].int(i).ok_or_else(|| bad_row(p, value))?,
                    );
                    Ok(())
                },
            };
            scan(&files_of(dataset), &[key, value], &mut m, &fold)?;
            Ok(m)
        };
    let mut banks: HashMap<i64, String> = HashMap::new();
    let fold = Fold {
        fresh: &HashMap::new,
        merge: &later_wins,
        row: &|banks: &mut HashMap<i64, String>, c, i, p| {
            banks.insert(
                c[0].int(i).ok_or_else(|| bad_row(p, "id_bank"))?,
                c[1].text(i).ok_or_else(|| bad_row(p, "name"))?.to_owned(),
            );
            Ok(())
        },
    };
    scan(&files_of("bank"), &["id_bank", "name"], &mut banks, &fold)?;
    let branch_bank = pairs("branch", "id_branch", "bank_id")?;
    let client_branch = pairs("client", "id_client", "branch_id")?;
    let account_client = pairs("account", "id_account", "client_id")?;
    let mut branches: Vec<(&i64, &i64)> = branch_bank.iter().collect();
    branches.sort();
    for (branch, bank) in branches {
        let name = banks.get(bank).ok_or_else(|| {
            ExtractError::Input(format!(
                "branch {branch} names bank {bank}, which is not in the bank dataset"
            ))
        })?;
        agg.add_branch(name, *branch);
    }
    let fold = Fold {
        fresh: &Aggregator::default,
        merge: &Aggregator::merge,
        row: &|agg: &mut Aggregator, c, i, p| {
            let amount = c[0].micros(i).ok_or_else(|| bad_row(p, "amount"))?;
            let account = c[1].int(i).ok_or_else(|| bad_row(p, "account_id"))?;
            let month = c[2].month(i).ok_or_else(|| bad_row(p, "loan_date"))?;
            let broken = |what: String| file_err(p, format!("loan on account {account}: {what}"));
            let client = account_client
                .get(&account)
                .ok_or_else(|| broken("no such account".into()))?;
            let branch = client_branch
                .get(client)
                .ok_or_else(|| broken(format!("no client {client}")))?;
            let bank = branch_bank
                .get(branch)
                .ok_or_else(|| broken(format!("no branch {branch}")))?;
            let name = banks
                .get(bank)
                .ok_or_else(|| broken(format!("no bank {bank}")))?;
            agg.add_loan(name, *branch, amount, month);
            Ok(())
        },
    };
    scan(
        &files_of("bank_loans"),
        &["amount", "account_id", "loan_date"],
        agg,
        &fold,
    )
}

/// Reads `input`: a file (flat loans), or a folder holding `data/<dataset>/` (the model when
/// `data/bank_loans` exists, else `data/loans`), or a folder of flat loan files.
pub fn read_input(input: &Path) -> Result<Aggregator, ExtractError> {
    let mut agg = Aggregator::default();
    if input.is_file() {
        add_flat(&mut agg, &[DataFile::Local(input.to_path_buf())])?;
    } else if input.join("data/bank_loans").is_dir() {
        let data = input.join("data");
        add_model(&mut agg, &|dataset| data_files(&data.join(dataset)))?;
    } else if input.join("data/loans").is_dir() {
        add_flat(&mut agg, &data_files(&input.join("data/loans")))?;
    } else if input.is_dir() {
        add_flat(&mut agg, &data_files(input))?;
    } else {
        return Err(ExtractError::Input(format!(
            "{}: no such file or folder",
            input.display()
        )));
    }
    if agg.loans == 0 {
        return Err(ExtractError::Input(format!(
            "{}: no loans found",
            input.display()
        )));
    }
    Ok(agg)
}

/// Flat loans files (the lake's `data/loans`, read one object at a time by the extract
/// function).
pub fn read_flat(files: &[DataFile]) -> Result<Aggregator, ExtractError> {
    let mut agg = Aggregator::default();
    add_flat(&mut agg, files)?;
    if agg.loans == 0 {
        return Err(ExtractError::Input("no loans found".into()));
    }
    Ok(agg)
}

/// The operational model's datasets as `files_of(dataset)` gives them (the lake, read one
/// object at a time by the extract function).
pub fn read_model(files_of: &dyn Fn(&str) -> Vec<DataFile>) -> Result<Aggregator, ExtractError> {
    let mut agg = Aggregator::default();
    add_model(&mut agg, files_of)?;
    if agg.loans == 0 {
        return Err(ExtractError::Input("no loans found".into()));
    }
    Ok(agg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_map_to_civil_months() {
        assert_eq!(days_to_month(0), Month::new(1970, 1));
        assert_eq!(days_to_month(19_417), Month::new(2023, 3)); // 2023-03-01
        assert_eq!(days_to_month(19_416), Month::new(2023, 2)); // 2023-02-28
        assert_eq!(days_to_month(-1), Month::new(1969, 12));
    }

    #[test]
    fn quoted_fields_line_ends_and_a_bom_read_as_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("loans.csv");
        std::fs::write(
            &path,
            "\u{feff}loan_id,bank_name,branch_id,amount,loan_date,notes\r\n\
             1,\"Beta, Trust\",7,10.50,2023-01-05,\"a \"\"quoted\"\" note,\r\nover two lines\"\r\n\
             2,Aurora,3,1.25,2023-01-31,ñandú 日本語\r\n\
             3,\"Beta, Trust\",7,4.50,2023-02-01,\r\n\
             4,Aurora,3,\" 2.00\",2023-02-28,\"x\"\r\n\
             5,Bank \"North\",9,3.00,2023-02-10,5\" pipe\n",
        )
        .unwrap();
        let agg = read_input(&path).unwrap();
        assert_eq!(agg.loans, 5);
        let got: Vec<(String, String, i64, u64, i128)> = agg
            .files(Month::new(2023, 1), Month::new(2023, 2))
            .iter()
            .flat_map(|f| {
                f.rows.iter().map(|r| {
                    (
                        f.bank_name.clone(),
                        f.month.to_string(),
                        r.branch_id,
                        r.loan_count,
                        r.total_amount,
                    )
                })
            })
            .collect();
        let row = |bank: &str, month: &str, branch, count, micros| {
            (bank.to_owned(), month.to_owned(), branch, count, micros)
        };
        assert_eq!(
            got,
            [
                row("Aurora", "2023-01", 3, 1, 1_250_000),
                row("Aurora", "2023-02", 3, 1, 2_000_000),
                // Quotes inside an unquoted field are kept as written.
                row("Bank \"North\"", "2023-01", 9, 0, 0),
                row("Bank \"North\"", "2023-02", 9, 1, 3_000_000),
                row("Beta, Trust", "2023-01", 7, 1, 10_500_000),
                row("Beta, Trust", "2023-02", 7, 1, 4_500_000),
            ]
        );
    }

    /// Reads `text` as a flat loans CSV in up to `parts` parts: how many it was read in, and
    /// the output (or the error).
    fn in_parts(
        text: &str,
        parts: usize,
    ) -> (usize, Result<Vec<crate::extract::BankMonth>, String>) {
        let path = DataFile::Local("loans.csv".into());
        let opened = Opened::Bytes(bytes::Bytes::from(text.to_owned()));
        let mut agg = Aggregator::default();
        let fold = Fold {
            fresh: &Aggregator::default,
            merge: &Aggregator::merge,
            row: &|agg: &mut Aggregator, c, i, p| {
                let bank = c[0].text(i).ok_or_else(|| bad_row(p, "bank_name"))?;
                let amount = c[1].micros(i).ok_or_else(|| bad_row(p, "amount"))?;
                let month = c[2].month(i).ok_or_else(|| bad_row(p, "loan_date"))?;
                agg.add_loan(bank, 1, amount, month);
                Ok(())
            },
        };
        let columns = ["bank_name", "amount", "loan_date"];
        match scan_csv(&path, &opened, &columns, parts, &mut agg, &fold) {
            Ok(n) => {
                let (Some(first), Some(last)) = (agg.first_month(), agg.last_month()) else {
                    return (n, Ok(Vec::new()));
                };
                (n, Ok(agg.files(first, last)))
            }
            Err(e) => (0, Err(e.to_string())),
        }
    }

    /// `rows` loans, the bank names quoted (some over two lines), with `end` as line end and
    /// now and then a blank line.
    fn loans(rows: usize, end: &str, note_lines: usize) -> String {
        let mut text = format!("\u{feff}bank_name,amount,loan_date,note{end}");
        for r in 0..rows {
            let bank = ["\"Beta, Trust\"", "Aurora", "\"Cobalt\nBank\""][r % 3];
            let note = vec!["some words"; note_lines].join("\n");
            text += &format!(
                "{bank},{}.{:02},2023-{:02}-01,\"{note}\"{end}",
                r % 97,
                r % 100,
                r % 12 + 1
            );
            if r % 17 == 0 {
                text += end;
            }
        }
        text
    }

    #[test]
    fn a_csv_read_in_parts_adds_up_to_the_same_as_read_from_start_to_end() {
        for end in ["\n", "\r\n", "\r"] {
            for note_lines in [0, 1, 20] {
                let text = loans(500, end, note_lines);
                let (n, whole) = in_parts(&text, 1);
                assert_eq!(n, 1);
                let whole = whole.unwrap();
                assert_eq!(whole.iter().map(|f| f.rows[0].loan_count).sum::<u64>(), 500);
                let mut used = Vec::new();
                for parts in 2..=7 {
                    let (n, got) = in_parts(&text, parts);
                    assert_eq!(got.as_ref(), Ok(&whole), "{end:?} {note_lines} {parts}");
                    used.push(n);
                }
                match (end, note_lines) {
                    // Bare `\r` ends lines too: cut, but quoted `\n`s put some cuts in doubt.
                    // Nearly every byte is inside a note: the cuts fall there and are refused.
                    (_, 20) => assert!(used.contains(&1), "{end:?}: {used:?}"),
                    // Few bytes are quoted: most cuts hold.
                    _ => assert!(
                        used.iter().filter(|&&n| n > 1).count() >= 4,
                        "{end:?}: {used:?}"
                    ),
                }
            }
        }
    }

    #[test]
    fn a_csv_read_in_parts_fails_as_when_read_from_start_to_end() {
        let good = loans(400, "\n", 0);
        let bad_amount = good.clone() + "Aurora,12x,2023-01-01,\"\"\n";
        let short_row = good.clone() + "Aurora,12\n" + &loans(50, "\n", 0)[34..];
        let bad_quote = good.clone() + "Aurora,1,2023-01-01,\"never closed\n";
        for text in [bad_amount, short_row, bad_quote] {
            let (_, whole) = in_parts(&text, 1);
            for parts in 2..=5 {
                assert_eq!(in_parts(&text, parts).1, whole);
            }
            // Only the unclosed quote reads (as one last long field); the others are errors.
            if !text.ends_with("closed\n") {
                assert!(whole.is_err(), "{whole:?}");
            }
        }
    }
}
