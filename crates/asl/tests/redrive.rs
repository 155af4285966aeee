//! `redrive` against the rules of `../shared/REDRIVE.md` (R1–R12), one test per rule, and the
//! history quota: what runs again, with which input, and what never runs again.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::cell::RefCell;
use std::collections::HashMap;

use serde_json::{json, Value};
use sluice_asl::{
    not_redrivable, redrive, restart_points, run, ExecutionInfo, Options, Record, Status,
    TaskError, TaskRunner, HISTORY_LIMIT, HISTORY_LIMIT_ERROR,
};

/// Answers Tasks by state path; a path listed in `failing` fails with that error while it
/// has failures left. Records every invocation (path, input).
#[derive(Default)]
struct Script {
    failing: RefCell<HashMap<String, (String, u32)>>,
    calls: RefCell<Vec<(String, Value)>>,
    items: Option<Value>,
}

impl Script {
    fn fail(self, path: &str, error: &str, times: u32) -> Self {
        self.failing
            .borrow_mut()
            .insert(path.to_owned(), (error.to_owned(), times));
        self
    }

    fn heal(&self) {
        self.failing.borrow_mut().clear();
    }

    fn calls(&self) -> Vec<String> {
        self.calls.borrow().iter().map(|(p, _)| p.clone()).collect()
    }

    fn take_calls(&self) -> Vec<String> {
        let out = self.calls();
        self.calls.borrow_mut().clear();
        out
    }
}

impl TaskRunner for Script {
    fn invoke(&self, _resource: &str, input: &Value, path: &str) -> Result<Value, TaskError> {
        self.calls
            .borrow_mut()
            .push((path.to_owned(), input.clone()));
        let mut failing = self.failing.borrow_mut();
        if let Some((error, left)) = failing.get_mut(path) {
            if *left > 0 {
                *left -= 1;
                return Err(TaskError {
                    error: error.clone(),
                    cause: format!("{path} failed"),
                });
            }
        }
        Ok(json!({"from": path, "input": input}))
    }

    fn read_items(&self, _reader: &Value) -> Result<Value, TaskError> {
        self.items.clone().ok_or(TaskError {
            error: "States.ItemReaderFailed".into(),
            cause: "no items".into(),
        })
    }
}

fn task(next: Option<&str>) -> Value {
    let mut t =
        json!({"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:000000000000:function:f"});
    match next {
        Some(n) => t["Next"] = json!(n),
        None => t["End"] = json!(true),
    }
    t
}

fn start(def: &Value, input: Value, script: &Script) -> Record {
    run(
        def,
        input,
        ExecutionInfo::local("m", "e1"),
        script,
        &Options::default(),
    )
}

fn again(rec: &Record, script: &Script) -> Record {
    redrive(rec, script, &Options::default()).expect("redrivable")
}

/// Event types of the redrive's part of the history.
fn redriven_events(rec: &Record) -> Vec<(String, String)> {
    rec.last_attempt()
        .iter()
        .map(|e| (e.kind.clone(), e.state.clone()))
        .collect()
}

#[test]
fn r1_only_failed_executions_within_the_quota_are_redrivable() {
    let def = json!({"StartAt": "A", "States": {"A": task(None)}});
    let script = Script::default();
    let ok = start(&def, json!({}), &script);
    assert_eq!(ok.status, Status::Succeeded);
    let err = redrive(&ok, &script, &Options::default()).unwrap_err();
    assert_eq!(err.error, "ExecutionNotRedrivable");
    assert!(not_redrivable(&ok).unwrap().contains("SUCCEEDED"));

    let script = Script::default().fail("A", "Boom", 1);
    let mut failed = start(&def, json!({}), &script);
    assert!(not_redrivable(&failed).is_none());
    failed.history_limit_reached = true;
    assert!(not_redrivable(&failed).unwrap().contains("NOT_REDRIVABLE"));
    failed.history_limit_reached = false;
    failed.stop_time = Some("2020-01-01T00:00:00Z".into());
    assert!(not_redrivable(&failed).unwrap().contains("14 days"));
}

#[test]
fn r2_identity_is_kept_and_redrive_count_is_visible() {
    let def = json!({"StartAt": "A", "States": {"A": {
        "Type": "Task", "Resource": "arn:aws:lambda:us-east-1:000000000000:function:f",
        "Parameters": {"n.$": "$$.Execution.RedriveCount", "id.$": "$$.Execution.Id"}, "End": true}}});
    let script = Script::default().fail("A", "Boom", 1);
    let first = start(&def, json!({"x": 1}), &script);
    assert_eq!(first.status, Status::Failed);
    let second = again(&first, &script);
    assert_eq!(second.status, Status::Succeeded);
    assert_eq!(
        second.execution.execution_arn,
        first.execution.execution_arn
    );
    assert_eq!(second.execution.name, first.execution.name);
    assert_eq!(second.execution.start_time, first.execution.start_time);
    assert_eq!(second.input, first.input);
    assert_eq!(second.execution.redrive_count, 1);
    assert_eq!(second.output.as_ref().unwrap()["input"]["n"], json!(1));
    let redriven: Vec<_> = second
        .events
        .iter()
        .filter(|e| e.kind == "ExecutionRedriven")
        .collect();
    assert_eq!(redriven.len(), 1);
    assert_eq!(redriven[0].detail["redriveCount"], json!(1));
    // The history continues: the first attempt's events are all still there, ids go on.
    assert_eq!(&second.events[..first.events.len()], &first.events[..]);
    assert!(second
        .events
        .iter()
        .enumerate()
        .all(|(i, e)| e.id == i as u64 + 1));
}

#[test]
fn r3_r5_the_failed_task_runs_again_with_its_recorded_input_and_fresh_retries() {
    let mut b = task(Some("C"));
    b["Retry"] =
        json!([{"ErrorEquals": ["Sluice.Transient"], "MaxAttempts": 1, "IntervalSeconds": 1}]);
    let def = json!({"StartAt": "A", "States": {
        "A": task(Some("B")), "B": b, "C": task(None)}});
    // B: one transient failure (retried), then AccessDenied (not retried): the run fails at B.
    let script = Script::default().fail("B", "Sluice.Transient", 1);
    script
        .failing
        .borrow_mut()
        .insert("B".into(), ("Sluice.Transient".into(), 2));
    let first = start(&def, json!({"n": 7}), &script);
    assert_eq!(first.status, Status::Failed);
    assert_eq!(script.take_calls(), ["A", "B", "B"]);
    let b_input = script_input_of(&first, "B");
    assert_eq!(restart_points(&first), [("B".to_owned(), "B".to_owned())]);

    // Redrive: B fails once more (transient) and is retried: its retry counter started at 0.
    script
        .failing
        .borrow_mut()
        .insert("B".into(), ("Sluice.Transient".into(), 1));
    let second = again(&first, &script);
    assert_eq!(second.status, Status::Succeeded);
    assert_eq!(script.calls(), ["B", "B", "C"], "A is never run again");
    let entered: Vec<_> = redriven_events(&second)
        .into_iter()
        .filter(|(k, _)| k.ends_with("StateEntered"))
        .map(|(_, s)| s)
        .collect();
    assert_eq!(entered, ["B", "C"], "no replay from StartAt");
    assert_eq!(script_input_of(&second, "B"), b_input);
}

fn script_input_of(rec: &Record, state: &str) -> Value {
    rec.events
        .iter()
        .rev()
        .find(|e| e.kind == "TaskStateEntered" && e.state == state)
        .map(|e| e.detail["input"].clone())
        .unwrap()
}

#[test]
fn r4_r6_a_caught_error_ending_in_a_fail_state_fails_again_and_invokes_nothing() {
    let mut a = task(Some("Done"));
    a["Catch"] = json!([{"ErrorEquals": ["States.ALL"], "Next": "Failed"}]);
    let def = json!({"StartAt": "A", "States": {
        "A": a, "Done": {"Type": "Succeed"},
        "Failed": {"Type": "Fail", "Error": "Pipeline.Failed", "Cause": "caught"}}});
    let script = Script::default().fail("A", "Boom", 1);
    let first = start(&def, json!({}), &script);
    assert_eq!(first.error.as_deref(), Some("Pipeline.Failed"));
    script.take_calls();
    script.heal();
    assert_eq!(
        restart_points(&first),
        [("Failed".to_owned(), "Failed".to_owned())]
    );
    let second = again(&first, &script);
    assert_eq!(second.status, Status::Failed);
    assert_eq!(second.error.as_deref(), Some("Pipeline.Failed"));
    assert!(
        script.calls().is_empty(),
        "the caught Task is never invoked again"
    );
    assert_eq!(
        redriven_events(&second),
        [
            ("FailStateEntered".to_owned(), "Failed".to_owned()),
            ("ExecutionFailed".to_owned(), String::new())
        ]
    );
}

#[test]
fn r7_a_finished_choice_is_not_reevaluated_an_unfinished_one_is() {
    let def = json!({"StartAt": "C", "States": {
        "C": {"Type": "Choice", "Choices": [{"Variable": "$.go", "BooleanEquals": true, "Next": "T"}]},
        "T": task(None)}});
    let script = Script::default().fail("T", "Boom", 1);
    let first = start(&def, json!({"go": true}), &script);
    let second = again(&first, &script);
    assert_eq!(second.status, Status::Succeeded);
    assert!(!redriven_events(&second)
        .iter()
        .any(|(k, _)| k == "ChoiceStateEntered"));

    // A Choice that failed (no rule matched, no Default) is re-evaluated on its recorded input.
    let first = start(&def, json!({"go": false}), &script);
    assert_eq!(first.error.as_deref(), Some("States.NoChoiceMatched"));
    let second = again(&first, &script);
    assert_eq!(second.error.as_deref(), Some("States.NoChoiceMatched"));
    assert_eq!(
        redriven_events(&second)[0],
        ("ChoiceStateEntered".to_owned(), "C".to_owned())
    );
}

#[test]
fn r8_a_resumed_map_reruns_only_unfinished_iterations_and_keeps_index_order() {
    let def = json!({"StartAt": "M", "States": {"M": {
        "Type": "Map", "ItemsPath": "$.items",
        "ItemProcessor": {"StartAt": "Pre", "States": {
            "Pre": {"Type": "Pass", "Next": "Work"}, "Work": task(None)}},
        "End": true}}});
    let script = Script::default().fail("M/2/Work", "AccessDenied", 1);
    let first = start(&def, json!({"items": [0, 1, 2, 3]}), &script);
    assert_eq!(first.status, Status::Failed);
    assert_eq!(script.take_calls(), ["M/0/Work", "M/1/Work", "M/2/Work"]);
    let points: Vec<String> = restart_points(&first).into_iter().map(|p| p.0).collect();
    assert_eq!(points, ["M", "M/2/Work"]);
    let second = again(&first, &script);
    assert_eq!(second.status, Status::Succeeded);
    // Item 2 resumes at Work (Pre is finished), item 3 never started and runs whole.
    assert_eq!(script.calls(), ["M/2/Work", "M/3/Work"]);
    let redriven = redriven_events(&second);
    assert_eq!(
        redriven
            .iter()
            .filter(|(k, s)| k == "PassStateEntered" && s == "Pre")
            .count(),
        1,
        "only the never-started iteration enters Pre"
    );
    let out = second.output.unwrap();
    let froms: Vec<&str> = out
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["from"].as_str().unwrap())
        .collect();
    assert_eq!(froms, ["M/0/Work", "M/1/Work", "M/2/Work", "M/3/Work"]);
}

#[test]
fn r8_a_resumed_parallel_reruns_only_the_failed_branch() {
    let def = json!({"StartAt": "P", "States": {"P": {"Type": "Parallel", "End": true,
        "Branches": [
            {"StartAt": "A", "States": {"A": task(None)}},
            {"StartAt": "B", "States": {"B": task(None)}}]}}});
    let script = Script::default().fail("P/1/B", "Boom", 1);
    let first = start(&def, json!({}), &script);
    assert_eq!(first.status, Status::Failed);
    script.take_calls();
    let second = again(&first, &script);
    assert_eq!(second.status, Status::Succeeded);
    assert_eq!(script.calls(), ["P/1/B"]);
    assert_eq!(second.output.unwrap()[0]["from"], json!("P/0/A"));
}

#[test]
fn r9_states_after_the_restart_point_run_for_real_even_if_they_ran_before() {
    // A loop: T runs, Count? loops back to T until $.n reaches 2 (the Pass adds 1), then U.
    let def = json!({"StartAt": "T", "States": {
        "T": {"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:0:function:f",
              "ResultPath": "$.t", "Next": "U"},
        "U": {"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:0:function:f",
              "ResultPath": "$.u", "Next": "Again?"},
        "Again?": {"Type": "Choice", "Choices": [
            {"Variable": "$.again", "BooleanEquals": true, "Next": "Flip"}], "Default": "End"},
        "Flip": {"Type": "Pass", "Result": false, "ResultPath": "$.again", "Next": "T"},
        "End": {"Type": "Succeed"}}});
    let script = Script::default().fail("U", "Boom", 1);
    let first = start(&def, json!({"again": true}), &script);
    assert_eq!(first.status, Status::Failed);
    assert_eq!(script.take_calls(), ["T", "U"]);
    let second = again(&first, &script);
    assert_eq!(second.status, Status::Succeeded);
    // U resumes, the loop goes back: T and U run again for real (no memo of results).
    assert_eq!(script.calls(), ["U", "T", "U"]);
}

#[test]
fn r10_a_redrive_of_a_failed_redrive_resumes_where_the_last_attempt_stopped() {
    let def = json!({"StartAt": "A", "States": {"A": task(Some("B")), "B": task(Some("C")), "C": task(None)}});
    let script = Script::default().fail("B", "Boom", 1).fail("C", "Boom", 1);
    let first = start(&def, json!({}), &script);
    let second = again(&first, &script);
    assert_eq!(second.status, Status::Failed);
    assert_eq!(second.error.as_deref(), Some("Boom"));
    script.take_calls();
    let third = again(&second, &script);
    assert_eq!(third.status, Status::Succeeded);
    assert_eq!(third.execution.redrive_count, 2);
    assert_eq!(script.calls(), ["C"]);
}

#[test]
fn r11_history_events_are_the_ones_aws_writes() {
    let mut a = task(Some("Done"));
    a["Catch"] = json!([{"ErrorEquals": ["Bad"], "Next": "Handled"}]);
    let def = json!({"StartAt": "A", "States": {
        "A": a, "Handled": {"Type": "Pass", "Next": "Done"}, "Done": {"Type": "Succeed"}}});
    let script = Script::default().fail("A", "Bad", 1);
    let rec = start(&def, json!({}), &script);
    let kinds: Vec<&str> = rec.events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "ExecutionStarted",
            "TaskStateEntered",
            "LambdaFunctionScheduled",
            "LambdaFunctionStarted",
            "LambdaFunctionFailed",
            "TaskStateExited",
            "PassStateEntered",
            "PassStateExited",
            "SucceedStateEntered",
            "SucceedStateExited",
            "ExecutionSucceeded"
        ]
    );
}

fn ingest_like_map(mode: &str, tolerated: u64) -> Value {
    let mut processor = json!({"StartAt": "Ingest", "States": {"Ingest": task(None)}});
    let mut m = json!({"Type": "Map", "End": true, "ItemProcessor": processor.clone()});
    if mode == "DISTRIBUTED" {
        processor["ProcessorConfig"] = json!({"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"});
        m["ItemProcessor"] = processor;
        m["ItemReader"] = json!({"Resource": "arn:aws:states:::s3:getObject",
            "ReaderConfig": {"InputType": "JSON"},
            "Parameters": {"Bucket": "b", "Key.$": "$.manifest"}});
        m["ToleratedFailureCount"] = json!(tolerated);
        m["MaxConcurrency"] = json!(4);
    } else {
        m["ItemsPath"] = json!("$.items");
    }
    json!({"StartAt": "Items", "States": {"Items": m}})
}

#[test]
fn quota_an_inline_map_of_3000_items_breaks_the_history_and_is_not_redrivable() {
    // 7 events per item when all goes well (21,000), +3 per retry: a throttling storm that
    // retries every item once takes 3,000 items to 30,000 events.
    let items: Vec<Value> = (0..3000).map(|i| json!(i)).collect();
    let script = Script::default();
    for i in 0..3000 {
        script
            .failing
            .borrow_mut()
            .insert(format!("Items/{i}/Ingest"), ("Sluice.Transient".into(), 1));
    }
    let mut def = ingest_like_map("INLINE", 0);
    def["States"]["Items"]["ItemProcessor"]["States"]["Ingest"]["Retry"] =
        json!([{"ErrorEquals": ["Sluice.Transient"], "MaxAttempts": 3}]);
    let rec = start(&def, json!({"items": items}), &script);
    assert_eq!(rec.status, Status::Failed);
    assert_eq!(rec.error.as_deref(), Some(HISTORY_LIMIT_ERROR));
    assert!(rec.history_limit_reached);
    assert_eq!(rec.events.len(), HISTORY_LIMIT);
    assert!(script.calls().len() < 6000, "stopped before the last items");
    assert!(not_redrivable(&rec).unwrap().contains("NOT_REDRIVABLE"));
    assert!(redrive(&rec, &script, &Options::default()).is_err());
}

#[test]
fn quota_a_distributed_map_of_3000_items_fits_and_stays_redrivable() {
    let items: Vec<Value> = (0..3000).map(|i| json!(i)).collect();
    let script = Script {
        items: Some(Value::Array(items)),
        ..Script::default()
    }
    .fail("Ingest", "AccessDenied", 1);
    let rec = start(
        &ingest_like_map("DISTRIBUTED", 0),
        json!({"manifest": "m.json"}),
        &script,
    );
    // The first child fails: no tolerated failures, the Map Run fails, nothing else starts.
    assert_eq!(
        rec.error.as_deref(),
        Some("States.ExceedToleratedFailureThreshold")
    );
    assert!(
        rec.events.len() < 20,
        "the parent's history holds no child events"
    );
    assert!(not_redrivable(&rec).is_none());
    script.take_calls();
    let second = again(&rec, &script);
    assert_eq!(second.status, Status::Succeeded, "{:?}", second.cause);
    assert_eq!(script.calls().len(), 3000);
    assert_eq!(second.children.len(), 3000);
    assert!(second.children.values().all(|c| c.events.len() <= 16));
    assert_eq!(second.output.unwrap().as_array().unwrap().len(), 3000);
}

#[test]
fn distributed_map_tolerates_failures_and_redrives_only_failed_children() {
    let items: Vec<Value> = (0..5).map(|i| json!({"n": i})).collect();
    // Children are named by their own paths ("Ingest"); fail the third call only.
    struct NthFails {
        inner: Script,
        n: usize,
        count: RefCell<usize>,
    }
    impl TaskRunner for NthFails {
        fn invoke(&self, r: &str, input: &Value, path: &str) -> Result<Value, TaskError> {
            let mut c = self.count.borrow_mut();
            *c += 1;
            if *c == self.n {
                self.inner
                    .calls
                    .borrow_mut()
                    .push((path.into(), input.clone()));
                return Err(TaskError {
                    error: "AccessDenied".into(),
                    cause: "deny".into(),
                });
            }
            self.inner.invoke(r, input, path)
        }
        fn read_items(&self, reader: &Value) -> Result<Value, TaskError> {
            self.inner.read_items(reader)
        }
    }
    let runner = NthFails {
        inner: Script {
            items: Some(Value::Array(items)),
            ..Script::default()
        },
        n: 3,
        count: RefCell::new(0),
    };
    let tolerant = start_with(&ingest_like_map("DISTRIBUTED", 1), &runner);
    assert_eq!(
        tolerant.status,
        Status::Succeeded,
        "one failure is tolerated"
    );
    assert_eq!(
        runner.inner.take_calls().len(),
        5,
        "one failure never stops the others"
    );

    *runner.count.borrow_mut() = 0;
    let strict = start_with(&ingest_like_map("DISTRIBUTED", 0), &runner);
    assert_eq!(strict.status, Status::Failed);
    assert_eq!(runner.inner.take_calls().len(), 3);
    let failed_child = strict.children.get("Items/2").unwrap();
    assert_eq!(failed_child.status, Status::Failed);
    let second = redrive(&strict, &runner, &Options::default()).unwrap();
    assert_eq!(second.status, Status::Succeeded);
    // Children 0 and 1 kept; child 2 redriven (its own history continues); 3 and 4 started.
    let inputs: Vec<Value> = runner
        .inner
        .calls
        .borrow()
        .iter()
        .map(|(_, i)| i.clone())
        .collect();
    assert_eq!(inputs, [json!({"n": 2}), json!({"n": 3}), json!({"n": 4})]);
    let child = second.children.get("Items/2").unwrap();
    assert_eq!(child.execution.redrive_count, 1);
    assert!(child.events.iter().any(|e| e.kind == "ExecutionRedriven"));
    assert_eq!(
        second.invocations_in_last_attempt(),
        ["Items/2/Ingest", "Items/3/Ingest", "Items/4/Ingest"]
    );
}

fn start_with<R: TaskRunner>(def: &Value, runner: &R) -> Record {
    run(
        def,
        json!({"manifest": "m.json"}),
        ExecutionInfo::local("m", "e2"),
        runner,
        &Options::default(),
    )
}
