//! AWS DMS table definitions into table specs (`sluice spec import-dms`).
//!
//! The input is DMS's external table definition (the JSON an S3 endpoint's
//! `ExternalTableDefinition` holds: `TableCount`, `Tables[]` with `TableName`, `TablePath`,
//! `TableOwner`, `TableColumns[]` of `ColumnName`, `ColumnType`, `ColumnLength`,
//! `ColumnPrecision`, `ColumnScale`, `ColumnNullable`, `ColumnIsPk`, `ColumnDateFormat`).
//! See https://docs.aws.amazon.com/dms/latest/userguide/CHAP_Source.S3.html#CHAP_Source.S3.ExternalTableDef
//!
//! Each table becomes a spec reading DMS's CSV as DMS writes it: no header line
//! (`header_row: 0`), the columns in the definition's order. As a change log (`change_log`),
//! the spec reads DMS's S3 target output instead: `Op` first, the commit timestamp next
//! (`TimestampColumnName`), then the table's columns, and the `apply_changes` load mirrors the
//! source table from it.

use serde::Deserialize;

use crate::spec::{ChangeLog, ColumnSpec, ColumnType, TableSpec};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Definition {
    tables: Vec<Table>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Table {
    table_name: String,
    table_path: String,
    #[serde(default)]
    table_owner: Option<String>,
    table_columns: Vec<Column>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Column {
    column_name: String,
    column_type: String,
    #[serde(default)]
    column_length: Option<String>,
    #[serde(default)]
    column_precision: Option<String>,
    #[serde(default)]
    column_scale: Option<String>,
    #[serde(default)]
    column_nullable: Option<String>,
    #[serde(default)]
    column_is_pk: Option<String>,
    #[serde(default)]
    column_date_format: Option<String>,
}

/// The commit timestamp column when none is named: what Terraform's DMS endpoint writes
/// (`timestamp_column_name`).
pub const DEFAULT_TIMESTAMP_COLUMN: &str = "dms_commit_ts";

/// How the imported specs read their files.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// Read DMS's change files (`Op`, commit timestamp, columns) rather than plain rows.
    pub change_log: bool,
    /// The commit timestamp's column name (DMS's `TimestampColumnName`).
    pub timestamp_column: Option<String>,
    /// Put before every table's `TablePath` (the raw bucket folder DMS writes under).
    pub prefix: String,
}

/// The lake name for a source name: lower case, anything else than `[a-z0-9_]` an `_`.
fn lake_name(name: &str) -> String {
    let mut s: String = name
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() || s.starts_with(|c: char| c.is_ascii_digit()) {
        s.insert(0, '_');
    }
    s
}

/// A Java date pattern (DMS's `ColumnDateFormat`, e.g. `YYYY-MM-dd HH:mm:ss`) as a chrono one.
fn chrono_format(java: &str) -> Result<String, String> {
    let mut out = String::new();
    let chars: Vec<char> = java.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let mut n = 1;
        while i + n < chars.len() && chars[i + n] == c {
            n += 1;
        }
        let piece = match (c, n) {
            ('y' | 'Y', 4) => "%Y",
            ('y' | 'Y', 2) => "%y",
            ('M', 2) => "%m",
            ('d' | 'D', 2) => "%d",
            ('H', 2) => "%H",
            ('h', 2) => "%I",
            ('m', 2) => "%M",
            ('s', 2) => "%S",
            ('S', _) => "%.f",
            ('a', 1) => "%p",
            (c, _) if !c.is_ascii_alphabetic() => {
                out.extend(std::iter::repeat_n(c, n));
                i += n;
                continue;
            }
            _ => {
                return Err(format!(
                    "date format '{java}': '{}' has no equivalent",
                    c.to_string().repeat(n)
                ))
            }
        };
        // `ss.SSS`: chrono's `%.f` brings its own dot.
        if piece == "%.f" && out.ends_with('.') {
            out.pop();
        }
        out.push_str(piece);
        i += n;
    }
    Ok(out)
}

fn column_type(t: &Table, c: &Column) -> Result<(ColumnType, Option<usize>), String> {
    let num = |v: &Option<String>, what: &str| -> Result<u8, String> {
        v.as_deref()
            .unwrap_or("")
            .trim()
            .parse()
            .map_err(|_| format!("{}.{}: {what} is not a number", t.table_name, c.column_name))
    };
    Ok(match c.column_type.to_ascii_uppercase().as_str() {
        "INT1" | "INT2" | "INT4" => (ColumnType::Int, None),
        "INT8" => (ColumnType::BigInt, None),
        "REAL4" | "REAL8" => (ColumnType::Double, None),
        "BOOLEAN" => (ColumnType::Boolean, None),
        "DATE" => (ColumnType::Date, None),
        "DATETIME" | "TIMESTAMP" => (ColumnType::Timestamp, None),
        "NUMERIC" => {
            let precision = num(&c.column_precision, "ColumnPrecision")?;
            let scale = c
                .column_scale
                .as_ref()
                .map(|_| num(&c.column_scale, "ColumnScale"))
                .transpose()?
                .unwrap_or(0);
            let ty = ColumnType::try_from(format!("decimal({precision},{scale})"))
                .map_err(|e| format!("{}.{}: {e}", t.table_name, c.column_name))?;
            (ty, None)
        }
        "STRING" | "BYTE" | "BLOB" | "CLOB" | "NCLOB" | "TIME" => (
            ColumnType::String,
            c.column_length.as_deref().and_then(|l| l.trim().parse().ok()),
        ),
        other => {
            return Err(format!(
                "{}.{}: DMS type '{other}' is not known (INT1-8, REAL4/8, NUMERIC, STRING, BOOLEAN, DATE, DATETIME, TIME, BYTE, BLOB, CLOB, NCLOB)",
                t.table_name, c.column_name
            ))
        }
    })
}

fn yes(v: &Option<String>) -> Option<bool> {
    v.as_deref()
        .map(|s| matches!(s.trim(), "true" | "True" | "TRUE" | "y" | "Y"))
}

fn column(name: &str, source: &str, ty: ColumnType, nullable: bool) -> Result<ColumnSpec, String> {
    let mut c = serde_json::json!({"name": name, "type": ty.to_string(), "nullable": nullable});
    if source != name {
        c["source"] = source.into();
    }
    serde_json::from_value(c).map_err(|e| format!("column {name}: {e}"))
}

/// The specs of every table of a DMS external table definition, checked as `spec check`
/// checks them; `file` names the definition in errors.
pub fn import(file: &str, text: &str, opts: &ImportOptions) -> Result<Vec<TableSpec>, String> {
    let def: Definition = serde_json::from_str(text)
        .map_err(|e| format!("{file}: not a DMS table definition: {e}"))?;
    let mut out = Vec::new();
    for t in &def.tables {
        let dataset = lake_name(&t.table_name);
        let mut columns = Vec::new();
        let mut primary_key = Vec::new();
        if opts.change_log {
            columns.push(column("op", "Op", ColumnType::String, false)?);
            let ts = opts
                .timestamp_column
                .as_deref()
                .unwrap_or(DEFAULT_TIMESTAMP_COLUMN);
            columns.push(column(&lake_name(ts), ts, ColumnType::Timestamp, false)?);
        }
        for c in &t.table_columns {
            let (ty, max_length) = column_type(t, c)?;
            let pk = yes(&c.column_is_pk) == Some(true);
            let nullable = !pk && yes(&c.column_nullable) != Some(false);
            let name = lake_name(&c.column_name);
            if columns.iter().any(|x: &ColumnSpec| x.name == name) {
                return Err(format!(
                    "{file}: {}.{}: two columns are named '{name}' in the lake",
                    t.table_name, c.column_name
                ));
            }
            let mut spec = column(&name, &c.column_name, ty, nullable)?;
            spec.max_length = max_length;
            if let Some(f) = &c.column_date_format {
                spec.formats = vec![chrono_format(f)
                    .map_err(|e| format!("{file}: {}.{}: {e}", t.table_name, c.column_name))?];
            }
            if pk {
                primary_key.push(name);
            }
            columns.push(spec);
        }
        let owner = t.table_owner.as_deref().unwrap_or("");
        let mut doc = serde_json::json!({
            "dataset": dataset,
            "description": format!("{owner}.{} as AWS DMS writes it (imported from {file})", t.table_name),
            "source": {
                "prefix": format!("{}{}", opts.prefix, t.table_path),
                "pattern": "**/*.csv",
                "format": "csv",
                "header_row": 0
            },
            "columns": columns,
            "primary_key": primary_key,
        });
        if opts.change_log {
            let log = ChangeLog {
                op_column: "op".into(),
                commit_column: Some(lake_name(
                    opts.timestamp_column
                        .as_deref()
                        .unwrap_or(DEFAULT_TIMESTAMP_COLUMN),
                )),
            };
            doc["change_log"] = serde_json::to_value(log).map_err(|e| e.to_string())?;
        }
        let spec = TableSpec::from_json(&format!("{file} ({})", t.table_name), &doc.to_string())
            .map_err(|e| e.to_string())?;
        out.push(spec);
    }
    Ok(out)
}

/// The Athena (Trino) type of a lake column, as a view's column list gives it.
pub fn view_type(ty: ColumnType) -> String {
    match ty {
        ColumnType::String => "varchar".into(),
        ColumnType::Int => "integer".into(),
        other => other.to_string(),
    }
}

/// The name of a change log's current-state view.
pub fn current_view_name(spec: &TableSpec) -> String {
    format!("{}_current", spec.dataset)
}

/// The current state of a change log, for analysts: per key the latest change (by commit
/// timestamp, then the later file), deleted keys left out, the op column dropped. `None` when
/// the spec is not a change log.
pub fn current_view_sql(spec: &TableSpec, database: &str) -> Option<String> {
    let log = spec.change_log.as_ref()?;
    let q = |n: &str| format!("\"{}\"", n.replace('"', "\"\""));
    let cols: Vec<String> = spec
        .columns
        .iter()
        .filter(|c| c.name != log.op_column)
        .map(|c| q(&c.name))
        .collect();
    let keys: Vec<String> = spec.primary_key.iter().map(|k| q(k)).collect();
    let mut order = Vec::new();
    if let Some(ts) = &log.commit_column {
        order.push(format!("{} DESC", q(ts)));
    }
    order.push("\"$path\" DESC".into());
    Some(format!(
        "SELECT {cols} FROM (SELECT *, row_number() OVER (PARTITION BY {keys} ORDER BY {order}) AS sluice_rn FROM {db}.{table}) WHERE sluice_rn = 1 AND {op} <> 'D'",
        cols = cols.join(", "),
        keys = keys.join(", "),
        order = order.join(", "),
        db = q(database),
        table = q(&spec.dataset),
        op = q(&log.op_column),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_current_view_keeps_each_keys_latest_change_and_drops_deletes() {
        let opts = ImportOptions {
            change_log: true,
            ..ImportOptions::default()
        };
        let Ok(specs) = import("def.json", DEF, &opts) else {
            panic!()
        };
        let sql = current_view_sql(&specs[0], "sluice_dev").unwrap_or_default();
        assert_eq!(
            sql,
            "SELECT \"dms_commit_ts\", \"paymentid\", \"amount\", \"note\", \"paid\" FROM (SELECT *, row_number() OVER (PARTITION BY \"paymentid\" ORDER BY \"dms_commit_ts\" DESC, \"$path\" DESC) AS sluice_rn FROM \"sluice_dev\".\"loan_payment\") WHERE sluice_rn = 1 AND \"op\" <> 'D'"
        );
        let Ok(plain) = import("def.json", DEF, &ImportOptions::default()) else {
            panic!()
        };
        assert_eq!(current_view_sql(&plain[0], "db"), None);
    }

    #[test]
    fn java_date_patterns_become_chrono_ones() {
        assert_eq!(
            chrono_format("YYYY-MM-dd HH:mm:ss").as_deref(),
            Ok("%Y-%m-%d %H:%M:%S")
        );
        assert_eq!(
            chrono_format("yyyy-MM-dd HH:mm:ss.SSS").as_deref(),
            Ok("%Y-%m-%d %H:%M:%S%.f")
        );
        assert!(chrono_format("EEE, d MMM").is_err());
    }

    const DEF: &str = r#"{"TableCount": "1", "Tables": [{"TableName": "Loan Payment", "TablePath": "legacy/payment/",
        "TableOwner": "dbo", "TableColumns": [
          {"ColumnName": "PaymentID", "ColumnType": "INT8", "ColumnNullable": "false", "ColumnIsPk": "true"},
          {"ColumnName": "Amount", "ColumnType": "NUMERIC", "ColumnPrecision": "12", "ColumnScale": "2"},
          {"ColumnName": "Note", "ColumnType": "STRING", "ColumnLength": "40"},
          {"ColumnName": "Paid", "ColumnType": "DATETIME", "ColumnDateFormat": "yyyy-MM-dd HH:mm:ss"}]}]}"#;

    #[test]
    fn a_definition_becomes_headerless_specs_and_a_change_log_on_request() {
        let specs = import("def.json", DEF, &ImportOptions::default());
        let Ok(specs) = specs else {
            panic!("{specs:?}")
        };
        let s = &specs[0];
        assert_eq!(s.dataset, "loan_payment");
        assert_eq!(s.source.prefix, "legacy/payment/");
        assert_eq!(s.source.header_row, 0);
        assert_eq!(s.primary_key, ["paymentid"]);
        let names: Vec<&str> = s.columns.iter().map(|c| c.source_header()).collect();
        assert_eq!(names, ["PaymentID", "Amount", "Note", "Paid"]);
        assert_eq!(s.columns[2].max_length, Some(40));
        assert!(s.change_log.is_none());
        let opts = ImportOptions {
            change_log: true,
            timestamp_column: Some("commit_ts".into()),
            prefix: "dms/".into(),
        };
        let Ok(logs) = import("def.json", DEF, &opts) else {
            panic!()
        };
        let l = &logs[0];
        assert_eq!(l.source.prefix, "dms/legacy/payment/");
        let names: Vec<&str> = l.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            ["op", "commit_ts", "paymentid", "amount", "note", "paid"]
        );
        assert_eq!(
            l.change_log.as_ref().map(|c| c.op_column.as_str()),
            Some("op")
        );
        let bad = DEF.replace("\"INT8\"", "\"GEOMETRY\"");
        let e = import("def.json", &bad, &ImportOptions::default()).unwrap_err();
        assert!(
            e.contains("Loan Payment.PaymentID: DMS type 'GEOMETRY' is not known"),
            "{e}"
        );
    }
}
