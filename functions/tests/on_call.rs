//! Issue 12's on-call cases end to end (the real definition, the real handlers, the emulator):
//! (d) a missing spec → spec added → `sluice requeue` → the next run ingests it;
//! (e) a function times out mid-ingest → redrive → the item done once;
//! (g) a redrive while another execution holds the lock waits (LockLost retry), then succeeds.
//! Each asserts from the history what ran, that the lake equals a clean run's, and that one
//! failure gets one message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;

use common::{
    object_created, sample, scheduled, upload_standard, FaultyPorts, Lab, Pausing, HOUR, LOANS_CSV,
};
use serde_json::Value;
use sluice_asl::{Record, Status, TaskError, TaskRunner};
use sluice_core::ports::{SpecStore, WorkStatus};
use sluice_functions::contracts::RequeueFilter;
use sluice_functions::local::LocalLambdas;
use sluice_functions::requeue::{self};

const NEXT_HOUR: &str = "2026-11-22T01:05:00Z";
const CREDIT_NEW: &str = "credit/yyyy=2026/mm=11/dd=22/hh=00/credit-new.csv";

fn credit() -> Vec<u8> {
    sample("credit/yyyy=2026/mm=11/dd=21/hh=23/credit-0001.csv")
}

/// The Ingest invocations of a record's last attempt, with the keys they ingested.
fn ingested_in_last_attempt(r: &Record) -> Vec<String> {
    r.children
        .values()
        .filter(|c| c.parent_attempt == Some(r.execution.redrive_count))
        .flat_map(ingested_in_last_attempt_of_child)
        .collect()
}

/// The keys a child execution's Ingest was given in its last attempt.
fn ingested_in_last_attempt_of_child(c: &Record) -> Vec<String> {
    c.last_attempt()
        .iter()
        .filter(|e| e.kind == "LambdaFunctionScheduled" && e.state == "Ingest")
        .filter_map(|e| e.detail.pointer("/input/item/key").and_then(Value::as_str))
        .map(str::to_owned)
        .collect()
}

#[test]
fn d_a_missing_spec_added_then_requeued_is_ingested_by_the_next_run() {
    let lab = Lab::without_spec("credit");
    let inbox = lab.inbox();
    let key = "credit/yyyy=2026/mm=11/dd=21/hh=23/credit-0001.csv";
    let etag = lab.put(key, credit());
    let first = lab.run(
        object_created(&lab.names.raw_bucket, key, &etag),
        "before-the-spec",
    );
    // Nothing to ingest, nothing failed: the run succeeds and its summary names the object
    // no spec matches (the work table keeps it as a failed item, NoMatchingSpec).
    assert_eq!(
        first.status,
        Status::Succeeded,
        "{:?} {:?}",
        first.error,
        first.cause
    );
    let items = lab.items();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].error.as_deref(), Some("Sluice.NoMatchingSpec"));
    // One message, naming the object; the status-change rule adds none (an ordinary success).
    lab.status_change_rule(&first);
    let messages = lab.messages(&inbox);
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert_eq!(messages[0].1["unmatched_objects"][0]["key"], key);

    // The data engineer adds the spec, then requeues.
    let (spec, document) = common::specs()
        .into_iter()
        .find(|(s, _)| s.dataset == "credit")
        .unwrap();
    lab.rt
        .block_on(lab.ports.specs.put_spec(&spec, &document))
        .unwrap();
    let filter = RequeueFilter {
        error: Some("Sluice.NoMatchingSpec".into()),
        ..Default::default()
    };
    let out = lab
        .rt
        .block_on(requeue::handle(&lab.ports, filter.clone()))
        .unwrap();
    assert_eq!(out.requeued.len(), 1, "{out:?}");
    assert_eq!(out.requeued[0].dataset, "credit");
    // Twice is harmless.
    let again = lab
        .rt
        .block_on(requeue::handle(&lab.ports, filter))
        .unwrap();
    assert!(again.requeued.is_empty(), "{again:?}");

    let next = lab.run(scheduled(HOUR), "after-the-requeue");
    assert_eq!(
        next.status,
        Status::Succeeded,
        "{:?} {:?}",
        next.error,
        next.cause
    );
    assert_eq!(ingested_in_last_attempt(&next), [key]);
    let items = lab.items();
    let done: Vec<_> = items
        .iter()
        .filter(|w| w.dataset == "credit" && w.status == WorkStatus::Done)
        .collect();
    assert_eq!(done.len(), 1, "{items:?}");
    assert_eq!(done[0].attempts, 1);

    let clean = Lab::new();
    let etag = clean.put(key, credit());
    let c = clean.run(object_created(&clean.names.raw_bucket, key, &etag), "clean");
    assert_eq!(c.status, Status::Succeeded);
    common::assert_same_lake(&lab.lake_normalized(), &clean.lake_normalized());
}

/// The first Ingest of `key` dies half-way through publishing (as a Lambda killed at its
/// timeout does) and reports what Lambda reports then; everything else runs normally.
struct TimesOutOnce<'a> {
    lab: &'a Lab,
    key: &'static str,
    fired: AtomicBool,
}

impl TaskRunner for TimesOutOnce<'_> {
    fn invoke(&self, resource: &str, input: &Value, path: &str) -> Result<Value, TaskError> {
        let normal = LocalLambdas {
            ports: &self.lab.ports,
            runtime: self.lab.rt.handle().clone(),
        };
        if resource.contains("ingest")
            && input.pointer("/item/key").and_then(Value::as_str) == Some(self.key)
            && !self.fired.swap(true, Ordering::SeqCst)
        {
            let dying = FaultyPorts::new(&self.lab.ports, common::Fault::FailPut(2));
            let cut_short = LocalLambdas {
                ports: &dying,
                runtime: self.lab.rt.handle().clone(),
            };
            assert!(cut_short.invoke(resource, input, path).is_err());
            return Err(TaskError {
                error: "Sandbox.Timedout".into(),
                cause: "RequestId: 1 Error: Task timed out after 900.00 seconds".into(),
            });
        }
        normal.invoke(resource, input, path)
    }

    fn read_items(&self, reader: &Value) -> Result<Value, TaskError> {
        LocalLambdas {
            ports: &self.lab.ports,
            runtime: self.lab.rt.handle().clone(),
        }
        .read_items(reader)
    }
}

#[test]
fn e_a_timeout_mid_ingest_is_redriven_and_the_item_is_done_once() {
    let lab = Lab::new();
    upload_standard(&lab);
    let inbox = lab.inbox();
    let timing_out = TimesOutOnce {
        lab: &lab,
        key: LOANS_CSV,
        fired: AtomicBool::new(false),
    };
    let r = lab.run_on(&timing_out, scheduled(HOUR), "timed-out");
    assert_eq!(r.status, Status::Failed);
    // Not retried, not caught: the child fails, so does the Map Run; Redrive resumes there.
    let child = r
        .children
        .values()
        .find(|c| c.status != Status::Succeeded)
        .unwrap();
    assert_eq!(child.error.as_deref(), Some("Sandbox.Timedout"));
    let stuck: Vec<_> = lab
        .items()
        .into_iter()
        .filter(|w| w.status != WorkStatus::Done)
        .collect();
    assert_eq!(stuck.len(), 1, "{stuck:?}");
    assert_eq!(
        (stuck[0].key.as_str(), stuck[0].status),
        (LOANS_CSV, WorkStatus::Running)
    );
    lab.status_change_rule(&r);
    assert_eq!(lab.message_kinds(&inbox), ["failure"]);

    // The next hourly run meanwhile leaves the item alone: its execution can still be
    // redriven, and the redrive will finish it.
    let hourly = lab.run(scheduled(NEXT_HOUR), "meanwhile");
    assert_eq!(hourly.status, Status::Succeeded);
    assert!(ingested_in_last_attempt(&hourly).is_empty());
    let still = lab
        .items()
        .into_iter()
        .find(|w| w.key == LOANS_CSV)
        .unwrap();
    assert_eq!(still.status, WorkStatus::Running);

    let redriven = lab.redrive_with(&lab.ports, &r);
    assert_eq!(
        redriven.status,
        Status::Succeeded,
        "{:?} {:?}",
        redriven.error,
        redriven.cause
    );
    assert_eq!(ingested_in_last_attempt(&redriven), [LOANS_CSV]);
    let items = lab.items();
    assert!(
        items.iter().all(|w| w.status == WorkStatus::Done),
        "{items:?}"
    );
    let loans = items.iter().find(|w| w.key == LOANS_CSV).unwrap();
    assert_eq!(loans.attempts, 2, "the timed-out attempt and the redrive");
    // The redrive reached Report (the failed attempt never did): its summary of the rows
    // quarantined, then the recovered notice.
    lab.status_change_rule(&redriven);
    assert_eq!(lab.message_kinds(&inbox), ["summary", "recovered"]);

    let clean = Lab::new();
    upload_standard(&clean);
    assert_eq!(
        clean.run(scheduled(HOUR), "clean").status,
        Status::Succeeded
    );
    common::assert_same_lake(&lab.lake_normalized(), &clean.lake_normalized());
}

/// Execution A's redrive: at its first `Sluice.LockLost`, lets execution B (paused while
/// holding the lock) finish, then reports the error, so A's Retry waits and tries again.
struct FreesTheLock<'a, R> {
    inner: &'a R,
    resume_b: mpsc::Sender<()>,
    b_done: std::sync::Mutex<mpsc::Receiver<()>>,
    lock_lost: AtomicBool,
}

impl<R: TaskRunner> TaskRunner for FreesTheLock<'_, R> {
    fn invoke(&self, resource: &str, input: &Value, path: &str) -> Result<Value, TaskError> {
        let out = self.inner.invoke(resource, input, path);
        if let Err(e) = &out {
            if e.error == "Sluice.LockLost" && !self.lock_lost.swap(true, Ordering::SeqCst) {
                self.resume_b.send(()).unwrap();
                self.b_done.lock().unwrap().recv().unwrap();
            }
        }
        out
    }

    fn read_items(&self, reader: &Value) -> Result<Value, TaskError> {
        self.inner.read_items(reader)
    }
}

#[test]
fn g_a_redrive_waits_for_the_lock_holder_then_succeeds() {
    let lab = Lab::new();
    upload_standard(&lab);
    let inbox = lab.inbox();
    let crashing = FaultyPorts::new(&lab.ports, common::Fault::FailPut(2));
    let a = lab.run_with(&crashing, scheduled(HOUR), "run-a");
    assert_eq!(a.status, Status::Failed);
    lab.status_change_rule(&a);
    assert_eq!(lab.lock_holder(), None);
    // A new file for the next hour: execution B will have work, and hold the lock doing it.
    lab.put(CREDIT_NEW, credit());

    let (at_ingest_tx, at_ingest_rx) = mpsc::channel();
    let (resume_tx, resume_rx) = mpsc::channel();
    let (b_done_tx, b_done_rx) = mpsc::channel();
    let (redriven, b) = std::thread::scope(|s| {
        let lab = &lab;
        let b = s.spawn(move || {
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
            let b = lab.run_on(&pausing, scheduled(NEXT_HOUR), "run-b");
            b_done_tx.send(()).unwrap();
            b
        });
        at_ingest_rx.recv().unwrap();
        assert_eq!(
            lab.lock_holder().map(|h| h.ends_with(":run-b")),
            Some(true),
            "B holds the lock while A is redriven"
        );
        let inner = LocalLambdas {
            ports: &lab.ports,
            runtime: lab.rt.handle().clone(),
        };
        let frees = FreesTheLock {
            inner: &inner,
            resume_b: resume_tx.clone(),
            b_done: std::sync::Mutex::new(b_done_rx),
            lock_lost: AtomicBool::new(false),
        };
        let redriven = sluice_asl::redrive(&a, &frees, &sluice_asl::Options::default()).unwrap();
        // Never leave B paused, whatever A did.
        let _ = resume_tx.send(());
        (redriven, b.join().unwrap())
    });
    assert_eq!(b.status, Status::Succeeded, "{:?} {:?}", b.error, b.cause);
    // B takes its new file and the items A never started (still queued); the one A crashed
    // in stays A's, and only A's redrive ingests it.
    let crashed: Vec<String> = a
        .children
        .values()
        .filter(|c| c.status != Status::Succeeded)
        .flat_map(ingested_in_last_attempt_of_child)
        .collect();
    assert_eq!(crashed.len(), 1, "{crashed:?}");
    let by_b = ingested_in_last_attempt(&b);
    assert!(by_b.contains(&CREDIT_NEW.to_owned()), "{by_b:?}");
    assert!(!by_b.contains(&crashed[0]), "{by_b:?}");
    assert_eq!(
        redriven.status,
        Status::Succeeded,
        "{:?} {:?}",
        redriven.error,
        redriven.cause
    );
    // In the redriven child: LockLost, retried (the Retry's long backoff), then done.
    let child_events: Vec<_> = redriven
        .children
        .values()
        .filter(|c| c.parent_attempt == Some(redriven.execution.redrive_count))
        .flat_map(|c| c.last_attempt().iter())
        .filter(|e| e.state == "Ingest" && e.kind.starts_with("LambdaFunction"))
        .map(|e| {
            (
                e.kind.as_str(),
                e.detail["error"].as_str().unwrap_or("").to_owned(),
                e.detail.get("retry").is_some(),
            )
        })
        .filter(|(k, _, _)| *k != "LambdaFunctionScheduled" && *k != "LambdaFunctionStarted")
        .collect();
    assert!(
        child_events.contains(&("LambdaFunctionFailed", "Sluice.LockLost".into(), true)),
        "{child_events:?}"
    );
    assert_eq!(
        child_events.last().map(|(k, _, _)| *k),
        Some("LambdaFunctionSucceeded"),
        "{child_events:?}"
    );
    let items = lab.items();
    assert!(
        items.iter().all(|w| w.status == WorkStatus::Done),
        "{items:?}"
    );
    let once = items.iter().find(|w| w.key == crashed[0]).unwrap();
    assert_eq!(once.attempts, 2, "the crashed attempt and the redrive's");
    assert!(
        items
            .iter()
            .filter(|w| w.key != crashed[0])
            .all(|w| w.attempts == 1),
        "every other item ingested once, by A or B: {items:?}"
    );
    assert_eq!(lab.lock_holder(), None);
    lab.status_change_rule(&redriven);
    let kinds = lab.message_kinds(&inbox);
    assert_eq!(
        kinds.iter().filter(|k| *k == "failure").count(),
        1,
        "one failure, one message: {kinds:?}"
    );
    assert_eq!(
        kinds.last().map(String::as_str),
        Some("recovered"),
        "{kinds:?}"
    );

    let clean = Lab::new();
    upload_standard(&clean);
    clean.put(CREDIT_NEW, credit());
    assert_eq!(
        clean.run(scheduled(HOUR), "clean-1").status,
        Status::Succeeded
    );
    assert_eq!(
        clean.run(scheduled(NEXT_HOUR), "clean-2").status,
        Status::Succeeded
    );
    common::assert_same_lake(&lab.lake_normalized(), &clean.lake_normalized());
}
