//! `sluice spec infer`: a table spec drafted from a sample file, streamed once. Each column gets
//! the narrowest type every non-null value fits, the null tokens seen where the column is
//! otherwise typed, the formats its dates match, `pad_width` for digit codes with leading zeros;
//! a primary-key candidate and a partitioning suggestion are said in the explanation. Ambiguous
//! dates (day-first or month-first) are said so and kept as text, never guessed.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::io::{Read, Seek};

use chrono::{NaiveDate, NaiveDateTime, Timelike};

use crate::coerce::RawCell;
use crate::read::{self, Limits, ReadError, Row, RowVisitor};
use crate::spec::{ColumnType, SheetRef, SourceFormat, TableSpec};

/// What `infer` reads.
#[derive(Debug, Clone)]
pub struct InferOptions {
    pub dataset: String,
    pub format: SourceFormat,
    pub sheet: Option<SheetRef>,
    /// 1-based row (line) of the header.
    pub header_row: u32,
    /// CSV: the delimiter (`None`: sniffed from the first line).
    pub delimiter: Option<char>,
    /// Read at most this many data rows (`None`: all).
    pub rows: Option<u64>,
}

/// A drafted spec and why each column got what it got.
#[derive(Debug)]
pub struct Inferred {
    pub spec: TableSpec,
    pub explain: Vec<String>,
    pub rows_read: u64,
}

/// Texts that mean "no value" in files people send.
pub const NULL_TOKENS: [&str; 11] = [
    "NA", "N/A", "n/a", "NULL", "null", "None", "-", "#N/A", "NaN", "nan", "(null)",
];

const DATE_FORMATS: [&str; 6] = [
    "%Y-%m-%d", "%Y/%m/%d", "%d/%m/%Y", "%m/%d/%Y", "%d.%m.%Y", "%d-%m-%Y",
];
const TIMESTAMP_FORMATS: [&str; 6] = [
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%d %H:%M",
    "%d/%m/%Y %H:%M",
    "%m/%d/%Y %H:%M",
    "%d/%m/%Y %H:%M:%S",
];
/// Distinct values kept per column for the key check; past it, no key is claimed.
const DISTINCT_CAP: usize = 200_000;

#[derive(Default)]
struct Col {
    header: String,
    empty: u64,
    tokens: BTreeMap<String, u64>,
    values: u64,
    /// Every value an integer (no leading zeros), and the range.
    int: bool,
    min: i64,
    max: i64,
    /// Digit strings with a leading zero (codes), and their lengths.
    zero_padded: u64,
    digits_only: bool,
    lens: (usize, usize),
    /// Every value a plain decimal; the most digits before and after the point.
    decimal: bool,
    int_digits: u32,
    scale: u32,
    /// Every value a number (exponents allowed).
    float: bool,
    boolean: bool,
    trues: BTreeSet<String>,
    falses: BTreeSet<String>,
    dates: Vec<&'static str>,
    timestamps: Vec<&'static str>,
    /// Date cells of a workbook (no format needed), and whether any has a time of day.
    cells_dated: u64,
    with_time: bool,
    max_len: usize,
    distinct: Option<HashSet<String>>,
}

impl Col {
    fn new(header: String) -> Col {
        Col {
            header,
            int: true,
            digits_only: true,
            decimal: true,
            float: true,
            boolean: true,
            dates: DATE_FORMATS.to_vec(),
            timestamps: TIMESTAMP_FORMATS.to_vec(),
            min: i64::MAX,
            max: i64::MIN,
            lens: (usize::MAX, 0),
            distinct: Some(HashSet::new()),
            ..Col::default()
        }
    }

    /// Keeps the value for the key check, until the cap (then no key is claimed).
    fn remember(&mut self, v: &str) {
        if let Some(d) = &mut self.distinct {
            if d.len() >= DISTINCT_CAP {
                self.distinct = None;
            } else if !d.contains(v) {
                d.insert(v.to_owned());
            }
        }
    }

    fn text(&mut self, v: &str) {
        self.values += 1;
        self.max_len = self.max_len.max(v.chars().count());
        self.remember(v);
        let body = v.strip_prefix(['-', '+']).unwrap_or(v);
        let digits = !body.is_empty() && body.bytes().all(|b| b.is_ascii_digit());
        if digits && body.len() > 1 && body.starts_with('0') {
            self.zero_padded += 1;
        }
        self.digits_only &= digits && body.len() == v.len();
        self.lens = (self.lens.0.min(v.len()), self.lens.1.max(v.len()));
        match (digits, v.parse::<i64>()) {
            (true, Ok(n)) => {
                self.min = self.min.min(n);
                self.max = self.max.max(n);
            }
            _ => self.int = false,
        }
        match body.split_once('.') {
            Some((a, b))
                if a.bytes().all(|c| c.is_ascii_digit())
                    && b.bytes().all(|c| c.is_ascii_digit())
                    && !(a.is_empty() && b.is_empty()) =>
            {
                self.int_digits = self.int_digits.max(a.trim_start_matches('0').len() as u32);
                self.scale = self.scale.max(b.len() as u32);
            }
            None if digits => {
                self.int_digits = self
                    .int_digits
                    .max(body.trim_start_matches('0').len() as u32);
            }
            _ => self.decimal = false,
        }
        let number = v.bytes().any(|b| b.is_ascii_digit())
            && v.bytes()
                .all(|b| b.is_ascii_digit() || matches!(b, b'+' | b'-' | b'.' | b'e' | b'E'))
            && v.parse::<f64>().is_ok_and(f64::is_finite);
        self.float &= number;
        let lower = v.to_ascii_lowercase();
        match lower.as_str() {
            // 1/0 count as booleans beside words (a pure 0/1 column is an integer first).
            "true" | "yes" | "y" | "t" | "1" => {
                self.trues.insert(lower);
            }
            "false" | "no" | "n" | "f" | "0" => {
                self.falses.insert(lower);
            }
            _ => self.boolean = false,
        }
        self.dates.retain(|f| {
            NaiveDate::parse_from_str(v, f).is_ok_and(|d| d.format(f).to_string() == v)
        });
        self.timestamps
            .retain(|f| NaiveDateTime::parse_from_str(v, f).is_ok());
    }

    fn cell(&mut self, c: RawCell<'_>) {
        match c {
            RawCell::Empty => self.empty += 1,
            RawCell::Text(t) => {
                let v = t.trim();
                if v.is_empty() {
                    self.empty += 1;
                } else if NULL_TOKENS.contains(&v) {
                    *self.tokens.entry(v.to_owned()).or_default() += 1;
                } else {
                    self.text(v);
                }
            }
            RawCell::Error(e) => *self.tokens.entry(e.to_owned()).or_default() += 1,
            RawCell::DateTime(dt) => {
                self.values += 1;
                self.cells_dated += 1;
                self.with_time |= dt.time().num_seconds_from_midnight() != 0;
                self.remember(&dt.to_string());
            }
            other => self.text(&other.display()),
        }
    }

    /// The column's type and its spec fields (as JSON), and why.
    fn decide(&self) -> (serde_json::Value, String) {
        use serde_json::json;
        let n = self.values;
        let mut c = json!({});
        let seen = format!("{n} value(s)");
        let (ty, why) = if n == 0 {
            (ColumnType::String, "no value at all: string".to_owned())
        } else if self.cells_dated == n {
            if self.with_time {
                (
                    ColumnType::Timestamp,
                    format!("{seen}, all date-time cells"),
                )
            } else {
                (ColumnType::Date, format!("{seen}, all date cells"))
            }
        } else if self.cells_dated > 0 {
            (
                ColumnType::String,
                format!("{seen}: date cells mixed with others: string"),
            )
        } else if self.zero_padded > 0 && self.digits_only {
            // Codes (zip codes, account numbers): padded to the longest, since a code that lost
            // its leading zero somewhere upstream (a spreadsheet) comes back whole.
            c["pad_width"] = json!(self.lens.1);
            c["max_length"] = json!(self.lens.1);
            (
                ColumnType::String,
                format!(
                    "{seen}, digit codes of {}..{} digits, {} with leading zeros: text padded to {}",
                    self.lens.0, self.lens.1, self.zero_padded, self.lens.1
                ),
            )
        } else if self.int && i32::try_from(self.min).is_ok() && i32::try_from(self.max).is_ok() {
            (
                ColumnType::Int,
                format!("{seen}, integers {}..{}", self.min, self.max),
            )
        } else if self.int {
            (
                ColumnType::BigInt,
                format!("{seen}, integers {}..{}", self.min, self.max),
            )
        } else if self.decimal && self.int_digits + self.scale <= 38 {
            let p = (self.int_digits + self.scale).max(1);
            let ty = ColumnType::Decimal {
                precision: p as u8,
                scale: self.scale as u8,
            };
            (
                ty,
                format!(
                    "{seen}, decimals: at most {} digit(s) before the point and {} after",
                    self.int_digits, self.scale
                ),
            )
        } else if self.float {
            (
                ColumnType::Double,
                format!("{seen}, numbers (exponents or too many digits for a decimal)"),
            )
        } else if self.boolean && !self.trues.is_empty() && !self.falses.is_empty() {
            c["true_values"] = json!(self.trues);
            c["false_values"] = json!(self.falses);
            (
                ColumnType::Boolean,
                format!("{seen}, all one of {:?} / {:?}", self.trues, self.falses),
            )
        } else if !self.dates.is_empty() {
            let day_first = self.dates.iter().any(|f| f.starts_with("%d"));
            let month_first = self.dates.contains(&"%m/%d/%Y");
            if day_first && month_first {
                (ColumnType::String, format!("{seen}: AMBIGUOUS dates, day-first or month-first ({}): kept as text; set type date with the right format", self.dates.join(" or ")))
            } else {
                c["formats"] = json!([self.dates[0]]);
                (
                    ColumnType::Date,
                    format!("{seen}, dates as {}", self.dates[0]),
                )
            }
        } else if !self.timestamps.is_empty() {
            let day_first = self.timestamps.iter().any(|f| f.starts_with("%d"));
            let month_first = self.timestamps.iter().any(|f| f.starts_with("%m"));
            if day_first && month_first {
                (
                    ColumnType::String,
                    format!("{seen}: AMBIGUOUS timestamps, day-first or month-first: kept as text"),
                )
            } else {
                c["formats"] = json!([self.timestamps[0]]);
                (
                    ColumnType::Timestamp,
                    format!("{seen}, timestamps as {}", self.timestamps[0]),
                )
            }
        } else {
            c["max_length"] = json!(self.max_len.max(1));
            (
                ColumnType::String,
                format!("{seen}, text up to {} character(s)", self.max_len),
            )
        };
        c["type"] = json!(ty.to_string());
        let nulls = self.empty + self.tokens.values().sum::<u64>();
        c["nullable"] = json!(nulls > 0);
        let mut why = why;
        if !self.tokens.is_empty() {
            if ty == ColumnType::String {
                // Text keeps "NA": it may be a value. Said, not hidden.
                why.push_str(&format!(
                    "; null-like texts {:?} kept as values",
                    self.tokens.keys().collect::<Vec<_>>()
                ));
                c["nullable"] = json!(self.empty > 0);
            } else {
                let mut tokens = vec![String::new()];
                tokens.extend(self.tokens.keys().cloned());
                why.push_str(&format!("; null tokens {:?}", &tokens[1..]));
                c["null_tokens"] = json!(tokens);
            }
        }
        if nulls > 0 {
            why.push_str(&format!("; {nulls} null(s)"));
        }
        (c, why)
    }

    fn unique_and_full(&self) -> bool {
        self.empty == 0
            && self.tokens.is_empty()
            && self
                .distinct
                .as_ref()
                .is_some_and(|d| d.len() as u64 == self.values)
    }
}

/// `RevolvingUtilizationOfUnsecuredLines` → `revolving_utilization_of_unsecured_lines`,
/// `Zip Code` → `zip_code`; empty when nothing is left.
pub fn lake_name(header: &str) -> String {
    let mut out = String::new();
    let mut prev: Option<char> = None;
    for c in header.chars() {
        if c.is_ascii_alphanumeric() {
            let boundary = c.is_ascii_uppercase()
                && prev.is_some_and(|p| p.is_ascii_lowercase() || p.is_ascii_digit());
            if boundary && !out.ends_with('_') {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else if !out.is_empty() && !out.ends_with('_') {
            out.push('_');
        }
        prev = Some(c);
    }
    let out = out.trim_end_matches('_').to_owned();
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        format!("_{out}")
    } else {
        out
    }
}

struct Sampler {
    cols: Vec<Col>,
    rows: u64,
    limit: Option<u64>,
}

/// Reading stops here once `--rows` rows were seen.
const ENOUGH: &str = "enough rows";

impl RowVisitor for Sampler {
    fn header(&mut self, headers: &[String]) -> Result<(), ReadError> {
        self.cols = headers.iter().map(|h| Col::new(h.clone())).collect();
        Ok(())
    }

    fn row(&mut self, _line: u64, row: &Row) -> Result<(), ReadError> {
        if self.limit.is_some_and(|l| self.rows >= l) {
            return Err(ReadError::Rejected(ENOUGH.into()));
        }
        self.rows += 1;
        while self.cols.len() < row.len() {
            self.cols.push(Col::new(String::new()));
        }
        for (i, c) in self.cols.iter_mut().enumerate() {
            c.cell(row.get(i));
        }
        Ok(())
    }
}

/// The first line's most frequent delimiter among `,`, `;`, tab and `|`.
pub fn sniff_delimiter(first_line: &str) -> char {
    [',', ';', '\t', '|']
        .into_iter()
        .max_by_key(|d| first_line.matches(*d).count())
        .unwrap_or(',')
}

/// Drafts the spec of `input`.
pub fn infer<R: Read + Seek + Send>(input: R, opts: &InferOptions) -> Result<Inferred, ReadError> {
    let mut s = Sampler {
        cols: Vec::new(),
        rows: 0,
        limit: opts.rows,
    };
    let mut csv = crate::spec::CsvOptions::default();
    if let Some(d) = opts.delimiter {
        csv.delimiter = d;
    }
    let read = match opts.format {
        SourceFormat::Xlsx => read::xlsx::read_xlsx(
            input,
            opts.sheet.as_ref(),
            opts.header_row,
            &Limits::default(),
            &mut s,
        ),
        _ => read::csv::read_csv(input, &csv, opts.header_row, &Limits::default(), &mut s),
    };
    match read {
        Err(ReadError::Rejected(m)) if m == ENOUGH => {}
        other => other?,
    }
    let mut explain = Vec::new();
    let mut columns = Vec::new();
    let mut names: Vec<String> = Vec::new();
    let mut keys = Vec::new();
    for (i, c) in s.cols.iter().enumerate() {
        let mut name = lake_name(&c.header);
        if name.is_empty() {
            name = if i == 0 && c.int {
                "row_no".into()
            } else {
                format!("column_{}", i + 1)
            };
        }
        let occurrence = s.cols[..i].iter().filter(|o| o.header == c.header).count();
        if names.contains(&name) {
            name = format!("{name}_{}", occurrence + 1);
        }
        let (mut col, why) = c.decide();
        col["name"] = name.clone().into();
        if c.header != name && !c.header.is_empty() {
            col["source"] = c.header.clone().into();
        }
        if c.header.is_empty() {
            // An unnamed column (a saved DataFrame's index): matched by its empty header.
            col["source"] = "".into();
        }
        // A header used more than once: each column says which occurrence it reads.
        if s.cols.iter().filter(|o| o.header == c.header).count() > 1 {
            col["source_occurrence"] = (occurrence + 1).into();
        }
        let key_type = matches!(col["type"].as_str(), Some("int" | "bigint" | "string"));
        if c.unique_and_full() && key_type {
            keys.push(name.clone());
        }
        explain.push(format!("{name}: {why}"));
        names.push(name);
        columns.push(col);
    }
    // The first unique, never-null column, preferring one named like an id.
    let key = keys
        .iter()
        .find(|k| k.as_str() == "id" || k.ends_with("_id") || k.as_str() == "row_no")
        .or_else(|| keys.first())
        .cloned();
    if let Some(k) = &key {
        explain.push(format!(
            "primary key: {k} (unique and never null in the {} row(s) read; candidates: {})",
            s.rows,
            keys.join(", ")
        ));
        if let Some(col) = columns.iter_mut().find(|c| c["name"] == k.as_str()) {
            col["nullable"] = false.into();
        }
    } else {
        explain.push("primary key: none (no column is unique and never null)".into());
    }
    if let Some(d) = columns
        .iter()
        .find(|c| c["type"] == "date" && c["nullable"] == false)
    {
        explain.push(format!(
            "partitioning: consider {{\"by\": \"column\", \"column\": \"{}\", \"granularity\": \"month\"}}",
            d["name"].as_str().unwrap_or_default()
        ));
    }
    let mut source = serde_json::json!({
        "prefix": format!("{}/", opts.dataset),
        "pattern": match opts.format { SourceFormat::Xlsx => "**/*.xlsx", _ => "**/*.csv" },
        "format": match opts.format { SourceFormat::Xlsx => "xlsx", _ => "csv" },
        "header_row": opts.header_row,
    });
    if let Some(sheet) = &opts.sheet {
        source["sheet"] = serde_json::to_value(sheet).unwrap_or_default();
    }
    if csv.delimiter != ',' {
        source["csv"] = serde_json::json!({"delimiter": csv.delimiter});
    }
    let doc = serde_json::json!({
        "dataset": opts.dataset,
        "description": format!("Drafted by sluice spec infer from {} row(s) of a sample; review before use.", s.rows),
        "source": source,
        "columns": columns,
        "primary_key": key.into_iter().collect::<Vec<_>>(),
    });
    let spec = TableSpec::from_json("(inferred)", &doc.to_string())
        .map_err(|e| ReadError::Internal(format!("the drafted spec does not check: {e}")))?;
    Ok(Inferred {
        spec,
        explain,
        rows_read: s.rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft(csv: &str) -> Inferred {
        let opts = InferOptions {
            dataset: "t".into(),
            format: SourceFormat::Csv,
            sheet: None,
            header_row: 1,
            delimiter: None,
            rows: None,
        };
        match infer(std::io::Cursor::new(csv.as_bytes().to_vec()), &opts) {
            Ok(i) => i,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn each_column_gets_the_narrowest_type_its_values_fit() {
        let i = draft(
            ",CustomerID,Zip Code,Amount,Rate,Active,Opened,Note,Income\n\
             1,100,02134,12.50,1e-3,yes,2023-01-05,a,NA\n\
             2,5000000000,10001,3,2.5,no,2023-02-28,,1200\n",
        );
        let s = &i.spec;
        let ty = |n: &str| s.column(n).map(|c| c.ty.to_string()).unwrap_or_default();
        assert_eq!(ty("row_no"), "int");
        assert_eq!(ty("customer_id"), "bigint");
        assert_eq!(ty("zip_code"), "string");
        assert_eq!(s.column("zip_code").and_then(|c| c.pad_width), Some(5));
        assert_eq!(ty("amount"), "decimal(4,2)");
        assert_eq!(ty("rate"), "double");
        assert_eq!(ty("active"), "boolean");
        assert_eq!(ty("opened"), "date");
        assert_eq!(ty("note"), "string");
        assert_eq!(ty("income"), "int");
        let income = s.column("income").and_then(|c| c.null_tokens.clone());
        assert_eq!(income, Some(vec![String::new(), "NA".into()]));
        // The unnamed index comes first among the id-like candidates; the others are said.
        assert_eq!(s.primary_key, ["row_no"]);
        let key = i
            .explain
            .iter()
            .find(|e| e.starts_with("primary key"))
            .cloned();
        assert!(
            key.is_some_and(|k| k.contains("customer_id")),
            "{:?}",
            i.explain
        );
    }

    #[test]
    fn ambiguous_dates_are_said_and_kept_as_text() {
        let flags = draft("f\n1\nY\n0\nN\n");
        assert_eq!(flags.spec.columns[0].ty, ColumnType::Boolean);
        let i = draft("d\n01/02/2023\n03/04/2023\n");
        assert_eq!(i.spec.columns[0].ty, ColumnType::String);
        assert!(i.explain[0].contains("AMBIGUOUS"), "{:?}", i.explain);
        let unambiguous = draft("d\n13/02/2023\n03/04/2023\n");
        assert_eq!(unambiguous.spec.columns[0].ty, ColumnType::Date);
        assert_eq!(unambiguous.spec.columns[0].formats, ["%d/%m/%Y"]);
    }

    #[test]
    fn names_become_lake_names() {
        assert_eq!(
            lake_name("RevolvingUtilizationOfUnsecuredLines"),
            "revolving_utilization_of_unsecured_lines"
        );
        assert_eq!(
            lake_name("NumberOfTime30-59DaysPastDueNotWorse"),
            "number_of_time30_59_days_past_due_not_worse"
        );
        assert_eq!(lake_name("Zip Code"), "zip_code");
        assert_eq!(lake_name("2nd"), "_2nd");
        assert_eq!(sniff_delimiter("a\tb\tc"), '\t');
    }
}
