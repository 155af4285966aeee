//! The load step on real servers (`scripts/local-db`: PostgreSQL 15 and MariaDB 10.11): every
//! test runs on both engines, each in a database of its own. Lake files are made by the real
//! ingest engine from credit-shaped CSV (with `NA`), as the pipeline makes them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use sluice_core::target::Engine;
use sluice_db::Credentials;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hourly_credit_files_land_once_with_na_as_null_and_counts_reconciled() {
    for engine in ENGINES {
        let creds = fresh_db(engine).await;
        let dir = tempfile::tempdir().unwrap();
        let spec = credit_spec();
        ingest(dir.path(), &spec, &hour_key(0), &credit_csv(1, 700, 0));
        ingest(dir.path(), &spec, &hour_key(1), &credit_csv(701, 500, 0));
        let t = target(engine, "append_by_file");
        let tables = plan(&t, &spec);

        let r = load(&t, &tables, &creds, dir.path(), &quick())
            .await
            .unwrap();
        let credit = &r.tables[0];
        assert_eq!(
            (credit.files_loaded, credit.rows_loaded),
            (2, 1200),
            "{engine}: {r:?}"
        );
        assert_eq!(
            (credit.lake_rows, credit.database_rows, credit.reconciled),
            (1200, 1200, true)
        );
        // NA is NULL in the database: 1..=1200 has 171 multiples of 7 and 109 of 11.
        assert_eq!(
            count(
                engine,
                &creds,
                "SELECT count(*) FROM credit WHERE monthly_income IS NULL"
            )
            .await,
            171,
            "{engine}"
        );
        assert_eq!(
            count(
                engine,
                &creds,
                "SELECT count(*) FROM credit WHERE number_of_dependents IS NULL"
            )
            .await,
            109,
            "{engine}"
        );
        assert_eq!(
            count(
                engine,
                &creds,
                "SELECT count(*) FROM credit WHERE serious_dlqin2yrs"
            )
            .await,
            600,
            "{engine}"
        );
        let text = match engine {
            Engine::Postgres => "SELECT debt_ratio::text FROM credit WHERE row_no = 12",
            Engine::Mysql => "SELECT CAST(debt_ratio AS CHAR) FROM credit WHERE row_no = 12",
        };
        assert_eq!(peek(engine, &creds, text).await.unwrap(), "2.25");
        // The ledger names each file with its rows.
        assert_eq!(
            count(
                engine,
                &creds,
                "SELECT count(*) FROM sluice_load_ledger WHERE target_table = 'credit'"
            )
            .await,
            2
        );
        assert_eq!(
            count(
                engine,
                &creds,
                "SELECT sum(row_count) FROM sluice_load_ledger"
            )
            .await,
            1200
        );

        // The same files again, and five loads at once (five duplicate events): one copy.
        let again = load(&t, &tables, &creds, dir.path(), &quick())
            .await
            .unwrap();
        assert_eq!(
            (
                again.tables[0].files_loaded,
                again.tables[0].files_unchanged
            ),
            (0, 2)
        );
        ingest(dir.path(), &spec, &hour_key(2), &credit_csv(1201, 300, 0));
        let opts = quick();
        let five = futures_util::future::join_all(
            (0..5).map(|_| load(&t, &tables, &creds, dir.path(), &opts)),
        )
        .await;
        let loaded: usize = five
            .iter()
            .map(|r| r.as_ref().unwrap().tables[0].files_loaded)
            .sum();
        assert_eq!(
            loaded, 1,
            "{engine}: exactly one of the five loads took the new file"
        );
        assert_eq!(
            count(engine, &creds, "SELECT count(*) FROM credit").await,
            1500
        );
        assert_eq!(
            count(engine, &creds, "SELECT count(DISTINCT row_no) FROM credit").await,
            1500
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrected_file_replaces_its_rows_and_a_deleted_one_takes_them_away() {
    for engine in ENGINES {
        let creds = fresh_db(engine).await;
        let dir = tempfile::tempdir().unwrap();
        let spec = credit_spec();
        let first = ingest(dir.path(), &spec, &hour_key(0), &credit_csv(1, 100, 0));
        ingest(dir.path(), &spec, &hour_key(1), &credit_csv(101, 100, 0));
        let t = target(engine, "append_by_file");
        let tables = plan(&t, &spec);
        load(&t, &tables, &creds, dir.path(), &quick())
            .await
            .unwrap();

        // The corrected re-upload: the old version's lake file goes, the new one comes (same
        // keys, other incomes, 90 rows): replaced in one transaction, keys and all.
        for f in &first {
            std::fs::remove_file(f).unwrap();
        }
        ingest(dir.path(), &spec, &hour_key(0), &credit_csv(1, 90, 5));
        let r = load(&t, &tables, &creds, dir.path(), &quick())
            .await
            .unwrap();
        assert_eq!(
            (
                r.tables[0].files_loaded,
                r.tables[0].files_removed,
                r.tables[0].files_unchanged
            ),
            (1, 1, 1),
            "{engine}"
        );
        assert_eq!(
            count(engine, &creds, "SELECT count(*) FROM credit").await,
            190
        );
        assert_eq!(
            count(
                engine,
                &creds,
                "SELECT monthly_income FROM credit WHERE row_no = 1"
            )
            .await,
            1008
        );

        // A file gone from the lake (an operator deleted a bad hour): its rows leave.
        let second = dir.path().join("data/credit/yyyy=2026/mm=11/dd=21/hh=01");
        std::fs::remove_dir_all(&second).unwrap();
        let r = load(&t, &tables, &creds, dir.path(), &quick())
            .await
            .unwrap();
        assert_eq!(r.tables[0].files_removed, 1);
        assert_eq!(
            count(engine, &creds, "SELECT count(*) FROM credit").await,
            90,
            "{engine}"
        );
        assert!(r.tables[0].reconciled);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_killed_mid_stream_leaves_nothing_and_the_rerun_loads_each_row_once() {
    for engine in ENGINES {
        let creds = fresh_db(engine).await;
        let dir = tempfile::tempdir().unwrap();
        let spec = credit_spec();
        ingest(dir.path(), &spec, &hour_key(0), &credit_csv(1, 100, 0));
        // Big enough for several 1 MiB chunks.
        ingest(dir.path(), &spec, &hour_key(1), &credit_csv(101, 40_000, 0));
        let t = target(engine, "append_by_file");
        let tables = plan(&t, &spec);

        // The big file's load pauses after its first chunk until the test has looked.
        let (running, go_tx) = paused_load(&t, &tables, &creds, dir.path(), 100).await;
        // Mid-stream, from a second connection: nothing of the open transaction is visible.
        assert_eq!(
            count(engine, &creds, "SELECT count(*) FROM credit").await,
            0,
            "{engine}"
        );
        // End the load's connection, as a failover or a network cut would.
        let kill = match engine {
            Engine::Postgres => format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'sluice-load' AND datname = '{}'",
                creds["dbname"].as_str().unwrap()
            ),
            Engine::Mysql => {
                let id = peek(engine, &creds, &format!(
                    "SELECT CAST(id AS CHAR) FROM information_schema.processlist WHERE db = '{}' AND info LIKE 'LOAD DATA%'",
                    creds["dbname"].as_str().unwrap()
                ))
                .await
                .unwrap();
                format!("KILL {id}")
            }
        };
        match engine {
            Engine::Postgres => {
                peek(engine, &creds, &format!("SELECT ({kill} LIMIT 1)::text"))
                    .await
                    .ok();
            }
            Engine::Mysql => admin_exec(engine, &creds, &kill).await,
        }
        go_tx.send(()).unwrap();
        let failed = running.await.unwrap().unwrap_err();
        assert!(
            failed.is_transient(),
            "{engine}: a lost connection is worth a retry: {failed}"
        );
        assert!(failed.to_string().starts_with("target app: "), "{failed}");
        assert_eq!(
            count(engine, &creds, "SELECT count(*) FROM credit").await,
            0,
            "{engine}: the half-sent file left nothing"
        );
        assert_eq!(
            count(engine, &creds, "SELECT count(*) FROM sluice_load_ledger").await,
            0
        );

        // The redrive: every row exactly once.
        let r = load(&t, &tables, &creds, dir.path(), &quick())
            .await
            .unwrap();
        assert_eq!(r.tables[0].rows_loaded, 40_100);
        assert_eq!(
            count(engine, &creds, "SELECT count(*) FROM credit").await,
            40_100,
            "{engine}"
        );
        assert_eq!(
            count(engine, &creds, "SELECT count(DISTINCT row_no) FROM credit").await,
            40_100
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_nullable_column_is_added_and_a_narrowing_is_refused() {
    for engine in ENGINES {
        let creds = fresh_db(engine).await;
        let dir = tempfile::tempdir().unwrap();
        let mut spec = credit_spec();
        ingest(dir.path(), &spec, &hour_key(0), &credit_csv(1, 50, 0));
        let t = target(engine, "merge");
        load(&t, &plan(&t, &spec), &creds, dir.path(), &quick())
            .await
            .unwrap();

        // A new nullable column: ALTER TABLE … ADD COLUMN; the old file has no values for it.
        let mut note = spec.columns[3].clone();
        note.name = "note".into();
        note.source = Some("Note".into());
        note.ty = sluice_core::spec::ColumnType::String;
        note.max_length = Some(20);
        spec.columns.push(note);
        spec.missing_columns = sluice_core::spec::MissingColumns::Null;
        ingest(dir.path(), &spec, &hour_key(1), &credit_csv(51, 10, 0));
        let r = load(&t, &plan(&t, &spec), &creds, dir.path(), &quick())
            .await
            .unwrap();
        assert_eq!(
            r.tables[0].columns_added,
            vec!["note".to_string()],
            "{engine}"
        );
        assert_eq!(
            count(
                engine,
                &creds,
                "SELECT count(*) FROM credit WHERE note IS NULL"
            )
            .await,
            60
        );

        // Narrowing it is refused, naming the table and column; the table is left as it was.
        spec.columns.last_mut().unwrap().max_length = Some(5);
        let e = load(&t, &plan(&t, &spec), &creds, dir.path(), &quick())
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("table credit: column 'note' is")
                && e.contains("varchar(5) in the spec: a narrowing is refused"),
            "{engine}: {e}"
        );
        let mut retyped = credit_spec();
        retyped.columns[3].ty = sluice_core::spec::ColumnType::BigInt;
        let e = load(&t, &plan(&t, &retyped), &creds, dir.path(), &quick())
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("column 'age'") && e.contains("a type change is refused"),
            "{engine}: {e}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merge_upserts_by_key() {
    for engine in ENGINES {
        let creds = fresh_db(engine).await;
        let dir = tempfile::tempdir().unwrap();
        let spec = credit_spec();
        ingest(dir.path(), &spec, &hour_key(0), &credit_csv(1, 100, 0));
        let t = target(engine, "merge");
        let tables = plan(&t, &spec);
        load(&t, &tables, &creds, dir.path(), &quick())
            .await
            .unwrap();
        // A later file repeats keys 51..=100 with other incomes and adds 101..=150.
        ingest(dir.path(), &spec, &hour_key(1), &credit_csv(51, 100, 1));
        let r = load(&t, &tables, &creds, dir.path(), &quick())
            .await
            .unwrap();
        assert_eq!(r.tables[0].database_rows, 150, "{engine}");
        assert_eq!(
            count(
                engine,
                &creds,
                "SELECT monthly_income FROM credit WHERE row_no = 52"
            )
            .await,
            1000 + 52 * 3 + 1
        );
        assert_eq!(
            count(
                engine,
                &creds,
                "SELECT monthly_income FROM credit WHERE row_no = 50"
            )
            .await,
            1000 + 50 * 3
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_down_is_retried_then_named_and_a_wrong_password_never_printed() {
    for engine in ENGINES {
        let creds = fresh_db(engine).await;
        let dir = tempfile::tempdir().unwrap();
        let spec = credit_spec();
        ingest(dir.path(), &spec, &hour_key(0), &credit_csv(1, 10, 0));
        let t = target(engine, "append_by_file");
        let tables = plan(&t, &spec);

        // Nothing listens on the port: retried, then a message naming the target and server.
        let mut down = creds.clone();
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        down["port"] = closed.local_addr().unwrap().port().into();
        drop(closed);
        let mut opts = quick();
        opts.attempts = 3;
        let started = std::time::Instant::now();
        let e = load(&t, &tables, &down, dir.path(), &opts)
            .await
            .unwrap_err();
        assert!(e.is_transient());
        let m = e.to_string();
        assert!(
            m.starts_with("target app: cannot reach") && m.contains("after 3 attempt(s)"),
            "{engine}: {m}"
        );
        assert!(
            started.elapsed() >= Duration::from_millis(150),
            "two waits of 50 and 100 ms"
        );

        // A wrong password: the secret is named, the password never printed.
        let mut wrong = creds.clone();
        wrong["password"] = "hunter2-not-it".into();
        let e = load(&t, &tables, &wrong, dir.path(), &quick())
            .await
            .unwrap_err();
        assert!(!e.is_transient());
        let m = format!("{e} {e:?}");
        assert!(
            m.contains("the database refused the credentials of secret sluice/test/app"),
            "{engine}: {m}"
        );
        assert!(!m.contains("hunter2") && !m.contains("sluice-local"), "{m}");
        assert!(!format!("{:?}", credentials(&wrong)).contains("hunter2"));
    }
}

#[test]
fn a_secret_in_another_shape_is_named_without_its_text() {
    let e = Credentials::from_json(
        r#"{"host":"h","port":5432,"username":"u","password":"s3cret"}"#,
        "sluice/dev/app",
        "app",
    )
    .unwrap_err()
    .to_string();
    assert_eq!(
        e,
        "target app: the connection secret sluice/dev/app has no text field 'dbname'"
    );
    let e = Credentials::from_json("s3cret", "sluice/dev/app", "app")
        .unwrap_err()
        .to_string();
    assert!(
        !e.contains("s3cret") && e.contains("is not a JSON object"),
        "{e}"
    );
    let ok = Credentials::from_json(
        r#"{"host":"h","port":"3306","username":"u","password":"p","dbname":"d","engine":"mysql"}"#,
        "s",
        "app",
    )
    .unwrap();
    assert_eq!(ok.port, 3306);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replace_shows_readers_the_old_snapshot_until_the_new_one_is_complete() {
    for engine in ENGINES {
        let creds = fresh_db(engine).await;
        let dir = tempfile::tempdir().unwrap();
        let spec = credit_spec();
        let first = ingest(dir.path(), &spec, &hour_key(0), &credit_csv(1, 100, 0));
        let t = target(engine, "replace");
        let tables = plan(&t, &spec);
        load(&t, &tables, &creds, dir.path(), &quick())
            .await
            .unwrap();
        for f in &first {
            std::fs::remove_file(f).unwrap();
        }
        ingest(dir.path(), &spec, &hour_key(1), &credit_csv(1, 30_000, 0));

        let (running, go_tx) = paused_load(&t, &tables, &creds, dir.path(), 10_000).await;
        // Mid-load: the old table, whole.
        assert_eq!(
            count(engine, &creds, "SELECT count(*) FROM credit").await,
            100,
            "{engine}"
        );
        go_tx.send(()).unwrap();
        let r = running.await.unwrap().unwrap();
        assert_eq!(
            (r.tables[0].files_loaded, r.tables[0].files_removed),
            (1, 1),
            "{engine}"
        );
        assert_eq!(
            count(engine, &creds, "SELECT count(*) FROM credit").await,
            30_000,
            "{engine}"
        );
        assert!(r.tables[0].reconciled);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_verifies_the_server_against_the_target_ca_bundle() {
    let servers = sluice_testdata::local_db();
    for engine in ENGINES {
        let creds = fresh_db(engine).await;
        let dir = tempfile::tempdir().unwrap();
        let spec = credit_spec();
        ingest(dir.path(), &spec, &hour_key(0), &credit_csv(1, 100, 0));
        let with_ca = |ca: &std::path::Path| {
            sluice_core::target::TargetSpec::from_json(
                "app.json",
                &format!(
                    r#"{{"target":"app","engine":"{engine}","connection":{{"secret":"s","tls":"require","ca_file":{}}},
                       "tables":[{{"dataset":"credit","mode":"append_by_file"}}]}}"#,
                    serde_json::Value::from(ca.display().to_string())
                ),
            )
            .unwrap()
        };
        // A server whose certificate the bundle does not vouch for: refused, nothing loaded.
        let t = with_ca(&servers.other_ca);
        let e = load(&t, &plan(&t, &spec), &creds, dir.path(), &quick())
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.to_lowercase().contains("certificate") || e.to_lowercase().contains("unknownissuer"),
            "{engine}: {e}"
        );
        // The right bundle: verified, loaded.
        let t = with_ca(&servers.ca);
        let r = load(&t, &plan(&t, &spec), &creds, dir.path(), &quick())
            .await
            .unwrap();
        assert_eq!(r.tables[0].database_rows, 100, "{engine}");
        // Asked for TLS without a bundle: refused before connecting.
        let none = sluice_core::target::TargetSpec::from_json(
            "app.json",
            &format!(r#"{{"target":"app","engine":"{engine}","connection":{{"secret":"s"}},"tables":[{{"dataset":"credit","mode":"merge"}}]}}"#),
        )
        .unwrap();
        let e = load(&none, &plan(&none, &spec), &creds, dir.path(), &quick())
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("connection.ca_file names no CA bundle"), "{e}");
    }
}
