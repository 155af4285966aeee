//! What an execution leaves behind: its identity, its history (events named and counted as
//! AWS writes them), its end, and the child executions of its distributed Maps. A record is
//! everything [`crate::redrive`] needs.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The most events one execution history may hold. At this count AWS fails the execution, and
/// an execution that reached it can never be redriven. Step Functions developer guide,
/// "Step Functions service quotas" ("Maximum execution history size: 25,000 events") and
/// "Restarting state machine executions with redrive" (redrive needs fewer than 24,999 events).
pub const HISTORY_LIMIT: usize = 25_000;

/// Redrive adds at least `ExecutionRedriven`: an execution with this many events or more is
/// not redrivable.
pub const REDRIVE_EVENT_LIMIT: usize = 24_999;

/// Redrive is possible within this many days of the execution's end (redrive-executions.html).
pub const REDRIVE_DAYS: i64 = 14;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecutionInfo {
    pub execution_arn: String,
    pub name: String,
    pub state_machine_arn: String,
    pub start_time: String,
    #[serde(default)]
    pub redrive_count: u32,
}

impl ExecutionInfo {
    /// An execution of state machine `machine` called `name`, in the account and region that
    /// local runs use.
    pub fn local(machine: &str, name: &str) -> ExecutionInfo {
        ExecutionInfo {
            execution_arn: format!(
                "arn:aws:states:us-east-1:000000000000:execution:{machine}:{name}"
            ),
            name: name.to_owned(),
            state_machine_arn: format!(
                "arn:aws:states:us-east-1:000000000000:stateMachine:{machine}"
            ),
            start_time: now_rfc3339(),
            redrive_count: 0,
        }
    }

    /// The child execution a distributed Map starts for item `index` (its ARN names the
    /// parent's state machine and the Map state, as AWS's Map Run children do).
    pub fn child(&self, map_path: &str, index: usize) -> ExecutionInfo {
        let machine = self
            .state_machine_arn
            .rsplit(':')
            .next()
            .unwrap_or("machine");
        let label = map_path.replace('/', "-");
        let name = format!("{}-{index}", self.name);
        ExecutionInfo {
            execution_arn: format!(
                "arn:aws:states:us-east-1:000000000000:execution:{machine}/{label}:{name}"
            ),
            name,
            state_machine_arn: format!("{}/{label}", self.state_machine_arn),
            start_time: now_rfc3339(),
            redrive_count: 0,
        }
    }
}

pub(crate) fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// One history event, named as `GetExecutionHistory` names it (`TaskStateEntered`,
/// `LambdaFunctionFailed`, `MapIterationSucceeded`, `ExecutionRedriven`, ...), one event for
/// each event AWS writes, so that `events.len()` is what counts against the quota.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Event {
    /// 1, 2, ... in history order.
    #[serde(default)]
    pub id: u64,
    /// Milliseconds since the execution (or this redrive) started.
    pub ms: u64,
    /// The AWS event type.
    pub kind: String,
    /// The state's name for `…StateEntered` / `…StateExited` and Task events.
    #[serde(default)]
    pub state: String,
    /// The state's path: `Name`, or `Map/<index>/Name` inside a Map iteration or a Parallel
    /// branch; for iteration events, the Map's path.
    #[serde(default)]
    pub path: String,
    /// The iteration index of `MapIteration…` events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
    /// Input (Entered), output (Exited, Succeeded), error and cause (Failed); a retry or a
    /// catch is noted on the failure it follows (`retry`, `caught`).
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub detail: Value,
}

impl Event {
    /// `TaskStateEntered`, `MapStateEntered`, ...
    pub fn is_entered(&self) -> bool {
        self.kind.ends_with("StateEntered")
    }

    /// `TaskStateExited`, `MapStateExited`, ...
    pub fn is_exited(&self) -> bool {
        self.kind.ends_with("StateExited")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    Succeeded,
    Failed,
    TimedOut,
    Aborted,
}

/// A finished execution: everything `redrive` needs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub execution: ExecutionInfo,
    /// The definition it ran: a redrive runs this one, not the file on disk.
    pub definition: Value,
    pub input: Value,
    pub status: Status,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_time: Option<String>,
    /// The execution stopped at the history quota: it can never be redriven.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub history_limit_reached: bool,
    pub events: Vec<Event>,
    /// Child executions of distributed Maps, by `<map path>/<index>`; each has its own history.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub children: BTreeMap<String, Record>,
    /// For a child execution: the parent's redrive count when this child last ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_attempt: Option<u32>,
}

impl Record {
    /// The names of the states entered, in order (nested states included).
    pub fn states_entered(&self) -> Vec<&str> {
        self.events
            .iter()
            .filter(|e| e.is_entered())
            .map(|e| e.state.as_str())
            .collect()
    }

    /// The same, top level only.
    pub fn states_entered_top_level(&self) -> Vec<&str> {
        self.events
            .iter()
            .filter(|e| e.is_entered() && !e.path.contains('/'))
            .map(|e| e.state.as_str())
            .collect()
    }

    /// The events after the last `ExecutionRedriven` (all of them when never redriven).
    pub fn last_attempt(&self) -> &[Event] {
        let start = self
            .events
            .iter()
            .rposition(|e| e.kind == "ExecutionRedriven")
            .map_or(0, |i| i + 1);
        &self.events[start..]
    }

    /// Task invocations (`LambdaFunctionScheduled` / `TaskScheduled`) of the last attempt, by
    /// state path, children of distributed Maps included.
    pub fn invocations_in_last_attempt(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .last_attempt()
            .iter()
            .filter(|e| matches!(e.kind.as_str(), "LambdaFunctionScheduled" | "TaskScheduled"))
            .map(|e| e.path.clone())
            .collect();
        for (key, child) in &self.children {
            if child.parent_attempt == Some(self.execution.redrive_count) {
                out.extend(
                    child
                        .invocations_in_last_attempt()
                        .into_iter()
                        .map(|p| format!("{key}/{p}")),
                );
            }
        }
        out
    }
}
