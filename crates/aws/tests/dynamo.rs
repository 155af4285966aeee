//! Work items, the lock and the spec store against the emulator.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use sluice_aws::dynamo::{DynamoLocks, DynamoSpecs, DynamoWork};
use sluice_core::ports::{
    Acquire, ItemCounts, LockStore, SpecChange, SpecStore, Transition, TransitionUpdate, WorkItem,
    WorkQueue, WorkStatus,
};

fn item(key: &str, batch: &str) -> WorkItem {
    WorkItem {
        id: WorkItem::item_id("raw", key, "etag1", "loans"),
        batch: batch.into(),
        bucket: "raw".into(),
        key: key.into(),
        version: "etag1".into(),
        dataset: "loans".into(),
        status: WorkStatus::Queued,
        attempts: 0,
        updated_at: 100,
        execution: None,
        counts: None,
        error: None,
        error_message: None,
        pull: None,
        drift: Vec::new(),
    }
}

#[tokio::test]
async fn work_items_register_once_and_refuse_stale_transitions() {
    let (clients, names) = common::environment(&[]).await;
    let work = DynamoWork::new(clients.dynamodb.clone(), &names.work_table);
    let a = item("loans/a.csv", "b1");
    assert!(work.register(&a).await.unwrap());
    assert!(
        !work.register(&item("loans/a.csv", "b2")).await.unwrap(),
        "second registration"
    );
    assert_eq!(
        work.get(&a.id).await.unwrap().unwrap().batch,
        "b1",
        "first registration kept"
    );

    let start = TransitionUpdate {
        execution: Some("arn:exec:1".into()),
        count_attempt: true,
        now: 200,
        ..Default::default()
    };
    let Transition::Applied(running) = work
        .transition(
            &a.id,
            &[WorkStatus::Queued, WorkStatus::Failed],
            WorkStatus::Running,
            start.clone(),
        )
        .await
        .unwrap()
    else {
        panic!("queued -> running refused")
    };
    assert_eq!(
        (running.status, running.attempts, running.updated_at),
        (WorkStatus::Running, 1, 200)
    );
    assert_eq!(running.execution.as_deref(), Some("arn:exec:1"));

    // The same transition again comes from a stale state: refused, and says what it found.
    match work
        .transition(
            &a.id,
            &[WorkStatus::Queued],
            WorkStatus::Running,
            start.clone(),
        )
        .await
        .unwrap()
    {
        Transition::Refused(Some(found)) => assert_eq!(found.status, WorkStatus::Running),
        other => panic!("expected a refusal, got {other:?}"),
    }

    let counts = ItemCounts {
        rows_read: 10,
        rows_written: 8,
        rows_quarantined: 2,
    };
    let done = TransitionUpdate {
        counts: Some(counts),
        drift: Some(vec![
            "income: null rate 90.0 % (previous files 1.0 %)".into()
        ]),
        now: 300,
        ..Default::default()
    };
    let Transition::Applied(finished) = work
        .transition(&a.id, &[WorkStatus::Running], WorkStatus::Done, done)
        .await
        .unwrap()
    else {
        panic!("running -> done refused")
    };
    assert_eq!(finished.counts, Some(counts));
    assert_eq!(
        finished.drift,
        ["income: null rate 90.0 % (previous files 1.0 %)"]
    );
    assert_eq!(
        work.get(&a.id).await.unwrap().unwrap().drift,
        finished.drift
    );
    assert!(matches!(
        work.transition(
            &a.id,
            &[WorkStatus::Queued, WorkStatus::Failed],
            WorkStatus::Running,
            start
        )
        .await
        .unwrap(),
        Transition::Refused(Some(WorkItem {
            status: WorkStatus::Done,
            ..
        }))
    ));
    assert!(matches!(
        work.transition(
            "s3://raw/none#x",
            &[WorkStatus::Queued],
            WorkStatus::Running,
            TransitionUpdate::default()
        )
        .await
        .unwrap(),
        Transition::Refused(None)
    ));
}

#[tokio::test]
async fn failures_keep_their_reason_and_a_retry_clears_it() {
    let (clients, names) = common::environment(&[]).await;
    let work = DynamoWork::new(clients.dynamodb.clone(), &names.work_table);
    let a = item("loans/bad.xlsx", "b1");
    work.register(&a).await.unwrap();
    let fail = TransitionUpdate {
        error: Some(("CorruptFile".into(), "not a zip archive".into())),
        now: 5,
        ..Default::default()
    };
    let Transition::Applied(failed) = work
        .transition(&a.id, &[WorkStatus::Queued], WorkStatus::Failed, fail)
        .await
        .unwrap()
    else {
        panic!("refused")
    };
    assert_eq!(failed.error.as_deref(), Some("CorruptFile"));
    assert_eq!(failed.error_message.as_deref(), Some("not a zip archive"));
    let Transition::Applied(again) = work
        .transition(
            &a.id,
            &[WorkStatus::Failed],
            WorkStatus::Running,
            TransitionUpdate::default(),
        )
        .await
        .unwrap()
    else {
        panic!("refused")
    };
    assert_eq!((again.error, again.error_message), (None, None));
}

#[tokio::test]
async fn items_are_found_by_status_and_by_batch() {
    let (clients, names) = common::environment(&[]).await;
    let work = DynamoWork::new(clients.dynamodb.clone(), &names.work_table);
    for (k, batch) in [("a.csv", "b1"), ("b.csv", "b1"), ("c.csv", "b2")] {
        work.register(&item(k, batch)).await.unwrap();
    }
    let b = item("b.csv", "b1");
    work.transition(
        &b.id,
        &[WorkStatus::Queued],
        WorkStatus::Done,
        TransitionUpdate::default(),
    )
    .await
    .unwrap();
    work.set_marker("watermark", None, "2026-11-21T22")
        .await
        .unwrap();

    let mut in_b1: Vec<String> = work
        .by_batch("b1")
        .await
        .unwrap()
        .into_iter()
        .map(|w| w.key)
        .collect();
    in_b1.sort();
    assert_eq!(in_b1, ["a.csv", "b.csv"]);
    let mut queued: Vec<String> = work
        .by_status(WorkStatus::Queued)
        .await
        .unwrap()
        .into_iter()
        .map(|w| w.key)
        .collect();
    queued.sort();
    assert_eq!(queued, ["a.csv", "c.csv"], "markers never show up as items");
}

#[tokio::test]
async fn markers_move_only_from_the_expected_value() {
    let (clients, names) = common::environment(&[]).await;
    let work = DynamoWork::new(clients.dynamodb.clone(), &names.work_table);
    assert_eq!(work.get_marker("watermark").await.unwrap(), None);
    assert!(work.set_marker("watermark", None, "h1").await.unwrap());
    assert!(!work.set_marker("watermark", None, "h2").await.unwrap());
    assert!(!work
        .set_marker("watermark", Some("h0"), "h2")
        .await
        .unwrap());
    assert!(work
        .set_marker("watermark", Some("h1"), "h2")
        .await
        .unwrap());
    assert_eq!(
        work.get_marker("watermark").await.unwrap().as_deref(),
        Some("h2")
    );
}

#[tokio::test]
async fn two_concurrent_acquirers_exactly_one_wins_50_times() {
    let (clients, names) = common::environment(&[]).await;
    let locks = DynamoLocks::new(clients.dynamodb.clone(), &names.locks_table);
    for round in 0..50 {
        let name = format!("pipeline-{round}");
        let (l1, l2) = (locks.clone(), locks.clone());
        let (n1, n2) = (name.clone(), name.clone());
        let a = tokio::spawn(async move { l1.acquire(&n1, "exec-a", 60, 1000).await });
        let b = tokio::spawn(async move { l2.acquire(&n2, "exec-b", 60, 1000).await });
        let (a, b) = (a.await.unwrap().unwrap(), b.await.unwrap().unwrap());
        let winner = match (&a, &b) {
            (Acquire::Acquired(w), Acquire::Held(h)) | (Acquire::Held(h), Acquire::Acquired(w)) => {
                assert_eq!(w, h, "the loser sees the winner's lease");
                w.owner.clone()
            }
            _ => panic!("round {round}: expected exactly one winner, got {a:?} and {b:?}"),
        };
        assert_eq!(locks.current(&name).await.unwrap().unwrap().owner, winner);
    }
}

#[tokio::test]
async fn an_expired_lease_is_taken_over_and_only_the_owner_releases() {
    let (clients, names) = common::environment(&[]).await;
    let locks = DynamoLocks::new(clients.dynamodb.clone(), &names.locks_table);
    assert!(matches!(
        locks.acquire("p", "a", 10, 1000).await.unwrap(),
        Acquire::Acquired(_)
    ));
    assert!(
        matches!(locks.acquire("p", "b", 10, 1005).await.unwrap(), Acquire::Held(l) if l.owner == "a")
    );
    // The owner may acquire again (a retried state) and renew.
    assert!(matches!(
        locks.acquire("p", "a", 10, 1006).await.unwrap(),
        Acquire::Acquired(_)
    ));
    assert!(locks.renew("p", "a", 10, 1008).await.unwrap());
    assert!(!locks.renew("p", "b", 10, 1008).await.unwrap());
    // Past the lease (1008 + 10), b takes over.
    match locks.acquire("p", "b", 10, 1019).await.unwrap() {
        Acquire::Acquired(l) => assert_eq!((l.owner.as_str(), l.expires_at), ("b", 1029)),
        other => panic!("expired lease not taken over: {other:?}"),
    }
    assert!(
        !locks.release("p", "a").await.unwrap(),
        "release by a non-owner"
    );
    assert_eq!(locks.current("p").await.unwrap().unwrap().owner, "b");
    assert!(locks.release("p", "b").await.unwrap());
    assert_eq!(locks.current("p").await.unwrap(), None);
    assert!(
        !locks.release("p", "b").await.unwrap(),
        "nothing left to release"
    );
}

#[tokio::test]
async fn a_finished_owner_is_taken_over_only_while_it_still_holds() {
    let (clients, names) = common::environment(&[]).await;
    let locks = DynamoLocks::new(clients.dynamodb.clone(), &names.locks_table);
    locks.acquire("p", "dead", 900, 1000).await.unwrap();
    assert!(
        matches!(locks.take_over("p", "someone-else", "c", 900, 1001).await.unwrap(), Acquire::Held(l) if l.owner == "dead")
    );
    assert!(
        matches!(locks.take_over("p", "dead", "c", 900, 1001).await.unwrap(), Acquire::Acquired(l) if l.owner == "c")
    );
}

#[tokio::test]
async fn specs_are_versioned_by_content() {
    let specs = common::repo_specs();
    let (clients, names) = common::environment(&specs).await;
    let store = DynamoSpecs::new(clients.dynamodb.clone(), &names.specs_table);
    let stored = store.list_specs().await.unwrap();
    assert_eq!(stored.len(), specs.len());
    assert!(stored.iter().all(|s| s.version == 1));
    let (spec, doc) = &specs[0];
    assert_eq!(
        store.put_spec(spec, doc).await.unwrap(),
        SpecChange::Unchanged
    );
    let mut value: serde_json::Value = serde_json::from_str(doc).unwrap();
    value["description"] = "changed by a test".into();
    let changed = serde_json::to_string_pretty(&value).unwrap();
    let mut spec2 = spec.clone();
    spec2.description = Some("changed by a test".into());
    assert_eq!(
        store.put_spec(&spec2, &changed).await.unwrap(),
        SpecChange::Updated
    );
    let again = store.list_specs().await.unwrap();
    let got = again
        .iter()
        .find(|s| s.spec.dataset == spec.dataset)
        .unwrap();
    assert_eq!(got.version, 2);
    let one = store.get_spec(&spec.dataset).await.unwrap().unwrap();
    assert_eq!(
        (one.version, one.spec.description.as_deref()),
        (2, Some("changed by a test"))
    );
    assert!(store.get_spec("no_such_dataset").await.unwrap().is_none());
    assert_eq!(got.spec.description.as_deref(), Some("changed by a test"));
}

#[tokio::test]
async fn done_items_leave_the_sparse_status_index_and_expire() {
    use aws_sdk_dynamodb::types::AttributeValue;
    let (clients, names) = common::environment(&[]).await;
    let db = &clients.dynamodb;
    let work = DynamoWork::new(db.clone(), &names.work_table);
    let (a, b) = (item("a.csv", "b1"), item("b.csv", "b1"));
    work.register(&a).await.unwrap();
    work.register(&b).await.unwrap();
    let update = |expires_at| TransitionUpdate {
        now: 200,
        expires_at,
        ..TransitionUpdate::default()
    };
    work.transition(
        &b.id,
        &[WorkStatus::Queued],
        WorkStatus::Running,
        update(None),
    )
    .await
    .unwrap();
    work.transition(
        &b.id,
        &[WorkStatus::Running],
        WorkStatus::Done,
        update(Some(86_400_200)),
    )
    .await
    .unwrap();
    work.transition(
        &a.id,
        &[WorkStatus::Queued],
        WorkStatus::Failed,
        update(None),
    )
    .await
    .unwrap();
    let table = names.work_table.clone();
    let raw = |id: String| {
        let table = table.clone();
        async move {
            db.get_item()
                .table_name(table)
                .key("id", AttributeValue::S(id))
                .consistent_read(true)
                .send()
                .await
                .unwrap()
                .item
                .unwrap()
        }
    };
    let done = raw(b.id.clone()).await;
    assert_eq!(
        done.get("expires_at"),
        Some(&AttributeValue::N("86400200".into()))
    );
    assert!(!done.contains_key("open_status"), "{done:?}");
    let failed = raw(a.id.clone()).await;
    assert_eq!(
        failed.get("open_status"),
        Some(&AttributeValue::S("failed".into()))
    );
    assert!(!failed.contains_key("expires_at"));
    // The index holds open items only: asked for done ones it has none, and the port refuses.
    for status in ["done", "running", "queued"] {
        let q = db
            .query()
            .table_name(&names.work_table)
            .index_name(sluice_aws::dynamo::STATUS_INDEX)
            .key_condition_expression("open_status = :s")
            .expression_attribute_values(":s", AttributeValue::S(status.into()))
            .send()
            .await
            .unwrap();
        assert_eq!(q.count(), 0, "{status}");
    }
    assert!(work.by_status(WorkStatus::Done).await.is_err());
    let failed: Vec<String> = work
        .by_status(WorkStatus::Failed)
        .await
        .unwrap()
        .into_iter()
        .map(|w| w.key)
        .collect();
    assert_eq!(failed, ["a.csv"]);
    // Bootstrap turned the table's TTL on, on the attribute done items carry.
    let ttl = db
        .describe_time_to_live()
        .table_name(&names.work_table)
        .send()
        .await
        .unwrap();
    let d = ttl.time_to_live_description().unwrap();
    assert_eq!(d.attribute_name(), Some("expires_at"));
    assert_eq!(d.time_to_live_status().map(|s| s.as_str()), Some("ENABLED"));
}
