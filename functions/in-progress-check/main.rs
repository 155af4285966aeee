//! The `in-progress-check` Lambda function: see `sluice_functions::in_progress_check`.

use std::sync::Arc;

use sluice_functions::{in_progress_check, serve, AwsPorts};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let ports = Arc::new(AwsPorts::from_env().await?);
    serve(move |input| {
        let ports = ports.clone();
        async move { Box::pin(in_progress_check::handle(ports.as_ref(), input)).await }
    })
    .await
}
