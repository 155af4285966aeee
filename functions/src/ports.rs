//! The ports a handler needs, bundled, and their AWS implementation.

use sluice_aws::dynamo::{DynamoLocks, DynamoSpecs, DynamoWork};
use sluice_aws::glue::GlueCatalog;
use sluice_aws::lazy::Lazy;
use sluice_aws::s3::S3Store;
use sluice_aws::secrets::SecretsManagerSecrets;
use sluice_aws::sfn::SfnExecutions;
use sluice_aws::sns::SnsNotifier;
use sluice_aws::ssm::SsmSettings;
use sluice_aws::{Names, SdkConfig};
use sluice_core::ports::{
    Catalog, Executions, LockStore, Notifier, ObjectStore, PortResult, SecretStore, Settings,
    SpecStore, WorkQueue,
};

pub trait Ports: Send + Sync {
    type Store: ObjectStore;
    type Work: WorkQueue;
    type Locks: LockStore;
    type Specs: SpecStore;
    type Catalog: Catalog;
    type Notifier: Notifier;
    type Executions: Executions;
    type Settings: Settings;
    type Secrets: SecretStore;

    fn store(&self) -> &Self::Store;
    fn work(&self) -> &Self::Work;
    fn locks(&self) -> &Self::Locks;
    fn specs(&self) -> &Self::Specs;
    fn catalog(&self) -> &Self::Catalog;
    fn notifier(&self) -> &Self::Notifier;
    fn executions(&self) -> &Self::Executions;
    fn settings(&self) -> &Self::Settings;
    fn secrets(&self) -> &Self::Secrets;
    fn names(&self) -> &Names;
    /// Seconds since the epoch.
    fn now(&self) -> i64 {
        sluice_aws::now_secs()
    }
}

/// The ports over AWS, built once per process (per Lambda container).
pub struct AwsPorts {
    pub store: S3Store,
    pub work: DynamoWork,
    pub locks: DynamoLocks,
    pub specs: DynamoSpecs,
    pub catalog: GlueCatalog,
    pub notifier: SnsNotifier,
    pub executions: SfnExecutions,
    pub settings: SsmSettings,
    pub secrets: SecretsManagerSecrets,
    pub names: Names,
}

impl AwsPorts {
    /// The ports over AWS with the configuration `config` (the CLI's, a test's) and `names`.
    /// No client is built here: each is built on the handler's first call to its service
    /// ([`sluice_aws::lazy`]), so a function initialises and links only what it calls.
    pub async fn from_config(config: &SdkConfig, names: Names) -> PortResult<AwsPorts> {
        Ok(AwsPorts {
            store: S3Store::new(Lazy::new(config)),
            work: DynamoWork::new(Lazy::new(config), &names.work_table),
            locks: DynamoLocks::new(Lazy::new(config), &names.locks_table),
            specs: DynamoSpecs::new(Lazy::new(config), &names.specs_table),
            catalog: GlueCatalog::new(Lazy::new(config)),
            notifier: match &names.topic_arn {
                Some(arn) => SnsNotifier::new(Lazy::new(config), arn),
                None => SnsNotifier::by_name(Lazy::new(config), &names.topic_name).await?,
            },
            executions: SfnExecutions::new(Lazy::new(config)),
            settings: SsmSettings::new(Lazy::new(config), &names.settings_path)
                .with_secrets(names.secrets_path.clone()),
            secrets: SecretsManagerSecrets::new(Lazy::new(config)),
            names,
        })
    }

    /// From the environment, as every function's `main` builds them: the default AWS chain
    /// and the `SLUICE_*` names Terraform sets.
    pub async fn from_env() -> PortResult<AwsPorts> {
        AwsPorts::from_config(&sluice_aws::load_config().await, Names::from_env()).await
    }
}

impl Ports for AwsPorts {
    type Store = S3Store;
    type Work = DynamoWork;
    type Locks = DynamoLocks;
    type Specs = DynamoSpecs;
    type Catalog = GlueCatalog;
    type Notifier = SnsNotifier;
    type Executions = SfnExecutions;
    type Settings = SsmSettings;
    type Secrets = SecretsManagerSecrets;

    fn store(&self) -> &S3Store {
        &self.store
    }
    fn work(&self) -> &DynamoWork {
        &self.work
    }
    fn locks(&self) -> &DynamoLocks {
        &self.locks
    }
    fn specs(&self) -> &DynamoSpecs {
        &self.specs
    }
    fn catalog(&self) -> &GlueCatalog {
        &self.catalog
    }
    fn notifier(&self) -> &SnsNotifier {
        &self.notifier
    }
    fn executions(&self) -> &SfnExecutions {
        &self.executions
    }
    fn settings(&self) -> &SsmSettings {
        &self.settings
    }
    fn secrets(&self) -> &SecretsManagerSecrets {
        &self.secrets
    }
    fn names(&self) -> &Names {
        &self.names
    }
}

#[cfg(test)]
mod tests {
    use crate::run::is_safe_relative;

    #[test]
    fn keys_that_climb_out_of_the_scratch_folder_are_refused() {
        assert!(is_safe_relative("data/loans/year=2023/a.parquet"));
        assert!(is_safe_relative("./config/models/aspen.json"));
        for bad in ["../etc/passwd", "data/../../x", "/abs/path", ""] {
            assert!(!is_safe_relative(bad), "{bad}");
        }
    }
}
