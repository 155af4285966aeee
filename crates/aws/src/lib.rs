//! Sluice's AWS adapters: each module implements one of the core's ports with the official
//! `aws-sdk-*` crates.
//!
//! Clients are built once from `aws_config::load_defaults(BehaviorVersion::latest())`. An
//! emulator is reached only through the standard `AWS_ENDPOINT_URL` /
//! `AWS_ENDPOINT_URL_<SERVICE>` variables; the only thing an endpoint override changes here
//! is path-style S3 addressing (an emulator on 127.0.0.1 has no bucket subdomains).

pub mod bootstrap;
pub mod dynamo;
pub mod error;
pub mod glue;
pub mod lazy;
pub mod names;
pub mod s3;
pub mod secrets;
pub mod sfn;
pub mod sns;
pub mod ssm;

pub use aws_config::SdkConfig;

use aws_config::BehaviorVersion;

pub use names::Names;

/// Every client the pipeline uses, built at once (the CLI, the tests); the Lambda functions
/// build theirs on first use ([`lazy`]).
#[derive(Clone, Debug)]
pub struct Clients {
    pub config: SdkConfig,
    pub s3: aws_sdk_s3::Client,
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub ssm: aws_sdk_ssm::Client,
    pub glue: aws_sdk_glue::Client,
    pub sns: aws_sdk_sns::Client,
    pub sfn: aws_sdk_sfn::Client,
    pub secrets: aws_sdk_secretsmanager::Client,
}

impl Clients {
    /// Loads the default chain (environment, profile, instance role) and builds the clients.
    pub async fn load() -> Clients {
        Clients::from_config(load_config().await)
    }

    pub fn from_config(config: SdkConfig) -> Clients {
        use lazy::ServiceClient;
        Clients {
            s3: ServiceClient::from_sdk_config(&config),
            dynamodb: ServiceClient::from_sdk_config(&config),
            ssm: ServiceClient::from_sdk_config(&config),
            glue: ServiceClient::from_sdk_config(&config),
            sns: ServiceClient::from_sdk_config(&config),
            sfn: ServiceClient::from_sdk_config(&config),
            secrets: ServiceClient::from_sdk_config(&config),
            config,
        }
    }
}

/// The default chain's configuration (environment, profile, instance role).
pub async fn load_config() -> SdkConfig {
    aws_config::load_defaults(BehaviorVersion::latest()).await
}

/// The endpoint override in the environment, if any: `AWS_ENDPOINT_URL` or a per-service
/// `AWS_ENDPOINT_URL_<SERVICE>`.
pub fn endpoint_override() -> Option<String> {
    std::env::vars()
        .filter(|(k, v)| {
            (k == "AWS_ENDPOINT_URL" || k.starts_with("AWS_ENDPOINT_URL_")) && !v.is_empty()
        })
        .map(|(k, v)| format!("{k}={v}"))
        .min()
}

/// Seconds since the epoch, from the system clock.
pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
