//! Load targets: the application databases (PostgreSQL, MySQL) that receive lake tables.
//!
//! A target is a JSON document (`config/targets/<name>.json`): the engine, where its
//! connection comes from (a Secrets Manager secret in the shape RDS writes), and the lake tables
//! it receives with a load mode each. [`TargetSpec::plan`] checks it against the table specs and
//! models and gives each database table its columns, keys and foreign keys; the SQL it needs
//! (CREATE TABLE, ADD COLUMN, quoting) is built here from validated names only, so no SQL is
//! ever made from unchecked text. Pure: no database, no network.
//!
//! ## Type mapping
//!
//! | lake type      | PostgreSQL         | MySQL 8 / MariaDB |
//! |----------------|--------------------|-------------------|
//! | string + max_length n | varchar(n)  | varchar(n)        |
//! | string         | text               | longtext          |
//! | int            | integer            | int               |
//! | bigint         | bigint             | bigint            |
//! | double         | double precision   | double            |
//! | decimal(p,s)   | numeric(p,s)       | decimal(p,s)      |
//! | boolean        | boolean            | tinyint(1)        |
//! | date           | date               | date              |
//! | timestamp (UTC)| timestamptz        | datetime(6), UTC  |

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::model::ModelSpec;
use crate::spec::{
    is_lake_name, json_files, parse_document, read_document, ColumnType, SpecError, TableSpec,
};

/// The column an `append_by_file` table gets: the lake object each row came from.
pub const SOURCE_COLUMN: &str = "sluice_source_object";
/// Longest lake object key the ledger and [`SOURCE_COLUMN`] hold (bytes).
pub const SOURCE_MAX: usize = 512;
/// The ledger table every target gets.
pub const LEDGER_TABLE: &str = "sluice_load_ledger";
/// Identifiers longer than this are refused (PostgreSQL's limit is 63 bytes, MySQL's 64).
pub const MAX_IDENTIFIER: usize = 63;
/// Longest string primary key column on MySQL: an InnoDB index key is at most 3072 bytes and
/// a utf8mb4 character takes up to 4.
pub const MYSQL_MAX_KEY_CHARS: usize = 768;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetSpec {
    /// The target's name, `[a-z_][a-z0-9_]*`: `sluice load --target <name>`.
    pub target: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub engine: Engine,
    pub connection: ConnectionSpec,
    /// What the database receives.
    pub tables: Vec<TargetEntry>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Engine {
    Postgres,
    Mysql,
}

impl fmt::Display for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Engine::Postgres => "postgres",
            Engine::Mysql => "mysql",
        })
    }
}

/// Where the connection comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionSpec {
    /// A Secrets Manager secret (name or ARN) holding `host`, `port`, `username`, `password`,
    /// `dbname`, `engine` as RDS writes it. Locally, the environment variable
    /// `SLUICE_TARGET_<TARGET>` (upper case) holding the same JSON is used instead.
    pub secret: String,
    /// `require` (the default: RDS and Aurora require it) verifies the server's certificate
    /// against the system roots and `ca_file`; `disable` is for local servers only.
    #[serde(default)]
    pub tls: TlsMode,
    /// A PEM bundle of extra roots (the RDS CA bundle).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TlsMode {
    #[default]
    Require,
    Disable,
}

/// One lake table, or every table of a model, and how it is loaded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetEntry {
    /// A dataset (`config/tables/<dataset>.json`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset: Option<String>,
    /// A model (`config/models/<model>.json`): all its tables, replaced together.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The table's name in the database (datasets only; default: the dataset's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    pub mode: LoadMode,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoadMode {
    /// Each lake file's rows are replaced in one transaction; the ledger makes a second load of
    /// the same file a no-op, a changed file a replacement, a file gone from the lake a delete.
    AppendByFile,
    /// Upsert by the primary key.
    Merge,
    /// The whole table (a model: all its tables) replaced in one transaction.
    Replace,
    /// A change log (a spec with `change_log`: AWS DMS's files) applied by the primary key:
    /// each new file, in commit order (full-load files, then CDC files by name), deletes the
    /// keys whose last change is `D` and upserts the others with their last version, in one
    /// transaction with its ledger row. The table mirrors the source table.
    ApplyChanges,
}

impl fmt::Display for LoadMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LoadMode::AppendByFile => "append_by_file",
            LoadMode::Merge => "merge",
            LoadMode::Replace => "replace",
            LoadMode::ApplyChanges => "apply_changes",
        })
    }
}

/// A database column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbColumn {
    pub name: String,
    pub ty: ColumnType,
    pub nullable: bool,
    pub max_length: Option<usize>,
}

/// A foreign key: `column` holds `table`'s primary key `references`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeignKey {
    pub column: String,
    pub table: String,
    pub references: String,
}

/// One database table a target receives, resolved against its spec or model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadTable {
    /// The table in the database.
    pub name: String,
    /// The lake table it is loaded from (`data/<lake_table>/`).
    pub lake_table: String,
    pub mode: LoadMode,
    /// The lake's columns, in the lake's order.
    pub columns: Vec<DbColumn>,
    pub primary_key: Vec<String>,
    pub foreign_keys: Vec<ForeignKey>,
    /// The model whose tables are replaced together (in this order, parents first).
    pub group: Option<String>,
    /// `apply_changes`: the column holding each change's operation (`I`, `U`, `D`).
    pub op_column: Option<String>,
}

impl TargetSpec {
    pub fn load(path: &Path) -> Result<TargetSpec, SpecError> {
        let (file, text) = read_document(path)?;
        TargetSpec::from_json(&file, &text)
    }

    /// Every `*.json` target in `dir`; an absent folder has none.
    pub fn load_dir(dir: &Path) -> Result<Vec<TargetSpec>, SpecError> {
        json_files(dir)
            .unwrap_or_default()
            .iter()
            .map(|p| TargetSpec::load(p))
            .collect()
    }

    pub fn from_json(file: &str, text: &str) -> Result<TargetSpec, SpecError> {
        let t: TargetSpec = parse_document(file, text)?;
        if !is_identifier(&t.target) {
            return Err(SpecError {
                file: file.into(),
                field: "target".into(),
                problem: format!(
                    "'{}' is not [a-z_][a-z0-9_]* of at most {MAX_IDENTIFIER} bytes",
                    t.target
                ),
            });
        }
        Ok(t)
    }

    /// The environment variable that stands in for the secret locally.
    pub fn env_var(&self) -> String {
        format!("SLUICE_TARGET_{}", self.target.to_ascii_uppercase())
    }

    /// The database tables this target receives, checked against the specs and models: names,
    /// modes, keys, foreign keys. Model tables come parents first.
    pub fn plan(
        &self,
        file: &str,
        specs: &[TableSpec],
        models: &[ModelSpec],
    ) -> Result<Vec<LoadTable>, SpecError> {
        let err = |field: String, problem: String| SpecError {
            file: file.into(),
            field,
            problem,
        };
        let mut out: Vec<LoadTable> = Vec::new();
        for (i, e) in self.tables.iter().enumerate() {
            let field = format!("tables[{i}]");
            match (&e.dataset, &e.model) {
                (Some(d), None) => {
                    let spec = specs.iter().find(|s| &s.dataset == d).ok_or_else(|| {
                        err(
                            format!("{field}.dataset"),
                            format!("no table spec for dataset '{d}'"),
                        )
                    })?;
                    let name = e.table.clone().unwrap_or_else(|| d.clone());
                    out.push(LoadTable {
                        name,
                        lake_table: spec.dataset.clone(),
                        mode: e.mode,
                        columns: spec
                            .columns
                            .iter()
                            .map(|c| DbColumn {
                                name: c.name.clone(),
                                ty: c.ty,
                                nullable: c.nullable,
                                max_length: c.max_length,
                            })
                            .collect(),
                        primary_key: spec.primary_key.clone(),
                        foreign_keys: Vec::new(),
                        group: None,
                        op_column: spec.change_log.as_ref().map(|l| l.op_column.clone()),
                    });
                }
                (None, Some(m)) => {
                    let model = models
                        .iter()
                        .find(|x| &x.model == m)
                        .ok_or_else(|| err(format!("{field}.model"), format!("no model '{m}'")))?;
                    if e.table.is_some() {
                        return Err(err(
                            format!("{field}.table"),
                            "a model's tables keep the model's names".into(),
                        ));
                    }
                    if e.mode == LoadMode::AppendByFile {
                        return Err(err(
                            format!("{field}.mode"),
                            "a model's tables are whole-table snapshots: use replace (or merge)"
                                .into(),
                        ));
                    }
                    for t in &model.tables {
                        let columns = model
                            .lake_columns(t)
                            .into_iter()
                            .map(|c| DbColumn {
                                name: c.name,
                                ty: c.ty,
                                nullable: c.nullable,
                                max_length: c.max_length,
                            })
                            .collect();
                        let foreign_keys = t
                            .columns
                            .iter()
                            .filter_map(|c| {
                                let parent = c.references.as_ref()?;
                                let pk = model
                                    .tables
                                    .iter()
                                    .find(|p| &p.name == parent)
                                    .map(|p| p.primary_key.clone())?;
                                Some(ForeignKey {
                                    column: c.name.clone(),
                                    table: parent.clone(),
                                    references: pk,
                                })
                            })
                            .collect();
                        out.push(LoadTable {
                            name: t.name.clone(),
                            lake_table: model.lake_table(&t.name),
                            mode: e.mode,
                            columns,
                            primary_key: vec![t.primary_key.clone()],
                            foreign_keys,
                            group: Some(model.model.clone()),
                            op_column: None,
                        });
                    }
                }
                _ => {
                    return Err(err(
                        field,
                        "name exactly one of `dataset` or `model`".into(),
                    ))
                }
            }
        }
        let mut seen = BTreeSet::new();
        for t in &out {
            let field = format!("tables ({})", t.lake_table);
            if !is_identifier(&t.name) {
                return Err(err(
                    field,
                    format!(
                        "table name '{}' is not [a-z_][a-z0-9_]* of at most {MAX_IDENTIFIER} bytes",
                        t.name
                    ),
                ));
            }
            if t.name == LEDGER_TABLE || !seen.insert(t.name.clone()) {
                return Err(err(
                    field,
                    format!(
                        "table '{}' is named twice (or is the ledger's name)",
                        t.name
                    ),
                ));
            }
            for c in &t.columns {
                if !is_identifier(&c.name) || c.name == SOURCE_COLUMN {
                    return Err(err(
                        field,
                        format!("column '{}' cannot be a database column name", c.name),
                    ));
                }
            }
            if t.mode == LoadMode::ApplyChanges && t.op_column.is_none() {
                return Err(err(
                    field,
                    format!(
                        "apply_changes needs a change log: the spec of '{}' has no change_log",
                        t.lake_table
                    ),
                ));
            }
            if t.mode == LoadMode::Merge && t.primary_key.is_empty() {
                return Err(err(
                    field,
                    format!(
                        "merge needs a primary key; the spec of '{}' has none",
                        t.lake_table
                    ),
                ));
            }
            if self.engine == Engine::Mysql {
                for k in &t.primary_key {
                    let c = t.columns.iter().find(|c| &c.name == k);
                    if let Some(c) = c.filter(|c| c.ty == ColumnType::String) {
                        if c.max_length.is_none_or(|n| n > MYSQL_MAX_KEY_CHARS) {
                            return Err(err(
                                field,
                                format!(
                                    "key column '{k}' is a string without a max_length of at most \
                                     {MYSQL_MAX_KEY_CHARS}: MySQL cannot index it"
                                ),
                            ));
                        }
                    }
                }
            }
        }
        for t in &out {
            for fk in &t.foreign_keys {
                if !out.iter().any(|p| p.name == fk.table) {
                    return Err(err(
                        format!("tables ({})", t.lake_table),
                        format!(
                            "column '{}' references '{}', which this target does not receive",
                            fk.column, fk.table
                        ),
                    ));
                }
            }
        }
        Ok(out)
    }
}

/// A name the database may use unquoted and that no engine confuses: `[a-z_][a-z0-9_]*`, at
/// most [`MAX_IDENTIFIER`] bytes. Every identifier in Sluice's SQL passes this and is quoted.
pub fn is_identifier(name: &str) -> bool {
    is_lake_name(name) && name.len() <= MAX_IDENTIFIER
}

/// A validated identifier, quoted for the engine.
pub fn quote(engine: Engine, name: &str) -> Result<String, String> {
    if !is_identifier(name) {
        return Err(format!("'{name}' is not a valid identifier"));
    }
    Ok(match engine {
        Engine::Postgres => format!("\"{name}\""),
        Engine::Mysql => format!("`{name}`"),
    })
}

/// The column's type in the engine's DDL.
pub fn sql_type(engine: Engine, c: &DbColumn) -> String {
    match (engine, c.ty) {
        (_, ColumnType::String) => match c.max_length {
            Some(n) => format!("varchar({n})"),
            None if engine == Engine::Postgres => "text".into(),
            None => "longtext".into(),
        },
        (Engine::Postgres, ColumnType::Int) => "integer".into(),
        (Engine::Mysql, ColumnType::Int) => "int".into(),
        (_, ColumnType::BigInt) => "bigint".into(),
        (Engine::Postgres, ColumnType::Double) => "double precision".into(),
        (Engine::Mysql, ColumnType::Double) => "double".into(),
        (Engine::Postgres, ColumnType::Decimal { precision, scale }) => {
            format!("numeric({precision},{scale})")
        }
        (Engine::Mysql, ColumnType::Decimal { precision, scale }) => {
            format!("decimal({precision},{scale})")
        }
        (Engine::Postgres, ColumnType::Boolean) => "boolean".into(),
        (Engine::Mysql, ColumnType::Boolean) => "tinyint(1)".into(),
        (_, ColumnType::Date) => "date".into(),
        (Engine::Postgres, ColumnType::Timestamp) => "timestamptz".into(),
        (Engine::Mysql, ColumnType::Timestamp) => "datetime(6)".into(),
    }
}

fn column_ddl(engine: Engine, c: &DbColumn) -> Result<String, String> {
    Ok(format!(
        "{} {}{}",
        quote(engine, &c.name)?,
        sql_type(engine, c),
        if c.nullable { "" } else { " NOT NULL" }
    ))
}

impl LoadTable {
    /// `CREATE TABLE IF NOT EXISTS` for `name` (the table itself or a staging copy).
    pub fn create_sql(&self, engine: Engine, name: &str) -> Result<String, String> {
        let mut parts: Vec<String> = self
            .columns
            .iter()
            .map(|c| column_ddl(engine, c))
            .collect::<Result<_, _>>()?;
        if self.mode == LoadMode::AppendByFile {
            parts.push(format!(
                "{} varchar({SOURCE_MAX}) NOT NULL",
                quote(engine, SOURCE_COLUMN)?
            ));
        }
        if !self.primary_key.is_empty() {
            parts.push(format!(
                "PRIMARY KEY ({})",
                self.quoted_list(engine, &self.primary_key)?
            ));
        }
        for fk in &self.foreign_keys {
            parts.push(format!(
                "FOREIGN KEY ({}) REFERENCES {} ({})",
                quote(engine, &fk.column)?,
                quote(engine, &fk.table)?,
                quote(engine, &fk.references)?
            ));
        }
        Ok(format!(
            "CREATE TABLE IF NOT EXISTS {} ({})",
            quote(engine, name)?,
            parts.join(", ")
        ))
    }

    /// The index an `append_by_file` table needs to find a file's rows.
    pub fn source_index_sql(&self, engine: Engine) -> Result<Option<String>, String> {
        if self.mode != LoadMode::AppendByFile {
            return Ok(None);
        }
        let index = format!(
            "{}_by_source",
            self.name
                .chars()
                .take(MAX_IDENTIFIER - 10)
                .collect::<String>()
        );
        Ok(Some(match engine {
            Engine::Postgres => format!(
                "CREATE INDEX IF NOT EXISTS {} ON {} ({})",
                quote(engine, &index)?,
                quote(engine, &self.name)?,
                quote(engine, SOURCE_COLUMN)?
            ),
            Engine::Mysql => format!(
                "CREATE INDEX {} ON {} ({})",
                quote(engine, &index)?,
                quote(engine, &self.name)?,
                quote(engine, SOURCE_COLUMN)?
            ),
        }))
    }

    /// The columns rows are loaded into, in order (an `append_by_file` table adds the source).
    pub fn load_columns(&self) -> Vec<&str> {
        let mut cols: Vec<&str> = self.columns.iter().map(|c| c.name.as_str()).collect();
        if self.mode == LoadMode::AppendByFile {
            cols.push(SOURCE_COLUMN);
        }
        cols
    }

    pub fn quoted_list(&self, engine: Engine, names: &[impl AsRef<str>]) -> Result<String, String> {
        Ok(names
            .iter()
            .map(|n| quote(engine, n.as_ref()))
            .collect::<Result<Vec<_>, _>>()?
            .join(", "))
    }

    /// What the existing table needs to match the spec: `ALTER TABLE … ADD COLUMN` for each new
    /// nullable column. A new NOT NULL column, a changed type or a narrowed length is refused
    /// with a message naming the table and column. Columns the spec does not name are left.
    pub fn alter_sql(
        &self,
        engine: Engine,
        existing: &[ExistingColumn],
    ) -> Result<Vec<String>, String> {
        let by_name: BTreeMap<&str, &ExistingColumn> =
            existing.iter().map(|c| (c.name.as_str(), c)).collect();
        let mut out = Vec::new();
        for c in &self.columns {
            match by_name.get(c.name.as_str()) {
                None if c.nullable => out.push(format!(
                    "ALTER TABLE {} ADD COLUMN {}",
                    quote(engine, &self.name)?,
                    column_ddl(engine, c)?
                )),
                None => {
                    return Err(format!(
                        "table {}: new column '{}' is NOT NULL: the rows already there have no \
                         value for it (make it nullable, or add it by hand with a default)",
                        self.name, c.name
                    ))
                }
                Some(have) => {
                    let want = expected(engine, c);
                    if !have.same_type(&want) {
                        let narrowing = matches!(
                            (have.char_len, want.char_len),
                            (Some(h), Some(w)) if w < h
                        ) || (have.data_type == want.data_type
                            && have
                                .precision
                                .zip(want.precision)
                                .is_some_and(|(h, w)| w < h));
                        return Err(format!(
                            "table {}: column '{}' is {} in the database and {} in the spec: {} \
                             is refused (change the table by hand, or the spec back)",
                            self.name,
                            c.name,
                            have.describe(),
                            sql_type(engine, c),
                            if narrowing {
                                "a narrowing"
                            } else {
                                "a type change"
                            }
                        ));
                    }
                }
            }
        }
        Ok(out)
    }
}

/// A column as the database's `information_schema.columns` describes it (lower-case type).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExistingColumn {
    pub name: String,
    pub data_type: String,
    pub char_len: Option<i64>,
    pub precision: Option<i64>,
    pub scale: Option<i64>,
}

impl ExistingColumn {
    fn same_type(&self, want: &ExistingColumn) -> bool {
        self.data_type == want.data_type
            && (want.char_len.is_none() || self.char_len == want.char_len)
            && (want.precision.is_none() || self.precision == want.precision)
            && (want.scale.is_none() || self.scale == want.scale)
    }

    fn describe(&self) -> String {
        match (self.char_len, self.precision, self.scale) {
            (Some(n), _, _) => format!("{}({n})", self.data_type),
            (None, Some(p), Some(s))
                if self.data_type.contains("numeric") || self.data_type == "decimal" =>
            {
                format!("{}({p},{s})", self.data_type)
            }
            _ => self.data_type.clone(),
        }
    }
}

/// What `information_schema.columns` says for a column created from `c`.
fn expected(engine: Engine, c: &DbColumn) -> ExistingColumn {
    let (data_type, char_len, precision, scale): (&str, Option<i64>, Option<i64>, Option<i64>) =
        match (engine, c.ty) {
            (Engine::Postgres, ColumnType::String) => match c.max_length {
                Some(n) => ("character varying", Some(n as i64), None, None),
                None => ("text", None, None, None),
            },
            (Engine::Mysql, ColumnType::String) => match c.max_length {
                Some(n) => ("varchar", Some(n as i64), None, None),
                None => ("longtext", None, None, None),
            },
            (Engine::Postgres, ColumnType::Int) => ("integer", None, None, None),
            (Engine::Mysql, ColumnType::Int) => ("int", None, None, None),
            (_, ColumnType::BigInt) => ("bigint", None, None, None),
            (Engine::Postgres, ColumnType::Double) => ("double precision", None, None, None),
            (Engine::Mysql, ColumnType::Double) => ("double", None, None, None),
            (Engine::Postgres, ColumnType::Decimal { precision, scale }) => {
                ("numeric", None, Some(precision.into()), Some(scale.into()))
            }
            (Engine::Mysql, ColumnType::Decimal { precision, scale }) => {
                ("decimal", None, Some(precision.into()), Some(scale.into()))
            }
            (Engine::Postgres, ColumnType::Boolean) => ("boolean", None, None, None),
            (Engine::Mysql, ColumnType::Boolean) => ("tinyint", None, None, None),
            (_, ColumnType::Date) => ("date", None, None, None),
            (Engine::Postgres, ColumnType::Timestamp) => {
                ("timestamp with time zone", None, None, None)
            }
            (Engine::Mysql, ColumnType::Timestamp) => ("datetime", None, None, None),
        };
    ExistingColumn {
        name: c.name.clone(),
        data_type: data_type.into(),
        char_len,
        precision,
        scale,
    }
}

/// Tables in an order where every table comes after the tables it references (a model's
/// tables are listed parents first already; this keeps that and checks it).
pub fn parents_first(tables: &[LoadTable]) -> Vec<&LoadTable> {
    let mut done: BTreeSet<&str> = BTreeSet::new();
    let mut out = Vec::new();
    let mut left: Vec<&LoadTable> = tables.iter().collect();
    while !left.is_empty() {
        let before = left.len();
        left.retain(|t| {
            let ready = t
                .foreign_keys
                .iter()
                .all(|fk| fk.table == t.name || done.contains(fk.table.as_str()));
            if ready {
                done.insert(t.name.as_str());
                out.push(*t);
            }
            !ready
        });
        if left.len() == before {
            // A cycle: keep the given order for the rest.
            out.append(&mut left);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn credit() -> TableSpec {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../config/tables/credit.json"
        ))
        .unwrap_or_default();
        TableSpec::from_json("credit.json", &text).unwrap_or_else(|e| panic!("{e}"))
    }

    fn aspen() -> ModelSpec {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../config/models/aspen.json"
        ))
        .unwrap_or_default();
        ModelSpec::from_json("aspen.json", &text).unwrap_or_else(|e| panic!("{e}"))
    }

    fn target(engine: &str, tables: &str) -> TargetSpec {
        TargetSpec::from_json(
            "t.json",
            &format!(
                r#"{{"target":"app","engine":"{engine}","connection":{{"secret":"s"}},"tables":{tables}}}"#
            ),
        )
        .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn credit_is_created_with_the_documented_types_on_both_engines() {
        let t = target(
            "postgres",
            r#"[{"dataset":"credit","mode":"append_by_file"}]"#,
        );
        let plan = t
            .plan("t.json", &[credit()], &[])
            .unwrap_or_else(|e| panic!("{e}"));
        let sql = plan[0]
            .create_sql(Engine::Postgres, "credit")
            .unwrap_or_default();
        assert!(sql.starts_with("CREATE TABLE IF NOT EXISTS \"credit\" (\"row_no\" bigint NOT NULL, \"serious_dlqin2yrs\" boolean, \"revolving_utilization_of_unsecured_lines\" double precision"), "{sql}");
        assert!(
            sql.ends_with(
                "\"sluice_source_object\" varchar(512) NOT NULL, PRIMARY KEY (\"row_no\"))"
            ),
            "{sql}"
        );
        let my = plan[0]
            .create_sql(Engine::Mysql, "credit")
            .unwrap_or_default();
        assert!(my.contains("`serious_dlqin2yrs` tinyint(1), `revolving_utilization_of_unsecured_lines` double,"), "{my}");
        assert_eq!(plan[0].load_columns().last(), Some(&SOURCE_COLUMN));
    }

    #[test]
    fn aspen_tables_come_parents_first_with_their_foreign_keys() {
        let t = target("mysql", r#"[{"model":"aspen","mode":"replace"}]"#);
        let plan = t
            .plan("t.json", &[], &[aspen()])
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(plan.len(), 9);
        let order: Vec<&str> = parents_first(&plan)
            .iter()
            .map(|t| t.name.as_str())
            .collect();
        for t in &plan {
            let at = order
                .iter()
                .position(|n| *n == t.name)
                .unwrap_or(usize::MAX);
            for fk in &t.foreign_keys {
                let parent = order
                    .iter()
                    .position(|n| *n == fk.table)
                    .unwrap_or(usize::MAX);
                assert!(parent < at, "{} before {}", fk.table, t.name);
            }
        }
        assert!(plan.iter().any(|t| !t.foreign_keys.is_empty()));
        let with_fk = plan
            .iter()
            .find(|t| !t.foreign_keys.is_empty())
            .map(|t| t.create_sql(Engine::Mysql, &t.name));
        assert!(with_fk.is_some_and(|s| s.unwrap_or_default().contains("FOREIGN KEY (`")));
    }

    #[test]
    fn plans_refuse_what_the_database_cannot_hold() {
        let bad = |tables: &str, engine: &str, want: &str| {
            let t = target(engine, tables);
            let e = t
                .plan("t.json", &[credit()], &[aspen()])
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(e.contains(want), "{tables}: {e}");
        };
        bad(
            r#"[{"dataset":"nope","mode":"merge"}]"#,
            "postgres",
            "no table spec for dataset 'nope'",
        );
        bad(
            r#"[{"model":"aspen","mode":"append_by_file"}]"#,
            "postgres",
            "use replace",
        );
        bad(
            r#"[{"dataset":"credit","mode":"merge","table":"Credit; drop"}]"#,
            "postgres",
            "is not [a-z_]",
        );
        bad(
            r#"[{"dataset":"credit","mode":"merge"},{"dataset":"credit","mode":"merge"}]"#,
            "postgres",
            "named twice",
        );
        bad(
            r#"[{"dataset":"credit","model":"aspen","mode":"merge"}]"#,
            "postgres",
            "exactly one",
        );
        let mut no_key = credit();
        no_key.primary_key.clear();
        let t = target("postgres", r#"[{"dataset":"credit","mode":"merge"}]"#);
        let e = t
            .plan("t.json", &[no_key], &[])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("merge needs a primary key"), "{e}");
        let mut text_key = credit();
        text_key.columns[0].ty = ColumnType::String;
        let t = target("mysql", r#"[{"dataset":"credit","mode":"merge"}]"#);
        let e = t
            .plan("t.json", &[text_key.clone()], &[])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("MySQL cannot index it"), "{e}");
        let t = target("postgres", r#"[{"dataset":"credit","mode":"merge"}]"#);
        assert!(t.plan("t.json", &[text_key], &[]).is_ok());
        assert!(TargetSpec::from_json(
            "t.json",
            r#"{"target":"x","engine":"oracle","connection":{"secret":"s"},"tables":[]}"#
        )
        .is_err());
    }

    #[test]
    fn identifiers_are_checked_before_they_are_quoted() {
        assert_eq!(
            quote(Engine::Postgres, "user").ok().as_deref(),
            Some("\"user\"")
        );
        assert_eq!(
            quote(Engine::Mysql, "order").ok().as_deref(),
            Some("`order`")
        );
        for hostile in ["a\"b", "a`b", "x; drop table y", "", "A", &"a".repeat(64)] {
            assert!(quote(Engine::Postgres, hostile).is_err(), "{hostile}");
            assert!(quote(Engine::Mysql, hostile).is_err(), "{hostile}");
        }
    }

    fn existing(name: &str, data_type: &str, char_len: Option<i64>) -> ExistingColumn {
        ExistingColumn {
            name: name.into(),
            data_type: data_type.into(),
            char_len,
            precision: None,
            scale: None,
        }
    }

    #[test]
    fn a_new_nullable_column_is_added_and_a_narrowing_refused() {
        let table = LoadTable {
            name: "people".into(),
            lake_table: "people".into(),
            mode: LoadMode::Merge,
            columns: vec![
                DbColumn {
                    name: "id".into(),
                    ty: ColumnType::BigInt,
                    nullable: false,
                    max_length: None,
                },
                DbColumn {
                    name: "name".into(),
                    ty: ColumnType::String,
                    nullable: true,
                    max_length: Some(10),
                },
                DbColumn {
                    name: "email".into(),
                    ty: ColumnType::String,
                    nullable: true,
                    max_length: None,
                },
            ],
            primary_key: vec!["id".into()],
            foreign_keys: vec![],
            group: None,
            op_column: None,
        };
        let have = vec![
            existing("id", "bigint", None),
            existing("name", "character varying", Some(10)),
        ];
        assert_eq!(
            table.alter_sql(Engine::Postgres, &have),
            Ok(vec![
                "ALTER TABLE \"people\" ADD COLUMN \"email\" text".to_string()
            ])
        );
        let wider = vec![
            existing("id", "bigint", None),
            existing("name", "character varying", Some(40)),
            existing("email", "text", None),
        ];
        let e = table
            .alter_sql(Engine::Postgres, &wider)
            .err()
            .unwrap_or_default();
        assert!(e.contains("table people: column 'name' is character varying(40) in the database and varchar(10) in the spec: a narrowing is refused"), "{e}");
        let retyped = vec![
            existing("id", "integer", None),
            existing("name", "varchar", Some(10)),
            existing("email", "longtext", None),
        ];
        let e = table
            .alter_sql(Engine::Mysql, &retyped)
            .err()
            .unwrap_or_default();
        assert!(
            e.contains(
                "column 'id' is integer in the database and bigint in the spec: a type change"
            ),
            "{e}"
        );
        let mut strict = table.clone();
        strict.columns[2].nullable = false;
        let e = strict
            .alter_sql(Engine::Postgres, &have)
            .err()
            .unwrap_or_default();
        assert!(e.contains("new column 'email' is NOT NULL"), "{e}");
    }
}
