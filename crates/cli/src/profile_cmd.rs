//! `sluice profile`: what a file (or a dataset's curated files) holds, column by column.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use anyhow::{bail, Context, Result};
use sluice_core::profile::{profile_file, profile_lake, Profile};
use sluice_core::TableSpec;

pub struct ProfileArgs<'a> {
    pub file: Option<&'a Path>,
    pub spec: Option<&'a Path>,
    pub dataset: Option<&'a str>,
    pub input: Option<&'a Path>,
    pub tables: &'a Path,
    pub html: Option<&'a Path>,
    pub json: bool,
}

fn spec_for(a: &ProfileArgs<'_>) -> Result<TableSpec> {
    if let Some(p) = a.spec {
        return Ok(TableSpec::load(p)?);
    }
    if let Some(d) = a.dataset {
        return Ok(TableSpec::load(&a.tables.join(format!("{d}.json")))?);
    }
    let Some(file) = a.file else {
        bail!("give a FILE, or --dataset with --input");
    };
    eprintln!(
        "no --spec: profiling with a spec drafted from the file (sluice spec infer {})",
        file.display()
    );
    let drafted = crate::ingest_cmd::draft_spec(file, None, None, 1, None)?;
    Ok(drafted.spec)
}

pub fn run(a: ProfileArgs<'_>) -> Result<()> {
    let spec = spec_for(&a)?;
    let profile: Profile = match (a.file, a.input) {
        (Some(file), None) => {
            let f = File::open(file).with_context(|| format!("{}: cannot open", file.display()))?;
            let key = file.display().to_string();
            profile_file(&spec, &key, BufReader::with_capacity(1 << 16, f))
                .with_context(|| format!("{}: cannot profile", file.display()))?
        }
        (None, Some(input)) => {
            let dir = input.join("data").join(&spec.dataset);
            let files = sluice_core::read::files::parquet_files(&dir)
                .with_context(|| format!("{}: cannot read", dir.display()))?;
            if files.is_empty() {
                bail!(
                    "{}: no Parquet files of dataset {} (ingest them first, with --format parquet)",
                    dir.display(),
                    spec.dataset
                );
            }
            profile_lake(&spec, &files)?
        }
        (Some(_), Some(_)) => bail!("give a FILE or --input, not both"),
        (None, None) => bail!("give a FILE, or --dataset with --input"),
    };
    if let Some(out) = a.html {
        std::fs::write(out, sluice_core::profile_html::html(&profile))
            .with_context(|| format!("{}: cannot write", out.display()))?;
        eprintln!("wrote {}", out.display());
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&profile)?);
        return Ok(());
    }
    println!(
        "{} ({}): {} rows{}",
        profile.dataset,
        profile.file,
        profile.rows,
        match &profile.duplicate_keys {
            Some(d) => format!(
                ", {}{} duplicate key(s) on ({})",
                if d.estimated { "≈" } else { "" },
                d.value,
                profile.primary_key.join(", ")
            ),
            None => String::new(),
        }
    );
    let w = profile
        .columns
        .iter()
        .map(|c| c.name.len())
        .max()
        .unwrap_or(6)
        .max(6);
    println!(
        "{:<w$} {:<14} {:>10} {:>10} {:>8} {:>12}  range",
        "column", "type", "values", "nulls", "refused", "distinct"
    );
    for c in &profile.columns {
        println!(
            "{:<w$} {:<14} {:>10} {:>10} {:>8} {:>12}  {}{}",
            c.name,
            c.ty,
            c.values,
            c.nulls,
            c.invalid,
            format!(
                "{}{}",
                if c.distinct.estimated { "≈" } else { "" },
                c.distinct.value
            ),
            c.min.as_deref().unwrap_or(""),
            c.max
                .as_deref()
                .map(|m| format!(" .. {m}"))
                .unwrap_or_default(),
        );
    }
    Ok(())
}
