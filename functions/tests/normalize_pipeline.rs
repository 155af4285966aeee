//! Issue 5 end to end: the Aspen workbook uploaded to the raw bucket → one execution of
//! statemachine/ingest.asl.json (local runner, real handlers, the emulator) → both sheets
//! ingested, the Aspen model rebuilt, all nine target tables in the Glue catalog, their
//! Parquet read back with pyarrow. Ignored (shown as such) where ../shared is absent.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{object_created, Fault, FaultyPorts, Lab};
use sluice_asl::Status;
use sluice_core::ports::ObjectStore;
use sluice_functions::contracts::NormalizeInput;
use sluice_functions::normalize::{self};

const KEY: &str = "aspen/2026/data_engineer_raw_data.xlsx";
const EXPECTED: [(&str, usize); 9] = sluice_testkit::ASPEN_TABLES;

/// Runs the normalize function by hand (as `events/normalize-manual.json` does).
fn normalize_by_hand(
    lab: &Lab,
    started: Option<String>,
    model: &str,
) -> Result<sluice_functions::contracts::NormalizeOutput, sluice_functions::FnError> {
    lab.rt.block_on(normalize::handle(
        &lab.ports,
        NormalizeInput {
            execution: "arn:aws:states:us-east-1:000000000000:execution:m:by-hand".into(),
            started,
            models: Some(vec![model.into()]),
        },
    ))
}

/// The Aspen workbook of the seed data; its tests are ignored where `../shared` is absent.
fn workbook() -> Vec<u8> {
    let p = common::root()
        .join("../shared/seed-data/aspencapital-candidate-project-data-engineer/data_engineer_raw_data.xlsx");
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[cfg_attr(
    not(sluice_shared),
    ignore = "needs ../shared (absent when this was built)"
)]
#[test]
fn the_aspen_workbook_lands_as_nine_catalogued_tables_in_one_execution() {
    let xlsx = workbook();
    let lab = Lab::new();
    let etag = lab.put(KEY, xlsx);
    let event = object_created(&lab.names.raw_bucket, KEY, &etag);
    let r = lab.run(event, "aspen-1");
    assert_eq!(r.status, Status::Succeeded, "{:?} {:?}", r.error, r.cause);
    assert!(r.states_entered_top_level().contains(&"Normalize"));
    let out = r.output.clone().unwrap();
    assert_eq!(out["items"], 2, "one item per sheet: {out}");
    assert_eq!(out["rows_quarantined"], 0, "{out}");

    let glue = &lab.clients.glue;
    let db = &lab.names.glue_database;
    for (table, rows) in EXPECTED {
        let lake_table = format!("aspen_model_{table}");
        let t = lab
            .rt
            .block_on(glue.get_table().database_name(db).name(&lake_table).send())
            .unwrap_or_else(|e| panic!("{lake_table} is not in the catalog: {e:?}"));
        let sd = t.table().unwrap().storage_descriptor().unwrap();
        assert_eq!(
            sd.location(),
            Some(format!("s3://{}/data/{lake_table}/", lab.names.lake_bucket).as_str())
        );
        let columns: Vec<&str> = sd.columns().iter().map(|c| c.name()).collect();
        assert!(columns.ends_with(&["created", "created_by", "updated", "updated_by"]));
        assert_eq!(lab.rows(&lake_table).len(), rows, "{lake_table}");
    }
    // Keys hold across tables: every phone number's role profile exists.
    let roles: std::collections::HashSet<String> = lab
        .rows("aspen_model_role_profile")
        .iter()
        .map(|r| r["role_profile_id"].as_str().unwrap().to_owned())
        .collect();
    assert!(lab
        .rows("aspen_model_phone_number")
        .iter()
        .all(|p| roles.contains(p["role_profile_id"].as_str().unwrap())));

    // A later rebuild over the same data (a manual run, the next execution) rewrites the same
    // bytes: every row keeps its `created`, none is marked updated.
    let before = lab.lake();
    let again = normalize_by_hand(&lab, Some("2031-01-01T00:00:00Z".into()), "aspen").unwrap();
    assert_eq!(again.models[0].status, "normalized");
    assert_eq!(lab.lake(), before);

    // A variant of the model with e-mails of at most 20 characters, put where models live:
    // the 420 longer ones are quarantined, and the records name the lake object they came from.
    let narrow = std::fs::read_to_string(common::root().join("config/models/aspen.json"))
        .unwrap()
        .replace("\"model\": \"aspen\"", "\"model\": \"aspen_narrow\"")
        .replace(
            "\"lake_prefix\": \"aspen_model_\"",
            "\"lake_prefix\": \"aspen_narrow_\"",
        )
        .replace(
            "\"name\": \"value\", \"type\": \"string\", \"nullable\": false, \"max_length\": 128",
            "\"name\": \"value\", \"type\": \"string\", \"nullable\": false, \"max_length\": 20",
        );
    let lake_bucket = lab.names.lake_bucket.clone();
    lab.rt
        .block_on(lab.ports.store.put_bytes(
            &lake_bucket,
            "config/models/aspen_narrow.json",
            narrow.into_bytes(),
        ))
        .unwrap();
    let out = normalize_by_hand(&lab, None, "aspen_narrow").unwrap();
    assert_eq!(out.rows_quarantined, 420, "{out:?}");
    let email = out.models[0]
        .tables
        .iter()
        .find(|t| t.table == "aspen_narrow_email")
        .unwrap();
    assert_eq!((email.rows_written, email.rows_quarantined), (263, 420));
    let records = lab.lake()["quarantine/aspen_narrow_email/aspen_narrow_email.jsonl"].clone();
    let first: serde_json::Value =
        serde_json::from_str(String::from_utf8(records).unwrap().lines().next().unwrap()).unwrap();
    assert_eq!(first["rule"], "too_long");
    let file = first["source"]["file"].as_str().unwrap();
    assert!(
        file.starts_with(&format!("s3://{lake_bucket}/data/aspen_borrower/")),
        "{file}"
    );
}

#[test]
fn a_model_waits_until_all_its_datasets_are_in_the_lake() {
    let lab = Lab::new();
    let out = normalize_by_hand(&lab, None, "aspen").unwrap();
    assert_eq!(out.models[0].status, "skipped");
    let reason = out.models[0].reason.as_deref().unwrap();
    assert!(
        reason.contains("aspen_borrower") && reason.contains("aspen_role_profile"),
        "{reason}"
    );
    let unknown = normalize_by_hand(&lab, None, "nope");
    assert_eq!(unknown.unwrap_err().error_type(), "Sluice.BadInput");
}

#[cfg_attr(
    not(sluice_shared),
    ignore = "needs ../shared (absent when this was built)"
)]
#[test]
fn a_crash_mid_normalize_is_finished_by_redrive_with_the_same_bytes() {
    let xlsx = workbook();
    let lab = Lab::new();
    let etag = lab.put(KEY, xlsx);
    // Uploads 1-2: the two sheets' curated files; 3-20: the model's nine tables (data and
    // quarantine each). Die on the 9th upload, halfway through the model.
    let faulty = FaultyPorts::new(&lab.ports, Fault::FailPut(9));
    let event = object_created(&lab.names.raw_bucket, KEY, &etag);
    let r = lab.run_with(&faulty, event, "aspen-crash");
    assert_eq!(r.status, Status::Failed);
    // Uncaught: Normalize itself ends the execution and is what Redrive resumes.
    assert_eq!(r.error.as_deref(), Some("Sluice.AwsError"));
    assert_eq!(
        sluice_asl::restart_points(&r),
        [("Normalize".to_owned(), "Normalize".to_owned())]
    );
    // The status-change rule releases the lock; the redrive takes it back in Normalize.
    lab.status_change_rule(&r);
    assert_eq!(lab.lock_holder(), None);

    let redriven = lab.redrive_with(&lab.ports, &r);
    assert_eq!(
        redriven.status,
        Status::Succeeded,
        "{:?} {:?}",
        redriven.error,
        redriven.cause
    );
    // Only Normalize and what follows ran in the redrive: no ingest ran again.
    let ran = redriven.invocations_in_last_attempt();
    assert_eq!(
        ran,
        ["Normalize", "Load", "ReleaseLock", "Report"],
        "{ran:?}"
    );
    for (table, rows) in EXPECTED {
        assert_eq!(
            lab.rows(&format!("aspen_model_{table}")).len(),
            rows,
            "{table}"
        );
    }
    // What the redrive left is what one clean build with the execution's start time writes.
    let after = lab.lake();
    normalize_by_hand(&lab, Some(redriven.execution.start_time.clone()), "aspen").unwrap();
    assert_eq!(lab.lake(), after);
}
