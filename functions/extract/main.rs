//! The `extract` Lambda function: see `sluice_functions::extract`.

use std::sync::Arc;

use sluice_functions::{extract, serve, AwsPorts};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let ports = Arc::new(AwsPorts::from_env().await?);
    serve(move |input| {
        let ports = ports.clone();
        async move { Box::pin(extract::handle(ports.as_ref(), input)).await }
    })
    .await
}
