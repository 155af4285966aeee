//! The happy path of statemachine/ingest.asl.json on an interpreter nobody here wrote: moto's
//! Step Functions (execution mode), each Lambda answering with what the real handler returned
//! in the local run. Both must end with the same output after the same states.
//! (Its own test binary: it switches the shared emulator's execution mode on and back off.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;

use common::{sample, scheduled, Lab};
use serde_json::{json, Value};
use sluice_asl::Status;

#[test]
#[ignore = "moto's Step Functions cannot run a distributed Map with an S3 ItemReader (ProcessItems); the history conformance corpus checks the runner instead"]
fn moto_runs_the_happy_path_to_the_same_output_and_states() {
    let lab = Lab::new();
    lab.put(
        "credit/yyyy=2026/mm=11/dd=21/hh=23/credit-b.csv",
        sample("credit/yyyy=2026/mm=11/dd=21/hh=23/credit-0001.csv"),
    );
    lab.put(
        "loans/yyyy=2026/mm=11/dd=21/hh=22/loan-book.xlsx",
        common::loans_xlsx(),
    );
    let input = scheduled("2026-11-22T00:05:00Z");
    let local = lab.run(input.clone(), "xcheck");
    assert_eq!(
        local.status,
        Status::Succeeded,
        "{:?} {:?}",
        local.error,
        local.cause
    );
    let results: Vec<Value> = local
        .events
        .iter()
        .filter(|e| e.kind == "LambdaFunctionSucceeded")
        .map(|e| e.detail["output"].clone())
        .collect();
    assert_eq!(
        results.len(),
        7,
        "queue, lock, 2 ingests, normalize, release, report"
    );

    let case = tempfile::NamedTempFile::new().unwrap();
    let definition = common::definition();
    std::fs::write(
        case.path(),
        serde_json::to_vec(&json!({
            "definition": definition,
            "input": input,
            "functions": sluice_functions::registry::names().collect::<Vec<_>>(),
            "results": results,
        }))
        .unwrap(),
    )
    .unwrap();
    let python = sluice_testkit::repo_root().join(".local-aws/venv/bin/python");
    let out = Command::new(&python)
        .arg(sluice_testkit::repo_root().join("functions/tests/moto_crosscheck.py"))
        .arg(case.path())
        .arg(sluice_testkit::endpoint())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "moto run failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let moto: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(moto["status"], "SUCCEEDED", "{moto}");

    // Top-level states in order; nested (Map) states as a multiset, since moto may run
    // iterations at the same time.
    let top: Vec<&str> = definition["States"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let moto_states: Vec<&str> = moto["states_entered"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let moto_top: Vec<&str> = moto_states
        .iter()
        .copied()
        .filter(|s| top.contains(s))
        .collect();
    assert_eq!(moto_top, local.states_entered_top_level());
    let mut a = moto_states.clone();
    let mut b = local.states_entered();
    a.sort();
    b.sort();
    assert_eq!(a, b);
    assert_eq!(moto["output"], local.output.unwrap());
}
