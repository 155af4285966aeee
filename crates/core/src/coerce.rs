//! Coercion: one raw cell to one typed lake value, by one documented rule per type.
//!
//! The rules never guess. A value either converts exactly or the row is rejected with a
//! [`Reject`] that names the reason; nothing is rounded, truncated or defaulted.
//!
//! | type | accepts | rejects |
//! | --- | --- | --- |
//! | string | text as is (trimmed only when `trim`); numeric cells in integer form when whole (`1114`, not `1114.0`); digits-only values padded to `pad_width` | longer than `max_length`; error cells |
//! | int / bigint | `[+-]digits` text; whole numeric cells | fractions (`12.5`), out of range, anything else |
//! | double | decimal / scientific text; numeric cells | `NaN`, `inf`, `4,5`, anything else |
//! | decimal(p,s) | exact decimal text with at most `s` significant fraction digits; numeric cells by their shortest exact decimal form | more fraction digits (`3.555` for scale 2), more than `p - s` integer digits |
//! | boolean | boolean cells; text (or numbers as text) in the spec's `true_values` / `false_values` (default `true` / `false`), case-insensitive | anything else |
//! | date | date cells with no time of day; text matching a format exactly (default `%Y-%m-%d`) | impossible dates (`2023-02-30`), bare numbers |
//! | timestamp | date/time cells; text matching a format (default ISO `%Y-%m-%d %H:%M:%S%.f` or with `T`) | anything else |
//!
//! Before any rule: surrounding whitespace is ignored for non-string types, and a value equal
//! (after trimming) to one of the column's null tokens is NULL. A NULL in a NOT NULL column is
//! a reject.

use std::borrow::Cow;

use chrono::{Datelike, NaiveDate, NaiveDateTime, Timelike};

use crate::spec::{ColumnSpec, ColumnType};

/// One source cell as a reader saw it, borrowed from the reader's row buffer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RawCell<'a> {
    /// Absent from the file (an omitted xlsx cell, a missing column).
    Empty,
    Text(&'a str),
    Int(i64),
    Float(f64),
    Bool(bool),
    /// A date/time cell (xlsx number with a date format).
    DateTime(NaiveDateTime),
    /// An xlsx error cell such as `#N/A`.
    Error(&'a str),
}

impl RawCell<'_> {
    /// The cell as a person would read it (what goes into quarantine records).
    pub fn display(&self) -> Cow<'_, str> {
        match self {
            RawCell::Empty => Cow::Borrowed(""),
            RawCell::Text(t) | RawCell::Error(t) => Cow::Borrowed(t),
            RawCell::Int(i) => Cow::Owned(i.to_string()),
            RawCell::Float(f) => Cow::Owned(float_text(*f)),
            RawCell::Bool(b) => Cow::Borrowed(if *b { "true" } else { "false" }),
            RawCell::DateTime(dt) => Cow::Owned(datetime_text(dt)),
        }
    }
}

/// A typed lake value.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Value<'a> {
    #[default]
    Null,
    Int(i32),
    BigInt(i64),
    Double(f64),
    /// Unscaled, at the column's scale.
    Decimal(i128),
    Bool(bool),
    /// Days since 1970-01-01.
    Date(i32),
    /// Microseconds since 1970-01-01 00:00:00 (no time zone).
    Timestamp(i64),
    Str(Cow<'a, str>),
}

/// Why a value was refused. The names are stable: they appear in quarantine records and in
/// run summaries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectReason {
    NullNotAllowed,
    NotAnInteger,
    OutOfRange,
    NotANumber,
    NotADecimal,
    TooManyDecimals,
    NotABoolean,
    NotADate,
    NotATimestamp,
    TooLong,
    ErrorCell,
    RaggedRow,
}

impl RejectReason {
    pub fn as_str(&self) -> &'static str {
        match self {
            RejectReason::NullNotAllowed => "null_not_allowed",
            RejectReason::NotAnInteger => "not_an_integer",
            RejectReason::OutOfRange => "out_of_range",
            RejectReason::NotANumber => "not_a_number",
            RejectReason::NotADecimal => "not_a_decimal",
            RejectReason::TooManyDecimals => "too_many_decimals",
            RejectReason::NotABoolean => "not_a_boolean",
            RejectReason::NotADate => "not_a_date",
            RejectReason::NotATimestamp => "not_a_timestamp",
            RejectReason::TooLong => "too_long",
            RejectReason::ErrorCell => "error_cell",
            RejectReason::RaggedRow => "ragged_row",
        }
    }
}

/// A refused value: the reason and a sentence for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    pub reason: RejectReason,
    pub message: String,
}

/// A column spec compiled for fast per-cell work.
#[derive(Debug, Clone)]
pub struct ColumnRule {
    pub name: String,
    pub ty: ColumnType,
    nullable: bool,
    null_tokens: Vec<String>,
    longest_null_token: usize,
    formats: Vec<String>,
    iso_date_only: bool,
    true_values: Vec<String>,
    false_values: Vec<String>,
    max_length: Option<usize>,
    pad_width: Option<usize>,
    trim: bool,
}

const DEFAULT_TIMESTAMP_FORMATS: [&str; 2] = ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"];

impl ColumnRule {
    pub fn new(col: &ColumnSpec, default_null_tokens: &[String]) -> ColumnRule {
        let formats: Vec<String> = if !col.formats.is_empty() {
            col.formats.clone()
        } else if col.ty == ColumnType::Timestamp {
            DEFAULT_TIMESTAMP_FORMATS
                .iter()
                .map(|s| s.to_string())
                .collect()
        } else {
            vec!["%Y-%m-%d".into()]
        };
        let lower = |v: &Option<Vec<String>>, d: &str| -> Vec<String> {
            v.clone()
                .unwrap_or_else(|| vec![d.to_string()])
                .into_iter()
                .map(|s| s.trim().to_lowercase())
                .collect()
        };
        let null_tokens = col
            .null_tokens
            .clone()
            .unwrap_or_else(|| default_null_tokens.to_vec());
        ColumnRule {
            name: col.name.clone(),
            longest_null_token: null_tokens.iter().map(String::len).max().unwrap_or(0),
            ty: col.ty,
            nullable: col.nullable,
            null_tokens,
            iso_date_only: formats.len() == 1 && formats[0] == "%Y-%m-%d",
            formats,
            true_values: lower(&col.true_values, "true"),
            false_values: lower(&col.false_values, "false"),
            max_length: col.max_length,
            pad_width: col.pad_width,
            trim: col.trim,
        }
    }

    fn is_null_token(&self, t: &str) -> bool {
        let b = t.as_bytes();
        let padded = b.first().is_some_and(u8::is_ascii_whitespace)
            || b.last().is_some_and(u8::is_ascii_whitespace);
        if !padded && b.len() > self.longest_null_token {
            return false;
        }
        let t = t.trim();
        self.null_tokens.iter().any(|n| n == t)
    }

    #[cold]
    #[inline(never)]
    fn reject(&self, reason: RejectReason, raw: &RawCell<'_>) -> Reject {
        let message = match reason {
            RejectReason::NullNotAllowed => format!("{}: NULL in a NOT NULL column", self.name),
            RejectReason::TooLong => format!(
                "{}: '{}' is longer than {} characters",
                self.name,
                raw.display(),
                self.max_length.unwrap_or(0)
            ),
            RejectReason::ErrorCell => {
                format!("{}: error cell '{}'", self.name, raw.display())
            }
            _ => format!(
                "{}: cannot coerce '{}' to {}",
                self.name,
                raw.display(),
                self.ty
            ),
        };
        Reject { reason, message }
    }

    /// Applies this column's rule to one cell.
    pub fn coerce<'a>(&self, raw: RawCell<'a>) -> Result<Value<'a>, Reject> {
        self.coerce_then(raw, |v| v)
    }

    /// [`ColumnRule::coerce`], handing the value to `put` where it is made (`|v| row.push(v)`
    /// builds it in the row's own memory: moving the returned value instead cost a
    /// store-forwarding stall per cell, perf annotate's hottest instruction in the ingest).
    #[inline]
    pub fn coerce_then<'a, T>(
        &self,
        raw: RawCell<'a>,
        put: impl FnOnce(Value<'a>) -> T,
    ) -> Result<T, Reject> {
        let is_null = match raw {
            RawCell::Empty => true,
            RawCell::Text(t) => self.is_null_token(t),
            _ => false,
        };
        if is_null {
            return if self.nullable {
                Ok(put(Value::Null))
            } else {
                Err(self.reject(RejectReason::NullNotAllowed, &raw))
            };
        }
        if let RawCell::Error(_) = raw {
            return Err(self.reject(RejectReason::ErrorCell, &raw));
        }
        // Each value is returned where it is made, and a refusal names its reason: one
        // `Result<Value, RejectReason>` mapped to `Result<Value, Reject>` cost a store-forwarding
        // stall per cell (perf annotate: 40 % of this function's samples on reassembling it).
        let reason = match self.ty {
            ColumnType::String => return self.coerce_string(raw, put),
            ColumnType::Int => match self.coerce_integer(raw) {
                Ok(i) => match i32::try_from(i) {
                    Ok(v) => return Ok(put(Value::Int(v))),
                    Err(_) => RejectReason::OutOfRange,
                },
                Err(r) => r,
            },
            ColumnType::BigInt => match self.coerce_integer(raw) {
                Ok(i) => return Ok(put(Value::BigInt(i))),
                Err(r) => r,
            },
            ColumnType::Double => match raw {
                RawCell::Int(i) => return Ok(put(Value::Double(i as f64))),
                RawCell::Float(f) => return Ok(put(Value::Double(f))),
                RawCell::Text(t) => match parse_double(trim(t)) {
                    Some(x) => return Ok(put(Value::Double(x))),
                    None => RejectReason::NotANumber,
                },
                _ => RejectReason::NotANumber,
            },
            ColumnType::Decimal { precision, scale } => {
                let parsed = match raw {
                    RawCell::Text(t) => parse_decimal(trim(t), precision, scale),
                    RawCell::Int(i) => parse_decimal(&i.to_string(), precision, scale),
                    RawCell::Float(f) if f.is_finite() => {
                        parse_decimal(&float_text(f), precision, scale)
                    }
                    _ => Err(RejectReason::NotADecimal),
                };
                match parsed {
                    Ok(d) => return Ok(put(Value::Decimal(d))),
                    Err(r) => r,
                }
            }
            ColumnType::Boolean => match raw {
                RawCell::Bool(b) => return Ok(put(Value::Bool(b))),
                RawCell::Text(_) | RawCell::Int(_) | RawCell::Float(_) => {
                    let t = raw.display().trim().to_lowercase();
                    if self.true_values.contains(&t) {
                        return Ok(put(Value::Bool(true)));
                    } else if self.false_values.contains(&t) {
                        return Ok(put(Value::Bool(false)));
                    }
                    RejectReason::NotABoolean
                }
                _ => RejectReason::NotABoolean,
            },
            ColumnType::Date => match raw {
                RawCell::DateTime(dt) if dt.time() == chrono::NaiveTime::MIN => {
                    return Ok(put(Value::Date(days_since_epoch(dt.date()))));
                }
                RawCell::Text(t) => match self.parse_date(trim(t)) {
                    Some(d) => return Ok(put(Value::Date(days_since_epoch(d)))),
                    None => RejectReason::NotADate,
                },
                _ => RejectReason::NotADate,
            },
            ColumnType::Timestamp => match raw {
                RawCell::DateTime(dt) => return Ok(put(Value::Timestamp(micros_since_epoch(&dt)))),
                RawCell::Text(t) => match self.parse_timestamp(trim(t)) {
                    Some(dt) => return Ok(put(Value::Timestamp(micros_since_epoch(&dt)))),
                    None => RejectReason::NotATimestamp,
                },
                _ => RejectReason::NotATimestamp,
            },
        };
        Err(self.reject(reason, &raw))
    }

    #[inline]
    fn coerce_string<'a, T>(
        &self,
        raw: RawCell<'a>,
        put: impl FnOnce(Value<'a>) -> T,
    ) -> Result<T, Reject> {
        let mut s: Cow<'a, str> = match raw {
            RawCell::Text(t) => Cow::Borrowed(if self.trim { trim(t) } else { t }),
            RawCell::Int(i) => Cow::Owned(i.to_string()),
            RawCell::Float(f) => Cow::Owned(float_text(f)),
            RawCell::Bool(b) => Cow::Borrowed(if b { "true" } else { "false" }),
            RawCell::DateTime(dt) => Cow::Owned(datetime_text(&dt)),
            RawCell::Empty | RawCell::Error(_) => Cow::Borrowed(""),
        };
        if let Some(w) = self.pad_width {
            if s.len() < w && !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
                s = Cow::Owned(format!("{s:0>w$}"));
            }
        }
        if let Some(max) = self.max_length {
            if s.len() > max && s.chars().count() > max {
                return Err(self.reject(RejectReason::TooLong, &raw));
            }
        }
        Ok(put(Value::Str(s)))
    }

    fn coerce_integer(&self, raw: RawCell<'_>) -> Result<i64, RejectReason> {
        match raw {
            RawCell::Int(i) => Ok(i),
            RawCell::Float(f) => {
                if f.fract() != 0.0 || !f.is_finite() {
                    Err(RejectReason::NotAnInteger)
                } else if f.abs() > 9.007_199_254_740_992e15 {
                    Err(RejectReason::OutOfRange)
                } else {
                    Ok(f as i64)
                }
            }
            RawCell::Text(t) => parse_integer(trim(t)),
            _ => Err(RejectReason::NotAnInteger),
        }
    }

    fn parse_date(&self, t: &str) -> Option<NaiveDate> {
        if self.iso_date_only {
            return parse_iso_date(t);
        }
        self.formats.iter().find_map(|f| {
            let d = NaiveDate::parse_from_str(t, f).ok()?;
            // Exact only: the value must be what the format prints (no `2023-1-5` for `%Y-%m-%d`).
            (d.format(f).to_string() == t).then_some(d)
        })
    }

    fn parse_timestamp(&self, t: &str) -> Option<NaiveDateTime> {
        self.formats
            .iter()
            .find_map(|f| NaiveDateTime::parse_from_str(t, f).ok())
    }
}

/// `t.trim()`, without its character-by-character search when both ends are visible ASCII
/// (nearly every cell): then there is nothing to trim.
#[inline]
fn trim(t: &str) -> &str {
    let b = t.as_bytes();
    match (b.first(), b.last()) {
        (Some(f), Some(l)) if f.is_ascii_graphic() && l.is_ascii_graphic() => t,
        _ => t.trim(),
    }
}

/// `[+-]?[0-9]+`, nothing else.
fn parse_integer(t: &str) -> Result<i64, RejectReason> {
    let digits = t.strip_prefix(['+', '-']).unwrap_or(t);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(RejectReason::NotAnInteger);
    }
    t.parse::<i64>().map_err(|_| RejectReason::OutOfRange)
}

/// Decimal or scientific notation; no `NaN`, `inf`, hex or thousands separators.
fn parse_double(t: &str) -> Option<f64> {
    let ok = !t.is_empty()
        && t.bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'+' | b'-' | b'.' | b'e' | b'E'))
        && t.bytes().any(|b| b.is_ascii_digit());
    if !ok {
        return None;
    }
    t.parse::<f64>().ok().filter(|f| f.is_finite())
}

/// Exact decimal parse to an unscaled integer at `scale`. Fraction digits beyond the scale
/// are accepted only when they are zeros.
pub fn parse_decimal(t: &str, precision: u8, scale: u8) -> Result<i128, RejectReason> {
    let (neg, body) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let (int_part, frac_part) = body.split_once('.').unwrap_or((body, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (int_part.is_empty() && frac_part.is_empty())
        || !all_digits(int_part)
        || !all_digits(frac_part)
    {
        return Err(RejectReason::NotADecimal);
    }
    let scale = usize::from(scale);
    let (kept, dropped) = frac_part.split_at(frac_part.len().min(scale));
    if dropped.bytes().any(|b| b != b'0') {
        return Err(RejectReason::TooManyDecimals);
    }
    let int_digits = int_part.trim_start_matches('0');
    if int_digits.len() > usize::from(precision) - scale {
        return Err(RejectReason::OutOfRange);
    }
    let mut v: i128 = 0;
    for b in int_digits.bytes().chain(kept.bytes()) {
        v = v * 10 + i128::from(b - b'0');
    }
    for _ in kept.len()..scale {
        v *= 10;
    }
    Ok(if neg { -v } else { v })
}

/// `YYYY-MM-DD`, exactly ten characters, a real calendar date.
fn parse_iso_date(t: &str) -> Option<NaiveDate> {
    let b = t.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        b[r].iter().try_fold(0u32, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
        })
    };
    let year = i32::try_from(num(0..4)?).ok()?;
    NaiveDate::from_ymd_opt(year, num(5..7)?, num(8..10)?)
}

const EPOCH_DAYS_FROM_CE: i32 = 719_163;

pub fn days_since_epoch(d: NaiveDate) -> i32 {
    d.num_days_from_ce() - EPOCH_DAYS_FROM_CE
}

pub fn date_from_days(days: i32) -> Option<NaiveDate> {
    // Checked: a Date32 read from someone else's Parquet file can be any i32.
    days.checked_add(EPOCH_DAYS_FROM_CE)
        .and_then(NaiveDate::from_num_days_from_ce_opt)
}

pub fn micros_since_epoch(dt: &NaiveDateTime) -> i64 {
    dt.and_utc().timestamp_micros()
}

/// A float as text: integer form when whole (`1114`), else the shortest exact form.
pub fn float_text(f: f64) -> String {
    if f.fract() == 0.0 && f.abs() < 1e15 {
        format!("{}", f as i64)
    } else {
        format!("{f}")
    }
}

fn datetime_text(dt: &NaiveDateTime) -> String {
    if dt.time() == chrono::NaiveTime::MIN {
        dt.format("%Y-%m-%d").to_string()
    } else if dt.nanosecond() == 0 {
        dt.format("%Y-%m-%d %H:%M:%S").to_string()
    } else {
        dt.format("%Y-%m-%d %H:%M:%S%.f").to_string()
    }
}

/// A decimal's unscaled value as text at its scale (`12345`, 2 → `123.45`).
pub fn decimal_text(v: i128, scale: u8) -> String {
    let mut s = String::new();
    push_decimal_text(&mut s, v, scale);
    s
}

/// [`decimal_text`] appended to `out`, without allocating: CSV outputs write one per cell.
pub fn push_decimal_text(out: &mut String, v: i128, scale: u8) {
    let scale = usize::from(scale);
    if v < 0 {
        out.push('-');
    }
    let mut digits = itoa::Buffer::new();
    let digits = digits.format(v.unsigned_abs());
    if scale == 0 {
        out.push_str(digits);
    } else if digits.len() > scale {
        let (whole, frac) = digits.split_at(digits.len() - scale);
        out.push_str(whole);
        out.push('.');
        out.push_str(frac);
    } else {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', scale - digits.len()));
        out.push_str(digits);
    }
}

/// A date as `YYYY-MM-DD` appended to `out` (chrono's `%Y-%m-%d`, written by hand for the
/// years 0..=9999 since CSV outputs write one per cell; other years go through chrono, which
/// signs them).
pub fn push_iso_date(out: &mut String, d: NaiveDate) {
    use std::fmt::Write as _;
    let (y, m, day) = (d.year(), d.month(), d.day());
    if (0..=9999).contains(&y) {
        let digit = |x: i32| char::from(b'0' + (x % 10) as u8);
        let (m, day) = (m as i32, day as i32);
        for c in [
            digit(y / 1000),
            digit(y / 100),
            digit(y / 10),
            digit(y),
            '-',
            digit(m / 10),
            digit(m),
            '-',
            digit(day / 10),
            digit(day),
        ] {
            out.push(c);
        }
    } else {
        let _ = write!(out, "{}", d.format("%Y-%m-%d"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(json: &str) -> ColumnRule {
        let col: ColumnSpec = serde_json::from_str(json).unwrap();
        ColumnRule::new(&col, &[String::new(), "NA".to_string()])
    }

    fn reason(r: &ColumnRule, raw: RawCell<'_>) -> RejectReason {
        r.coerce(raw).unwrap_err().reason
    }

    #[test]
    fn any_day_number_a_parquet_file_holds_is_a_date_or_none_without_overflow() {
        assert_eq!(date_from_days(0), NaiveDate::from_ymd_opt(1970, 1, 1));
        assert_eq!(date_from_days(-1), NaiveDate::from_ymd_opt(1969, 12, 31));
        for days in [i32::MAX, i32::MAX - 719_162, i32::MIN, i32::MIN + 1] {
            assert_eq!(date_from_days(days), None, "{days}");
        }
        let far = days_since_epoch(NaiveDate::MAX);
        assert_eq!(date_from_days(far), Some(NaiveDate::MAX));
        assert_eq!(date_from_days(far + 1), None);
    }

    #[test]
    fn the_quick_trim_trims_what_str_trim_trims() {
        for t in [
            "",
            " ",
            "42",
            " 42",
            "42 ",
            "\t4\n",
            "\u{a0}42",
            "42\u{3000}",
            "ñ",
            "a b",
            "\u{a0}",
            "x\u{2003}",
            "-",
            "é ",
        ] {
            assert_eq!(trim(t), t.trim(), "{t:?}");
        }
        let nbsp = rule(r#"{"name":"n","type":"int"}"#);
        assert_eq!(
            nbsp.coerce(RawCell::Text("\u{a0}42\u{a0}")).unwrap(),
            Value::Int(42)
        );
    }

    #[test]
    fn int_rejects_fractions_instead_of_rounding() {
        let r = rule(r#"{"name":"n","type":"int"}"#);
        assert_eq!(r.coerce(RawCell::Text(" 42 ")).unwrap(), Value::Int(42));
        assert_eq!(r.coerce(RawCell::Float(7.0)).unwrap(), Value::Int(7));
        assert_eq!(
            reason(&r, RawCell::Text("12.5")),
            RejectReason::NotAnInteger
        );
        assert_eq!(reason(&r, RawCell::Float(12.5)), RejectReason::NotAnInteger);
        assert_eq!(
            reason(&r, RawCell::Text("3000000000")),
            RejectReason::OutOfRange
        );
        assert_eq!(reason(&r, RawCell::Text("1e3")), RejectReason::NotAnInteger);
        let e = r.coerce(RawCell::Text("abc")).unwrap_err();
        assert_eq!(e.message, "n: cannot coerce 'abc' to int");
    }

    #[test]
    fn decimal_rejects_extra_digits_instead_of_rounding() {
        let r = rule(r#"{"name":"amount","type":"decimal(12,2)"}"#);
        assert_eq!(r.coerce(RawCell::Text("3.5")).unwrap(), Value::Decimal(350));
        assert_eq!(
            r.coerce(RawCell::Text("-0.05")).unwrap(),
            Value::Decimal(-5)
        );
        assert_eq!(
            r.coerce(RawCell::Text("3.550")).unwrap(),
            Value::Decimal(355)
        );
        assert_eq!(
            r.coerce(RawCell::Float(1234.56)).unwrap(),
            Value::Decimal(123456)
        );
        assert_eq!(
            reason(&r, RawCell::Text("3.555")),
            RejectReason::TooManyDecimals
        );
        assert_eq!(
            reason(&r, RawCell::Text("1.2.3")),
            RejectReason::NotADecimal
        );
        assert_eq!(reason(&r, RawCell::Text("12a")), RejectReason::NotADecimal);
        assert_eq!(
            reason(&r, RawCell::Text("12345678901")),
            RejectReason::OutOfRange
        );
        assert_eq!(decimal_text(-5, 2), "-0.05");
        assert_eq!(decimal_text(123456, 2), "1234.56");
        assert_eq!(decimal_text(-123456, 0), "-123456");
        assert_eq!(decimal_text(7, 3), "0.007");
        assert_eq!(decimal_text(0, 2), "0.00");
        assert_eq!(
            decimal_text(i128::MIN, 2),
            "-1701411834604692317316873037158841057.28"
        );
    }

    #[test]
    fn iso_dates_are_written_as_chrono_writes_them() {
        for (y, m, d) in [
            (2023, 12, 31),
            (1, 1, 1),
            (0, 2, 29),
            (9999, 9, 9),
            (10000, 1, 1),
            (-1, 3, 4),
        ] {
            let date = NaiveDate::from_ymd_opt(y, m, d).unwrap();
            let mut out = String::from("x");
            push_iso_date(&mut out, date);
            assert_eq!(out, format!("x{}", date.format("%Y-%m-%d")), "{date:?}");
        }
    }

    #[test]
    fn null_tokens_match_whole_values_only() {
        let r = rule(r#"{"name":"country","type":"string"}"#);
        assert_eq!(r.coerce(RawCell::Text("NA")).unwrap(), Value::Null);
        assert_eq!(r.coerce(RawCell::Text(" NA ")).unwrap(), Value::Null);
        assert_eq!(
            r.coerce(RawCell::Text("NAMIBIA")).unwrap(),
            Value::Str("NAMIBIA".into())
        );
        let strict = rule(r#"{"name":"c","type":"string","nullable":false}"#);
        assert_eq!(
            reason(&strict, RawCell::Empty),
            RejectReason::NullNotAllowed
        );
    }

    #[test]
    fn numeric_cells_for_strings_keep_integer_form_and_pad() {
        let zip = rule(r#"{"name":"zip","type":"string","pad_width":5,"max_length":5}"#);
        assert_eq!(
            zip.coerce(RawCell::Float(6705.0)).unwrap(),
            Value::Str("06705".into())
        );
        assert_eq!(
            zip.coerce(RawCell::Text("06705")).unwrap(),
            Value::Str("06705".into())
        );
        assert_eq!(reason(&zip, RawCell::Text("123456")), RejectReason::TooLong);
        let s = rule(r#"{"name":"s","type":"string"}"#);
        assert_eq!(
            s.coerce(RawCell::Float(1114.0)).unwrap(),
            Value::Str("1114".into())
        );
        assert_eq!(
            s.coerce(RawCell::Float(2.5)).unwrap(),
            Value::Str("2.5".into())
        );
    }

    #[test]
    fn booleans_only_as_the_spec_says() {
        let plain = rule(r#"{"name":"b","type":"boolean"}"#);
        assert_eq!(
            plain.coerce(RawCell::Text("TRUE")).unwrap(),
            Value::Bool(true)
        );
        assert_eq!(
            reason(&plain, RawCell::Text("1")),
            RejectReason::NotABoolean
        );
        assert_eq!(
            reason(&plain, RawCell::Text("Y")),
            RejectReason::NotABoolean
        );
        let yn = rule(
            r#"{"name":"b","type":"boolean","true_values":["1","Y"],"false_values":["0","N"]}"#,
        );
        assert_eq!(yn.coerce(RawCell::Text("y")).unwrap(), Value::Bool(true));
        assert_eq!(yn.coerce(RawCell::Float(0.0)).unwrap(), Value::Bool(false));
        assert_eq!(yn.coerce(RawCell::Bool(true)).unwrap(), Value::Bool(true));
        assert_eq!(reason(&yn, RawCell::Text("yes")), RejectReason::NotABoolean);
    }

    #[test]
    fn dates_are_exact() {
        let d = rule(r#"{"name":"d","type":"date"}"#);
        let day =
            |y, m, dd| Value::Date(days_since_epoch(NaiveDate::from_ymd_opt(y, m, dd).unwrap()));
        assert_eq!(
            d.coerce(RawCell::Text("2023-02-28")).unwrap(),
            day(2023, 2, 28)
        );
        assert_eq!(
            d.coerce(RawCell::Text("1970-01-01")).unwrap(),
            Value::Date(0)
        );
        for bad in [
            "2023-02-30",
            "2023-13-01",
            "2022-06-31",
            "2023-1-5",
            "20230105",
        ] {
            assert_eq!(
                reason(&d, RawCell::Text(bad)),
                RejectReason::NotADate,
                "{bad}"
            );
        }
        assert_eq!(reason(&d, RawCell::Float(45000.0)), RejectReason::NotADate);
        let cell = NaiveDate::from_ymd_opt(2022, 6, 5)
            .unwrap()
            .and_hms_opt(0, 0, 0)
            .unwrap();
        assert_eq!(d.coerce(RawCell::DateTime(cell)).unwrap(), day(2022, 6, 5));
        let eu = rule(r#"{"name":"d","type":"date","formats":["%d/%m/%Y"]}"#);
        assert_eq!(
            eu.coerce(RawCell::Text("05/06/2022")).unwrap(),
            day(2022, 6, 5)
        );
        assert_eq!(
            reason(&eu, RawCell::Text("5/6/2022")),
            RejectReason::NotADate
        );
    }

    #[test]
    fn timestamps_take_iso_text_and_cells() {
        let t = rule(r#"{"name":"t","type":"timestamp"}"#);
        assert_eq!(
            t.coerce(RawCell::Text("2022-10-22 22:33:07.873398"))
                .unwrap(),
            Value::Timestamp(1_666_477_987_873_398)
        );
        assert_eq!(
            t.coerce(RawCell::Text("1970-01-01T00:00:01")).unwrap(),
            Value::Timestamp(1_000_000)
        );
        assert_eq!(
            reason(&t, RawCell::Text("yesterday")),
            RejectReason::NotATimestamp
        );
    }

    #[test]
    fn doubles_refuse_locale_and_specials() {
        let r = rule(r#"{"name":"rate","type":"double"}"#);
        assert_eq!(r.coerce(RawCell::Text("4.5")).unwrap(), Value::Double(4.5));
        assert_eq!(
            r.coerce(RawCell::Text("1e-3")).unwrap(),
            Value::Double(0.001)
        );
        assert_eq!(r.coerce(RawCell::Text("NA")).unwrap(), Value::Null);
        for bad in ["4,5", "NaN", "inf", "-", "."] {
            assert_eq!(
                reason(&r, RawCell::Text(bad)),
                RejectReason::NotANumber,
                "{bad}"
            );
        }
    }

    #[test]
    fn error_cells_are_rejected() {
        let r = rule(r#"{"name":"s","type":"string"}"#);
        assert_eq!(reason(&r, RawCell::Error("#N/A")), RejectReason::ErrorCell);
    }
}
