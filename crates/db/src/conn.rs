//! One connection to a target database, PostgreSQL or MySQL, behind the few operations a load
//! needs. Every statement is built from validated identifiers (`sluice_core::target::quote`)
//! and values travel as parameters or in the bulk-load stream, never spliced into SQL.

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use futures_util::SinkExt;
use mysql_async::prelude::Queryable;
use sluice_core::target::{quote, Engine, ExistingColumn};
use tokio::sync::mpsc;

use crate::Credentials;

pub(crate) enum Db {
    Pg {
        client: tokio_postgres::Client,
        task: tokio::task::JoinHandle<()>,
    },
    My {
        conn: mysql_async::Conn,
        local_infile: bool,
    },
}

/// What a failed statement was: worth a retry (deadlock, serialization failure, too many
/// connections, connection lost) or not.
pub(crate) struct DbError {
    pub transient: bool,
    pub auth: bool,
    pub message: String,
}

impl From<tokio_postgres::Error> for DbError {
    fn from(e: tokio_postgres::Error) -> Self {
        use tokio_postgres::error::SqlState;
        let code = e.code().cloned();
        let transient = e.is_closed()
            || code.as_ref().is_some_and(|c| {
                [
                    SqlState::T_R_DEADLOCK_DETECTED,
                    SqlState::T_R_SERIALIZATION_FAILURE,
                    SqlState::TOO_MANY_CONNECTIONS,
                    SqlState::ADMIN_SHUTDOWN,
                    SqlState::CRASH_SHUTDOWN,
                    SqlState::CANNOT_CONNECT_NOW,
                    SqlState::CONNECTION_EXCEPTION,
                    SqlState::CONNECTION_FAILURE,
                ]
                .contains(c)
            })
            || (code.is_none()
                && std::error::Error::source(&e).is_some_and(|s| s.is::<std::io::Error>()));
        let auth = code.as_ref().is_some_and(|c| {
            *c == SqlState::INVALID_PASSWORD || *c == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
        });
        let message = match e.as_db_error() {
            Some(db) => format!("{}: {} ({})", db.severity(), db.message(), db.code().code()),
            None => with_sources(&e),
        };
        // A certificate the CA bundle does not vouch for will not change by retrying.
        let transient = transient && !message.contains("certificate");
        DbError {
            transient,
            auth,
            message,
        }
    }
}

/// An error and its causes: `error performing TLS handshake: invalid peer certificate: …`.
fn with_sources(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cause = c.source();
    }
    out
}

impl From<mysql_async::Error> for DbError {
    fn from(e: mysql_async::Error) -> Self {
        let (transient, auth) = match &e {
            mysql_async::Error::Server(s) => (
                // deadlock, lock wait timeout, too many connections, server shutdown
                matches!(s.code, 1213 | 1205 | 1040 | 1053 | 1927),
                matches!(s.code, 1045 | 1698),
            ),
            mysql_async::Error::Io(_) => (true, false),
            _ => (false, false),
        };
        let message = with_sources(&e);
        let transient = transient && !message.contains("certificate");
        DbError {
            transient,
            auth,
            message,
        }
    }
}

type R<T> = Result<T, DbError>;

/// TLS with the server's certificate verified against the roots in `ca` (a PEM bundle: the RDS
/// CA bundle on AWS) and the host name checked.
fn client_config(ca: &Path) -> R<rustls::ClientConfig> {
    use rustls_pki_types::pem::PemObject;
    let bad = |message: String| DbError {
        transient: false,
        auth: false,
        message,
    };
    let mut roots = rustls::RootCertStore::empty();
    let certs = rustls_pki_types::CertificateDer::pem_file_iter(ca)
        .map_err(|e| bad(format!("the CA bundle {}: {e}", ca.display())))?;
    for cert in certs {
        let cert = cert.map_err(|e| bad(format!("the CA bundle {}: {e}", ca.display())))?;
        roots
            .add(cert)
            .map_err(|e| bad(format!("the CA bundle {}: {e}", ca.display())))?;
    }
    if roots.is_empty() {
        return Err(bad(format!(
            "the CA bundle {} holds no certificate",
            ca.display()
        )));
    }
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

impl Db {
    pub async fn connect(
        engine: Engine,
        c: &Credentials,
        timeout: Duration,
        tls: Option<&Path>,
    ) -> R<Db> {
        match engine {
            Engine::Postgres => {
                let mut cfg = tokio_postgres::Config::new();
                cfg.host(&c.host)
                    .port(c.port)
                    .user(&c.username)
                    .password(c.password.as_bytes())
                    .dbname(&c.dbname)
                    .application_name("sluice-load")
                    .connect_timeout(timeout);
                let task = match tls {
                    None => {
                        let (client, connection) = cfg.connect(tokio_postgres::NoTls).await?;
                        let task = tokio::spawn(async move {
                            let _ = connection.await;
                        });
                        (client, task)
                    }
                    Some(ca) => {
                        cfg.ssl_mode(tokio_postgres::config::SslMode::Require);
                        let config = client_config(ca)?;
                        let connector = tokio_postgres_rustls::MakeRustlsConnect::new(config);
                        let (client, connection) = cfg.connect(connector).await?;
                        let task = tokio::spawn(async move {
                            let _ = connection.await;
                        });
                        (client, task)
                    }
                };
                let (client, task) = task;
                client
                    .batch_execute("SET TIME ZONE 'UTC'; SET DateStyle = 'ISO, YMD'")
                    .await?;
                Ok(Db::Pg { client, task })
            }
            Engine::Mysql => {
                let ssl = match tls {
                    None => None,
                    Some(ca) => {
                        // mysql_async's rustls needs a process-wide provider; a second install
                        // (another connection) is refused harmlessly.
                        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
                        Some(
                            mysql_async::SslOpts::default()
                                .with_root_certs(vec![ca.to_path_buf().into()]),
                        )
                    }
                };
                let opts = mysql_async::OptsBuilder::default()
                    .ssl_opts(ssl)
                    .ip_or_hostname(c.host.clone())
                    .tcp_port(c.port)
                    .user(Some(c.username.clone()))
                    .pass(Some(c.password.clone()))
                    .db_name(Some(c.dbname.clone()))
                    .prefer_socket(false);
                let mut conn = tokio::time::timeout(timeout, mysql_async::Conn::new(opts))
                    .await
                    .map_err(|_| DbError {
                        transient: true,
                        auth: false,
                        message: format!("no answer within {timeout:?}"),
                    })??;
                conn.query_drop("SET time_zone = '+00:00', SESSION sql_mode = CONCAT(@@sql_mode, ',STRICT_ALL_TABLES')")
                    .await?;
                let local_infile: Option<i64> = conn.query_first("SELECT @@local_infile").await?;
                Ok(Db::My {
                    conn,
                    local_infile: local_infile == Some(1),
                })
            }
        }
    }

    pub fn engine(&self) -> Engine {
        match self {
            Db::Pg { .. } => Engine::Postgres,
            Db::My { .. } => Engine::Mysql,
        }
    }

    /// How rows are bulk-loaded on this connection (said in the report).
    pub fn method(&self) -> &'static str {
        match self {
            Db::Pg { .. } => "COPY FROM STDIN",
            Db::My {
                local_infile: true, ..
            } => "LOAD DATA LOCAL INFILE",
            Db::My {
                local_infile: false,
                ..
            } => "batched INSERT (the server refuses LOCAL INFILE: local_infile=OFF)",
        }
    }

    pub fn uses_insert(&self) -> bool {
        matches!(
            self,
            Db::My {
                local_infile: false,
                ..
            }
        )
    }

    pub async fn execute(&mut self, sql: &str) -> R<()> {
        match self {
            Db::Pg { client, .. } => Ok(client.batch_execute(sql).await?),
            Db::My { conn, .. } => Ok(conn.query_drop(sql).await?),
        }
    }

    /// Runs `sql` with text parameters (`$1…` on PostgreSQL, `?` on MySQL).
    pub async fn execute_with(&mut self, sql: &str, params: &[&str]) -> R<u64> {
        match self {
            Db::Pg { client, .. } => {
                let p: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = params
                    .iter()
                    .map(|s| s as &(dyn tokio_postgres::types::ToSql + Sync))
                    .collect();
                Ok(client.execute(sql, &p).await?)
            }
            Db::My { conn, .. } => {
                let p: Vec<mysql_async::Value> = params
                    .iter()
                    .map(|s| mysql_async::Value::from(*s))
                    .collect();
                conn.exec_drop(sql, p).await?;
                Ok(conn.affected_rows())
            }
        }
    }

    /// Rows of text columns (NULL as None); every selected column must be text or cast to it.
    pub async fn query_text(&mut self, sql: &str, params: &[&str]) -> R<Vec<Vec<Option<String>>>> {
        match self {
            Db::Pg { client, .. } => {
                let p: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = params
                    .iter()
                    .map(|s| s as &(dyn tokio_postgres::types::ToSql + Sync))
                    .collect();
                let rows = client.query(sql, &p).await?;
                Ok(rows
                    .iter()
                    .map(|r| {
                        (0..r.len())
                            .map(|i| r.try_get::<_, Option<String>>(i).ok().flatten())
                            .collect()
                    })
                    .collect())
            }
            Db::My { conn, .. } => {
                let p: Vec<mysql_async::Value> = params
                    .iter()
                    .map(|s| mysql_async::Value::from(*s))
                    .collect();
                let rows: Vec<mysql_async::Row> = conn.exec(sql, p).await?;
                Ok(rows
                    .into_iter()
                    .map(|r| {
                        r.unwrap()
                            .into_iter()
                            .map(|v| match v {
                                mysql_async::Value::NULL => None,
                                mysql_async::Value::Bytes(b) => {
                                    Some(String::from_utf8_lossy(&b).into_owned())
                                }
                                other => Some(other.as_sql(true).trim_matches('\'').to_string()),
                            })
                            .collect()
                    })
                    .collect())
            }
        }
    }

    /// The table's columns as `information_schema` describes them (empty: no such table).
    pub async fn columns(&mut self, table: &str) -> R<Vec<ExistingColumn>> {
        let sql = match self {
            Db::Pg { .. } => {
                "SELECT column_name::text, data_type::text, character_maximum_length::text, \
                 numeric_precision::text, numeric_scale::text FROM information_schema.columns \
                 WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position"
            }
            Db::My { .. } => {
                "SELECT CAST(column_name AS CHAR), CAST(data_type AS CHAR), \
                 CAST(character_maximum_length AS CHAR), CAST(numeric_precision AS CHAR), \
                 CAST(numeric_scale AS CHAR) FROM information_schema.columns \
                 WHERE table_schema = DATABASE() AND table_name = ? ORDER BY ordinal_position"
            }
        };
        let is_decimal = |t: &str| t == "numeric" || t == "decimal";
        Ok(self
            .query_text(sql, &[table])
            .await?
            .into_iter()
            .map(|r| {
                let num = |i: usize| {
                    r.get(i)
                        .cloned()
                        .flatten()
                        .and_then(|v| v.parse::<i64>().ok())
                };
                let data_type = r
                    .get(1)
                    .cloned()
                    .flatten()
                    .unwrap_or_default()
                    .to_ascii_lowercase();
                let decimal = is_decimal(&data_type);
                ExistingColumn {
                    name: r.first().cloned().flatten().unwrap_or_default(),
                    char_len: if data_type.contains("char") {
                        num(2)
                    } else {
                        None
                    },
                    precision: if decimal { num(3) } else { None },
                    scale: if decimal { num(4) } else { None },
                    data_type,
                }
            })
            .collect())
    }

    /// Streams the chunks of `rx` into `table (columns)`; returns the rows the server took.
    /// Text chunks for COPY / LOAD DATA, row chunks for the INSERT fallback.
    pub async fn bulk_load(
        &mut self,
        table: &str,
        columns: &[&str],
        mut rx: mpsc::Receiver<Chunk>,
    ) -> R<u64> {
        let engine = self.engine();
        let ident = |n: &str| {
            quote(engine, n).map_err(|message| DbError {
                transient: false,
                auth: false,
                message,
            })
        };
        let cols = columns
            .iter()
            .map(|c| ident(c))
            .collect::<Result<Vec<_>, _>>()?
            .join(", ");
        let table_q = ident(table)?;
        match self {
            Db::Pg { client, .. } => {
                let sink = client
                    .copy_in::<_, Bytes>(&format!("COPY {table_q} ({cols}) FROM STDIN"))
                    .await?;
                futures_util::pin_mut!(sink);
                while let Some(chunk) = rx.recv().await {
                    match chunk {
                        Chunk::Text(b) => sink.send(b).await?,
                        Chunk::Rows(_) | Chunk::Failed(_) => {
                            // Dropping the sink unfinished makes the server fail the COPY.
                            return Err(chunk_failure(chunk));
                        }
                    }
                }
                Ok(sink.as_mut().finish().await?)
            }
            Db::My {
                conn,
                local_infile: true,
            } => {
                let (ftx, frx) = mpsc::channel::<std::io::Result<Bytes>>(2);
                let forward = async move {
                    let mut failure = None;
                    while let Some(chunk) = rx.recv().await {
                        let item = match chunk {
                            Chunk::Text(b) => Ok(b),
                            other => {
                                let e = chunk_failure(other);
                                failure = Some(e.message.clone());
                                Err(std::io::Error::other(e.message))
                            }
                        };
                        let stop = item.is_err();
                        if ftx.send(item).await.is_err() || stop {
                            break;
                        }
                    }
                    failure
                };
                let stream = futures_util::stream::unfold(frx, |mut frx| async move {
                    frx.recv().await.map(|item| (item, frx))
                });
                conn.set_infile_handler(
                    async move { Ok(Box::pin(stream) as mysql_async::InfileData) },
                );
                let sql = format!(
                    "LOAD DATA LOCAL INFILE 'sluice' INTO TABLE {table_q} CHARACTER SET utf8mb4 \
                     FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n' ({cols})"
                );
                let (loaded, failure) = tokio::join!(conn.query_drop(sql), forward);
                if let Some(message) = failure {
                    return Err(DbError {
                        transient: false,
                        auth: false,
                        message,
                    });
                }
                loaded?;
                let rows = conn.affected_rows();
                let warnings = conn.get_warnings();
                if warnings > 0 {
                    // With LOCAL, MySQL turns bad values and duplicate keys into warnings and
                    // goes on; a load here is all or nothing, so any warning fails it.
                    let shown: Vec<mysql_async::Row> = conn
                        .query("SHOW WARNINGS LIMIT 3")
                        .await
                        .unwrap_or_default();
                    let text: Vec<String> = shown
                        .into_iter()
                        .map(|r| {
                            let (level, code, message): (String, u32, String) =
                                mysql_async::from_row_opt(r).unwrap_or_default();
                            format!("{level} {code}: {message}")
                        })
                        .collect();
                    return Err(DbError {
                        transient: false,
                        auth: false,
                        message: format!(
                            "LOAD DATA gave {warnings} warning(s), the load is refused: {}",
                            text.join("; ")
                        ),
                    });
                }
                Ok(rows)
            }
            Db::My {
                conn,
                local_infile: false,
            } => {
                let mut total = 0u64;
                while let Some(chunk) = rx.recv().await {
                    let rows = match chunk {
                        Chunk::Rows(r) => r,
                        other => return Err(chunk_failure(other)),
                    };
                    if rows.is_empty() {
                        continue;
                    }
                    let one = format!("({})", vec!["?"; columns.len()].join(", "));
                    let sql = format!(
                        "INSERT INTO {table_q} ({cols}) VALUES {}",
                        vec![one.as_str(); rows.len()].join(", ")
                    );
                    let params: Vec<mysql_async::Value> = rows
                        .into_iter()
                        .flatten()
                        .map(|c| match c {
                            Some(s) => mysql_async::Value::from(s),
                            None => mysql_async::Value::NULL,
                        })
                        .collect();
                    conn.exec_drop(sql, params).await?;
                    total += conn.affected_rows();
                }
                Ok(total)
            }
        }
    }

    /// PostgreSQL: the result columns of `sql` (prepared, not run) that are `timestamptz`
    /// (`true`) or `timestamp` (`false`), by name. Empty on MySQL.
    pub async fn timestamp_zones(&mut self, sql: &str) -> R<Vec<(String, bool)>> {
        match self {
            Db::Pg { client, .. } => {
                use tokio_postgres::types::Type;
                let stmt = client.prepare(sql).await?;
                Ok(stmt
                    .columns()
                    .iter()
                    .filter_map(|c| match *c.type_() {
                        Type::TIMESTAMPTZ => Some((c.name().to_owned(), true)),
                        Type::TIMESTAMP => Some((c.name().to_owned(), false)),
                        _ => None,
                    })
                    .collect())
            }
            Db::My { .. } => Ok(Vec::new()),
        }
    }

    /// Streams a `SELECT`'s rows to `out` as CSV with a header line (NULL an empty field):
    /// PostgreSQL's `COPY (…) TO STDOUT`, MySQL's text protocol a row at a time. Memory stays
    /// bounded whatever the result's size. Returns the rows written, where the engine says.
    pub async fn export_csv(
        &mut self,
        select: &str,
        header: &[&str],
        out: &mut (dyn std::io::Write + Send),
    ) -> R<Option<u64>> {
        let io = |e: std::io::Error| DbError {
            transient: false,
            auth: false,
            message: format!("writing the pulled rows: {e}"),
        };
        match self {
            Db::Pg { client, .. } => {
                use futures_util::StreamExt;
                let copy = format!("COPY ({select}) TO STDOUT WITH (FORMAT csv, HEADER true)");
                let stream = client.copy_out(&copy).await?;
                futures_util::pin_mut!(stream);
                while let Some(chunk) = stream.next().await {
                    out.write_all(&chunk?).map_err(io)?;
                }
                Ok(None)
            }
            Db::My { conn, .. } => {
                let mut w = csv::WriterBuilder::new().from_writer(out);
                w.write_record(header).map_err(|e| io(e.into()))?;
                let mut result = conn.query_iter(select).await?;
                let mut rows = 0u64;
                while let Some(row) = result.next().await? {
                    let values = row.unwrap();
                    for v in values {
                        match v {
                            mysql_async::Value::NULL => w.write_field([]),
                            mysql_async::Value::Bytes(b) => w.write_field(b),
                            other => w.write_field(other.as_sql(true).trim_matches('\'')),
                        }
                        .map_err(|e| io(e.into()))?;
                    }
                    w.write_record(None::<&[u8]>).map_err(|e| io(e.into()))?;
                    rows += 1;
                }
                w.flush().map_err(io)?;
                Ok(Some(rows))
            }
        }
    }

    pub async fn close(self) {
        match self {
            Db::Pg { client, task } => {
                drop(client);
                let _ = task.await;
            }
            Db::My { conn, .. } => {
                let _ = conn.disconnect().await;
            }
        }
    }
}

/// What the reading side sends the loading side.
pub(crate) enum Chunk {
    Text(Bytes),
    Rows(Vec<Vec<Option<String>>>),
    /// Reading the lake file failed: the load is abandoned (its transaction rolled back).
    Failed(String),
}

fn chunk_failure(chunk: Chunk) -> DbError {
    DbError {
        transient: false,
        auth: false,
        message: match chunk {
            Chunk::Failed(m) => m,
            _ => "internal: a chunk of the wrong kind for this load method".into(),
        },
    }
}
