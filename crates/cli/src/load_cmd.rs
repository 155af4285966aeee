//! `sluice load`: lake tables from a local folder into a target database.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use sluice_core::model::ModelSpec;
use sluice_core::target::TargetSpec;
use sluice_core::TableSpec;
use sluice_db::{Credentials, LoadOptions, LoadReport, LocalLake};

pub struct LoadArgs<'a> {
    pub target: &'a str,
    pub input: &'a Path,
    pub targets: &'a Path,
    pub tables: &'a Path,
    pub models: &'a Path,
    pub only: Vec<String>,
    pub json: bool,
}

fn target_path(dir: &Path, target: &str) -> PathBuf {
    let p = PathBuf::from(target);
    if p.exists() || target.ends_with(".json") {
        p
    } else {
        dir.join(format!("{target}.json"))
    }
}

pub fn run(a: LoadArgs<'_>) -> Result<()> {
    let path = target_path(a.targets, a.target);
    let target = TargetSpec::load(&path)?;
    let specs: Vec<TableSpec> = TableSpec::load_dir(a.tables)?
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    let models: Vec<ModelSpec> = ModelSpec::load_dir(a.models)?
        .into_iter()
        .map(|(m, _)| m)
        .collect();
    let tables = target.plan(&path.display().to_string(), &specs, &models)?;
    // Locally the secret's JSON comes from the environment; the pipeline reads the secret.
    let var = target.env_var();
    let text = crate::local_secret(
        &var,
        &format!("target {}", target.target),
        &target.connection.secret,
    )?;
    let creds = Credentials::from_json(&text, &var, &target.target)?;
    let opts = LoadOptions {
        execution: format!("local-{}", chrono::Utc::now().format("%Y%m%dT%H%M%SZ")),
        only: (!a.only.is_empty()).then(|| a.only.clone()),
        ..LoadOptions::default()
    };
    let lake = LocalLake {
        root: a.input.to_path_buf(),
    };
    let rt = crate::runtime()?;
    let report = rt
        .block_on(sluice_db::load_target(
            &target, &tables, &creds, &var, &lake, &opts,
        ))
        .with_context(|| {
            format!(
                "loading {} into target {}",
                a.input.display(),
                target.target
            )
        })?;
    if a.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print_report(&report);
    }
    Ok(())
}

fn print_report(r: &LoadReport) {
    println!("target {} ({}, {})", r.target, r.engine, r.method);
    for t in &r.tables {
        println!(
            "  {:<28} {:<15} files: {} loaded, {} unchanged, {} removed; rows loaded {}; \
             database {} / lake {} {}",
            t.table,
            t.mode,
            t.files_loaded,
            t.files_unchanged,
            t.files_removed,
            t.rows_loaded,
            t.database_rows,
            t.lake_rows,
            if t.reconciled {
                "(reconciled)"
            } else {
                "(merge: not compared)"
            }
        );
        for c in &t.columns_added {
            println!("    column added: {c}");
        }
    }
}
