//! Lake rows as the bulk-load text both engines read: PostgreSQL's `COPY … FROM STDIN` text
//! format and MySQL's `LOAD DATA` defaults are the same format (tab between fields, newline
//! after each row, `\N` for NULL, backslash escapes for backslash, tab, newline and carriage
//! return), so one encoder serves both.
//!
//! Values are written in the form both servers parse for the column types of
//! `sluice_core::target` (booleans as 1/0, dates as `YYYY-MM-DD`, timestamps as UTC
//! `YYYY-MM-DD HH:MM:SS.ffffff`, decimals exactly).

use std::borrow::Cow;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Decimal128Type, Float64Type, Int32Type, Int64Type, TimestampMicrosecondType,
};
use arrow_array::{Array, RecordBatch};
use arrow_schema::DataType;
use sluice_core::target::Engine;

/// One cell's text, unescaped; `None` is NULL.
pub fn cell(engine: Engine, array: &dyn Array, row: usize) -> Result<Option<Cow<'_, str>>, String> {
    if array.is_null(row) {
        return Ok(None);
    }
    let text: Cow<'_, str> = match array.data_type() {
        DataType::Utf8 => Cow::Borrowed(array.as_string::<i32>().value(row)),
        DataType::LargeUtf8 => Cow::Borrowed(array.as_string::<i64>().value(row)),
        DataType::Int32 => Cow::Owned(array.as_primitive::<Int32Type>().value(row).to_string()),
        DataType::Int64 => Cow::Owned(array.as_primitive::<Int64Type>().value(row).to_string()),
        DataType::Float64 => {
            let v = array.as_primitive::<Float64Type>().value(row);
            if v.is_finite() {
                Cow::Owned(v.to_string())
            } else if engine == Engine::Postgres {
                Cow::Borrowed(if v.is_nan() {
                    "NaN"
                } else if v > 0.0 {
                    "Infinity"
                } else {
                    "-Infinity"
                })
            } else {
                return Err(format!("{v} cannot be stored in a MySQL double"));
            }
        }
        DataType::Boolean => Cow::Borrowed(if array.as_boolean().value(row) {
            "1"
        } else {
            "0"
        }),
        DataType::Decimal128(_, scale) => Cow::Owned(decimal(
            array.as_primitive::<Decimal128Type>().value(row),
            *scale,
        )),
        DataType::Date32 => {
            let days = array.as_primitive::<Date32Type>().value(row);
            let d = chrono::DateTime::from_timestamp(i64::from(days) * 86_400, 0)
                .ok_or_else(|| format!("date {days} days from 1970 is out of range"))?;
            Cow::Owned(d.format("%Y-%m-%d").to_string())
        }
        DataType::Timestamp(_, _) => {
            let us = array.as_primitive::<TimestampMicrosecondType>().value(row);
            let t = chrono::DateTime::from_timestamp_micros(us)
                .ok_or_else(|| format!("timestamp {us} µs from 1970 is out of range"))?;
            let mut s = t.format("%Y-%m-%d %H:%M:%S%.6f").to_string();
            if engine == Engine::Postgres {
                s.push_str("+00");
            }
            Cow::Owned(s)
        }
        other => return Err(format!("a lake column of type {other} cannot be loaded")),
    };
    Ok(Some(text))
}

/// An exact decimal text of an unscaled value.
pub fn decimal(unscaled: i128, scale: i8) -> String {
    if scale <= 0 {
        let mut s = unscaled.to_string();
        s.extend(std::iter::repeat_n('0', usize::from(scale.unsigned_abs())));
        return s;
    }
    let scale = usize::from(scale.unsigned_abs());
    let digits = unscaled.unsigned_abs().to_string();
    let digits = format!("{digits:0>width$}", width = scale + 1);
    let (int, frac) = digits.split_at(digits.len() - scale);
    format!("{}{int}.{frac}", if unscaled < 0 { "-" } else { "" })
}

/// Appends `text` escaped for the bulk-load text format.
pub fn escape_into(out: &mut Vec<u8>, text: &str) {
    for &b in text.as_bytes() {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            0 => out.extend_from_slice(b"\\0"),
            _ => out.push(b),
        }
    }
}

/// Appends a batch's rows in the bulk-load text format. `columns` gives, for each field to
/// write, the batch column it comes from (`None`: a column the file predates, NULL); `extra`
/// (the source object of an `append_by_file` table) is appended to every row as a last field.
pub fn encode_batch(
    engine: Engine,
    batch: &RecordBatch,
    columns: &[Option<usize>],
    extra: Option<&str>,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    let mut escaped_extra = Vec::new();
    if let Some(e) = extra {
        escape_into(&mut escaped_extra, e);
    }
    for row in 0..batch.num_rows() {
        for (n, source) in columns.iter().enumerate() {
            if n > 0 {
                out.push(b'\t');
            }
            match one(engine, batch, *source, row)? {
                None => out.extend_from_slice(b"\\N"),
                Some(t) => escape_into(out, &t),
            }
        }
        if extra.is_some() {
            out.push(b'\t');
            out.extend_from_slice(&escaped_extra);
        }
        out.push(b'\n');
    }
    Ok(())
}

/// The rows of a batch as text cells (the INSERT fallback's parameters).
pub fn batch_cells(
    engine: Engine,
    batch: &RecordBatch,
    columns: &[Option<usize>],
    extra: Option<&str>,
) -> Result<Vec<Vec<Option<String>>>, String> {
    let mut rows = Vec::with_capacity(batch.num_rows());
    for row in 0..batch.num_rows() {
        let mut cells = Vec::with_capacity(columns.len() + 1);
        for source in columns {
            cells.push(one(engine, batch, *source, row)?.map(Cow::into_owned));
        }
        if let Some(e) = extra {
            cells.push(Some(e.to_owned()));
        }
        rows.push(cells);
    }
    Ok(rows)
}

fn one(
    engine: Engine,
    batch: &RecordBatch,
    source: Option<usize>,
    row: usize,
) -> Result<Option<Cow<'_, str>>, String> {
    match source {
        None => Ok(None),
        Some(i) => cell(engine, batch.column(i).as_ref(), row)
            .map_err(|e| format!("column {}: {e}", batch.schema().field(i).name())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use arrow_array::{
        BooleanArray, Date32Array, Decimal128Array, Float64Array, Int64Array, StringArray,
        TimestampMicrosecondArray,
    };

    #[test]
    fn decimals_are_exact() {
        assert_eq!(decimal(12345, 2), "123.45");
        assert_eq!(decimal(-5, 3), "-0.005");
        assert_eq!(decimal(0, 2), "0.00");
        assert_eq!(decimal(7, 0), "7");
        assert_eq!(
            decimal(i128::MAX, 38),
            "1.70141183460469231731687303715884105727"
        );
    }

    #[test]
    fn rows_are_escaped_and_nulls_are_marked() {
        let batch = RecordBatch::try_from_iter(vec![
            ("id", Arc::new(Int64Array::from(vec![Some(1), None])) as _),
            (
                "s",
                Arc::new(StringArray::from(vec![Some("a\tb\\c\nd"), Some("\\N")])) as _,
            ),
            (
                "b",
                Arc::new(BooleanArray::from(vec![Some(true), None])) as _,
            ),
            (
                "x",
                Arc::new(Float64Array::from(vec![Some(0.1), Some(f64::INFINITY)])) as _,
            ),
            (
                "d",
                Arc::new(Date32Array::from(vec![Some(19_000), None])) as _,
            ),
            (
                "t",
                Arc::new(TimestampMicrosecondArray::from(vec![
                    Some(1_654_430_400_000_001),
                    None,
                ])) as _,
            ),
            (
                "m",
                Arc::new(
                    Decimal128Array::from(vec![Some(-1234), None])
                        .with_precision_and_scale(10, 2)
                        .unwrap_or_else(|e| panic!("{e}")),
                ) as _,
            ),
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        let mut out = Vec::new();
        let all: Vec<Option<usize>> = (0..7).map(Some).collect();
        encode_batch(
            Engine::Postgres,
            &batch,
            &all,
            Some("data/x/f.parquet"),
            &mut out,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            String::from_utf8_lossy(&out),
            "1\ta\\tb\\\\c\\nd\t1\t0.1\t2022-01-08\t2022-06-05 12:00:00.000001+00\t-12.34\tdata/x/f.parquet\n\
             \\N\t\\\\N\t\\N\tInfinity\t\\N\t\\N\t\\N\tdata/x/f.parquet\n"
        );
        let mut my = Vec::new();
        let e = encode_batch(Engine::Mysql, &batch, &all, None, &mut my)
            .err()
            .unwrap_or_default();
        assert!(
            e.contains("column x: inf cannot be stored in a MySQL double"),
            "{e}"
        );
        let cells = batch_cells(Engine::Postgres, &batch, &[Some(0), Some(1), None], None)
            .unwrap_or_default();
        assert_eq!(cells[0][1].as_deref(), Some("a\tb\\c\nd"));
        assert_eq!(cells[1][0], None);
        assert_eq!(cells[0][2], None, "a column the file predates is NULL");
    }
}
