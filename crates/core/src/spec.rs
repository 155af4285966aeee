//! Table specs: what a dataset's source files look like and what its lake table is.
//!
//! A spec is a JSON document (`config/tables/<dataset>.json`). [`TableSpec::from_json`] parses
//! and validates it; every problem names the file, the field and what is wrong, so a data
//! engineer can fix a spec without reading code.

use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// A problem with a spec: the file, the field (a JSON path such as `columns[2].type`) and what
/// is wrong with it.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {field}: {problem}")]
pub struct SpecError {
    pub file: String,
    pub field: String,
    pub problem: String,
}

/// One dataset: how its source objects are found and read, and what its lake table holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableSpec {
    /// Lake table name, Athena-safe (`[a-z_][a-z0-9_]*`).
    pub dataset: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub source: SourceSpec,
    pub columns: Vec<ColumnSpec>,
    /// Columns that identify a row; they must be NOT NULL.
    #[serde(default)]
    pub primary_key: Vec<String>,
    #[serde(default)]
    pub partitioning: Partitioning,
    #[serde(default)]
    pub output: OutputFormat,
    /// What to do when the file has a column the spec does not name.
    #[serde(default)]
    pub extra_columns: ExtraColumns,
    /// What to do when the file lacks a column the spec names.
    #[serde(default)]
    pub missing_columns: MissingColumns,
    /// Values that mean NULL for every column unless a column sets its own (whole-value,
    /// compared after trimming surrounding whitespace). Default: the empty string.
    #[serde(default = "default_null_tokens")]
    pub null_tokens: Vec<String>,
    /// What a new version of an object already ingested (same key, new content) does to the
    /// rows of the earlier version.
    #[serde(default, skip_serializing_if = "OnOverwrite::is_default")]
    pub on_overwrite: OnOverwrite,
    /// The files are a change log (AWS DMS's S3 output): every row is an insert, update or
    /// delete of a source row, in commit order. A file with a row that cannot be applied is
    /// refused whole; the `apply_changes` load mode mirrors the source table from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change_log: Option<ChangeLog>,
    /// Checks of each new file's profile against the dataset's previous files: off unless set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift: Option<DriftSpec>,
}

/// When a file's columns have moved too far from the dataset's previous files (each threshold
/// off unless set). A file past a threshold still lands; the run summary says which column
/// moved and how far.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DriftSpec {
    /// A column's share of NULLs (0 to 1) moving more than this from the previous files' share.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub null_rate: Option<f64>,
    /// A column's distinct count changing by more than this fraction of the previous files'
    /// average (0.5: fewer than half, or more than one and a half times).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distinct: Option<f64>,
    /// A numeric or date column's minimum or maximum leaving the previous files' range by more
    /// than this fraction of that range's width.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<f64>,
    /// How many of the dataset's previous files make the baseline.
    #[serde(default = "default_drift_files")]
    pub files: usize,
    /// The columns checked (default: all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<String>,
}

fn default_drift_files() -> usize {
    5
}

/// Which columns of a change log say what happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangeLog {
    /// The lake column holding `I`, `U` or `D` (DMS's first field, `Op`).
    pub op_column: String,
    /// The lake column holding the source's commit timestamp (DMS's `TimestampColumnName`),
    /// when the files carry one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit_column: Option<String>,
}

/// The widest `pad_width` a spec may ask for (a zero-padded code, not a buffer size).
pub const MAX_PAD_WIDTH: usize = 1_024;

/// What a corrected re-upload (same key, new ETag) means for a dataset.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnOverwrite {
    /// The new version replaces the earlier one: its files leave the lake when the new
    /// version's are published. The lake holds each key's latest content once.
    #[default]
    Replace,
    /// Both stay (feeds whose keys never repeat; a repeat is new rows).
    Append,
    /// A second version of a key is refused as a bad file; the first stays.
    Reject,
}

impl OnOverwrite {
    fn is_default(&self) -> bool {
        *self == OnOverwrite::Replace
    }
}

fn default_null_tokens() -> Vec<String> {
    vec![String::new()]
}

/// How source objects are matched and parsed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSpec {
    /// Object key prefix (in the raw bucket) of this dataset's files.
    #[serde(default)]
    pub prefix: String,
    /// Glob on the key below the prefix (`*` stays within one folder, `**` crosses folders).
    #[serde(default = "default_pattern")]
    pub pattern: String,
    #[serde(default)]
    pub format: SourceFormat,
    /// xlsx: the sheet, by name or by 0-based index. Default: the first sheet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sheet: Option<SheetRef>,
    /// 1-based row (line for CSV) holding the header; rows above it are ignored.
    #[serde(default = "one")]
    pub header_row: u32,
    #[serde(default)]
    pub header_match: HeaderMatch,
    #[serde(default)]
    pub csv: CsvOptions,
    /// Where the rows come from: `files` in the raw bucket (the default), or a `postgres` or
    /// `mysql` database they are pulled from (`database` says how).
    #[serde(default, skip_serializing_if = "SourceKind::is_files")]
    pub kind: SourceKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<crate::pull::DatabaseSource>,
    /// Files are expected at least this often (minutes, 60 to 2,880): the deployment alarms
    /// when none of the dataset was ingested for two such periods (freshness).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect_every_minutes: Option<u32>,
}

/// Where a dataset's rows come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    /// Objects dropped into the raw bucket.
    #[default]
    Files,
    /// Pulled from a PostgreSQL database (a range at a time) into a raw object.
    Postgres,
    /// Pulled from a MySQL or MariaDB database.
    Mysql,
}

impl SourceKind {
    fn is_files(&self) -> bool {
        *self == SourceKind::Files
    }

    /// The database engine rows are pulled from; `None` for files.
    pub fn engine(self) -> Option<crate::target::Engine> {
        match self {
            SourceKind::Files => None,
            SourceKind::Postgres => Some(crate::target::Engine::Postgres),
            SourceKind::Mysql => Some(crate::target::Engine::Mysql),
        }
    }
}

impl Default for SourceSpec {
    fn default() -> Self {
        SourceSpec {
            prefix: String::new(),
            pattern: default_pattern(),
            format: SourceFormat::default(),
            sheet: None,
            header_row: 1,
            header_match: HeaderMatch::default(),
            csv: CsvOptions::default(),
            kind: SourceKind::Files,
            database: None,
            expect_every_minutes: None,
        }
    }
}

fn default_pattern() -> String {
    "**".into()
}
fn one() -> u32 {
    1
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceFormat {
    /// By the object's extension: `.xlsx` is xlsx, anything else CSV.
    #[default]
    Auto,
    Csv,
    Xlsx,
}

impl SourceFormat {
    /// True when the reader must seek (an xlsx workbook's zip directory is at its end), so the
    /// object is downloaded to a file first; every other format is read as it streams.
    pub fn needs_file(self) -> bool {
        self == SourceFormat::Xlsx
    }
}

/// A sheet by name or by 0-based position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SheetRef {
    Index(usize),
    Name(String),
}

impl fmt::Display for SheetRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SheetRef::Index(i) => write!(f, "#{i}"),
            SheetRef::Name(n) => f.write_str(n),
        }
    }
}

/// How a column's `source` is compared with the file's header cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HeaderMatch {
    /// Byte for byte.
    #[default]
    Exact,
    /// Ignoring case, and ignoring spaces, `_` and `-`.
    Loose,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CsvOptions {
    #[serde(default = "comma")]
    pub delimiter: char,
    #[serde(default = "dquote")]
    pub quote: char,
    /// `utf-8` (a BOM is skipped) or a WHATWG label such as `windows-1252`, transcoded.
    #[serde(default = "utf8")]
    pub encoding: String,
}

impl Default for CsvOptions {
    fn default() -> Self {
        CsvOptions {
            delimiter: ',',
            quote: '"',
            encoding: utf8(),
        }
    }
}

fn comma() -> char {
    ','
}
fn dquote() -> char {
    '"'
}
fn utf8() -> String {
    "utf-8".into()
}

/// One lake column and where its values come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnSpec {
    /// Lake column name, Athena-safe (`[a-z_][a-z0-9_]*`).
    pub name: String,
    /// Header cell in the source file. Default: `name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// When the header names this column more than once: which one (1-based).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_occurrence: Option<usize>,
    #[serde(rename = "type")]
    pub ty: ColumnType,
    #[serde(default = "yes")]
    pub nullable: bool,
    /// Overrides the spec-level `null_tokens` for this column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub null_tokens: Option<Vec<String>>,
    /// date / timestamp: accepted patterns (chrono `strftime` syntax), tried in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub formats: Vec<String>,
    /// boolean: texts meaning true / false (compared case-insensitively).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub true_values: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub false_values: Option<Vec<String>>,
    /// string: longest accepted value, in characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_length: Option<usize>,
    /// string: digits-only values shorter than this are left-padded with zeros.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pad_width: Option<usize>,
    /// string: remove surrounding whitespace.
    #[serde(default)]
    pub trim: bool,
}

fn yes() -> bool {
    true
}

impl ColumnSpec {
    /// The header this column is read from.
    pub fn source_header(&self) -> &str {
        self.source.as_deref().unwrap_or(&self.name)
    }
}

/// Lake column types; each maps one to one onto a Glue/Athena type and a Parquet type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum ColumnType {
    String,
    Int,
    BigInt,
    Double,
    Decimal { precision: u8, scale: u8 },
    Boolean,
    Date,
    Timestamp,
}

impl fmt::Display for ColumnType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ColumnType::String => f.write_str("string"),
            ColumnType::Int => f.write_str("int"),
            ColumnType::BigInt => f.write_str("bigint"),
            ColumnType::Double => f.write_str("double"),
            ColumnType::Decimal { precision, scale } => write!(f, "decimal({precision},{scale})"),
            ColumnType::Boolean => f.write_str("boolean"),
            ColumnType::Date => f.write_str("date"),
            ColumnType::Timestamp => f.write_str("timestamp"),
        }
    }
}

impl From<ColumnType> for String {
    fn from(t: ColumnType) -> String {
        t.to_string()
    }
}

impl TryFrom<String> for ColumnType {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let t = s.trim().to_ascii_lowercase();
        Ok(match t.as_str() {
            "string" => ColumnType::String,
            "int" => ColumnType::Int,
            "bigint" => ColumnType::BigInt,
            "double" => ColumnType::Double,
            "boolean" => ColumnType::Boolean,
            "date" => ColumnType::Date,
            "timestamp" => ColumnType::Timestamp,
            _ => {
                let inner = t
                    .strip_prefix("decimal(")
                    .and_then(|r| r.strip_suffix(')'))
                    .ok_or_else(|| {
                        format!(
                            "unknown type '{s}' (expected string, int, bigint, double, \
                             decimal(p,s), boolean, date or timestamp)"
                        )
                    })?;
                let (p, sc) = inner
                    .split_once(',')
                    .ok_or_else(|| format!("'{s}': decimal needs (precision,scale)"))?;
                let precision: u8 = p
                    .trim()
                    .parse()
                    .map_err(|_| format!("'{s}': precision is not a number"))?;
                let scale: u8 = sc
                    .trim()
                    .parse()
                    .map_err(|_| format!("'{s}': scale is not a number"))?;
                if !(1..=38).contains(&precision) || scale > precision {
                    return Err(format!(
                        "'{s}': need 1 <= precision <= 38 and scale <= precision"
                    ));
                }
                ColumnType::Decimal { precision, scale }
            }
        })
    }
}

/// How the lake table is partitioned.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(tag = "by", rename_all = "snake_case", deny_unknown_fields)]
pub enum Partitioning {
    #[default]
    None,
    /// By a NOT NULL date/timestamp column: `year=YYYY[/month=MM[/day=DD]]`.
    Column {
        column: String,
        granularity: Granularity,
    },
    /// By the source object's `yyyy=/mm=/dd=/hh=` key folders, kept as they are.
    SourcePath,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Granularity {
    Year,
    Month,
    Day,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputFormat {
    #[default]
    Parquet,
    Csv,
}

impl OutputFormat {
    pub fn extension(&self) -> &'static str {
        match self {
            OutputFormat::Parquet => "parquet",
            OutputFormat::Csv => "csv",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExtraColumns {
    #[default]
    Ignore,
    RejectFile,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MissingColumns {
    #[default]
    RejectFile,
    Null,
}

/// True when `name` is a lake-safe identifier: `[a-z_][a-z0-9_]*`, at most 255 bytes.
pub fn is_lake_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some('a'..='z' | '_'))
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_'))
        && name.len() <= 255
}

/// A document's file name (for errors) and text.
pub(crate) fn read_document(path: &Path) -> Result<(String, String), SpecError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| SpecError {
        file: file.clone(),
        field: "(file)".into(),
        problem: e.to_string(),
    })?;
    Ok((file, text))
}

/// The `*.json` files of a folder, sorted by name.
pub(crate) fn json_files(dir: &Path) -> std::io::Result<Vec<std::path::PathBuf>> {
    let mut paths: Vec<_> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    Ok(paths)
}

/// A JSON document as `T`; a problem names the field by its JSON path.
pub(crate) fn parse_document<T: serde::de::DeserializeOwned>(
    file: &str,
    text: &str,
) -> Result<T, SpecError> {
    let de = &mut serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let field = e.path().to_string();
        SpecError {
            file: file.into(),
            field: if field == "." {
                "(document)".into()
            } else {
                field
            },
            problem: e.into_inner().to_string(),
        }
    })
}

impl TableSpec {
    /// Reads and validates a spec file.
    pub fn load(path: &Path) -> Result<TableSpec, SpecError> {
        TableSpec::load_with_document(path).map(|(spec, _)| spec)
    }

    /// Reads and validates a spec file; returns the spec and the file's text (the document
    /// the spec store keeps).
    pub fn load_with_document(path: &Path) -> Result<(TableSpec, String), SpecError> {
        let (file, text) = read_document(path)?;
        Ok((TableSpec::from_json(&file, &text)?, text))
    }

    /// Every `*.json` spec in `dir` (e.g. `config/tables`), sorted by file name, with its
    /// document.
    pub fn load_dir(dir: &Path) -> Result<Vec<(TableSpec, String)>, SpecError> {
        let paths = json_files(dir).map_err(|e| SpecError {
            file: dir.display().to_string(),
            field: "(folder)".into(),
            problem: e.to_string(),
        })?;
        paths
            .iter()
            .map(|p| TableSpec::load_with_document(p))
            .collect()
    }

    /// Parses and validates a spec; `file` names it in errors.
    pub fn from_json(file: &str, text: &str) -> Result<TableSpec, SpecError> {
        let spec: TableSpec = parse_document(file, text)?;
        spec.validate(file)?;
        Ok(spec)
    }

    /// The checks serde cannot express: names, references between fields, type-specific options.
    pub fn validate(&self, file: &str) -> Result<(), SpecError> {
        let err = |field: String, problem: String| SpecError {
            file: file.into(),
            field,
            problem,
        };
        if !is_lake_name(&self.dataset) {
            return Err(err(
                "dataset".into(),
                format!("'{}' is not a lake name ([a-z_][a-z0-9_]*)", self.dataset),
            ));
        }
        if self.columns.is_empty() {
            return Err(err(
                "columns".into(),
                "at least one column is needed".into(),
            ));
        }
        if self.source.header_row == 0 && self.source.format == SourceFormat::Xlsx {
            return Err(err(
                "source.header_row".into(),
                "rows count from 1 (0, no header line, is for CSV files only)".into(),
            ));
        }
        if let Err(e) = glob::Pattern::new(&self.source.pattern) {
            return Err(err("source.pattern".into(), format!("bad glob: {e}")));
        }
        let csv = &self.source.csv;
        if !csv.delimiter.is_ascii() || !csv.quote.is_ascii() {
            return Err(err(
                "source.csv".into(),
                "delimiter and quote must be single ASCII characters".into(),
            ));
        }
        if encoding_rs::Encoding::for_label(csv.encoding.as_bytes()).is_none() {
            return Err(err(
                "source.csv.encoding".into(),
                format!("unknown encoding '{}'", csv.encoding),
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for (i, c) in self.columns.iter().enumerate() {
            let at = |f: &str| format!("columns[{i}].{f}");
            if !is_lake_name(&c.name) {
                return Err(err(
                    at("name"),
                    format!("'{}' is not a lake name ([a-z_][a-z0-9_]*)", c.name),
                ));
            }
            if !seen.insert(c.name.as_str()) {
                return Err(err(at("name"), format!("'{}' is used twice", c.name)));
            }
            if c.source_occurrence == Some(0) {
                return Err(err(
                    at("source_occurrence"),
                    "occurrences count from 1".into(),
                ));
            }
            let is = |t: &[ColumnType]| t.contains(&c.ty);
            if !c.formats.is_empty() && !is(&[ColumnType::Date, ColumnType::Timestamp]) {
                return Err(err(
                    at("formats"),
                    "only date and timestamp columns take formats".into(),
                ));
            }
            if (c.true_values.is_some() || c.false_values.is_some()) && c.ty != ColumnType::Boolean
            {
                return Err(err(
                    at("true_values"),
                    "only boolean columns take true_values / false_values".into(),
                ));
            }
            if (c.max_length.is_some() || c.pad_width.is_some() || c.trim)
                && c.ty != ColumnType::String
            {
                return Err(err(
                    at("type"),
                    "max_length, pad_width and trim apply to string columns only".into(),
                ));
            }
            if let Some(pad) = c.pad_width {
                if pad > MAX_PAD_WIDTH {
                    return Err(err(
                        at("pad_width"),
                        format!("{pad} is more than {MAX_PAD_WIDTH}"),
                    ));
                }
            }
            if let (Some(max), Some(pad)) = (c.max_length, c.pad_width) {
                if pad > max {
                    return Err(err(
                        at("pad_width"),
                        format!("{pad} exceeds max_length {max}"),
                    ));
                }
            }
        }
        for (i, k) in self.primary_key.iter().enumerate() {
            match self.column(k) {
                None => {
                    return Err(err(
                        format!("primary_key[{i}]"),
                        format!("no column named '{k}'"),
                    ))
                }
                Some(c) if c.nullable => {
                    return Err(err(
                        format!("primary_key[{i}]"),
                        format!("key column '{k}' must be nullable: false"),
                    ))
                }
                Some(_) => {}
            }
        }
        crate::pull::validate_source(self).map_err(|(field, problem)| err(field, problem))?;
        if let Some(m) = self.source.expect_every_minutes {
            // Whole hours (files arrive by the hour); the alarm evaluates two such periods.
            if !(60..=2_880).contains(&m) || m % 60 != 0 {
                return Err(err(
                    "source.expect_every_minutes".into(),
                    format!("{m}: whole hours from 60 to 2880 minutes"),
                ));
            }
        }
        if let Some(d) = &self.drift {
            let thresholds = [
                ("drift.null_rate", d.null_rate, 1.0),
                ("drift.distinct", d.distinct, f64::MAX),
                ("drift.range", d.range, f64::MAX),
            ];
            for (field, t, max) in thresholds {
                if let Some(t) = t {
                    if !(t.is_finite() && (0.0..=max).contains(&t)) {
                        return Err(err(
                            field.into(),
                            format!(
                                "{t} is not a threshold: a number from 0 to {}",
                                if max > 1.0 {
                                    "any".to_string()
                                } else {
                                    max.to_string()
                                }
                            ),
                        ));
                    }
                }
            }
            if thresholds.iter().all(|(_, t, _)| t.is_none()) {
                return Err(err(
                    "drift".into(),
                    "set at least one of null_rate, distinct, range (or leave drift out)".into(),
                ));
            }
            if !(1..=100).contains(&d.files) {
                return Err(err(
                    "drift.files".into(),
                    format!("{}: compare with 1 to 100 previous files", d.files),
                ));
            }
            if let Some(c) = d.columns.iter().find(|c| self.column(c).is_none()) {
                return Err(err(
                    "drift.columns".into(),
                    format!("no column named '{c}'"),
                ));
            }
        }
        if let Some(log) = &self.change_log {
            match self.column(&log.op_column) {
                Some(c) if c.ty == ColumnType::String && !c.nullable => {}
                Some(_) => {
                    return Err(err(
                        "change_log.op_column".into(),
                        format!(
                            "'{}' must be a string column, nullable: false",
                            log.op_column
                        ),
                    ))
                }
                None => {
                    return Err(err(
                        "change_log.op_column".into(),
                        format!("no column named '{}'", log.op_column),
                    ))
                }
            }
            if let Some(ts) = &log.commit_column {
                if self.column(ts).is_none() {
                    return Err(err(
                        "change_log.commit_column".into(),
                        format!("no column named '{ts}'"),
                    ));
                }
            }
            if self.primary_key.is_empty() {
                return Err(err(
                    "primary_key".into(),
                    "a change log needs the source table's primary key: its changes are applied by it".into(),
                ));
            }
        }
        if let Partitioning::Column { column, .. } = &self.partitioning {
            match self.column(column) {
                None => {
                    return Err(err(
                        "partitioning.column".into(),
                        format!("no column named '{column}'"),
                    ))
                }
                Some(c) if !matches!(c.ty, ColumnType::Date | ColumnType::Timestamp) => {
                    return Err(err(
                        "partitioning.column".into(),
                        format!("'{column}' is {}, not date or timestamp", c.ty),
                    ))
                }
                Some(c) if c.nullable => {
                    return Err(err(
                        "partitioning.column".into(),
                        format!("'{column}' must be nullable: false to partition by it"),
                    ))
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    pub fn column(&self, name: &str) -> Option<&ColumnSpec> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// The partition key names, in folder order.
    pub fn partition_keys(&self) -> Vec<&'static str> {
        match &self.partitioning {
            Partitioning::None => vec![],
            Partitioning::Column { granularity, .. } => match granularity {
                Granularity::Year => vec!["year"],
                Granularity::Month => vec!["year", "month"],
                Granularity::Day => vec!["year", "month", "day"],
            },
            Partitioning::SourcePath => vec!["yyyy", "mm", "dd", "hh"],
        }
    }

    /// The database rows are pulled from, when this dataset's source is one.
    pub fn pulled(&self) -> Option<(crate::target::Engine, &crate::pull::DatabaseSource)> {
        Some((self.source.kind.engine()?, self.source.database.as_ref()?))
    }

    /// Whether an object key belongs to this dataset (prefix, then glob on the rest).
    pub fn matches_key(&self, key: &str) -> bool {
        let Some(rest) = key.strip_prefix(self.source.prefix.as_str()) else {
            return false;
        };
        let opts = glob::MatchOptions {
            case_sensitive: true,
            require_literal_separator: true,
            require_literal_leading_dot: false,
        };
        glob::Pattern::new(&self.source.pattern)
            .map(|p| p.matches_with(rest, opts))
            .unwrap_or(false)
    }

    /// The format of a source object with this key.
    pub fn format_for(&self, key: &str) -> SourceFormat {
        match self.source.format {
            SourceFormat::Auto => {
                if key.to_ascii_lowercase().ends_with(".xlsx") {
                    SourceFormat::Xlsx
                } else {
                    SourceFormat::Csv
                }
            }
            f => f,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: &str) -> Result<TableSpec, SpecError> {
        TableSpec::from_json("t.json", json)
    }

    const MINIMAL: &str = r#"{"dataset":"d","source":{"prefix":"d/","pattern":"**/*.csv"},
        "columns":[{"name":"a","type":"int","nullable":false}],"primary_key":["a"]}"#;

    #[test]
    fn minimal_spec_loads_with_defaults() {
        let s = spec(MINIMAL).unwrap();
        assert_eq!(s.source.header_row, 1);
        assert_eq!(s.null_tokens, vec![String::new()]);
        assert_eq!(s.output, OutputFormat::Parquet);
        assert!(s.matches_key("d/yyyy=2022/mm=06/x.csv"));
        assert!(!s.matches_key("e/x.csv"));
        assert!(!s.matches_key("d/x.xlsx"));
    }

    #[test]
    fn drift_and_freshness_settings_are_checked() {
        let with = |extra: &str| {
            spec(&MINIMAL.replacen("\"primary_key\"", &format!("{extra},\"primary_key\""), 1))
        };
        assert!(with(r#""drift":{"null_rate":0.2}"#).is_ok());
        let field = |r: Result<TableSpec, SpecError>| r.err().map(|e| e.field);
        assert_eq!(field(with(r#""drift":{"files":3}"#)), Some("drift".into()));
        assert_eq!(
            field(with(r#""drift":{"null_rate":1.5}"#)),
            Some("drift.null_rate".into())
        );
        assert_eq!(
            field(with(r#""drift":{"range":1,"columns":["b"]}"#)),
            Some("drift.columns".into())
        );
        assert_eq!(
            field(with(r#""drift":{"distinct":0.5,"files":0}"#)),
            Some("drift.files".into())
        );
        let fresh = |m: u32| {
            spec(&MINIMAL.replacen(
                "\"pattern\":\"**/*.csv\"",
                &format!("\"pattern\":\"**/*.csv\",\"expect_every_minutes\":{m}"),
                1,
            ))
        };
        assert!(fresh(60).is_ok() && fresh(1440).is_ok());
        for bad in [30, 90, 2940] {
            assert_eq!(
                field(fresh(bad)),
                Some("source.expect_every_minutes".into()),
                "{bad}"
            );
        }
    }

    #[test]
    fn types_parse_and_print_one_to_one() {
        for t in [
            "string",
            "int",
            "bigint",
            "double",
            "decimal(12,2)",
            "boolean",
            "date",
            "timestamp",
        ] {
            let ty = ColumnType::try_from(t.to_string()).unwrap();
            assert_eq!(ty.to_string(), t);
        }
        assert!(ColumnType::try_from("decimal(2,3)".to_string()).is_err());
        assert!(ColumnType::try_from("varchar".to_string()).is_err());
    }

    #[test]
    fn unknown_type_names_the_field() {
        let e = spec(&MINIMAL.replace("\"int\"", "\"integer\"")).unwrap_err();
        assert_eq!(e.field, "columns[0].type");
        assert!(e.problem.contains("unknown type 'integer'"), "{e}");
        assert!(e.to_string().starts_with("t.json: columns[0].type:"));
    }

    #[test]
    fn unknown_field_is_refused() {
        let e = spec(&MINIMAL.replace("\"nullable\"", "\"nulable\"")).unwrap_err();
        assert!(e.problem.contains("nulable"), "{e}");
    }

    #[test]
    fn bad_names_and_references_are_refused() {
        let e = spec(&MINIMAL.replace("\"name\":\"a\"", "\"name\":\"Loan-Id\"")).unwrap_err();
        assert_eq!(e.field, "columns[0].name");
        let e = spec(&MINIMAL.replace("[\"a\"]", "[\"b\"]")).unwrap_err();
        assert_eq!(e.field, "primary_key[0]");
        let e = spec(&MINIMAL.replace(
            "\"primary_key\"",
            "\"partitioning\":{\"by\":\"column\",\"column\":\"a\",\"granularity\":\"month\"},\"primary_key\"",
        ))
        .unwrap_err();
        assert_eq!(e.field, "partitioning.column");
        let e = spec(&MINIMAL.replace("\"nullable\":false", "\"nullable\":false,\"pad_width\":5"))
            .unwrap_err();
        assert_eq!(e.field, "columns[0].type");
        // A pad width is a code's width, not a buffer size (65,536 used to panic).
        let wide = MINIMAL.replace(
            "\"type\":\"int\",\"nullable\":false",
            "\"type\":\"string\",\"nullable\":false,\"pad_width\":65536",
        );
        let e = spec(&wide).unwrap_err();
        assert_eq!(e.field, "columns[0].pad_width");
        assert!(e.problem.contains("more than 1024"), "{e}");
    }

    #[test]
    fn lake_names() {
        assert!(is_lake_name("number_of_time30_59_days"));
        assert!(!is_lake_name("NumberOfTime30-59"));
        assert!(!is_lake_name("1abc"));
        assert!(!is_lake_name(""));
    }
}
