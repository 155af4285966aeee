//! Where a redrive resumes, read from a history as AWS reads it: a state with an
//! `…StateEntered` event and no `…StateExited` is unfinished and runs again with the input of
//! its Entered event; everything that exited is kept. Inside a Map or Parallel that is resumed,
//! iterations and branches that finished keep their results and the others resume the same
//! way (`../shared/REDRIVE.md`, rules R3–R8).

use std::collections::{BTreeMap, HashMap, HashSet};

use serde_json::Value;

use crate::record::{Event, Record};

/// The scope (`""`, `Map/3/`, `Par/0/`) a state path belongs to.
pub(crate) fn scope_of(path: &str) -> &str {
    match path.rfind('/') {
        Some(i) => &path[..=i],
        None => "",
    }
}

/// What a redrive resumes.
#[derive(Debug, Default, Clone)]
pub(crate) struct Plan {
    /// Per scope, the unfinished state and its recorded input.
    pub open: HashMap<String, (String, Value)>,
    /// Per iteration or branch scope that finished, its output.
    pub finished: HashMap<String, Value>,
    /// Maps and Parallels that failed with `States.DataLimitExceeded`: re-run whole.
    pub whole: HashSet<String>,
    /// Child executions of distributed Maps, from the earlier attempts.
    pub children: BTreeMap<String, Record>,
}

impl Plan {
    pub fn of(record: &Record) -> Plan {
        let mut plan = Plan {
            children: record.children.clone(),
            ..Plan::default()
        };
        for e in &record.events {
            plan.see(e);
        }
        plan
    }

    fn forget_inside(&mut self, path: &str) {
        let inner = format!("{path}/");
        self.open.retain(|scope, _| !scope.starts_with(&inner));
        self.finished.retain(|scope, _| !scope.starts_with(&inner));
        self.whole.remove(path);
    }

    fn see(&mut self, e: &Event) {
        let scope = scope_of(&e.path).to_owned();
        match e.kind.as_str() {
            _ if e.is_entered() => {
                self.finished.remove(&scope);
                let input = e.detail.get("input").cloned().unwrap_or(Value::Null);
                self.open.insert(scope, (e.state.clone(), input));
            }
            _ if e.is_exited() && self.open.get(&scope).is_some_and(|(n, _)| *n == e.state) => {
                self.open.remove(&scope);
                if !scope.is_empty() {
                    let out = e.detail.get("output").cloned().unwrap_or(Value::Null);
                    self.finished.insert(scope, out);
                }
            }
            // A new attempt of a Map or Parallel starts its iterations or branches over.
            "MapStateStarted" | "ParallelStateStarted" => self.forget_inside(&e.path),
            "MapIterationFailed" | "MapIterationAborted" => {
                if let Some(i) = e.index {
                    self.finished.remove(&format!("{}/{i}/", e.path));
                }
            }
            "MapStateFailed" | "ParallelStateFailed"
                if e.detail.get("error").and_then(Value::as_str)
                    == Some("States.DataLimitExceeded") =>
            {
                self.whole.insert(e.path.clone());
            }
            _ => {}
        }
    }

    /// The unfinished states, outermost first: what a redrive of `record` will run again.
    pub fn restart_points(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = self
            .open
            .iter()
            .map(|(scope, (name, _))| (format!("{scope}{name}"), name.clone()))
            .collect();
        out.sort_by_key(|(path, _)| (path.matches('/').count(), path.clone()));
        out
    }
}
