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
