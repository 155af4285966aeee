//! Runs the functions in-process for `sluice run`: a Task's `Resource` names the function
//! (the `${..._arn}` placeholder, or a Lambda ARN ending in the function name), and the
//! handler runs against the same ports as in Lambda.

use serde_json::Value;
use sluice_asl::{Record, Status, TaskError, TaskRunner};

use crate::errors::{FnError, BAD_INPUT};
use sluice_core::ports::ObjectStore;

use crate::ports::Ports;
use crate::{extract, in_progress_check, ingest, load, normalize, notify, queue_generator};

/// The function names, as directories under `functions/` and in `${<name>_arn}` placeholders.
pub const FUNCTIONS: &[&str] = &[
    "queue-generator",
    "in-progress-check",
    "ingest",
    "notify",
    "extract",
    "normalize",
    "load",
];

/// `${queue_generator_arn}`, `arn:aws:lambda:...:function:sluice-dev-queue-generator` →
/// `queue-generator`.
pub fn function_of(resource: &str) -> Option<&'static str> {
    let name = resource
        .strip_prefix("${")
        .and_then(|r| r.strip_suffix("_arn}"))
        .map(|r| r.replace('_', "-"))
        .unwrap_or_else(|| resource.rsplit(':').next().unwrap_or(resource).to_owned());
    FUNCTIONS
        .iter()
        .copied()
        .find(|f| name == *f || name.ends_with(&format!("-{f}")))
}

fn parse<T: serde::de::DeserializeOwned>(input: &Value) -> Result<T, FnError> {
    serde_json::from_value(input.clone()).map_err(FnError::bad_input)
}

fn json<T: serde::Serialize>(v: T) -> Result<Value, FnError> {
    serde_json::to_value(v).map_err(FnError::bad_input)
}

/// Calls the named function's handler.
pub async fn invoke<P: Ports>(ports: &P, function: &str, input: &Value) -> Result<Value, FnError> {
    match function {
        "queue-generator" => json(queue_generator::handle_request(ports, parse(input)?).await?),
        "in-progress-check" => json(in_progress_check::handle(ports, parse(input)?).await?),
        "ingest" => json(ingest::handle(ports, parse(input)?).await?),
        "notify" => json(notify::handle(ports, parse(input)?).await?),
        "extract" => json(extract::handle(ports, parse(input)?).await?),
        "normalize" => json(normalize::handle(ports, parse(input)?).await?),
        "load" => json(Box::pin(load::handle(ports, parse(input)?)).await?),
        other => Err(FnError::new(BAD_INPUT, format!("no function {other}"))),
    }
}

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
                error: e.name.to_owned(),
                cause: e.message,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_name_their_function() {
        assert_eq!(
            function_of("${queue_generator_arn}"),
            Some("queue-generator")
        );
        assert_eq!(
            function_of("${in_progress_check_arn}"),
            Some("in-progress-check")
        );
        assert_eq!(
            function_of("arn:aws:lambda:us-east-1:123456789012:function:sluice-dev-ingest"),
            Some("ingest")
        );
        assert_eq!(function_of("${normalize_arn}"), Some("normalize"));
        assert_eq!(function_of("${transform_arn}"), None);
    }
}
