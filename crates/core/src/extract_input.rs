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

/// Calls `row(cols, i)` for every row of every file, with the named columns.
fn scan(
    files: &[DataFile],
    columns: &[&str],
    mut row: impl FnMut(&[Col], usize, &DataFile) -> Result<(), ExtractError>,
) -> Result<(), ExtractError> {
    debug_assert!(columns.len() <= 4, "scan reads at most 4 columns");
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
                    row(&cols, i, path)?;
                }
            }
        } else {
            // The csv crate, not a SIMD parser: this also reads files written by anyone
            // (`sluice extract --input`), and a quote inside an unquoted field is kept as
            // written (simd-csv, tried, turned `Bank "North"` into `ank "North`).
            let mut rdr = csv::ReaderBuilder::new()
                .has_headers(true)
                .from_reader(opened.into_reader());
            let headers = rdr.byte_headers().map_err(|e| file_err(path, e))?.clone();
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
            // Records are parsed a batch ahead, on a thread of their own (`run_ahead`).
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
                |rec| {
                    let mut cells = [
                        Col::Cell(None),
                        Col::Cell(None),
                        Col::Cell(None),
                        Col::Cell(None),
                    ];
                    for (slot, &i) in cells.iter_mut().zip(&indices) {
                        *slot = Col::Cell(
                            rec.get(i)
                                .and_then(|b| std::str::from_utf8(b).ok())
                                .filter(|s| !s.is_empty()),
                        );
                    }
                    row(&cells[..indices.len()], 0, path)
                },
            )?;
        }
    }
    Ok(())
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
        |c, i, p| {
            let bank = c[0].text(i).ok_or_else(|| bad_row(p, "bank_name"))?;
            let branch = c[1].int(i).ok_or_else(|| bad_row(p, "branch_id"))?;
            let amount = c[2].micros(i).ok_or_else(|| bad_row(p, "amount"))?;
            let month = c[3].month(i).ok_or_else(|| bad_row(p, "loan_date"))?;
            agg.add_loan(bank, branch, amount, month);
            Ok(())
        },
    )
}

/// Adds the operational model's datasets: loans reach their bank through account → client →
/// branch → bank; every branch gets rows, loans or not. `files_of(dataset)`: its data files.
pub fn add_model(
    agg: &mut Aggregator,
    files_of: &dyn Fn(&str) -> Vec<DataFile>,
) -> Result<(), ExtractError> {
    let pairs =
        |dataset: &str, key: &str, value: &str| -> Result<HashMap<i64, i64>, ExtractError> {
            let mut m = HashMap::new();
            scan(&files_of(dataset), &[key, value], |c, i, p| {
                m.insert(
                    c[0].int(i).ok_or_else(|| bad_row(p, key))?,
                    c[1].int(i).ok_or_else(|| bad_row(p, value))?,
                );
                Ok(())
            })?;
            Ok(m)
        };
    let mut banks: HashMap<i64, String> = HashMap::new();
    scan(&files_of("bank"), &["id_bank", "name"], |c, i, p| {
        banks.insert(
            c[0].int(i).ok_or_else(|| bad_row(p, "id_bank"))?,
            c[1].text(i).ok_or_else(|| bad_row(p, "name"))?.to_owned(),
        );
        Ok(())
    })?;
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
    scan(
        &files_of("bank_loans"),
        &["amount", "account_id", "loan_date"],
        |c, i, p| {
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
}
