//! The database side of a pull (`sluice_core::pull` is the pure side): fix the next range of a
//! database source, and stream a range's rows into a local CSV file, which the caller uploads
//! to the raw bucket and ingests like a dropped file.

use std::path::Path;
use std::time::Duration;

use sluice_core::pull::{self, PullRange};
use sluice_core::target::Engine;
use sluice_core::TableSpec;

use crate::conn::{Db, DbError};
use crate::{ca_of, Credentials};

/// Why a pull, or fixing its range, failed. The message names the dataset and never holds
/// the password.
#[derive(Debug, thiserror::Error)]
#[error("source {dataset}: {message}")]
pub struct PullError {
    pub dataset: String,
    /// Worth retrying later (unreachable, deadlock, lost connection).
    pub transient: bool,
    pub message: String,
}

/// How a pull connects and retries.
#[derive(Debug, Clone)]
pub struct PullOptions {
    pub attempts: u32,
    pub retry_delay: Duration,
    pub connect_timeout: Duration,
}

impl Default for PullOptions {
    fn default() -> Self {
        PullOptions {
            attempts: 3,
            retry_delay: Duration::from_millis(500),
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// What a pull wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullReport {
    pub bytes: u64,
    /// Rows written, when the engine says (MySQL); PostgreSQL's `COPY` stream does not, and the
    /// ingest counts them anyway.
    pub rows: Option<u64>,
}

/// A dataset pulled from a database, with its connection.
pub struct Pull<'a> {
    pub spec: &'a TableSpec,
    pub creds: &'a Credentials,
    /// The secret's name (or the variable's), for messages.
    pub secret: &'a str,
    pub opts: PullOptions,
}

impl Pull<'_> {
    fn fail(&self, transient: bool, message: impl Into<String>) -> PullError {
        let mut message: String = message.into();
        if self.creds.password.len() >= 4 {
            message = message.replace(&self.creds.password, "***");
        }
        PullError {
            dataset: self.spec.dataset.clone(),
            transient,
            message,
        }
    }

    fn source(&self) -> Result<(Engine, &pull::DatabaseSource), PullError> {
        self.spec
            .pulled()
            .ok_or_else(|| self.fail(false, "is not a database source"))
    }

    fn db_error(&self, e: DbError) -> PullError {
        self.fail(e.transient, e.message)
    }

    async fn connect(&self, attempt: u32) -> Result<Db, PullError> {
        let (engine, db) = self.source()?;
        let ca = ca_of(&db.connection).map_err(|m| self.fail(false, m))?;
        Db::connect(engine, self.creds, self.opts.connect_timeout, ca.as_deref())
            .await
            .map_err(|e| {
                if e.auth {
                    self.fail(
                        false,
                        format!(
                            "the database refused the credentials of secret {}: {}",
                            self.secret, e.message
                        ),
                    )
                } else if e.transient {
                    self.fail(
                        true,
                        format!(
                            "cannot reach {engine} at {}:{} after {attempt} attempt(s): {}",
                            self.creds.host, self.creds.port, e.message
                        ),
                    )
                } else {
                    self.db_error(e)
                }
            })
    }

    /// True (after the back-off) when a failed attempt is worth another: every step is
    /// idempotent (a read, or a file written from the start), and runs on a fresh connection.
    async fn again<T>(&self, result: &Result<T, PullError>, attempt: u32) -> bool {
        match result {
            Err(e) if e.transient && attempt < self.opts.attempts.max(1) => {
                tokio::time::sleep(self.opts.retry_delay * 2u32.saturating_pow(attempt - 1)).await;
                true
            }
            _ => false,
        }
    }

    /// The next range after the high-water mark, fixed now: `None` when it would hold no row.
    /// A snapshot's range is the whole table.
    pub async fn next_range(
        &self,
        high_water: Option<&str>,
    ) -> Result<Option<PullRange>, PullError> {
        let (_, db) = self.source()?;
        if db.incremental.is_none() {
            return Ok(Some(PullRange::default()));
        }
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = match self.connect(attempt).await {
                Ok(mut conn) => {
                    let r = self.range_on(&mut conn, high_water).await;
                    conn.close().await;
                    r
                }
                Err(e) => Err(e),
            };
            if !self.again(&result, attempt).await {
                return result;
            }
        }
    }

    async fn range_on(
        &self,
        conn: &mut Db,
        high_water: Option<&str>,
    ) -> Result<Option<PullRange>, PullError> {
        let (engine, db) = self.source()?;
        let end_sql = pull::range_end_sql(engine, db).map_err(|m| self.fail(false, m))?;
        {
            let rows = conn
                .query_text(&end_sql, &[])
                .await
                .map_err(|e| self.db_error(e))?;
            let end = rows.first().and_then(|r| r.first().cloned().flatten());
            let Some(range) = pull::next_range(db, high_water, end.as_deref())
                .map_err(|m| self.fail(false, m))?
            else {
                return Ok(None);
            };
            let any = pull::any_rows_sql(engine, db, &range).map_err(|m| self.fail(false, m))?;
            let found = conn
                .query_text(&any, &[])
                .await
                .map_err(|e| self.db_error(e))?;
            Ok((!found.is_empty()).then_some(range))
        }
    }

    /// Streams the range's rows into `path` as CSV with a header line (the spec's source
    /// names), replacing whatever a failed attempt left there.
    pub async fn to_file(&self, range: &PullRange, path: &Path) -> Result<PullReport, PullError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = match self.connect(attempt).await {
                Ok(mut conn) => {
                    let r = self.file_on(&mut conn, range, path).await;
                    conn.close().await;
                    r
                }
                Err(e) => Err(e),
            };
            if !self.again(&result, attempt).await {
                return result;
            }
        }
    }

    async fn file_on(
        &self,
        conn: &mut Db,
        range: &PullRange,
        path: &Path,
    ) -> Result<PullReport, PullError> {
        let (engine, db) = self.source()?;
        // The timestamp columns' types, from the statement prepared (not run) with every column
        // as it is (its result names are the source names): the pull then prints them natively.
        let probe = pull::select_sql(engine, self.spec, db, range, &|_| Some(false))
            .map_err(|m| self.fail(false, m))?;
        let zones = conn
            .timestamp_zones(&probe)
            .await
            .map_err(|e| self.db_error(e))?;
        let zone = |name: &str| zones.iter().find(|(n, _)| n == name).map(|(_, z)| *z);
        let select = pull::select_sql(engine, self.spec, db, range, &zone)
            .map_err(|m| self.fail(false, m))?;
        let header: Vec<&str> = self
            .spec
            .columns
            .iter()
            .map(|c| c.source_header())
            .collect();
        {
            let io =
                |e: std::io::Error| self.fail(false, format!("writing {}: {e}", path.display()));
            let file = std::fs::File::create(path).map_err(io)?;
            let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
            let rows = conn
                .export_csv(&select, &header, &mut out)
                .await
                .map_err(|e| self.db_error(e))?;
            // Not synced: the file is uploaded next, and a crash before that pulls it again.
            let file = out.into_inner().map_err(|e| io(e.into_error()))?;
            let bytes = file.metadata().map_err(io)?.len();
            Ok(PullReport { bytes, rows })
        }
    }
}
