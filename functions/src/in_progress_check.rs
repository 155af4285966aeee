//! in-progress-check: the pipeline lock. One execution processes at a time; the owner is the
//! execution ARN, held with a lease. A lock whose lease expired, or whose owner execution is
//! no longer RUNNING, is taken over and the takeover reported. An owner Step Functions does
//! not know (a local run) is judged by its lease alone.

use serde::{Deserialize, Serialize};
use sluice_core::ports::{Acquire, ExecutionStatus, Executions, LockStore};

use crate::errors::{FnError, LOCK_LOST};
use crate::ports::{setting_or, Ports};

/// The lock's name in the locks table.
pub const PIPELINE_LOCK: &str = "ingest-pipeline";

/// For the steps that run under the lock (ingest, normalize): fails with `Sluice.LockLost`
/// unless `execution` holds the pipeline lock. Acquiring again as the same owner renews the
/// lease; after a redrive whose first attempt released the lock, it takes the free lock back.
pub async fn hold_lock<P: Ports>(ports: &P, execution: &str) -> Result<(), FnError> {
    let lease = setting_or(ports, "lease_seconds", 900).await?.max(60);
    match ports
        .locks()
        .acquire(PIPELINE_LOCK, execution, lease, ports.now())
        .await?
    {
        Acquire::Held(other) => Err(FnError::new(
            LOCK_LOST,
            format!(
                "the pipeline lock is held by {} until {}: this execution does not hold it",
                other.owner, other.expires_at
            ),
        )),
        Acquire::Acquired(_) => Ok(()),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Acquire,
    Release,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LockInput {
    pub action: Action,
    /// `$$.Execution.Id`
    pub execution: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockOutput {
    /// Acquire: whether this execution holds the lock now. Release: whether it was released.
    pub acquired: bool,
    #[serde(default)]
    pub released: bool,
    /// Who holds the lock when it was not acquired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holder: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub took_over_from: Option<String>,
    pub reason: String,
}

pub async fn handle<P: Ports>(ports: &P, input: LockInput) -> Result<LockOutput, FnError> {
    let now = ports.now();
    let lease = setting_or(ports, "lease_seconds", 900).await?.max(60);
    let me = input.execution.as_str();
    match input.action {
        Action::Release => {
            let released = ports.locks().release(PIPELINE_LOCK, me).await?;
            Ok(LockOutput {
                acquired: false,
                released,
                holder: None,
                took_over_from: None,
                reason: if released {
                    "released".into()
                } else {
                    "this execution did not hold the lock (already released or taken over)".into()
                },
            })
        }
        Action::Acquire => match ports.locks().acquire(PIPELINE_LOCK, me, lease, now).await? {
            Acquire::Acquired(_) => Ok(LockOutput {
                acquired: true,
                released: false,
                holder: None,
                took_over_from: None,
                reason: "acquired".into(),
            }),
            Acquire::Held(held) => {
                let status = ports.executions().status(&held.owner).await?;
                let finished = matches!(
                    status,
                    Some(
                        ExecutionStatus::Succeeded
                            | ExecutionStatus::Failed
                            | ExecutionStatus::TimedOut
                            | ExecutionStatus::Aborted
                            | ExecutionStatus::PendingRedrive
                    )
                );
                if finished {
                    if let Acquire::Acquired(_) = ports
                        .locks()
                        .take_over(PIPELINE_LOCK, &held.owner, me, lease, now)
                        .await?
                    {
                        return Ok(LockOutput {
                            acquired: true,
                            released: false,
                            holder: None,
                            took_over_from: Some(held.owner.clone()),
                            reason: format!(
                                "took over a stale lock: its owner {} is {:?}, no longer running",
                                held.owner,
                                status.unwrap_or(ExecutionStatus::Failed)
                            ),
                        });
                    }
                }
                Ok(LockOutput {
                    acquired: false,
                    released: false,
                    holder: Some(held.owner.clone()),
                    took_over_from: None,
                    reason: format!(
                        "another execution is processing: {} holds the lock until {} (epoch seconds)",
                        held.owner, held.expires_at
                    ),
                })
            }
        },
    }
}
