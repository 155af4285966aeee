//! The Load state in the pipeline, on the emulator and the two local database servers: hourly
//! credit-shaped files (with `NA`) go from the raw bucket through Ingest and Normalize into a
//! PostgreSQL and a MariaDB target whose connections are secrets in the emulator's Secrets
//! Manager; the run summary carries the counts; a database down fails the execution in Load
//! (after the retries) with a message naming the target, and the Redrive after the fix loads
//! each row once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use serde_json::{json, Value};
use sluice_asl::Status;
use sluice_core::ports::ObjectStore;

/// One SQL statement on the target's server; it must succeed.
fn sql(engine: &str, creds: &Value, statement: &str) -> String {
    sluice_testkit::sql(engine, creds, statement).unwrap_or_else(|e| panic!("{statement}: {e}"))
}

/// Both targets: a database of their own, the secret in the emulator, the target document in
/// the lake (as `sluice bootstrap --targets` or Terraform puts it). Returns (engine, creds).
fn targets(lab: &Lab) -> Vec<(&'static str, Value)> {
    let mut out = Vec::new();
    for engine in ["postgres", "mysql"] {
        let creds = sluice_testkit::fresh_database(engine, "pipe");
        let secret = format!("sluice/{}/app-{engine}", lab.names.env);
        lab.rt.block_on(async {
            lab.clients
                .secrets
                .create_secret()
                .name(&secret)
                .secret_string(creds.to_string())
                .send()
                .await
                .unwrap();
        });
        let target = json!({
            "target": format!("app_{engine}"),
            "engine": engine,
            "connection": {"secret": secret, "tls": "disable"},
            "tables": [{"dataset": "credit", "mode": "append_by_file"}]
        });
        lab.rt.block_on(async {
            lab.ports
                .store
                .put_bytes(
                    &lab.names.lake_bucket,
                    &format!("config/targets/app_{engine}.json"),
                    target.to_string().into_bytes(),
                )
                .await
                .unwrap();
        });
        out.push((engine, creds));
    }
    out
}

const HOUR_22: &str = "credit/yyyy=2026/mm=11/dd=21/hh=22/credit-22.csv";
const HOUR_23: &str = "credit/yyyy=2026/mm=11/dd=21/hh=23/credit-23.csv";

#[test]
fn hourly_credit_files_run_through_the_pipeline_into_both_engines() {
    let lab = Lab::new();
    let dbs = targets(&lab);
    lab.put(HOUR_22, sluice_testkit::credit_csv(1, 300, 0).into_bytes());
    lab.put(
        HOUR_23,
        sluice_testkit::credit_csv(301, 200, 0).into_bytes(),
    );
    let r = lab.run(scheduled(HOUR), "hourly-load");
    assert_eq!(r.status, Status::Succeeded, "{:?} {:?}", r.error, r.cause);
    // The execution's output is the run summary: it carries the load's counts, one line per
    // target table, each file loaded once and reconciled.
    let out = r.output.clone().unwrap();
    let loads = out["loads"].as_array().unwrap_or_else(|| panic!("{out}"));
    assert_eq!(loads.len(), 2, "{out}");
    for l in loads {
        assert_eq!(
            (
                &l["rows_loaded"],
                &l["lake_rows"],
                &l["database_rows"],
                &l["reconciled"]
            ),
            (&json!(500), &json!(500), &json!(500), &json!(true)),
            "{l}"
        );
    }
    for (engine, creds) in &dbs {
        assert_eq!(
            sql(engine, creds, "SELECT count(*) FROM credit"),
            "500",
            "{engine}"
        );
        // NA is NULL in the database: 71 multiples of 7 in 1..=500.
        assert_eq!(
            sql(
                engine,
                creds,
                "SELECT count(*) FROM credit WHERE monthly_income IS NULL"
            ),
            "71",
            "{engine}"
        );
        assert_eq!(
            sql(
                engine,
                creds,
                "SELECT count(DISTINCT sluice_source_object) FROM credit"
            ),
            "2"
        );
        assert_eq!(
            sql(engine, creds, "SELECT count(*) FROM sluice_load_ledger"),
            "2"
        );
    }

    // The same objects again (five duplicate events and an hourly run): nothing is loaded twice.
    let etag = lab.rt.block_on(async {
        lab.ports
            .store
            .head(&lab.names.raw_bucket, HOUR_23)
            .await
            .unwrap()
            .unwrap()
            .etag
            .unwrap()
    });
    for i in 0..5 {
        lab.run(
            object_created(&lab.names.raw_bucket, HOUR_23, &etag),
            &format!("dup-{i}"),
        );
    }
    let again = lab.run(scheduled(HOUR), "hourly-again");
    assert_eq!(again.status, Status::Succeeded, "{:?}", again.cause);
    for (engine, creds) in &dbs {
        assert_eq!(
            sql(engine, creds, "SELECT count(*) FROM credit"),
            "500",
            "{engine}"
        );
    }
}

#[test]
fn a_database_down_fails_in_load_naming_the_target_and_the_redrive_loads_once() {
    let lab = Lab::new();
    let dbs = targets(&lab);
    // The PostgreSQL target's secret points at a port nothing listens on.
    let (engine, creds) = &dbs[0];
    let mut down = creds.clone();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    down["port"] = closed.local_addr().unwrap().port().into();
    drop(closed);
    let secret = format!("sluice/{}/app-{engine}", lab.names.env);
    let put = |value: &Value| {
        lab.rt.block_on(async {
            lab.clients
                .secrets
                .put_secret_value()
                .secret_id(&secret)
                .secret_string(value.to_string())
                .send()
                .await
                .unwrap();
        })
    };
    put(&down);
    lab.put(HOUR_22, sluice_testkit::credit_csv(1, 300, 0).into_bytes());
    let failed = lab.run(scheduled(HOUR), "load-down");
    assert_eq!(failed.status, Status::Failed);
    assert_eq!(
        failed.error.as_deref(),
        Some("Sluice.Transient"),
        "{:?}",
        failed.cause
    );
    let cause = failed.cause.clone().unwrap_or_default();
    assert!(
        cause.contains("target app_postgres: cannot reach postgres at 127.0.0.1:"),
        "{cause}"
    );
    assert!(
        !cause.contains("sluice-local"),
        "no password in the cause: {cause}"
    );
    // Retried by the state (4 attempts in all), then left for Redrive; the state left open is Load.
    let load_attempts = failed
        .events
        .iter()
        .filter(|e| e.kind == "TaskStateEntered" && e.state == "Load")
        .count();
    assert_eq!(load_attempts, 1, "one Load state, retried inside it");
    lab.status_change_rule(&failed);

    // The database is back: Redrive resumes at Load, each row once, in both targets.
    put(creds);
    let redriven = lab.redrive_with(&lab.ports, &failed);
    assert_eq!(redriven.status, Status::Succeeded, "{:?}", redriven.cause);
    for (engine, creds) in &dbs {
        assert_eq!(
            sql(engine, creds, "SELECT count(*) FROM credit"),
            "300",
            "{engine}"
        );
        assert_eq!(
            sql(engine, creds, "SELECT count(DISTINCT row_no) FROM credit"),
            "300"
        );
    }
    let entered: Vec<&str> = redriven
        .events
        .iter()
        .skip(failed.events.len())
        .filter(|e| e.kind.ends_with("StateEntered"))
        .map(|e| e.state.as_str())
        .collect();
    assert_eq!(entered.first(), Some(&"Load"), "{entered:?}");
    assert!(
        !entered.contains(&"Normalize") && !entered.contains(&"ProcessItems"),
        "{entered:?}"
    );
}
