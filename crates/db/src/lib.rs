//! The load step: lake tables into the application's database (PostgreSQL, MySQL 8 / Aurora
//! MySQL, MariaDB), exactly once, and reconciled.
//!
//! * `append_by_file`: each lake file's rows are replaced in one transaction (delete the file's
//!   rows, bulk-load the file, record it in `sluice_load_ledger`); a file already in the ledger
//!   with the same ETag is skipped, a changed one replaced, one gone from the lake deleted.
//! * `merge`: each new or changed file is bulk-loaded into a temporary table and upserted by the
//!   primary key, in one transaction with its ledger row.
//! * `replace`: the tables of a model (or one table) are emptied children first and loaded
//!   parents first in ONE transaction: a reader sees the old snapshot or the new one, and the
//!   database checks the foreign keys.
//!
//! Rows travel as PostgreSQL `COPY … FROM STDIN` or MySQL `LOAD DATA LOCAL INFILE` streams
//! (batched INSERTs when the server refuses local infile), read from Parquet a batch at a time:
//! memory stays bounded whatever the table's size. After every load the database's row counts
//! are compared with the lake's (per file, or per table) and a difference is an error naming
//! the table, the file and both counts.

mod conn;
pub mod encode;
pub mod lake;
pub mod pull;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde::{Deserialize, Serialize};
use sluice_core::target::{
    parents_first, quote, ConnectionSpec, Engine, LoadMode, LoadTable, TargetSpec, TlsMode,
    LEDGER_TABLE, SOURCE_COLUMN, SOURCE_MAX,
};
use tokio::sync::mpsc;

use conn::{Chunk, Db, DbError};
pub use lake::{Lake, LakeObject, LocalLake};

/// A database connection in the shape RDS writes to Secrets Manager.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub host: String,
    pub port: u16,
    pub username: String,
    pub password: String,
    pub dbname: String,
    pub engine: Option<String>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("password", &"***")
            .field("dbname", &self.dbname)
            .finish()
    }
}

impl Credentials {
    /// Parses a secret's JSON; `source` (the secret's name, or the variable) names it in
    /// errors, which never repeat the text (it holds the password).
    pub fn from_json(text: &str, source: &str, target: &str) -> Result<Credentials, LoadError> {
        let bad = |problem: String| LoadError::Credentials {
            target: target.into(),
            source_name: source.into(),
            problem,
        };
        let v: serde_json::Value = serde_json::from_str(text)
            .map_err(|_| bad("is not a JSON object (the shape RDS writes: host, port, username, password, dbname)".into()))?;
        let text_field = |k: &str| -> Result<String, LoadError> {
            match v.get(k) {
                Some(serde_json::Value::String(s)) if !s.is_empty() => Ok(s.clone()),
                _ => Err(bad(format!("has no text field '{k}'"))),
            }
        };
        let port = match v.get("port") {
            Some(serde_json::Value::Number(n)) => n.as_u64(),
            Some(serde_json::Value::String(s)) => s.parse().ok(),
            _ => None,
        }
        .and_then(|p| u16::try_from(p).ok())
        .ok_or_else(|| bad("has no port number 'port'".into()))?;
        Ok(Credentials {
            host: text_field("host")?,
            port,
            username: text_field("username")?,
            password: text_field("password")?,
            dbname: text_field("dbname")?,
            engine: v.get("engine").and_then(|e| e.as_str()).map(str::to_owned),
        })
    }
}

/// Why a load failed. Every message names the target; none holds a password.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("target {target}: the connection secret {source_name} {problem}")]
    Credentials {
        target: String,
        source_name: String,
        problem: String,
    },
    #[error("target {target}: the database refused the credentials of secret {secret}: {message}")]
    Auth {
        target: String,
        secret: String,
        message: String,
    },
    #[error("target {target}: cannot reach {engine} at {host}:{port} after {attempts} attempt(s): {message}")]
    Unreachable {
        target: String,
        engine: Engine,
        host: String,
        port: u16,
        attempts: u32,
        message: String,
    },
    #[error("target {target}: {message}")]
    Database {
        target: String,
        transient: bool,
        message: String,
    },
    #[error("target {target}: table {table}: {message}")]
    Schema {
        target: String,
        table: String,
        message: String,
    },
    #[error("target {target}: table {table}: lake file {file}: {message}")]
    Lake {
        target: String,
        table: String,
        file: String,
        message: String,
    },
    #[error("target {target}: table {table}: reconciliation failed: {file}: the lake holds {lake} row(s), the database {database}")]
    Reconcile {
        target: String,
        table: String,
        file: String,
        lake: i64,
        database: i64,
    },
}

impl LoadError {
    /// Worth retrying: the database was unreachable, or a deadlock, serialization failure, too
    /// many connections or a lost connection.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            LoadError::Unreachable { .. }
                | LoadError::Database {
                    transient: true,
                    ..
                }
        )
    }

    /// The same error with the password taken out of a database's message.
    fn scrubbed(self, password: &str) -> LoadError {
        match self {
            LoadError::Database {
                target,
                transient,
                message,
            } if password.len() >= 4 => LoadError::Database {
                target,
                transient,
                message: message.replace(password, "***"),
            },
            other => other,
        }
    }
}

/// Called with a table's name and the rows read so far.
pub type ProgressHook = Arc<dyn Fn(&str, u64) + Send + Sync>;

/// How a load runs.
#[derive(Clone)]
pub struct LoadOptions {
    /// The execution (or local run) recorded in the ledger.
    pub execution: String,
    /// Connection attempts before giving up (transient failures only).
    pub attempts: u32,
    /// The first retry's delay; doubled each time.
    pub retry_delay: Duration,
    pub connect_timeout: Duration,
    /// Rows per Parquet batch read.
    pub batch_rows: usize,
    /// Only these lake tables (the ones a run touched); `None`: all of the target's.
    pub only: Option<Vec<String>>,
    /// Called from the reading thread after each chunk is handed to the database (tests use it
    /// to look from a second connection, or to end the load's connection mid-stream).
    pub on_chunk: Option<ProgressHook>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            execution: "local".into(),
            attempts: 3,
            retry_delay: Duration::from_millis(500),
            connect_timeout: Duration::from_secs(10),
            batch_rows: 8_192,
            only: None,
            on_chunk: None,
        }
    }
}

/// What a load did, per table (the run summary and the notification carry it).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LoadReport {
    pub target: String,
    pub engine: String,
    pub method: String,
    pub tables: Vec<TableReport>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct TableReport {
    pub table: String,
    pub lake_table: String,
    pub mode: String,
    /// Lake files loaded (new or changed) this time.
    pub files_loaded: usize,
    /// Lake files the ledger already had with the same ETag.
    pub files_unchanged: usize,
    /// Files gone from the lake whose rows were deleted (append_by_file).
    pub files_removed: usize,
    pub rows_loaded: u64,
    pub columns_added: Vec<String>,
    /// Rows the lake holds for this table (what the database must hold; for merge the sum
    /// of the files' rows, keys may repeat across files).
    pub lake_rows: i64,
    /// Rows in the database table after the load.
    pub database_rows: i64,
    /// True when the counts were compared and agree (per file for append_by_file).
    pub reconciled: bool,
}

/// Loads the planned tables of `target` from `lake`, retrying the whole load (it is idempotent)
/// on transient failures.
pub async fn load_target<L: Lake>(
    target: &TargetSpec,
    tables: &[LoadTable],
    creds: &Credentials,
    secret: &str,
    lake: &L,
    opts: &LoadOptions,
) -> Result<LoadReport, LoadError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let result = load_once(target, tables, creds, secret, lake, opts, attempt).await;
        match result {
            Err(e) if e.is_transient() && attempt < opts.attempts.max(1) => {
                let delay = opts.retry_delay * 2u32.saturating_pow(attempt - 1);
                tokio::time::sleep(delay).await;
            }
            other => return other.map_err(|e| e.scrubbed(&creds.password)),
        }
    }
}

async fn load_once<L: Lake>(
    target: &TargetSpec,
    tables: &[LoadTable],
    creds: &Credentials,
    secret: &str,
    lake: &L,
    opts: &LoadOptions,
    attempt: u32,
) -> Result<LoadReport, LoadError> {
    let name = target.target.as_str();
    let ca = ca_of(&target.connection).map_err(|message| LoadError::Database {
        target: name.into(),
        transient: false,
        message: message.into(),
    })?;
    let mut db = Db::connect(target.engine, creds, opts.connect_timeout, ca.as_deref())
        .await
        .map_err(|e| {
            if e.auth {
                LoadError::Auth {
                    target: name.into(),
                    secret: secret.into(),
                    message: e.message.replace(&creds.password, "***"),
                }
            } else if e.transient {
                LoadError::Unreachable {
                    target: name.into(),
                    engine: target.engine,
                    host: creds.host.clone(),
                    port: creds.port,
                    attempts: attempt,
                    message: e.message,
                }
            } else {
                LoadError::Database {
                    target: name.into(),
                    transient: false,
                    message: e.message,
                }
            }
        })?;
    let result = Loader {
        target: name,
        db: &mut db,
        lake,
        opts,
    }
    .run(tables)
    .await;
    let method = db.method().to_string();
    db.close().await;
    let reports = result?;
    Ok(LoadReport {
        target: name.into(),
        engine: target.engine.to_string(),
        method,
        tables: reports,
    })
}

struct Loader<'a, L: Lake> {
    target: &'a str,
    db: &'a mut Db,
    lake: &'a L,
    opts: &'a LoadOptions,
}

/// A ledger row: a lake file loaded into a table.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    etag: String,
    rows: i64,
}

impl<L: Lake> Loader<'_, L> {
    fn engine(&self) -> Engine {
        self.db.engine()
    }

    fn q(&self, ident: &str) -> Result<String, LoadError> {
        quote(self.engine(), ident).map_err(|message| LoadError::Schema {
            target: self.target.into(),
            table: ident.into(),
            message,
        })
    }

    fn db_err(&self, e: DbError) -> LoadError {
        LoadError::Database {
            target: self.target.into(),
            transient: e.transient,
            message: e.message,
        }
    }

    fn in_table(&self, table: &str, e: DbError) -> LoadError {
        LoadError::Database {
            target: self.target.into(),
            transient: e.transient,
            message: format!("table {table}: {}", e.message),
        }
    }

    async fn exec(&mut self, sql: &str) -> Result<(), LoadError> {
        self.db.execute(sql).await.map_err(|e| self.db_err(e))
    }

    async fn run(&mut self, tables: &[LoadTable]) -> Result<Vec<TableReport>, LoadError> {
        let selected: Vec<&LoadTable> = tables
            .iter()
            .filter(|t| {
                self.opts.only.as_ref().is_none_or(|only| {
                    // A model's tables go together: one touched, all reloaded.
                    only.contains(&t.lake_table)
                        || tables.iter().any(|o| {
                            o.group.is_some() && o.group == t.group && only.contains(&o.lake_table)
                        })
                })
            })
            .collect();
        self.ensure_ledger().await?;
        let mut reports: BTreeMap<String, TableReport> = BTreeMap::new();
        let ordered = parents_first(tables);
        for t in ordered
            .iter()
            .filter(|t| selected.iter().any(|s| s.name == t.name))
        {
            let added = self.ensure_table(t).await?;
            reports.insert(
                t.name.clone(),
                TableReport {
                    table: t.name.clone(),
                    lake_table: t.lake_table.clone(),
                    mode: t.mode.to_string(),
                    columns_added: added,
                    ..TableReport::default()
                },
            );
        }
        // Groups (a model's tables) are replaced together; other tables one by one.
        let mut groups: BTreeMap<String, Vec<&LoadTable>> = BTreeMap::new();
        for t in &ordered {
            if !selected.iter().any(|s| s.name == t.name) {
                continue;
            }
            match (&t.group, t.mode) {
                (Some(g), LoadMode::Replace) => groups.entry(g.clone()).or_default().push(t),
                (_, LoadMode::Replace) => groups
                    .entry(format!("table {}", t.name))
                    .or_default()
                    .push(t),
                _ => {
                    let mut r = reports.remove(&t.name).unwrap_or_default();
                    self.load_by_file(t, &mut r).await?;
                    reports.insert(t.name.clone(), r);
                }
            }
        }
        for members in groups.values() {
            self.replace_group(members, &mut reports).await?;
        }
        for t in &ordered {
            if let Some(r) = reports.get_mut(&t.name) {
                self.reconcile(t, r).await?;
            }
        }
        Ok(ordered
            .iter()
            .filter_map(|t| reports.remove(&t.name))
            .collect())
    }

    async fn ensure_ledger(&mut self) -> Result<(), LoadError> {
        let ts = match self.engine() {
            Engine::Postgres => "timestamptz",
            Engine::Mysql => "datetime(6)",
        };
        let sql = format!(
            "CREATE TABLE IF NOT EXISTS {} (target_table varchar(63) NOT NULL, source_object \
             varchar({SOURCE_MAX}) NOT NULL, etag varchar(128) NOT NULL, row_count bigint NOT \
             NULL, execution varchar(128) NOT NULL, loaded_at {ts} NOT NULL, PRIMARY KEY \
             (target_table, source_object))",
            self.q(LEDGER_TABLE)?
        );
        self.exec(&sql).await
    }

    /// Creates the table, or adds its new nullable columns; returns the columns added.
    async fn ensure_table(&mut self, t: &LoadTable) -> Result<Vec<String>, LoadError> {
        let existing = self.db.columns(&t.name).await.map_err(|e| self.db_err(e))?;
        if existing.is_empty() {
            let create = t
                .create_sql(self.engine(), &t.name)
                .map_err(|m| self.schema_err(t, m))?;
            self.exec(&create).await?;
            if let Some(index) = t
                .source_index_sql(self.engine())
                .map_err(|m| self.schema_err(t, m))?
            {
                self.exec(&index).await?;
            }
            return Ok(Vec::new());
        }
        if t.mode == LoadMode::AppendByFile && !existing.iter().any(|c| c.name == SOURCE_COLUMN) {
            return Err(self.schema_err(
                t,
                format!(
                    "the table exists without the {SOURCE_COLUMN} column append_by_file needs: it \
                 was not created by this load mode (drop it, or choose merge or replace)"
                ),
            ));
        }
        for sql in t
            .alter_sql(self.engine(), &existing)
            .map_err(|m| self.schema_err(t, m))?
        {
            self.exec(&sql).await?;
        }
        // alter_sql refused anything but new nullable columns: those were added.
        Ok(t.columns
            .iter()
            .filter(|c| !existing.iter().any(|e| e.name == c.name))
            .map(|c| c.name.clone())
            .collect())
    }

    async fn ledger(&mut self, table: &str) -> Result<BTreeMap<String, Entry>, LoadError> {
        let sql = match self.engine() {
            Engine::Postgres => format!(
                "SELECT source_object, etag, row_count::text FROM {} WHERE target_table = $1",
                self.q(LEDGER_TABLE)?
            ),
            Engine::Mysql => format!(
                "SELECT source_object, etag, CAST(row_count AS CHAR) FROM {} WHERE target_table = ?",
                self.q(LEDGER_TABLE)?
            ),
        };
        let rows = self
            .db
            .query_text(&sql, &[table])
            .await
            .map_err(|e| self.db_err(e))?;
        Ok(rows
            .into_iter()
            .filter_map(|r| {
                let mut it = r.into_iter();
                let key = it.next().flatten()?;
                let etag = it.next().flatten().unwrap_or_default();
                let rows = it
                    .next()
                    .flatten()
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(-1);
                Some((key, Entry { etag, rows }))
            })
            .collect())
    }

    async fn record(&mut self, table: &str, f: &LakeObject, rows: i64) -> Result<(), LoadError> {
        let sql = match self.engine() {
            Engine::Postgres => format!(
                "INSERT INTO {} (target_table, source_object, etag, row_count, execution, \
                     loaded_at) VALUES ($1, $2, $3, $4::text::bigint, $5, now()) ON CONFLICT \
                     (target_table, source_object) DO UPDATE SET etag = EXCLUDED.etag, row_count \
                     = EXCLUDED.row_count, execution = EXCLUDED.execution, loaded_at = \
                     EXCLUDED.loaded_at",
                self.q(LEDGER_TABLE)?
            ),
            Engine::Mysql => format!(
                "INSERT INTO {} (target_table, source_object, etag, row_count, execution, \
                     loaded_at) VALUES (?, ?, ?, ?, ?, UTC_TIMESTAMP(6)) ON DUPLICATE KEY UPDATE \
                     etag = VALUES(etag), row_count = VALUES(row_count), execution = \
                     VALUES(execution), loaded_at = VALUES(loaded_at)",
                self.q(LEDGER_TABLE)?
            ),
        };
        let n = rows.to_string();
        let execution = self.opts.execution.clone();
        self.db
            .execute_with(&sql, &[table, &f.key, &f.etag, &n, &execution])
            .await
            .map_err(|e| self.db_err(e))?;
        Ok(())
    }

    async fn forget(&mut self, table: &str, key: Option<&str>) -> Result<(), LoadError> {
        let (p1, p2) = match self.engine() {
            Engine::Postgres => ("$1", "$2"),
            Engine::Mysql => ("?", "?"),
        };
        let ledger = self.q(LEDGER_TABLE)?;
        match key {
            Some(k) => {
                self.db
                    .execute_with(
                        &format!(
                        "DELETE FROM {ledger} WHERE target_table = {p1} AND source_object = {p2}"
                    ),
                        &[table, k],
                    )
                    .await
            }
            None => {
                self.db
                    .execute_with(
                        &format!("DELETE FROM {ledger} WHERE target_table = {p1}"),
                        &[table],
                    )
                    .await
            }
        }
        .map_err(|e| self.db_err(e))?;
        Ok(())
    }

    async fn delete_source(&mut self, t: &LoadTable, key: &str) -> Result<(), LoadError> {
        let p = match self.engine() {
            Engine::Postgres => "$1",
            Engine::Mysql => "?",
        };
        let sql = format!(
            "DELETE FROM {} WHERE {} = {p}",
            self.q(&t.name)?,
            self.q(SOURCE_COLUMN)?
        );
        self.db
            .execute_with(&sql, &[key])
            .await
            .map_err(|e| self.in_table(&t.name, e))?;
        Ok(())
    }

    /// Ends the open transaction (a lost connection has ended it already).
    async fn rollback(&mut self) {
        let _ = self.db.execute("ROLLBACK").await;
    }

    /// One transaction per table: the files gone from the lake leave (their rows, for
    /// append_by_file, and their ledger rows), the new and changed files come in. A corrected
    /// file (new lake object, old one gone) is so replaced atomically, keys and all.
    async fn load_by_file(&mut self, t: &LoadTable, r: &mut TableReport) -> Result<(), LoadError> {
        let files = self.list(t).await?;
        self.begin_locked(&t.name).await?;
        let step = async {
            // Read under the lock: a concurrent load of the same table has committed or not
            // started, so a file is never loaded twice.
            let ledger = self.ledger(&t.name).await?;
            let gone: Vec<String> = ledger
                .keys()
                .filter(|k| !files.iter().any(|f| &f.key == *k))
                .cloned()
                .collect();
            let mut changed: Vec<&LakeObject> = files
                .iter()
                .filter(|f| ledger.get(&f.key).is_none_or(|e| e.etag != f.etag))
                .collect();
            if t.mode == LoadMode::ApplyChanges {
                // Commit order: DMS's full-load files (LOAD…), then its CDC files, named by
                // time (lake files keep the raw file's name in front of their hash).
                changed.sort_by_key(|f| apply_order(&f.key));
            }
            for key in &gone {
                if t.mode == LoadMode::AppendByFile {
                    self.delete_source(t, key).await?;
                }
                self.forget(&t.name, Some(key)).await?;
            }
            let mut rows = 0;
            for f in &changed {
                rows += self.load_one(t, f).await?;
            }
            Ok::<_, LoadError>((gone.len(), changed.len(), rows))
        }
        .await;
        let (gone, changed, rows) = self.end_locked(&t.name, step).await?;
        r.files_unchanged += files.len() - changed;
        r.files_removed += gone;
        r.files_loaded += changed;
        r.rows_loaded += rows;
        Ok(())
    }

    /// Opens the transaction that changes `name`, holding the target's lock on it: PostgreSQL
    /// an advisory lock for the transaction, MySQL a named lock for the session (taken before
    /// BEGIN, so the transaction's snapshot is taken after the previous holder committed).
    async fn begin_locked(&mut self, name: &str) -> Result<(), LoadError> {
        let key = format!("sluice-load:{name}");
        match self.engine() {
            Engine::Postgres => {
                self.exec("BEGIN").await?;
                self.db
                    .execute_with("SELECT pg_advisory_xact_lock(hashtext($1))::text", &[&key])
                    .await
                    .map_err(|e| self.db_err(e))?;
            }
            Engine::Mysql => {
                let got = self
                    .db
                    .query_text("SELECT CAST(GET_LOCK(?, 900) AS CHAR)", &[&key])
                    .await
                    .map_err(|e| self.db_err(e))?;
                if first_number(&got) != 1 {
                    return Err(LoadError::Database {
                        target: self.target.into(),
                        transient: true,
                        message: format!("table {name}: another load held its lock for 15 minutes"),
                    });
                }
                self.exec("BEGIN").await?;
            }
        }
        Ok(())
    }

    /// Commits (or, after an error, rolls back) and lets go of the lock.
    async fn end_locked<T>(
        &mut self,
        name: &str,
        step: Result<T, LoadError>,
    ) -> Result<T, LoadError> {
        let ended = match &step {
            Ok(_) => self.exec("COMMIT").await,
            Err(_) => {
                self.rollback().await;
                Ok(())
            }
        };
        if self.engine() == Engine::Mysql {
            let key = format!("sluice-load:{name}");
            let _ = self
                .db
                .query_text("SELECT CAST(RELEASE_LOCK(?) AS CHAR)", &[&key])
                .await;
        }
        ended?;
        step
    }

    /// Inside a transaction: one file of an append_by_file or merge table.
    async fn load_one(&mut self, t: &LoadTable, f: &LakeObject) -> Result<u64, LoadError> {
        let rows = match t.mode {
            LoadMode::AppendByFile => {
                self.delete_source(t, &f.key).await?;
                self.copy_file(t, &t.name, f, Some(&f.key)).await?
            }
            LoadMode::ApplyChanges => self.apply_file(t, f).await?,
            _ => {
                let stage = "sluice_stage";
                let (create, drop) = match self.engine() {
                    // Several files load in one transaction: each drops the last one's stage.
                    Engine::Postgres => (
                        format!(
                            "CREATE TEMP TABLE {} (LIKE {} INCLUDING DEFAULTS) ON COMMIT DROP",
                            self.q(stage)?,
                            self.q(&t.name)?
                        ),
                        format!("DROP TABLE IF EXISTS pg_temp.{}", self.q(stage)?),
                    ),
                    Engine::Mysql => (
                        format!(
                            "CREATE TEMPORARY TABLE {} LIKE {}",
                            self.q(stage)?,
                            self.q(&t.name)?
                        ),
                        format!("DROP TEMPORARY TABLE IF EXISTS {}", self.q(stage)?),
                    ),
                };
                if !drop.is_empty() {
                    self.exec(&drop).await?;
                }
                self.exec(&create).await?;
                let n = self.copy_file(t, stage, f, None).await?;
                let upsert = self.upsert_sql(t, &self.q(stage)?)?;
                self.db
                    .execute(&upsert)
                    .await
                    .map_err(|e| self.in_table(&t.name, e))?;
                if !drop.is_empty() {
                    self.exec(&drop).await?;
                }
                n
            }
        };
        self.record(&t.name, f, rows).await?;
        Ok(rows as u64)
    }

    /// Inside a transaction: one change-log file. Staged with its row order (`sluice_seq`),
    /// then each key's last change wins: `D` deletes the row, `I`/`U` upsert that version.
    async fn apply_file(&mut self, t: &LoadTable, f: &LakeObject) -> Result<i64, LoadError> {
        let e = self.engine();
        let stage = self.q("sluice_stage")?;
        let table = self.q(&t.name)?;
        let op = self.q(t.op_column.as_deref().unwrap_or("op"))?;
        let (prepare, drop): (Vec<String>, Option<String>) = match e {
            Engine::Postgres => (
                vec![
                    // A transaction applies several files: the previous one's stage goes.
                    format!("DROP TABLE IF EXISTS pg_temp.{stage}"),
                    format!("CREATE TEMP TABLE {stage} (LIKE {table} INCLUDING DEFAULTS) ON COMMIT DROP"),
                    format!("ALTER TABLE {stage} ADD COLUMN sluice_seq bigserial"),
                ],
                None,
            ),
            Engine::Mysql => (
                vec![
                    format!("DROP TEMPORARY TABLE IF EXISTS {stage}"),
                    format!("CREATE TEMPORARY TABLE {stage} LIKE {table}"),
                    format!("ALTER TABLE {stage} DROP PRIMARY KEY, ADD COLUMN sluice_seq bigint NOT NULL AUTO_INCREMENT PRIMARY KEY"),
                ],
                Some(format!("DROP TEMPORARY TABLE IF EXISTS {stage}")),
            ),
        };
        for sql in &prepare {
            self.exec(sql).await?;
        }
        let n = self.copy_file(t, "sluice_stage", f, None).await?;
        let keys = t
            .quoted_list(e, &t.primary_key)
            .map_err(|m| self.schema_err(t, m))?;
        let cols: Vec<&str> = t.load_columns();
        let list = t.quoted_list(e, &cols).map_err(|m| self.schema_err(t, m))?;
        // Each key's last change in this file.
        let last = format!(
            "(SELECT {list} FROM (SELECT {list}, ROW_NUMBER() OVER (PARTITION BY {keys} ORDER BY sluice_seq DESC) AS sluice_rn FROM {stage}) AS sluice_all WHERE sluice_rn = 1) AS sluice_last"
        );
        let on: Vec<String> = t
            .primary_key
            .iter()
            .map(|k| Ok(format!("{table}.{0} = sluice_last.{0}", self.q(k)?)))
            .collect::<Result<_, LoadError>>()?;
        let on = on.join(" AND ");
        let delete = match e {
            Engine::Postgres => {
                format!("DELETE FROM {table} USING {last} WHERE {on} AND sluice_last.{op} = 'D'")
            }
            Engine::Mysql => format!(
                "DELETE {table} FROM {table} JOIN {last} ON {on} WHERE sluice_last.{op} = 'D'"
            ),
        };
        self.db
            .execute(&delete)
            .await
            .map_err(|e| self.in_table(&t.name, e))?;
        // The upsert of merge, from the last versions that are not deletes.
        let upsert = self.upsert_sql(t, &format!("{last} WHERE sluice_last.{op} <> 'D'"))?;
        self.db
            .execute(&upsert)
            .await
            .map_err(|e| self.in_table(&t.name, e))?;
        if let Some(drop) = drop {
            self.exec(&drop).await?;
        }
        Ok(n)
    }

    /// One lake file into `dest` (the table, or a staging table): fetched, streamed, released,
    /// and the rows the server took compared with the file's Parquet footer. Returns that count.
    async fn copy_file(
        &mut self,
        t: &LoadTable,
        dest: &str,
        f: &LakeObject,
        extra: Option<&str>,
    ) -> Result<i64, LoadError> {
        let path = self.fetch(t, f).await?;
        let lake_rows = parquet_rows(&path).map_err(|m| self.lake_err(t, f, m))?;
        let loaded = self.stream(t, dest, &path, f, extra).await?;
        self.lake.release(&path);
        if loaded != lake_rows as u64 {
            return Err(self.mismatch(t, &f.key, lake_rows, loaded as i64));
        }
        Ok(lake_rows)
    }

    /// The upsert of `t`'s columns from `rows` (what follows `FROM`: the staging table, or a
    /// subquery with its condition) by the primary key.
    fn upsert_sql(&self, t: &LoadTable, rows: &str) -> Result<String, LoadError> {
        let e = self.engine();
        let cols: Vec<&str> = t.load_columns();
        let list = t.quoted_list(e, &cols).map_err(|m| self.schema_err(t, m))?;
        let keys = t
            .quoted_list(e, &t.primary_key)
            .map_err(|m| self.schema_err(t, m))?;
        let rest: Vec<&str> = cols
            .iter()
            .copied()
            .filter(|c| !t.primary_key.iter().any(|k| k == c))
            .collect();
        let table = self.q(&t.name)?;
        Ok(match e {
            Engine::Postgres => {
                let set = rest
                    .iter()
                    .map(|c| Ok(format!("{0} = EXCLUDED.{0}", self.q(c)?)))
                    .collect::<Result<Vec<_>, LoadError>>()?;
                format!(
                    "INSERT INTO {table} ({list}) SELECT {list} FROM {rows} ON CONFLICT ({keys}) {}",
                    if set.is_empty() {
                        "DO NOTHING".to_string()
                    } else {
                        format!("DO UPDATE SET {}", set.join(", "))
                    }
                )
            }
            Engine::Mysql => {
                let set = if rest.is_empty() {
                    t.primary_key.iter().map(String::as_str).collect::<Vec<_>>()
                } else {
                    rest
                }
                .iter()
                .map(|c| Ok(format!("{0} = VALUES({0})", self.q(c)?)))
                .collect::<Result<Vec<_>, LoadError>>()?;
                format!(
                    "INSERT INTO {table} ({list}) SELECT {list} FROM {rows} ON DUPLICATE KEY UPDATE {}",
                    set.join(", ")
                )
            }
        })
    }

    /// A model's tables (or one `replace` table): children emptied, parents loaded first, one
    /// transaction. Skipped when every table's files are the ones the ledger has.
    async fn replace_group(
        &mut self,
        members: &[&LoadTable],
        reports: &mut BTreeMap<String, TableReport>,
    ) -> Result<(), LoadError> {
        let lock = members.first().map(|t| t.name.clone()).unwrap_or_default();
        self.begin_locked(&lock).await?;
        let step = self.replace_locked(members, reports).await;
        self.end_locked(&lock, step).await
    }

    async fn replace_locked(
        &mut self,
        members: &[&LoadTable],
        reports: &mut BTreeMap<String, TableReport>,
    ) -> Result<(), LoadError> {
        let mut plan = Vec::new();
        let mut unchanged = true;
        for t in members {
            let ledger = self.ledger(&t.name).await?;
            let files = self.list(t).await?;
            let same = ledger.len() == files.len()
                && files
                    .iter()
                    .all(|f| ledger.get(&f.key).is_some_and(|e| e.etag == f.etag));
            unchanged &= same;
            plan.push((*t, files, ledger));
        }
        if unchanged {
            for (t, files, _) in &plan {
                if let Some(r) = reports.get_mut(&t.name) {
                    r.files_unchanged += files.len();
                }
            }
            return Ok(());
        }
        {
            for (t, _, _) in plan.iter().rev() {
                let sql = format!("DELETE FROM {}", self.q(&t.name)?);
                self.db
                    .execute(&sql)
                    .await
                    .map_err(|e| self.in_table(&t.name, e))?;
            }
            for (t, files, ledger) in &plan {
                self.forget(&t.name, None).await?;
                let mut loaded = 0u64;
                for f in files {
                    let rows = self.copy_file(t, &t.name, f, None).await?;
                    self.record(&t.name, f, rows).await?;
                    loaded += rows as u64;
                }
                if let Some(r) = reports.get_mut(&t.name) {
                    r.files_loaded += files.len();
                    r.files_removed += ledger
                        .keys()
                        .filter(|k| !files.iter().any(|f| &f.key == *k))
                        .count();
                    r.rows_loaded += loaded;
                }
            }
        }
        Ok(())
    }

    /// Compares the database's counts with the ledger (which holds each lake file's row count
    /// as its Parquet footer gives it).
    async fn reconcile(&mut self, t: &LoadTable, r: &mut TableReport) -> Result<(), LoadError> {
        let ledger = self.ledger(&t.name).await?;
        r.lake_rows = ledger.values().map(|e| e.rows).sum();
        let table = self.q(&t.name)?;
        let count_sql = match self.engine() {
            Engine::Postgres => format!("SELECT count(*)::text FROM {table}"),
            Engine::Mysql => format!("SELECT CAST(count(*) AS CHAR) FROM {table}"),
        };
        let count = self
            .db
            .query_text(&count_sql, &[])
            .await
            .map_err(|e| self.in_table(&t.name, e))?;
        r.database_rows = first_number(&count);
        match t.mode {
            LoadMode::AppendByFile => {
                let src = self.q(SOURCE_COLUMN)?;
                let sql = match self.engine() {
                    Engine::Postgres => {
                        format!("SELECT {src}, count(*)::text FROM {table} GROUP BY {src}")
                    }
                    Engine::Mysql => {
                        format!("SELECT {src}, CAST(count(*) AS CHAR) FROM {table} GROUP BY {src}")
                    }
                };
                let rows = self
                    .db
                    .query_text(&sql, &[])
                    .await
                    .map_err(|e| self.in_table(&t.name, e))?;
                let in_db: BTreeMap<String, i64> = rows
                    .into_iter()
                    .filter_map(|r| {
                        let mut it = r.into_iter();
                        Some((it.next().flatten()?, it.next().flatten()?.parse().ok()?))
                    })
                    .collect();
                for (key, e) in &ledger {
                    let have = in_db.get(key).copied().unwrap_or(0);
                    if have != e.rows {
                        return Err(self.mismatch(t, key, e.rows, have));
                    }
                }
                if let Some((key, n)) = in_db.iter().find(|(k, _)| !ledger.contains_key(*k)) {
                    return Err(self.mismatch(t, key, 0, *n));
                }
                r.reconciled = true;
            }
            LoadMode::Replace => {
                if r.database_rows != r.lake_rows {
                    return Err(self.mismatch(t, "(whole table)", r.lake_rows, r.database_rows));
                }
                r.reconciled = true;
            }
            // Upserts: keys repeat across files, so the table holds at most the files' rows.
            LoadMode::Merge | LoadMode::ApplyChanges => {
                if r.database_rows > r.lake_rows && r.files_removed == 0 {
                    return Err(self.mismatch(
                        t,
                        "(whole table, at most)",
                        r.lake_rows,
                        r.database_rows,
                    ));
                }
                r.reconciled = false;
            }
        }
        Ok(())
    }

    fn mismatch(&self, t: &LoadTable, file: &str, lake: i64, database: i64) -> LoadError {
        LoadError::Reconcile {
            target: self.target.into(),
            table: t.name.clone(),
            file: file.into(),
            lake,
            database,
        }
    }

    fn schema_err(&self, t: &LoadTable, message: String) -> LoadError {
        LoadError::Schema {
            target: self.target.into(),
            table: t.name.clone(),
            message,
        }
    }

    fn lake_err(&self, t: &LoadTable, f: &LakeObject, message: String) -> LoadError {
        LoadError::Lake {
            target: self.target.into(),
            table: t.name.clone(),
            file: f.key.clone(),
            message,
        }
    }

    async fn list(&self, t: &LoadTable) -> Result<Vec<LakeObject>, LoadError> {
        let files = self
            .lake
            .list(&t.lake_table)
            .await
            .map_err(|message| LoadError::Lake {
                target: self.target.into(),
                table: t.name.clone(),
                file: format!("data/{}/", t.lake_table),
                message,
            })?;
        if let Some(f) = files.iter().find(|f| f.key.len() > SOURCE_MAX) {
            return Err(self.lake_err(t, f, format!("the key is longer than {SOURCE_MAX} bytes")));
        }
        Ok(files)
    }

    async fn fetch(&self, t: &LoadTable, f: &LakeObject) -> Result<PathBuf, LoadError> {
        self.lake.fetch(f).await.map_err(|m| self.lake_err(t, f, m))
    }

    /// Streams one lake file into `dest`: a reading thread decodes Parquet a batch at a time and
    /// hands text chunks (or row chunks) to the connection through a short queue.
    async fn stream(
        &mut self,
        t: &LoadTable,
        dest: &str,
        path: &Path,
        f: &LakeObject,
        extra: Option<&str>,
    ) -> Result<u64, LoadError> {
        let columns = t.load_columns();
        let (tx, rx) = mpsc::channel::<Chunk>(4);
        let job = ReadJob {
            engine: self.engine(),
            path: path.to_path_buf(),
            table: t.clone(),
            extra: extra.map(str::to_owned),
            rows: self.db.uses_insert(),
            batch_rows: self.opts.batch_rows.max(1),
            on_chunk: self.opts.on_chunk.clone(),
        };
        let reader = tokio::task::spawn_blocking(move || job.run(tx));
        let loaded = self.db.bulk_load(dest, &columns, rx).await;
        let read = reader
            .await
            .unwrap_or_else(|e| Err(format!("the reading thread failed: {e}")));
        match (read, loaded) {
            // The connection failed first; the reader only saw it stop taking rows.
            (Err(m), Err(e)) if m == CONNECTION_STOPPED => Err(self.in_table(&t.name, e)),
            (Err(m), _) => Err(self.lake_err(t, f, m)),
            (Ok(_), loaded) => loaded.map_err(|e| self.in_table(&t.name, e)),
        }
    }
}

/// Where a change-log lake file goes in commit order: DMS names full-load files `LOAD…` (a hex
/// counter) and CDC files by time (`20141029-1134010000`); the lake file's name starts with the
/// raw file's, lower-cased.
fn apply_order(key: &str) -> (bool, String) {
    let name = key.rsplit('/').next().unwrap_or(key);
    (!name.starts_with("load"), name.to_owned())
}

/// The CA bundle a connection verifies its server with: none for `tls: disable`; with
/// `require`, the bundle `ca_file` names, which it must.
pub(crate) fn ca_of(c: &ConnectionSpec) -> Result<Option<PathBuf>, &'static str> {
    match (c.tls, &c.ca_file) {
        (TlsMode::Disable, _) => Ok(None),
        (TlsMode::Require, Some(ca)) => Ok(Some(ca_path(ca))),
        (TlsMode::Require, None) => Err(
            "connection.tls is require but connection.ca_file names no CA bundle to verify the \
             server with (on AWS: the RDS CA bundle, packaged beside the function)",
        ),
    }
}

/// A relative CA bundle path is found beside the Lambda function's code (`LAMBDA_TASK_ROOT`),
/// else in the working directory.
pub(crate) fn ca_path(ca: &str) -> PathBuf {
    let p = PathBuf::from(ca);
    match std::env::var_os("LAMBDA_TASK_ROOT") {
        Some(root) if p.is_relative() => PathBuf::from(root).join(p),
        _ => p,
    }
}

fn first_number(rows: &[Vec<Option<String>>]) -> i64 {
    rows.first()
        .and_then(|r| r.first().cloned().flatten())
        .and_then(|n| n.parse().ok())
        .unwrap_or(-1)
}

/// The row count a Parquet file's footer gives.
pub fn parquet_rows(path: &Path) -> Result<i64, String> {
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| e.to_string())?;
    Ok(builder.metadata().file_metadata().num_rows())
}

struct ReadJob {
    engine: Engine,
    path: PathBuf,
    table: LoadTable,
    extra: Option<String>,
    rows: bool,
    batch_rows: usize,
    on_chunk: Option<ProgressHook>,
}

/// Text chunks handed to the connection are about this size.
const CHUNK_BYTES: usize = 1 << 20;
/// What the reader says when the connection stops taking rows (its own failure says why).
const CONNECTION_STOPPED: &str = "the database connection stopped reading";
/// Rows per INSERT statement in the fallback.
const INSERT_ROWS: usize = 500;

impl ReadJob {
    fn run(self, tx: mpsc::Sender<Chunk>) -> Result<u64, String> {
        let result = self.read(&tx);
        if let Err(m) = &result {
            let _ = tx.blocking_send(Chunk::Failed(m.clone()));
        }
        result
    }

    fn read(&self, tx: &mpsc::Sender<Chunk>) -> Result<u64, String> {
        let file = std::fs::File::open(&self.path).map_err(|e| e.to_string())?;
        let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| e.to_string())?;
        let schema = builder.schema().clone();
        let mapping: Vec<Option<usize>> = self
            .table
            .columns
            .iter()
            .map(|c| match schema.index_of(&c.name) {
                Ok(i) => Ok(Some(i)),
                Err(_) if c.nullable => Ok(None),
                Err(_) => Err(format!(
                    "the file has no column '{}', which is NOT NULL in the table",
                    c.name
                )),
            })
            .collect::<Result<_, _>>()?;
        let reader = builder
            .with_batch_size(self.batch_rows)
            .build()
            .map_err(|e| e.to_string())?;
        let closed = || CONNECTION_STOPPED.to_string();
        let mut buf: Vec<u8> = Vec::with_capacity(CHUNK_BYTES + (CHUNK_BYTES >> 2));
        let mut rows = 0u64;
        for batch in reader {
            let batch = batch.map_err(|e| e.to_string())?;
            rows += batch.num_rows() as u64;
            if self.rows {
                let cells =
                    encode::batch_cells(self.engine, &batch, &mapping, self.extra.as_deref())?;
                for part in cells.chunks(INSERT_ROWS) {
                    tx.blocking_send(Chunk::Rows(part.to_vec()))
                        .map_err(|_| closed())?;
                }
                self.progress(rows);
                continue;
            }
            encode::encode_batch(
                self.engine,
                &batch,
                &mapping,
                self.extra.as_deref(),
                &mut buf,
            )?;
            if buf.len() >= CHUNK_BYTES {
                let chunk = Bytes::from(std::mem::replace(
                    &mut buf,
                    Vec::with_capacity(CHUNK_BYTES + (CHUNK_BYTES >> 2)),
                ));
                tx.blocking_send(Chunk::Text(chunk)).map_err(|_| closed())?;
                self.progress(rows);
            }
        }
        if !buf.is_empty() {
            tx.blocking_send(Chunk::Text(Bytes::from(buf)))
                .map_err(|_| closed())?;
            self.progress(rows);
        }
        Ok(rows)
    }

    fn progress(&self, rows: u64) {
        if let Some(f) = &self.on_chunk {
            f(&self.table.name, rows);
        }
    }
}
