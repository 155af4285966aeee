//! Offline checks that the definition, the functions and the example events fit together.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use serde_json::Value;
use sluice_functions::contracts;
use sluice_functions::errors::{ALL, LAMBDA_SERVICE_ERRORS};
use sluice_functions::registry::{self, function_of};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every `statemachine/*.asl.json`, by file name.
fn definitions() -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(root().join("statemachine")).unwrap() {
        let p = e.unwrap().path();
        if p.to_string_lossy().ends_with(".asl.json") {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            out.push((
                name,
                serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap(),
            ));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Checks one scope (a machine or a Map's ItemProcessor) and recurses; returns problems.
fn check_scope(scope: &Value, where_: &str, problems: &mut Vec<String>, tasks: &mut Vec<String>) {
    let states = scope["States"].as_object().unwrap();
    let exists = |n: &str| states.contains_key(n);
    let start = scope["StartAt"].as_str().unwrap_or("");
    if !exists(start) {
        problems.push(format!("{where_}: StartAt {start:?} does not exist"));
    }
    for (name, s) in states {
        let at = format!("{where_}{name}");
        let mut targets: Vec<&str> = Vec::new();
        if let Some(n) = s["Next"].as_str() {
            targets.push(n);
        }
        if let Some(n) = s["Default"].as_str() {
            targets.push(n);
        }
        for c in s["Choices"].as_array().into_iter().flatten() {
            targets.extend(c["Next"].as_str());
        }
        for c in s["Catch"].as_array().into_iter().flatten() {
            targets.extend(c["Next"].as_str());
        }
        for t in targets {
            if !exists(t) {
                problems.push(format!("{at}: target {t:?} does not exist"));
            }
        }
        let errors = s["Retry"]
            .as_array()
            .into_iter()
            .flatten()
            .chain(s["Catch"].as_array().into_iter().flatten())
            .flat_map(|r| r["ErrorEquals"].as_array().cloned().unwrap_or_default());
        for e in errors {
            let e = e.as_str().unwrap_or("");
            let known =
                e.starts_with("States.") || ALL.contains(&e) || LAMBDA_SERVICE_ERRORS.contains(&e);
            if !known {
                problems.push(format!(
                    "{at}: ErrorEquals names {e:?}, which no function raises"
                ));
            }
        }
        match s["Type"].as_str() {
            Some("Task") => {
                let r = s["Resource"].as_str().unwrap_or("");
                match function_of(r) {
                    Some(f) if root().join("functions").join(f).join("main.rs").is_file() => {
                        tasks.push(f.to_owned())
                    }
                    _ => problems.push(format!(
                        "{at}: Resource {r:?} names no function under functions/"
                    )),
                }
            }
            Some("Fail") => {
                let e = s["Error"].as_str().unwrap_or("");
                if !ALL.contains(&e) {
                    problems.push(format!(
                        "{at}: Fail Error {e:?} is not one of the error constants"
                    ));
                }
            }
            Some("Map") => check_scope(&s["ItemProcessor"], &format!("{at}/"), problems, tasks),
            _ => {}
        }
    }
}

#[test]
fn every_target_function_and_error_name_exists() {
    let mut problems = Vec::new();
    let mut tasks = Vec::new();
    let defs = definitions();
    let names: Vec<&str> = defs.iter().map(|d| d.0.as_str()).collect();
    assert_eq!(names, ["extract.asl.json", "ingest.asl.json"]);
    for (name, def) in &defs {
        check_scope(def, &format!("{name}: "), &mut problems, &mut tasks);
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    tasks.sort();
    tasks.dedup();
    // Every function in the registry is a Task of some state machine, and nothing else is.
    let mut registered: Vec<&str> = registry::names().collect();
    registered.sort();
    assert_eq!(tasks, registered);
    // The registry, the directories under functions/ and Cargo.toml's [[bin]]s agree.
    let mut dirs: Vec<String> = std::fs::read_dir(root().join("functions"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("main.rs").is_file())
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    dirs.sort();
    assert_eq!(dirs, registered, "functions/<name>/main.rs");
    let manifest: toml_lite::Bins = toml_lite::bins(&root().join("functions/Cargo.toml"));
    let mut bins: Vec<&str> = manifest.iter().map(|(n, _)| n.as_str()).collect();
    bins.sort();
    assert_eq!(bins, registered, "functions/Cargo.toml [[bin]]");
    for (name, path) in &manifest {
        assert_eq!(path, &format!("{name}/main.rs"), "[[bin]] {name}");
    }
}

/// The `[[bin]]` tables of a Cargo.toml: name and path, in order.
mod toml_lite {
    pub type Bins = Vec<(String, String)>;
    pub fn bins(path: &std::path::Path) -> Bins {
        let text = std::fs::read_to_string(path).unwrap();
        let mut out = Vec::new();
        for table in text.split("[[bin]]").skip(1) {
            let table = table.split("\n[").next().unwrap();
            let field = |k: &str| {
                table
                    .lines()
                    .find_map(|l| {
                        l.trim()
                            .strip_prefix(k)?
                            .trim()
                            .strip_prefix('=')
                            .map(|v| v.trim().trim_matches('"').to_owned())
                    })
                    .unwrap()
            };
            out.push((field("name"), field("path")));
        }
        out
    }
}

#[test]
fn every_event_file_parses_into_its_functions_input() {
    let dir = root().join("events");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let v: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let function = registry::names()
            .filter(|f| name.starts_with(f))
            .max_by_key(|f| f.len());
        let result = if let Some(function) = function {
            if function == "queue-generator" {
                // The state machine's step, or (named so) a requeue by hand.
                let r = serde_json::from_value::<contracts::QueueRequest>(v.clone()).unwrap();
                let requeue = matches!(r, contracts::QueueRequest::Requeue(_));
                assert_eq!(requeue, name.contains("requeue"), "events/{name}: {r:?}");
            }
            registry::check_input(function, &v)
        } else if name.starts_with("s3-") {
            // Delivered straight to queue-generator (registered, drained later); the state
            // machine accepts it too, as its `event`.
            let direct = serde_json::from_value::<contracts::QueueRequest>(v.clone());
            assert!(
                matches!(direct, Ok(contracts::QueueRequest::Register(_))),
                "events/{name}: {direct:?}"
            );
            let wrapped = serde_json::json!({"event": v, "execution": "arn:aws:states:us-east-1:000000000000:execution:m:e"});
            serde_json::from_value::<contracts::QueueInput>(wrapped)
                .map(|_| ())
                .map_err(|e| e.to_string())
        } else if name.starts_with("scheduled") {
            // An execution input: what queue-generator receives as its `event`.
            let wrapped = serde_json::json!({"event": v, "execution": "arn:aws:states:us-east-1:000000000000:execution:m:e"});
            serde_json::from_value::<contracts::QueueInput>(wrapped)
                .map(|_| ())
                .map_err(|e| e.to_string())
        } else {
            panic!("events/{name}: no function claims this file (name it after the function)");
        };
        assert!(result.is_ok(), "events/{name}: {:?}", result.err());
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} event files");
}

/// The states reachable from `start` in `states` (following Next, Default, Choices, Catch).
fn reachable<'a>(states: &'a serde_json::Map<String, Value>, start: &'a str) -> Vec<&'a str> {
    let mut seen: Vec<&str> = Vec::new();
    let mut todo = vec![start];
    while let Some(n) = todo.pop() {
        if seen.contains(&n) {
            continue;
        }
        seen.push(n);
        let Some(s) = states.get(n) else { continue };
        todo.extend(s["Next"].as_str());
        todo.extend(s["Default"].as_str());
        for c in s["Choices"].as_array().into_iter().flatten() {
            todo.extend(c["Next"].as_str());
        }
        for c in s["Catch"].as_array().into_iter().flatten() {
            todo.extend(c["Next"].as_str());
        }
    }
    seen
}

/// Catches, scope by scope: `(scope, state, catch target, error names)`.
fn catch_paths(scope: &Value, where_: &str, out: &mut Vec<(Value, String, String, Vec<String>)>) {
    let Some(states) = scope["States"].as_object() else {
        return;
    };
    for (name, s) in states {
        for c in s["Catch"].as_array().into_iter().flatten() {
            let errors = c["ErrorEquals"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect();
            out.push((
                scope.clone(),
                format!("{where_}{name}"),
                c["Next"].as_str().unwrap_or("").to_owned(),
                errors,
            ));
        }
        for inner in [&s["ItemProcessor"], &s["Iterator"]] {
            if inner.is_object() {
                catch_paths(inner, &format!("{where_}{name}/"), out);
            }
        }
        for b in s["Branches"].as_array().into_iter().flatten() {
            catch_paths(b, &format!("{where_}{name}/"), out);
        }
    }
}

/// REDRIVE.md: a caught error counts as exited, so a Catch that leads to a Fail state makes
/// the console's Redrive re-enter that Fail state and fail again, never retrying the work.
/// Only the per-item data errors may be caught, and their path must not end in a Fail state;
/// `States.ALL` is never caught.
#[test]
fn no_catch_path_ends_in_a_fail_state_and_nothing_catches_everything() {
    const DATA_ERRORS: &[&str] = &[
        "Sluice.BadFile",
        "Sluice.SpecNotFound",
        "Sluice.ObjectChanged",
    ];
    let mut problems = Vec::new();
    for (file, def) in definitions() {
        let mut paths = Vec::new();
        catch_paths(&def, "", &mut paths);
        for (scope, at, target, errors) in paths {
            let states = scope["States"].as_object().unwrap();
            for e in &errors {
                if !DATA_ERRORS.contains(&e.as_str()) {
                    problems.push(format!(
                        "{file}: {at} catches {e}: leave it to Retry or Redrive"
                    ));
                }
            }
            for n in reachable(states, &target) {
                if states[n]["Type"] == "Fail" {
                    problems.push(format!(
                        "{file}: the Catch of {at} leads to the Fail state {n}"
                    ));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // The check can fail: the shape this replaced (a catch-all routed to a Fail state).
    let old = serde_json::json!({"StartAt": "A", "States": {
        "A": {"Type": "Task", "Resource": "r", "End": true,
              "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "N"}]},
        "N": {"Type": "Pass", "Next": "F"}, "F": {"Type": "Fail"}}});
    let mut paths = Vec::new();
    catch_paths(&old, "", &mut paths);
    let (scope, _, target, errors) = &paths[0];
    assert_eq!(errors, &["States.ALL"]);
    assert!(reachable(scope["States"].as_object().unwrap(), target).contains(&"F"));
}

/// The README's error table names every error a function raises or a Fail state uses, so
/// on-call can look any of them up.
#[test]
fn the_readme_error_table_lists_every_error_name() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let table = readme
        .split("## Error names")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("README has an Error names section");
    for name in sluice_functions::errors::ALL {
        assert!(
            table.contains(&format!("| `{name}` |")),
            "README's error table lacks {name}"
        );
    }
}
