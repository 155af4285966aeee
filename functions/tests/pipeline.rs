//! The state machine end to end: statemachine/ingest.asl.json run by the local runner, the
//! real handlers in-process, against the emulator. What landed is read back independently
//! (Parquet with pyarrow, Glue and DynamoDB through the SDK, SNS through an SQS queue).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::mpsc;

use common::{
    object_created, sample, scheduled, upload_standard, Fault, FaultyPorts, Lab, Pausing, CREDIT_B,
    HOUR, LOANS_CSV,
};
use sluice_asl::{Record, Status};
use sluice_core::ports::{LockStore, ObjectStore, WorkStatus};
use sluice_functions::local::LocalLambdas;

fn states(r: &Record) -> Vec<&str> {
    r.states_entered_top_level()
}

#[test]
fn hourly_run_lands_every_file_and_leaves_the_pipeline_clean() {
    let lab = Lab::new();
    upload_standard(&lab);
    let r = lab.run(scheduled(HOUR), "hourly-1");
    assert_eq!(r.status, Status::Succeeded, "{:?} {:?}", r.error, r.cause);
    assert_eq!(
        states(&r),
        [
            "GenerateQueue",
            "AnythingToDo?",
            "AcquireLock",
            "LockAcquired?",
            "ProcessItems",
            "Normalize",
            "Load",
            "ReleaseLock",
            "Report",
            "AnyItemFailed?",
            "Done"
        ]
    );
    let out = r.output.clone().unwrap();
    assert_eq!(out["items"], 4, "{out}");
    assert_eq!(out["failed_items"], 0);
    assert_eq!(
        out["rows_quarantined"], 8,
        "2 + 2 credit rows and 4 loans rows are rejected"
    );
    assert_eq!(out["published"], true, "quarantined rows are reported");

    // Read back with pyarrow, not with our code.
    let credit = lab.rows("credit");
    assert_eq!(credit.len(), 40, "20 good rows from each credit file");
    let loans = lab.rows("loans");
    let mut ids: Vec<i64> = loans
        .iter()
        .map(|r| r["loan_id"].as_i64().unwrap())
        .collect();
    ids.sort();
    assert_eq!(
        ids,
        [1, 2, 3, 5, 101, 102, 103],
        "the CSV's 4 good rows and the workbook's 3"
    );
    let r103 = loans.iter().find(|r| r["loan_id"] == 103).unwrap();
    assert_eq!(
        (r103["amount"].as_str(), r103["loan_date"].as_str()),
        (Some("15000.00"), Some("2023-08-02"))
    );

    let lake = lab.lake();
    assert_eq!(
        lake.keys().filter(|k| k.starts_with("quarantine/")).count(),
        3,
        "{:?}",
        lake.keys()
    );
    // credit's spec has drift: each of its two files left its compact profile in the lake
    // (through S3), outside data/; loans has none.
    let profiles: Vec<String> = lab
        .rt
        .block_on(
            lab.ports
                .store
                .list(&lab.names.lake_bucket, "_sluice/profiles/"),
        )
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .collect();
    assert_eq!(profiles.len(), 2, "{profiles:?}");
    assert!(profiles
        .iter()
        .all(|k| k.starts_with("_sluice/profiles/credit/") && k.ends_with(".json")));
    assert_eq!(
        lab.partitions("credit"),
        [
            vec!["2026", "11", "21", "22"],
            vec!["2026", "11", "21", "23"]
        ]
    );
    assert_eq!(
        lab.partitions("loans"),
        [
            ["2023", "03"],
            ["2023", "04"],
            ["2023", "05"],
            ["2023", "07"],
            ["2023", "08"]
        ]
    );
    let items = lab.items();
    assert_eq!(items.len(), 4);
    assert!(
        items
            .iter()
            .all(|w| w.status == WorkStatus::Done && w.attempts == 1),
        "{items:?}"
    );
    assert_eq!(lab.lock_holder(), None, "lock released");
    assert_eq!(lab.watermark().as_deref(), Some("2026-11-21T23"));
}

#[test]
fn duplicate_events_and_an_overlapping_schedule_process_each_object_once() {
    let lab = Lab::new();
    upload_standard(&lab);
    let etag = lab.put(
        CREDIT_B,
        sample("credit/yyyy=2026/mm=11/dd=21/hh=23/credit-0001.csv"),
    );
    for i in 0..5 {
        let r = lab.run(
            object_created(&lab.names.raw_bucket, CREDIT_B, &etag),
            &format!("event-{i}"),
        );
        assert_eq!(
            r.status,
            Status::Succeeded,
            "delivery {i}: {:?} {:?}",
            r.error,
            r.cause
        );
    }
    let r = lab.run(scheduled(HOUR), "hourly");
    assert_eq!(r.status, Status::Succeeded, "{:?} {:?}", r.error, r.cause);
    let items = lab.items();
    assert_eq!(items.len(), 4, "one item per object: {items:?}");
    assert!(
        items
            .iter()
            .all(|w| w.status == WorkStatus::Done && w.attempts == 1),
        "each processed once: {items:?}"
    );

    let clean = Lab::new();
    upload_standard(&clean);
    let c = clean.run(scheduled(HOUR), "clean");
    assert_eq!(c.status, Status::Succeeded);
    // Quarantine records name the raw object, whose bucket is per environment.
    common::assert_same_lake(&lab.lake_normalized(), &clean.lake_normalized());
}

#[test]
fn of_two_executions_at_once_one_processes_and_the_other_says_why_not() {
    let lab = Lab::new();
    upload_standard(&lab);
    let (at_ingest_tx, at_ingest_rx) = mpsc::channel();
    let (resume_tx, resume_rx) = mpsc::channel();
    let (a, b) = std::thread::scope(|s| {
        let lab = &lab;
        let a = s.spawn(move || {
            let inner = LocalLambdas {
                ports: &lab.ports,
                runtime: lab.rt.handle().clone(),
            };
            let pausing = Pausing {
                inner: &inner,
                at_ingest: at_ingest_tx,
                resume: std::sync::Mutex::new(resume_rx),
                paused: Default::default(),
            };
            lab.run_on(&pausing, scheduled(HOUR), "run-a")
        });
        at_ingest_rx.recv().unwrap();
        let b = lab.run(scheduled(HOUR), "run-b");
        resume_tx.send(()).unwrap();
        (a.join().unwrap(), b)
    });
    assert_eq!(a.status, Status::Succeeded, "{:?} {:?}", a.error, a.cause);
    assert_eq!(b.status, Status::Succeeded, "{:?} {:?}", b.error, b.cause);
    assert_eq!(states(&b).last(), Some(&"AnotherRunIsActive"));
    let why = b.output.unwrap();
    assert_eq!(why["acquired"], false);
    assert_eq!(
        why["holder"].as_str(),
        Some(a.execution.execution_arn.as_str())
    );
    assert!(
        why["reason"]
            .as_str()
            .unwrap()
            .contains("another execution is processing"),
        "{why}"
    );
    assert!(
        !b.events.iter().any(|e| e.state == "Ingest"),
        "B ingested nothing"
    );
    let items = lab.items();
    assert_eq!(items.len(), 4);
    assert!(
        items
            .iter()
            .all(|w| w.status == WorkStatus::Done && w.attempts == 1),
        "{items:?}"
    );
    assert_eq!(lab.lock_holder(), None);
}

#[test]
fn a_corrupt_file_fails_alone_is_reported_and_fails_the_execution() {
    let lab = Lab::new();
    upload_standard(&lab);
    let bad = "loans/yyyy=2026/mm=11/dd=21/hh=23/broken.xlsx";
    lab.put(bad, b"PK\x03\x04 this is not really a workbook".to_vec());
    let inbox = lab.inbox();

    let r = lab.run(scheduled(HOUR), "with-bad-file");
    assert_eq!(r.status, Status::Failed);
    assert_eq!(r.error.as_deref(), Some("Sluice.ItemsFailed"));
    let items = lab.items();
    assert_eq!(items.len(), 5);
    let failed: Vec<_> = items
        .iter()
        .filter(|w| w.status == WorkStatus::Failed)
        .collect();
    assert_eq!(failed.len(), 1, "{items:?}");
    assert_eq!(failed[0].key, bad);
    assert_eq!(failed[0].error.as_deref(), Some("Sluice.BadFile"));
    assert!(!failed[0].error_message.as_deref().unwrap_or("").is_empty());
    assert_eq!(
        items
            .iter()
            .filter(|w| w.status == WorkStatus::Done)
            .count(),
        4,
        "the others landed"
    );
    assert_eq!(lab.rows("loans").len(), 7);
    assert_eq!(lab.lock_holder(), None);

    let (subject, msg) = lab.next_message(&inbox);
    assert_eq!(
        msg["execution_arn"].as_str(),
        Some(r.execution.execution_arn.as_str())
    );
    let failed_items = msg["failed_items"].as_array().unwrap();
    assert_eq!(failed_items.len(), 1, "{msg}");
    assert_eq!(
        failed_items[0]["file"].as_str().unwrap(),
        format!("s3://{}/{bad}", lab.names.raw_bucket)
    );
    assert_eq!(failed_items[0]["error"], "Sluice.BadFile");
    assert!(msg["console"]
        .as_str()
        .unwrap()
        .contains(&r.execution.execution_arn));
    assert!(subject.contains("1 file(s) failed"), "{subject}");
    // The status-change rule then frees the lock, and sends nothing more: the Report step
    // already said which file failed and why. One failure, one message.
    for (function, out) in lab.status_change_rule(&r) {
        if function == "notify" {
            assert_eq!(out["published"], false, "{out}");
        }
    }
    assert!(
        lab.no_more_messages(&inbox),
        "exactly one message per failure"
    );
    // Redrive re-enters the ItemsFailed Fail state and fails again at once: no function runs.
    let again = lab.redrive_with(&lab.ports, &r);
    assert_eq!(again.error.as_deref(), Some("Sluice.ItemsFailed"));
    assert!(again.invocations_in_last_attempt().is_empty());
}

/// The retried failures in a run's distributed-Map children (ingest runs there), each noted
/// on the failure it follows.
fn retries_in_children(r: &Record) -> Vec<&sluice_asl::Event> {
    r.children
        .values()
        .flat_map(|c| c.events.iter())
        .filter(|e| e.kind == "LambdaFunctionFailed" && e.detail.get("retry").is_some())
        .collect()
}

#[test]
fn a_transient_fault_is_retried_and_the_run_succeeds() {
    let lab = Lab::new();
    upload_standard(&lab);
    let faulty = FaultyPorts::new(&lab.ports, Fault::ThrottleGet(2));
    let r = lab.run_with(&faulty, scheduled(HOUR), "throttled");
    assert_eq!(r.status, Status::Succeeded, "{:?} {:?}", r.error, r.cause);
    // Ingest runs in the distributed Map's child executions: the retry is in one child's
    // history, noted on the failure it follows.
    let retries = retries_in_children(&r);
    assert_eq!(retries.len(), 1, "{retries:?}");
    assert_eq!(retries[0].state, "Ingest");
    assert_eq!(retries[0].detail["error"], "Sluice.Transient");
    let items = lab.items();
    assert!(
        items.iter().all(|w| w.status == WorkStatus::Done),
        "{items:?}"
    );
    assert_eq!(
        items.iter().map(|w| w.attempts).sum::<u32>(),
        5,
        "one item took two attempts"
    );
}

#[test]
fn a_download_that_breaks_off_mid_file_is_retried_and_never_published_half() {
    let lab = Lab::new();
    upload_standard(&lab);
    let clean = Lab::new();
    upload_standard(&clean);
    let c = clean.run(scheduled(HOUR), "clean");
    assert_eq!(c.status, Status::Succeeded);
    // The second download of the run (a CSV, read as it arrives from S3) stops halfway.
    let faulty = FaultyPorts::new(&lab.ports, Fault::BreakGet(2));
    let r = lab.run_with(&faulty, scheduled(HOUR), "broken");
    assert_eq!(r.status, Status::Succeeded, "{:?} {:?}", r.error, r.cause);
    let retries = retries_in_children(&r);
    assert_eq!(retries.len(), 1, "{retries:?}");
    assert_eq!(retries[0].detail["error"], "Sluice.Transient");
    // Everything published is what a run without the fault publishes.
    common::assert_same_lake(&lab.lake_normalized(), &clean.lake_normalized());
}

#[test]
fn a_crash_mid_ingest_is_finished_by_redrive_and_matches_a_clean_run() {
    let lab = Lab::new();
    upload_standard(&lab);
    // The first loans file writes 3 data files and a quarantine file; die on the 2nd upload
    // of the run, after some output is already in the lake.
    let faulty = FaultyPorts::new(&lab.ports, Fault::FailPut(2));
    let r = lab.run_with(&faulty, scheduled(HOUR), "crashing");
    assert_eq!(r.status, Status::Failed);
    // Uncaught in its child execution: the Map Run fails, and ProcessItems is where Redrive
    // resumes (the failed child and the ones never started).
    assert_eq!(
        r.error.as_deref(),
        Some("States.ExceedToleratedFailureThreshold")
    );
    assert_eq!(
        sluice_asl::restart_points(&r),
        [("ProcessItems".to_owned(), "ProcessItems".to_owned())]
    );
    assert_eq!(
        lab.lock_holder().as_deref(),
        Some(r.execution.execution_arn.as_str())
    );
    // The status-change rule frees the lock and sends the one failure notice.
    let inbox = lab.inbox();
    lab.status_change_rule(&r);
    assert_eq!(lab.lock_holder(), None);
    let (subject, msg) = lab.next_message(&inbox);
    assert!(
        subject.contains("execution failed in ProcessItems/"),
        "{subject}"
    );
    assert!(
        msg["failed_state"].as_str().unwrap().ends_with("/Ingest"),
        "{msg}"
    );
    assert!(msg["action"].as_str().unwrap().contains("Redrive"), "{msg}");
    assert!(
        lab.no_more_messages(&inbox),
        "exactly one message per failure"
    );
    let partial = lab.lake();
    assert!(
        !partial.is_empty(),
        "some output was written before the crash"
    );

    let redriven = lab.redrive_with(&lab.ports, &r);
    assert_eq!(
        redriven.status,
        Status::Succeeded,
        "{:?} {:?}",
        redriven.error,
        redriven.cause
    );
    assert_eq!(redriven.execution.execution_arn, r.execution.execution_arn);
    assert_eq!(redriven.execution.redrive_count, 1);
    let ran = redriven.invocations_in_last_attempt();
    assert!(!ran.contains(&"GenerateQueue".to_owned()), "{ran:?}");
    assert!(!ran.contains(&"AcquireLock".to_owned()), "{ran:?}");
    let done_before: Vec<&String> = r
        .children
        .iter()
        .filter(|(_, c)| c.status == Status::Succeeded)
        .map(|(k, _)| k)
        .collect();
    assert!(
        done_before
            .iter()
            .all(|k| !ran.iter().any(|p| p.starts_with(&format!("{k}/")))),
        "no child that had succeeded ran again: {ran:?}"
    );
    let items = lab.items();
    assert!(
        items.iter().all(|w| w.status == WorkStatus::Done),
        "{items:?}"
    );
    assert_eq!(lab.lock_holder(), None);

    let clean = Lab::new();
    upload_standard(&clean);
    assert_eq!(
        clean.run(scheduled(HOUR), "clean").status,
        Status::Succeeded
    );
    common::assert_same_lake(&lab.lake_normalized(), &clean.lake_normalized());
}

#[test]
fn a_stale_lock_from_a_dead_execution_is_taken_over() {
    let lab = Lab::new();
    upload_standard(&lab);
    // A real (emulated) execution that is no longer running holds a lease that has not expired.
    let dead = lab.rt.block_on(async {
        let sfn = aws_sdk_sfn::Client::new(&lab.clients.config);
        let machine = sfn
            .create_state_machine()
            .name(sluice_testkit::unique("dead"))
            .role_arn("arn:aws:iam::123456789012:role/sluice-test")
            .definition(
                r#"{"StartAt":"W","States":{"W":{"Type":"Wait","Seconds":3600,"End":true}}}"#,
            )
            .send()
            .await
            .unwrap();
        let exec = sfn
            .start_execution()
            .state_machine_arn(machine.state_machine_arn())
            .name(sluice_testkit::unique("run"))
            .send()
            .await
            .unwrap();
        sfn.stop_execution()
            .execution_arn(exec.execution_arn())
            .send()
            .await
            .unwrap();
        let owner = exec.execution_arn().to_owned();
        lab.ports
            .locks
            .acquire(
                sluice_functions::run::PIPELINE_LOCK,
                &owner,
                3600,
                sluice_aws::now_secs(),
            )
            .await
            .unwrap();
        owner
    });
    assert_eq!(lab.lock_holder().as_deref(), Some(dead.as_str()));
    let r = lab.run(scheduled(HOUR), "after-the-dead");
    assert_eq!(r.status, Status::Succeeded, "{:?} {:?}", r.error, r.cause);
    let lock = r
        .events
        .iter()
        .find(|e| e.kind == "LambdaFunctionSucceeded" && e.state == "AcquireLock")
        .unwrap();
    assert_eq!(lock.detail["output"]["acquired"], true);
    assert_eq!(
        lock.detail["output"]["took_over_from"].as_str(),
        Some(dead.as_str())
    );
    assert!(lab.items().iter().all(|w| w.status == WorkStatus::Done));
    assert_eq!(lab.lock_holder(), None);
}

/// Issue 13.1: a corrected re-upload (same key, new content) replaces the earlier version's
/// rows, in every partition they sat in, so the lake equals a lake that only ever saw the
/// correction.
#[test]
fn a_corrected_reupload_replaces_the_earlier_version_in_every_partition() {
    let lab = Lab::new();
    let original = String::from_utf8(sample("loans/loans-2023-06.csv")).unwrap();
    // The correction drops both March loans (their month gets no file from it) and moves
    // loan 3 from April to July.
    let corrected: String = original
        .lines()
        .filter(|l| !l.contains(",2023-03-"))
        .map(|l| l.replace(",2023-04-02,", ",2023-07-02,"))
        .collect::<Vec<_>>()
        .join("\n")
        + "\n";
    let etag1 = lab.put(LOANS_CSV, original.into_bytes());
    let first = lab.run(
        object_created(&lab.names.raw_bucket, LOANS_CSV, &etag1),
        "v1",
    );
    assert_eq!(
        first.status,
        Status::Succeeded,
        "{:?} {:?}",
        first.error,
        first.cause
    );
    let v1_files: Vec<String> = lab.lake().into_keys().collect();
    assert!(
        v1_files.iter().any(|k| k.contains("year=2023/month=03")),
        "{v1_files:?}"
    );

    let etag2 = lab.put(LOANS_CSV, corrected.clone().into_bytes());
    assert_ne!(etag1, etag2);
    let second = lab.run(
        object_created(&lab.names.raw_bucket, LOANS_CSV, &etag2),
        "v2",
    );
    assert_eq!(
        second.status,
        Status::Succeeded,
        "{:?} {:?}",
        second.error,
        second.cause
    );
    let ingest = second
        .children
        .values()
        .flat_map(|c| c.events.iter())
        .find(|e| e.kind == "LambdaFunctionSucceeded" && e.state == "Ingest")
        .unwrap();
    assert!(
        ingest.detail["output"]["replaced_outputs"]
            .as_u64()
            .unwrap()
            > 0,
        "{}",
        ingest.detail
    );
    let ids: Vec<i64> = lab
        .rows("loans")
        .iter()
        .map(|r| r["loan_id"].as_i64().unwrap())
        .collect();
    assert!(!ids.contains(&1) && !ids.contains(&2), "{ids:?}");
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "each row once: {ids:?}");
    assert!(
        !lab.lake().keys().any(|k| k.contains("year=2023/month=03")),
        "the March partition's old file is gone"
    );

    let clean = Lab::new();
    let etag = clean.put(LOANS_CSV, corrected.into_bytes());
    let c = clean.run(
        object_created(&clean.names.raw_bucket, LOANS_CSV, &etag),
        "only-v2",
    );
    assert_eq!(c.status, Status::Succeeded);
    common::assert_same_lake(&lab.lake_normalized(), &clean.lake_normalized());
}

/// Issue 13.12: a key with spaces, `+`, `%` and accents, named URL-encoded by its event and
/// plainly by the hourly listing, is one work item, ingested once.
#[test]
fn a_key_with_spaces_plus_percent_and_accents_is_found_and_ingested_once() {
    let lab = Lab::new();
    let key = "credit/yyyy=2026/mm=11/dd=21/hh=23/my file+1 ü 100%.csv";
    let etag = lab.put(
        key,
        sample("credit/yyyy=2026/mm=11/dd=21/hh=23/credit-0001.csv"),
    );
    let encoded = "credit/yyyy%3D2026/mm%3D11/dd%3D21/hh%3D23/my+file%2B1+%C3%BC+100%25.csv";
    let by_event = lab.run(
        object_created(&lab.names.raw_bucket, encoded, &etag),
        "event",
    );
    assert_eq!(
        by_event.status,
        Status::Succeeded,
        "{:?} {:?}",
        by_event.error,
        by_event.cause
    );
    let hourly = lab.run(scheduled(HOUR), "hourly");
    assert_eq!(
        hourly.status,
        Status::Succeeded,
        "{:?} {:?}",
        hourly.error,
        hourly.cause
    );
    let items = lab.items();
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(items[0].key, key);
    assert_eq!((items[0].status, items[0].attempts), (WorkStatus::Done, 1));
    assert!(!lab.rows("credit").is_empty());
}

/// Issue 13.6: on a deployment nothing bootstraps the Glue tables; ingest creates the table of
/// an unpartitioned dataset too, so Athena sees every dataset.
#[test]
fn an_unpartitioned_dataset_gets_its_glue_table_without_bootstrap() {
    let lab = Lab::new();
    let glue = &lab.clients.glue;
    let table = || {
        lab.rt
            .block_on(
                glue.get_table()
                    .database_name(&lab.names.glue_database)
                    .name("bank")
                    .send(),
            )
            .ok()
    };
    // As Terraform deploys it: the database, no table.
    lab.rt
        .block_on(
            glue.delete_table()
                .database_name(&lab.names.glue_database)
                .name("bank")
                .send(),
        )
        .unwrap();
    assert!(table().is_none());
    let key = "banking/bank/banks.csv";
    let etag = lab.put(
        key,
        b"idBank,Name,Capitalization\n1,First Bank,1000.50\n2,Second Bank,\n".to_vec(),
    );
    let r = lab.run(object_created(&lab.names.raw_bucket, key, &etag), "bank");
    assert_eq!(r.status, Status::Succeeded, "{:?} {:?}", r.error, r.cause);
    let t = table().expect("the table exists after the first ingest");
    let t = t.table().unwrap();
    assert!(t.partition_keys().is_empty());
    assert_eq!(lab.rows("bank").len(), 2);
}

/// Issue 13.3: an upload burst. Each Object Created event (delivered twice, as EventBridge
/// may) only registers its work item; one drain execution ingests them all, each once.
#[test]
fn an_upload_burst_is_registered_by_its_events_and_ingested_by_one_drain_run() {
    let lab = Lab::new();
    let credit = sample("credit/yyyy=2026/mm=11/dd=21/hh=23/credit-0001.csv");
    for n in 0..30 {
        let key = format!("credit/yyyy=2026/mm=11/dd=22/hh=00/burst-{n:02}.csv");
        let etag = lab.put(&key, credit.clone());
        let event = object_created(&lab.names.raw_bucket, &key, &etag);
        for _ in 0..2 {
            let out = lab
                .rt
                .block_on(sluice_functions::registry::invoke(
                    &lab.ports,
                    "queue-generator",
                    &event,
                ))
                .unwrap();
            assert!(out.get("registered").is_some(), "{out}");
        }
    }
    assert_eq!(lab.items().len(), 30);
    assert!(lab.items().iter().all(|w| w.status == WorkStatus::Queued));
    let drain = serde_json::json!({
        "version": "0", "id": "drain", "detail-type": "Scheduled Event", "source": "sluice.drain",
        "time": "2026-11-22T00:10:00Z", "resources": [], "detail": {"drain": true}
    });
    let r = lab.run(drain.clone(), "drain-1");
    assert_eq!(r.status, Status::Succeeded, "{:?} {:?}", r.error, r.cause);
    let items = lab.items();
    assert!(
        items
            .iter()
            .all(|w| w.status == WorkStatus::Done && w.attempts == 1),
        "{items:?}"
    );
    // The next drain finds nothing and ends at once: no lock taken, no Map.
    let idle = lab.run(drain, "drain-2");
    assert_eq!(idle.status, Status::Succeeded);
    assert_eq!(
        states(&idle),
        ["GenerateQueue", "AnythingToDo?", "NothingToDo"]
    );
}

/// Issue 13.8: a partition's output rolls past `output_roll_rows`; each closed file goes up to
/// the staging prefix while the input is read, and the publish copies them: the lake holds the
/// same rows as without rolling, in more files, and no staged copy is left.
#[test]
fn rolled_outputs_publish_the_same_rows_through_staging() {
    let lab = Lab::new();
    lab.rt
        .block_on(
            lab.clients
                .ssm
                .put_parameter()
                .name(format!("{}output_roll_rows", lab.names.settings_path))
                .value("7")
                .overwrite(true)
                .send(),
        )
        .unwrap();
    upload_standard(&lab);
    let clean = Lab::new();
    upload_standard(&clean);
    for (l, name) in [(&lab, "rolling"), (&clean, "clean")] {
        let r = l.run(scheduled(HOUR), name);
        assert_eq!(
            r.status,
            Status::Succeeded,
            "{name}: {:?} {:?}",
            r.error,
            r.cause
        );
    }
    let files = |l: &Lab, dataset: &str| {
        l.lake()
            .keys()
            .filter(|k| k.starts_with(&format!("data/{dataset}/")))
            .count()
    };
    assert!(
        files(&lab, "credit") > files(&clean, "credit"),
        "{} files rolled vs {}",
        files(&lab, "credit"),
        files(&clean, "credit")
    );
    for dataset in ["credit", "loans"] {
        assert_eq!(lab.rows(dataset), clean.rows(dataset), "{dataset}");
    }
    let staged = lab.rt.block_on(async {
        lab.ports
            .store
            .list(&lab.names.lake_bucket, "_sluice/staging/")
            .await
            .unwrap()
    });
    assert!(staged.is_empty(), "{staged:?}");
}
