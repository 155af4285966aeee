//! A local interpreter for Amazon States Language definitions written in JSONPath.
//!
//! It runs the state types and fields Sluice's definitions use — Task, Choice, Map, Parallel,
//! Pass, Wait, Succeed, Fail; InputPath, Parameters/ItemSelector, ResultSelector, ResultPath,
//! OutputPath; the context object; the common intrinsic functions; Retry and Catch — calling
//! Task resources through a [`TaskRunner`]. It records a history, and [`redrive`] resumes a
//! failed execution as the console's Redrive does: same execution id and input, successful
//! Task results kept and not re-run, failed work (including failed Map iterations) run again.
//!
//! Differences from AWS, on purpose: Map iterations and Parallel branches run one after the
//! other (MaxConcurrency bounds parallelism, it does not change results); Wait and Retry
//! delays are multiplied by [`Options::time_scale`] (0 in tests: a virtual clock); JSONata,
//! `Assign`, activities and distributed Map are not supported and are reported as
//! `States.Runtime` errors naming the field.

mod choice;
mod exec;
pub mod intrinsic;
pub mod path;

pub use exec::{
    redrive, run, Event, ExecutionInfo, Options, Record, Status, TaskError, TaskRunner,
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
