//! `sluice normalize`: a model's target tables from what `sluice ingest` wrote.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use chrono::{NaiveDateTime, Timelike as _};
use sluice_core::model::ModelSpec;
use sluice_core::normalize::{normalize, DataFile, NormalizeOptions, NormalizeReport, Previous};
use sluice_core::read::files::parquet_files;

pub struct NormalizeArgs<'a> {
    pub model: &'a str,
    pub input: &'a Path,
    pub out: &'a Path,
    pub as_of: Option<&'a str>,
    pub json: bool,
}

/// A model file, or a model name looked up as `config/models/<name>.json`.
fn model_path(model: &str) -> PathBuf {
    let p = PathBuf::from(model);
    if p.exists() || model.ends_with(".json") {
        p
    } else {
        Path::new("config/models").join(format!("{model}.json"))
    }
}

pub fn run(a: NormalizeArgs<'_>) -> Result<()> {
    let model = ModelSpec::load(&model_path(a.model))?;
    let mut inputs = BTreeMap::new();
    let mut newest = None;
    for dataset in model.datasets() {
        let dir = a.input.join("data").join(dataset);
        let files =
            parquet_files(&dir).with_context(|| format!("{}: cannot read", dir.display()))?;
        if files.is_empty() {
            bail!(
                "{}: no Parquet files of dataset {dataset} under data/{dataset}/ (ingest them first, with --format parquet)",
                a.input.display()
            );
        }
        for f in &files {
            let modified = std::fs::metadata(f)?.modified()?;
            newest = newest.max(Some(modified));
        }
        inputs.insert(
            dataset.to_owned(),
            files.into_iter().map(DataFile::Local).collect::<Vec<_>>(),
        );
    }
    // Default `created`: when the newest input was written, so that running again over the
    // same inputs gives the same bytes.
    let as_of = match a.as_of {
        Some(t) => NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S")
            .or_else(|_| NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S"))
            .with_context(|| format!("--as-of {t:?}: expected YYYY-MM-DD HH:MM:SS"))?,
        None => newest
            .map(chrono::DateTime::<chrono::Utc>::from)
            .map(|t| t.naive_utc())
            .and_then(|t| t.with_nanosecond(0))
            .unwrap_or_default(),
    };
    std::fs::create_dir_all(a.out)
        .with_context(|| format!("{}: cannot create", a.out.display()))?;
    let staging = a.out.join(format!(".staging-normalize-{}", model.model));
    if staging.exists() {
        std::fs::remove_dir_all(&staging)?;
    }
    // The tables already in OUT are the previous build: rows they had keep their `created`.
    let mut opts = NormalizeOptions::new(as_of);
    opts.previous = Some(Previous::Dir(a.out.to_path_buf()));
    let report = match normalize(&model, &inputs, &staging, &opts) {
        Ok(r) => r,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(e.into());
        }
    };
    for t in &report.tables {
        for rel in [&t.output, &t.quarantine] {
            let to = a.out.join(rel);
            if let Some(dir) = to.parent() {
                std::fs::create_dir_all(dir)?;
            }
            std::fs::rename(staging.join(rel), &to)
                .with_context(|| format!("publishing {}", to.display()))?;
        }
    }
    std::fs::remove_dir_all(&staging)?;
    if a.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print_summary(&report, a.out);
    }
    Ok(())
}

fn print_summary(r: &NormalizeReport, out: &Path) {
    println!("model {} (created {})", r.model, r.as_of);
    for (alias, rows) in &r.sources {
        println!("  read {alias:<22} {rows} rows");
    }
    for t in &r.tables {
        print!(
            "  {:<22} written {:>7}  quarantined {:>5}",
            t.table, t.rows_written, t.rows_quarantined
        );
        if t.duplicates_collapsed > 0 {
            print!("  duplicates collapsed {}", t.duplicates_collapsed);
        }
        if t.skipped_absent > 0 {
            print!("  absent {}", t.skipped_absent);
        }
        if t.rows_new + t.rows_changed > 0 {
            print!("  new {} changed {}", t.rows_new, t.rows_changed);
        }
        println!();
        for rc in &t.rejects {
            println!("    {:<24} {:<18} {}", rc.column, rc.rule, rc.rows);
        }
    }
    println!(
        "  wrote {}/data/<table>/ and {}/quarantine/<table>/",
        out.display(),
        out.display()
    );
}
