//! Target data models: how curated datasets become the tables a new application expects.
//!
//! A model is a JSON document (`config/models/<model>.json`): source datasets by alias, then
//! target tables in dependency order. A lookup table lists its fixed rows; any other table says
//! which source it derives from (`from`, optional inner `join`s, optional `explode` into several
//! typed rows) and how each column is computed ([`Expr`]). Keys are deterministic (a name-based
//! UUID of the natural key), so the same source entity gets the same key on every run. The
//! checks [`ModelSpec::from_json`] makes name the file, the field and the problem, like table
//! specs do; the checks that need the sources' columns happen when the model is planned
//! against them (`normalize::plan`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::spec::{
    is_lake_name, json_files, parse_document, read_document, ColumnSpec, ColumnType, ExtraColumns,
    MissingColumns, OutputFormat, Partitioning, SourceSpec, SpecError, TableSpec,
};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// The model's name, lake-safe: `config/models/<model>.json`.
    pub model: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Lake table name = prefix + target table name. Default: `<model>_`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lake_prefix: Option<String>,
    /// Source alias → curated dataset.
    pub sources: BTreeMap<String, SourceRef>,
    /// When set, every table gets `created`, `created_by`, `updated`, `updated_by`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit: Option<Audit>,
    /// In dependency order: a table may reference only tables listed before it.
    pub tables: Vec<TargetTable>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceRef {
    pub dataset: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Audit {
    /// The `created_by` value of every row.
    pub by: String,
}

/// The audit columns, in order, when a model has `audit`.
pub const AUDIT_COLUMNS: [(&str, ColumnType, bool); 4] = [
    ("created", ColumnType::Timestamp, false),
    ("created_by", ColumnType::String, false),
    ("updated", ColumnType::Timestamp, true),
    ("updated_by", ColumnType::String, true),
];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetTable {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The key column; it must be NOT NULL and unique.
    pub primary_key: String,
    pub columns: Vec<TargetColumn>,
    /// A lookup table's fixed rows (column → value). A table has `rows` or `from`, not both.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rows: Vec<BTreeMap<String, serde_json::Value>>,
    /// The source alias each row derives from: one row per source row (times `explode`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Inner joins to other sources; a row without a match is quarantined, not dropped.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub join: Vec<Join>,
    /// Each source row becomes one row per entry; an entry names values (`{"explode": name}`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub explode: Vec<BTreeMap<String, Expr>>,
    /// Columns whose NULL means "no row" (an absent phone number), not a broken row.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skip_when_null: Vec<String>,
    /// A `from` column holding an ADO XML rowset ([`crate::rowset`]): each source row becomes
    /// one row per `z:row`, whose fields the columns read as `{"rowset": "Field"}`, typed by the
    /// rowset's own schema. Not with `explode`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rowset: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Join {
    pub source: String,
    /// Column of the `from` source → column of this source, all equal.
    pub on: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetColumn {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: ColumnType,
    #[serde(default = "yes")]
    pub nullable: bool,
    /// string: longest accepted value, in characters. Longer values are quarantined, never cut.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_length: Option<usize>,
    /// Foreign key: the table whose primary key this column holds (listed earlier).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub references: Option<String>,
    /// How the value is computed; a lookup table's columns have none (their `rows` say).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Expr>,
}

fn yes() -> bool {
    true
}

/// How one value is computed from a source row. JSON: an object with one key, the kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Expr {
    /// A source column: `"column"` of the `from` source, or `"alias.column"`.
    Column(String),
    /// A fixed value (JSON string, number or boolean; `null` is NULL).
    Const(serde_json::Value),
    /// Splits on whitespace: `first` = the first word, `rest` = the other words.
    Split { column: String, part: SplitPart },
    /// The deterministic key of `table`'s entity whose natural key is `of`.
    Key { table: String, of: Vec<Expr> },
    /// The key of the lookup row of `table` whose column `by` equals `value`.
    Lookup {
        table: String,
        by: String,
        value: Box<Expr>,
    },
    /// A value named by the table's `explode` entries.
    Explode(String),
    /// A field of the current `z:row` of the table's `rowset`.
    Rowset(String),
    /// The `then` of the first `when` whose test holds, else `else`.
    Case {
        when: Vec<When>,
        #[serde(rename = "else")]
        otherwise: Box<Expr>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SplitPart {
    First,
    Rest,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct When {
    #[serde(rename = "if")]
    pub test: Test,
    pub then: Expr,
}

/// A test on a value; NULL passes no test. Exactly one of `equals`, `ends_with`, `starts_with`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Test {
    pub value: Expr,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub equals: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ends_with: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starts_with: Option<String>,
    #[serde(default)]
    pub ignore_case: bool,
}

impl Test {
    pub fn holds(&self, v: &str) -> bool {
        let (text, how) = if let Some(e) = &self.equals {
            (e, 0)
        } else if let Some(e) = &self.ends_with {
            (e, 1)
        } else if let Some(e) = &self.starts_with {
            (e, 2)
        } else {
            return false;
        };
        if self.ignore_case && !(v.is_ascii() && text.is_ascii()) {
            let (v, text) = (v.to_lowercase(), text.to_lowercase());
            return compare(&v, &text, how, false);
        }
        compare(v, text, how, self.ignore_case)
    }
}

/// equals (0), ends_with (1), starts_with (2); `ascii_case`: ignoring ASCII case.
fn compare(v: &str, text: &str, how: u8, ascii_case: bool) -> bool {
    let (v, t) = (v.as_bytes(), text.as_bytes());
    let part = match how {
        0 if v.len() == t.len() => v,
        1 if v.len() >= t.len() => &v[v.len() - t.len()..],
        2 if v.len() >= t.len() => &v[..t.len()],
        _ => return false,
    };
    if ascii_case {
        part.eq_ignore_ascii_case(t)
    } else {
        part == t
    }
}

/// A scalar JSON value as the text a column holds; `null` is NULL.
pub fn json_text(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::Null => None,
        serde_json::Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

impl TargetTable {
    pub fn is_lookup(&self) -> bool {
        !self.rows.is_empty()
    }

    pub fn column(&self, name: &str) -> Option<&TargetColumn> {
        self.columns.iter().find(|c| c.name == name)
    }
}

impl ModelSpec {
    pub fn load(path: &Path) -> Result<ModelSpec, SpecError> {
        let (file, text) = read_document(path)?;
        ModelSpec::from_json(&file, &text)
    }

    /// Every `*.json` model in `dir` (e.g. `config/models`), sorted by file name, with its
    /// document; an absent folder has none.
    pub fn load_dir(dir: &Path) -> Result<Vec<(ModelSpec, String)>, SpecError> {
        let paths = json_files(dir).unwrap_or_default();
        paths
            .iter()
            .map(|p| {
                let (file, text) = read_document(p)?;
                Ok((ModelSpec::from_json(&file, &text)?, text))
            })
            .collect()
    }

    /// A lake table of this model that is also a dataset's name would overwrite it.
    pub fn check_against(&self, datasets: &[&str]) -> Result<(), SpecError> {
        for t in &self.tables {
            let lake = self.lake_table(&t.name);
            if datasets.contains(&lake.as_str()) {
                return Err(SpecError {
                    file: format!("model {}", self.model),
                    field: format!("tables.{}", t.name),
                    problem: format!(
                        "lake table '{lake}' is also a dataset's name; set another `lake_prefix`"
                    ),
                });
            }
        }
        Ok(())
    }

    /// Parses and validates a model; `file` names it in errors.
    pub fn from_json(file: &str, text: &str) -> Result<ModelSpec, SpecError> {
        let model: ModelSpec = parse_document(file, text)?;
        model.validate(file)?;
        Ok(model)
    }

    /// The lake (Glue) table name of a target table.
    pub fn lake_table(&self, table: &str) -> String {
        match &self.lake_prefix {
            Some(p) => format!("{p}{table}"),
            None => format!("{}_{table}", self.model),
        }
    }

    /// The datasets this model reads.
    pub fn datasets(&self) -> BTreeSet<&str> {
        self.sources.values().map(|s| s.dataset.as_str()).collect()
    }

    /// The lake columns of a target table: its own, then the audit columns.
    pub fn lake_columns(&self, table: &TargetTable) -> Vec<ColumnSpec> {
        let column =
            |name: &str, ty: ColumnType, nullable: bool, max_length: Option<usize>| ColumnSpec {
                name: name.to_owned(),
                source: None,
                source_occurrence: None,
                ty,
                nullable,
                null_tokens: Some(Vec::new()),
                formats: Vec::new(),
                true_values: None,
                false_values: None,
                max_length,
                pad_width: None,
                trim: false,
            };
        let mut cols: Vec<ColumnSpec> = table
            .columns
            .iter()
            .map(|c| column(&c.name, c.ty, c.nullable, c.max_length))
            .collect();
        if self.audit.is_some() {
            cols.extend(
                AUDIT_COLUMNS
                    .iter()
                    .map(|(n, ty, nullable)| column(n, *ty, *nullable, None)),
            );
        }
        cols
    }

    /// A target table as a lake table (what the Glue catalog registers): Parquet, not
    /// partitioned (each run writes the whole table).
    pub fn lake_spec(&self, table: &TargetTable) -> TableSpec {
        TableSpec {
            dataset: self.lake_table(&table.name),
            description: table
                .description
                .clone()
                .or_else(|| Some(format!("model {}: table {}", self.model, table.name))),
            source: SourceSpec::default(),
            columns: self.lake_columns(table),
            primary_key: vec![table.primary_key.clone()],
            partitioning: Partitioning::default(),
            output: OutputFormat::Parquet,
            extra_columns: ExtraColumns::default(),
            missing_columns: MissingColumns::default(),
            null_tokens: Vec::new(),
            on_overwrite: crate::spec::OnOverwrite::Replace,
            change_log: None,
            drift: None,
        }
    }

    /// The checks serde cannot express. Column references into sources are checked when the
    /// model is planned against the sources' schemas.
    pub fn validate(&self, file: &str) -> Result<(), SpecError> {
        let err = |field: String, problem: String| SpecError {
            file: file.into(),
            field,
            problem,
        };
        if !is_lake_name(&self.model) {
            return Err(err(
                "model".into(),
                format!("'{}' is not a lake name ([a-z_][a-z0-9_]*)", self.model),
            ));
        }
        if self.sources.is_empty() {
            return Err(err("sources".into(), "a model needs a source".into()));
        }
        for (alias, s) in &self.sources {
            if !is_lake_name(&s.dataset) {
                return Err(err(
                    format!("sources.{alias}.dataset"),
                    format!("'{}' is not a dataset name", s.dataset),
                ));
            }
        }
        if self.tables.is_empty() {
            return Err(err("tables".into(), "a model needs a table".into()));
        }
        let mut seen: BTreeMap<&str, &TargetTable> = BTreeMap::new();
        for (ti, t) in self.tables.iter().enumerate() {
            let at = |f: &str| format!("tables[{ti}]{f}");
            let lake = self.lake_table(&t.name);
            if !is_lake_name(&t.name) || !is_lake_name(&lake) {
                return Err(err(
                    at(".name"),
                    format!("'{lake}' is not a lake name ([a-z_][a-z0-9_]*)"),
                ));
            }
            if seen.contains_key(t.name.as_str()) {
                return Err(err(at(".name"), format!("table '{}' twice", t.name)));
            }
            let mut names = BTreeSet::new();
            for (ci, c) in t.columns.iter().enumerate() {
                if !is_lake_name(&c.name) {
                    return Err(err(
                        at(&format!(".columns[{ci}].name")),
                        format!("'{}' is not a lake name", c.name),
                    ));
                }
                if !names.insert(c.name.as_str())
                    || (self.audit.is_some() && AUDIT_COLUMNS.iter().any(|a| a.0 == c.name))
                {
                    return Err(err(
                        at(&format!(".columns[{ci}].name")),
                        format!(
                            "column '{}' is named twice (audit columns included)",
                            c.name
                        ),
                    ));
                }
                if let Some(r) = &c.references {
                    if !seen.contains_key(r.as_str()) {
                        return Err(err(
                            at(&format!(".columns[{ci}].references")),
                            format!("'{r}' is not a table listed before '{}'", t.name),
                        ));
                    }
                }
                if let Some(v) = &c.value {
                    self.check_expr(v, t, &seen)
                        .map_err(|p| err(at(&format!(".columns[{ci}].value")), p))?;
                }
            }
            match t.column(&t.primary_key) {
                Some(c) if !c.nullable => {}
                Some(_) => {
                    return Err(err(
                        at(".primary_key"),
                        format!("key column '{}' must be NOT NULL", t.primary_key),
                    ))
                }
                None => {
                    return Err(err(
                        at(".primary_key"),
                        format!("'{}' is not one of the table's columns", t.primary_key),
                    ))
                }
            }
            for s in &t.skip_when_null {
                if t.column(s).is_none() {
                    return Err(err(
                        at(".skip_when_null"),
                        format!("'{s}' is not one of the table's columns"),
                    ));
                }
            }
            match (&t.from, t.is_lookup()) {
                (Some(_), true) => {
                    return Err(err(
                        at(""),
                        "a table has fixed `rows` or derives `from` a source, not both".into(),
                    ))
                }
                (None, false) => {
                    return Err(err(
                        at(""),
                        "a table needs fixed `rows` (a lookup) or a `from` source".into(),
                    ))
                }
                (None, true) => {
                    for (ri, row) in t.rows.iter().enumerate() {
                        if let Some(k) = row.keys().find(|k| t.column(k).is_none()) {
                            return Err(err(
                                at(&format!(".rows[{ri}]")),
                                format!("'{k}' is not one of the table's columns"),
                            ));
                        }
                    }
                    if let Some((ci, _)) = t
                        .columns
                        .iter()
                        .enumerate()
                        .find(|(_, c)| c.value.is_some())
                    {
                        return Err(err(
                            at(&format!(".columns[{ci}].value")),
                            "a lookup table's values come from its `rows`".into(),
                        ));
                    }
                }
                (Some(from), false) => {
                    let sources = std::iter::once(from).chain(t.join.iter().map(|j| &j.source));
                    for s in sources {
                        if !self.sources.contains_key(s) {
                            return Err(err(
                                at(".from"),
                                format!("'{s}' is not one of the model's sources"),
                            ));
                        }
                    }
                    if let Some((ci, _)) = t
                        .columns
                        .iter()
                        .enumerate()
                        .find(|(_, c)| c.value.is_none())
                    {
                        return Err(err(
                            at(&format!(".columns[{ci}].value")),
                            "a derived table's columns each need a `value`".into(),
                        ));
                    }
                    if t.rowset.is_some() && !t.explode.is_empty() {
                        return Err(err(
                            at(".rowset"),
                            "a table explodes a rowset or its `explode` entries, not both".into(),
                        ));
                    }
                    let mut shapes = t.explode.iter().map(|e| e.keys().collect::<Vec<_>>());
                    if let Some(first) = shapes.next() {
                        if shapes.any(|s| s != first) {
                            return Err(err(
                                at(".explode"),
                                "every explode entry must name the same values".into(),
                            ));
                        }
                    }
                }
            }
            seen.insert(&t.name, t);
        }
        Ok(())
    }

    fn check_expr(
        &self,
        e: &Expr,
        table: &TargetTable,
        earlier: &BTreeMap<&str, &TargetTable>,
    ) -> Result<(), String> {
        match e {
            Expr::Column(_) | Expr::Split { .. } => Ok(()),
            Expr::Const(v) if v.is_array() || v.is_object() => {
                Err("a constant is a string, number, boolean or null".into())
            }
            Expr::Const(_) => Ok(()),
            Expr::Key { table: t, of } => {
                if t != &table.name && !earlier.contains_key(t.as_str()) {
                    return Err(format!("key of '{t}': no such table before this one"));
                }
                if of.is_empty() {
                    return Err("a key needs at least one natural-key value (`of`)".into());
                }
                of.iter()
                    .try_for_each(|e| self.check_expr(e, table, earlier))
            }
            Expr::Lookup {
                table: t,
                by,
                value,
            } => {
                let lk = earlier
                    .get(t.as_str())
                    .filter(|l| l.is_lookup())
                    .ok_or_else(|| format!("lookup '{t}': no lookup table before this one"))?;
                if lk.column(by).is_none() {
                    return Err(format!("lookup '{t}' has no column '{by}'"));
                }
                self.check_expr(value, table, earlier)
            }
            Expr::Explode(name) => {
                if table.explode.first().is_some_and(|e| e.contains_key(name)) {
                    Ok(())
                } else {
                    Err(format!("'{name}' is not a value of the table's `explode`"))
                }
            }
            Expr::Rowset(_) if table.rowset.is_some() => Ok(()),
            Expr::Rowset(name) => Err(format!(
                "{{\"rowset\": \"{name}\"}} needs the table's `rowset` (the column holding it)"
            )),
            Expr::Case { when, otherwise } => {
                for w in when {
                    let t = &w.test;
                    let tests = [&t.equals, &t.ends_with, &t.starts_with]
                        .iter()
                        .filter(|x| x.is_some())
                        .count();
                    if tests != 1 {
                        return Err(
                            "a test has exactly one of `equals`, `ends_with`, `starts_with`".into(),
                        );
                    }
                    self.check_expr(&t.value, table, earlier)?;
                    self.check_expr(&w.then, table, earlier)?;
                }
                self.check_expr(otherwise, table, earlier)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn test(json: &str) -> Test {
        serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn tests_compare_whole_values_prefixes_and_suffixes() {
        let com = test(r#"{"value": {"const": null}, "ends_with": ".com", "ignore_case": true}"#);
        assert!(com.holds("a@b.COM") && com.holds("a@b.com") && !com.holds("a@b.co"));
        assert!(!com.holds("com"));
        let exact = test(r#"{"value": {"const": null}, "ends_with": ".com"}"#);
        assert!(!exact.holds("a@b.COM"));
        let eq = test(r#"{"value": {"const": null}, "equals": "ÉTÉ", "ignore_case": true}"#);
        assert!(eq.holds("été") && !eq.holds("ete"));
        let starts = test(r#"{"value": {"const": null}, "starts_with": "Ü"}"#);
        assert!(starts.holds("Über") && !starts.holds("über"));
    }
}
