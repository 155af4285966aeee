//! The ports a handler needs, bundled, and their AWS implementation.

use sluice_aws::dynamo::{DynamoLocks, DynamoSpecs, DynamoWork};
use sluice_aws::glue::GlueCatalog;
use sluice_aws::s3::S3Store;
use sluice_aws::secrets::SecretsManagerSecrets;
use sluice_aws::sfn::SfnExecutions;
use sluice_aws::sns::SnsNotifier;
use sluice_aws::ssm::SsmSettings;
use sluice_aws::{Clients, Names};
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
    pub async fn new(clients: &Clients, names: Names) -> PortResult<AwsPorts> {
        Ok(AwsPorts {
            store: S3Store::new(clients.s3.clone()),
            work: DynamoWork::new(clients.dynamodb.clone(), &names.work_table),
            locks: DynamoLocks::new(clients.dynamodb.clone(), &names.locks_table),
            specs: DynamoSpecs::new(clients.dynamodb.clone(), &names.specs_table),
            catalog: GlueCatalog::new(clients.glue.clone()),
            notifier: match &names.topic_arn {
                Some(arn) => SnsNotifier::new(clients.sns.clone(), arn),
                None => SnsNotifier::by_name(clients.sns.clone(), &names.topic_name).await?,
            },
            executions: SfnExecutions::new(clients.sfn.clone()),
            settings: SsmSettings::new(clients.ssm.clone(), &names.settings_path),
            secrets: SecretsManagerSecrets::new(clients.secrets.clone()),
            names,
        })
    }

    /// From the environment: the default AWS chain and `SLUICE_*` names (set by Terraform).
    pub async fn from_env() -> PortResult<AwsPorts> {
        let clients = Clients::load().await;
        AwsPorts::new(&clients, Names::from_env()).await
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

/// A numeric setting, or `default` when it is not set. An SSM error (AccessDenied,
/// throttling) is an error, never the default; a value that is not a number is refused with
/// its name.
pub async fn setting_or<P: Ports>(
    ports: &P,
    name: &str,
    default: i64,
) -> Result<i64, crate::errors::FnError> {
    match ports.settings().get(name).await? {
        None => Ok(default),
        Some(v) => v.trim().parse().map_err(|_| {
            crate::errors::FnError::new(
                crate::errors::BAD_INPUT,
                format!("setting {name} is {v:?}: not a whole number"),
            )
        }),
    }
}

/// True for a key that names a file below a folder: no `..`, no root, no drive prefix.
pub fn is_safe_relative(key: &str) -> bool {
    use std::path::Component;
    !key.is_empty()
        && std::path::Path::new(key)
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}

/// Copies the objects under `prefix` in `bucket` whose key `keep` accepts to `root/<key>`;
/// returns the local paths.
pub async fn download_prefix<P: Ports>(
    ports: &P,
    bucket: &str,
    prefix: &str,
    root: &std::path::Path,
    keep: impl Fn(&str) -> bool,
) -> Result<Vec<std::path::PathBuf>, crate::errors::FnError> {
    use sluice_core::ports::ObjectStore;
    let mut files = Vec::new();
    for o in ports.store().list(bucket, prefix).await? {
        if !keep(&o.key) {
            continue;
        }
        // A key is joined to a local path: one that climbs out (`..`) or is absolute would
        // write outside the scratch folder.
        if !is_safe_relative(&o.key) {
            return Err(crate::errors::FnError::new(
                crate::errors::BAD_INPUT,
                format!(
                    "s3://{bucket}/{}: a key that is not a plain relative path",
                    o.key
                ),
            ));
        }
        let dest = root.join(&o.key);
        if let Some(dir) = dest.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| crate::errors::FnError::new(crate::errors::INTERNAL, e.to_string()))?;
        }
        ports
            .store()
            .get_to_file(bucket, &o.key, None, &dest)
            .await?;
        files.push(dest);
    }
    Ok(files)
}

/// The `*.json` documents under `prefix` in the lake bucket (models, targets), each with its
/// `s3://` name for errors, in key order.
pub async fn config_documents<P: Ports>(
    ports: &P,
    prefix: &str,
) -> Result<Vec<(String, String)>, crate::errors::FnError> {
    use sluice_core::ports::ObjectStore;
    let lake = ports.names().lake_bucket.clone();
    let mut out = Vec::new();
    for o in ports.store().list(&lake, prefix).await? {
        if !o.key.ends_with(".json") {
            continue;
        }
        let bytes = ports
            .store()
            .get_bytes(&lake, &o.key)
            .await?
            .ok_or_else(|| {
                crate::errors::FnError::new(
                    crate::errors::AWS,
                    format!("s3://{lake}/{} vanished while listing", o.key),
                )
            })?;
        out.push((
            format!("s3://{lake}/{}", o.key),
            String::from_utf8_lossy(&bytes).into_owned(),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::is_safe_relative;

    #[test]
    fn keys_that_climb_out_of_the_scratch_folder_are_refused() {
        assert!(is_safe_relative("data/loans/year=2023/a.parquet"));
        assert!(is_safe_relative("./config/models/aspen.json"));
        for bad in ["../etc/passwd", "data/../../x", "/abs/path", ""] {
            assert!(!is_safe_relative(bad), "{bad}");
        }
    }
}
