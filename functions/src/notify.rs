//! notify: tells people what happened. Two kinds:
//! - `summary` (after the items ran and the models were rebuilt): publishes when an item
//!   failed, rows were quarantined (by ingest or by a model) or
//!   an object matched no spec, and says how many items failed (the state machine fails the
//!   execution on that number).
//! - `failure` (the catch-all path): always publishes the failed state, error and cause.
//!
//! Messages carry the execution ARN, a console link, the failed work items with their files
//! and reasons, and the rows quarantined. The facts come from the work table (items of this
//! run's batch), not from the state payload, so they stay complete for large batches.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sluice_core::ports::{Notifier, WorkQueue, WorkStatus};

use crate::errors::FnError;
use crate::ports::Ports;
use crate::queue_generator::batch_of;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Summary,
    Failure,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NotifyInput {
    pub kind: Kind,
    /// `$$.Execution.Id`
    pub execution: String,
    /// The queue-generator's output, when it ran.
    #[serde(default)]
    pub queue: Option<Value>,
    /// The normalize step's output, when it ran: its models and their quarantined rows.
    #[serde(default)]
    pub normalize: Option<Value>,
    /// Failure: the state that failed.
    #[serde(default)]
    pub failed_state: Option<String>,
    /// Failure: `{"Error": ..., "Cause": ...}` as Catch delivers it.
    #[serde(default)]
    pub error: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedItem {
    pub id: String,
    pub file: String,
    pub dataset: String,
    pub status: WorkStatus,
    pub error: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotifyOutput {
    pub published: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    pub subject: String,
    pub items: usize,
    pub items_done: usize,
    pub failed_items: usize,
    pub rows_quarantined: u64,
    pub unmatched: usize,
    /// The models rebuilt in this run, with their tables' counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub models: Option<Value>,
}

/// The console page of an execution.
pub fn console_link(execution_arn: &str) -> String {
    let region = execution_arn.split(':').nth(3).unwrap_or("us-east-1");
    format!("https://{region}.console.aws.amazon.com/states/home?region={region}#/v2/executions/details/{execution_arn}")
}

pub async fn handle<P: Ports>(ports: &P, input: NotifyInput) -> Result<NotifyOutput, FnError> {
    let batch = batch_of(&input.execution);
    let items = ports.work().by_batch(batch).await?;
    let failed: Vec<FailedItem> = items
        .iter()
        .filter(|w| {
            w.status != WorkStatus::Done
                && !(input.kind == Kind::Summary && w.status == WorkStatus::Queued)
        })
        .map(|w| FailedItem {
            id: w.id.clone(),
            file: format!("s3://{}/{}", w.bucket, w.key),
            dataset: w.dataset.clone(),
            status: w.status,
            error: w
                .error
                .clone()
                .unwrap_or_else(|| "Sluice.Interrupted".into()),
            reason: w.error_message.clone().unwrap_or_else(|| {
                format!("the item was left {} when the execution stopped", w.status)
            }),
        })
        .collect();
    let done = items
        .iter()
        .filter(|w| w.status == WorkStatus::Done)
        .count();
    let model_quarantined = input
        .normalize
        .as_ref()
        .and_then(|n| n.get("rows_quarantined"))
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let quarantined: u64 = items
        .iter()
        .filter_map(|w| w.counts.map(|c| c.rows_quarantined))
        .sum::<u64>()
        + model_quarantined;
    let unmatched = input
        .queue
        .as_ref()
        .and_then(|q| q.get("unmatched"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let env = &ports.names().env;
    let subject = match input.kind {
        Kind::Failure => format!(
            "Sluice {env}: execution failed in {}",
            input.failed_state.as_deref().unwrap_or("a step")
        ),
        Kind::Summary if !failed.is_empty() => format!(
            "Sluice {env}: {} file(s) failed in run {batch}",
            failed.len()
        ),
        Kind::Summary => format!("Sluice {env}: run {batch} quarantined {quarantined} row(s)"),
    };
    let should_publish = input.kind == Kind::Failure
        || !failed.is_empty()
        || quarantined > 0
        || !unmatched.is_empty();
    let body = json!({
        "kind": input.kind,
        "environment": env,
        "execution_arn": input.execution,
        "console": console_link(&input.execution),
        "failed_state": input.failed_state,
        "error": input.error.as_ref().and_then(|e| e.get("Error")).cloned(),
        "cause": input.error.as_ref().and_then(|e| e.get("Cause")).cloned(),
        "items": items.len(),
        "items_done": done,
        "failed_items": failed,
        "rows_quarantined": quarantined,
        "quarantine": format!("s3://{}/quarantine/", ports.names().lake_bucket),
        "unmatched_objects": unmatched,
        "models": input.normalize.as_ref().and_then(|n| n.get("models")).cloned(),
        "redrive": "fix the cause, then Redrive the execution in the console (or `sluice redrive <history.json>` locally)",
    });
    // One structured line per run; the deployed metric filter counts `stuck_items`.
    lambda_runtime::tracing::info!(
        execution = %input.execution,
        items = items.len(),
        items_done = done,
        stuck_items = failed.len(),
        rows_quarantined = quarantined,
        "run summary"
    );
    let message_id = if should_publish {
        Some(ports.notifier().publish(&subject, &body).await?)
    } else {
        None
    };
    Ok(NotifyOutput {
        published: message_id.is_some(),
        message_id,
        subject,
        items: items.len(),
        items_done: done,
        failed_items: failed.len(),
        rows_quarantined: quarantined,
        unmatched: unmatched.len(),
        models: input
            .normalize
            .as_ref()
            .and_then(|n| n.get("models"))
            .cloned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn console_links_use_the_execution_region() {
        let arn = "arn:aws:states:eu-west-1:123456789012:execution:sluice-dev-ingest:run-1";
        assert_eq!(
            console_link(arn),
            format!("https://eu-west-1.console.aws.amazon.com/states/home?region=eu-west-1#/v2/executions/details/{arn}")
        );
    }
}
