//! Ingest one source file: read it, apply its table spec, write the good rows to the lake
//! layout and every rejected row to quarantine, with the reason.
//!
//! Output goes under a caller-owned staging folder:
//! `data/<dataset>/<partition folders>/<stem>-<id>.<ext>` and
//! `quarantine/<dataset>/<stem>-<id>.jsonl`. Names derive from the dataset, the partition and
//! the source (key and version), so the same input gives the same files with the same bytes.
//! The caller publishes the staged files only when this returns `Ok` (write, then publish).

use std::collections::{BTreeMap, HashMap};

use chrono::{Datelike, NaiveDate};
use std::fs::File;
use std::io::{BufWriter, Read, Seek, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::coerce::{ColumnRule, RejectReason, Value};
use crate::read::{self, Limits, ReadError, Row, RowVisitor};
use crate::spec::{
    ExtraColumns, Granularity, HeaderMatch, MissingColumns, OutputFormat, Partitioning,
    SourceFormat, TableSpec,
};
use crate::write::{CsvPart, ParquetEncoder, ParquetPart, WriteError};

/// Where a file came from: used in quarantine records, output names and partitions.
#[derive(Debug, Clone)]
pub struct Source {
    /// How people name the object: `s3://bucket/key`, or a local path.
    pub object: String,
    /// The object key (or file name): matched against specs, read for `yyyy=/mm=/dd=/hh=`.
    pub key: String,
    /// The object version or ETag, when known: part of the output names.
    pub version: Option<String>,
}

/// Partition folders of an output file: (key, value) in folder order.
type Partition = Vec<(String, String)>;

/// Knobs that do not belong in a spec.
#[derive(Debug, Clone)]
pub struct IngestOptions {
    /// Overrides the spec's output format.
    pub format: Option<OutputFormat>,
    /// Rows buffered per partition before they are encoded.
    pub batch_rows: usize,
    /// Largest Parquet row group, in rows.
    pub row_group_rows: usize,
    /// Encoded-but-unwritten Parquet bytes allowed across all partitions; past it the
    /// largest partition's row group is closed.
    pub memory_budget_bytes: usize,
    pub limits: Limits,
    /// Rejected rows written to quarantine with full detail per file; past it, rejections
    /// are only counted (by column and reason, in the report). A format change that rejects
    /// every row must not write a quarantine six times the input.
    pub max_quarantine_records: u64,
    /// Bytes of a rejected row's cells echoed in its record (`raw`); past it the record says
    /// how many cells were left out. A wide header must not be repeated in every record.
    pub max_raw_bytes: usize,
    /// Profile the rows written (the report's compact `profile`: what drift checks compare).
    pub profile: bool,
    /// Rows a data file holds before it is closed and the partition goes on in a new file
    /// (`<stem>_p0002.parquet`, `<stem>_p0003.parquet`, …: after `<stem>.parquet` in key
    /// order); 0: one file per partition. The same input
    /// and setting give the same files.
    pub roll_rows: u64,
    /// Told of each data file closed before the end of the input (the files still open close
    /// at the end, as usual), so it can leave the disk early. Every file is in the report.
    pub on_close: Option<OnClose>,
}

/// See [`IngestOptions::on_close`]; an error stops the ingest.
#[derive(Clone)]
pub struct OnClose(pub std::sync::Arc<OnCloseFn>);

/// What [`OnClose`] calls.
pub type OnCloseFn = dyn Fn(&OutputFile) -> Result<(), String> + Send + Sync;

impl std::fmt::Debug for OnClose {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OnClose")
    }
}

impl Default for IngestOptions {
    fn default() -> Self {
        IngestOptions {
            format: None,
            batch_rows: 4096,
            row_group_rows: 128 * 1024,
            // 24 MiB keeps the CSV → Parquet ingest under 64 MiB peak RSS with 24 partitions
            // open (README, Performance); 32 MiB gave 67 MiB at the same speed.
            memory_budget_bytes: 24 << 20,
            limits: Limits::default(),
            max_quarantine_records: 10_000,
            max_raw_bytes: 16 * 1024,
            profile: false,
            roll_rows: 0,
            on_close: None,
        }
    }
}

/// A file that could not be used at all. Nothing is published for it.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("{object}")]
    Read {
        object: String,
        #[source]
        source: ReadError,
    },
    #[error("{object}: writing output")]
    Write {
        object: String,
        #[source]
        source: WriteError,
    },
}

/// What happened to one file.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct IngestReport {
    pub dataset: String,
    pub source_object: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sheet: Option<String>,
    pub rows_read: u64,
    pub rows_written: u64,
    pub rows_quarantined: u64,
    /// Rejected rows by column and reason.
    pub rejects: Vec<RejectCount>,
    /// Data files, relative to the output root.
    pub outputs: Vec<OutputFile>,
    /// The quarantine file, relative to the output root, when any row was rejected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quarantine: Option<OutputFile>,
    /// The rows written, profiled (compact), when the options asked for it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<crate::profile::Profile>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RejectCount {
    pub column: String,
    pub reason: RejectReason,
    pub rows: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct OutputFile {
    pub path: String,
    /// Partition key/value pairs, in folder order.
    pub partition: Vec<(String, String)>,
    pub rows: u64,
}

/// A source read once, start to end, as it arrives (a download that is never spooled to disk):
/// CSV and header-less change files need nothing more. Only an xlsx workbook seeks (its zip
/// directory is at the end), so it is read from a file; asked to seek, a stream says so
/// instead of pretending ([`SourceFormat::needs_file`]).
pub struct Stream<R>(pub R);

impl<R: Read> Read for Stream<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.read(buf)
    }
}

impl<R> Seek for Stream<R> {
    fn seek(&mut self, _: std::io::SeekFrom) -> std::io::Result<u64> {
        Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "this source is a stream: a workbook is read from a file",
        ))
    }
}

/// Reads `input` per `spec` and writes under `staging`. A panic met on the way (a bug some
/// file provokes) is this file's failure, [`ReadError::Internal`], never a crash that would
/// leave its work item stranded.
pub fn ingest<R: Read + Seek + Send>(
    spec: &TableSpec,
    source: &Source,
    input: R,
    staging: &Path,
    opts: &IngestOptions,
) -> Result<IngestReport, IngestError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        ingest_unguarded(spec, source, input, staging, opts)
    }))
    .unwrap_or_else(|panic| {
        Err(IngestError::Read {
            object: source.object.clone(),
            source: ReadError::from_panic(panic.as_ref()),
        })
    })
}

fn ingest_unguarded<R: Read + Seek + Send>(
    spec: &TableSpec,
    source: &Source,
    input: R,
    staging: &Path,
    opts: &IngestOptions,
) -> Result<IngestReport, IngestError> {
    let read_err = |source_err: ReadError| IngestError::Read {
        object: source.object.clone(),
        source: source_err,
    };
    let format = spec.format_for(&source.key);
    let sheet = match format {
        SourceFormat::Xlsx => Some(
            spec.source
                .sheet
                .as_ref()
                .map(|s| s.to_string())
                .unwrap_or_else(|| "#0".into()),
        ),
        _ => None,
    };
    let source_partition = match spec.partitioning {
        Partitioning::SourcePath => Some(source_path_partition(&source.key).ok_or_else(|| {
            read_err(ReadError::Rejected(
                "the spec partitions by source path, but the key has no yyyy=/mm=/dd=/hh= folders"
                    .into(),
            ))
        })?),
        _ => None,
    };
    let mut ing = Ingestor {
        spec,
        source,
        sheet: sheet.clone(),
        opts,
        format: opts.format.unwrap_or(spec.output),
        staging: staging.to_path_buf(),
        stem: output_stem(source),
        rules: spec
            .columns
            .iter()
            .map(|c| ColumnRule::new(c, &spec.null_tokens))
            .collect(),
        positions: Vec::new(),
        headers: Vec::new(),
        source_partition,
        parts: Vec::new(),
        part_index: HashMap::default(),
        part_seq: HashMap::new(),
        closed: Vec::new(),
        partition_column: match &spec.partitioning {
            Partitioning::Column { column, .. } => {
                spec.columns.iter().position(|c| &c.name == column)
            }
            _ => None,
        },
        scratch: Vec::new(),
        encoder: None,
        quarantine: None,
        rows_read: 0,
        rows_written: 0,
        rejects: BTreeMap::new(),
        quarantine_written: 0,
        error: None,
        line_shift: 0,
        change_log: spec.change_log.as_ref().map(|log| {
            spec.columns
                .iter()
                .position(|c| c.name == log.op_column)
                .unwrap_or(usize::MAX)
        }),
        profiler: opts
            .profile
            .then(|| crate::profile::Profiler::new(spec, &source.object)),
    };
    if format != SourceFormat::Xlsx && spec.source.header_row == 0 {
        // The reader counts the header line it is given; the quarantine reports the file's.
        ing.line_shift = 1;
    }
    let result = read_source(spec, format, input, &opts.limits, &mut ing);
    let write_err = |e: WriteError| IngestError::Write {
        object: source.object.clone(),
        source: e,
    };
    if let Some(e) = ing.error.take() {
        return Err(write_err(e));
    }
    result.map_err(read_err)?;
    ing.finish().map_err(write_err)
}

enum Part {
    Parquet(ParquetPart),
    Csv(Box<CsvPart>),
}

impl Part {
    fn rows(&self) -> u64 {
        match self {
            Part::Parquet(p) => p.rows(),
            Part::Csv(p) => p.rows(),
        }
    }
}

struct Ingestor<'s> {
    spec: &'s TableSpec,
    source: &'s Source,
    sheet: Option<String>,
    opts: &'s IngestOptions,
    format: OutputFormat,
    staging: PathBuf,
    stem: String,
    rules: Vec<ColumnRule>,
    /// For each spec column, its position in the file (None: missing, read as NULL).
    positions: Vec<Option<usize>>,
    headers: Vec<String>,
    source_partition: Option<Vec<(String, String)>>,
    /// Output files, in the order they were opened; a slot is emptied when its file rolls.
    parts: Vec<Option<(Partition, Part)>>,
    /// The open file of each partition (looked up once per row: foldhash, not SipHash).
    part_index: HashMap<Option<NaiveDate>, usize, foldhash::fast::RandomState>,
    /// Files a partition has rolled over so far.
    part_seq: HashMap<Option<NaiveDate>, u32>,
    /// Files closed before the end (rolled).
    closed: Vec<OutputFile>,
    /// Index of the partitioning column among the spec's columns.
    partition_column: Option<usize>,
    /// The Parquet encoder thread, started with the first Parquet file.
    encoder: Option<ParquetEncoder>,
    /// A reusable buffer for one row's values (kept empty between rows).
    scratch: Vec<Value<'static>>,
    quarantine: Option<(String, BufWriter<File>)>,
    rows_read: u64,
    rows_written: u64,
    rejects: BTreeMap<(String, RejectReason), u64>,
    /// Quarantine records written so far (at most `opts.max_quarantine_records`).
    quarantine_written: u64,
    /// A write failure inside a visitor callback, reported after reading stops.
    error: Option<WriteError>,
    /// Subtracted from the reader's line numbers (1 for a file with no header line).
    line_shift: u64,
    /// A change log: the index of its op column. Every row must apply, or the file is refused.
    change_log: Option<usize>,
    /// The rows written, profiled (`opts.profile`).
    profiler: Option<crate::profile::Profiler>,
}

fn header_key(h: &str, m: HeaderMatch) -> String {
    match m {
        HeaderMatch::Exact => h.to_string(),
        HeaderMatch::Loose => h
            .chars()
            .filter(|c| !matches!(c, ' ' | '_' | '-'))
            .flat_map(char::to_lowercase)
            .collect(),
    }
}

/// Reads `input` as the spec's source (`format`: the key's), calling `visitor` for its header
/// and rows.
pub fn read_source<R: Read + Seek + Send>(
    spec: &TableSpec,
    format: SourceFormat,
    input: R,
    limits: &Limits,
    visitor: &mut dyn RowVisitor,
) -> Result<(), ReadError> {
    match format {
        SourceFormat::Xlsx => read::xlsx::read_xlsx(
            input,
            spec.source.sheet.as_ref(),
            spec.source.header_row,
            limits,
            visitor,
        ),
        // No header line (DMS writes none): the spec's columns, in order, are the file's. The
        // reader gets their names as a header line of its own.
        _ if spec.source.header_row == 0 => {
            let mut header = Vec::new();
            {
                let mut w = ::csv::WriterBuilder::new()
                    .delimiter(spec.source.csv.delimiter as u8)
                    .quote(spec.source.csv.quote as u8)
                    .from_writer(&mut header);
                let names: Vec<&str> = spec.columns.iter().map(|c| c.source_header()).collect();
                w.write_record(&names)
                    .map_err(|e| ReadError::Internal(e.to_string()))?;
                w.flush().map_err(ReadError::Io)?;
            }
            read::csv::read_csv(
                std::io::Cursor::new(header).chain(input),
                &spec.source.csv,
                1,
                limits,
                visitor,
            )
        }
        _ => read::csv::read_csv(
            input,
            &spec.source.csv,
            spec.source.header_row,
            limits,
            visitor,
        ),
    }
}

/// For each spec column, its position in the file's header (`None`: missing, read as NULL);
/// refuses the file as the spec says for missing, extra or repeated headers.
pub fn column_positions(
    spec: &TableSpec,
    headers: &[String],
) -> Result<Vec<Option<usize>>, ReadError> {
    let m = spec.source.header_match;
    let mut positions = Vec::with_capacity(spec.columns.len());
    let keys: Vec<String> = headers.iter().map(|h| header_key(h, m)).collect();
    let mut missing = Vec::new();
    let mut used = vec![false; headers.len()];
    for col in &spec.columns {
        let want = header_key(col.source_header(), m);
        let hits: Vec<usize> = (0..keys.len()).filter(|&i| keys[i] == want).collect();
        let pos = match (hits.len(), col.source_occurrence) {
            (0, _) => None,
            (1, None) => Some(hits[0]),
            (_, Some(n)) => Some(*hits.get(n - 1).ok_or_else(|| {
                ReadError::Rejected(format!(
                    "column '{}': header '{}' appears {} time(s), not {n}",
                    col.name,
                    col.source_header(),
                    hits.len()
                ))
            })?),
            (n, None) => {
                return Err(ReadError::Rejected(format!(
                "column '{}': header '{}' appears {n} times (columns {}); set source_occurrence",
                col.name,
                col.source_header(),
                hits.iter()
                    .map(|&i| column_letter(i))
                    .collect::<Vec<_>>()
                    .join(", ")
            )))
            }
        };
        if let Some(p) = pos {
            used[p] = true;
        } else {
            missing.push(col.source_header().to_string());
        }
        positions.push(pos);
    }
    if !missing.is_empty() && spec.missing_columns == MissingColumns::RejectFile {
        return Err(ReadError::Rejected(format!(
            "required column(s) missing from the header: {} (header is: {})",
            missing.join(", "),
            headers.join(", ")
        )));
    }
    if spec.extra_columns == ExtraColumns::RejectFile {
        let extra: Vec<&str> = headers
            .iter()
            .zip(&used)
            .filter(|(h, u)| !**u && !h.is_empty())
            .map(|(h, _)| h.as_str())
            .collect();
        if !extra.is_empty() {
            return Err(ReadError::Rejected(format!(
                "column(s) not in the spec: {} (the spec rejects extra columns)",
                extra.join(", ")
            )));
        }
    }
    Ok(positions)
}

impl RowVisitor for Ingestor<'_> {
    fn header(&mut self, headers: &[String]) -> Result<(), ReadError> {
        self.positions = column_positions(self.spec, headers)?;
        self.headers = headers.to_vec();
        Ok(())
    }

    fn row(&mut self, line: u64, row: &Row) -> Result<(), ReadError> {
        if self.error.is_some() {
            return Err(ReadError::Rejected("stopped after a write error".into()));
        }
        let line = line - self.line_shift.min(line);
        self.rows_read += 1;
        if self.change_log.is_some() {
            return self.change_row(line, row);
        }
        if let Some(found) = row.ragged {
            let msg = format!(
                "row has {found} fields, the header has {}",
                self.headers.len()
            );
            self.quarantine_row(line, row, "", "", RejectReason::RaggedRow, "", &msg);
            return Ok(());
        }
        let mut values: Vec<Value<'_>> = recycle(std::mem::take(&mut self.scratch));
        for (i, rule) in self.rules.iter().enumerate() {
            let raw = match self.positions[i] {
                Some(p) => row.get(p),
                None => crate::coerce::RawCell::Empty,
            };
            if let Err(rej) = rule.coerce_then(raw, |v| values.push(v)) {
                let col = rule.name.clone();
                let ty = rule.ty.to_string();
                let shown = raw.display().into_owned();
                self.quarantine_row(line, row, &col, &shown, rej.reason, &ty, &rej.message);
                return Ok(());
            }
        }
        let written = self.write_row(&values);
        self.scratch = recycle(values);
        if let Err(e) = written {
            self.error = Some(e);
            return Err(ReadError::Rejected("stopped after a write error".into()));
        }
        Ok(())
    }
}

impl Ingestor<'_> {
    /// A row of a change log: applied later by key in commit order, so one that cannot be
    /// (a value of the wrong type, a missing key, an operation other than I, U or D) refuses
    /// the whole file: a change skipped would leave the copy wrong without a sign.
    fn change_row(&mut self, line: u64, row: &Row) -> Result<(), ReadError> {
        let refuse = |what: String| {
            ReadError::Rejected(format!(
                "line {line}: {what}; a change log is applied whole or not at all, so nothing of this file was published"
            ))
        };
        if let Some(found) = row.ragged {
            return Err(refuse(format!(
                "the row has {found} fields, not {}",
                self.headers.len()
            )));
        }
        let op_index = self.change_log.unwrap_or(usize::MAX);
        let mut values: Vec<Value<'_>> = recycle(std::mem::take(&mut self.scratch));
        for (i, rule) in self.rules.iter().enumerate() {
            let raw = match self.positions[i] {
                Some(p) => row.get(p),
                None => crate::coerce::RawCell::Empty,
            };
            match rule.coerce(raw) {
                Ok(v) => values.push(v),
                Err(rej) => return Err(refuse(rej.message)),
            }
            if i == op_index {
                let op = raw.display();
                if !matches!(op.trim(), "I" | "U" | "D") {
                    return Err(refuse(format!(
                        "{}: unknown operation '{op}' (expected I, U or D)",
                        rule.name
                    )));
                }
            }
        }
        let written = self.write_row(&values);
        self.scratch = recycle(values);
        if let Err(e) = written {
            self.error = Some(e);
            return Err(ReadError::Rejected("stopped after a write error".into()));
        }
        Ok(())
    }
}

#[derive(Serialize)]
struct QuarantineRecord<'a> {
    source_object: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    sheet: Option<&'a str>,
    row: u64,
    column: &'a str,
    value: &'a str,
    expected_type: &'a str,
    reason: RejectReason,
    message: &'a str,
    raw: serde_json::Map<String, serde_json::Value>,
}

impl Ingestor<'_> {
    #[allow(clippy::too_many_arguments)]
    fn quarantine_row(
        &mut self,
        line: u64,
        row: &Row,
        column: &str,
        value: &str,
        reason: RejectReason,
        expected_type: &str,
        message: &str,
    ) {
        *self
            .rejects
            .entry((column.to_string(), reason))
            .or_default() += 1;
        if self.quarantine_written >= self.opts.max_quarantine_records {
            // Counted above, by column and reason; the file keeps the first ones in full.
            return;
        }
        self.quarantine_written += 1;
        let mut raw = serde_json::Map::new();
        let (mut echoed, cells) = (0, row.len().max(self.headers.len()));
        for i in 0..cells {
            let mut name = match self.headers.get(i) {
                Some(h) if !h.is_empty() => h.clone(),
                _ => column_letter(i),
            };
            if raw.contains_key(&name) {
                name = format!("{name} ({})", column_letter(i));
            }
            let value = row.get(i).display().into_owned();
            echoed += name.len() + value.len();
            if echoed > self.opts.max_raw_bytes {
                raw.insert(
                    "(not shown)".into(),
                    serde_json::Value::String(format!("{} more cells", cells - i)),
                );
                break;
            }
            raw.insert(name, serde_json::Value::String(value));
        }
        let rec = QuarantineRecord {
            source_object: &self.source.object,
            sheet: self.sheet.as_deref(),
            row: line,
            column,
            value,
            expected_type,
            reason,
            message,
            raw,
        };
        let mut line_bytes = match serde_json::to_vec(&rec) {
            Ok(b) => b,
            Err(e) => {
                self.error = Some(std::io::Error::from(e).into());
                return;
            }
        };
        line_bytes.push(b'\n');
        if let Err(e) = self.write_quarantine(&line_bytes) {
            self.error = Some(e);
        }
    }

    fn write_quarantine(&mut self, line: &[u8]) -> Result<(), WriteError> {
        if self.quarantine.is_none() {
            let rel = format!("quarantine/{}/{}.jsonl", self.spec.dataset, self.stem);
            let path = self.staging.join(&rel);
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            self.quarantine = Some((rel, BufWriter::new(File::create(path)?)));
        }
        if let Some((_, w)) = self.quarantine.as_mut() {
            w.write_all(line)?;
        }
        Ok(())
    }

    /// The partition a row belongs to, as a cheap key: the row's date truncated to the
    /// partition granularity, or None when the whole file is one partition.
    fn partition_key(&self, values: &[Value<'_>]) -> Option<NaiveDate> {
        let Partitioning::Column { granularity, .. } = &self.spec.partitioning else {
            return None;
        };
        let date = match values.get(self.partition_column?)? {
            Value::Date(d) => crate::coerce::date_from_days(*d),
            Value::Timestamp(us) => {
                chrono::DateTime::from_timestamp_micros(*us).map(|t| t.date_naive())
            }
            _ => None,
        }?;
        match granularity {
            Granularity::Year => NaiveDate::from_ymd_opt(date.year(), 1, 1),
            Granularity::Month => NaiveDate::from_ymd_opt(date.year(), date.month(), 1),
            Granularity::Day => Some(date),
        }
    }

    /// The partition folders (key, value) of a partition key.
    fn partition_folders(&self, key: Option<NaiveDate>) -> Vec<(String, String)> {
        match (&self.spec.partitioning, key) {
            (Partitioning::None, _) => Vec::new(),
            (Partitioning::SourcePath, _) => self.source_partition.clone().unwrap_or_default(),
            (Partitioning::Column { granularity, .. }, Some(d)) => {
                let mut p = vec![("year".to_string(), format!("{:04}", d.year()))];
                if matches!(granularity, Granularity::Month | Granularity::Day) {
                    p.push(("month".into(), format!("{:02}", d.month())));
                }
                if matches!(granularity, Granularity::Day) {
                    p.push(("day".into(), format!("{:02}", d.day())));
                }
                p
            }
            // Unreachable for valid specs (the partition column is NOT NULL); Hive's name.
            (Partitioning::Column { .. }, None) => {
                vec![("year".into(), "__HIVE_DEFAULT_PARTITION__".into())]
            }
        }
    }

    fn write_row(&mut self, values: &[Value<'_>]) -> Result<(), WriteError> {
        if let Some(p) = &mut self.profiler {
            p.row(values);
        }
        let key = self.partition_key(values);
        let idx = match self.part_index.get(&key) {
            Some(&i) => i,
            None => {
                let partition = self.partition_folders(key);
                let dir: String = partition.iter().map(|(k, v)| format!("{k}={v}/")).collect();
                let seq = self.part_seq.get(&key).copied().unwrap_or(0);
                let suffix = if seq == 0 {
                    String::new()
                } else {
                    // Sorts after `<stem>.parquet`, in roll order: readers see the rows in
                    // the input's order.
                    format!("_p{:04}", seq + 1)
                };
                let rel = format!(
                    "data/{}/{}{}{suffix}.{}",
                    self.spec.dataset,
                    dir,
                    self.stem,
                    self.format.extension()
                );
                let path = self.staging.join(&rel);
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                let part = match self.format {
                    OutputFormat::Parquet => Part::Parquet(
                        ParquetPart::create(
                            self.encoder.get_or_insert_with(|| {
                                ParquetEncoder::start(self.opts.memory_budget_bytes)
                            }),
                            &path,
                            rel,
                            &self.spec.columns,
                            self.opts.batch_rows,
                            self.opts.row_group_rows,
                            &[],
                        )?
                        .staggered(self.parts.len()),
                    ),
                    OutputFormat::Csv => {
                        Part::Csv(Box::new(CsvPart::create(&path, rel, &self.spec.columns)?))
                    }
                };
                self.parts.push(Some((partition, part)));
                self.part_index.insert(key, self.parts.len() - 1);
                self.parts.len() - 1
            }
        };
        let rows = match (&mut self.parts[idx], self.encoder.as_mut()) {
            (Some((_, Part::Parquet(p))), Some(enc)) => {
                p.push(enc, values)?;
                p.rows()
            }
            (Some((_, Part::Csv(p))), _) => {
                p.push(values)?;
                p.rows()
            }
            _ => return Err(WriteError::EncoderStopped),
        };
        self.rows_written += 1;
        if self.opts.roll_rows > 0 && rows >= self.opts.roll_rows {
            self.roll(key, idx)?;
        }
        Ok(())
    }

    /// Closes partition `key`'s file (slot `idx`) now; its next row opens the next file.
    fn roll(&mut self, key: Option<NaiveDate>, idx: usize) -> Result<(), WriteError> {
        let Some((partition, part)) = self.parts[idx].take() else {
            return Ok(());
        };
        self.part_index.remove(&key);
        *self.part_seq.entry(key).or_insert(0) += 1;
        let rows = part.rows();
        let path = match part {
            Part::Parquet(p) => match self.encoder.as_mut() {
                Some(enc) => p.close(enc)?,
                None => return Err(WriteError::EncoderStopped),
            },
            Part::Csv(p) => p.finish()?,
        };
        let out = OutputFile {
            path,
            partition,
            rows,
        };
        if let Some(on_close) = &self.opts.on_close {
            (on_close.0)(&out).map_err(|e| WriteError::Io(std::io::Error::other(e)))?;
        }
        self.closed.push(out);
        Ok(())
    }

    fn finish(self) -> Result<IngestReport, WriteError> {
        let mut outputs = self.closed;
        let mut encoder = self.encoder;
        for (partition, part) in self.parts.into_iter().flatten() {
            let rows = part.rows();
            let path = match part {
                Part::Parquet(mut p) => {
                    if let Some(enc) = encoder.as_mut() {
                        p.flush(enc)?;
                    }
                    p.rel().to_string()
                }
                Part::Csv(p) => p.finish()?,
            };
            outputs.push(OutputFile {
                path,
                partition,
                rows,
            });
        }
        if let Some(enc) = encoder {
            enc.finish()?;
        }
        outputs.sort_by(|a, b| a.path.cmp(&b.path));
        let rows_quarantined: u64 = self.rejects.values().sum();
        let quarantine = match self.quarantine {
            Some((rel, mut w)) => {
                w.flush()?;
                Some(OutputFile {
                    path: rel,
                    partition: Vec::new(),
                    rows: self.quarantine_written,
                })
            }
            None => None,
        };
        Ok(IngestReport {
            dataset: self.spec.dataset.clone(),
            source_object: self.source.object.clone(),
            sheet: self.sheet,
            rows_read: self.rows_read,
            rows_written: self.rows_written,
            rows_quarantined,
            rejects: self
                .rejects
                .into_iter()
                .map(|((column, reason), rows)| RejectCount {
                    column,
                    reason,
                    rows,
                })
                .collect(),
            outputs,
            quarantine,
            profile: self.profiler.map(|p| p.finish().compact()),
        })
    }
}

/// Empties a vector and hands back its allocation with another lifetime: the in-place
/// `collect` of an empty iterator reuses the buffer, so rows do not allocate.
fn recycle<'a, 'b>(mut v: Vec<Value<'a>>) -> Vec<Value<'b>> {
    v.clear();
    v.into_iter().map(|_| Value::Null).collect()
}

/// `A`, `B`, …, `Z`, `AA`, … for a 0-based column.
pub fn column_letter(mut i: usize) -> String {
    let mut s = Vec::new();
    loop {
        s.push(b'A' + (i % 26) as u8);
        if i < 26 {
            break;
        }
        i = i / 26 - 1;
    }
    s.reverse();
    String::from_utf8_lossy(&s).into_owned()
}

/// The `yyyy=/mm=/dd=/hh=` folders of a key, all four or none.
pub fn source_path_partition(key: &str) -> Option<Vec<(String, String)>> {
    let mut found = BTreeMap::new();
    for seg in key.split('/') {
        if let Some((k, v)) = seg.split_once('=') {
            if ["yyyy", "mm", "dd", "hh"].contains(&k)
                && !v.is_empty()
                && v.bytes().all(|b| b.is_ascii_digit())
            {
                found.insert(k, v.to_string());
            }
        }
    }
    ["yyyy", "mm", "dd", "hh"]
        .iter()
        .map(|k| found.get(k).map(|v| (k.to_string(), v.clone())))
        .collect()
}

/// A file-name-safe stem plus a hash of the source identity (key and version).
pub fn output_stem(source: &Source) -> String {
    let name = source.key.rsplit('/').next().unwrap_or(&source.key);
    let base = name.rsplit_once('.').map(|(b, _)| b).unwrap_or(name);
    let safe: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .take(80)
        .collect();
    let id = format!(
        "{}\0{}",
        source.key,
        source.version.as_deref().unwrap_or("")
    );
    format!("{safe}-{:016x}", fnv1a64(id.as_bytes()))
}

/// FNV-1a, 64 bit: a stable, dependency-free hash for output names (not for security).
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_letters() {
        assert_eq!(column_letter(0), "A");
        assert_eq!(column_letter(25), "Z");
        assert_eq!(column_letter(26), "AA");
        assert_eq!(column_letter(27), "AB");
        assert_eq!(column_letter(701), "ZZ");
        assert_eq!(column_letter(702), "AAA");
    }

    #[test]
    fn source_path_partitions_need_all_four_folders() {
        let p = source_path_partition("credit/yyyy=2022/mm=06/dd=05/hh=12/f.csv").unwrap();
        assert_eq!(p[3], ("hh".to_string(), "12".to_string()));
        assert!(source_path_partition("credit/yyyy=2022/mm=06/f.csv").is_none());
    }

    #[test]
    fn output_names_are_stable_and_depend_on_version() {
        let s = |v: Option<&str>| Source {
            object: "x".into(),
            key: "a/Loans 2023.CSV".into(),
            version: v.map(String::from),
        };
        assert_eq!(output_stem(&s(None)), output_stem(&s(None)));
        assert!(output_stem(&s(None)).starts_with("loans_2023-"));
        assert_ne!(output_stem(&s(Some("v1"))), output_stem(&s(Some("v2"))));
    }

    #[test]
    fn loose_header_matching() {
        assert_eq!(header_key("Zip Code", HeaderMatch::Loose), "zipcode");
        assert_eq!(header_key("zip_code", HeaderMatch::Loose), "zipcode");
        assert_eq!(header_key("Zip Code", HeaderMatch::Exact), "Zip Code");
    }

    #[test]
    fn a_stream_gives_the_bytes_a_file_gives_and_a_workbook_stream_is_refused_clearly() {
        let spec = |format: &str| {
            TableSpec::from_json(
                "t",
                &format!(
                    r#"{{"dataset":"t","source":{{"prefix":"t/","pattern":"*","format":"{format}"}},"columns":[{{"name":"id","type":"int"}},{{"name":"name","type":"string"}}]}}"#
                ),
            )
            .unwrap()
        };
        let body = "id,name\n1,a\nx,b\n3,\"c,d\"\n";
        let source = Source {
            object: "s3://raw/t/f.csv".into(),
            key: "t/f.csv".into(),
            version: Some("e1".into()),
        };
        let run = |input: &mut dyn FnMut(&Path) -> Result<IngestReport, IngestError>| {
            let dir = tempfile::tempdir().unwrap();
            let report = input(dir.path()).unwrap();
            let mut files = BTreeMap::new();
            for f in report.outputs.iter().chain(report.quarantine.iter()) {
                files.insert(
                    f.path.clone(),
                    std::fs::read(dir.path().join(&f.path)).unwrap(),
                );
            }
            (report.rows_written, report.rows_quarantined, files)
        };
        let csv = spec("csv");
        let seekable = run(&mut |d| {
            ingest(
                &csv,
                &source,
                std::io::Cursor::new(body.as_bytes()),
                d,
                &IngestOptions::default(),
            )
        });
        let streamed = run(&mut |d| {
            ingest(
                &csv,
                &source,
                Stream(body.as_bytes()),
                d,
                &IngestOptions::default(),
            )
        });
        assert_eq!(seekable, streamed);
        assert_eq!((seekable.0, seekable.1), (2, 1));

        let dir = tempfile::tempdir().unwrap();
        let e = ingest(
            &spec("xlsx"),
            &source,
            Stream(body.as_bytes()),
            dir.path(),
            &IngestOptions::default(),
        )
        .unwrap_err();
        assert!(
            format!("{e:?}").contains("a workbook is read from a file"),
            "{e:?}"
        );
    }

    #[test]
    fn files_roll_at_roll_rows_and_each_closed_one_is_told_once_complete() {
        use std::sync::{Arc, Mutex};
        let spec = TableSpec::from_json(
            "t",
            r#"{"dataset":"t","source":{"prefix":"t/","pattern":"*","format":"csv"},"columns":[{"name":"id","type":"int"},{"name":"name","type":"string"}]}"#,
        )
        .unwrap();
        let body: String = std::iter::once("id,name\n".to_owned())
            .chain((1..=10).map(|i| format!("{i},n{i}\n")))
            .collect();
        let source = Source {
            object: "s3://raw/t/f.csv".into(),
            key: "t/f.csv".into(),
            version: Some("e1".into()),
        };
        let ids = |dir: &Path, files: &[OutputFile]| -> Vec<i64> {
            let mut out = Vec::new();
            for f in files {
                let file = File::open(dir.join(&f.path)).unwrap();
                let reader =
                    parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
                        .unwrap()
                        .build()
                        .unwrap();
                for batch in reader {
                    let batch = batch.unwrap();
                    let col = batch
                        .column(0)
                        .as_any()
                        .downcast_ref::<arrow_array::Int32Array>()
                        .unwrap();
                    out.extend(col.iter().map(|v| i64::from(v.unwrap())));
                }
            }
            out
        };
        let whole_dir = tempfile::tempdir().unwrap();
        let whole = ingest(
            &spec,
            &source,
            std::io::Cursor::new(body.as_bytes()),
            whole_dir.path(),
            &IngestOptions::default(),
        )
        .unwrap();
        assert_eq!(whole.outputs.len(), 1);

        let told: Arc<Mutex<Vec<(String, u64, u64)>>> = Arc::default();
        let dir = tempfile::tempdir().unwrap();
        let (t, d) = (told.clone(), dir.path().to_path_buf());
        let opts = IngestOptions {
            roll_rows: 3,
            on_close: Some(OnClose(Arc::new(move |f: &OutputFile| {
                // Complete on disk when told: its footer reads back.
                let file = File::open(d.join(&f.path)).map_err(|e| e.to_string())?;
                let rows = parquet::file::reader::FileReader::metadata(
                    &parquet::file::serialized_reader::SerializedFileReader::new(file)
                        .map_err(|e| e.to_string())?,
                )
                .file_metadata()
                .num_rows() as u64;
                t.lock().unwrap().push((f.path.clone(), f.rows, rows));
                Ok(())
            }))),
            ..IngestOptions::default()
        };
        let rolled = ingest(
            &spec,
            &source,
            std::io::Cursor::new(body.as_bytes()),
            dir.path(),
            &opts,
        )
        .unwrap();
        let rows: Vec<u64> = rolled.outputs.iter().map(|o| o.rows).collect();
        assert_eq!(rows, [3, 3, 3, 1], "{:?}", rolled.outputs);
        let stem = whole.outputs[0]
            .path
            .trim_end_matches(".parquet")
            .to_owned();
        assert_eq!(rolled.outputs[0].path, whole.outputs[0].path);
        assert_eq!(rolled.outputs[1].path, format!("{stem}_p0002.parquet"));
        let told = told.lock().unwrap().clone();
        assert_eq!(told.len(), 3, "the last file closes at the end: {told:?}");
        assert!(told
            .iter()
            .all(|(_, said, on_disk)| said == on_disk && *said == 3));
        assert_eq!(
            ids(dir.path(), &rolled.outputs),
            ids(whole_dir.path(), &whole.outputs)
        );
        assert_eq!(
            ids(dir.path(), &rolled.outputs),
            (1..=10).collect::<Vec<i64>>()
        );

        // A callback that fails stops the ingest: nothing is reported as written.
        let failing = IngestOptions {
            roll_rows: 3,
            on_close: Some(OnClose(Arc::new(|_: &OutputFile| {
                Err("upload refused".into())
            }))),
            ..IngestOptions::default()
        };
        let e = ingest(
            &spec,
            &source,
            std::io::Cursor::new(body.as_bytes()),
            tempfile::tempdir().unwrap().path(),
            &failing,
        )
        .unwrap_err();
        assert!(format!("{e:?}").contains("upload refused"), "{e:?}");
    }
}
