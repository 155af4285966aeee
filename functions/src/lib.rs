//! Sluice's Lambda functions. Each function is a thin `main.rs` (under `functions/<name>/`)
//! over a handler here; handlers are generic over [`Ports`], so the same code runs in Lambda,
//! in `sluice run` (in-process, against the emulator) and in tests.
//!
//! - [`registry`]: the list of functions, once: dispatch, the `events/` check, and what the
//!   wiring and Terraform tests hold `Cargo.toml`, `statemachine/` and `terraform/` to.
//! - [`contracts`]: every step's input and output (the JSON of the state machines).
//! - [`run`]: what the steps of one run share (the pipeline lock, the run's items, settings).
//! - [`errors`]: [`FnError`] and the stable error names the state machines match.
//! - one module per handler (`queue_generator`, `in_progress_check`, `ingest`, `notify`,
//!   `extract`, `normalize`, `load`), over [`Ports`] (`ports`; in Lambda, [`AwsPorts`]).

pub mod contracts;
pub mod errors;
pub mod extract;
#[cfg(test)]
mod handler_tests;
pub mod in_progress_check;
pub mod ingest;
pub mod load;
pub mod local;
#[cfg(test)]
mod memory;
pub mod metrics;
pub mod normalize;
pub mod notify;
pub mod ports;
pub mod pull;
pub mod queue_generator;
pub mod registry;
pub mod requeue;
pub mod run;
pub mod sweep;

pub use errors::FnError;
pub use ports::{AwsPorts, Ports};

/// Runs a handler as a Lambda function: JSON in, JSON out, errors reported with their stable
/// names as the error type (what Step Functions' Retry and Catch match on). The mains box the
/// handler's future: nested inline, its layout passes the compiler's query depth limit.
pub async fn serve<I, O, F, Fut>(handler: F) -> Result<(), lambda_runtime::Error>
where
    I: serde::de::DeserializeOwned + Send + 'static,
    O: serde::Serialize + Send + 'static,
    F: Fn(I) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<O, FnError>> + Send + 'static,
{
    lambda_runtime::tracing::init_default_subscriber();
    let handler = std::sync::Arc::new(handler);
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<serde_json::Value>| {
            let handler = handler.clone();
            async move {
                let input: I = serde_json::from_value(event.payload)
                    .map_err(|e| FnError::unreadable("the input", e))?;
                handler(input).await
            }
        },
    ))
    .await
}
