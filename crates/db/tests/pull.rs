//! Pulls from real servers (`scripts/local-db`: PostgreSQL 15 and MariaDB 10.11), each test on
//! both engines in a database of its own: ranges fixed from the database, every committed
//! version pulled once, late commits caught by the lag, the same range giving the same bytes,
//! and clear errors for a vanished column or a server that is not there.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use mysql_async::prelude::Queryable;
use sluice_core::pull::PullRange;
use sluice_core::target::Engine;
use sluice_core::TableSpec;
use sluice_db::pull::{Pull, PullOptions};

fn loans_spec(engine: Engine, cursor: &str, by: &str, lag: u32) -> TableSpec {
    let kind = match engine {
        Engine::Postgres => "postgres",
        Engine::Mysql => "mysql",
    };
    let lag = if lag > 0 {
        format!(r#","lag_seconds":{lag}"#)
    } else {
        String::new()
    };
    TableSpec::from_json(
        "loans.json",
        &format!(
            r#"{{"dataset":"loans","source":{{"prefix":"loans/","kind":"{kind}","database":{{
                "connection":{{"secret":"src","tls":"disable"}},"table":"Loans",
                "incremental":{{"column":"{cursor}","by":"{by}"{lag}}}}}}},
              "columns":[{{"name":"loan_id","source":"LoanID","type":"bigint","nullable":false}},
                         {{"name":"amount","type":"decimal(12,2)"}},
                         {{"name":"updated_at","type":"timestamp","nullable":false}},
                         {{"name":"active","type":"boolean"}},
                         {{"name":"note","type":"string"}}],
              "primary_key":["loan_id"]}}"#
        ),
    )
    .unwrap()
}

/// `Loans` with a mixed-case key column, as legacy tables have.
async fn loans_table(engine: Engine, creds: &serde_json::Value) {
    let ddl = match engine {
        Engine::Postgres => {
            r#"CREATE TABLE "Loans" ("LoanID" bigint PRIMARY KEY, amount numeric(12,2),
               updated_at timestamptz NOT NULL DEFAULT now(), active boolean, note text)"#
        }
        Engine::Mysql => {
            "CREATE TABLE Loans (LoanID bigint PRIMARY KEY, amount decimal(12,2),
             updated_at datetime(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6), active boolean, note text)"
        }
    };
    admin_exec(engine, creds, ddl).await;
}

/// Runs a statement written with `Loans` and `LoanID` bare (PostgreSQL needs them quoted).
async fn exec(engine: Engine, creds: &serde_json::Value, sql: &str) {
    admin_exec(engine, creds, &legacy_names(engine, sql)).await;
}

fn legacy_names(engine: Engine, sql: &str) -> String {
    match engine {
        Engine::Postgres => sql
            .replace("Loans", "\"Loans\"")
            .replace("LoanID", "\"LoanID\""),
        Engine::Mysql => sql.to_owned(),
    }
}

fn quick() -> PullOptions {
    PullOptions {
        attempts: 2,
        retry_delay: Duration::from_millis(50),
        connect_timeout: Duration::from_secs(5),
    }
}

/// A pull of `spec` with connection `c`, retrying quickly.
fn puller<'a>(spec: &'a TableSpec, c: &'a sluice_db::Credentials) -> Pull<'a> {
    Pull {
        spec,
        creds: c,
        secret: "src",
        opts: quick(),
    }
}

async fn next(
    spec: &TableSpec,
    creds: &serde_json::Value,
    from: Option<&str>,
) -> Option<PullRange> {
    let c = credentials(creds);
    let p = puller(spec, &c);
    p.next_range(from).await.unwrap()
}

async fn pull(spec: &TableSpec, creds: &serde_json::Value, range: &PullRange) -> String {
    let c = credentials(creds);
    let p = puller(spec, &c);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pull.csv");
    let report = p.to_file(range, &path).await.unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(report.bytes, text.len() as u64);
    text
}

/// The `LoanID`s of a pulled CSV, in file order.
fn ids(csv: &str) -> Vec<String> {
    csv.lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_committed_version_is_pulled_once_and_a_range_repeats_byte_for_byte() {
    for engine in [Engine::Postgres, Engine::Mysql] {
        let creds = fresh_db(engine).await;
        loans_table(engine, &creds).await;
        let spec = loans_spec(engine, "updated_at", "timestamp", 0);
        // Empty table: nothing to pull, no range.
        assert_eq!(next(&spec, &creds, None).await, None, "{engine}");
        exec(
            engine,
            &creds,
            "INSERT INTO Loans (LoanID, amount, active, note) VALUES \
             (1, 100.50, true, 'first, with a comma'), (2, 0.10, false, ''), (3, NULL, NULL, NULL)",
        )
        .await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        let first = next(&spec, &creds, None).await.unwrap();
        assert_eq!(first.from, None);
        let csv1 = pull(&spec, &creds, &first).await;
        assert_eq!(ids(&csv1), ["1", "2", "3"], "{engine}: {csv1}");
        assert!(
            csv1.starts_with("LoanID,amount,updated_at,active,note\n1,100.50,"),
            "{engine}: {csv1}"
        );
        assert!(
            csv1.contains(",true,\"first, with a comma\""),
            "{engine}: {csv1}"
        );
        // Nothing changed since: no new range.
        let hwm = first.to.clone().unwrap();
        assert_eq!(next(&spec, &creds, Some(&hwm)).await, None, "{engine}");

        // Row 1 updated twice and row 4 inserted between runs: the next range has row 1 as
        // it is now (the version in between was never committed to a pull) and row 4.
        let bump = match engine {
            Engine::Postgres => "UPDATE Loans SET amount = amount + 1, updated_at = now() WHERE LoanID = 1",
            Engine::Mysql => "UPDATE Loans SET amount = amount + 1, updated_at = CURRENT_TIMESTAMP(6) WHERE LoanID = 1",
        };
        exec(engine, &creds, bump).await;
        exec(engine, &creds, bump).await;
        exec(
            engine,
            &creds,
            "INSERT INTO Loans (LoanID, amount, active, note) VALUES (4, 4.00, true, 'new')",
        )
        .await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        let second = next(&spec, &creds, Some(&hwm)).await.unwrap();
        assert_eq!(second.from.as_deref(), Some(hwm.as_str()));
        let csv2 = pull(&spec, &creds, &second).await;
        assert_eq!(ids(&csv2), ["1", "4"], "{engine}: {csv2}");
        assert!(csv2.contains("\n1,102.50,"), "{engine}: {csv2}");
        // The same range again (a redrive after a failure mid-pull): the same bytes.
        assert_eq!(pull(&spec, &creds, &second).await, csv2, "{engine}");

        // What was pulled types cleanly through the normal ingest: no row quarantined.
        let lake = tempfile::tempdir().unwrap();
        let files = [
            ingest(lake.path(), &spec, "loans/a.csv", &csv1),
            ingest(lake.path(), &spec, "loans/b.csv", &csv2),
        ]
        .concat();
        let rows = sluice_testdata::read_parquet(&files);
        let rows = rows["rows"].as_array().unwrap();
        assert_eq!(
            rows.len(),
            5,
            "{engine}: every committed version once: {rows:?}"
        );
        assert!(
            rows.iter().all(|r| !r["updated_at"].is_null()),
            "{engine}: {rows:?}"
        );
        assert!(
            rows.iter().any(|r| r["active"] == serde_json::json!(false)),
            "{engine}: {rows:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_cursor_takes_the_rows_above_the_last_range() {
    for engine in [Engine::Postgres, Engine::Mysql] {
        let creds = fresh_db(engine).await;
        loans_table(engine, &creds).await;
        let spec = loans_spec(engine, "LoanID", "id", 0);
        exec(
            engine,
            &creds,
            "INSERT INTO Loans (LoanID, amount) VALUES (10, 1), (11, 2), (12, 3)",
        )
        .await;
        let first = next(&spec, &creds, None).await.unwrap();
        assert_eq!(
            (first.from.as_deref(), first.to.as_deref()),
            (None, Some("13"))
        );
        assert_eq!(ids(&pull(&spec, &creds, &first).await), ["10", "11", "12"]);
        exec(
            engine,
            &creds,
            "INSERT INTO Loans (LoanID, amount) VALUES (13, 4), (20, 5)",
        )
        .await;
        let second = next(&spec, &creds, Some("13")).await.unwrap();
        assert_eq!(second.to.as_deref(), Some("21"), "{engine}");
        assert_eq!(ids(&pull(&spec, &creds, &second).await), ["13", "20"]);
        assert_eq!(next(&spec, &creds, Some("21")).await, None);
    }
}

/// Holds a transaction open on a connection of its own, with one row inserted in it.
enum Open {
    Pg(tokio_postgres::Client, tokio::task::JoinHandle<()>),
    My(mysql_async::Conn),
}

async fn begin_insert(engine: Engine, creds: &serde_json::Value, id: i64) -> Open {
    let insert = format!("INSERT INTO Loans (LoanID, amount) VALUES ({id}, 1)");
    match engine {
        Engine::Postgres => {
            let (client, conn) = pg_config(creds)
                .connect(tokio_postgres::NoTls)
                .await
                .unwrap();
            let task = tokio::spawn(async move {
                let _ = conn.await;
            });
            client
                .batch_execute(&format!("BEGIN; {}", legacy_names(engine, &insert)))
                .await
                .unwrap();
            Open::Pg(client, task)
        }
        Engine::Mysql => {
            let mut conn = mysql_async::Conn::new(my_opts(creds)).await.unwrap();
            conn.query_drop("BEGIN").await.unwrap();
            conn.query_drop(insert).await.unwrap();
            Open::My(conn)
        }
    }
}

async fn commit(open: Open) {
    match open {
        Open::Pg(client, task) => {
            client.batch_execute("COMMIT").await.unwrap();
            drop(client);
            let _ = task.await;
        }
        Open::My(mut conn) => {
            conn.query_drop("COMMIT").await.unwrap();
            conn.disconnect().await.unwrap();
        }
    }
}

/// A transaction stamps its row, a later one commits first, a pull runs, then the first
/// commits: with no lag its row is behind the high-water mark and never pulled; with a lag
/// longer than the transaction it is in the next range.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_commit_is_missed_without_lag_and_pulled_with_it() {
    for engine in [Engine::Postgres, Engine::Mysql] {
        for lag in [0u32, 2] {
            let creds = fresh_db(engine).await;
            loans_table(engine, &creds).await;
            let spec = loans_spec(engine, "updated_at", "timestamp", lag);
            let slow = begin_insert(engine, &creds, 1).await;
            tokio::time::sleep(Duration::from_millis(50)).await;
            exec(
                engine,
                &creds,
                "INSERT INTO Loans (LoanID, amount) VALUES (2, 1)",
            )
            .await;
            tokio::time::sleep(Duration::from_millis(50)).await;
            let mut pulled = Vec::new();
            let mut hwm = None;
            if let Some(r) = next(&spec, &creds, None).await {
                pulled.extend(ids(&pull(&spec, &creds, &r).await));
                hwm = r.to;
            }
            commit(slow).await;
            tokio::time::sleep(Duration::from_millis(u64::from(lag) * 1000 + 300)).await;
            if let Some(r) = next(&spec, &creds, hwm.as_deref()).await {
                pulled.extend(ids(&pull(&spec, &creds, &r).await));
            }
            pulled.sort();
            if lag == 0 {
                assert_eq!(
                    pulled,
                    ["2"],
                    "{engine}: without lag the late commit is lost"
                );
            } else {
                assert_eq!(pulled, ["1", "2"], "{engine}: with lag {lag}s");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vanished_column_and_an_absent_server_are_clear_errors() {
    for engine in [Engine::Postgres, Engine::Mysql] {
        let creds = fresh_db(engine).await;
        loans_table(engine, &creds).await;
        exec(
            engine,
            &creds,
            "INSERT INTO Loans (LoanID, amount) VALUES (1, 1)",
        )
        .await;
        exec(engine, &creds, "ALTER TABLE Loans DROP COLUMN note").await;
        let spec = loans_spec(engine, "LoanID", "id", 0);
        let c = credentials(&creds);
        let p = puller(&spec, &c);
        let dir = tempfile::tempdir().unwrap();
        let range = PullRange {
            from: None,
            to: Some("2".into()),
        };
        let e = p
            .to_file(&range, &dir.path().join("x.csv"))
            .await
            .unwrap_err();
        assert!(!e.transient, "{e}");
        let text = e.to_string();
        assert!(
            text.starts_with("source loans: ") && text.contains("note"),
            "{engine}: {text}"
        );

        // Nothing listens on port 1: retried, then said plainly, with no password.
        let mut gone = creds.clone();
        gone["port"] = 1.into();
        let c = credentials(&gone);
        let p = puller(&spec, &c);
        let e = p.next_range(None).await.unwrap_err();
        assert!(e.transient, "{e}");
        let text = e.to_string();
        assert!(
            text.contains("cannot reach") && text.contains("after 2 attempt(s)"),
            "{engine}: {text}"
        );
        assert!(!text.contains(c.password.as_str()), "{text}");
    }
}
