//! notify: tells people what happened. Two kinds:
//! - `summary` (after the items ran and the models were rebuilt): publishes when an item
//!   failed, rows were quarantined (by ingest or by a model) or
//!   an object matched no spec, and says how many items failed (the state machine fails the
//!   execution on that number).
//! - `failure` (from the execution status-change event: FAILED, TIMED_OUT, ABORTED): always
//!   publishes the state left open (read from the execution's history), the error, the cause,
//!   the redrive count and what on-call should do about that error.
//! - `recovered` (from the status-change event: SUCCEEDED): a short message when the
//!   execution had been redriven (its failure notice went out before), nothing otherwise.
//!
//! E-mail subscribers get plain text ([`plain_text`]); queues and functions get JSON.
//!
//! Messages carry the execution ARN, a console link, the failed work items with their files
//! and reasons, and the rows quarantined. The facts come from the work table (the items of the
//! run's manifest, read strongly consistently), not from the state payload, so they stay
//! complete for large batches.

use crate::contracts::{FailedItem, Kind, NotifyInput, NotifyOutput};
use serde_json::{json, Value};
use sluice_core::ports::{Executions, Notifier, WorkStatus};

use crate::errors::{FnError, ITEMS_FAILED};
use crate::ports::Ports;
use crate::run::{batch_of, items_of_run};

/// The most failed items one message lists (SNS takes 256 KB; the work table has them all).
pub const LISTED_ITEMS: usize = 100;

/// The console page of an execution.
pub fn console_link(execution_arn: &str) -> String {
    let region = execution_arn.split(':').nth(3).unwrap_or("us-east-1");
    format!("https://{region}.console.aws.amazon.com/states/home?region={region}#/v2/executions/details/{execution_arn}")
}

/// What on-call does about a failed execution, by its error name (README, "On call").
pub fn action_for(error: &str) -> &'static str {
    match error {
        "Sluice.ItemsFailed" => "Data errors in single files (listed below): re-upload a corrected file, or add the missing spec and run `sluice requeue`. Redrive would only fail again at once.",
        "Sluice.LoadFailed" => "The load into the target database named in the cause failed for good (a refused schema change, refused credentials, counts that differ): fix it, then press Redrive: the execution resumes at Load, and the ledger loads each lake file once.",
        "Sluice.LockLost" => "Another execution held the pipeline lock past the retries: Redrive once it has finished.",
        "States.Runtime" | "States.DataLimitExceeded" => "A definition or payload problem: fix the definition and start a new execution (a redrive keeps the old definition; an execution past the history quota cannot be redriven).",
        _ => "Fix the cause named here, then press Redrive in the console (within 14 days): only the failed state, iteration or child execution runs again.",
    }
}

/// Where the execution failed: as given, or read from its history.
async fn failure_facts<P: Ports>(
    ports: &P,
    input: &NotifyInput,
) -> Result<(String, String, String, u32), FnError> {
    let given = |k: &str| {
        input
            .error
            .as_ref()
            .and_then(|e| e.get(k))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    if let Some(state) = &input.failed_state {
        return Ok((
            state.clone(),
            given("Error").unwrap_or_default(),
            given("Cause").unwrap_or_default(),
            input.redrive_count,
        ));
    }
    let found = ports
        .executions()
        .failed_state(&input.execution)
        .await?
        .unwrap_or_default();
    Ok((
        if found.state.is_empty() {
            "(no state left open)".to_owned()
        } else {
            found.state
        },
        given("Error").unwrap_or(found.error),
        given("Cause").unwrap_or(found.cause),
        found.redrive_count,
    ))
}

/// A redriven execution that then succeeded: one short message closing the failure notice.
async fn recovered<P: Ports>(ports: &P, input: &NotifyInput) -> Result<NotifyOutput, FnError> {
    let described = ports.executions().describe(&input.execution).await?;
    let redrive_count = described
        .map(|d| d.redrive_count)
        .unwrap_or(0)
        .max(input.redrive_count);
    let items = items_of_run(ports, &input.execution).await?;
    let done = items
        .iter()
        .filter(|w| w.status == WorkStatus::Done)
        .count();
    let env = &ports.names().env;
    let subject = format!("Sluice {env}: execution recovered after redrive");
    let body = json!({
        "kind": Kind::Recovered,
        "environment": env,
        "execution_arn": input.execution,
        "console": console_link(&input.execution),
        "status": "SUCCEEDED",
        "redrive_count": redrive_count,
        "items": items.len(),
        "items_done": done,
    });
    // Not redriven: an ordinary success, nothing to say.
    let message_id = publish_if(ports, redrive_count > 0, &subject, &body).await?;
    Ok(NotifyOutput {
        published: message_id.is_some(),
        message_id,
        subject,
        items: items.len(),
        items_done: done,
        failed_items: 0,
        rows_quarantined: 0,
        unmatched: 0,
        models: None,
        loads: None,
        drifted_files: 0,
    })
}

/// Publishes the message (JSON for machines, its plain text for e-mail) when `publish`;
/// returns the message id.
async fn publish_if<P: Ports>(
    ports: &P,
    publish: bool,
    subject: &str,
    body: &Value,
) -> Result<Option<String>, FnError> {
    if !publish {
        return Ok(None);
    }
    let text = plain_text(subject, body);
    Ok(Some(ports.notifier().publish(subject, body, &text).await?))
}

/// The e-mail form of a message: what on-call reads first, then the facts, one per line.
pub fn plain_text(subject: &str, body: &Value) -> String {
    let mut out = format!("{subject}\n\n");
    let field = |k: &str| match body.get(k) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(v) => Some(v.to_string()),
    };
    if let Some(action) = field("action") {
        out.push_str(&format!("What to do: {action}\n\n"));
    }
    for (label, key) in [
        ("Execution", "execution_arn"),
        ("Console", "console"),
        ("Status", "status"),
        ("Failed state", "failed_state"),
        ("Error", "error"),
        ("Cause", "cause"),
        ("Redrives so far", "redrive_count"),
        ("Items", "items"),
        ("Items done", "items_done"),
        ("Rows quarantined", "rows_quarantined"),
        ("Quarantine", "quarantine"),
    ] {
        if let Some(v) = field(key) {
            out.push_str(&format!("{label}: {v}\n"));
        }
    }
    let list = |k: &str| {
        body.get(k)
            .and_then(Value::as_array)
            .filter(|a| !a.is_empty())
    };
    if let Some(items) = list("failed_items") {
        out.push_str("\nFailed items:\n");
        for i in items {
            let s = |k: &str| i.get(k).and_then(Value::as_str).unwrap_or("");
            out.push_str(&format!(
                "- {} ({}): {}: {}\n",
                s("file"),
                s("dataset"),
                s("error"),
                s("reason")
            ));
        }
        if let Some(n) = body.get("failed_items_not_listed").and_then(Value::as_u64) {
            if n > 0 {
                out.push_str(&format!("… and {n} more (the work table has them all)\n"));
            }
        }
    }
    if let Some(files) = list("drifted_files") {
        out.push_str("\nFiles that drifted from their dataset's previous files (they landed; look before trusting them):\n");
        for f in files {
            let s = |k: &str| f.get(k).and_then(Value::as_str).unwrap_or("");
            out.push_str(&format!("- {} ({}):\n", s("file"), s("dataset")));
            for d in f
                .get("drift")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                out.push_str(&format!("    {}\n", d.as_str().unwrap_or("")));
            }
        }
        if let Some(n) = body.get("drifted_files_not_listed").and_then(Value::as_u64) {
            if n > 0 {
                out.push_str(&format!(
                    "… and {n} more (their work items say which columns)\n"
                ));
            }
        }
    }
    if let Some(loads) = list("loads") {
        out.push_str("\nLoaded into the application databases (database rows / lake rows):\n");
        for l in loads {
            let s = |k: &str| {
                l.get(k)
                    .map(|v| {
                        v.as_str()
                            .map(str::to_owned)
                            .unwrap_or_else(|| v.to_string())
                    })
                    .unwrap_or_default()
            };
            out.push_str(&format!(
                "- {}.{}: {} loaded this run; {} / {}{}\n",
                s("target"),
                s("table"),
                s("rows_loaded"),
                s("database_rows"),
                s("lake_rows"),
                if l.get("reconciled") == Some(&Value::Bool(true)) {
                    ", reconciled"
                } else {
                    ""
                }
            ));
        }
    }
    if let Some(objects) = list("unmatched_objects") {
        out.push_str("\nObjects no table spec matches (add one, then `sluice requeue --error Sluice.NoMatchingSpec`):\n");
        for o in objects {
            let s = |k: &str| o.get(k).and_then(Value::as_str).unwrap_or("");
            out.push_str(&format!("- {}: {}\n", s("key"), s("reason")));
        }
        let total = body.get("unmatched_total").and_then(Value::as_u64);
        if let Some(more) = total.and_then(|t| t.checked_sub(objects.len() as u64)) {
            if more > 0 {
                out.push_str(&format!(
                    "… and {more} more (failed work items, Sluice.NoMatchingSpec)\n"
                ));
            }
        }
    }
    out
}

pub async fn handle<P: Ports>(ports: &P, input: NotifyInput) -> Result<NotifyOutput, FnError> {
    if input.kind == Kind::Recovered {
        return recovered(ports, &input).await;
    }
    let batch = batch_of(&input.execution);
    let (failed_state, error, cause, redrive_count) = match input.kind {
        Kind::Failure => failure_facts(ports, &input).await?,
        Kind::Summary | Kind::Recovered => Default::default(),
    };
    let items = items_of_run(ports, &input.execution).await?;
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
    // Files that landed but moved past their spec's drift thresholds.
    let drifted: Vec<Value> = items
        .iter()
        .filter(|w| w.status == WorkStatus::Done && !w.drift.is_empty())
        .map(|w| {
            json!({
                "file": format!("s3://{}/{}", w.bucket, w.key),
                "dataset": w.dataset,
                "drift": w.drift,
            })
        })
        .collect();
    let unmatched = input
        .queue
        .as_ref()
        .and_then(|q| q.get("unmatched"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let env = &ports.names().env;
    let subject = match input.kind {
        Kind::Failure => format!("Sluice {env}: execution failed in {}", failed_state),
        // (Recovered returned above.)
        Kind::Summary | Kind::Recovered if !failed.is_empty() => format!(
            "Sluice {env}: {} file(s) failed in run {batch}",
            failed.len()
        ),
        Kind::Summary | Kind::Recovered if !drifted.is_empty() => format!(
            "Sluice {env}: run {batch}: {} file(s) drifted, {quarantined} row(s) quarantined",
            drifted.len()
        ),
        Kind::Summary | Kind::Recovered => {
            format!("Sluice {env}: run {batch} quarantined {quarantined} row(s)")
        }
    };
    // Exactly one message per failure: an execution that ends in the ItemsFailed state was
    // already reported, item by item, by its own Report step (the summary); the status-change
    // notice for it would only repeat that.
    let reported_by_summary = input.kind == Kind::Failure && error == ITEMS_FAILED;
    let should_publish = match input.kind {
        Kind::Failure => !reported_by_summary,
        Kind::Summary | Kind::Recovered => {
            !failed.is_empty() || quarantined > 0 || !unmatched.is_empty() || !drifted.is_empty()
        }
    };
    let body = json!({
        "kind": input.kind,
        "environment": env,
        "execution_arn": input.execution,
        "console": console_link(&input.execution),
        "status": input.status,
        "failed_state": (input.kind == Kind::Failure).then_some(&failed_state),
        "error": (input.kind == Kind::Failure).then_some(&error),
        "cause": (input.kind == Kind::Failure).then(|| crate::errors::bounded(&cause, crate::errors::MAX_MESSAGE_BYTES)),
        "redrive_count": redrive_count,
        "action": (input.kind == Kind::Failure).then(|| action_for(&error)),
        "items": items.len(),
        "items_done": done,
        "failed_items": failed.iter().take(LISTED_ITEMS).collect::<Vec<_>>(),
        "failed_items_not_listed": failed.len().saturating_sub(LISTED_ITEMS),
        "rows_quarantined": quarantined,
        "quarantine": format!("s3://{}/quarantine/", ports.names().lake_bucket),
        "drifted_files": drifted.iter().take(LISTED_ITEMS).collect::<Vec<_>>(),
        "drifted_files_not_listed": drifted.len().saturating_sub(LISTED_ITEMS),
        "unmatched_objects": unmatched,
        "unmatched_total": input
            .queue
            .as_ref()
            .and_then(|q| q.get("unmatched_total"))
            .and_then(Value::as_u64)
            .unwrap_or(unmatched.len() as u64),
        "models": input.normalize.as_ref().and_then(|n| n.get("models")).cloned(),
        "loads": loads(input.load.as_ref()),
    });
    // The run's failed items per dataset, as EMF (once per run: the summary, not the notices).
    if input.kind == Kind::Summary {
        let mut by_dataset: std::collections::BTreeMap<&str, u64> = Default::default();
        for f in &failed {
            *by_dataset.entry(f.dataset.as_str()).or_default() += 1;
        }
        for (dataset, n) in by_dataset {
            use crate::metrics::{emit, Metric};
            emit(
                env,
                dataset,
                &[Metric::count("ItemsFailed", n)],
                ports.now() * 1000,
            );
        }
    }
    // One structured line per run; the deployed metric filter counts `stuck_items`.
    lambda_runtime::tracing::info!(
        execution = %input.execution,
        items = items.len(),
        items_done = done,
        stuck_items = failed.len(),
        rows_quarantined = quarantined,
        "run summary"
    );
    let message_id = publish_if(ports, should_publish, &subject, &body).await?;
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
        loads: loads(input.load.as_ref()),
        drifted_files: drifted.len(),
    })
}

/// The load step's counts, one line per table: what an on-call engineer compares ("source
/// count = target count").
fn loads(load: Option<&Value>) -> Option<Vec<Value>> {
    let targets = load?.get("targets")?.as_array()?;
    Some(
        targets
            .iter()
            .filter_map(|t| t.get("report"))
            .flat_map(|r| {
                let target = r.get("target").cloned().unwrap_or_default();
                r.get("tables")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
                    .map(move |t| {
                        json!({
                            "target": target,
                            "table": t.get("table"),
                            "rows_loaded": t.get("rows_loaded"),
                            "lake_rows": t.get("lake_rows"),
                            "database_rows": t.get("database_rows"),
                            "reconciled": t.get("reconciled"),
                        })
                    })
            })
            .collect(),
    )
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
