//! `sluice pull`: one range of a database source, as the pipeline's pull item would take it.

use std::path::Path;

use anyhow::{bail, Context, Result};
use sluice_core::pull::raw_key;
use sluice_core::TableSpec;
use sluice_db::pull::{Pull, PullOptions};
use sluice_db::Credentials;

pub fn run(
    spec_path: &Path,
    out: &Path,
    from: Option<String>,
    lake: Option<&Path>,
    json: bool,
) -> Result<()> {
    let spec = TableSpec::load(spec_path)?;
    let Some((engine, db)) = spec.pulled() else {
        bail!(
            "{}: dataset {} is not a database source (source.kind postgres or mysql)",
            spec_path.display(),
            spec.dataset
        );
    };
    // Locally the secret's JSON comes from the environment; the pipeline reads the secret.
    let var = format!("SLUICE_SOURCE_{}", spec.dataset.to_ascii_uppercase());
    let text = crate::local_secret(
        &var,
        &format!("source {}", spec.dataset),
        &db.connection.secret,
    )?;
    let creds = Credentials::from_json(&text, &var, &spec.dataset)?;
    let pull = Pull {
        spec: &spec,
        creds: &creds,
        secret: &var,
        opts: PullOptions::default(),
    };
    let rt = crate::runtime()?;
    let Some(range) = rt.block_on(pull.next_range(from.as_deref()))? else {
        if json {
            println!(
                "{}",
                serde_json::json!({"dataset": spec.dataset, "range": null})
            );
        } else {
            println!(
                "{}: nothing new after {}",
                spec.dataset,
                from.as_deref().unwrap_or("the start")
            );
        }
        return Ok(());
    };
    let now = chrono::Utc::now();
    let label = now.format("%Y-%m-%dT%H:%M").to_string();
    let key = raw_key(&spec, now, &range, &label);
    let path = out.join(&key);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("{}: cannot create", dir.display()))?;
    }
    let report = rt.block_on(pull.to_file(&range, &path))?;
    if json {
        println!(
            "{}",
            serde_json::json!({"dataset": spec.dataset, "engine": engine.to_string(),
                "range": range, "file": path, "key": key, "bytes": report.bytes})
        );
    } else {
        println!(
            "{} ({engine}): [{}, {}) -> {} ({} bytes)",
            spec.dataset,
            range.from.as_deref().unwrap_or("start"),
            range.to.as_deref().unwrap_or("end"),
            path.display(),
            report.bytes
        );
        if let Some(to) = &range.to {
            println!("next: --from '{to}'");
        }
    }
    if let Some(lake) = lake {
        crate::ingest_cmd::run(&path, spec_path, lake, None, Some(key), json, false)?;
    }
    Ok(())
}
