//! Writers for one output file: typed Parquet (Arrow builders on the caller's thread, encoding
//! on one encoder thread, bounded batches and row groups) and RFC 4180 CSV. Both write nothing that depends on the clock, so the same rows give the
//! same bytes.
//!
//! | lake type | Arrow | Parquet physical / logical |
//! | --- | --- | --- |
//! | string | Utf8 | BYTE_ARRAY / STRING |
//! | int | Int32 | INT32 |
//! | bigint | Int64 | INT64 |
//! | double | Float64 | DOUBLE |
//! | decimal(p,s) | Decimal128(p,s) | INT32 / INT64 / FIXED_LEN_BYTE_ARRAY by precision, DECIMAL(p,s) |
//! | boolean | Boolean | BOOLEAN |
//! | date | Date32 | INT32 / DATE |
//! | timestamp | Timestamp(µs) | INT64 / TIMESTAMP(MICROS, not UTC-adjusted) |

use std::fs::File;
use std::io::{BufWriter, Write as _};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

use arrow_array::builder::{
    ArrayBuilder, BooleanBuilder, Date32Builder, Decimal128Builder, Float64Builder, Int32Builder,
    Int64Builder, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

use crate::coerce::{date_from_days, push_decimal_text, push_iso_date, Value};
use crate::spec::{ColumnSpec, ColumnType};

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("parquet")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error("arrow")]
    Arrow(#[from] arrow_schema::ArrowError),
    #[error("csv")]
    Csv(#[from] csv::Error),
    #[error("the Parquet encoder stopped unexpectedly")]
    EncoderStopped,
}

/// The Arrow type of a lake column type.
pub fn arrow_type(t: ColumnType) -> DataType {
    match t {
        ColumnType::String => DataType::Utf8,
        ColumnType::Int => DataType::Int32,
        ColumnType::BigInt => DataType::Int64,
        ColumnType::Double => DataType::Float64,
        ColumnType::Decimal { precision, scale } => DataType::Decimal128(precision, scale as i8),
        ColumnType::Boolean => DataType::Boolean,
        ColumnType::Date => DataType::Date32,
        ColumnType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
    }
}

/// The Arrow schema of a spec's columns.
pub fn arrow_schema(columns: &[ColumnSpec]) -> SchemaRef {
    Arc::new(Schema::new(
        columns
            .iter()
            .map(|c| Field::new(&c.name, arrow_type(c.ty), c.nullable))
            .collect::<Vec<_>>(),
    ))
}

enum Builder {
    Str(StringBuilder),
    I32(Int32Builder),
    I64(Int64Builder),
    F64(Float64Builder),
    Dec(Decimal128Builder),
    Bool(BooleanBuilder),
    Date(Date32Builder),
    Ts(TimestampMicrosecondBuilder),
}

impl Builder {
    fn new(t: ColumnType, cap: usize) -> Result<Builder, WriteError> {
        Ok(match t {
            ColumnType::String => Builder::Str(StringBuilder::with_capacity(cap, cap * 16)),
            ColumnType::Int => Builder::I32(Int32Builder::with_capacity(cap)),
            ColumnType::BigInt => Builder::I64(Int64Builder::with_capacity(cap)),
            ColumnType::Double => Builder::F64(Float64Builder::with_capacity(cap)),
            ColumnType::Decimal { precision, scale } => Builder::Dec(
                Decimal128Builder::with_capacity(cap)
                    .with_precision_and_scale(precision, scale as i8)?,
            ),
            ColumnType::Boolean => Builder::Bool(BooleanBuilder::with_capacity(cap)),
            ColumnType::Date => Builder::Date(Date32Builder::with_capacity(cap)),
            ColumnType::Timestamp => Builder::Ts(TimestampMicrosecondBuilder::with_capacity(cap)),
        })
    }

    fn append(&mut self, v: &Value<'_>) {
        match (self, v) {
            (Builder::Str(b), Value::Str(s)) => b.append_value(s),
            (Builder::I32(b), Value::Int(x)) => b.append_value(*x),
            (Builder::I64(b), Value::BigInt(x)) => b.append_value(*x),
            (Builder::F64(b), Value::Double(x)) => b.append_value(*x),
            (Builder::Dec(b), Value::Decimal(x)) => b.append_value(*x),
            (Builder::Bool(b), Value::Bool(x)) => b.append_value(*x),
            (Builder::Date(b), Value::Date(x)) => b.append_value(*x),
            (Builder::Ts(b), Value::Timestamp(x)) => b.append_value(*x),
            (b, _) => b.append_null(),
        }
    }

    fn append_null(&mut self) {
        match self {
            Builder::Str(b) => b.append_null(),
            Builder::I32(b) => b.append_null(),
            Builder::I64(b) => b.append_null(),
            Builder::F64(b) => b.append_null(),
            Builder::Dec(b) => b.append_null(),
            Builder::Bool(b) => b.append_null(),
            Builder::Date(b) => b.append_null(),
            Builder::Ts(b) => b.append_null(),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Builder::Str(b) => Arc::new(b.finish()),
            Builder::I32(b) => Arc::new(b.finish()),
            Builder::I64(b) => Arc::new(b.finish()),
            Builder::F64(b) => Arc::new(b.finish()),
            Builder::Dec(b) => Arc::new(b.finish()),
            Builder::Bool(b) => Arc::new(b.finish()),
            Builder::Date(b) => Arc::new(b.finish()),
            Builder::Ts(b) => Arc::new(b.finish()),
        }
    }

    fn len(&self) -> usize {
        match self {
            Builder::Str(b) => b.len(),
            Builder::I32(b) => b.len(),
            Builder::I64(b) => b.len(),
            Builder::F64(b) => b.len(),
            Builder::Dec(b) => b.len(),
            Builder::Bool(b) => b.len(),
            Builder::Date(b) => b.len(),
            Builder::Ts(b) => b.len(),
        }
    }
}

/// The Parquet encoder thread: owns every open Parquet file of one ingest, encodes the
/// batches it is sent in the order they were sent (so the bytes are deterministic), and keeps
/// the encoded-but-unwritten bytes across files under a budget by closing the largest open
/// row group early. Reading and coercion go on meanwhile on the caller's thread.
pub struct ParquetEncoder {
    tx: Option<SyncSender<Job>>,
    handle: Option<JoinHandle<Result<(), WriteError>>>,
    opened: usize,
}

enum Job {
    Open(PathBuf, SchemaRef, Box<Settings>),
    Batch(usize, RecordBatch),
    /// Closes one file (its footer written, the file flushed), then says so.
    Close(usize, SyncSender<Result<(), String>>),
}

impl ParquetEncoder {
    pub fn start(memory_budget_bytes: usize) -> ParquetEncoder {
        // A short queue: the reader may run at most a few batches ahead of the encoder.
        let (tx, rx) = sync_channel::<Job>(4);
        let handle = std::thread::spawn(move || encode_jobs(rx, memory_budget_bytes));
        ParquetEncoder {
            tx: Some(tx),
            handle: Some(handle),
            opened: 0,
        }
    }

    /// Opens a new file; returns its handle for [`ParquetPart`]. `random_keys`: see
    /// [`writer_properties`].
    pub fn open(
        &mut self,
        path: PathBuf,
        schema: SchemaRef,
        row_group_rows: usize,
        random_keys: &[&str],
    ) -> Result<usize, WriteError> {
        self.send(Job::Open(
            path,
            schema,
            Box::new(Settings {
                row_group_rows,
                random_keys: random_keys.iter().map(|k| (*k).to_owned()).collect(),
            }),
        ))?;
        self.opened += 1;
        Ok(self.opened - 1)
    }

    fn send(&mut self, job: Job) -> Result<(), WriteError> {
        let sent = match &self.tx {
            Some(tx) => tx.send(job).is_ok(),
            None => false,
        };
        if sent {
            Ok(())
        } else {
            // The encoder stopped: its own error says why.
            Err(self.join().err().unwrap_or(WriteError::EncoderStopped))
        }
    }

    fn join(&mut self) -> Result<(), WriteError> {
        self.tx = None;
        match self.handle.take() {
            Some(h) => h.join().unwrap_or(Err(WriteError::EncoderStopped)),
            None => Ok(()),
        }
    }

    /// Closes file `file` now and waits until it is complete on disk.
    fn close(&mut self, file: usize) -> Result<(), WriteError> {
        let (tx, rx) = sync_channel(1);
        self.send(Job::Close(file, tx))?;
        match rx.recv() {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(WriteError::Io(std::io::Error::other(e))),
            Err(_) => Err(self.join().err().unwrap_or(WriteError::EncoderStopped)),
        }
    }

    /// Waits until every file is encoded and closed.
    pub fn finish(mut self) -> Result<(), WriteError> {
        self.join()
    }
}

impl Drop for ParquetEncoder {
    fn drop(&mut self) {
        let _ = self.join();
    }
}

/// What a file's writer is made from, once its first batch shows what the columns hold.
struct Settings {
    row_group_rows: usize,
    random_keys: Vec<String>,
}

/// A file of the encoder thread.
enum Slot {
    /// Created, waiting for its first batch to choose each column's encoding.
    Waiting(BufWriter<File>, SchemaRef, Box<Settings>),
    Open(Box<ArrowWriter<BufWriter<File>>>),
    /// Closed (handles are indexes, so the slot stays).
    Closed,
}

impl Slot {
    /// The open writer, made now if the file was waiting: `first` (its first batch, if any)
    /// decides which columns go without a dictionary ([`plain_columns`]).
    fn writer(
        &mut self,
        first: Option<&RecordBatch>,
    ) -> Result<&mut ArrowWriter<BufWriter<File>>, WriteError> {
        if let Slot::Waiting(..) = self {
            let Slot::Waiting(file, schema, settings) = std::mem::replace(self, Slot::Closed)
            else {
                return Err(WriteError::EncoderStopped);
            };
            let plain = first.map(plain_columns).unwrap_or_default();
            let props = writer_properties(settings.row_group_rows, &settings.random_keys, &plain);
            *self = Slot::Open(Box::new(ArrowWriter::try_new(file, schema, Some(props))?));
        }
        match self {
            Slot::Open(w) => Ok(w),
            _ => Err(WriteError::EncoderStopped),
        }
    }

    fn memory_size(&self) -> usize {
        match self {
            Slot::Open(w) => w.memory_size(),
            _ => 0,
        }
    }
}

fn encode_jobs(rx: Receiver<Job>, budget: usize) -> Result<(), WriteError> {
    let mut files: Vec<Slot> = Vec::new();
    for job in rx {
        match job {
            Job::Open(path, schema, settings) => {
                let file = BufWriter::with_capacity(1 << 16, File::create(&path)?);
                files.push(Slot::Waiting(file, schema, settings));
            }
            Job::Batch(i, batch) => {
                let Some(slot) = files.get_mut(i) else {
                    return Err(WriteError::EncoderStopped);
                };
                slot.writer(Some(&batch))?.write(&batch)?;
                loop {
                    let total: usize = files.iter().map(Slot::memory_size).sum();
                    let largest = files
                        .iter_mut()
                        .max_by_key(|f| f.memory_size())
                        .filter(|f| f.memory_size() > 0);
                    match largest {
                        Some(f) if total > budget => f.writer(None)?.flush()?,
                        _ => break,
                    }
                }
            }
            Job::Close(i, done) => {
                let closed = match files.get_mut(i) {
                    Some(slot) => close(slot).map_err(|e| e.to_string()),
                    None => Err("no such open file".to_owned()),
                };
                let _ = done.send(closed);
            }
        }
    }
    // The files still open are closed at the end of the input all at once (each one's last
    // row group encoded, its footer written): two threads share them.
    let half = files.len() / 2;
    let (first, second) = files.split_at_mut(half);
    std::thread::scope(|s| {
        let other = s.spawn(|| first.iter_mut().try_for_each(close));
        let mine = second.iter_mut().try_for_each(close);
        other
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            .and(mine)
    })
}

/// Writes a file's footer and flushes it (a file that got no batch is still a valid, empty
/// Parquet file); the slot is then closed.
fn close(slot: &mut Slot) -> Result<(), WriteError> {
    if let Slot::Closed = slot {
        return Ok(());
    }
    slot.writer(None)?;
    if let Slot::Open(w) = std::mem::replace(slot, Slot::Closed) {
        let mut file = w.into_inner()?;
        std::io::Write::flush(&mut file)?;
    }
    Ok(())
}

/// The columns of a file's first batch whose values are mostly distinct (more than three in
/// four of at least [`PLAIN_SAMPLE`] non-NULL values): ids, amounts, free text. A dictionary
/// of such a column is about as large as the column itself, and the indexes come on top, so
/// it costs the encoder a hash lookup per value and makes the file larger (the 1M-row loans
/// ingest: files 20 % smaller without it on loan_id, customer_id and amount). Those columns
/// are written plain, keeping their statistics. Decided from the data alone, so the same rows
/// give the same bytes.
fn plain_columns(batch: &RecordBatch) -> Vec<String> {
    batch
        .schema()
        .fields()
        .iter()
        .zip(batch.columns())
        .filter(|(_, a)| mostly_distinct(a.as_ref()))
        .map(|(f, _)| f.name().clone())
        .collect()
}

/// Non-NULL values a column needs in a file's first batch to be judged.
const PLAIN_SAMPLE: usize = 256;

fn mostly_distinct(a: &dyn arrow_array::Array) -> bool {
    use arrow_array::cast::AsArray;
    use arrow_array::types::{
        Date32Type, Decimal128Type, Float64Type, Int32Type, Int64Type, TimestampMicrosecondType,
    };
    fn distinct<T: std::hash::Hash + Eq>(values: impl Iterator<Item = T>) -> usize {
        values
            .collect::<std::collections::HashSet<T, foldhash::fast::FixedState>>()
            .len()
    }
    let n = a.len() - a.null_count();
    if n < PLAIN_SAMPLE {
        return false;
    }
    let d = match a.data_type() {
        DataType::Utf8 => distinct(a.as_string::<i32>().iter().flatten()),
        DataType::Int32 => distinct(a.as_primitive::<Int32Type>().iter().flatten()),
        DataType::Int64 => distinct(a.as_primitive::<Int64Type>().iter().flatten()),
        DataType::Date32 => distinct(a.as_primitive::<Date32Type>().iter().flatten()),
        DataType::Decimal128(..) => distinct(a.as_primitive::<Decimal128Type>().iter().flatten()),
        DataType::Timestamp(TimeUnit::Microsecond, None) => distinct(
            a.as_primitive::<TimestampMicrosecondType>()
                .iter()
                .flatten(),
        ),
        DataType::Float64 => distinct(
            a.as_primitive::<Float64Type>()
                .iter()
                .flatten()
                .map(f64::to_bits),
        ),
        _ => return false,
    };
    d * 4 > n * 3
}

/// One Parquet file being filled: rows are appended to Arrow builders here, and every full
/// batch goes to the [`ParquetEncoder`].
pub struct ParquetPart {
    rel: String,
    schema: SchemaRef,
    builders: Vec<Builder>,
    file: usize,
    batch_rows: usize,
    /// Rows the current batch is handed over at: `batch_rows`, except the first batch of a
    /// staggered file ([`ParquetPart::staggered`]).
    flush_at: usize,
    rows: u64,
}

/// Writer settings every Parquet file of the lake shares.
///
/// `random_keys` names the columns whose values are keys hashed from natural keys (v5 UUIDs,
/// uniformly spread): they get no dictionary, since next to no value repeats, and no
/// statistics, since the minimum and maximum of a page or row group of random keys span
/// nearly the whole range and let a reader skip nothing. Both cost the encoder time on every
/// value for nothing (at 200k Aspen borrowers about a tenth of normalize's CPU). `plain` names
/// columns that get no dictionary but keep their statistics (see [`plain_columns`]).
pub fn writer_properties(
    row_group_rows: usize,
    random_keys: &[String],
    plain: &[String],
) -> WriterProperties {
    let mut props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(row_group_rows.max(1)))
        .set_created_by("sluice".to_string());
    for column in plain {
        props = props.set_column_dictionary_enabled(ColumnPath::from(column.as_str()), false);
    }
    for column in random_keys {
        let path = ColumnPath::from(column.as_str());
        props = props
            .set_column_dictionary_enabled(path.clone(), false)
            .set_column_statistics_enabled(path, EnabledStatistics::None);
    }
    props.build()
}

impl ParquetPart {
    /// A new file of `columns`; `random_keys`: see [`writer_properties`].
    pub fn create(
        encoder: &mut ParquetEncoder,
        path: &Path,
        rel: String,
        columns: &[ColumnSpec],
        batch_rows: usize,
        row_group_rows: usize,
        random_keys: &[&str],
    ) -> Result<ParquetPart, WriteError> {
        let schema = arrow_schema(columns);
        let builders = columns
            .iter()
            .map(|c| Builder::new(c.ty, batch_rows))
            .collect::<Result<_, _>>()?;
        let file = encoder.open(
            path.to_path_buf(),
            schema.clone(),
            row_group_rows,
            random_keys,
        )?;
        Ok(ParquetPart {
            rel,
            schema,
            builders,
            file,
            batch_rows: batch_rows.max(1),
            flush_at: batch_rows.max(1),
            rows: 0,
        })
    }

    /// Adds a row; a full batch is handed to the encoder.
    pub fn push(
        &mut self,
        encoder: &mut ParquetEncoder,
        values: &[Value<'_>],
    ) -> Result<(), WriteError> {
        for (b, v) in self.builders.iter_mut().zip(values) {
            b.append(v);
        }
        self.rows += 1;
        if self
            .builders
            .first()
            .is_some_and(|b| b.len() >= self.flush_at)
        {
            self.flush(encoder)?;
        }
        Ok(())
    }

    /// Hands over this file's first batch early, at `(8 - phase % 8) / 8` of a batch. Files
    /// of one ingest fill at about the same pace (a row per partition in turn), so without
    /// this they all hand over their batches at once, and the encoder's short queue stops
    /// the coercion until it has worked through the burst.
    pub fn staggered(mut self, phase: usize) -> ParquetPart {
        self.flush_at = (self.batch_rows - (phase % 8) * self.batch_rows / 8).max(1);
        self
    }

    /// Hands any buffered rows to the encoder.
    pub fn flush(&mut self, encoder: &mut ParquetEncoder) -> Result<(), WriteError> {
        self.flush_at = self.batch_rows;
        if self.builders.first().is_none_or(|b| b.len() == 0) {
            return Ok(());
        }
        let arrays: Vec<ArrayRef> = self.builders.iter_mut().map(Builder::finish).collect();
        let batch = RecordBatch::try_new(self.schema.clone(), arrays)?;
        encoder.send(Job::Batch(self.file, batch))
    }

    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// The file's path relative to the output root.
    pub fn rel(&self) -> &str {
        &self.rel
    }

    /// Writes the buffered rows and closes the file now (complete on disk when this returns).
    pub fn close(mut self, encoder: &mut ParquetEncoder) -> Result<String, WriteError> {
        self.flush(encoder)?;
        encoder.close(self.file)?;
        Ok(self.rel)
    }
}

/// One CSV file being written: a header row, `"` quoting when needed, NULL as an empty field.
pub struct CsvPart {
    rel: String,
    types: Vec<ColumnType>,
    out: BufWriter<File>,
    /// The record being written.
    line: String,
    rows: u64,
}

impl CsvPart {
    pub fn create(path: &Path, rel: String, columns: &[ColumnSpec]) -> Result<CsvPart, WriteError> {
        let mut part = CsvPart {
            rel,
            types: columns.iter().map(|c| c.ty).collect(),
            out: BufWriter::with_capacity(1 << 16, File::create(path)?),
            line: String::new(),
            rows: 0,
        };
        for (i, c) in columns.iter().enumerate() {
            if i > 0 {
                part.line.push(',');
            }
            push_csv_field(&mut part.line, "", &c.name);
        }
        part.end_record()?;
        Ok(part)
    }

    pub fn push(&mut self, values: &[Value<'_>]) -> Result<(), WriteError> {
        self.line.clear();
        for (i, (v, t)) in values.iter().zip(&self.types).enumerate() {
            if i > 0 {
                self.line.push(',');
            }
            match v {
                Value::Str(s) => push_text_field(&mut self.line, s),
                // Numbers, dates, timestamps and booleans never hold a comma, a quote or a
                // line end.
                _ => push_value_text(&mut self.line, v, *t),
            }
        }
        self.end_record()?;
        self.rows += 1;
        Ok(())
    }

    /// Ends the record in `line` and writes it. A record of one empty field is written `""`,
    /// not as an empty line (which readers skip), as the csv crate writes it.
    fn end_record(&mut self) -> Result<(), WriteError> {
        if self.line.is_empty() {
            self.line.push_str("\"\"");
        }
        self.line.push('\n');
        self.out.write_all(self.line.as_bytes())?;
        self.line.clear();
        Ok(())
    }

    pub fn rows(&self) -> u64 {
        self.rows
    }

    pub fn finish(mut self) -> Result<String, WriteError> {
        self.out.flush()?;
        Ok(self.rel)
    }
}

/// A text cell as one CSV field, with a leading `'` when a spreadsheet opening it would run it
/// as a formula (OWASP's CSV injection advice): the ingest's CSV outputs and the extract's files.
pub fn push_text_field(line: &mut String, text: &str) {
    let prefix = if starts_like_formula(text) { "'" } else { "" };
    push_csv_field(line, prefix, text);
}

/// `prefix` (plain text: no comma, quote or line end) and `text` as one CSV field, quoted only
/// when it must be (a comma, a quote or a line end inside; quotes doubled): the csv crate's
/// `QuoteStyle::Necessary`, byte for byte.
pub fn push_csv_field(line: &mut String, prefix: &str, text: &str) {
    let bytes = text.as_bytes();
    let special = memchr::memchr3(b',', b'"', b'\n', bytes).is_some()
        || memchr::memchr(b'\r', bytes).is_some();
    debug_assert!(memchr::memchr3(b',', b'"', b'\n', prefix.as_bytes()).is_none());
    if !special {
        line.push_str(prefix);
        line.push_str(text);
        return;
    }
    line.push('"');
    line.push_str(prefix);
    let mut from = 0;
    for q in memchr::memchr_iter(b'"', bytes) {
        // Up to and with the quote, then the quote again (indices of an ASCII byte are char
        // boundaries).
        line.push_str(&text[from..=q]);
        line.push('"');
        from = q + 1;
    }
    line.push_str(&text[from..]);
    line.push('"');
}

/// A lake value as Sluice writes it as text (CSV outputs, profiles): NULL as nothing, dates
/// ISO, timestamps with microseconds, decimals at their scale.
pub fn push_value_text(f: &mut String, v: &Value<'_>, t: ColumnType) {
    use std::fmt::Write as _;
    // Writing into a String cannot fail.
    let _ = match v {
        Value::Null => Ok(()),
        Value::Str(s) => {
            f.push_str(s);
            Ok(())
        }
        Value::Int(x) => {
            f.push_str(itoa::Buffer::new().format(*x));
            Ok(())
        }
        Value::BigInt(x) => {
            f.push_str(itoa::Buffer::new().format(*x));
            Ok(())
        }
        Value::Double(x) => write!(f, "{x}"),
        Value::Decimal(x) => {
            let scale = match t {
                ColumnType::Decimal { scale, .. } => scale,
                _ => 0,
            };
            push_decimal_text(f, *x, scale);
            Ok(())
        }
        Value::Bool(b) => write!(f, "{b}"),
        Value::Date(d) => {
            if let Some(day) = date_from_days(*d) {
                push_iso_date(f, day);
            }
            Ok(())
        }
        Value::Timestamp(us) => match chrono::DateTime::from_timestamp_micros(*us) {
            Some(ts) => write!(f, "{}", ts.naive_utc().format("%Y-%m-%d %H:%M:%S%.6f")),
            None => Ok(()),
        },
    };
}

/// True when a spreadsheet opening the cell would run it as a formula (`=`, `+`, `-`, `@`, tab,
/// carriage return first).
pub fn starts_like_formula(cell: &str) -> bool {
    matches!(
        cell.as_bytes().first(),
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r')
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_and_numbers_are_written_as_the_csv_crate_and_fmt_write_them() {
        let texts = [
            "",
            "plain",
            "a,b",
            "say \"hi\"",
            "\"",
            "line\nend",
            "cr\r",
            "=SUM(A1)",
            "ñandú 日本",
            " spaced ",
            "''",
            "tab\tin",
        ];
        for prefix in ["", "'", "'x"] {
            for t in texts {
                let mut ours = String::new();
                push_csv_field(&mut ours, prefix, t);
                let mut w = csv::WriterBuilder::new().from_writer(Vec::new());
                w.write_field(format!("{prefix}{t}")).unwrap();
                w.write_field("x").unwrap();
                w.write_record(None::<&[u8]>).unwrap();
                let theirs = String::from_utf8(w.into_inner().unwrap()).unwrap();
                assert_eq!(format!("{ours},x\n"), theirs, "{prefix:?} {t:?}");
            }
        }
        for v in [
            0i128,
            5,
            -5,
            99,
            100,
            12_345,
            -12_345,
            i128::from(i64::MAX),
            i128::MIN + 1,
        ] {
            for scale in [0u8, 1, 2, 6, 30] {
                let mut ours = String::new();
                crate::coerce::push_decimal_text(&mut ours, v, scale);
                let w = usize::from(scale) + 1;
                let mut want = format!("{:0>w$}", v.unsigned_abs());
                if scale > 0 {
                    want.insert(want.len() - usize::from(scale), '.');
                }
                if v < 0 {
                    want.insert(0, '-');
                }
                assert_eq!(ours, want, "{v} at scale {scale}");
            }
        }
        for v in [0i64, -1, 7, i64::MIN, i64::MAX] {
            let mut ours = String::new();
            push_value_text(&mut ours, &Value::BigInt(v), ColumnType::BigInt);
            assert_eq!(ours, v.to_string());
        }
    }

    #[test]
    fn a_csv_part_of_one_column_writes_an_empty_value_as_two_quotes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("one.csv");
        let columns: Vec<ColumnSpec> =
            serde_json::from_str(r#"[{"name": "note", "type": "string"}]"#).unwrap();
        let mut part = CsvPart::create(&path, "one.csv".into(), &columns).unwrap();
        part.push(&[Value::Null]).unwrap();
        part.push(&[Value::Str("a,b".into())]).unwrap();
        part.push(&[Value::Str("-1".into())]).unwrap();
        part.finish().unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "note\n\"\"\n\"a,b\"\n'-1\n"
        );
    }
}
