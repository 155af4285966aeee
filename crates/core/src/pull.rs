//! Database sources: a table spec whose `source.kind` is `postgres` or `mysql` is pulled, a
//! range at a time, into a CSV object in the raw bucket (raw stays the audit trail), which the
//! normal ingest path then types and quarantines.
//!
//! A pull is a work item for a range `[from, to)` of the spec's cursor column (a monotonic id,
//! or an `updated_at` less `lag_seconds` for transactions that commit late), fixed when the
//! item is registered: a retry or a redrive pulls the same range again, and the object a range
//! was written to is never rewritten. The high-water mark (the last range's `to`) is a marker
//! beside the work items. `snapshot` pulls the whole table each time.
//!
//! This module is the pure part: the spec's shape, its checks, the SQL and the names. The
//! database side is `sluice_db::pull`.

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::spec::{ColumnType, SourceFormat, TableSpec};
use crate::target::{ConnectionSpec, Engine};

/// How a database source is read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSource {
    /// The connection: a Secrets Manager secret in the RDS shape (locally the variable
    /// `SLUICE_SOURCE_<DATASET>` holding the same JSON), TLS and CA bundle.
    pub connection: ConnectionSpec,
    /// `table` or `schema.table` (any name: it is quoted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    /// A query whose result is the source (read as a subquery).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// Pull the rows new since the last pull, by a cursor column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incremental: Option<Incremental>,
    /// Pull the whole table each time.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub snapshot: bool,
    /// Minutes between pulls: 60 (the hourly scheduled run) or the rate of a schedule of its
    /// own (Terraform creates one EventBridge rule per cadence the specs name).
    #[serde(default = "sixty")]
    pub every_minutes: u32,
}

fn sixty() -> u32 {
    60
}

/// The cadences a schedule can have: minutes that divide the hour.
pub const CADENCES: [u32; 12] = [1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30, 60];

/// The most `lag_seconds` may be (a day).
pub const MAX_LAG_SECONDS: u32 = 86_400;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Incremental {
    /// The cursor: a source column (the header a spec column reads).
    pub column: String,
    pub by: CursorKind,
    /// Timestamp cursors: a range ends this many seconds before the database's clock, so a
    /// transaction that stamped its rows earlier but commits later is still ahead of it.
    #[serde(default)]
    pub lag_seconds: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CursorKind {
    /// A monotonic integer (an identity column): rows are only ever added above it.
    Id,
    /// A timestamp stamped on every insert and update (`updated_at`): each committed
    /// version of a row is pulled once, in the range its stamp falls in.
    Timestamp,
}

/// The range a pull item reads: `[from, to)` of the cursor (`from` absent: from the start),
/// or, both absent, the whole table (a snapshot).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct PullRange {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
}

impl PullRange {
    pub fn is_snapshot(&self) -> bool {
        self.from.is_none() && self.to.is_none()
    }
}

/// The checks of a spec's database source: `(field, problem)`.
pub(crate) fn validate_source(spec: &TableSpec) -> Result<(), (String, String)> {
    let bad = |f: &str, p: String| Err((f.to_owned(), p));
    let src = &spec.source;
    let (Some(_), Some(db)) = (src.kind.engine(), &src.database) else {
        if src.database.is_some() {
            return bad(
                "source.database",
                "only a database source (kind postgres or mysql) takes one".into(),
            );
        }
        if src.kind.engine().is_some() {
            return bad(
                "source.database",
                "a postgres or mysql source needs database: connection, table or query, incremental or snapshot".into(),
            );
        }
        return Ok(());
    };
    match (&db.table, &db.query) {
        (Some(t), None) => {
            if t.split('.').count() > 2 || t.split('.').any(|p| p.is_empty() || p.contains('\0')) {
                return bad(
                    "source.database.table",
                    format!("'{t}' is not table or schema.table"),
                );
            }
        }
        (None, Some(q)) if !q.trim().is_empty() => {}
        _ => {
            return bad(
                "source.database",
                "give exactly one of table and query".into(),
            )
        }
    }
    match (&db.incremental, db.snapshot) {
        (Some(inc), false) => {
            let Some(col) = spec
                .columns
                .iter()
                .find(|c| c.source_header() == inc.column)
            else {
                return bad(
                    "source.database.incremental.column",
                    format!(
                        "'{}' is not the source of any column: the cursor lands in the lake, so each version pulled can be told apart",
                        inc.column
                    ),
                );
            };
            let fits = match inc.by {
                CursorKind::Id => matches!(col.ty, ColumnType::Int | ColumnType::BigInt),
                CursorKind::Timestamp => col.ty == ColumnType::Timestamp,
            };
            if !fits {
                return bad(
                    "source.database.incremental.by",
                    format!(
                        "an {:?} cursor needs an {} column; '{}' is {}",
                        inc.by,
                        match inc.by {
                            CursorKind::Id => "int or bigint",
                            CursorKind::Timestamp => "timestamp",
                        },
                        col.name,
                        col.ty
                    )
                    .to_lowercase(),
                );
            }
            if col.nullable {
                return bad(
                    "source.database.incremental.column",
                    format!(
                        "'{}' must be nullable: false (a NULL cursor is never in a range)",
                        col.name
                    ),
                );
            }
            if inc.lag_seconds > MAX_LAG_SECONDS {
                return bad(
                    "source.database.incremental.lag_seconds",
                    format!("{} is more than a day ({MAX_LAG_SECONDS})", inc.lag_seconds),
                );
            }
            if inc.by == CursorKind::Id && inc.lag_seconds != 0 {
                return bad(
                    "source.database.incremental.lag_seconds",
                    "an id cursor has no clock to lag: use a timestamp cursor for tables whose transactions commit out of order".into(),
                );
            }
        }
        (None, true) => {}
        _ => {
            return bad(
                "source.database",
                "give exactly one of incremental and snapshot".into(),
            )
        }
    }
    if !CADENCES.contains(&db.every_minutes) {
        return bad(
            "source.database.every_minutes",
            format!(
                "{} does not divide the hour (one of {CADENCES:?})",
                db.every_minutes
            ),
        );
    }
    // The pull writes plain UTF-8 CSV with a header; the ingest must read it as written.
    let csv = &src.csv;
    if src.format == SourceFormat::Xlsx
        || src.header_row != 1
        || csv.delimiter != ','
        || csv.quote != '"'
        || !csv.encoding.eq_ignore_ascii_case("utf-8")
    {
        return bad(
            "source",
            "a database source is written as UTF-8 CSV with a header line: leave format, header_row and csv at their defaults".into(),
        );
    }
    let sample = raw_key(
        spec,
        DateTime::<Utc>::UNIX_EPOCH,
        &PullRange::default(),
        "x",
    );
    if !spec.matches_key(&sample) {
        return bad(
            "source.pattern",
            format!("does not match the objects pulls write ({sample})"),
        );
    }
    Ok(())
}

/// A name quoted for the engine whatever its text (legacy tables have `LoanID`, spaces…): the
/// quote character is doubled, which is how both engines escape it.
pub fn quote_any(engine: Engine, name: &str) -> Result<String, String> {
    if name.is_empty() || name.contains('\0') || name.len() > 128 {
        return Err(format!("'{name}' is not a usable column or table name"));
    }
    Ok(match engine {
        Engine::Postgres => format!("\"{}\"", name.replace('"', "\"\"")),
        Engine::Mysql => format!("`{}`", name.replace('`', "``")),
    })
}

const ALIAS: &str = "sluice_q";

/// The `FROM` of every statement: the table, or the query as a subquery, as `sluice_q`.
fn from_clause(engine: Engine, db: &DatabaseSource) -> Result<String, String> {
    match (&db.table, &db.query) {
        (Some(t), _) => {
            let parts: Vec<String> = t
                .split('.')
                .map(|p| quote_any(engine, p))
                .collect::<Result<_, _>>()?;
            Ok(format!("{} AS {ALIAS}", parts.join(".")))
        }
        (None, Some(q)) => Ok(format!("({}) AS {ALIAS}", q.trim().trim_end_matches(';'))),
        (None, None) => Err("neither table nor query".into()),
    }
}

fn column_ref(engine: Engine, name: &str) -> Result<String, String> {
    Ok(format!("{ALIAS}.{}", quote_any(engine, name)?))
}

/// A range bound as SQL: parsed as the cursor's type and printed again, so what reaches the
/// statement is a number or a timestamp and nothing else. (PostgreSQL's `COPY` takes no bind
/// parameters; the bounds come from our own work items, and are checked here all the same.)
pub fn bound_literal(kind: CursorKind, value: &str) -> Result<String, String> {
    match kind {
        CursorKind::Id => value
            .trim()
            .parse::<i64>()
            .map(|n| n.to_string())
            .map_err(|_| format!("range bound '{value}' is not an integer")),
        CursorKind::Timestamp => parse_timestamp(value)
            .map(|t| format!("'{}'", t.format("%Y-%m-%d %H:%M:%S%.6f")))
            .ok_or_else(|| format!("range bound '{value}' is not a timestamp")),
    }
}

fn parse_timestamp(value: &str) -> Option<NaiveDateTime> {
    ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(value.trim(), f).ok())
}

fn range_condition(
    engine: Engine,
    inc: &Incremental,
    range: &PullRange,
) -> Result<Option<String>, String> {
    let col = column_ref(engine, &inc.column)?;
    let mut parts = Vec::new();
    if let Some(f) = &range.from {
        parts.push(format!("{col} >= {}", bound_literal(inc.by, f)?));
    }
    if let Some(t) = &range.to {
        parts.push(format!("{col} < {}", bound_literal(inc.by, t)?));
    }
    Ok((!parts.is_empty()).then(|| parts.join(" AND ")))
}

/// The `SELECT` of a pull: the spec's columns under their source names, formatted as the
/// ingest reads them (timestamps `YYYY-MM-DD HH:MM:SS.ffffff` in UTC, booleans `true`/`false`),
/// the range's rows only, in cursor then key order: the same range gives the same bytes.
///
/// `zone` says, for a PostgreSQL timestamp column (by source name), whether it is `timestamptz`
/// (`Some(true)`: shifted to UTC wall time, printed by the server's own output function),
/// `timestamp` (`Some(false)`: printed as it is) or unknown (`None`: `to_char`, which is right for
/// both and twice as slow over a million rows).
pub fn select_sql(
    engine: Engine,
    spec: &TableSpec,
    db: &DatabaseSource,
    range: &PullRange,
    zone: &dyn Fn(&str) -> Option<bool>,
) -> Result<String, String> {
    let mut select = Vec::new();
    for c in &spec.columns {
        let r = column_ref(engine, c.source_header())?;
        let e = match (engine, c.ty) {
            (Engine::Postgres, ColumnType::Timestamp) => match zone(c.source_header()) {
                Some(true) => format!("({r} AT TIME ZONE 'UTC')"),
                Some(false) => r,
                None => format!("to_char({r} AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')"),
            },
            // The session's DateStyle is ISO (sluice_db's connection sets it): YYYY-MM-DD.
            (Engine::Postgres, ColumnType::Date) => r,
            (Engine::Postgres, ColumnType::Boolean) => format!("{r}::text"),
            (Engine::Postgres, _) => r,
            (Engine::Mysql, ColumnType::Timestamp) => {
                format!("DATE_FORMAT({r}, '%Y-%m-%d %H:%i:%s.%f')")
            }
            (Engine::Mysql, ColumnType::Date) => format!("DATE_FORMAT({r}, '%Y-%m-%d')"),
            (Engine::Mysql, ColumnType::Boolean) => {
                format!("CASE WHEN {r} THEN 'true' WHEN NOT {r} THEN 'false' END")
            }
            (Engine::Mysql, _) => format!("CAST({r} AS CHAR)"),
        };
        select.push(format!("{e} AS {}", quote_any(engine, c.source_header())?));
    }
    let mut sql = format!(
        "SELECT {} FROM {}",
        select.join(", "),
        from_clause(engine, db)?
    );
    let mut order = Vec::new();
    if let Some(inc) = &db.incremental {
        if let Some(cond) = range_condition(engine, inc, range)? {
            sql.push_str(" WHERE ");
            sql.push_str(&cond);
        }
        order.push(column_ref(engine, &inc.column)?);
    }
    for k in &spec.primary_key {
        if let Some(c) = spec.column(k) {
            order.push(column_ref(engine, c.source_header())?);
        }
    }
    if spec.primary_key.is_empty() {
        // No key: every column, so equal cursors still come out in one order.
        order.extend((1..=spec.columns.len()).map(|i| i.to_string()));
    }
    sql.push_str(" ORDER BY ");
    sql.push_str(&order.join(", "));
    Ok(sql)
}

/// The statement that fixes a new range's end: the largest id plus one, or the database's
/// clock (UTC) less the lag.
pub fn range_end_sql(engine: Engine, db: &DatabaseSource) -> Result<String, String> {
    let Some(inc) = &db.incremental else {
        return Err("a snapshot has no range".into());
    };
    let col = column_ref(engine, &inc.column)?;
    let from = from_clause(engine, db)?;
    let lag = inc.lag_seconds;
    Ok(match (engine, inc.by) {
        (Engine::Postgres, CursorKind::Id) => format!("SELECT (max({col}) + 1)::text FROM {from}"),
        (Engine::Mysql, CursorKind::Id) => format!("SELECT CAST(max({col}) + 1 AS CHAR) FROM {from}"),
        (Engine::Postgres, CursorKind::Timestamp) => format!(
            "SELECT to_char(now() AT TIME ZONE 'UTC' - make_interval(secs => {lag}), 'YYYY-MM-DD HH24:MI:SS.US')"
        ),
        (Engine::Mysql, CursorKind::Timestamp) => format!(
            "SELECT DATE_FORMAT(UTC_TIMESTAMP(6) - INTERVAL {lag} SECOND, '%Y-%m-%d %H:%i:%s.%f')"
        ),
    })
}

/// The statement that says whether a range holds any row (one row back) or not (none).
pub fn any_rows_sql(
    engine: Engine,
    db: &DatabaseSource,
    range: &PullRange,
) -> Result<String, String> {
    let from = from_clause(engine, db)?;
    let cond = match &db.incremental {
        Some(inc) => range_condition(engine, inc, range)?,
        None => None,
    };
    Ok(match cond {
        Some(c) => format!("SELECT 1 FROM {from} WHERE {c} LIMIT 1"),
        None => format!("SELECT 1 FROM {from} LIMIT 1"),
    })
}

/// The next range after the high-water mark `from`, given the end the database reported;
/// `None` when nothing can be new (no rows at all, or the end is not past `from`).
pub fn next_range(
    db: &DatabaseSource,
    from: Option<&str>,
    end: Option<&str>,
) -> Result<Option<PullRange>, String> {
    let Some(inc) = &db.incremental else {
        return Ok(Some(PullRange::default()));
    };
    let Some(end) = end else { return Ok(None) };
    let past = match (inc.by, from) {
        (_, None) => true,
        (CursorKind::Id, Some(f)) => {
            let f: i64 = f
                .parse()
                .map_err(|_| format!("high-water mark '{f}' is not an integer"))?;
            let e: i64 = end
                .parse()
                .map_err(|_| format!("range end '{end}' is not an integer"))?;
            e > f
        }
        (CursorKind::Timestamp, Some(f)) => {
            let f = parse_timestamp(f)
                .ok_or_else(|| format!("high-water mark '{f}' is not a timestamp"))?;
            let e = parse_timestamp(end)
                .ok_or_else(|| format!("range end '{end}' is not a timestamp"))?;
            e > f
        }
    };
    Ok(past.then(|| PullRange {
        from: from.map(str::to_owned),
        to: Some(end.to_owned()),
    }))
}

/// The marker holding a dataset's high-water mark.
pub fn high_water_marker(dataset: &str) -> String {
    format!("pull:{dataset}")
}

/// A range's work item id, by where it starts: `pull://<dataset>/from=<from|start>` (two runs
/// from one high-water mark register one item, whatever end each saw), or
/// `pull://<dataset>/snapshot@<label>` (one per scheduled run).
pub fn item_id(dataset: &str, range: &PullRange, label: &str) -> String {
    if range.is_snapshot() {
        return format!("pull://{dataset}/snapshot@{label}");
    }
    format!(
        "pull://{dataset}/from={}",
        range.from.as_deref().unwrap_or("start")
    )
}

/// The raw object a range is written to: under the dataset's prefix, in the hour the pull was
/// registered (`yyyy=/mm=/dd=/hh=`, like dropped files), named after its range.
pub fn raw_key(spec: &TableSpec, hour: DateTime<Utc>, range: &PullRange, label: &str) -> String {
    let token = |v: Option<&str>, none: &str| -> String {
        v.unwrap_or(none)
            .chars()
            .filter_map(|c| match c {
                '0'..='9' | 'a'..='z' | 'A'..='Z' | '-' | '.' => Some(c),
                ' ' => Some('T'),
                _ => None,
            })
            .collect()
    };
    let name = if range.is_snapshot() {
        format!("snapshot-{}", token(Some(label), ""))
    } else {
        format!(
            "{}_{}",
            token(range.from.as_deref(), "start"),
            token(range.to.as_deref(), "end")
        )
    };
    format!(
        "{}{}{}.{name}.csv",
        spec.source.prefix,
        hour.format("yyyy=%Y/mm=%m/dd=%d/hh=%H/"),
        spec.dataset
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(source: &str) -> Result<TableSpec, crate::SpecError> {
        TableSpec::from_json(
            "loans.json",
            &format!(
                r#"{{"dataset":"loans","source":{source},
                "columns":[{{"name":"id","source":"LoanID","type":"bigint","nullable":false}},
                           {{"name":"amount","type":"decimal(12,2)"}},
                           {{"name":"updated_at","type":"timestamp","nullable":false}},
                           {{"name":"active","type":"boolean"}}],
                "primary_key":["id"]}}"#
            ),
        )
    }

    const PG: &str = r#"{"prefix":"loans/","kind":"postgres","database":{
        "connection":{"secret":"src","tls":"disable"},"table":"public.Loans",
        "incremental":{"column":"updated_at","by":"timestamp","lag_seconds":30}}}"#;

    fn problem(source: &str) -> String {
        match spec(source) {
            Ok(_) => "accepted".into(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn a_database_source_is_read_and_checked() {
        let s = spec(PG).map_err(|e| e.to_string());
        let Ok(s) = s else { panic!("{s:?}") };
        let Some((engine, db)) = s.pulled() else {
            panic!("not pulled")
        };
        assert_eq!(engine, Engine::Postgres);
        assert_eq!(db.every_minutes, 60);
        assert_eq!(db.incremental.as_ref().map(|i| i.lag_seconds), Some(30));
        // A file spec is not pulled.
        let files = spec(r#"{"prefix":"loans/"}"#).map_err(|e| e.to_string());
        assert!(files.is_ok_and(|f| f.pulled().is_none()));
    }

    #[test]
    fn a_bad_database_source_names_the_field() {
        let cases = [
            (
                r#"{"kind":"postgres"}"#,
                "source.database: a postgres or mysql source needs",
            ),
            (
                r#"{"database":{"connection":{"secret":"s"},"table":"t","snapshot":true}}"#,
                "only a database source",
            ),
            (
                r#"{"kind":"mysql","database":{"connection":{"secret":"s"},"snapshot":true}}"#,
                "exactly one of table and query",
            ),
            (
                r#"{"kind":"mysql","database":{"connection":{"secret":"s"},"table":"t"}}"#,
                "exactly one of incremental and snapshot",
            ),
            (
                r#"{"kind":"mysql","database":{"connection":{"secret":"s"},"table":"t","incremental":{"column":"nope","by":"id"}}}"#,
                "'nope' is not the source of any column",
            ),
            (
                r#"{"kind":"mysql","database":{"connection":{"secret":"s"},"table":"t","incremental":{"column":"amount","by":"id"}}}"#,
                "incremental.by: an id cursor needs an int or bigint column",
            ),
            (
                r#"{"kind":"mysql","database":{"connection":{"secret":"s"},"table":"t","incremental":{"column":"LoanID","by":"id","lag_seconds":5}}}"#,
                "an id cursor has no clock to lag",
            ),
            (
                r#"{"kind":"mysql","database":{"connection":{"secret":"s"},"table":"t","snapshot":true,"every_minutes":7}}"#,
                "every_minutes: 7 does not divide the hour",
            ),
            (
                r#"{"kind":"mysql","csv":{"delimiter":";"},"database":{"connection":{"secret":"s"},"table":"t","snapshot":true}}"#,
                "leave format, header_row and csv at their defaults",
            ),
            (
                r#"{"kind":"mysql","pattern":"*.xlsx","database":{"connection":{"secret":"s"},"table":"t","snapshot":true}}"#,
                "source.pattern: does not match the objects pulls write",
            ),
            (
                r#"{"kind":"mysql","database":{"connection":{"secret":"s"},"table":"a.b.c","snapshot":true}}"#,
                "is not table or schema.table",
            ),
        ];
        for (source, want) in cases {
            let got = problem(source);
            assert!(got.contains(want), "{source}: {got}");
        }
    }

    #[test]
    fn the_pull_statement_formats_as_the_ingest_reads_and_orders_for_the_same_bytes() {
        let Ok(s) = spec(PG) else { panic!("spec") };
        let Some((engine, db)) = s.pulled() else {
            panic!("not pulled")
        };
        let range = PullRange {
            from: Some("2026-11-30 04:00:00".into()),
            to: Some("2026-11-30T05:00:00.5".into()),
        };
        let sql = select_sql(engine, &s, db, &range, &|_| None).unwrap_or_default();
        assert_eq!(
            sql,
            "SELECT sluice_q.\"LoanID\" AS \"LoanID\", sluice_q.\"amount\" AS \"amount\", \
             to_char(sluice_q.\"updated_at\" AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') AS \"updated_at\", \
             sluice_q.\"active\"::text AS \"active\" FROM \"public\".\"Loans\" AS sluice_q \
             WHERE sluice_q.\"updated_at\" >= '2026-11-30 04:00:00.000000' \
             AND sluice_q.\"updated_at\" < '2026-11-30 05:00:00.500000' \
             ORDER BY sluice_q.\"updated_at\", sluice_q.\"LoanID\""
        );
        // A bound that is not what the cursor holds never reaches SQL.
        let evil = PullRange {
            from: Some("0'; DROP TABLE loans; --".into()),
            to: None,
        };
        assert!(select_sql(engine, &s, db, &evil, &|_| None)
            .is_err_and(|e| e.contains("not a timestamp")));
        // Known column types: the server's own output for timestamps, no to_char.
        let typed =
            select_sql(engine, &s, db, &range, &|c| Some(c == "updated_at")).unwrap_or_default();
        assert!(
            typed.contains("(sluice_q.\"updated_at\" AT TIME ZONE 'UTC') AS \"updated_at\""),
            "{typed}"
        );
        assert!(!typed.contains("to_char"), "{typed}");
        assert_eq!(quote_any(Engine::Mysql, "a`b").as_deref(), Ok("`a``b`"));
        assert_eq!(
            quote_any(Engine::Postgres, "a\"b").as_deref(),
            Ok("\"a\"\"b\"")
        );
    }

    #[test]
    fn a_range_is_new_only_past_the_high_water_mark() {
        let Ok(s) = spec(
            r#"{"prefix":"loans/","kind":"mysql","database":{"connection":{"secret":"s"},"table":"t","incremental":{"column":"LoanID","by":"id"}}}"#,
        ) else {
            panic!("spec")
        };
        let Some((_, db)) = s.pulled() else { panic!() };
        assert_eq!(
            next_range(db, None, Some("11")),
            Ok(Some(PullRange {
                from: None,
                to: Some("11".into())
            }))
        );
        assert_eq!(next_range(db, Some("11"), Some("11")), Ok(None));
        assert_eq!(next_range(db, Some("11"), None), Ok(None));
        assert!(next_range(db, Some("11"), Some("12")).is_ok_and(|r| r.is_some()));
        let r = PullRange {
            from: Some("11".into()),
            to: Some("42".into()),
        };
        assert_eq!(item_id("loans", &r, "x"), "pull://loans/from=11");
        let hour = DateTime::parse_from_rfc3339("2026-11-30T04:05:00Z")
            .map(|d| d.with_timezone(&Utc))
            .unwrap_or_default();
        assert_eq!(
            raw_key(&s, hour, &r, "x"),
            "loans/yyyy=2026/mm=11/dd=30/hh=04/loans.11_42.csv"
        );
        let t = PullRange {
            from: Some("2026-11-30 04:00:00.000000".into()),
            to: Some("2026-11-30 05:00:00.000000".into()),
        };
        assert_eq!(
            raw_key(&s, hour, &t, "x"),
            "loans/yyyy=2026/mm=11/dd=30/hh=04/loans.2026-11-30T040000.000000_2026-11-30T050000.000000.csv"
        );
    }
}
