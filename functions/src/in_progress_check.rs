//! in-progress-check: the pipeline lock. One execution processes at a time; the owner is the
//! execution ARN, held with a lease that ingest renews while it works. A lock whose owner
//! execution is no longer RUNNING is taken over and the takeover reported; a lapsed lease
//! whose owner is still RUNNING is not. An owner Step Functions does not know (a local run)
//! is judged by its lease alone.

use crate::contracts::{Action, LockInput, LockOutput};
use crate::run::{lease_seconds, PIPELINE_LOCK};
use sluice_core::ports::{Acquire, ExecutionStatus, Executions, LockStore};

use crate::errors::FnError;
use crate::ports::Ports;

/// A lease that lapsed while its owner still runs (Step Functions says RUNNING): not to be
/// taken over, whatever its expiry says. `None` when the lock is free, ours, unexpired (the
/// conditional write decides) or its owner is not running.
pub(crate) async fn lapsed_but_alive<P: Ports>(
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

/// The pipeline lock; a takeover of an expired or finished holder's lock is counted as EMF
/// (`LockTakeovers`, dataset `all`).
pub async fn handle<P: Ports>(ports: &P, input: LockInput) -> Result<LockOutput, FnError> {
    let out = handle_lock(ports, input).await?;
    if out.took_over_from.is_some() {
        use crate::metrics::{emit, Metric, PIPELINE};
        emit(
            &ports.names().env,
            PIPELINE,
            &[Metric::count("LockTakeovers", 1)],
            ports.now() * 1000,
        );
    }
    Ok(out)
}

async fn handle_lock<P: Ports>(ports: &P, input: LockInput) -> Result<LockOutput, FnError> {
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
