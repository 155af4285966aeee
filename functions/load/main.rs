//! The `load` Lambda function: see `sluice_functions::load`.

// Deeply nested async handlers (SDK futures inside the port futures) exceed the default.
#![recursion_limit = "256"]

use std::sync::Arc;

use sluice_functions::{load, serve, AwsPorts};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let ports = Arc::new(AwsPorts::from_env().await?);
    serve(move |input| {
        let ports = ports.clone();
        async move { Box::pin(load::handle(ports.as_ref(), input)).await }
    })
    .await
}
