//! Commands that talk to AWS (or to the local emulator through `AWS_ENDPOINT_URL`).

use std::path::Path;

use anyhow::{bail, Context, Result};
use sluice_aws::bootstrap::{bootstrap, Change};
use sluice_aws::{endpoint_override, Clients, Names};
use sluice_core::model::ModelSpec;
use sluice_core::target::TargetSpec;
use sluice_core::TableSpec;

/// The names to use: `SLUICE_ENV` and `SLUICE_*` overrides, or `--env`.
pub fn names(env: Option<&str>) -> Names {
    match env {
        Some(env) => Names::for_env(env),
        None => Names::from_env(),
    }
}

/// Refuses to touch a real account unless asked to.
pub fn guard_real_account(real_account: bool) -> Result<()> {
    match (endpoint_override(), real_account) {
        (Some(endpoint), _) => {
            eprintln!("endpoint override: {endpoint}");
            Ok(())
        }
        (None, true) => {
            eprintln!(
                "no endpoint override: working on the real AWS account of the current credentials"
            );
            Ok(())
        }
        (None, false) => bail!(
            "no endpoint override is set (AWS_ENDPOINT_URL or AWS_ENDPOINT_URL_<SERVICE>), so this \
             would create resources in a real AWS account. For the local emulator run \
             `eval \"$(scripts/local-aws start)\"` first; to bootstrap a real account on purpose, \
             add --real-account (deployed environments are normally created by Terraform)."
        ),
    }
}

pub async fn run_bootstrap(
    env: Option<&str>,
    tables: &Path,
    models: &Path,
    targets: &[std::path::PathBuf],
    real_account: bool,
    json: bool,
) -> Result<()> {
    guard_real_account(real_account)?;
    let specs = TableSpec::load_dir(tables)?;
    let models = ModelSpec::load_dir(models)?;
    // Load targets are opt-in: each one makes every run load into its database.
    let mut documents = Vec::new();
    for path in targets {
        let target = TargetSpec::load(path)?;
        let plain_specs: Vec<TableSpec> = specs.iter().map(|(s, _)| s.clone()).collect();
        let plain_models: Vec<ModelSpec> = models.iter().map(|(m, _)| m.clone()).collect();
        target.plan(&path.display().to_string(), &plain_specs, &plain_models)?;
        documents.push((target.target.clone(), std::fs::read(path)?));
    }
    let names = names(env);
    let clients = Clients::load().await;
    let report = bootstrap(&clients, &names, &specs, &models)
        .await
        .context("bootstrap stopped; fix the cause and run it again (every step is idempotent)")?;
    for (name, body) in documents {
        let key = format!("config/targets/{name}.json");
        clients
            .s3
            .put_object()
            .bucket(&names.lake_bucket)
            .key(&key)
            .content_type("application/json")
            .body(body.into())
            .send()
            .await
            .with_context(|| format!("uploading s3://{}/{key}", names.lake_bucket))?;
        eprintln!("target: s3://{}/{key}", names.lake_bucket);
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    for step in &report.steps {
        let verb = match step.change {
            Change::Created => "created  ",
            Change::Updated => "updated  ",
            Change::Unchanged => "unchanged",
        };
        match &step.detail {
            Some(d) => println!("{verb} {} ({d})", step.resource),
            None => println!("{verb} {}", step.resource),
        }
    }
    match report.changed() {
        0 => println!("environment {}: nothing to change", names.env),
        n => println!("environment {}: {n} change(s)", names.env),
    }
    Ok(())
}
