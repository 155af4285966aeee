//! `sluice run` and `sluice redrive` as on-call uses them, against the emulator.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output};

use sluice_core::ports::ObjectStore;

fn sluice(args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sluice"));
    cmd.current_dir(sluice_testkit::repo_root()).args(args);
    for (k, _) in std::env::vars() {
        if k.starts_with("AWS_") || k.starts_with("SLUICE_") {
            cmd.env_remove(k);
        }
    }
    for (k, v) in sluice_testkit::child_env() {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn run_prints_every_state_saves_the_history_and_redrive_resumes_it() {
    let env = sluice_testkit::unique("cli");
    let boot = sluice(&["bootstrap", "--env", &env]);
    assert!(boot.status.success(), "{}", text(&boot));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let clients = sluice_aws::Clients::from_config(sluice_testkit::sdk_config().await);
        let store = sluice_aws::s3::S3Store::new(clients.s3);
        let raw = format!("sluice-{env}-raw");
        let credit = std::fs::read(
            sluice_testkit::repo_root()
                .join("samples/credit/yyyy=2026/mm=11/dd=21/hh=23/credit-0001.csv"),
        )
        .unwrap();
        store
            .put_bytes(
                &raw,
                "credit/yyyy=2026/mm=11/dd=21/hh=23/credit-0001.csv",
                credit,
            )
            .await
            .unwrap();
        store
            .put_bytes(
                &raw,
                "loans/yyyy=2026/mm=11/dd=21/hh=23/broken.xlsx",
                b"PK\x03\x04 cut off".to_vec(),
            )
            .await
            .unwrap();
    });
    let dir = tempfile::tempdir().unwrap();
    let history = dir.path().join("run.json");
    let h = history.to_str().unwrap();

    let run = sluice(&[
        "run",
        "statemachine/ingest.asl.json",
        "--input",
        "events/scheduled-hourly.json",
        "--env",
        &env,
        "--name",
        "cli-run",
        "--history",
        h,
        "--time-scale",
        "0",
    ]);
    let out = text(&run);
    assert!(
        !run.status.success(),
        "a broken file fails the execution:\n{out}"
    );
    for line in [
        "ok     GenerateQueue",
        "caught Ingest",
        "Sluice.BadFile -> ItemFailed",
        "FAILED ItemsFailed",
        "FAILED arn:aws:states:",
        "error: Sluice.ItemsFailed",
        &format!("sluice redrive {h}"),
    ] {
        assert!(out.contains(line), "missing {line:?} in:\n{out}");
    }
    let saved: sluice_asl::Record =
        serde_json::from_slice(&std::fs::read(&history).unwrap()).unwrap();
    assert_eq!(saved.status, sluice_asl::Status::Failed);
    assert!(saved.execution.execution_arn.ends_with(":cli-run"));

    // Redrive, as the console does it: the only state left open is the Fail state (the bad
    // file's error was caught in its own item), so it fails again at once and no function runs.
    let again = sluice(&["redrive", h, "--env", &env, "--time-scale", "0"]);
    let out = text(&again);
    assert!(!again.status.success(), "{out}");
    assert!(
        out.contains("redriving arn:aws:states:") && out.contains("(redrive 1)"),
        "{out}"
    );
    assert!(
        out.contains("resuming the states entered and never exited"),
        "{out}"
    );
    assert!(out.contains("\n  ItemsFailed\n"), "{out}");
    assert!(out.contains("error: Sluice.ItemsFailed"), "{out}");
    let saved: sluice_asl::Record =
        serde_json::from_slice(&std::fs::read(&history).unwrap()).unwrap();
    assert_eq!(saved.execution.redrive_count, 1);
    assert!(saved.events.iter().any(|e| e.kind == "ExecutionRedriven"));
    assert!(
        saved.invocations_in_last_attempt().is_empty(),
        "no function is invoked by this redrive: {:?}",
        saved.invocations_in_last_attempt()
    );

    // A succeeded execution is not redriven.
    let ok_history = dir.path().join("ok.json");
    let quiet = sluice(&[
        "run",
        "statemachine/ingest.asl.json",
        "--input",
        "events/scheduled-hourly.json",
        "--env",
        &env,
        "--name",
        "cli-quiet",
        "--history",
        ok_history.to_str().unwrap(),
        "--time-scale",
        "0",
    ]);
    assert!(quiet.status.success(), "{}", text(&quiet));
    let refused = sluice(&["redrive", ok_history.to_str().unwrap(), "--env", &env]);
    assert!(!refused.status.success());
    assert!(
        text(&refused).contains("only FAILED, TIMED_OUT or ABORTED executions can be redriven"),
        "{}",
        text(&refused)
    );
}

/// A database source through the whole pipeline on the emulator and the local PostgreSQL
/// server: `sluice run` of the hourly schedule registers the source's pull (its connection from
/// the emulator's Secrets Manager), the Map pulls and ingests it; the next run after an update
/// and an insert takes just those; the work table holds both items done.
#[test]
fn an_hourly_run_pulls_a_database_source_and_the_next_run_takes_only_whats_new() {
    let creds = sluice_testkit::fresh_database("postgres", "orders");
    let exec = |s: &str| sluice_testkit::sql("postgres", &creds, s).unwrap();
    exec("CREATE TABLE orders (id bigint PRIMARY KEY, amount numeric(10,2), updated_at timestamptz NOT NULL DEFAULT now())");
    exec("INSERT INTO orders (id, amount) VALUES (1, 10.5), (2, 20), (3, NULL)");

    let env = sluice_testkit::unique("pull");
    let dir = tempfile::tempdir().unwrap();
    let (tables, models) = (dir.path().join("tables"), dir.path().join("models"));
    std::fs::create_dir_all(&tables).unwrap();
    std::fs::create_dir_all(&models).unwrap();
    let secret = format!("sluice/{env}/orders");
    std::fs::write(
        tables.join("orders.json"),
        serde_json::json!({
            "dataset": "orders",
            "source": {"prefix": "orders/", "kind": "postgres", "database": {
                "connection": {"secret": secret, "tls": "disable"}, "table": "orders",
                "incremental": {"column": "updated_at", "by": "timestamp"}}},
            "columns": [{"name": "id", "type": "bigint", "nullable": false},
                        {"name": "amount", "type": "decimal(10,2)"},
                        {"name": "updated_at", "type": "timestamp", "nullable": false}],
            "primary_key": ["id"]
        })
        .to_string(),
    )
    .unwrap();
    let boot = sluice(&[
        "bootstrap",
        "--env",
        &env,
        "--tables",
        tables.to_str().unwrap(),
        "--models",
        models.to_str().unwrap(),
    ]);
    assert!(boot.status.success(), "{}", text(&boot));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let clients = rt.block_on(async {
        let clients = sluice_aws::Clients::from_config(sluice_testkit::sdk_config().await);
        clients
            .secrets
            .create_secret()
            .name(&secret)
            .secret_string(creds.to_string())
            .send()
            .await
            .unwrap();
        clients
    });
    let run = |name: &str| {
        let history = dir.path().join(format!("{name}.json"));
        let o = sluice(&[
            "run",
            "statemachine/ingest.asl.json",
            "--input",
            "events/scheduled-hourly.json",
            "--env",
            &env,
            "--name",
            name,
            "--history",
            history.to_str().unwrap(),
            "--time-scale",
            "0",
        ]);
        let t = text(&o);
        assert!(o.status.success(), "{t}");
        t
    };
    run("pull-1");
    exec("UPDATE orders SET amount = 11, updated_at = now() WHERE id = 1");
    exec("INSERT INTO orders (id, amount) VALUES (4, 40)");
    std::thread::sleep(std::time::Duration::from_millis(20));
    run("pull-2");
    let items = rt.block_on(async {
        let table = format!("sluice-{env}-work");
        let scan = clients
            .dynamodb
            .scan()
            .table_name(&table)
            .send()
            .await
            .unwrap();
        scan.items()
            .iter()
            // Markers (the watermark, the high-water mark) share the table: no status.
            .filter(|i| i.contains_key("status"))
            .map(|i| sluice_aws::dynamo::work_item_from_attrs(i).unwrap())
            .filter(|w| w.pull.is_some())
            .collect::<Vec<_>>()
    });
    let mut read: Vec<(String, u64)> = items
        .iter()
        .map(|w| {
            assert_eq!(w.status, sluice_core::ports::WorkStatus::Done, "{w:?}");
            (w.id.clone(), w.counts.as_ref().map_or(0, |c| c.rows_read))
        })
        .collect();
    read.sort();
    assert_eq!(read.len(), 2, "{read:?}");
    assert_eq!(read[1], ("pull://orders/from=start".into(), 3), "{read:?}");
    assert_eq!(
        read[0].1, 2,
        "the second range holds the update and the insert: {read:?}"
    );
    // Both raw objects are in the raw bucket under the dataset's hourly partition.
    let keys = rt.block_on(async {
        let store = sluice_aws::s3::S3Store::new(clients.s3.clone());
        store
            .list(&format!("sluice-{env}-raw"), "orders/")
            .await
            .unwrap()
            .into_iter()
            .map(|o| o.key)
            .collect::<Vec<_>>()
    });
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert!(
        keys.iter().all(|k| k.starts_with("orders/yyyy=")),
        "{keys:?}"
    );
}
