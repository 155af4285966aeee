//! in-progress-check: the pipeline lock. One execution processes at a time; the owner is the
//! execution ARN, held with a lease that ingest renews while it works. A lock whose owner
//! execution is no longer RUNNING is taken over and the takeover reported; a lapsed lease
//! whose owner is still RUNNING is not. An owner Step Functions does not know (a local run)
//! is judged by its lease alone.

use serde::{Deserialize, Serialize};
use sluice_core::ports::{Acquire, ExecutionStatus, Executions, LockStore};

use crate::errors::{FnError, BAD_INPUT, LOCK_LOST};
use crate::ports::{setting_or, Ports};

/// The lock's name in the locks table.
pub const PIPELINE_LOCK: &str = "ingest-pipeline";

/// The shortest lease the lock may have: the longest function timeout (ingest, normalize:
/// 900 s) plus the longest Retry interval between its attempts (30 s) and margin. A shorter
/// lease could lapse while its owner still works, and another execution would take the lock.
pub const MIN_LEASE_SECONDS: i64 = 960;
/// The lease when SSM `lease_seconds` is not set.
pub const DEFAULT_LEASE_SECONDS: i64 = 1_800;

/// SSM `lease_seconds`, refused when shorter than [`MIN_LEASE_SECONDS`].
pub async fn lease_seconds<P: Ports>(ports: &P) -> Result<i64, FnError> {
    let lease = setting_or(ports, "lease_seconds", DEFAULT_LEASE_SECONDS).await?;
    if lease < MIN_LEASE_SECONDS {
        return Err(FnError::new(
            BAD_INPUT,
            format!(
                "setting lease_seconds is {lease}: shorter than the longest function timeout plus retry backoff ({MIN_LEASE_SECONDS} s), a working owner could lose the lock"
            ),
        ));
    }
    Ok(lease)
}

/// A lease that lapsed while its owner still runs (Step Functions says RUNNING): not to be
/// taken over, whatever its expiry says. `None` when the lock is free, ours, unexpired (the
/// conditional write decides) or its owner is not running.
async fn lapsed_but_alive<P: Ports>(
    ports: &P,
    me: &str,
    now: i64,
) -> Result<Option<sluice_core::ports::Lease>, FnError> {
    match ports.locks().current(PIPELINE_LOCK).await? {
        Some(l) if l.owner != me && l.expires_at < now => {
            let status = ports.executions().status(&l.owner).await?;
            Ok((status == Some(ExecutionStatus::Running)).then_some(l))
        }
        _ => Ok(None),
    }
}

/// For the steps that run under the lock (ingest, normalize): fails with `Sluice.LockLost`
/// unless `execution` holds the pipeline lock. Acquiring again as the same owner renews the
/// lease; after a redrive whose first attempt released the lock, it takes the free lock back.
pub async fn hold_lock<P: Ports>(ports: &P, execution: &str) -> Result<(), FnError> {
    let lease = lease_seconds(ports).await?;
    if let Some(alive) = lapsed_but_alive(ports, execution, ports.now()).await? {
        return Err(FnError::new(
            LOCK_LOST,
            format!(
                "the pipeline lock's lease lapsed but its owner {} is still RUNNING: this execution waits",
                alive.owner
            ),
        ));
    }
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
    let lease = lease_seconds(ports).await?;
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
        Action::Acquire => acquire(ports, me, lease, now).await,
    }
}

async fn acquire<P: Ports>(
    ports: &P,
    me: &str,
    lease: i64,
    now: i64,
) -> Result<LockOutput, FnError> {
    if let Some(alive) = lapsed_but_alive(ports, me, now).await? {
        return Ok(LockOutput {
            acquired: false,
            released: false,
            holder: Some(alive.owner.clone()),
            took_over_from: None,
            reason: format!(
                "another execution is processing: {}'s lease lapsed but it is still RUNNING",
                alive.owner
            ),
        });
    }
    match ports.locks().acquire(PIPELINE_LOCK, me, lease, now).await? {
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
    }
}
