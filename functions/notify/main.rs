//! The `notify` Lambda function: see `sluice_functions::notify`.

use std::sync::Arc;

use sluice_functions::{notify, serve, AwsPorts};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let ports = Arc::new(AwsPorts::from_env().await?);
    serve(move |input| {
        let ports = ports.clone();
        async move { Box::pin(notify::handle(ports.as_ref(), input)).await }
    })
    .await
}
