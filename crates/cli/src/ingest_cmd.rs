//! `sluice ingest` and `sluice spec check`.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use sluice_core::ingest::output_stem;
use sluice_core::model::ModelSpec;
use sluice_core::spec::OutputFormat;
use sluice_core::target::TargetSpec;
use sluice_core::{IngestOptions, IngestReport, Source, TableSpec};

pub fn run(
    input: &Path,
    spec_path: &Path,
    out: &Path,
    format: Option<OutputFormat>,
    key: Option<String>,
    json: bool,
    phases: bool,
) -> Result<()> {
    let started = Instant::now();
    let spec = TableSpec::load(spec_path)?;
    let file = File::open(input).with_context(|| format!("{}: cannot open", input.display()))?;
    // The key the file would have in the raw bucket: matched for `yyyy=/mm=/dd=/hh=` folders
    // and part of the output names. Default: the path as given.
    let key = key.unwrap_or_else(|| input.to_string_lossy().into_owned());
    let source = Source {
        object: input.display().to_string(),
        key,
        version: None,
    };
    std::fs::create_dir_all(out).with_context(|| format!("{}: cannot create", out.display()))?;
    let staging = out.join(format!(".staging-{}", output_stem(&source)));
    if staging.exists() {
        std::fs::remove_dir_all(&staging)?;
    }
    let opts = IngestOptions {
        format,
        ..IngestOptions::default()
    };
    let report = match sluice_core::ingest(&spec, &source, BufReader::new(file), &staging, &opts) {
        Ok(r) => r,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(e.into());
        }
    };
    publish(&staging, out, &report)?;
    if phases {
        let total = started.elapsed().as_secs_f64();
        eprintln!("PHASES {{\"total_in_process_s\": {total:.4}}}");
    }
    if json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print_summary(&report, out);
    }
    Ok(())
}

/// Moves every staged file into place, then removes the staging folder.
fn publish(staging: &Path, out: &Path, report: &IngestReport) -> Result<()> {
    let files = report
        .outputs
        .iter()
        .chain(report.quarantine.iter())
        .map(|o| PathBuf::from(&o.path));
    for rel in files {
        let to = out.join(&rel);
        if let Some(dir) = to.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::rename(staging.join(&rel), &to)
            .with_context(|| format!("publishing {}", to.display()))?;
    }
    std::fs::remove_dir_all(staging)?;
    Ok(())
}

fn print_summary(r: &IngestReport, out: &Path) {
    println!("{} → dataset {}", r.source_object, r.dataset);
    if let Some(sheet) = &r.sheet {
        println!("  sheet        {sheet}");
    }
    println!("  rows read    {}", r.rows_read);
    println!("  written      {}", r.rows_written);
    println!("  quarantined  {}", r.rows_quarantined);
    for rc in &r.rejects {
        let col = if rc.column.is_empty() {
            "(row)"
        } else {
            &rc.column
        };
        println!("    {col:<24} {:<18} {}", rc.reason.as_str(), rc.rows);
    }
    for o in &r.outputs {
        println!("  wrote {} ({} rows)", out.join(&o.path).display(), o.rows);
    }
    if let Some(q) = &r.quarantine {
        println!(
            "  rejects in {} ({} rows)",
            out.join(&q.path).display(),
            q.rows
        );
    }
}

pub fn check_specs(paths: &[PathBuf]) -> Result<()> {
    let mut failed = 0;
    let mut datasets = Vec::new();
    let mut specs = Vec::new();
    let mut models = Vec::new();
    let mut targets = Vec::new();
    for p in paths {
        if top_level(p, "target") {
            match TargetSpec::load(p) {
                Ok(t) => targets.push((p, t)),
                Err(e) => {
                    failed += 1;
                    println!("ERR {e}");
                }
            }
            continue;
        }
        if top_level(p, "model") {
            match ModelSpec::load(p) {
                Ok(m) => models.push((p, m)),
                Err(e) => {
                    failed += 1;
                    println!("ERR {e}");
                }
            }
            continue;
        }
        match TableSpec::load(p) {
            Ok(s) => {
                println!(
                    "ok  {} (dataset {}, {} columns)",
                    p.display(),
                    s.dataset,
                    s.columns.len()
                );
                datasets.push(s.dataset.clone());
                specs.push(s);
            }
            Err(e) => {
                failed += 1;
                println!("ERR {e}");
            }
        }
    }
    // A model's lake tables must not take the name of a dataset checked with it.
    let names: Vec<&str> = datasets.iter().map(String::as_str).collect();
    for (p, m) in &models {
        match m.check_against(&names) {
            Ok(()) => println!(
                "ok  {} (model {}, {} tables)",
                p.display(),
                m.model,
                m.tables.len()
            ),
            Err(e) => {
                failed += 1;
                println!("ERR {}: {e}", p.display());
            }
        }
    }
    // A target is checked against the specs and models checked with it.
    let model_specs: Vec<ModelSpec> = models.iter().map(|(_, m)| m.clone()).collect();
    for (p, t) in &targets {
        match t.plan(&p.display().to_string(), &specs, &model_specs) {
            Ok(tables) => println!(
                "ok  {} (target {}, {}, {} tables)",
                p.display(),
                t.target,
                t.engine,
                tables.len()
            ),
            Err(e) => {
                failed += 1;
                println!("ERR {e}");
            }
        }
    }
    if failed > 0 {
        bail!("{failed} of {} spec(s) invalid", paths.len());
    }
    Ok(())
}

/// A JSON document with a top-level `model` is a model, with `target` a load target, anything
/// else a table spec.
fn top_level(path: &Path, key: &str) -> bool {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .is_some_and(|v| v.get(key).is_some())
}

/// `sluice spec import-dms`: a spec file per table of a DMS table definition.
pub fn import_dms(
    definition: &Path,
    out: &Path,
    opts: &sluice_core::dms::ImportOptions,
    force: bool,
) -> Result<()> {
    let text = std::fs::read_to_string(definition)
        .with_context(|| format!("{}: cannot read", definition.display()))?;
    let name = definition
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| definition.display().to_string());
    let specs = sluice_core::dms::import(&name, &text, opts).map_err(anyhow::Error::msg)?;
    std::fs::create_dir_all(out).with_context(|| format!("{}: cannot create", out.display()))?;
    for s in &specs {
        let path = out.join(format!("{}.json", s.dataset));
        if path.exists() && !force {
            println!(
                "{}: exists, left alone (--force overwrites)",
                path.display()
            );
            continue;
        }
        let mut body = serde_json::to_string_pretty(s)?;
        body.push('\n');
        std::fs::write(&path, body).with_context(|| format!("{}: cannot write", path.display()))?;
        println!(
            "{}: {} column(s), key ({}), from {}",
            path.display(),
            s.columns.len(),
            s.primary_key.join(", "),
            s.source.prefix
        );
    }
    Ok(())
}

/// `sluice spec infer`: the drafted spec on stdout; the reasons, and the proof (the file
/// ingested with it into a scratch folder), on stderr.
pub fn infer_spec(
    file: &Path,
    dataset: Option<String>,
    sheet: Option<String>,
    header_row: u32,
    rows: Option<u64>,
) -> Result<()> {
    let drafted = draft_spec(file, dataset, sheet, header_row, rows)?;
    println!("{}", serde_json::to_string_pretty(&drafted.spec)?);
    eprintln!("{} row(s) read:", drafted.rows_read);
    for line in &drafted.explain {
        eprintln!("  {line}");
    }
    // The proof: the same file through the real ingest with the drafted spec.
    let scratch = tempfile::tempdir()?;
    let source = Source {
        object: file.display().to_string(),
        key: file.display().to_string(),
        version: None,
    };
    let f = File::open(file)?;
    let report = sluice_core::ingest(
        &drafted.spec,
        &source,
        BufReader::new(f),
        scratch.path(),
        &IngestOptions::default(),
    )?;
    eprintln!(
        "check: ingested with this spec: {} read, {} written, {} quarantined",
        report.rows_read, report.rows_written, report.rows_quarantined
    );
    Ok(())
}

/// A spec drafted from `file` (`spec infer`'s first half).
pub fn draft_spec(
    file: &Path,
    dataset: Option<String>,
    sheet: Option<String>,
    header_row: u32,
    rows: Option<u64>,
) -> Result<sluice_core::infer::Inferred> {
    use sluice_core::infer::{infer, lake_name, InferOptions};
    use sluice_core::spec::{SheetRef, SourceFormat};
    let is_xlsx = file
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("xlsx"));
    let format = if is_xlsx {
        SourceFormat::Xlsx
    } else {
        SourceFormat::Csv
    };
    let delimiter = if is_xlsx {
        None
    } else {
        let mut first = String::new();
        let f = File::open(file).with_context(|| format!("{}: cannot open", file.display()))?;
        std::io::BufRead::read_line(&mut BufReader::new(f), &mut first)?;
        Some(sluice_core::infer::sniff_delimiter(&first))
    };
    let dataset = dataset.unwrap_or_else(|| {
        let stem = file
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let name = lake_name(&stem);
        if name.is_empty() {
            "dataset".into()
        } else {
            name
        }
    });
    let opts = InferOptions {
        dataset,
        format,
        sheet: sheet.map(SheetRef::Name),
        header_row,
        delimiter,
        rows,
    };
    let f = File::open(file).with_context(|| format!("{}: cannot open", file.display()))?;
    infer(BufReader::new(f), &opts)
        .with_context(|| format!("{}: cannot draft a spec", file.display()))
}
