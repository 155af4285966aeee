//! Test support with AWS: the local AWS emulator (moto), SDK configuration for it, and SNS
//! messages read back through SQS. Everything without AWS (the independent Parquet reader,
//! generated data, the local database servers, unique names) is `sluice-testdata`,
//! re-exported here; crates whose tests need no AWS depend on that alone.
//!
//! `endpoint()` returns the emulator's URL. It uses `AWS_ENDPOINT_URL` when that points at
//! 127.0.0.1 (a server you started), and otherwise runs `scripts/local-aws start`, which
//! installs moto into a project-local virtualenv if needed and starts it (once per machine
//! state directory; `.ci/run` stops it afterwards). If the emulator cannot start, the calling
//! test fails and says how to install it: AWS tests are never skipped.
//!
//! Only plain data is shared between tests: each `#[tokio::test]` has its own runtime, and SDK
//! clients must not outlive the runtime that made them, so every test builds its own.

use std::sync::OnceLock;

pub use sluice_testdata::*;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;

static ENDPOINT: OnceLock<Result<String, String>> = OnceLock::new();

fn start() -> Result<String, String> {
    if let Ok(url) = std::env::var("AWS_ENDPOINT_URL") {
        if url.starts_with("http://127.0.0.1:") {
            return Ok(url);
        }
        return Err(format!(
            "AWS_ENDPOINT_URL={url}: tests only run against a local emulator on 127.0.0.1; unset it"
        ));
    }
    let advice = "\nIt needs python3 with venv and pip (Debian: apt-get install -y python3 \
                  python3-venv) and a reachable package registry to install moto[server].";
    start_servers(
        "local-aws",
        &["AWS_ENDPOINT_URL"],
        "the local AWS emulator",
        advice,
    )?
    .pop()
    .ok_or_else(|| "scripts/local-aws start printed no AWS_ENDPOINT_URL".into())
}

/// The emulator's endpoint URL; panics (failing the test) with install advice when it cannot
/// be started.
pub fn endpoint() -> String {
    match ENDPOINT.get_or_init(start) {
        Ok(url) => url.clone(),
        Err(message) => panic!("{message}"),
    }
}

/// SDK configuration for the emulator: the same loader as production, with the endpoint,
/// test credentials and us-east-1.
pub async fn sdk_config() -> SdkConfig {
    let url = endpoint();
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(url)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(
            "test",
            "test",
            None,
            None,
            "sluice-testkit",
        ))
        .load()
        .await
}

/// The environment a child process (the `sluice` binary) needs to reach the emulator.
pub fn child_env() -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ENDPOINT_URL", endpoint()),
        ("AWS_ACCESS_KEY_ID", "test".into()),
        ("AWS_SECRET_ACCESS_KEY", "test".into()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_EC2_METADATA_DISABLED", "true".into()),
    ]
}

/// Subscribes a new SQS queue to an SNS topic (how messages are read back from the emulator);
/// returns the queue URL.
pub async fn sns_inbox(config: &SdkConfig, topic_arn: &str) -> String {
    use aws_sdk_sqs::types::QueueAttributeName;
    let sqs = aws_sdk_sqs::Client::new(config);
    let created = sqs.create_queue().queue_name(unique("inbox")).send().await;
    let url = created
        .ok()
        .and_then(|c| c.queue_url)
        .unwrap_or_else(|| panic!("cannot create an SQS queue"));
    let attrs = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .ok()
        .and_then(|a| a.attributes)
        .unwrap_or_default();
    let arn = attrs
        .get(&QueueAttributeName::QueueArn)
        .cloned()
        .unwrap_or_else(|| panic!("the queue has no ARN"));
    let sub = aws_sdk_sns::Client::new(config)
        .subscribe()
        .topic_arn(topic_arn)
        .protocol("sqs")
        .endpoint(arn)
        .send()
        .await;
    if let Err(e) = sub {
        panic!("cannot subscribe the queue to {topic_arn}: {e}");
    }
    url
}

/// The next message delivered to an inbox: (subject, the message's JSON body).
pub async fn next_message(config: &SdkConfig, inbox: &str) -> (String, serde_json::Value) {
    let sqs = aws_sdk_sqs::Client::new(config);
    let got = sqs
        .receive_message()
        .queue_url(inbox)
        .wait_time_seconds(2)
        .send()
        .await;
    let body = got
        .ok()
        .and_then(|g| g.messages.and_then(|m| m.into_iter().next()))
        .and_then(|m| m.body)
        .unwrap_or_else(|| panic!("no message arrived in {inbox}"));
    unwrap_sns(&body)
}

/// Every message still to arrive in `inbox`: received until a second passes with none.
pub async fn all_messages(config: &SdkConfig, inbox: &str) -> Vec<(String, serde_json::Value)> {
    let sqs = aws_sdk_sqs::Client::new(config);
    let mut out = Vec::new();
    loop {
        let got = sqs
            .receive_message()
            .queue_url(inbox)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await;
        let batch = got.ok().and_then(|g| g.messages).unwrap_or_default();
        if batch.is_empty() {
            return out;
        }
        out.extend(
            batch
                .into_iter()
                .filter_map(|m| m.body)
                .map(|b| unwrap_sns(&b)),
        );
    }
}

/// The subject and the JSON message of an SNS envelope delivered to SQS.
fn unwrap_sns(body: &str) -> (String, serde_json::Value) {
    let envelope: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    let message = envelope["Message"]
        .as_str()
        .and_then(|m| serde_json::from_str(m).ok())
        .unwrap_or_default();
    (
        envelope["Subject"].as_str().unwrap_or("").to_owned(),
        message,
    )
}

/// True when no further message arrives in `inbox` within a second (messages already
/// received stay invisible for the queue's visibility timeout).
pub async fn no_more_messages(config: &SdkConfig, inbox: &str) -> bool {
    let sqs = aws_sdk_sqs::Client::new(config);
    let got = sqs
        .receive_message()
        .queue_url(inbox)
        .wait_time_seconds(1)
        .send()
        .await;
    got.ok()
        .and_then(|g| g.messages)
        .is_none_or(|m| m.is_empty())
}
