//! Helpers of the load tests: servers, fresh databases, lake files made by the ingest engine.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use mysql_async::prelude::Queryable;
use sluice_core::target::{Engine, LoadTable, TargetSpec};
use sluice_core::{IngestOptions, Source, TableSpec};
use sluice_db::{load_target, Credentials, LoadError, LoadOptions, LoadReport, LocalLake};

pub const ENGINES: [Engine; 2] = [Engine::Postgres, Engine::Mysql];

pub fn credit_spec() -> TableSpec {
    TableSpec::load(&sluice_testdata::repo_root().join("config/tables/credit.json")).unwrap()
}

/// A database of its own on the engine's local server: its RDS-shaped connection.
pub async fn fresh_db(engine: Engine) -> serde_json::Value {
    sluice_testdata::fresh_database(&engine.to_string(), "t")
}

pub fn credentials(v: &serde_json::Value) -> Credentials {
    Credentials::from_json(&v.to_string(), "test secret", "app").unwrap()
}

/// Runs one statement on a connection of its own (a second reader, or an admin).
pub async fn admin_exec(engine: Engine, creds: &serde_json::Value, sql: &str) {
    match engine {
        Engine::Postgres => {
            let (client, conn) = pg_config(creds)
                .connect(tokio_postgres::NoTls)
                .await
                .unwrap();
            let task = tokio::spawn(conn);
            client.batch_execute(sql).await.unwrap();
            drop(client);
            let _ = task.await;
        }
        Engine::Mysql => {
            let mut conn = mysql_async::Conn::new(my_opts(creds)).await.unwrap();
            conn.query_drop(sql).await.unwrap();
            conn.disconnect().await.unwrap();
        }
    }
}

/// The first column of the first row, as text, from a connection of its own; Err is the
/// server's message.
pub async fn peek(engine: Engine, creds: &serde_json::Value, sql: &str) -> Result<String, String> {
    match engine {
        Engine::Postgres => {
            let (client, conn) = pg_config(creds)
                .connect(tokio_postgres::NoTls)
                .await
                .unwrap();
            let task = tokio::spawn(conn);
            let r = client
                .query_one(sql, &[])
                .await
                .map(|row| row.get::<_, Option<String>>(0).unwrap_or_default())
                .map_err(|e| {
                    e.as_db_error()
                        .map(|d| d.message().to_owned())
                        .unwrap_or(e.to_string())
                });
            drop(client);
            let _ = task.await;
            r
        }
        Engine::Mysql => {
            let mut conn = mysql_async::Conn::new(my_opts(creds)).await.unwrap();
            let r: Result<Option<Option<String>>, _> = conn.query_first(sql).await;
            conn.disconnect().await.unwrap();
            r.map(|v| v.flatten().unwrap_or_default())
                .map_err(|e| e.to_string())
        }
    }
}

pub async fn count(engine: Engine, creds: &serde_json::Value, sql: &str) -> i64 {
    let cast = match engine {
        Engine::Postgres => format!("SELECT ({sql})::text"),
        Engine::Mysql => format!("SELECT CAST(({sql}) AS CHAR)"),
    };
    peek(engine, creds, &cast).await.unwrap().parse().unwrap()
}

pub fn pg_config(v: &serde_json::Value) -> tokio_postgres::Config {
    let mut c = tokio_postgres::Config::new();
    c.host(v["host"].as_str().unwrap())
        .port(v["port"].as_u64().unwrap() as u16)
        .user(v["username"].as_str().unwrap())
        .password(v["password"].as_str().unwrap())
        .dbname(v["dbname"].as_str().unwrap());
    c
}

pub fn my_opts(v: &serde_json::Value) -> mysql_async::Opts {
    mysql_async::OptsBuilder::default()
        .ip_or_hostname(v["host"].as_str().unwrap())
        .tcp_port(v["port"].as_u64().unwrap() as u16)
        .user(v["username"].as_str())
        .pass(v["password"].as_str())
        .db_name(v["dbname"].as_str())
        .prefer_socket(false)
        .into()
}

pub fn target(engine: Engine, mode: &str) -> TargetSpec {
    TargetSpec::from_json(
        "app.json",
        &format!(
            r#"{{"target":"app","engine":"{engine}","connection":{{"secret":"sluice/test/app","tls":"disable"}},
               "tables":[{{"dataset":"credit","mode":"{mode}"}}]}}"#
        ),
    )
    .unwrap()
}

pub fn plan(t: &TargetSpec, spec: &TableSpec) -> Vec<LoadTable> {
    t.plan("app.json", std::slice::from_ref(spec), &[]).unwrap()
}

#[allow(unused_imports)]
pub use sluice_testdata::credit_csv;

/// Ingests `csv` as raw object `key` into the lake folder (what the ingest function publishes).
pub fn ingest(lake: &Path, spec: &TableSpec, key: &str, csv: &str) -> Vec<PathBuf> {
    let source = Source {
        object: key.into(),
        key: key.into(),
        version: Some(format!(
            "{:x}",
            sluice_core::ingest::fnv1a64(csv.as_bytes())
        )),
    };
    let staging = lake.join(".staging");
    let _ = std::fs::remove_dir_all(&staging);
    let report = sluice_core::ingest(
        spec,
        &source,
        std::io::Cursor::new(csv.as_bytes().to_vec()),
        &staging,
        &IngestOptions::default(),
    )
    .unwrap();
    let mut out = Vec::new();
    for o in &report.outputs {
        let to = lake.join(&o.path);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::rename(staging.join(&o.path), &to).unwrap();
        out.push(to);
    }
    std::fs::remove_dir_all(&staging).unwrap();
    out
}

pub fn hour_key(h: u32) -> String {
    format!("credit/yyyy=2026/mm=11/dd=21/hh={h:02}/credit-{h:02}.csv")
}

pub async fn load(
    t: &TargetSpec,
    tables: &[LoadTable],
    creds: &serde_json::Value,
    lake: &Path,
    opts: &LoadOptions,
) -> Result<LoadReport, LoadError> {
    let lake = LocalLake {
        root: lake.to_path_buf(),
    };
    load_target(
        t,
        tables,
        &credentials(creds),
        "sluice/test/app",
        &lake,
        opts,
    )
    .await
}

pub fn quick() -> LoadOptions {
    LoadOptions {
        attempts: 1,
        retry_delay: Duration::from_millis(50),
        connect_timeout: Duration::from_secs(3),
        ..LoadOptions::default()
    }
}

/// Starts a load that pauses once, when the reader has handed the database more than
/// `after_rows` rows (2,000-row batches); returns when it has paused: the running load and the
/// sender that lets it go on. Meanwhile a test looks from a second connection.
pub async fn paused_load(
    t: &TargetSpec,
    tables: &[LoadTable],
    creds: &serde_json::Value,
    lake: &Path,
    after_rows: u64,
) -> (
    tokio::task::JoinHandle<Result<LoadReport, LoadError>>,
    mpsc::Sender<()>,
) {
    let (reached_tx, reached_rx) = mpsc::channel::<()>();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let (reached_tx, go_rx) = (Mutex::new(reached_tx), Mutex::new(go_rx));
    let paused = AtomicBool::new(false);
    let mut opts = quick();
    opts.batch_rows = 2_000;
    opts.on_chunk = Some(Arc::new(move |_, rows| {
        if rows > after_rows && !paused.swap(true, Ordering::SeqCst) {
            let _ = reached_tx.lock().unwrap().send(());
            let _ = go_rx.lock().unwrap().recv_timeout(Duration::from_secs(30));
        }
    }));
    let (t, tables, creds, root) = (
        t.clone(),
        tables.to_vec(),
        creds.clone(),
        lake.to_path_buf(),
    );
    let running = tokio::spawn(async move { load(&t, &tables, &creds, &root, &opts).await });
    tokio::task::spawn_blocking(move || reached_rx.recv_timeout(Duration::from_secs(60)))
        .await
        .unwrap()
        .unwrap();
    (running, go_tx)
}
