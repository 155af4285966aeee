//! SDK clients built on first use.
//!
//! A Lambda function calls two or three services; building every client at init costs init
//! time, and referencing every client's constructor links every service's configuration code
//! into every binary. An adapter holds a [`Lazy`] client instead: the client is built the
//! first time the adapter makes a call, so a function initialises, and (with LTO) links,
//! only the clients its handler calls.

use std::sync::{Arc, OnceLock};

use aws_config::SdkConfig;

/// An SDK client type and how it is built from the shared configuration.
pub trait ServiceClient: Clone + Send + Sync + 'static {
    fn from_sdk_config(config: &SdkConfig) -> Self;
}

/// A client built from `config` the first time [`Lazy::get`] is called, shared by clones.
#[derive(Clone, Debug)]
pub struct Lazy<C> {
    config: SdkConfig,
    cell: Arc<OnceLock<C>>,
}

impl<C: ServiceClient> Lazy<C> {
    /// A client to be built from `config` on first use.
    pub fn new(config: &SdkConfig) -> Lazy<C> {
        Lazy {
            config: config.clone(),
            cell: Arc::new(OnceLock::new()),
        }
    }

    pub fn get(&self) -> &C {
        self.cell.get_or_init(|| C::from_sdk_config(&self.config))
    }
}

/// A client built already (tests, the CLI's [`crate::Clients`]).
impl<C> From<C> for Lazy<C> {
    fn from(client: C) -> Lazy<C> {
        Lazy {
            config: SdkConfig::builder().build(),
            cell: Arc::new(OnceLock::from(client)),
        }
    }
}

macro_rules! service_client {
    ($($client:ty),*) => {$(
        impl ServiceClient for $client {
            fn from_sdk_config(config: &SdkConfig) -> Self {
                <$client>::new(config)
            }
        }
    )*};
}

service_client!(
    aws_sdk_dynamodb::Client,
    aws_sdk_glue::Client,
    aws_sdk_secretsmanager::Client,
    aws_sdk_sfn::Client,
    aws_sdk_sns::Client,
    aws_sdk_ssm::Client
);

/// S3 with path-style addressing when an endpoint is overridden (an emulator on 127.0.0.1
/// has no bucket subdomains).
impl ServiceClient for aws_sdk_s3::Client {
    fn from_sdk_config(config: &SdkConfig) -> Self {
        let s3_config = aws_sdk_s3::config::Builder::from(config)
            .force_path_style(
                config.endpoint_url().is_some() || crate::endpoint_override().is_some(),
            )
            .build();
        aws_sdk_s3::Client::from_conf(s3_config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone)]
    struct Counted(u32);
    static BUILT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    impl ServiceClient for Counted {
        fn from_sdk_config(_: &SdkConfig) -> Self {
            Counted(BUILT.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1)
        }
    }

    #[test]
    fn a_client_is_built_once_on_first_use_and_shared_by_clones() {
        let lazy: Lazy<Counted> = Lazy::new(&SdkConfig::builder().build());
        let clone = lazy.clone();
        assert_eq!(BUILT.load(std::sync::atomic::Ordering::SeqCst), 0);
        assert_eq!(lazy.get().0, 1);
        assert_eq!(clone.get().0, 1);
        assert_eq!(BUILT.load(std::sync::atomic::Ordering::SeqCst), 1);
        let ready: Lazy<Counted> = Counted(7).into();
        assert_eq!(ready.get().0, 7);
    }
}
