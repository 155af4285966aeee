//! The `queue-generator` Lambda function: see `sluice_functions::queue_generator`.

use std::sync::Arc;

use sluice_functions::{queue_generator, serve, AwsPorts};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let ports = Arc::new(AwsPorts::from_env().await?);
    serve(move |input| {
        let ports = ports.clone();
        async move { Box::pin(queue_generator::handle_request(ports.as_ref(), input)).await }
    })
    .await
}
