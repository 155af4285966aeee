//! load: after Normalize, the lake tables this run touched go into the application databases.
//!
//! The targets are JSON documents in the lake bucket (`config/targets/<name>.json`, put there by
//! `sluice bootstrap --targets` and by Terraform). For each target that receives a dataset with
//! an item done in this run, or a table of a model this run normalized, the load reads the
//! connection from the target's Secrets Manager secret and loads those tables
//! (`sluice_db::load_target`): exactly once per lake file through the target's ledger, so a
//! retry or a Redrive that re-runs this state loads nothing twice. Transient database failures
//! (unreachable, deadlock, serialization failure, too many connections, a lost connection) are
//! `Sluice.Transient`, retried by the state's Retry; anything else is `Sluice.LoadFailed`, left
//! uncaught so the execution fails here and Redrive resumes at Load once it is fixed
//! (../shared/REDRIVE.md).

use crate::contracts::{LoadInput, LoadOutput, TargetOutcome};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use sluice_core::model::ModelSpec;
use sluice_core::ports::{ObjectStore, SecretStore, SpecStore, WorkStatus};
use sluice_core::target::TargetSpec;
use sluice_db::{Credentials, Lake, LakeObject, LoadOptions};

use crate::errors::FnError;
use crate::normalize::load_models;
use crate::ports::Ports;
use crate::run::hold_lock;
use crate::run::items_of_run;
use crate::run::{config_documents, is_safe_relative};

/// Where targets live in the lake bucket.
pub const TARGETS_PREFIX: &str = "config/targets/";

async fn load_targets<P: Ports>(ports: &P) -> Result<Vec<TargetSpec>, FnError> {
    config_documents(ports, TARGETS_PREFIX, TargetSpec::from_json).await
}

pub async fn handle<P: Ports>(ports: &P, input: LoadInput) -> Result<LoadOutput, FnError> {
    let targets = load_targets(ports).await?;
    let mut out = LoadOutput {
        targets: Vec::new(),
        rows_loaded: 0,
    };
    if targets.is_empty() {
        return Ok(out);
    }
    hold_lock(ports, &input.execution).await?;
    let models = load_models(ports).await?;
    let touched: BTreeSet<String> = match &input.tables {
        Some(t) => t.iter().cloned().collect(),
        None => touched_tables(ports, &input, &models).await?,
    };
    let specs: Vec<_> = ports
        .specs()
        .list_specs()
        .await?
        .into_iter()
        .map(|s| s.spec)
        .collect();
    for target in &targets {
        let file = format!(
            "s3://{}/{TARGETS_PREFIX}{}.json",
            ports.names().lake_bucket,
            target.target
        );
        let tables = target
            .plan(&file, &specs, &models)
            .map_err(|e| FnError::load_failed(e.to_string()))?;
        let only: Vec<String> = tables
            .iter()
            .map(|t| t.lake_table.clone())
            .filter(|t| touched.contains(t))
            .collect();
        if only.is_empty() {
            out.targets.push(TargetOutcome {
                target: target.target.clone(),
                status: "skipped".into(),
                reason: Some("this run touched none of its tables".into()),
                report: None,
            });
            continue;
        }
        let secret = &target.connection.secret;
        let text = ports.secrets().secret_string(secret).await.map_err(|e| {
            let message = format!("target {}: reading secret {secret}", target.target);
            let retryable = e.is_retryable();
            let source = Some(e.into());
            if retryable {
                FnError::Transient { message, source }
            } else {
                FnError::LoadFailed { message, source }
            }
        })?;
        let creds = Credentials::from_json(&text, secret, &target.target)
            .map_err(|e| FnError::load_failed(e.to_string()))?;
        let scratch = tempfile::tempdir().map_err(|e| FnError::internal("no scratch space", e))?;
        let lake = S3Lake {
            ports,
            scratch: scratch.path().to_path_buf(),
        };
        let opts = LoadOptions {
            execution: input.execution.clone(),
            only: Some(only),
            ..LoadOptions::default()
        };
        let report = sluice_db::load_target(target, &tables, &creds, secret, &lake, &opts)
            .await
            .map_err(|e| {
                // The load's errors name the target themselves.
                let message = "the load".to_owned();
                if e.is_transient() {
                    FnError::Transient {
                        message,
                        source: Some(e.into()),
                    }
                } else {
                    FnError::LoadFailed {
                        message,
                        source: Some(e.into()),
                    }
                }
            })?;
        out.rows_loaded += report.tables.iter().map(|t| t.rows_loaded).sum::<u64>();
        // Per lake table: rows loaded, files loaded, and whether the counts reconciled.
        for t in &report.tables {
            use crate::metrics::{emit, Metric};
            emit(
                &ports.names().env,
                &t.lake_table,
                &[
                    Metric::count("RowsLoaded", t.rows_loaded),
                    Metric::count("FilesLoaded", t.files_loaded as u64),
                    Metric::count("TablesUnreconciled", u64::from(!t.reconciled)),
                ],
                ports.now() * 1000,
            );
        }
        lambda_runtime::tracing::info!(
            execution = %input.execution,
            target = %target.target,
            rows_loaded = report.tables.iter().map(|t| t.rows_loaded).sum::<u64>(),
            "load"
        );
        out.targets.push(TargetOutcome {
            target: target.target.clone(),
            status: "loaded".into(),
            reason: None,
            report: Some(report),
        });
    }
    Ok(out)
}

/// The lake tables this run wrote: the datasets of its done items and the tables of the
/// models Normalize rebuilt.
async fn touched_tables<P: Ports>(
    ports: &P,
    input: &LoadInput,
    models: &[ModelSpec],
) -> Result<BTreeSet<String>, FnError> {
    let mut touched: BTreeSet<String> = items_of_run(ports, &input.execution)
        .await?
        .into_iter()
        .filter(|w| w.status == WorkStatus::Done)
        .map(|w| w.dataset)
        .collect();
    if let Some(n) = &input.normalize {
        for outcome in n.models.iter().filter(|m| m.status == "normalized") {
            if let Some(m) = models.iter().find(|m| m.model == outcome.model) {
                touched.extend(m.tables.iter().map(|t| m.lake_table(&t.name)));
            }
        }
    }
    Ok(touched)
}

/// The lake bucket as the load reads it: listings give each file's key and ETag; a file is
/// downloaded to scratch space when its turn comes and removed when it is loaded, so the disk
/// holds one lake file at a time.
struct S3Lake<'a, P> {
    ports: &'a P,
    scratch: PathBuf,
}

impl<P: Ports> Lake for S3Lake<'_, P> {
    async fn list(&self, lake_table: &str) -> Result<Vec<LakeObject>, String> {
        let lake = &self.ports.names().lake_bucket;
        let objects = self
            .ports
            .store()
            .list(lake, &format!("data/{lake_table}/"))
            .await
            .map_err(|e| e.to_string())?;
        Ok(objects
            .into_iter()
            .filter(|o| o.key.ends_with(".parquet"))
            .map(|o| LakeObject {
                etag: o.etag.unwrap_or_default(),
                key: o.key,
            })
            .collect())
    }

    async fn fetch(&self, object: &LakeObject) -> Result<PathBuf, String> {
        if !is_safe_relative(&object.key) {
            return Err("a key that is not a plain relative path".into());
        }
        let dest = self.scratch.join(&object.key);
        if let Some(dir) = dest.parent() {
            std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        }
        let lake = &self.ports.names().lake_bucket;
        self.ports
            .store()
            .get_to_file(lake, &object.key, None, &dest)
            .await
            .map_err(|e| e.to_string())?;
        Ok(dest)
    }

    fn release(&self, path: &Path) {
        let _ = std::fs::remove_file(path);
    }
}
