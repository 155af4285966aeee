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
pub mod names;
pub mod s3;
pub mod secrets;
pub mod sfn;
pub mod sns;
pub mod ssm;

use aws_config::{BehaviorVersion, SdkConfig};

pub use names::Names;

/// Every client the pipeline uses, built once per process.
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
        Clients::from_config(aws_config::load_defaults(BehaviorVersion::latest()).await)
    }

    pub fn from_config(config: SdkConfig) -> Clients {
        let s3_config = aws_sdk_s3::config::Builder::from(&config)
            .force_path_style(config.endpoint_url().is_some() || endpoint_override().is_some())
            .build();
        Clients {
            s3: aws_sdk_s3::Client::from_conf(s3_config),
            dynamodb: aws_sdk_dynamodb::Client::new(&config),
            ssm: aws_sdk_ssm::Client::new(&config),
            glue: aws_sdk_glue::Client::new(&config),
            sns: aws_sdk_sns::Client::new(&config),
            sfn: aws_sdk_sfn::Client::new(&config),
            secrets: aws_sdk_secretsmanager::Client::new(&config),
            config,
        }
    }
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
