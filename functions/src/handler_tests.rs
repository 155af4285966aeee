//! The handlers' decisions, on in-memory ports (no AWS): registration and batches, the
//! watermark, unmatched objects, lock takeover, when notify publishes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::json;
use sluice_core::ports::{ExecutionStatus, LockStore, WorkQueue, WorkStatus};
use sluice_core::TableSpec;

use crate::contracts::QueueInput;
use crate::contracts::{Action, LockInput};
use crate::contracts::{Kind, NotifyInput};
use crate::in_progress_check::{self};
use crate::memory::{MemPorts, MemStore};
use crate::notify::{self};
use crate::queue_generator::{self};
use crate::run::PIPELINE_LOCK;

fn spec(dataset: &str, prefix: &str) -> TableSpec {
    let text = json!({
        "dataset": dataset,
        "source": {"prefix": prefix, "pattern": "**/*.csv", "format": "csv"},
        "columns": [{"name": "a", "type": "string"}]
    })
    .to_string();
    TableSpec::from_json("unit", &text).unwrap()
}

/// A work item as the queue-generator registers it (no attempts, no outcome yet).
fn work_item(
    bucket: &str,
    key: &str,
    version: &str,
    dataset: &str,
    batch: &str,
    status: WorkStatus,
) -> sluice_core::ports::WorkItem {
    sluice_core::ports::WorkItem {
        id: sluice_core::ports::WorkItem::item_id(bucket, key, version, dataset),
        batch: batch.into(),
        bucket: bucket.into(),
        key: key.into(),
        version: version.into(),
        dataset: dataset.into(),
        status,
        attempts: 0,
        updated_at: 0,
        execution: None,
        counts: None,
        error: None,
        error_message: None,
        drift: Vec::new(),
        pull: None,
    }
}

fn ports() -> MemPorts {
    MemPorts::new(vec![spec("credit", "credit/"), spec("loans", "loans/")])
}

fn scheduled(time: &str, execution: &str) -> QueueInput {
    serde_json::from_value(json!({
        "event": {"detail-type": "Scheduled Event", "source": "aws.events", "time": time, "detail": {}},
        "execution": format!("arn:aws:states:us-east-1:1:execution:m:{execution}")
    }))
    .unwrap()
}

fn object_created(key: &str, etag: &str, execution: &str) -> QueueInput {
    serde_json::from_value(json!({
        "event": {"detail-type": "Object Created", "source": "aws.s3", "detail": {"bucket": {"name": "sluice-unit-raw"}, "object": {"key": key, "etag": etag}}},
        "execution": format!("arn:aws:states:us-east-1:1:execution:m:{execution}")
    }))
    .unwrap()
}

#[tokio::test]
async fn a_scheduled_run_registers_each_object_once_and_moves_the_watermark() {
    let p = ports();
    p.store.put(
        "sluice-unit-raw",
        "credit/yyyy=2026/mm=11/dd=21/hh=22/a.csv",
        b"a\n1\n",
    );
    p.store.put(
        "sluice-unit-raw",
        "loans/yyyy=2026/mm=11/dd=21/hh=23/b.csv",
        b"a\n2\n",
    );
    p.store.put(
        "sluice-unit-raw",
        "loans/yyyy=2026/mm=11/dd=21/hh=23/notes.txt",
        b"?",
    );
    p.store.put(
        "sluice-unit-raw",
        "credit/yyyy=2026/mm=11/dd=20/hh=01/too-old.csv",
        b"a\n3\n",
    );

    let out = queue_generator::handle(&p, scheduled("2026-11-22T00:05:00Z", "run-1"))
        .await
        .unwrap();
    assert_eq!(
        (out.trigger.as_str(), out.count, out.registered),
        ("schedule", 2, 2)
    );
    assert_eq!(out.unmatched.len(), 1, "notes.txt matches no spec: {out:?}");
    assert_eq!(
        out.unmatched[0].key,
        "loans/yyyy=2026/mm=11/dd=21/hh=23/notes.txt"
    );
    assert_eq!(
        out.window
            .as_ref()
            .map(|w| (w.from.as_str(), w.to.as_str())),
        Some(("2026-11-21T17", "2026-11-21T23"))
    );
    assert_eq!(
        p.work.get_marker("watermark").await.unwrap().as_deref(),
        Some("2026-11-21T23")
    );
    let failed = p.work.by_status(WorkStatus::Failed).await.unwrap();
    assert_eq!(
        failed[0].error.as_deref(),
        Some(queue_generator::NO_MATCHING_SPEC)
    );

    // The next run lists the same hours again (lookback): nothing is registered twice, the
    // unmatched object is not reported again, queued items come back until they are done.
    let again = queue_generator::handle(&p, scheduled("2026-11-22T00:35:00Z", "run-2"))
        .await
        .unwrap();
    assert_eq!(
        (
            again.registered,
            again.already_known,
            again.count,
            again.unmatched.len()
        ),
        (0, 2, 2, 0)
    );
    for w in p.work.by_status(WorkStatus::Queued).await.unwrap() {
        p.work
            .transition(
                &w.id,
                &[WorkStatus::Queued],
                WorkStatus::Done,
                Default::default(),
            )
            .await
            .unwrap();
    }
    let done = queue_generator::handle(&p, scheduled("2026-11-22T00:55:00Z", "run-3"))
        .await
        .unwrap();
    assert_eq!(done.count, 0, "done items are not taken again");
}

#[tokio::test]
async fn duplicate_object_events_make_one_item() {
    let p = ports();
    p.store.put("sluice-unit-raw", "credit/x.csv", b"a\n1\n");
    let first = queue_generator::handle(&p, object_created("credit/x.csv", "e1", "ev-1"))
        .await
        .unwrap();
    let second = queue_generator::handle(&p, object_created("credit/x.csv", "\"e1\"", "ev-2"))
        .await
        .unwrap();
    assert_eq!(
        (first.registered, second.registered, second.already_known),
        (1, 0, 1)
    );
    assert_eq!(p.work.items.lock().unwrap().len(), 1);
    // A new upload (another ETag) is new work.
    p.store.put("sluice-unit-raw", "credit/x.csv", b"a\n2\n");
    let third = queue_generator::handle(&p, object_created("credit/x.csv", "e2", "ev-3"))
        .await
        .unwrap();
    assert_eq!(third.registered, 1);
}

#[tokio::test]
async fn every_batch_travels_as_a_manifest_for_the_distributed_map() {
    let mut p = ports();
    p.settings
        .values
        .insert("ingest_max_concurrency".into(), "7".into());
    for i in 0..20 {
        p.store.put(
            "sluice-unit-raw",
            &format!("credit/yyyy=2026/mm=11/dd=21/hh=23/f{i:02}.csv"),
            format!("a\n{i}\n").as_bytes(),
        );
    }
    let out = queue_generator::handle(&p, scheduled("2026-11-22T00:05:00Z", "big"))
        .await
        .unwrap();
    let m = out.manifest.clone();
    assert_eq!(m.key, "manifests/big.json");
    assert_eq!(out.count, 20);
    assert_eq!(out.max_concurrency, 7);
    let body = p.store.objects.lock().unwrap()[&(m.bucket.clone(), m.key.clone())].clone();
    let refs: Vec<crate::contracts::ItemRef> = serde_json::from_slice(&body).unwrap();
    assert_eq!(refs.len(), 20);
}

fn lock_input(action: Action, execution: &str) -> LockInput {
    LockInput {
        action,
        execution: execution.into(),
    }
}

#[tokio::test]
async fn the_lock_is_taken_over_only_from_a_finished_or_expired_owner() {
    let mut p = ports();
    let a = in_progress_check::handle(&p, lock_input(Action::Acquire, "exec-a"))
        .await
        .unwrap();
    assert!(a.acquired);
    // exec-a is RUNNING: exec-b waits.
    p.executions
        .set("exec-a", ExecutionStatus::Running, None, None);
    let b = in_progress_check::handle(&p, lock_input(Action::Acquire, "exec-b"))
        .await
        .unwrap();
    assert!(!b.acquired);
    assert_eq!(b.holder.as_deref(), Some("exec-a"));
    // Unknown to Step Functions (a local run): the lease decides.
    p.executions.status.lock().unwrap().clear();
    assert!(
        !in_progress_check::handle(&p, lock_input(Action::Acquire, "exec-b"))
            .await
            .unwrap()
            .acquired
    );
    // exec-a failed: taken over, and said so.
    p.executions
        .set("exec-a", ExecutionStatus::Failed, None, None);
    let c = in_progress_check::handle(&p, lock_input(Action::Acquire, "exec-c"))
        .await
        .unwrap();
    assert!(c.acquired);
    assert_eq!(c.took_over_from.as_deref(), Some("exec-a"));
    // Release by someone else changes nothing; by the owner frees it.
    assert!(
        !in_progress_check::handle(&p, lock_input(Action::Release, "exec-a"))
            .await
            .unwrap()
            .released
    );
    assert!(
        in_progress_check::handle(&p, lock_input(Action::Release, "exec-c"))
            .await
            .unwrap()
            .released
    );
    assert_eq!(p.locks.current(PIPELINE_LOCK).await.unwrap(), None);
    // An expired lease needs no status at all.
    in_progress_check::handle(&p, lock_input(Action::Acquire, "exec-d"))
        .await
        .unwrap();
    p.now += 10_000;
    assert!(
        in_progress_check::handle(&p, lock_input(Action::Acquire, "exec-e"))
            .await
            .unwrap()
            .acquired
    );
}

#[tokio::test]
async fn notify_publishes_failures_and_quarantine_but_not_quiet_runs() {
    let p = ports();
    p.store.put("sluice-unit-raw", "credit/x.csv", b"a\n1\n");
    queue_generator::handle(&p, object_created("credit/x.csv", "e1", "run-9"))
        .await
        .unwrap();
    let summary = |execution: &str| NotifyInput {
        kind: Kind::Summary,
        execution: format!("arn:aws:states:us-east-1:1:execution:m:{execution}"),
        queue: None,
        normalize: None,
        load: None,
        failed_state: None,
        error: None,
        status: None,
        redrive_count: 0,
    };
    // Still queued at the end of a summary: not a failure.
    let quiet = notify::handle(&p, summary("run-9")).await.unwrap();
    assert!(!quiet.published);
    // Rows a model quarantined are news too.
    let models = json!({"rows_quarantined": 420, "models": [{"model": "aspen"}]});
    let modelled = NotifyInput {
        normalize: Some(models),
        ..summary("run-9")
    };
    let out = notify::handle(&p, modelled).await.unwrap();
    assert!(out.published);
    assert_eq!(out.rows_quarantined, 420);
    let (_, body) = p.notifier.published.lock().unwrap().remove(0);
    assert_eq!(body["models"][0]["model"], "aspen");
    let id = p.work.items.lock().unwrap().keys().next().cloned().unwrap();
    let fail = sluice_core::ports::TransitionUpdate {
        error: Some(("Sluice.BadFile".into(), "not a CSV".into())),
        ..Default::default()
    };
    p.work
        .transition(&id, &[WorkStatus::Queued], WorkStatus::Failed, fail)
        .await
        .unwrap();
    let loud = notify::handle(&p, summary("run-9")).await.unwrap();
    assert!(loud.published);
    assert_eq!(loud.failed_items, 1);
    let (subject, body) = p.notifier.published.lock().unwrap()[0].clone();
    assert!(subject.contains("1 file(s) failed"), "{subject}");
    assert_eq!(
        body["failed_items"][0]["file"],
        "s3://sluice-unit-raw/credit/x.csv"
    );
    assert_eq!(body["failed_items"][0]["reason"], "not a CSV");

    let failure = NotifyInput {
        kind: Kind::Failure,
        failed_state: Some("GenerateQueue".into()),
        error: Some(json!({"Error": "Sluice.AwsError", "Cause": "denied"})),
        ..summary("run-10")
    };
    let out = notify::handle(&p, failure).await.unwrap();
    assert!(out.published, "failures always publish");
    let (subject, body) = p.notifier.published.lock().unwrap()[1].clone();
    assert!(subject.contains("GenerateQueue"), "{subject}");
    assert_eq!(
        (body["error"].as_str(), body["cause"].as_str()),
        (Some("Sluice.AwsError"), Some("denied"))
    );
}

#[tokio::test]
async fn ingest_runs_only_for_the_lock_holder_and_takes_a_free_lock_back() {
    use crate::contracts::IngestInput;
    use crate::ingest::{self};
    let p = ports();
    let input = |execution: &str| {
        IngestInput {
        item: serde_json::from_value(json!({"id": "s3://sluice-unit-raw/credit/x.csv#e1:credit", "bucket": "sluice-unit-raw", "key": "credit/x.csv", "etag": "e1", "dataset": "credit"})).unwrap(),
        execution: execution.into(),
    }
    };
    in_progress_check::handle(&p, lock_input(Action::Acquire, "exec-a"))
        .await
        .unwrap();
    let lost = ingest::handle(&p, input("exec-b")).await.unwrap_err();
    assert_eq!(lost.error_type(), crate::errors::LOCK_LOST);
    assert!(lost.message().contains("exec-a"), "{lost}");
    // Released (e.g. by the catch-all path before a redrive): the redriven execution takes it
    // back before touching the item (which does not exist here).
    in_progress_check::handle(&p, lock_input(Action::Release, "exec-a"))
        .await
        .unwrap();
    let err = ingest::handle(&p, input("exec-b")).await.unwrap_err();
    assert_eq!(err.error_type(), crate::errors::BAD_INPUT, "{err}");
    assert_eq!(
        p.locks.current(PIPELINE_LOCK).await.unwrap().unwrap().owner,
        "exec-b"
    );
}

#[tokio::test]
async fn a_spec_added_later_and_a_requeue_get_an_unmatched_object_ingested() {
    use crate::contracts::RequeueFilter;
    use crate::requeue::{self};
    use sluice_core::ports::SpecStore;
    let p = ports();
    let key = "rates/yyyy=2026/mm=11/dd=21/hh=23/r.csv";
    p.store.put("sluice-unit-raw", key, b"a\n1\n");
    let etag = sluice_core::ports::ObjectStore::head(&p.store, "sluice-unit-raw", key)
        .await
        .unwrap()
        .and_then(|o| o.etag)
        .unwrap();
    // A new source's first upload, before its spec exists (its S3 event names it).
    let first = queue_generator::handle(&p, object_created(key, &etag, "run-1"))
        .await
        .unwrap();
    assert_eq!((first.count, first.unmatched.len()), (0, 1));
    let by_error = RequeueFilter {
        error: Some(queue_generator::NO_MATCHING_SPEC.into()),
        ..Default::default()
    };
    // No spec yet: left, and said why.
    let none = requeue::handle(&p, by_error.clone()).await.unwrap();
    assert!(none.requeued.is_empty());
    assert_eq!(none.left.len(), 1);
    assert!(
        none.left[0].reason.contains("still no table spec"),
        "{none:?}"
    );

    p.specs
        .put_spec(&spec("rates", "rates/"), "{}")
        .await
        .unwrap();
    let out = requeue::handle(&p, by_error.clone()).await.unwrap();
    assert_eq!(out.requeued.len(), 1, "{out:?}");
    assert_eq!(out.requeued[0].dataset, "rates");
    let new = p.work.get(&out.requeued[0].id).await.unwrap().unwrap();
    assert_eq!(new.status, WorkStatus::Queued);
    // The old record is closed, naming the new item; a second requeue finds nothing.
    let old = p
        .work
        .items
        .lock()
        .unwrap()
        .values()
        .find(|w| w.dataset.is_empty() && w.status == WorkStatus::Done)
        .cloned()
        .unwrap();
    assert!(old.error_message.unwrap().contains(&new.id));
    assert!(requeue::handle(&p, by_error)
        .await
        .unwrap()
        .requeued
        .is_empty());

    // The next scheduled run takes it.
    let next = queue_generator::handle(&p, scheduled("2026-11-22T01:05:00Z", "run-2"))
        .await
        .unwrap();
    // Listed too (its prefix now has a spec), but the same object version: one item.
    assert_eq!((next.count, next.registered), (1, 0), "{next:?}");
}

#[tokio::test]
async fn requeue_needs_a_filter_and_leaves_changed_objects_alone() {
    use crate::contracts::RequeueFilter;
    use crate::requeue::{self};
    use sluice_core::ports::TransitionUpdate;
    let p = ports();
    assert_eq!(
        requeue::handle(&p, RequeueFilter::default())
            .await
            .unwrap_err()
            .error_type(),
        crate::errors::BAD_INPUT
    );
    for (key, error) in [
        ("loans/a.csv", crate::errors::SPEC_NOT_FOUND),
        ("loans/b.csv", crate::errors::OBJECT_CHANGED),
        ("credit/c.csv", crate::errors::BAD_FILE),
    ] {
        let dataset = key.split('/').next().unwrap();
        let item = sluice_core::ports::WorkItem {
            attempts: 1,
            ..work_item("raw", key, "e", dataset, "run-1", WorkStatus::Running)
        };
        p.work.register(&item).await.unwrap();
        let fail = TransitionUpdate {
            error: Some((error.into(), "why".into())),
            ..Default::default()
        };
        p.work
            .transition(&item.id, &[WorkStatus::Running], WorkStatus::Failed, fail)
            .await
            .unwrap();
    }
    let out = requeue::handle(
        &p,
        RequeueFilter {
            dataset: Some("loans".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(out.requeued.len(), 1, "{out:?}");
    assert_eq!(out.requeued[0].was, crate::errors::SPEC_NOT_FOUND);
    let requeued = p.work.get(&out.requeued[0].id).await.unwrap().unwrap();
    assert_eq!(
        (requeued.status, requeued.error),
        (WorkStatus::Queued, None)
    );
    assert_eq!(out.left.len(), 1);
    assert_eq!(out.left[0].error, crate::errors::OBJECT_CHANGED);
    // The credit item matched no filter: still failed.
    let credit = sluice_core::ports::WorkItem::item_id("raw", "credit/c.csv", "e", "credit");
    let credit = p.work.get(&credit).await.unwrap().unwrap();
    assert_eq!(credit.status, WorkStatus::Failed);
}

#[tokio::test]
async fn the_hourly_run_sweeps_back_items_no_execution_can_finish() {
    use sluice_core::ports::{RedriveStatus, TransitionUpdate};
    let p = ports();
    let mut ids = Vec::new();
    for (n, exec) in ["gone-for-good", "can-redrive", "still-running"]
        .iter()
        .enumerate()
    {
        let key = format!("loans/{n}.csv");
        let item = work_item(
            "sluice-unit-raw",
            &key,
            "e",
            "loans",
            "old",
            WorkStatus::Queued,
        );
        p.work.register(&item).await.unwrap();
        let start = TransitionUpdate {
            execution: Some((*exec).into()),
            now: p.now - 3600,
            ..Default::default()
        };
        p.work
            .transition(&item.id, &[WorkStatus::Queued], WorkStatus::Running, start)
            .await
            .unwrap();
        ids.push(item.id);
    }
    p.executions.set(
        "gone-for-good",
        ExecutionStatus::Failed,
        Some(RedriveStatus::NotRedrivable),
        Some(p.now - 3000),
    );
    p.executions.set(
        "can-redrive",
        ExecutionStatus::Failed,
        Some(RedriveStatus::Redrivable),
        Some(p.now - 3000),
    );
    p.executions
        .set("still-running", ExecutionStatus::Running, None, None);
    let out = queue_generator::handle(&p, scheduled("2026-11-22T01:05:00Z", "run-2"))
        .await
        .unwrap();
    assert_eq!(out.swept.len(), 1, "{out:?}");
    assert_eq!(out.swept[0].id, ids[0]);
    assert!(out.swept[0].reason.contains("NOT_REDRIVABLE"));
    assert_eq!(out.count, 1, "the swept item joins this batch");
    for (id, want) in ids
        .iter()
        .zip([WorkStatus::Queued, WorkStatus::Running, WorkStatus::Running])
    {
        assert_eq!(p.work.get(id).await.unwrap().unwrap().status, want, "{id}");
    }
}

fn notify_input(kind: Kind, execution: &str) -> NotifyInput {
    NotifyInput {
        kind,
        execution: format!("arn:aws:states:us-east-1:1:execution:m:{execution}"),
        queue: None,
        normalize: None,
        load: None,
        failed_state: None,
        error: None,
        status: None,
        redrive_count: 0,
    }
}

#[tokio::test]
async fn a_redriven_execution_that_succeeds_says_it_recovered_and_others_say_nothing() {
    use sluice_core::ports::ExecutionState;
    let p = ports();
    let plain = notify::handle(&p, notify_input(Kind::Recovered, "ordinary"))
        .await
        .unwrap();
    assert!(!plain.published, "an ordinary success is not news");
    let arn = "arn:aws:states:us-east-1:1:execution:m:redriven";
    p.executions.status.lock().unwrap().insert(
        arn.into(),
        ExecutionState {
            status: ExecutionStatus::Succeeded,
            redrive_status: None,
            stopped_at: None,
            redrive_count: 2,
        },
    );
    let out = notify::handle(&p, notify_input(Kind::Recovered, "redriven"))
        .await
        .unwrap();
    assert!(out.published);
    let (subject, body) = p.notifier.published.lock().unwrap()[0].clone();
    assert!(subject.contains("recovered"), "{subject}");
    assert_eq!(body["redrive_count"], 2);
    let text = p.notifier.texts.lock().unwrap()[0].clone();
    assert!(text.contains("Redrives so far: 2"), "{text}");
    assert!(text.contains(&notify::console_link(arn)), "{text}");
}

#[tokio::test]
async fn e_mail_gets_readable_text_and_long_failure_lists_are_cut() {
    use sluice_core::ports::TransitionUpdate;
    let p = ports();
    for n in 0..(notify::LISTED_ITEMS + 20) {
        let key = format!("credit/{n}.csv");
        let item = work_item("raw", &key, "e", "credit", "big", WorkStatus::Queued);
        p.work.register(&item).await.unwrap();
        let fail = TransitionUpdate {
            error: Some(("Sluice.BadFile".into(), format!("row {n} is torn"))),
            ..Default::default()
        };
        p.work
            .transition(&item.id, &[WorkStatus::Queued], WorkStatus::Failed, fail)
            .await
            .unwrap();
    }
    // The run's manifest lists them (what the queue-generator writes).
    let refs: Vec<serde_json::Value> = p
        .work
        .items
        .lock()
        .unwrap()
        .values()
        .map(|w| json!({"id": w.id, "bucket": w.bucket, "key": w.key, "etag": w.version, "dataset": w.dataset}))
        .collect();
    p.store.put(
        "sluice-unit-lake",
        "manifests/big.json",
        serde_json::to_vec(&refs).unwrap().as_slice(),
    );
    // The batch index lags: the decision does not read it.
    p.work
        .batch_index_lags
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let failure = NotifyInput {
        failed_state: Some("ProcessItems/3/Ingest".into()),
        error: Some(json!({"Error": "Sluice.AwsError", "Cause": "AccessDenied"})),
        status: Some("FAILED".into()),
        ..notify_input(Kind::Failure, "big")
    };
    let out = notify::handle(&p, failure).await.unwrap();
    assert_eq!(out.failed_items, notify::LISTED_ITEMS + 20);
    let (_, body) = p.notifier.published.lock().unwrap()[0].clone();
    assert_eq!(
        body["failed_items"].as_array().unwrap().len(),
        notify::LISTED_ITEMS
    );
    assert_eq!(body["failed_items_not_listed"], 20);
    let text = p.notifier.texts.lock().unwrap()[0].clone();
    assert!(
        text.starts_with("Sluice unit: execution failed in ProcessItems/3/Ingest\n"),
        "{text}"
    );
    assert!(text.contains("What to do: Fix the cause"), "{text}");
    assert!(
        text.contains("Error: Sluice.AwsError\nCause: AccessDenied\n"),
        "{text}"
    );
    assert!(
        text.contains("- s3://raw/credit/0.csv (credit): Sluice.BadFile: row 0 is torn\n"),
        "{text}"
    );
    assert!(text.contains("… and 20 more"), "{text}");
    assert!(!text.contains('{'), "no JSON in the e-mail: {text}");
}

#[tokio::test]
async fn a_failure_that_echoes_a_huge_header_still_marks_its_item_failed() {
    let p = ports();
    // 60,000 columns, none of them the spec's `a`: the error names what the file has.
    let header: Vec<String> = (0..60_000).map(|i| format!("column_{i}")).collect();
    let body = format!("{}\n", header.join(","));
    assert!(body.len() > 500_000);
    let e = ingest_version(&p, "credit/wide.csv", &body, "credit")
        .await
        .unwrap_err();
    assert_eq!(e.error_type(), crate::errors::BAD_FILE, "{e}");
    let failed = p.work.by_status(WorkStatus::Failed).await.unwrap();
    assert_eq!(failed.len(), 1);
    let message = failed[0].error_message.clone().unwrap();
    assert!(
        message.len() <= crate::errors::MAX_MESSAGE_BYTES + 40,
        "{}",
        message.len()
    );
}

/// Puts `body` at `key` in the raw bucket, registers its work item and ingests it.
async fn ingest_version(
    p: &MemPorts,
    key: &str,
    body: &str,
    dataset: &str,
) -> Result<crate::contracts::IngestOutput, crate::FnError> {
    use crate::contracts::IngestInput;
    use crate::ingest::{self};
    use sluice_core::ports::ObjectStore;
    // The same bytes again are the same object (a retry or a redrive), not a new upload.
    let same = p
        .store
        .objects
        .lock()
        .unwrap()
        .get(&("sluice-unit-raw".to_owned(), key.to_owned()))
        .is_some_and(|b| b == body.as_bytes());
    if !same {
        p.store
            .put_at("sluice-unit-raw", key, body.as_bytes(), p.now);
    }
    let etag = p
        .store
        .head("sluice-unit-raw", key)
        .await
        .unwrap()
        .and_then(|o| o.etag)
        .unwrap();
    let item = work_item(
        "sluice-unit-raw",
        key,
        &etag,
        dataset,
        "b",
        WorkStatus::Queued,
    );
    p.work.register(&item).await.unwrap();
    let input = IngestInput {
        item: serde_json::from_value(json!({"id": item.id, "bucket": "sluice-unit-raw", "key": key, "etag": etag, "dataset": dataset})).unwrap(),
        execution: "exec-a".into(),
    };
    ingest::handle(p, input).await
}

fn lake_files(p: &MemPorts, prefix: &str) -> Vec<String> {
    p.store
        .objects
        .lock()
        .unwrap()
        .keys()
        .filter(|(b, k)| b == "sluice-unit-lake" && k.starts_with(prefix))
        .map(|(_, k)| k.clone())
        .collect()
}

#[tokio::test]
async fn on_overwrite_replace_append_and_reject() {
    let with = |policy: &str| {
        let text = json!({
            "dataset": "feed",
            "source": {"prefix": "feed/", "pattern": "**/*.csv", "format": "csv"},
            "columns": [{"name": "a", "type": "string"}],
            "on_overwrite": policy,
        })
        .to_string();
        MemPorts::new(vec![TableSpec::from_json("unit", &text).unwrap()])
    };
    // replace (the default): the second version's file alone.
    let p = with("replace");
    ingest_version(&p, "feed/f.csv", "a\n1\n", "feed")
        .await
        .unwrap();
    let v1 = lake_files(&p, "data/feed/");
    let out = ingest_version(&p, "feed/f.csv", "a\n2\n", "feed")
        .await
        .unwrap();
    assert_eq!(out.replaced_outputs, 1);
    let v2 = lake_files(&p, "data/feed/");
    assert_eq!(v2.len(), 1);
    assert_ne!(v1, v2);
    // The audit trail: the second version's record names the item it replaced.
    let records = lake_files(&p, "_sluice/outputs/feed/");
    assert_eq!(records.len(), 2);
    // Running the same version again changes nothing.
    let again = ingest_version(&p, "feed/f.csv", "a\n2\n", "feed")
        .await
        .unwrap();
    assert!(again.already_done);
    assert_eq!(lake_files(&p, "data/feed/"), v2);

    // append: both versions stay.
    let p = with("append");
    ingest_version(&p, "feed/f.csv", "a\n1\n", "feed")
        .await
        .unwrap();
    ingest_version(&p, "feed/f.csv", "a\n2\n", "feed")
        .await
        .unwrap();
    assert_eq!(lake_files(&p, "data/feed/").len(), 2);

    // reject: the second version is a bad file, the first stays.
    let p = with("reject");
    ingest_version(&p, "feed/f.csv", "a\n1\n", "feed")
        .await
        .unwrap();
    let v1 = lake_files(&p, "data/feed/");
    let e = ingest_version(&p, "feed/f.csv", "a\n2\n", "feed")
        .await
        .unwrap_err();
    assert_eq!(e.error_type(), crate::errors::BAD_FILE);
    assert!(e.message().contains("on_overwrite: reject"), "{e}");
    assert_eq!(lake_files(&p, "data/feed/"), v1);
}

#[tokio::test]
async fn after_a_twelve_day_outage_the_catch_up_goes_on_across_runs_and_skips_no_hour() {
    let p = ports();
    // The last run saw 2026-11-10T00; the pipeline was down until 2026-11-22T00:05.
    p.work
        .set_marker("watermark", None, "2026-11-10T00")
        .await
        .unwrap();
    let day2 = "credit/yyyy=2026/mm=11/dd=11/hh=05/day2.csv";
    let day11 = "credit/yyyy=2026/mm=11/dd=20/hh=05/day11.csv";
    p.store.put("sluice-unit-raw", day2, b"a\n1\n");
    p.store.put("sluice-unit-raw", day11, b"a\n2\n");
    let mut seen = Vec::new();
    let mut windows = Vec::new();
    for run in 0..3 {
        let out =
            queue_generator::handle(&p, scheduled("2026-11-22T00:05:00Z", &format!("r{run}")))
                .await
                .unwrap();
        windows.push(out.window.clone().unwrap());
        seen.extend(
            p.work
                .by_batch(&format!("r{run}"))
                .await
                .unwrap()
                .into_iter()
                .map(|w| w.key),
        );
        if p.work.get_marker("watermark").await.unwrap().as_deref() == Some("2026-11-21T23") {
            break;
        }
    }
    // 287 hours missed: two runs of at most a week each; the second starts where the first
    // stopped (minus the 6 hours of lookback for late files).
    assert_eq!(windows[0].from, "2026-11-09T19", "{windows:?}");
    assert_eq!(windows[0].to, "2026-11-16T18", "{windows:?}");
    assert_eq!(windows[1].from, "2026-11-16T13", "{windows:?}");
    assert_eq!(windows.last().unwrap().to, "2026-11-21T23", "{windows:?}");
    assert!(seen.contains(&day2.to_owned()), "{seen:?}");
    assert!(seen.contains(&day11.to_owned()), "{seen:?}");
}

#[tokio::test]
async fn the_watermark_stays_when_the_run_fails_before_registration_is_complete() {
    let p = ports();
    p.work
        .set_marker("watermark", None, "2026-11-21T20")
        .await
        .unwrap();
    let key = "credit/yyyy=2026/mm=11/dd=21/hh=22/late.csv";
    p.store.put("sluice-unit-raw", key, b"a\n1\n");
    // S3 throttles the manifest write at the end of the run.
    p.store
        .fail_put_bytes
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let failed = queue_generator::handle(&p, scheduled("2026-11-22T00:05:00Z", "r1")).await;
    assert_eq!(failed.unwrap_err().error_type(), crate::errors::TRANSIENT);
    assert_eq!(
        p.work.get_marker("watermark").await.unwrap().as_deref(),
        Some("2026-11-21T20"),
        "not moved past hours whose run failed"
    );
    // The retry lists the same hours and takes the object.
    p.store
        .fail_put_bytes
        .store(false, std::sync::atomic::Ordering::SeqCst);
    let out = queue_generator::handle(&p, scheduled("2026-11-22T00:05:00Z", "r2"))
        .await
        .unwrap();
    assert_eq!(out.count, 1, "{out:?}");
    assert_eq!(
        p.work.get_marker("watermark").await.unwrap().as_deref(),
        Some("2026-11-21T23")
    );
}

#[tokio::test]
async fn reconciliation_registers_objects_nothing_else_brought_in_a_bounded_batch_at_a_time() {
    let mut p = ports();
    // Keys no hourly listing reaches (no yyyy=/mm=/dd=/hh= folders) and no event named.
    for n in 0..5 {
        p.store.put(
            "sluice-unit-raw",
            &format!("loans/archive/{n}.csv"),
            b"a\n1\n",
        );
    }
    p.store.put("sluice-unit-raw", "credit/old.csv", b"a\n2\n");
    p.settings
        .values
        .insert("reconcile_batch".into(), "4".into());
    let reconcile = |execution: &str| -> QueueInput {
        serde_json::from_value(json!({
            "event": {"detail-type": "Scheduled Event", "source": "sluice.reconcile", "time": "2026-11-22T00:05:00Z", "detail": {"reconcile": true}},
            "execution": format!("arn:aws:states:us-east-1:1:execution:m:{execution}")
        }))
        .unwrap()
    };
    let first = queue_generator::handle(&p, reconcile("rec-1"))
        .await
        .unwrap();
    assert_eq!(first.trigger, "reconcile");
    assert_eq!((first.registered, first.count), (4, 4), "{first:?}");
    let second = queue_generator::handle(&p, reconcile("rec-2"))
        .await
        .unwrap();
    assert_eq!(
        second.registered, 2,
        "the rest, after where the first stopped: {second:?}"
    );
    // A full pass later, everything is known: nothing new, nothing twice.
    let third = queue_generator::handle(&p, reconcile("rec-3"))
        .await
        .unwrap();
    assert_eq!(third.registered, 0, "{third:?}");
    assert_eq!(p.work.items.lock().unwrap().len(), 6);
}

#[tokio::test]
async fn keys_with_spaces_plus_unicode_and_percent_make_one_item_whichever_way_they_arrive() {
    let p = ports();
    let key = "credit/yyyy=2026/mm=11/dd=21/hh=23/my file+1 ü 100%.csv";
    p.store.put("sluice-unit-raw", key, b"a\n1\n");
    // As S3 notifications encode it, as given, and by the hourly listing: one item.
    let encoded = "credit/yyyy%3D2026/mm%3D11/dd%3D21/hh%3D23/my+file%2B1+%C3%BC+100%25.csv";
    let first = queue_generator::handle(&p, object_created(encoded, "ignored", "ev-1"))
        .await
        .unwrap();
    assert_eq!((first.registered, first.count), (1, 1), "{first:?}");
    let plain = queue_generator::handle(&p, object_created(key, "ignored", "ev-2"))
        .await
        .unwrap();
    assert_eq!(plain.registered, 0, "{plain:?}");
    let hourly = queue_generator::handle(&p, scheduled("2026-11-22T00:05:00Z", "hourly"))
        .await
        .unwrap();
    assert_eq!(hourly.registered, 0, "{hourly:?}");
    let items = p.work.items.lock().unwrap().clone();
    assert_eq!(items.len(), 1);
    assert_eq!(items.values().next().unwrap().key, key);
    // Deleted before its event was handled: an empty run that says so, not a failure.
    let gone = queue_generator::handle(&p, object_created("credit/gone.csv", "e", "ev-3"))
        .await
        .unwrap();
    assert_eq!(gone.count, 0);
    assert!(
        gone.unmatched[0].reason.contains("no longer exists"),
        "{gone:?}"
    );
}

#[tokio::test]
async fn thousands_of_unmatched_objects_keep_the_state_payload_small() {
    let p = ports();
    for n in 0..2_000 {
        p.store.put(
            "sluice-unit-raw",
            &format!("credit/yyyy=2026/mm=11/dd=21/hh=23/notes-{n}.txt"),
            b"?",
        );
    }
    let out = queue_generator::handle(&p, scheduled("2026-11-22T00:05:00Z", "r"))
        .await
        .unwrap();
    assert_eq!(out.unmatched_total, 2_000);
    assert_eq!(out.unmatched.len(), queue_generator::LISTED_UNMATCHED);
    let payload = serde_json::to_vec(&out).unwrap();
    assert!(payload.len() < 16 * 1024, "{} bytes", payload.len());
}

#[tokio::test]
async fn a_lapsed_lease_is_not_taken_from_a_running_owner_and_short_leases_are_refused() {
    let mut p = ports();
    in_progress_check::handle(&p, lock_input(Action::Acquire, "exec-a"))
        .await
        .unwrap();
    p.executions
        .set("exec-a", ExecutionStatus::Running, None, None);
    // Far past the lease: exec-a still runs (a long step), so the lock stays its own.
    p.now += 100_000;
    let b = in_progress_check::handle(&p, lock_input(Action::Acquire, "exec-b"))
        .await
        .unwrap();
    assert!(!b.acquired, "{b:?}");
    assert!(b.reason.contains("still RUNNING"), "{}", b.reason);
    let lost = crate::run::hold_lock(&p, "exec-b").await.unwrap_err();
    assert_eq!(lost.error_type(), crate::errors::LOCK_LOST);
    // exec-a renews as it works and keeps the lock.
    assert!(crate::run::hold_lock(&p, "exec-a").await.is_ok());

    p.settings
        .values
        .insert("lease_seconds".into(), "600".into());
    let e = in_progress_check::handle(&p, lock_input(Action::Acquire, "exec-a"))
        .await
        .unwrap_err();
    assert_eq!(e.error_type(), crate::errors::BAD_INPUT);
    assert!(e.message().contains("lease_seconds is 600"), "{e}");
}

#[tokio::test]
async fn a_burst_of_a_thousand_uploads_is_registered_cheaply_and_drained_by_one_run() {
    let p = ports();
    for n in 0..1_000 {
        let key = format!("credit/burst/{n:04}.csv");
        p.store
            .put("sluice-unit-raw", &key, format!("a\n{n}\n").as_bytes());
        let event = json!({
            "version": "0", "id": format!("ev-{n}"), "detail-type": "Object Created",
            "source": "aws.s3", "account": "1", "region": "us-east-1", "resources": [],
            "detail": {"bucket": {"name": "sluice-unit-raw"}, "object": {"key": key, "etag": "x"}}
        });
        // Delivered twice (EventBridge is at least once): registered once.
        for _ in 0..2 {
            let request: crate::contracts::QueueRequest =
                serde_json::from_value(event.clone()).unwrap();
            queue_generator::handle_request(&p, request).await.unwrap();
        }
    }
    assert_eq!(p.work.items.lock().unwrap().len(), 1_000);
    let drain: QueueInput = serde_json::from_value(json!({
        "event": {"detail-type": "Scheduled Event", "source": "sluice.drain", "time": "2026-11-22T00:10:00Z", "detail": {"drain": true}},
        "execution": "arn:aws:states:us-east-1:1:execution:m:drain-1"
    }))
    .unwrap();
    let out = queue_generator::handle(&p, drain).await.unwrap();
    assert_eq!((out.trigger.as_str(), out.count), ("drain", 1_000));
}

#[tokio::test]
async fn a_file_past_the_size_limit_is_refused_before_it_is_downloaded() {
    let mut p = ports();
    p.settings
        .values
        .insert("max_file_bytes".into(), "10".into());
    let e = ingest_version(&p, "credit/big.csv", "a\n123456789012345\n", "credit")
        .await
        .unwrap_err();
    assert_eq!(e.error_type(), crate::errors::BAD_FILE);
    assert!(
        e.message().contains("larger than max_file_bytes (10)"),
        "{e}"
    );
    let failed = p.work.by_status(WorkStatus::Failed).await.unwrap();
    assert_eq!(failed.len(), 1, "a per-file failure, recorded on its item");
}

#[tokio::test]
async fn a_version_overwritten_before_it_was_ingested_is_superseded_not_failed() {
    use crate::contracts::IngestInput;
    use crate::ingest::{self};
    let p = ports();
    let key = "credit/yyyy=2026/mm=11/dd=21/hh=23/fix.csv";
    p.store.put("sluice-unit-raw", key, b"a\n1\n");
    queue_generator::handle(&p, object_created(key, "x", "ev-1"))
        .await
        .unwrap();
    let v1 = p
        .work
        .items
        .lock()
        .unwrap()
        .values()
        .next()
        .cloned()
        .unwrap();
    // The correction lands before v1's turn.
    p.store.put("sluice-unit-raw", key, b"a\n2\n");
    let input = IngestInput {
        item: serde_json::from_value(json!({"id": v1.id, "bucket": v1.bucket, "key": v1.key, "etag": v1.version, "dataset": v1.dataset})).unwrap(),
        execution: "exec-a".into(),
    };
    let out = ingest::handle(&p, input).await.unwrap();
    assert_eq!(out.status, "superseded");
    let closed = p.work.get(&v1.id).await.unwrap().unwrap();
    assert_eq!(closed.status, WorkStatus::Done);
    assert!(closed.error_message.unwrap().starts_with("superseded: "));
    assert!(
        lake_files(&p, "data/").is_empty(),
        "nothing of v1 published"
    );
}

#[tokio::test]
async fn load_does_nothing_without_targets_and_names_a_target_it_cannot_plan() {
    use crate::ports::Ports;
    use sluice_core::ports::ObjectStore;
    let p = MemPorts::new(Vec::new());
    let input = || crate::contracts::LoadInput {
        execution: "arn:aws:states:us-east-1:1:execution:m:run-1".into(),
        normalize: None,
        tables: Some(vec!["credit".into()]),
    };
    let none = crate::load::handle(&p, input()).await.unwrap();
    assert!(none.targets.is_empty() && none.rows_loaded == 0);
    let lake = p.names().lake_bucket.clone();
    let target = r#"{"target":"app","engine":"postgres","connection":{"secret":"s"},"tables":[{"dataset":"nope","mode":"merge"}]}"#;
    p.store()
        .put_bytes(&lake, "config/targets/app.json", target.as_bytes().to_vec())
        .await
        .unwrap();
    let e = crate::load::handle(&p, input()).await.unwrap_err();
    assert_eq!(e.error_type(), crate::errors::LOAD_FAILED);
    assert!(
        e.message().contains(
            "config/targets/app.json: tables[0].dataset: no table spec for dataset 'nope'"
        ),
        "{e}"
    );
}

/// A database source on the local PostgreSQL server, through the queue-generator and ingest
/// handlers (ports in memory, SQL on the real server): a range per run, pulled once into a raw
/// object, a failed pull redriven with the same range, nothing registered twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_source_is_pulled_a_range_per_run_and_ingested_once() {
    use crate::contracts::IngestInput;
    use crate::ingest::{self};
    use sluice_core::ports::ObjectStore;

    let creds = sluice_testkit::fresh_database("postgres", "pull");
    let exec = |s: &str| sluice_testkit::sql("postgres", &creds, s).unwrap();
    exec("CREATE TABLE orders (id bigint PRIMARY KEY, amount numeric(10,2), updated_at timestamptz NOT NULL DEFAULT now())");
    exec("INSERT INTO orders (id, amount) VALUES (1, 10.5), (2, 20), (3, NULL)");
    let spec = TableSpec::from_json(
        "orders.json",
        &json!({
            "dataset": "orders",
            "source": {"prefix": "orders/", "kind": "postgres", "database": {
                "connection": {"secret": "orders-src", "tls": "disable"}, "table": "orders",
                "incremental": {"column": "updated_at", "by": "timestamp"}}},
            "columns": [{"name": "id", "type": "bigint", "nullable": false},
                        {"name": "amount", "type": "decimal(10,2)"},
                        {"name": "updated_at", "type": "timestamp", "nullable": false}],
            "primary_key": ["id"]
        })
        .to_string(),
    )
    .unwrap();
    let p = MemPorts::new(vec![spec]);
    in_progress_check::handle(&p, lock_input(Action::Acquire, "exec-a"))
        .await
        .unwrap();
    let now = chrono::Utc::now();
    let at = |h: i64| (now + chrono::Duration::hours(h)).to_rfc3339();

    let secret = |c: &serde_json::Value| {
        p.secrets
            .values
            .lock()
            .unwrap()
            .insert("orders-src".into(), c.to_string());
    };
    // No secret yet: said in the output, the run goes on, no range is taken.
    let none = queue_generator::handle(&p, scheduled(&at(0), "exec-a"))
        .await
        .unwrap();
    assert!(none.pulls.is_empty(), "{none:?}");
    assert_eq!(none.pull_errors.len(), 1, "{none:?}");
    assert!(
        none.pull_errors[0].reason.contains("orders-src"),
        "{none:?}"
    );
    secret(&creds);
    let first = queue_generator::handle(&p, scheduled(&at(0), "exec-a"))
        .await
        .unwrap();
    assert_eq!(first.pulls.len(), 1, "{first:?}");
    assert_eq!(first.pulls[0].id, "pull://orders/from=start");
    let refs: Vec<crate::contracts::ItemRef> = serde_json::from_slice(
        &p.store
            .get_bytes(&first.manifest.bucket, &first.manifest.key)
            .await
            .unwrap()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(refs.len(), 1);
    let item = refs[0].clone();
    assert!(item.pull.as_ref().is_some_and(|r| r.to.is_some()));
    let input = || IngestInput {
        item: item.clone(),
        execution: "exec-a".into(),
    };

    // The password changed under us: the item fails with the reason, nothing is written to
    // raw, and the message does not hold the password.
    let mut wrong = creds.clone();
    wrong["password"] = "not-the-password".into();
    secret(&wrong);
    let e = ingest::handle(&p, input()).await.unwrap_err();
    assert_eq!(e.error_type(), crate::errors::BAD_FILE, "{e}");
    assert!(
        e.message()
            .contains("refused the credentials of secret orders-src"),
        "{}",
        e.message()
    );
    assert!(!e.message().contains("not-the-password"), "{}", e.message());
    assert!(p
        .store
        .head("sluice-unit-raw", &item.key)
        .await
        .unwrap()
        .is_none());
    let failed = p.work.get(&item.id).await.unwrap().unwrap();
    assert_eq!(failed.status, WorkStatus::Failed);

    // Fixed, then redriven: the same range, pulled once, ingested.
    secret(&creds);
    let done = ingest::handle(&p, input()).await.unwrap();
    assert_eq!((done.rows_read, done.rows_written), (3, 3), "{done:?}");
    let raw = p
        .store
        .get_bytes("sluice-unit-raw", &item.key)
        .await
        .unwrap()
        .unwrap();
    assert!(
        raw.starts_with(b"id,amount,updated_at\n1,10.50,"),
        "{}",
        String::from_utf8_lossy(&raw)
    );
    let stored = p.work.get(&item.id).await.unwrap().unwrap();
    assert_eq!(stored.status, WorkStatus::Done);

    // The next hour: nothing new in the table, and the pulled object the listing finds is
    // neither registered again nor unmatched.
    let quiet = queue_generator::handle(&p, scheduled(&at(1), "exec-a"))
        .await
        .unwrap();
    assert!(quiet.pulls.is_empty(), "{quiet:?}");
    assert_eq!((quiet.count, quiet.unmatched_total), (0, 0), "{quiet:?}");
    assert_eq!(quiet.already_known, 1, "{quiet:?}");

    // An update and an insert: the next range from the high-water mark holds just those.
    exec("UPDATE orders SET amount = 11, updated_at = now() WHERE id = 1");
    exec("INSERT INTO orders (id, amount) VALUES (4, 40)");
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let next = queue_generator::handle(&p, scheduled(&at(2), "exec-a"))
        .await
        .unwrap();
    assert_eq!(next.pulls.len(), 1, "{next:?}");
    assert_eq!(
        next.pulls[0].id,
        format!(
            "pull://orders/from={}",
            item.pull.as_ref().and_then(|r| r.to.clone()).unwrap()
        )
    );
    let refs: Vec<crate::contracts::ItemRef> = serde_json::from_slice(
        &p.store
            .get_bytes(&next.manifest.bucket, &next.manifest.key)
            .await
            .unwrap()
            .unwrap(),
    )
    .unwrap();
    let second = ingest::handle(
        &p,
        IngestInput {
            item: refs[0].clone(),
            execution: "exec-a".into(),
        },
    )
    .await
    .unwrap();
    assert_eq!(second.rows_read, 2, "{second:?}");
}

#[tokio::test]
async fn a_file_whose_income_is_suddenly_mostly_null_is_flagged_in_the_summary() {
    let text = json!({
        "dataset": "credit",
        "source": {"prefix": "credit/", "pattern": "**/*.csv", "format": "csv"},
        "null_tokens": ["", "NA"],
        "columns": [{"name": "id", "type": "int", "nullable": false},
                    {"name": "income", "type": "double"}],
        "primary_key": ["id"],
        "drift": {"null_rate": 0.2, "files": 3}
    })
    .to_string();
    let mut p = MemPorts::new(vec![TableSpec::from_json("unit", &text).unwrap()]);
    // 100 rows; income is NA on every `every`-th row.
    let file = |every: u32, salt: u32| {
        let mut s = String::from("id,income\n");
        for i in 0..100u32 {
            if i % every == 0 {
                s.push_str(&format!("{i},NA\n"));
            } else {
                s.push_str(&format!("{i},{}\n", 2000 + i * 7 + salt));
            }
        }
        s
    };
    let mut refs = Vec::new();
    for (n, body) in [file(50, 1), file(50, 2), file(25, 3), file(50, 4)]
        .iter()
        .enumerate()
    {
        p.now = 1_790_000_000 + 3600 * n as i64;
        let key = format!("credit/f{n}.csv");
        let out = ingest_version(&p, &key, body, "credit").await.unwrap();
        assert!(out.drift.is_empty(), "file {n}: {:?}", out.drift);
        refs.push(json!({"id": out.id, "bucket": "sluice-unit-raw", "key": key, "dataset": "credit", "etag": "-"}));
    }
    // Each file's compact profile is stored beside the others, outside data/.
    assert_eq!(lake_files(&p, "_sluice/profiles/credit/").len(), 4);
    // The next file's income is 90 % NA.
    p.now += 3600;
    let mut bad = String::from("id,income\n");
    for i in 0..100u32 {
        if i % 10 == 0 {
            bad.push_str(&format!("{i},{}\n", 2000 + i));
        } else {
            bad.push_str(&format!("{i},NA\n"));
        }
    }
    let out = ingest_version(&p, "credit/bad.csv", &bad, "credit")
        .await
        .unwrap();
    assert_eq!(out.rows_written, 100, "a drifted file still lands");
    assert_eq!(out.drift.len(), 1, "{:?}", out.drift);
    assert!(
        out.drift[0].starts_with("income: null rate 90.0 % (previous files 2.7 %"),
        "{}",
        out.drift[0]
    );
    assert_eq!(p.work.get(&out.id).await.unwrap().unwrap().drift, out.drift);
    refs.push(json!({"id": out.id, "bucket": "sluice-unit-raw", "key": "credit/bad.csv", "dataset": "credit", "etag": "-"}));
    // A redrive of the item (as if its first attempt had stopped after storing the profile)
    // compares with the same baseline, not with itself, and stores no second profile.
    p.now += 600;
    p.work
        .transition(
            &out.id,
            &[WorkStatus::Done],
            WorkStatus::Running,
            Default::default(),
        )
        .await
        .unwrap();
    let again = ingest_version(&p, "credit/bad.csv", &bad, "credit")
        .await
        .unwrap();
    assert!(!again.already_done);
    assert_eq!(again.drift, out.drift);
    assert_eq!(lake_files(&p, "_sluice/profiles/credit/").len(), 5);

    // The run's summary says which file drifted and how, and is published for it.
    p.store.put(
        "sluice-unit-lake",
        "manifests/run-d.json",
        serde_json::to_vec(&refs).unwrap().as_slice(),
    );
    let n = notify::handle(&p, notify_input(Kind::Summary, "run-d"))
        .await
        .unwrap();
    assert!(n.published);
    assert_eq!(n.drifted_files, 1);
    assert!(n.subject.contains("1 file(s) drifted"), "{}", n.subject);
    let (_, body) = p
        .notifier
        .published
        .lock()
        .unwrap()
        .last()
        .cloned()
        .unwrap();
    let text = body.to_string();
    assert!(
        text.contains("credit/bad.csv") && text.contains("income: null rate 90.0 %"),
        "{text}"
    );
}

#[tokio::test]
async fn csv_is_read_as_it_downloads_and_a_download_cut_at_a_line_end_is_retried_not_published() {
    use std::sync::atomic::Ordering::SeqCst;
    let p = ports();
    // More lines than the chunks the channel holds: the download waits for the reader.
    let lines = 20_000;
    let body: String = std::iter::once("a\n".to_owned())
        .chain((0..lines).map(|i| format!("v{i:05}\n")))
        .collect();
    let out = ingest_version(&p, "credit/whole.csv", &body, "credit")
        .await
        .unwrap();
    assert_eq!(out.rows_read, lines);
    assert_eq!(out.bytes_read, body.len() as u64);
    assert_eq!(
        (p.store.streamed.load(SeqCst), p.store.spooled.load(SeqCst)),
        (1, 0),
        "a CSV is never spooled to /tmp"
    );

    // The download breaks off exactly at a line end: what arrived is a valid, shorter CSV that
    // the reader alone could take for the whole file. The download's error decides: nothing
    // is published and the item waits for the retry.
    let cut = "a\n".len() + (lines as usize / 2) * "v00000\n".len();
    *p.store.break_after.lock().unwrap() = Some(cut);
    let e = ingest_version(&p, "credit/cut.csv", &body, "credit")
        .await
        .unwrap_err();
    assert_eq!(e.error_type(), crate::errors::TRANSIENT, "{e}");
    let stem_files = |p: &MemPorts| {
        lake_files(p, "data/credit/")
            .into_iter()
            .filter(|k| k.contains("cut"))
            .count()
    };
    assert_eq!(
        stem_files(&p),
        0,
        "nothing of the cut download is published"
    );
    let running = p.work.by_status(WorkStatus::Running).await.unwrap();
    assert_eq!(
        running.len(),
        1,
        "left for the retry, not failed: {running:?}"
    );

    // The state machine's retry: the whole object this time.
    *p.store.break_after.lock().unwrap() = None;
    let input = crate::contracts::IngestInput {
        item: serde_json::from_value(json!({"id": running[0].id, "bucket": "sluice-unit-raw", "key": "credit/cut.csv", "etag": running[0].version, "dataset": "credit"})).unwrap(),
        execution: "exec-a".into(),
    };
    let out = crate::ingest::handle(&p, input).await.unwrap();
    assert_eq!(out.rows_read, lines);
    assert_eq!(stem_files(&p), 1);
}

#[tokio::test]
async fn a_workbook_is_spooled_because_it_must_seek() {
    use std::sync::atomic::Ordering::SeqCst;
    let text = json!({
        "dataset": "book",
        "source": {"prefix": "book/", "pattern": "**/*.xlsx"},
        "columns": [{"name": "a", "type": "string"}]
    })
    .to_string();
    let p = MemPorts::new(vec![TableSpec::from_json("unit", &text).unwrap()]);
    let mut wb = rust_xlsxwriter::Workbook::new();
    let ws = wb.add_worksheet();
    ws.write_string(0, 0, "a").unwrap();
    ws.write_string(1, 0, "x").unwrap();
    let bytes = wb.save_to_buffer().unwrap();
    p.store.put("sluice-unit-raw", "book/b.xlsx", &bytes);
    let etag = MemStore::info("sluice-unit-raw", "book/b.xlsx", &bytes)
        .etag
        .unwrap();
    let item = work_item(
        "sluice-unit-raw",
        "book/b.xlsx",
        &etag,
        "book",
        "b",
        WorkStatus::Queued,
    );
    p.work.register(&item).await.unwrap();
    let input = crate::contracts::IngestInput {
        item: serde_json::from_value(json!({"id": item.id, "bucket": "sluice-unit-raw", "key": "book/b.xlsx", "etag": etag, "dataset": "book"})).unwrap(),
        execution: "exec-a".into(),
    };
    let out = crate::ingest::handle(&p, input).await.unwrap();
    assert_eq!(out.rows_read, 1);
    assert_eq!(
        (p.store.streamed.load(SeqCst), p.store.spooled.load(SeqCst)),
        (0, 1)
    );
}

#[tokio::test]
async fn done_items_expire_after_the_retention_and_the_reconciliation_lists_no_older_object() {
    let mut p = ports();
    p.now = 1_800_000_000;
    let day = 86_400;
    // Ingested: its done item carries the expiry (400 days by default), and is no longer open.
    let out = ingest_version(&p, "credit/new.csv", "a\n1\n", "credit")
        .await
        .unwrap();
    let done = p.work.get(&out.id).await.unwrap().unwrap();
    assert_eq!(done.status, WorkStatus::Done);
    assert_eq!(
        p.work.expiries.lock().unwrap().get(&out.id).copied(),
        Some(p.now + 400 * day)
    );
    // Two objects no item knows: one from last month, one from before the retention (its
    // item expired). The reconciliation registers the first only.
    p.store.put_at(
        "sluice-unit-raw",
        "credit/recent.csv",
        b"a\n2\n",
        p.now - 30 * day,
    );
    p.store.put_at(
        "sluice-unit-raw",
        "credit/ancient.csv",
        b"a\n3\n",
        p.now - 401 * day,
    );
    let reconcile: QueueInput = serde_json::from_value(json!({
        "event": {"detail-type": "Scheduled Event", "source": "sluice.reconcile", "time": "2027-01-15T08:00:00Z", "detail": {"reconcile": true}},
        "execution": "arn:aws:states:us-east-1:1:execution:m:rec-1"
    }))
    .unwrap();
    let out = queue_generator::handle(&p, reconcile).await.unwrap();
    let keys: Vec<String> = p
        .work
        .by_status(WorkStatus::Queued)
        .await
        .unwrap()
        .into_iter()
        .map(|w| w.key)
        .collect();
    assert_eq!(keys, ["credit/recent.csv"], "{out:?}");
    // A retention shorter than a month is refused by name.
    p.settings
        .values
        .insert("work_retention_days".into(), "7".into());
    let e = ingest_version(&p, "credit/other.csv", "a\n1\n", "credit")
        .await
        .unwrap_err();
    assert!(e.message().contains("work_retention_days is 7"), "{e}");
}

#[tokio::test]
async fn the_extract_reads_the_lake_one_object_at_a_time_and_a_failed_read_is_not_missing_data() {
    use std::sync::atomic::Ordering::SeqCst;
    let p = ports();
    let lake = p.names.lake_bucket.clone();
    let files = [
        (
            "data/bank/bank.csv",
            "id_bank,name,capitalization\n1,J.P. Morgan Chase,100000.00\n",
        ),
        (
            "data/branch/branch.csv",
            "id_branch,bank_id,address\n1,1,Old Wood Square\n",
        ),
        (
            "data/client/client.csv",
            "id_client,name,surname,branch_id\n1,A,One,1\n",
        ),
        (
            "data/account/account.csv",
            "id_account,balance,client_id,open_date\n1,10.00,1,2020-01-01\n",
        ),
        (
            "data/bank_loans/year=2023/month=03/a.csv",
            "id_loan,amount,account_id,loan_date\n1,5000.00,1,2023-03-11\n",
        ),
        (
            "data/bank_loans/year=2023/month=05/b.csv",
            "id_loan,amount,account_id,loan_date\n2,2500.25,1,2023-05-02\n",
        ),
    ];
    for (k, body) in files {
        p.store.put(&lake, k, body.as_bytes());
    }
    let input = || crate::contracts::ExtractInput {
        execution: "arn:aws:states:us-east-1:1:execution:x:monthly".into(),
        time: Some("2023-07-01T01:00:00Z".into()),
        month: None,
    };
    // A throttled read is a store error (retried by the state machine), not "no data".
    p.store.fail_get_bytes.store(true, SeqCst);
    let e = crate::extract::handle(&p, input()).await.unwrap_err();
    assert_eq!(e.error_type(), crate::errors::TRANSIENT, "{e}");
    p.store.fail_get_bytes.store(false, SeqCst);
    p.store.reads.store(0, SeqCst);

    let out = crate::extract::handle(&p, input()).await.unwrap();
    assert_eq!(out.months, ["2023-03", "2023-04", "2023-05", "2023-06"]);
    assert_eq!(
        p.store.spooled.load(SeqCst),
        0,
        "no lake file copied to /tmp"
    );
    assert!(
        p.store.reads.load(SeqCst) >= files.len(),
        "each lake file read from the store"
    );
}

#[tokio::test]
async fn outputs_roll_and_leave_the_disk_early_yet_publish_together() {
    let mut p = ports();
    p.settings
        .values
        .insert("output_roll_rows".into(), "2".into());
    let out = ingest_version(&p, "credit/five.csv", "a\n1\n2\n3\n4\n5\n", "credit")
        .await
        .unwrap();
    assert_eq!((out.rows_written, out.outputs), (5, 3));
    let data = lake_files(&p, "data/credit/");
    assert_eq!(data.len(), 3, "{data:?}");
    assert!(data[1].ends_with("_p0002.parquet") && data[2].ends_with("_p0003.parquet"));
    assert!(
        lake_files(&p, "_sluice/staging/").is_empty(),
        "staged copies are removed at publish"
    );
    // A corrected version replaces every part of the first.
    let again = ingest_version(&p, "credit/five.csv", "a\n9\n", "credit")
        .await
        .unwrap();
    assert_eq!(again.replaced_outputs, 3);
    assert_eq!(lake_files(&p, "data/credit/").len(), 1);
}
