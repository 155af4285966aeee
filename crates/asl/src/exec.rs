//! Running a definition: states, input/output processing, Retry/Catch, history, redrive.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::{choice, path, StateError};

/// A Task failure as the function reported it.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskError {
    pub error: String,
    pub cause: String,
}

/// Calls Task resources.
pub trait TaskRunner {
    /// Invokes `resource` with `input`; `state_path` names the state (`Map/3/Ingest` inside a
    /// Map) for logs and fault injection.
    fn invoke(&self, resource: &str, input: &Value, state_path: &str) -> Result<Value, TaskError>;
}

#[derive(Debug, Clone, Serialize, Deserialize)]
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
}

fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// One history event.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Event {
    /// Milliseconds since the execution (or this redrive) started.
    pub ms: u64,
    /// `StateEntered`, `StateExited`, `StateFailed`, `TaskSucceeded`, `TaskFailed`,
    /// `TaskReplayed`, `RetryScheduled`, `Caught`, `ExecutionSucceeded`, `ExecutionFailed`,
    /// `ExecutionRedriven`.
    pub kind: String,
    /// The state's name (empty for execution events).
    #[serde(default)]
    pub state: String,
    /// The state's path: `Name`, or `Map/<index>/Name` inside a Map iteration.
    #[serde(default)]
    pub path: String,
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub detail: Value,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    Succeeded,
    Failed,
}

/// A finished execution: everything `redrive` needs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub execution: ExecutionInfo,
    pub definition: Value,
    pub input: Value,
    pub status: Status,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
    pub events: Vec<Event>,
}

impl Record {
    /// The names of the states entered, in order (nested states included).
    pub fn states_entered(&self) -> Vec<&str> {
        self.events
            .iter()
            .filter(|e| e.kind == "StateEntered")
            .map(|e| e.state.as_str())
            .collect()
    }

    /// The same, top level only.
    pub fn states_entered_top_level(&self) -> Vec<&str> {
        self.events
            .iter()
            .filter(|e| e.kind == "StateEntered" && !e.path.contains('/'))
            .map(|e| e.state.as_str())
            .collect()
    }
}

pub struct Options<'a> {
    /// Multiplies Wait and Retry delays: 1.0 waits for real, 0.0 never sleeps.
    pub time_scale: f64,
    /// Sees every event as it happens (the CLI prints them).
    pub observer: Option<&'a dyn Fn(&Event)>,
}

impl Default for Options<'_> {
    fn default() -> Self {
        Options {
            time_scale: 0.0,
            observer: None,
        }
    }
}

/// Runs `definition` on `input`.
pub fn run<R: TaskRunner>(
    definition: &Value,
    input: Value,
    info: ExecutionInfo,
    runner: &R,
    opts: &Options,
) -> Record {
    execute(
        definition,
        input,
        info,
        runner,
        opts,
        HashMap::new(),
        Vec::new(),
    )
}

/// Resumes a failed execution: the same execution id and input; Tasks that succeeded keep
/// their results (recorded by state path and not re-run); everything that failed or never ran
/// runs now. The new events are appended to the old history.
pub fn redrive<R: TaskRunner>(
    previous: &Record,
    runner: &R,
    opts: &Options,
) -> Result<Record, StateError> {
    if previous.status != Status::Failed {
        return Err(StateError::new(
            "ExecutionNotRedrivable",
            format!(
                "{} ended {:?}: only failed executions can be redriven",
                previous.execution.name, previous.status
            ),
        ));
    }
    let mut memo = HashMap::new();
    for e in &previous.events {
        if matches!(e.kind.as_str(), "TaskSucceeded" | "TaskReplayed") {
            memo.insert(
                e.path.clone(),
                e.detail.get("output").cloned().unwrap_or(Value::Null),
            );
        }
    }
    let mut info = previous.execution.clone();
    info.redrive_count += 1;
    let mut events = previous.events.clone();
    events.push(Event {
        ms: 0,
        kind: "ExecutionRedriven".into(),
        state: String::new(),
        path: String::new(),
        detail: json!({"redrive_count": info.redrive_count}),
    });
    Ok(execute(
        &previous.definition,
        previous.input.clone(),
        info,
        runner,
        opts,
        memo,
        events,
    ))
}

fn execute<R: TaskRunner>(
    definition: &Value,
    input: Value,
    info: ExecutionInfo,
    runner: &R,
    opts: &Options,
    memo: HashMap<String, Value>,
    events: Vec<Event>,
) -> Record {
    let mut ex = Exec {
        runner,
        opts,
        started: Instant::now(),
        events,
        memo,
        context: json!({
            "Execution": {
                "Id": info.execution_arn,
                "Name": info.name,
                "Input": input,
                "StartTime": info.start_time,
                "RoleArn": "arn:aws:iam::000000000000:role/sluice-local",
                "RedriveCount": info.redrive_count,
            },
            "StateMachine": {"Id": info.state_machine_arn, "Name": info.state_machine_arn.rsplit(':').next().unwrap_or("")},
        }),
    };
    let result = ex.run_machine(definition, input.clone(), "", None);
    let (status, output, error, cause) = match result {
        Ok(out) => {
            ex.emit("ExecutionSucceeded", "", "", json!({"output": out}));
            (Status::Succeeded, Some(out), None, None)
        }
        Err(e) => {
            ex.emit(
                "ExecutionFailed",
                "",
                "",
                json!({"error": e.error, "cause": e.cause}),
            );
            (Status::Failed, None, Some(e.error), Some(e.cause))
        }
    };
    Record {
        execution: info,
        definition: definition.clone(),
        input,
        status,
        output,
        error,
        cause,
        events: ex.events,
    }
}

struct Exec<'a, R> {
    runner: &'a R,
    opts: &'a Options<'a>,
    started: Instant,
    events: Vec<Event>,
    memo: HashMap<String, Value>,
    context: Value,
}

/// The largest input or output a state may pass on: 256 KiB, as on AWS.
pub const MAX_PAYLOAD: usize = 256 * 1024;

enum Flow {
    Next(String, Value),
    End(Value),
}

fn field<'v>(state: &'v Value, name: &str) -> Option<&'v Value> {
    state.get(name)
}

fn str_field<'v>(state: &'v Value, name: &str) -> Option<&'v str> {
    state.get(name).and_then(Value::as_str)
}

fn error_matches(names: &Value, error: &str) -> bool {
    // States.Runtime and States.DataLimitExceeded are not retried or caught by States.ALL.
    let terminal = matches!(error, "States.Runtime" | "States.DataLimitExceeded");
    names.as_array().is_some_and(|a| {
        a.iter()
            .filter_map(Value::as_str)
            .any(|n| n == error || (n == "States.ALL" && !terminal))
    })
}

impl<R: TaskRunner> Exec<'_, R> {
    fn emit(&mut self, kind: &str, state: &str, path: &str, detail: Value) {
        let e = Event {
            ms: self.started.elapsed().as_millis() as u64,
            kind: kind.to_owned(),
            state: state.to_owned(),
            path: path.to_owned(),
            detail,
        };
        if let Some(observe) = self.opts.observer {
            observe(&e);
        }
        self.events.push(e);
    }

    fn sleep(&self, seconds: f64) {
        let s = seconds * self.opts.time_scale;
        if s > 0.0 && s.is_finite() {
            std::thread::sleep(Duration::from_secs_f64(s.min(3600.0)));
        }
    }

    fn ctx(
        &self,
        state: &str,
        entered: &str,
        retry: Option<u32>,
        item: Option<&(usize, Value)>,
    ) -> Value {
        let mut c = self.context.clone();
        c["State"] = match retry {
            Some(r) => json!({"Name": state, "EnteredTime": entered, "RetryCount": r}),
            None => json!({"Name": state, "EnteredTime": entered}),
        };
        if let Some((i, v)) = item {
            c["Map"] = json!({"Item": {"Index": i, "Value": v}});
        }
        c
    }

    /// Runs a machine or branch (`StartAt` + `States`).
    fn run_machine(
        &mut self,
        m: &Value,
        input: Value,
        prefix: &str,
        item: Option<(usize, Value)>,
    ) -> Result<Value, StateError> {
        if str_field(m, "QueryLanguage") == Some("JSONata") {
            return Err(StateError::runtime(
                "JSONata definitions are not supported by the local runner".to_owned(),
            ));
        }
        let states = field(m, "States")
            .and_then(Value::as_object)
            .ok_or_else(|| StateError::runtime("the definition has no States".to_owned()))?;
        let mut name = str_field(m, "StartAt")
            .ok_or_else(|| StateError::runtime("the definition has no StartAt".to_owned()))?
            .to_owned();
        let mut input = input;
        loop {
            let state = states
                .get(&name)
                .ok_or_else(|| StateError::runtime(format!("no state named '{name}'")))?;
            let path = format!("{prefix}{name}");
            self.emit("StateEntered", &name, &path, json!({"input": input}));
            let entered = now_rfc3339();
            let started = Instant::now();
            let result = self.run_state(&name, &path, state, input, &entered, item.as_ref());
            let ms = started.elapsed().as_millis() as u64;
            let result = result.and_then(|flow| {
                let out = match &flow {
                    Flow::Next(_, o) | Flow::End(o) => o,
                };
                let size = serde_json::to_string(out).map(|s| s.len()).unwrap_or(0);
                if size > MAX_PAYLOAD {
                    return Err(StateError::new(
                        "States.DataLimitExceeded",
                        format!("The state/task '{name}' returned a result with a size exceeding the maximum number of bytes service limit."),
                    ));
                }
                Ok(flow)
            });
            match result {
                Ok(Flow::Next(next, out)) => {
                    self.emit(
                        "StateExited",
                        &name,
                        &path,
                        json!({"output": out, "duration_ms": ms}),
                    );
                    name = next;
                    input = out;
                }
                Ok(Flow::End(out)) => {
                    self.emit(
                        "StateExited",
                        &name,
                        &path,
                        json!({"output": out, "duration_ms": ms}),
                    );
                    return Ok(out);
                }
                Err(e) => {
                    self.emit(
                        "StateFailed",
                        &name,
                        &path,
                        json!({"error": e.error, "cause": e.cause, "duration_ms": ms}),
                    );
                    return Err(e);
                }
            }
        }
    }

    fn next_or_end(&self, name: &str, state: &Value, out: Value) -> Result<Flow, StateError> {
        if state.get("End") == Some(&Value::Bool(true)) {
            return Ok(Flow::End(out));
        }
        match str_field(state, "Next") {
            Some(n) => Ok(Flow::Next(n.to_owned(), out)),
            None => Err(StateError::runtime(format!(
                "state '{name}' has neither Next nor End"
            ))),
        }
    }

    fn input_path(&self, state: &Value, raw: &Value, ctx: &Value) -> Result<Value, StateError> {
        match state.get("InputPath") {
            None => Ok(raw.clone()),
            Some(Value::Null) => Ok(json!({})),
            Some(Value::String(p)) => path::eval(p, raw, ctx),
            Some(_) => Err(StateError::runtime(
                "InputPath must be a string or null".to_owned(),
            )),
        }
    }

    fn output_path(&self, state: &Value, v: Value, ctx: &Value) -> Result<Value, StateError> {
        match state.get("OutputPath") {
            None => Ok(v),
            Some(Value::Null) => Ok(json!({})),
            Some(Value::String(p)) => path::eval(p, &v, ctx),
            Some(_) => Err(StateError::runtime(
                "OutputPath must be a string or null".to_owned(),
            )),
        }
    }

    fn result_path(&self, state: &Value, raw: Value, result: Value) -> Result<Value, StateError> {
        match state.get("ResultPath") {
            None => Ok(result),
            Some(Value::Null) => Ok(raw),
            Some(Value::String(p)) => path::put(raw, p, result),
            Some(_) => Err(StateError::runtime(
                "ResultPath must be a string or null".to_owned(),
            )),
        }
    }

    fn run_state(
        &mut self,
        name: &str,
        path: &str,
        state: &Value,
        raw: Value,
        entered: &str,
        item: Option<&(usize, Value)>,
    ) -> Result<Flow, StateError> {
        if state.get("Assign").is_some() {
            return Err(StateError::runtime(format!(
                "state '{name}': Assign is not supported by the local runner"
            )));
        }
        let ty = str_field(state, "Type").unwrap_or("");
        let ctx = self.ctx(name, entered, None, item);
        match ty {
            "Pass" => {
                let input = self.input_path(state, &raw, &ctx)?;
                let input = match state.get("Parameters") {
                    Some(t) => path::template(t, &input, &ctx)?,
                    None => input,
                };
                let result = state.get("Result").cloned().unwrap_or(input);
                let out = self.result_path(state, raw, result)?;
                let out = self.output_path(state, out, &ctx)?;
                self.next_or_end(name, state, out)
            }
            "Succeed" => {
                let input = self.input_path(state, &raw, &ctx)?;
                Ok(Flow::End(self.output_path(state, input, &ctx)?))
            }
            "Fail" => {
                let error = match (str_field(state, "ErrorPath"), str_field(state, "Error")) {
                    (Some(p), _) => text_of(path::expression(p, &raw, &ctx)?),
                    (None, Some(e)) => e.to_owned(),
                    (None, None) => String::new(),
                };
                let cause = match (str_field(state, "CausePath"), str_field(state, "Cause")) {
                    (Some(p), _) => text_of(path::expression(p, &raw, &ctx)?),
                    (None, Some(c)) => c.to_owned(),
                    (None, None) => String::new(),
                };
                Err(StateError { error, cause })
            }
            "Choice" => {
                let input = self.input_path(state, &raw, &ctx)?;
                let rules = state
                    .get("Choices")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                for rule in &rules {
                    if choice::matches(rule, &input, &ctx)? {
                        let next = str_field(rule, "Next").ok_or_else(|| {
                            StateError::runtime(format!("a rule of '{name}' has no Next"))
                        })?;
                        let out = self.output_path(state, input, &ctx)?;
                        return Ok(Flow::Next(next.to_owned(), out));
                    }
                }
                match str_field(state, "Default") {
                    Some(d) => {
                        let out = self.output_path(state, input, &ctx)?;
                        Ok(Flow::Next(d.to_owned(), out))
                    }
                    None => Err(StateError::new(
                        "States.NoChoiceMatched",
                        format!("No Matches! (state '{name}')"),
                    )),
                }
            }
            "Wait" => {
                let input = self.input_path(state, &raw, &ctx)?;
                let seconds = if let Some(s) = state.get("Seconds").and_then(Value::as_f64) {
                    s
                } else if let Some(p) = str_field(state, "SecondsPath") {
                    let v = path::eval(p, &input, &ctx)?;
                    match v.as_f64() {
                        Some(s) if s >= 0.0 && s.fract() == 0.0 => s,
                        _ => {
                            return Err(StateError::runtime(format!(
                                "The SecondsPath parameter does not reference a valid integer value: {v}"
                            )))
                        }
                    }
                } else {
                    let stamp = match (
                        str_field(state, "Timestamp"),
                        str_field(state, "TimestampPath"),
                    ) {
                        (Some(t), _) => Value::String(t.to_owned()),
                        (None, Some(p)) => path::eval(p, &input, &ctx)?,
                        _ => {
                            return Err(StateError::runtime(format!(
                                "Wait state '{name}' needs a duration"
                            )))
                        }
                    };
                    let at = stamp
                        .as_str()
                        .filter(|s| s.contains('T'))
                        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
                        .ok_or_else(|| StateError::runtime(format!("invalid timestamp {stamp}")))?;
                    (at.timestamp_millis() - chrono::Utc::now().timestamp_millis()).max(0) as f64
                        / 1000.0
                };
                self.sleep(seconds);
                let out = self.output_path(state, input, &ctx)?;
                self.next_or_end(name, state, out)
            }
            "Task" | "Map" | "Parallel" => {
                self.run_with_retry(name, path, ty, state, raw, entered, item)
            }
            other => Err(StateError::runtime(format!(
                "state '{name}' has unsupported Type '{other}'"
            ))),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn run_with_retry(
        &mut self,
        name: &str,
        path: &str,
        ty: &str,
        state: &Value,
        raw: Value,
        entered: &str,
        item: Option<&(usize, Value)>,
    ) -> Result<Flow, StateError> {
        let retriers = state
            .get("Retry")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let mut counts = vec![0u32; retriers.len()];
        let mut retry_count = 0;
        loop {
            let ctx = self.ctx(name, entered, Some(retry_count), item);
            let attempt = self.run_body(name, path, ty, state, &raw, &ctx);
            let err = match attempt {
                Ok(result) => {
                    // Output processing errors are States.Runtime: never retried or caught.
                    let result = match state.get("ResultSelector") {
                        Some(t) => path::template(t, &result, &ctx)?,
                        None => result,
                    };
                    let out = self.result_path(state, raw, result)?;
                    let out = self.output_path(state, out, &ctx)?;
                    return self.next_or_end(name, state, out);
                }
                Err(e) => e,
            };
            if let Some(i) = retriers
                .iter()
                .position(|r| error_matches(&r["ErrorEquals"], &err.error))
            {
                let r = &retriers[i];
                let max = r.get("MaxAttempts").and_then(Value::as_u64).unwrap_or(3) as u32;
                if counts[i] < max {
                    let interval = r
                        .get("IntervalSeconds")
                        .and_then(Value::as_f64)
                        .unwrap_or(1.0);
                    let backoff = r.get("BackoffRate").and_then(Value::as_f64).unwrap_or(2.0);
                    let mut delay = interval * backoff.powi(counts[i] as i32);
                    if let Some(cap) = r.get("MaxDelaySeconds").and_then(Value::as_f64) {
                        delay = delay.min(cap);
                    }
                    if str_field(r, "JitterStrategy") == Some("FULL") {
                        // Deterministic jitter: a fraction from the path and attempt.
                        let h = path.bytes().fold(counts[i] as u64 + 7, |h, b| {
                            h.wrapping_mul(31).wrapping_add(b as u64)
                        });
                        delay *= (h % 1000) as f64 / 1000.0;
                    }
                    counts[i] += 1;
                    retry_count += 1;
                    self.emit(
                        "RetryScheduled",
                        name,
                        path,
                        json!({"error": err.error, "cause": err.cause, "attempt": retry_count, "delay_seconds": delay}),
                    );
                    self.sleep(delay);
                    continue;
                }
            }
            let catchers = state
                .get("Catch")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            if let Some(c) = catchers
                .iter()
                .find(|c| error_matches(&c["ErrorEquals"], &err.error))
            {
                let next = str_field(c, "Next").ok_or_else(|| {
                    StateError::runtime(format!("a Catch of '{name}' has no Next"))
                })?;
                let error_output = json!({"Error": err.error, "Cause": err.cause});
                let out = match c.get("ResultPath") {
                    None => error_output,
                    Some(Value::Null) => raw,
                    Some(Value::String(p)) => path::put(raw, p, error_output)?,
                    Some(_) => {
                        return Err(StateError::runtime(
                            "Catch ResultPath must be a string or null".to_owned(),
                        ))
                    }
                };
                self.emit(
                    "Caught",
                    name,
                    path,
                    json!({"error": err.error, "cause": err.cause, "next": next}),
                );
                return Ok(Flow::Next(next.to_owned(), out));
            }
            return Err(err);
        }
    }

    fn run_body(
        &mut self,
        name: &str,
        path: &str,
        ty: &str,
        state: &Value,
        raw: &Value,
        ctx: &Value,
    ) -> Result<Value, StateError> {
        let input = self.input_path(state, raw, ctx)?;
        match ty {
            "Task" => {
                let input = match state.get("Parameters") {
                    Some(t) => path::template(t, &input, ctx)?,
                    None => input,
                };
                let resource = str_field(state, "Resource")
                    .ok_or_else(|| StateError::runtime(format!("Task '{name}' has no Resource")))?
                    .to_owned();
                if let Some(out) = self.memo.get(path).cloned() {
                    self.emit(
                        "TaskReplayed",
                        name,
                        path,
                        json!({"resource": resource, "output": out}),
                    );
                    return Ok(out);
                }
                match self.runner.invoke(&resource, &input, path) {
                    Ok(out) => {
                        self.emit(
                            "TaskSucceeded",
                            name,
                            path,
                            json!({"resource": resource, "output": out}),
                        );
                        Ok(out)
                    }
                    Err(e) => {
                        self.emit(
                            "TaskFailed",
                            name,
                            path,
                            json!({"resource": resource, "error": e.error, "cause": e.cause}),
                        );
                        Err(StateError::new(e.error, e.cause))
                    }
                }
            }
            "Map" => {
                let items = match str_field(state, "ItemsPath") {
                    Some(p) => path::eval(p, &input, ctx)?,
                    None => input.clone(),
                };
                let items = items.as_array().cloned().ok_or_else(|| {
                    StateError::runtime(format!(
                        "Map '{name}': the items are not an array: {items}"
                    ))
                })?;
                let processor = state
                    .get("ItemProcessor")
                    .or_else(|| state.get("Iterator"))
                    .ok_or_else(|| {
                        StateError::runtime(format!("Map '{name}' has no ItemProcessor"))
                    })?
                    .clone();
                if processor
                    .pointer("/ProcessorConfig/Mode")
                    .and_then(Value::as_str)
                    == Some("DISTRIBUTED")
                {
                    return Err(StateError::runtime(
                        "distributed Map is not supported by the local runner".to_owned(),
                    ));
                }
                let selector = state
                    .get("ItemSelector")
                    .or_else(|| state.get("Parameters"))
                    .cloned();
                let mut results = Vec::with_capacity(items.len());
                for (i, it) in items.into_iter().enumerate() {
                    let item = (i, it.clone());
                    let ictx = {
                        let mut c = ctx.clone();
                        c["Map"] = json!({"Item": {"Index": i, "Value": it}});
                        c
                    };
                    let item_input = match &selector {
                        Some(t) => path::template(t, &input, &ictx)?,
                        None => it,
                    };
                    let prefix = format!("{path}/{i}/");
                    results.push(self.run_machine(&processor, item_input, &prefix, Some(item))?);
                }
                Ok(Value::Array(results))
            }
            "Parallel" => {
                let branches = state
                    .get("Branches")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                let input = match state.get("Parameters") {
                    Some(t) => path::template(t, &input, ctx)?,
                    None => input,
                };
                let mut out = Vec::new();
                for (i, b) in branches.iter().enumerate() {
                    out.push(self.run_machine(b, input.clone(), &format!("{path}/{i}/"), None)?);
                }
                Ok(Value::Array(out))
            }
            _ => Err(StateError::runtime(format!("unexpected state type {ty}"))),
        }
    }
}

fn text_of(v: Value) -> String {
    match v {
        Value::String(s) => s,
        other => other.to_string(),
    }
}
