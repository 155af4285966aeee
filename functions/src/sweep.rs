//! The hourly sweep: no work item is forgotten. An item stays `running` when its execution
//! failed in it (a Lambda timeout, AccessDenied): Redrive finishes it. Once that execution can
//! no longer be redriven — AWS says NOT_REDRIVABLE, or it stopped more than 14 days ago, or it
//! no longer exists — nothing would ever finish the item, so the scheduled run puts it back to
//! `queued` and takes it in its own batch.
//!
//! "You can redrive executions that have failed, aborted, or timed out … within 14 days of the
//! execution's stop time" — <https://docs.aws.amazon.com/step-functions/latest/dg/redrive-executions.html>.
//! The emulator reports neither `redriveStatus` nor always a stop date, so where both are
//! absent the item's own last change stands in for the stop time (it is never later).

use crate::contracts::Swept;
use std::collections::BTreeMap;

use sluice_core::ports::{
    ExecutionState, ExecutionStatus, Executions, RedriveStatus, TransitionUpdate, WorkItem,
    WorkQueue, WorkStatus,
};

use crate::errors::FnError;
use crate::ports::Ports;

/// How long after it stopped an execution can be redriven.
pub const REDRIVE_WINDOW_SECS: i64 = 14 * 24 * 3600;

/// Why `item`, left `running` by the execution described by `exec` (`None`: no such
/// execution), can be taken again; `None` while that execution may still finish it (it runs,
/// a redrive is pending, or it can be redriven).
pub fn stranded(now: i64, item: &WorkItem, exec: Option<&ExecutionState>) -> Option<String> {
    let execution = item.execution.as_deref().unwrap_or("(none recorded)");
    let old = |since: i64| now - since > REDRIVE_WINDOW_SECS;
    let Some(exec) = exec else {
        // Unknown to Step Functions: gone (closed executions are kept 90 days), or a local run
        // whose record only `sluice redrive` knows; either way past 14 days it cannot resume.
        return old(item.updated_at).then(|| {
            format!("execution {execution} no longer exists and the item has waited over 14 days")
        });
    };
    match exec.status {
        ExecutionStatus::Running | ExecutionStatus::PendingRedrive => None,
        ExecutionStatus::Succeeded => Some(format!(
            "execution {execution} succeeded without finishing the item"
        )),
        status @ (ExecutionStatus::Failed
        | ExecutionStatus::TimedOut
        | ExecutionStatus::Aborted) => {
            let status = serde_json::to_value(status)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            if exec.redrive_status == Some(RedriveStatus::NotRedrivable) {
                Some(format!(
                    "execution {execution} is {status} and NOT_REDRIVABLE"
                ))
            } else if old(exec.stopped_at.unwrap_or(item.updated_at)) {
                Some(format!(
                    "execution {execution} is {status} and stopped over 14 days ago: past the redrive window"
                ))
            } else {
                None
            }
        }
    }
}

/// Puts back to `queued` every `running` item whose execution can no longer finish it.
pub async fn sweep<P: Ports>(ports: &P) -> Result<Vec<Swept>, FnError> {
    let now = ports.now();
    let mut described: BTreeMap<String, Option<ExecutionState>> = BTreeMap::new();
    let mut swept = Vec::new();
    for item in ports.work().by_status(WorkStatus::Running).await? {
        let exec = match &item.execution {
            Some(arn) => match described.get(arn) {
                Some(d) => *d,
                None => {
                    let d = ports.executions().describe(arn).await?;
                    described.insert(arn.clone(), d);
                    d
                }
            },
            None => None,
        };
        let Some(reason) = stranded(now, &item, exec.as_ref()) else {
            continue;
        };
        let update = TransitionUpdate {
            now,
            ..Default::default()
        };
        // Conditional: an execution that picked the item up meanwhile keeps it.
        if let sluice_core::ports::Transition::Applied(_) = ports
            .work()
            .transition(&item.id, &[WorkStatus::Running], WorkStatus::Queued, update)
            .await?
        {
            lambda_runtime::tracing::warn!(item = %item.id, %reason, "swept back to queued");
            swept.push(Swept {
                id: item.id,
                execution: item.execution.unwrap_or_default(),
                reason,
            });
        }
    }
    Ok(swept)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;
    const DAY: i64 = 24 * 3600;

    fn item(updated_at: i64) -> WorkItem {
        WorkItem {
            id: "s3://raw/a.csv#e:loans".into(),
            batch: "b".into(),
            bucket: "raw".into(),
            key: "a.csv".into(),
            version: "e".into(),
            dataset: "loans".into(),
            status: WorkStatus::Running,
            attempts: 1,
            updated_at,
            execution: Some("arn:exec".into()),
            counts: None,
            error: None,
            error_message: None,
            drift: Vec::new(),
            pull: None,
        }
    }

    fn exec(
        status: ExecutionStatus,
        redrive: Option<RedriveStatus>,
        stopped: Option<i64>,
    ) -> ExecutionState {
        ExecutionState {
            status,
            redrive_status: redrive,
            stopped_at: stopped,
            redrive_count: 0,
        }
    }

    #[test]
    fn a_running_or_redrivable_execution_keeps_its_items() {
        let it = item(NOW - 30 * DAY);
        for e in [
            exec(ExecutionStatus::Running, None, None),
            exec(ExecutionStatus::PendingRedrive, None, Some(NOW - 20 * DAY)),
            exec(
                ExecutionStatus::Failed,
                Some(RedriveStatus::Redrivable),
                Some(NOW - 13 * DAY),
            ),
            exec(
                ExecutionStatus::TimedOut,
                Some(RedriveStatus::RedrivableByMapRun),
                Some(NOW - DAY),
            ),
        ] {
            assert_eq!(stranded(NOW, &it, Some(&e)), None, "{e:?}");
        }
        // The emulator: no redrive status, no stop date, item touched recently.
        assert_eq!(
            stranded(
                NOW,
                &item(NOW - DAY),
                Some(&exec(ExecutionStatus::Failed, None, None))
            ),
            None
        );
        // Unknown execution (a local run), recent item: `sluice redrive` may still finish it.
        assert_eq!(stranded(NOW, &item(NOW - DAY), None), None);
    }

    #[test]
    fn an_execution_that_cannot_be_redriven_releases_its_items() {
        let it = item(NOW - DAY);
        let not = stranded(
            NOW,
            &it,
            Some(&exec(
                ExecutionStatus::Aborted,
                Some(RedriveStatus::NotRedrivable),
                Some(NOW - DAY),
            )),
        );
        assert!(not.unwrap().contains("ABORTED and NOT_REDRIVABLE"));
        let late = stranded(
            NOW,
            &it,
            Some(&exec(ExecutionStatus::Failed, None, Some(NOW - 15 * DAY))),
        );
        assert!(late.unwrap().contains("past the redrive window"));
        assert!(stranded(
            NOW,
            &it,
            Some(&exec(ExecutionStatus::Succeeded, None, Some(NOW)))
        )
        .unwrap()
        .contains("succeeded"));
        assert!(stranded(NOW, &item(NOW - 15 * DAY), None)
            .unwrap()
            .contains("no longer exists"));
    }
}
