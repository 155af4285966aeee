//! A local interpreter for Amazon States Language definitions written in JSONPath.
//!
//! It runs the state types and fields Sluice's definitions use — Task, Choice, Map, Parallel,
//! Pass, Wait, Succeed, Fail; InputPath, Parameters/ItemSelector, ResultSelector, ResultPath,
//! OutputPath; the context object; the common intrinsic functions; Retry and Catch — calling
//! Task resources through a [`TaskRunner`]. It writes the history AWS writes, event by event
//! (`TaskStateEntered`, `LambdaFunctionScheduled`, `MapIterationSucceeded`, ...), so an
//! execution fails at the 25,000-event quota as it would on AWS; distributed Maps run their
//! items as child executions with their own histories (items from an `ItemReader` through the
//! runner, tolerated failures); and [`redrive`] resumes a failed execution as the console's
//! Redrive does (`../shared/REDRIVE.md`, rules R1–R12): the states entered and never exited
//! run again with their recorded input, nothing that exited runs again.
//!
//! Differences from AWS, on purpose: Map iterations, child executions and Parallel branches
//! run one after the other (MaxConcurrency bounds parallelism, it does not change results);
//! Wait and Retry delays are multiplied by [`Options::time_scale`] (0 in tests: a virtual
//! clock); JSONata, `Assign` and activities are not supported and are reported as
//! `States.Runtime` errors naming the field.

mod choice;
mod exec;
pub mod intrinsic;
pub mod path;
mod plan;
mod record;

pub use exec::{
    not_redrivable, redrive, restart_points, run, Options, TaskError, TaskRunner,
    HISTORY_LIMIT_ERROR, MAX_PAYLOAD,
};
pub use record::{
    Event, ExecutionInfo, Record, Status, HISTORY_LIMIT, REDRIVE_DAYS, REDRIVE_EVENT_LIMIT,
};

/// An error raised while running a state: a name (`States.TaskFailed`, a function's error
/// type, ...) and a cause.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{error}: {cause}")]
pub struct StateError {
    pub error: String,
    pub cause: String,
}

impl StateError {
    pub fn new(error: impl Into<String>, cause: impl Into<String>) -> StateError {
        StateError {
            error: error.into(),
            cause: cause.into(),
        }
    }

    pub fn runtime(cause: impl Into<String>) -> StateError {
        StateError::new("States.Runtime", cause)
    }
}
