//! Curated Parquet read back as text cells, the way Sluice writes values elsewhere (CSV
//! outputs, quarantine): normalize reads its source datasets and the previous build of each
//! table through this, batch by batch, only the columns it needs.

use std::collections::HashMap;
use std::path::PathBuf;

use super::files::DataFile;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Decimal128Type, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type,
    Int8Type, TimestampMicrosecondType, UInt16Type, UInt32Type, UInt64Type, UInt8Type,
};
use arrow_array::{Array, RecordBatch};
use arrow_schema::{DataType, TimeUnit};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ProjectionMask;

use crate::coerce::{date_from_days, decimal_text, float_text};

/// A curated file that cannot be read (named), or a column of a type Sluice does not write.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {message}")]
pub struct ParquetReadError {
    pub file: String,
    pub message: String,
}

/// The curated files of a dataset, read batch by batch as text cells.
pub struct ParquetRows {
    pub dataset: String,
    /// (file, the name quarantine records give it)
    pub files: Vec<(DataFile, String)>,
    /// Column names of the first file: what the model's references are checked against.
    pub columns: Vec<String>,
    /// The first file, opened (fetched) to read its schema: its first read uses it instead of
    /// opening (fetching) it again.
    first: std::sync::Mutex<Option<super::files::Opened>>,
}

impl ParquetRows {
    /// `names`: what quarantine records call a local file (a scratch copy's lake object).
    pub fn open(
        dataset: &str,
        files: &[DataFile],
        names: &HashMap<PathBuf, String>,
    ) -> Result<ParquetRows, ParquetReadError> {
        let mut files: Vec<(DataFile, String)> = files
            .iter()
            .map(|f| {
                let name = match f {
                    DataFile::Local(p) => names.get(p).cloned(),
                    DataFile::Remote { .. } => None,
                }
                .unwrap_or_else(|| f.name());
                (f.clone(), name)
            })
            .collect();
        files.sort_by_cached_key(|f| f.0.name());
        let (first, _) = files.first().ok_or_else(|| ParquetReadError {
            file: dataset.into(),
            message: "no files".into(),
        })?;
        // The schema is read from the first file's footer only; the file is kept for its read.
        let opened = open(first)?;
        let schema_handle = opened.try_clone_cheap().map_err(|e| read_err(first, e))?;
        let builder = ParquetRecordBatchReaderBuilder::try_new(schema_handle)
            .map_err(|e| read_err(first, e))?;
        let columns = builder
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        Ok(ParquetRows {
            dataset: dataset.into(),
            files,
            columns,
            first: std::sync::Mutex::new(Some(opened)),
        })
    }

    /// Calls `f(file, 1-based row, cells)` for every row, cells in `self.columns` order (a
    /// column a later file lacks is NULL). Only the `wanted` columns are read; the others are
    /// NULL.
    pub fn for_each_row<'a, E: From<ParquetReadError>>(
        &'a self,
        wanted: &[bool],
        mut f: impl FnMut(&'a str, u64, &[Option<String>]) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut cells: Vec<Option<String>> = vec![None; self.columns.len()];
        for (n, (path, name)) in self.files.iter().enumerate() {
            let kept = match n {
                0 => self.first.lock().unwrap_or_else(|p| p.into_inner()).take(),
                _ => None,
            };
            let opened = match kept {
                Some(o) => o,
                None => open(path)?,
            };
            let reader = ParquetRecordBatchReaderBuilder::try_new(opened)
                .and_then(|b| {
                    // Only the wanted columns are decoded (at least one: the row count).
                    let fields = b.schema().fields().clone();
                    let mut roots: Vec<usize> = (0..fields.len())
                        .filter(|&i| {
                            self.columns
                                .iter()
                                .zip(wanted)
                                .any(|(c, w)| *w && c == fields[i].name())
                        })
                        .collect();
                    if roots.is_empty() && !fields.is_empty() {
                        roots.push(0);
                    }
                    let mask = ProjectionMask::roots(b.parquet_schema(), roots);
                    b.with_projection(mask).with_batch_size(4096).build()
                })
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

fn open(file: &DataFile) -> Result<super::files::Opened, ParquetReadError> {
    file.open().map_err(|e| read_err(file, e))
}

fn read_err(file: &DataFile, e: impl std::fmt::Display) -> ParquetReadError {
    ParquetReadError {
        file: file.name(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    fn parquet_bytes(values: &[i64]) -> bytes::Bytes {
        let schema = Arc::new(arrow_schema::Schema::new(vec![arrow_schema::Field::new(
            "id",
            DataType::Int64,
            false,
        )]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(arrow_array::Int64Array::from(values.to_vec()))],
        )
        .unwrap();
        let mut out = Vec::new();
        let mut w = parquet::arrow::ArrowWriter::try_new(&mut out, schema, None).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        bytes::Bytes::from(out)
    }

    #[test]
    fn remote_files_are_fetched_once_each_even_the_first() {
        let fetches = Arc::new(AtomicUsize::new(0));
        let remote = |name: &str, values: &'static [i64]| {
            let f = fetches.clone();
            let body = parquet_bytes(values);
            DataFile::Remote {
                name: name.into(),
                fetch: Arc::new(move || {
                    f.fetch_add(1, Ordering::SeqCst);
                    Ok(body.clone())
                }),
            }
        };
        let files = [
            remote("s3://lake/data/t/a.parquet", &[1, 2]),
            remote("s3://lake/data/t/b.parquet", &[3]),
        ];
        let rows = ParquetRows::open("t", &files, &HashMap::new()).unwrap();
        assert_eq!(rows.columns, ["id"]);
        let mut seen = Vec::new();
        rows.for_each_row::<ParquetReadError>(&[true], |name, n, cells| {
            seen.push((name.to_owned(), n, cells[0].clone()));
            Ok(())
        })
        .unwrap();
        assert_eq!(seen.len(), 3);
        assert_eq!(
            seen[2],
            ("s3://lake/data/t/b.parquet".into(), 1, Some("3".into()))
        );
        assert_eq!(fetches.load(Ordering::SeqCst), 2, "one fetch per file");
    }
}
