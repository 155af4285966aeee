//! Running a definition: states, input/output processing, Retry/Catch, the history AWS would
//! write (event by event, counted against the quota), distributed Maps as child executions,
//! and redrive as AWS does it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::plan::Plan;
use crate::record::{
    now_rfc3339, Event, ExecutionInfo, Record, Status, HISTORY_LIMIT, REDRIVE_DAYS,
    REDRIVE_EVENT_LIMIT,
};
use crate::{choice, path, StateError};

/// A Task failure as the function reported it.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskError {
    pub error: String,
    pub cause: String,
}

/// Calls Task resources, and reads the items of a distributed Map.
pub trait TaskRunner {
    /// Invokes `resource` with `input`; `state_path` names the state (`Map/3/Ingest` inside a
    /// Map) for logs and fault injection.
    fn invoke(&self, resource: &str, input: &Value, state_path: &str) -> Result<Value, TaskError>;

    /// Reads a distributed Map's items: `reader` is its `ItemReader` with `Parameters`
    /// already evaluated (`{"Resource": "arn:aws:states:::s3:getObject", "ReaderConfig":
    /// {...}, "Parameters": {"Bucket": .., "Key": ..}}`). The answer is the JSON array of items.
    fn read_items(&self, reader: &Value) -> Result<Value, TaskError> {
        Err(TaskError {
            error: "States.ItemReaderFailed".into(),
            cause: format!("this runner cannot read items from {reader}"),
        })
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

/// The largest input or output a state may pass on: 256 KiB, as on AWS.
pub const MAX_PAYLOAD: usize = 256 * 1024;

/// The error an execution fails with when its history reaches [`HISTORY_LIMIT`] events.
pub const HISTORY_LIMIT_ERROR: &str = "States.Runtime";

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
        None,
        Vec::new(),
        BTreeMap::new(),
    )
}

/// Why `record` cannot be redriven, if it cannot (rule R1): only FAILED, TIMED_OUT or ABORTED
/// executions, within 14 days, with fewer than 24,999 events and not stopped by the quota.
pub fn not_redrivable(record: &Record) -> Option<String> {
    let name = &record.execution.name;
    if record.status == Status::Succeeded {
        return Some(format!(
            "{name} SUCCEEDED: only FAILED, TIMED_OUT or ABORTED executions can be redriven"
        ));
    }
    if record.history_limit_reached {
        return Some(format!(
            "{name} reached the history quota of {HISTORY_LIMIT} events: NOT_REDRIVABLE; start a new execution"
        ));
    }
    if record.events.len() >= REDRIVE_EVENT_LIMIT {
        return Some(format!(
            "{name} has {} history events (redrive needs fewer than {REDRIVE_EVENT_LIMIT}): NOT_REDRIVABLE",
            record.events.len()
        ));
    }
    let stopped = record
        .stop_time
        .as_deref()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
    if let Some(stopped) = stopped {
        let age = chrono::Utc::now().signed_duration_since(stopped);
        if age > chrono::Duration::days(REDRIVE_DAYS) {
            return Some(format!(
                "{name} stopped {} days ago: redrive is possible for {REDRIVE_DAYS} days",
                age.num_days()
            ));
        }
    }
    None
}

/// The states a redrive of `record` resumes, as (path, state name), outermost first.
pub fn restart_points(record: &Record) -> Vec<(String, String)> {
    Plan::of(record).restart_points()
}

/// Redrives a failed execution as the console's Redrive does (`../shared/REDRIVE.md`):
/// the same execution, definition and input; the states entered and never exited run again
/// with their recorded input; finished iterations and branches of a resumed Map or Parallel
/// keep their results; everything after the restart point runs for real. The new events are
/// appended to the history after an `ExecutionRedriven` event.
pub fn redrive<R: TaskRunner>(
    previous: &Record,
    runner: &R,
    opts: &Options,
) -> Result<Record, StateError> {
    if let Some(why) = not_redrivable(previous) {
        return Err(StateError::new("ExecutionNotRedrivable", why));
    }
    let plan = Plan::of(previous);
    if !plan.open.contains_key("") {
        return Err(StateError::new(
            "ExecutionNotRedrivable",
            format!(
                "{}: no state was left unfinished, nothing to resume",
                previous.execution.name
            ),
        ));
    }
    Ok(resume(previous, plan, runner, opts))
}

fn resume<R: TaskRunner>(previous: &Record, plan: Plan, runner: &R, opts: &Options) -> Record {
    let mut info = previous.execution.clone();
    info.redrive_count += 1;
    let mut events = previous.events.clone();
    let children = previous.children.clone();
    push_event(
        &mut events,
        opts,
        Event {
            id: 0,
            ms: 0,
            kind: "ExecutionRedriven".into(),
            state: String::new(),
            path: String::new(),
            index: None,
            detail: json!({"redriveCount": info.redrive_count}),
        },
    );
    execute(
        &previous.definition,
        previous.input.clone(),
        info,
        runner,
        opts,
        Some(plan),
        events,
        children,
    )
}

fn push_event(events: &mut Vec<Event>, opts: &Options, mut e: Event) {
    e.id = events.len() as u64 + 1;
    if let Some(observe) = opts.observer {
        observe(&e);
    }
    events.push(e);
}

#[allow(clippy::too_many_arguments)]
fn execute<R: TaskRunner>(
    definition: &Value,
    input: Value,
    info: ExecutionInfo,
    runner: &R,
    opts: &Options,
    plan: Option<Plan>,
    events: Vec<Event>,
    children: BTreeMap<String, Record>,
) -> Record {
    let context = json!({
        "Execution": {
            "Id": info.execution_arn,
            "Name": info.name,
            "Input": input,
            "StartTime": info.start_time,
            "RoleArn": "arn:aws:iam::000000000000:role/sluice-local",
            "RedriveCount": info.redrive_count,
        },
        "StateMachine": {"Id": info.state_machine_arn, "Name": info.state_machine_arn.rsplit(':').next().unwrap_or("")},
    });
    let mut ex = Exec {
        runner,
        opts,
        started: Instant::now(),
        events,
        context,
        resuming: plan.is_some(),
        plan: plan.unwrap_or_default(),
        limit_hit: false,
        children,
        info: info.clone(),
    };
    if !ex.resuming {
        ex.emit("ExecutionStarted", "", "", None, json!({"input": input}));
    }
    let result = ex.run_machine(definition, input.clone(), "", None, ex.resuming);
    let (status, output, error, cause) = match result {
        Ok(out) => {
            ex.emit("ExecutionSucceeded", "", "", None, json!({"output": out}));
            (Status::Succeeded, Some(out), None, None)
        }
        Err(e) => {
            ex.final_event(
                "ExecutionFailed",
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
        stop_time: Some(now_rfc3339()),
        history_limit_reached: ex.limit_hit,
        events: ex.events,
        children: ex.children,
        parent_attempt: None,
    }
}

struct Exec<'a, R> {
    runner: &'a R,
    opts: &'a Options<'a>,
    started: Instant,
    events: Vec<Event>,
    context: Value,
    /// This run is a redrive: the top-level scope resumes from the plan.
    resuming: bool,
    plan: Plan,
    /// The history reached the quota: nothing more is written, the execution fails.
    limit_hit: bool,
    children: BTreeMap<String, Record>,
    info: ExecutionInfo,
}

enum Flow {
    Next(String, Value),
    End(Value),
    /// A Catch took the error: exited (the state is finished), going to `next`.
    Caught {
        next: String,
        out: Value,
        error: String,
    },
}

fn field<'v>(state: &'v Value, name: &str) -> Option<&'v Value> {
    state.get(name)
}

fn str_field<'v>(state: &'v Value, name: &str) -> Option<&'v str> {
    state.get(name).and_then(Value::as_str)
}

fn limit_error() -> StateError {
    StateError::new(
        HISTORY_LIMIT_ERROR,
        format!("The execution reached the maximum number of history events ({HISTORY_LIMIT})."),
    )
}

/// `arn:aws:states:::…` integrations write `Task…` events; Lambda functions named by ARN
/// (or by a `${…_arn}` placeholder) write `LambdaFunction…` events.
fn task_event_prefix(resource: &str) -> &'static str {
    if resource.starts_with("arn:aws:states:::") {
        "Task"
    } else {
        "LambdaFunction"
    }
}

impl<R: TaskRunner> Exec<'_, R> {
    fn emit(&mut self, kind: &str, state: &str, path: &str, index: Option<usize>, detail: Value) {
        if self.limit_hit {
            return;
        }
        // Keep the last place for the ExecutionFailed event the quota causes.
        if self.events.len() + 1 >= HISTORY_LIMIT {
            self.limit_hit = true;
            return;
        }
        let e = Event {
            id: 0,
            ms: self.started.elapsed().as_millis() as u64,
            kind: kind.to_owned(),
            state: state.to_owned(),
            path: path.to_owned(),
            index,
            detail,
        };
        push_event(&mut self.events, self.opts, e);
    }

    fn final_event(&mut self, kind: &str, detail: Value) {
        let e = Event {
            id: 0,
            ms: self.started.elapsed().as_millis() as u64,
            kind: kind.to_owned(),
            state: String::new(),
            path: String::new(),
            index: None,
            detail,
        };
        push_event(&mut self.events, self.opts, e);
    }

    fn error_matches(&self, names: &Value, error: &str) -> bool {
        if self.limit_hit {
            return false;
        }
        // States.Runtime and States.DataLimitExceeded are not retried or caught by States.ALL.
        let terminal = matches!(error, "States.Runtime" | "States.DataLimitExceeded");
        names.as_array().is_some_and(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .any(|n| n == error || (n == "States.ALL" && !terminal))
        })
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

    /// Runs a machine, branch or iteration (`StartAt` + `States`); with `resume`, starts at
    /// the scope's unfinished state with its recorded input when the plan has one.
    fn run_machine(
        &mut self,
        m: &Value,
        input: Value,
        prefix: &str,
        item: Option<(usize, Value)>,
        resume: bool,
    ) -> Result<Value, StateError> {
        if str_field(m, "QueryLanguage") == Some("JSONata") {
            return Err(StateError::runtime(
                "JSONata definitions are not supported by the local runner".to_owned(),
            ));
        }
        let states = field(m, "States")
            .and_then(Value::as_object)
            .ok_or_else(|| StateError::runtime("the definition has no States".to_owned()))?;
        let resumed = if resume {
            self.plan.open.remove(prefix)
        } else {
            None
        };
        let (mut name, mut input, mut resuming) = match resumed {
            Some((name, input)) => (name, input, true),
            None => (
                str_field(m, "StartAt")
                    .ok_or_else(|| StateError::runtime("the definition has no StartAt".to_owned()))?
                    .to_owned(),
                input,
                false,
            ),
        };
        loop {
            if self.limit_hit {
                return Err(limit_error());
            }
            let state = states
                .get(&name)
                .ok_or_else(|| StateError::runtime(format!("no state named '{name}'")))?;
            let ty = str_field(state, "Type").unwrap_or("").to_owned();
            let path = format!("{prefix}{name}");
            self.emit(
                &format!("{ty}StateEntered"),
                &name,
                &path,
                None,
                json!({"input": input}),
            );
            let entered = now_rfc3339();
            let started = Instant::now();
            let result = self.run_state(
                &name,
                &path,
                state,
                input,
                &entered,
                item.as_ref(),
                resuming,
            );
            resuming = false;
            if self.limit_hit {
                return Err(limit_error());
            }
            let ms = started.elapsed().as_millis() as u64;
            let result = result.and_then(|flow| {
                let out = match &flow {
                    Flow::Next(_, o) | Flow::End(o) | Flow::Caught { out: o, .. } => o,
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
            let exited = format!("{ty}StateExited");
            match result? {
                Flow::Next(next, out) => {
                    self.emit(
                        &exited,
                        &name,
                        &path,
                        None,
                        json!({"output": out, "duration_ms": ms}),
                    );
                    name = next;
                    input = out;
                }
                Flow::Caught { next, out, error } => {
                    self.emit(
                        &exited,
                        &name,
                        &path,
                        None,
                        json!({"output": out, "duration_ms": ms, "caught": {"error": error, "next": next}}),
                    );
                    name = next;
                    input = out;
                }
                Flow::End(out) => {
                    self.emit(
                        &exited,
                        &name,
                        &path,
                        None,
                        json!({"output": out, "duration_ms": ms}),
                    );
                    return Ok(out);
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

    #[allow(clippy::too_many_arguments)]
    fn run_state(
        &mut self,
        name: &str,
        path: &str,
        state: &Value,
        raw: Value,
        entered: &str,
        item: Option<&(usize, Value)>,
        resuming: bool,
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
                self.run_with_retry(name, path, ty, state, raw, entered, item, resuming)
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
        resuming: bool,
    ) -> Result<Flow, StateError> {
        let retriers = state
            .get("Retry")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let mut counts = vec![0u32; retriers.len()];
        let mut retry_count = 0;
        // Only the first attempt of a resumed Map or Parallel keeps finished iterations.
        let mut resuming = resuming;
        loop {
            let ctx = self.ctx(name, entered, Some(retry_count), item);
            let attempt = self.run_body(name, path, ty, state, &raw, &ctx, resuming);
            resuming = false;
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
            if self.limit_hit {
                return Err(err);
            }
            if let Some(i) = retriers
                .iter()
                .position(|r| self.error_matches(&r["ErrorEquals"], &err.error))
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
                    self.note_on_last_failure(
                        json!({"retry": {"attempt": retry_count, "delay_seconds": delay}}),
                    );
                    self.sleep(delay);
                    continue;
                }
            }
            if ty != "Task" {
                self.emit(
                    &format!("{ty}StateFailed"),
                    "",
                    path,
                    None,
                    json!({"error": err.error, "cause": err.cause}),
                );
            }
            let catchers = state
                .get("Catch")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            if let Some(c) = catchers
                .iter()
                .find(|c| self.error_matches(&c["ErrorEquals"], &err.error))
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
                return Ok(Flow::Caught {
                    next: next.to_owned(),
                    out,
                    error: err.error,
                });
            }
            return Err(err);
        }
    }

    /// Local annotations (a retry) ride on the failure event they follow: AWS writes no
    /// event of its own for them, and the count must stay AWS's.
    fn note_on_last_failure(&mut self, note: Value) {
        if let (Some(e), Value::Object(note)) = (self.events.last_mut(), note) {
            if let Value::Object(d) = &mut e.detail {
                d.extend(note);
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn run_body(
        &mut self,
        name: &str,
        path: &str,
        ty: &str,
        state: &Value,
        raw: &Value,
        ctx: &Value,
        resuming: bool,
    ) -> Result<Value, StateError> {
        let input = self.input_path(state, raw, ctx)?;
        match ty {
            "Task" => self.run_task(name, path, state, input, ctx),
            "Map" => {
                let processor = state
                    .get("ItemProcessor")
                    .or_else(|| state.get("Iterator"))
                    .ok_or_else(|| {
                        StateError::runtime(format!("Map '{name}' has no ItemProcessor"))
                    })?
                    .clone();
                let distributed = processor
                    .pointer("/ProcessorConfig/Mode")
                    .and_then(Value::as_str)
                    == Some("DISTRIBUTED");
                let items = if distributed {
                    self.distributed_items(name, state, &input, ctx)?
                } else {
                    let items = match str_field(state, "ItemsPath") {
                        Some(p) => path::eval(p, &input, ctx)?,
                        None => input.clone(),
                    };
                    items.as_array().cloned().ok_or_else(|| {
                        StateError::runtime(format!(
                            "Map '{name}': the items are not an array: {items}"
                        ))
                    })?
                };
                if let Some(p) = str_field(state, "MaxConcurrencyPath") {
                    // Sets parallelism on AWS; here it must only be valid.
                    let v = path::eval(p, &input, ctx)?;
                    if v.as_u64().is_none() {
                        return Err(StateError::runtime(format!(
                            "Map '{name}': MaxConcurrencyPath {p} gave {v}, not a non-negative integer"
                        )));
                    }
                }
                let resuming = resuming && !self.plan.whole.contains(path);
                self.emit(
                    "MapStateStarted",
                    "",
                    path,
                    None,
                    json!({"length": items.len()}),
                );
                let selector = state
                    .get("ItemSelector")
                    .or_else(|| state.get("Parameters"))
                    .cloned();
                let mut inputs = Vec::with_capacity(items.len());
                for (i, it) in items.into_iter().enumerate() {
                    let mut ictx = ctx.clone();
                    ictx["Map"] = json!({"Item": {"Index": i, "Value": it}});
                    inputs.push((
                        match &selector {
                            Some(t) => path::template(t, &input, &ictx)?,
                            None => it.clone(),
                        },
                        it,
                    ));
                }
                let results = if distributed {
                    self.run_map_run(path, state, &processor, inputs, resuming)?
                } else {
                    self.run_inline_map(path, &processor, inputs, resuming)?
                };
                self.emit("MapStateSucceeded", "", path, None, Value::Null);
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
                let resuming = resuming && !self.plan.whole.contains(path);
                self.emit("ParallelStateStarted", "", path, None, Value::Null);
                let mut out = Vec::new();
                for (i, b) in branches.iter().enumerate() {
                    let scope = format!("{path}/{i}/");
                    if resuming {
                        if let Some(done) = self.plan.finished.remove(&scope) {
                            out.push(done);
                            continue;
                        }
                    }
                    out.push(self.run_machine(b, input.clone(), &scope, None, resuming)?);
                }
                self.emit("ParallelStateSucceeded", "", path, None, Value::Null);
                Ok(Value::Array(out))
            }
            _ => Err(StateError::runtime(format!("unexpected state type {ty}"))),
        }
    }

    fn run_task(
        &mut self,
        name: &str,
        path: &str,
        state: &Value,
        input: Value,
        ctx: &Value,
    ) -> Result<Value, StateError> {
        let input = match state.get("Parameters") {
            Some(t) => path::template(t, &input, ctx)?,
            None => input,
        };
        let resource = str_field(state, "Resource")
            .ok_or_else(|| StateError::runtime(format!("Task '{name}' has no Resource")))?
            .to_owned();
        let p = task_event_prefix(&resource);
        self.emit(
            &format!("{p}Scheduled"),
            name,
            path,
            None,
            json!({"resource": resource, "input": input}),
        );
        self.emit(&format!("{p}Started"), name, path, None, Value::Null);
        if self.limit_hit {
            return Err(limit_error());
        }
        match self.runner.invoke(&resource, &input, path) {
            Ok(out) => {
                self.emit(
                    &format!("{p}Succeeded"),
                    name,
                    path,
                    None,
                    json!({"output": out}),
                );
                Ok(out)
            }
            Err(e) => {
                self.emit(
                    &format!("{p}Failed"),
                    name,
                    path,
                    None,
                    json!({"error": e.error, "cause": e.cause}),
                );
                Err(StateError::new(e.error, e.cause))
            }
        }
    }

    /// Inline Map: iterations one after the other in index order (MaxConcurrency bounds
    /// parallelism on AWS, it does not change results). The first uncaught failure fails the
    /// Map; later iterations are not started (AWS aborts those in flight). When resumed,
    /// finished iterations keep their results and the others resume at their unfinished state.
    fn run_inline_map(
        &mut self,
        path: &str,
        processor: &Value,
        inputs: Vec<(Value, Value)>,
        resuming: bool,
    ) -> Result<Vec<Value>, StateError> {
        let mut results = Vec::with_capacity(inputs.len());
        for (i, (item_input, value)) in inputs.into_iter().enumerate() {
            let scope = format!("{path}/{i}/");
            if resuming {
                if let Some(done) = self.plan.finished.remove(&scope) {
                    results.push(done);
                    continue;
                }
            }
            self.emit("MapIterationStarted", "", path, Some(i), Value::Null);
            match self.run_machine(processor, item_input, &scope, Some((i, value)), resuming) {
                Ok(out) => {
                    self.emit(
                        "MapIterationSucceeded",
                        "",
                        path,
                        Some(i),
                        json!({"output": out}),
                    );
                    results.push(out);
                }
                Err(e) => {
                    self.emit(
                        "MapIterationFailed",
                        "",
                        path,
                        Some(i),
                        json!({"error": e.error, "cause": e.cause}),
                    );
                    return Err(e);
                }
            }
        }
        Ok(results)
    }

    /// A distributed Map's items: from its `ItemReader` (through the runner) or `ItemsPath`.
    fn distributed_items(
        &mut self,
        name: &str,
        state: &Value,
        input: &Value,
        ctx: &Value,
    ) -> Result<Vec<Value>, StateError> {
        let items = match state.get("ItemReader") {
            Some(reader) => {
                let mut reader = reader.clone();
                if let Some(params) = reader.get("Parameters") {
                    reader["Parameters"] = path::template(params, input, ctx)?;
                }
                self.runner
                    .read_items(&reader)
                    .map_err(|e| StateError::new(e.error, e.cause))?
            }
            None => match str_field(state, "ItemsPath") {
                Some(p) => path::eval(p, input, ctx)?,
                None => input.clone(),
            },
        };
        items
            .as_array()
            .cloned()
            .ok_or_else(|| StateError::runtime(format!("Map '{name}': the items are not an array")))
    }

    /// A distributed Map's Map Run: one child execution per item, each with its own history
    /// (not counted in this one's); failures up to `ToleratedFailureCount` /
    /// `ToleratedFailurePercentage` are tolerated, one more fails the Map Run with
    /// `States.ExceedToleratedFailureThreshold` and no further child starts. When resumed
    /// (a redrive of the Map Run), succeeded children keep their results, failed STANDARD
    /// children are redriven, failed EXPRESS children and never-started ones run from the start
    /// (redrive-map-run.html).
    fn run_map_run(
        &mut self,
        path: &str,
        state: &Value,
        processor: &Value,
        inputs: Vec<(Value, Value)>,
        resuming: bool,
    ) -> Result<Vec<Value>, StateError> {
        let total = inputs.len();
        let tolerated_count = state
            .get("ToleratedFailureCount")
            .and_then(Value::as_u64)
            .unwrap_or(0) as usize;
        let tolerated_pct = state
            .get("ToleratedFailurePercentage")
            .and_then(Value::as_f64)
            .unwrap_or(0.0);
        let express = processor
            .pointer("/ProcessorConfig/ExecutionType")
            .and_then(Value::as_str)
            == Some("EXPRESS");
        let mut child_def = processor.clone();
        if let Value::Object(m) = &mut child_def {
            m.remove("ProcessorConfig");
        }
        self.emit("MapRunStarted", "", path, None, json!({"items": total}));
        let attempt = self.info.redrive_count;
        let mut results = Vec::with_capacity(total);
        let mut failed = 0usize;
        for (i, (item_input, _)) in inputs.into_iter().enumerate() {
            let key = format!("{path}/{i}");
            let previous = if resuming {
                self.plan.children.get(&key).cloned()
            } else {
                None
            };
            let mut child = match previous {
                Some(prev) if prev.status == Status::Succeeded => {
                    results.push(prev.output.clone().unwrap_or(Value::Null));
                    continue;
                }
                Some(prev) if !express && !prev.history_limit_reached => {
                    let plan = Plan::of(&prev);
                    if plan.open.contains_key("") {
                        self.as_child(&key, |opts| resume(&prev, plan, self.runner, opts))
                    } else {
                        self.fresh_child(&child_def, item_input, path, i)
                    }
                }
                _ => self.fresh_child(&child_def, item_input, path, i),
            };
            child.parent_attempt = Some(attempt);
            match child.status {
                Status::Succeeded => results.push(child.output.clone().unwrap_or(Value::Null)),
                _ => {
                    failed += 1;
                    results.push(json!({"Error": child.error, "Cause": child.cause}));
                }
            }
            self.children.insert(key, child);
            let over_count = failed > tolerated_count;
            let over_pct = (failed as f64) * 100.0 / (total.max(1) as f64) > tolerated_pct;
            if failed > 0 && over_count && over_pct {
                let e = StateError::new(
                    "States.ExceedToleratedFailureThreshold",
                    format!("The specified tolerated failure threshold was exceeded: {failed} of {total} child executions failed (Map Run of '{path}')"),
                );
                self.emit(
                    "MapRunFailed",
                    "",
                    path,
                    None,
                    json!({"error": e.error, "cause": e.cause}),
                );
                return Err(e);
            }
        }
        self.emit("MapRunSucceeded", "", path, None, json!({"failed": failed}));
        Ok(results)
    }

    fn fresh_child(&self, def: &Value, input: Value, path: &str, index: usize) -> Record {
        let info = self.info.child(path, index);
        self.as_child(&format!("{path}/{index}"), |opts| {
            execute(
                def,
                input,
                info,
                self.runner,
                opts,
                None,
                Vec::new(),
                BTreeMap::new(),
            )
        })
    }

    /// Runs `f` with options for the child execution `key` (`<map path>/<index>`): the same
    /// clock, and its events shown to this execution's observer under the Map's path.
    fn as_child<T>(&self, key: &str, f: impl FnOnce(&Options) -> T) -> T {
        let parent = self.opts.observer;
        let observe = move |e: &Event| child_event(parent, key, e);
        f(&Options {
            time_scale: self.opts.time_scale,
            observer: Some(&observe),
        })
    }
}

/// Shows a child execution's event to the parent's observer, its path under the Map's.
fn child_event(parent: Option<&dyn Fn(&Event)>, key: &str, e: &Event) {
    if let Some(observe) = parent {
        let mut e = e.clone();
        e.path = if e.path.is_empty() {
            key.to_owned()
        } else {
            format!("{key}/{}", e.path)
        };
        observe(&e);
    }
}

fn text_of(v: Value) -> String {
    match v {
        Value::String(s) => s,
        other => other.to_string(),
    }
}
