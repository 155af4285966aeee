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
pub mod fetch;
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
pub mod stage;
pub mod stream;
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
            use lambda_runtime::tracing::Instrument;
            let handler = handler.clone();
            let span = invocation_span(&event.payload);
            async move {
                let input: I = serde_json::from_value(event.payload)
                    .map_err(|e| FnError::unreadable("the input", e))?;
                handler(input).await
            }
            .instrument(span)
        },
    ))
    .await
}

/// Every log line of an invocation, in every function, carries the execution and the state
/// (every Task passes `$$.State.Name` as `state`) and, for one file, the work item, its
/// dataset and its object key (the JSON log format writes the span's
/// fields into each line as `spans.0.*`): one Logs Insights query finds everything that
/// happened in a run, or to a file. Fields a payload lacks are empty.
pub fn invocation_span(payload: &serde_json::Value) -> lambda_runtime::tracing::Span {
    let text = |v: Option<&serde_json::Value>| {
        v.and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let item = payload.get("item");
    // An S3 event (the queue-generator's) names its object under detail.object.key.
    let key = item
        .and_then(|i| i.get("key"))
        .or_else(|| payload.pointer("/detail/object/key"));
    lambda_runtime::tracing::info_span!(
        "invocation",
        execution = %text(payload.get("execution")),
        state = %text(payload.get("state")),
        item = %text(item.and_then(|i| i.get("id"))),
        dataset = %text(item.and_then(|i| i.get("dataset"))),
        key = %text(key),
    )
}

#[cfg(test)]
mod log_tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Log lines as the functions write them in Lambda (lambda_runtime's subscriber with
    /// `AWS_LAMBDA_LOG_FORMAT=JSON`, as Terraform configures them): an item's lines carry the
    /// execution, the item, its dataset and its key under `spans.0`, and an S3 event's line
    /// its object key, where the saved Logs Insights queries read them.
    #[test]
    fn every_line_of_an_invocation_carries_its_execution_item_dataset_and_key() {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let sink = buf.clone();
        std::env::set_var("AWS_LAMBDA_LOG_FORMAT", "JSON");
        lambda_runtime::tracing::init_default_subscriber_with_writer(move || Sink(sink.clone()));
        let item = serde_json::json!({
            "execution": "arn:aws:states:us-east-1:1:execution:m:run-7",
            "state": "Ingest",
            "item": {"id": "s3://raw/credit/a.csv#e1:credit", "bucket": "raw",
                     "key": "credit/a.csv", "etag": "e1", "dataset": "credit"}
        });
        let event = serde_json::json!({"detail": {"object": {"key": "loans/b.xlsx"}}});
        super::invocation_span(&item)
            .in_scope(|| lambda_runtime::tracing::info!(rows = 3, "log-test item line"));
        super::invocation_span(&event)
            .in_scope(|| lambda_runtime::tracing::warn!("log-test event line"));
        let text = String::from_utf8(buf.lock().unwrap().clone()).unwrap();
        let line = |marker: &str| -> serde_json::Value {
            let l = text
                .lines()
                .find(|l| l.contains(marker))
                .unwrap_or_else(|| panic!("no line with {marker} in {text}"));
            serde_json::from_str(l).expect("a JSON line")
        };
        let a = line("log-test item line");
        assert_eq!(a["spans"][0]["execution"], item["execution"]);
        assert_eq!(a["spans"][0]["state"], "Ingest");
        assert_eq!(a["spans"][0]["item"], item["item"]["id"]);
        assert_eq!(a["spans"][0]["dataset"], "credit");
        assert_eq!(a["spans"][0]["key"], "credit/a.csv");
        assert_eq!(a["fields"]["rows"], 3);
        let b = line("log-test event line");
        assert_eq!(b["spans"][0]["key"], "loans/b.xlsx");
        assert_eq!(b["level"], "WARN");
    }
}
