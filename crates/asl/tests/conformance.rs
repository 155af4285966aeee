//! The local runner against executions recorded on AWS Step Functions
//! (`../shared/asl-conformance`, see its README). Every case whose features the runner
//! supports must agree with AWS on status, output or error, the states entered, and — for the
//! 263 cases with a recorded history — the history's Entered/Exited events and its event
//! types one by one (what redrive reads and what the 25,000-event quota counts). Cases
//! using features the runner leaves out on purpose are counted and listed, not run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::PathBuf;

use serde_json::Value;
use sluice_asl::{run, ExecutionInfo, Options, Status, TaskError, TaskRunner};

/// Features the local runner does not implement (Sluice's definitions do not use them).
const UNSUPPORTED: &[&str] = &[
    "field:Assign",
    "intrinsic:States.Hash",
    "intrinsic:States.Base64Encode",
    "intrinsic:States.Base64Decode",
    "field:MaxConcurrencyPath",
];

/// Cases left out one by one, with the reason.
const NOT_COMPARABLE: &[(&str, &str)] = &[
    (
        "base/test_state_pass_regex_json_path_base",
        "JSONPath filter expressions ([?(...)]) are not supported by the local runner",
    ),
    (
        "base/test_query_context_object_values",
        "the recording replaced start and entered times by placeholders it does not flag",
    ),
];

/// The recorded executions; the test is ignored where `../shared` is absent.
fn corpus() -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/asl-conformance/cases");
    assert!(p.is_dir(), "{} is absent", p.display());
    p
}

/// Answers each Task state's Nth invocation with the Nth recorded answer.
struct Mocks {
    answers: HashMap<String, Vec<Value>>,
    calls: RefCell<HashMap<String, usize>>,
}

impl TaskRunner for Mocks {
    fn invoke(
        &self,
        _resource: &str,
        _input: &Value,
        state_path: &str,
    ) -> Result<Value, TaskError> {
        let state = state_path
            .rsplit('/')
            .next()
            .unwrap_or(state_path)
            .to_owned();
        let mut calls = self.calls.borrow_mut();
        let n = calls.entry(state.clone()).or_default();
        let answer = self.answers.get(&state).and_then(|a| a.get(*n)).cloned();
        *n += 1;
        match answer {
            Some(a) if a.get("error").is_some() => Err(TaskError {
                error: a["error"].as_str().unwrap_or("").to_owned(),
                cause: a["cause"].as_str().unwrap_or("").to_owned(),
            }),
            Some(a) => Ok(a["result"].clone()),
            None => Err(TaskError {
                error: "Mock.Missing".into(),
                cause: format!("no recorded answer for call {n} of {state}"),
            }),
        }
    }
}

fn same_json(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same_json(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_json(v, w)))
        }
        _ => a == b,
    }
}

fn strip(v: &mut Value, dotted: &str) {
    let parts: Vec<&str> = dotted.split('.').collect();
    let Some((last, init)) = parts.split_last() else {
        return;
    };
    let mut cur = v;
    for p in init {
        let next = match cur {
            Value::Object(m) => m.get_mut(*p),
            Value::Array(a) => p.parse::<usize>().ok().and_then(|i| a.get_mut(i)),
            _ => None,
        };
        match next {
            Some(n) => cur = n,
            None => return,
        }
    }
    if let Value::Object(m) = cur {
        m.remove(*last);
    }
}

fn check(case: &Value) -> Result<(), String> {
    let answers = case
        .get("task_mocks")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_array().cloned().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default();
    let mocks = Mocks {
        answers,
        calls: RefCell::default(),
    };
    let info = ExecutionInfo::local("conformance", "case");
    let record = run(
        &case["definition"],
        case["input"].clone(),
        info,
        &mocks,
        &Options::default(),
    );
    let expected = &case["expected"];
    let want_status = expected["status"].as_str().unwrap_or("");
    match (record.status, want_status) {
        (Status::Succeeded, "SUCCEEDED") => {
            let mut got =
                serde_json::json!({"output": record.output.clone().unwrap_or(Value::Null)});
            let mut want = serde_json::json!({"output": expected["output"].clone()});
            for f in case
                .get("nondeterministic_fields")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let f = f.as_str().unwrap_or("").trim_start_matches("expected.");
                strip(&mut got, f);
                strip(&mut want, f);
            }
            if !same_json(&got, &want) {
                return Err(format!(
                    "output {} != expected {}",
                    got["output"], want["output"]
                ));
            }
        }
        (Status::Failed, "FAILED") => {
            if let Some(e) = expected.get("error").and_then(Value::as_str) {
                if record.error.as_deref() != Some(e) {
                    return Err(format!(
                        "error {:?} != expected {e:?} (cause {:?})",
                        record.error, record.cause
                    ));
                }
            }
        }
        (got, _) => {
            return Err(format!(
                "status {got:?} != {want_status} (error {:?}: {:?})",
                record.error, record.cause
            ))
        }
    }
    if let Some(want) = case
        .get("states_entered_top_level")
        .and_then(Value::as_array)
    {
        let want: Vec<&str> = want.iter().filter_map(Value::as_str).collect();
        if record.states_entered_top_level() != want {
            return Err(format!(
                "top-level states {:?} != {want:?}",
                record.states_entered_top_level()
            ));
        }
    }
    check_history(case, &record)?;
    if let Some(want) = case.get("states_entered").and_then(Value::as_array) {
        let mut want: Vec<&str> = want.iter().filter_map(Value::as_str).collect();
        let mut got = record.states_entered();
        if case.get("states_entered_may_interleave") == Some(&Value::Bool(true)) {
            want.sort();
            got.sort();
        }
        if got != want {
            return Err(format!("states {got:?} != {want:?}"));
        }
    }
    Ok(())
}

/// The one case whose recorded history lost events (see the corpus README, "Recording
/// caveats": events 8 to 10 were dropped, so a finished Parallel looks open).
const HISTORY_ALTERED: &str = "scenarios/test_parallel_state_nested";

/// Compares the history AWS wrote with ours: the `…StateEntered` / `…StateExited` events with
/// their state names (what redrive reads), then every event type (what the quota counts).
/// Where branches or iterations may interleave, or the recording sorted a Parallel's branch
/// events, both are compared as multisets.
fn check_history(case: &Value, record: &sluice_asl::Record) -> Result<(), String> {
    let Some(want) = case.get("history").and_then(Value::as_array) else {
        return Ok(());
    };
    if case["name"] == HISTORY_ALTERED {
        return Ok(());
    }
    // The recording normalised these Parallel histories and dropped ParallelStateSucceeded.
    let normalised = want.iter().any(|e| e["id"].is_array());
    let unordered =
        case.get("states_entered_may_interleave") == Some(&Value::Bool(true)) || normalised;
    let pairs = |events: Vec<(String, String)>| -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = events
            .into_iter()
            .filter(|(t, _)| t.ends_with("StateEntered") || t.ends_with("StateExited"))
            .collect();
        if unordered {
            v.sort();
        }
        v
    };
    let aws: Vec<(String, String)> = want
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap_or("").to_owned(),
                e["name"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    let ours: Vec<(String, String)> = record
        .events
        .iter()
        .map(|e| (e.kind.clone(), e.state.clone()))
        .collect();
    let (a, o) = (pairs(aws.clone()), pairs(ours.clone()));
    if a != o {
        return Err(format!("Entered/Exited events {o:?} != AWS {a:?}"));
    }
    if normalised {
        return Ok(());
    }
    let mut a: Vec<String> = aws.into_iter().map(|(t, _)| t).collect();
    let mut o: Vec<String> = ours.into_iter().map(|(t, _)| t).collect();
    if unordered {
        a.sort();
        o.sort();
    }
    if a != o {
        return Err(format!("history event types {o:?} != AWS {a:?}"));
    }
    Ok(())
}

#[cfg_attr(
    not(sluice_shared),
    ignore = "needs ../shared (absent when this was built)"
)]
#[test]
fn the_local_runner_agrees_with_recorded_aws_executions() {
    let dir = corpus();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .flat_map(|g| std::fs::read_dir(g.unwrap().path()).unwrap())
        .map(|f| f.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    let (mut passed, mut skipped, mut failures) = (0, Vec::new(), Vec::new());
    for f in &files {
        let case: Value = serde_json::from_str(&std::fs::read_to_string(f).unwrap()).unwrap();
        let name = case["name"].as_str().unwrap_or("?").to_owned();
        let features: Vec<&str> = case["features"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        if let Some((_, why)) = NOT_COMPARABLE.iter().find(|(n, _)| *n == name) {
            skipped.push(format!("{name} ({why})"));
            continue;
        }
        if let Some(u) = features.iter().find(|f| UNSUPPORTED.contains(f)) {
            skipped.push(format!("{name} ({u})"));
            continue;
        }
        match check(&case) {
            Ok(()) => passed += 1,
            Err(e) => failures.push(format!("{name}: {e}")),
        }
    }
    eprintln!(
        "conformance: {passed} agree, {} differ, {} not run (unsupported features)",
        failures.len(),
        skipped.len()
    );
    for s in &skipped {
        eprintln!("  not run: {s}");
    }
    assert!(files.len() > 700, "the corpus has {} cases", files.len());
    assert!(
        failures.is_empty(),
        "{} cases differ from AWS:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
