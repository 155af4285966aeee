//! Runs the functions in-process for `sluice run`: a Task's `Resource` names the function
//! (the `${..._arn}` placeholder, or a Lambda ARN ending in the function name), and the
//! handler runs against the same ports as in Lambda.

use serde_json::Value;
use sluice_asl::{Record, Status, TaskError, TaskRunner};

use crate::errors::FnError;
use sluice_core::ports::ObjectStore;

use crate::ports::Ports;

use crate::registry::{function_of, invoke};

/// A `TaskRunner` over in-process handlers, driving async handlers from the interpreter's
/// thread through a runtime handle.
pub struct LocalLambdas<'a, P> {
    pub ports: &'a P,
    pub runtime: tokio::runtime::Handle,
}

impl<P: Ports> TaskRunner for LocalLambdas<'_, P> {
    fn invoke(&self, resource: &str, input: &Value, _state_path: &str) -> Result<Value, TaskError> {
        let Some(function) = function_of(resource) else {
            return Err(TaskError {
                error: "States.TaskFailed".into(),
                cause: format!("no local function for resource {resource}"),
            });
        };
        self.runtime
            .block_on(invoke(self.ports, function, input))
            .map_err(|e| TaskError {
                error: e.error_type().to_owned(),
                cause: e.message(),
            })
    }

    /// A distributed Map's `ItemReader` over `arn:aws:states:::s3:getObject` with a JSON
    /// array (the batch manifest), read through the same object store as the functions.
    fn read_items(&self, reader: &Value) -> Result<Value, TaskError> {
        let failed = |cause: String| TaskError {
            error: "States.ItemReaderFailed".into(),
            cause,
        };
        if reader["Resource"] != "arn:aws:states:::s3:getObject"
            || reader.pointer("/ReaderConfig/InputType") != Some(&Value::from("JSON"))
        {
            return Err(failed(format!("unsupported ItemReader {reader}")));
        }
        let (Some(bucket), Some(key)) = (
            reader.pointer("/Parameters/Bucket").and_then(Value::as_str),
            reader.pointer("/Parameters/Key").and_then(Value::as_str),
        ) else {
            return Err(failed(
                "the ItemReader needs Parameters.Bucket and Parameters.Key".into(),
            ));
        };
        let bytes = self
            .runtime
            .block_on(self.ports.store().get_bytes(bucket, key))
            .map_err(|e| failed(format!("s3://{bucket}/{key}: {e}")))?
            .ok_or_else(|| failed(format!("s3://{bucket}/{key} does not exist")))?;
        let items: Value = serde_json::from_slice(&bytes)
            .map_err(|e| failed(format!("s3://{bucket}/{key} is not JSON: {e}")))?;
        if !items.is_array() {
            return Err(failed(format!("s3://{bucket}/{key} is not a JSON array")));
        }
        Ok(items)
    }
}

/// The innermost state left open, down into a failed child execution of a distributed Map
/// (`ProcessItems/3/Ingest`).
pub fn failed_path(record: &Record) -> String {
    let Some((path, _)) = sluice_asl::restart_points(record).pop() else {
        return String::new();
    };
    let prefix = format!("{path}/");
    let failed_child = record
        .children
        .iter()
        .find(|(k, c)| k.starts_with(&prefix) && c.status != Status::Succeeded);
    match failed_child {
        Some((key, child)) => match failed_path(child) {
            inner if inner.is_empty() => key.clone(),
            inner => format!("{key}/{inner}"),
        },
        None => path,
    }
}

/// Locally, what the EventBridge "Step Functions Execution Status Change" rules do on AWS
/// when an execution ends. FAILED, TIMED_OUT, ABORTED: release the pipeline lock the execution
/// may hold, and publish the one failure notice. SUCCEEDED: the "recovered" notice, which
/// notify sends only for a redriven execution. On AWS, notify reads the failed state from
/// `GetExecutionHistory`; the local execution exists only in its record, so the state left
/// open is taken from there (the same rule: entered, never exited).
pub fn on_execution_finished<P: Ports>(
    ports: &P,
    runtime: &tokio::runtime::Handle,
    record: &Record,
) -> Vec<(&'static str, Result<Value, FnError>)> {
    let execution = &record.execution.execution_arn;
    let calls = match record.status {
        Status::Succeeded => vec![(
            "notify",
            serde_json::json!({
                "kind": "recovered",
                "execution": execution,
                "redrive_count": record.execution.redrive_count,
            }),
        )],
        ended @ (Status::Failed | Status::TimedOut | Status::Aborted) => vec![
            (
                "in-progress-check",
                serde_json::json!({"action": "release", "execution": execution}),
            ),
            (
                "notify",
                serde_json::json!({
                    "kind": "failure",
                    "execution": execution,
                    "status": match ended {
                        Status::TimedOut => "TIMED_OUT",
                        Status::Aborted => "ABORTED",
                        _ => "FAILED",
                    },
                    "failed_state": failed_path(record),
                    "error": {"Error": record.error, "Cause": record.cause},
                    "redrive_count": record.execution.redrive_count,
                }),
            ),
        ],
    };
    calls
        .into_iter()
        .map(|(function, input)| (function, runtime.block_on(invoke(ports, function, &input))))
        .collect()
}
