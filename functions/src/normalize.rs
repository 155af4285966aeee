//! normalize: after the items of a run are ingested, rebuilds the target tables of every model
//! (`s3://<lake>/config/models/<model>.json`) that reads a dataset this run ingested. Reads the
//! model's curated files from the lake one object at a time (never copied to /tmp), builds the
//! tables (core `normalize`), uploads each table's Parquet and quarantine under fixed names (`data/<lake table>/`,
//! `quarantine/<lake table>/`) and registers the Glue tables. Same inputs and the same
//! execution start time give the same bytes, so a retry or a redrive rewrites identical
//! objects. A model whose datasets are not all in the lake yet is skipped, with the reason.

use crate::contracts::{ModelOutcome, NormalizeInput, NormalizeOutput, TableCounts};
use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::Timelike as _;
use sluice_core::model::ModelSpec;
use sluice_core::normalize::{
    normalize, DataFile, NormalizeError, NormalizeOptions, Previous, TableReport,
};
use sluice_core::ports::{Catalog, ObjectStore, WorkStatus};

use crate::errors::FnError;
use crate::ports::Ports;
use crate::run::config_documents;
use crate::run::hold_lock;
use crate::run::items_of_run;

/// The Parquet objects under `prefix` in `bucket`.
async fn parquet_keys<P: Ports>(
    ports: &P,
    bucket: &str,
    prefix: &str,
) -> Result<Vec<String>, FnError> {
    Ok(ports
        .store()
        .list(bucket, prefix)
        .await?
        .into_iter()
        .filter(|o| o.key.ends_with(".parquet"))
        .map(|o| o.key)
        .collect())
}

/// Where models live in the lake bucket (`sluice bootstrap` and Terraform put them there).
pub const MODELS_PREFIX: &str = "config/models/";

pub async fn load_models<P: Ports>(ports: &P) -> Result<Vec<ModelSpec>, FnError> {
    config_documents(ports, MODELS_PREFIX, ModelSpec::from_json).await
}

pub async fn handle<P: Ports>(
    ports: &P,
    input: NormalizeInput,
) -> Result<NormalizeOutput, FnError> {
    hold_lock(ports, &input.execution).await?;
    let started = match &input.started {
        Some(t) => chrono::DateTime::parse_from_rfc3339(t)
            .map_err(|e| FnError::bad_input(format!("started {t:?}: {e}")))?
            .naive_utc(),
        None => chrono::DateTime::from_timestamp(ports.now(), 0)
            .unwrap_or_default()
            .naive_utc(),
    };
    let as_of = started.with_nanosecond(0).unwrap_or(started);
    let models = load_models(ports).await?;
    let chosen: Vec<ModelSpec> = match &input.models {
        Some(names) => {
            let mut chosen = Vec::new();
            for n in names {
                let m = models.iter().find(|m| &m.model == n).ok_or_else(|| {
                    FnError::bad_input(format!("no model {n:?} under {MODELS_PREFIX}"))
                })?;
                chosen.push(m.clone());
            }
            chosen
        }
        None => {
            let touched: BTreeSet<String> = items_of_run(ports, &input.execution)
                .await?
                .into_iter()
                .filter(|w| w.status == WorkStatus::Done)
                .map(|w| w.dataset)
                .collect();
            models
                .into_iter()
                .filter(|m| m.datasets().iter().any(|d| touched.contains(*d)))
                .collect()
        }
    };
    let mut out = NormalizeOutput {
        models: Vec::new(),
        rows_quarantined: 0,
    };
    for model in chosen {
        let outcome = run_model(ports, &model, as_of).await?;
        // Each rebuilt table's counts as an EMF line, the table as the dataset.
        for t in &outcome.tables {
            use crate::metrics::{emit, Metric};
            emit(
                &ports.names().env,
                &t.table,
                &[
                    Metric::count("ModelRows", t.rows_written),
                    Metric::count("RowsQuarantined", t.rows_quarantined),
                ],
                ports.now() * 1000,
            );
        }
        out.rows_quarantined += outcome
            .tables
            .iter()
            .map(|t| t.rows_quarantined)
            .sum::<u64>();
        out.models.push(outcome);
    }
    Ok(out)
}

async fn run_model<P: Ports>(
    ports: &P,
    model: &ModelSpec,
    as_of: chrono::NaiveDateTime,
) -> Result<ModelOutcome, FnError> {
    let lake = ports.names().lake_bucket.clone();
    let work = tempfile::tempdir().map_err(|e| FnError::internal("no scratch space", e))?;
    // The model's inputs and the previous build are read from the lake one object at a time
    // when the reader comes to them, never copied to /tmp; only the new tables are written
    // there before they go up.
    let (fetcher, requests) = crate::fetch::channel();
    let mut inputs: BTreeMap<String, Vec<DataFile>> = BTreeMap::new();
    let mut missing = Vec::new();
    for dataset in model.datasets() {
        let keys = parquet_keys(ports, &lake, &format!("data/{dataset}/")).await?;
        if keys.is_empty() {
            missing.push(dataset.to_owned());
        }
        inputs.insert(
            dataset.to_owned(),
            keys.iter().map(|k| fetcher.file(&lake, k)).collect(),
        );
    }
    if !missing.is_empty() {
        return Ok(ModelOutcome {
            model: model.model.clone(),
            status: "skipped".into(),
            reason: Some(format!(
                "no curated Parquet yet for {} (under s3://{lake}/data/)",
                missing.join(", ")
            )),
            tables: Vec::new(),
        });
    }
    // The tables as the previous build left them: rows they had keep their `created`.
    let mut previous = HashMap::new();
    for t in &model.tables {
        let lake_table = model.lake_table(&t.name);
        for key in parquet_keys(ports, &lake, &format!("data/{lake_table}/")).await? {
            previous.insert(key.clone(), fetcher.file(&lake, &key));
        }
    }
    drop(fetcher);
    let mut opts = NormalizeOptions::new(as_of);
    opts.previous = Some(Previous::Files(previous));
    let staging = work.path().join("out");
    let (m, st) = (model.clone(), staging.clone());
    let building = tokio::task::spawn_blocking(move || normalize(&m, &inputs, &st, &opts));
    let (failure, report) = tokio::join!(crate::fetch::serve(ports, requests), building);
    // A store error (throttled, access denied) is what it is, not a bad input file.
    if let Some(e) = failure {
        return Err(e.into());
    }
    let report = report
        .map_err(|e| FnError::internal("the normalize task stopped", e))?
        .map_err(|e| match e {
            NormalizeError::Model(_) => FnError::unreadable(format!("model {}", model.model), e),
            NormalizeError::NoData { .. } | NormalizeError::Read { .. } => FnError::BadFile {
                message: format!("model {}", model.model),
                source: Some(e.into()),
            },
            NormalizeError::Write(_) => FnError::internal(format!("model {}", model.model), e),
        })?;
    let db = ports.names().glue_database.clone();
    for (t, r) in model.tables.iter().zip(&report.tables) {
        for rel in [&r.output, &r.quarantine] {
            ports
                .store()
                .put_file(&lake, rel, &staging.join(rel))
                .await?;
        }
        let spec = model.lake_spec(t);
        let location = ports.names().table_location(&spec.dataset);
        ports.catalog().ensure_table(&db, &spec, &location).await?;
    }
    Ok(ModelOutcome {
        model: model.model.clone(),
        status: "normalized".into(),
        reason: None,
        tables: report.tables.iter().map(counts).collect(),
    })
}

fn counts(t: &TableReport) -> TableCounts {
    TableCounts {
        table: t.lake_table.clone(),
        rows_written: t.rows_written,
        rows_quarantined: t.rows_quarantined,
    }
}
