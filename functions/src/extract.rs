//! extract: the monthly bank extract in Lambda. Under the pipeline lock (so it never reads half
//! an ingestion's publish), reads the banking datasets' curated files from the lake one object
//! at a time (never copied to /tmp) and computes every completed month. A month's file is written when it is new or its
//! content changed — a late or corrected input for an old month gives the external party a
//! corrected file under the same name; unchanged months are not rewritten. One CSV per bank
//! and month in the extracts bucket (an S3 PUT: a file appears complete or not at all; same
//! input, same bytes); then the watermark (the last month extracted) moves and the lock is
//! released.

use crate::contracts::{ExtractInput, ExtractOutput};
use sluice_core::extract::Month;
use std::collections::BTreeMap;

use sluice_core::extract_input::{read_flat, read_model, DataFile};
use sluice_core::ports::{LockStore, ObjectStore, WorkQueue};

use crate::errors::FnError;
use crate::ports::Ports;
use crate::run::hold_lock;

/// The datasets the extract reads (the banking model), or `loans` (flat).
pub const DATASETS: &[&str] = &["bank", "branch", "client", "account", "bank_loans", "loans"];
const WATERMARK: &str = "extract_watermark";

pub async fn handle<P: Ports>(ports: &P, input: ExtractInput) -> Result<ExtractOutput, FnError> {
    let now = match &input.time {
        Some(t) => chrono::DateTime::parse_from_rfc3339(t)
            .map_err(|e| FnError::bad_input(format!("time {t:?}: {e}")))?
            .with_timezone(&chrono::Utc),
        None => chrono::Utc::now(),
    };
    let running = Month::of_date(now.format("%Y-%m-%d").to_string().as_bytes())
        .ok_or_else(|| FnError::bad_input("unreadable date"))?;
    let last_done = Month(running.0 - 1);

    // Never read the lake while an ingestion publishes into it.
    hold_lock(ports, &input.execution).await?;
    let lake = ports.names().lake_bucket.clone();
    // Each lake file is fetched when the reader comes to it, never copied to /tmp.
    let (fetcher, requests) = crate::fetch::channel();
    let mut files: BTreeMap<&str, Vec<DataFile>> = BTreeMap::new();
    for dataset in DATASETS {
        let listed = ports
            .store()
            .list(&lake, &format!("data/{dataset}/"))
            .await?;
        files.insert(
            dataset,
            listed
                .iter()
                .filter(|o| o.key.ends_with(".parquet") || o.key.ends_with(".csv"))
                .map(|o| fetcher.file(&lake, &o.key))
                .collect(),
        );
    }
    drop(fetcher);
    let reading = tokio::task::spawn_blocking(move || {
        if files.get("bank_loans").is_some_and(|f| !f.is_empty()) {
            read_model(&|d| files.get(d).cloned().unwrap_or_default())
        } else {
            read_flat(files.get("loans").map(Vec::as_slice).unwrap_or_default())
        }
    });
    let (failure, agg) = tokio::join!(crate::fetch::serve(ports, requests), reading);
    // A store error (throttled, access denied) is what it is, not missing data.
    if let Some(e) = failure {
        return Err(e.into());
    }
    let agg = agg
        .map_err(|e| FnError::internal("the extract task stopped", e))?
        .map_err(|e| FnError::NoData(format!("s3://{lake}/data/: {e}")))?;
    let first = agg
        .first_month()
        .ok_or_else(|| FnError::NoData("no loans".into()))?;

    let watermark = ports.work().get_marker(WATERMARK).await?;
    let (from, to) = match &input.month {
        Some(m) => {
            let m = Month::parse(m)
                .ok_or_else(|| FnError::bad_input(format!("month {m:?}: expected YYYY-MM")))?;
            if m > last_done {
                return Err(FnError::bad_input(format!(
                    "{m} is not a completed month (the running month is {running})"
                )));
            }
            (m, m)
        }
        // Every completed month: new ones are written, changed ones corrected.
        None => (first, last_done),
    };
    let all = agg.files(from, to);
    let bucket = ports.names().extracts_bucket.clone();
    let (mut files, mut corrected, mut unchanged) = (Vec::new(), Vec::new(), 0);
    for f in all {
        let (path, body) = (f.path(), f.csv().into_bytes());
        match ports.store().get_bytes(&bucket, &path).await? {
            Some(existing) if existing == body => {
                unchanged += 1;
                continue;
            }
            Some(_) => corrected.push(path.clone()),
            None => {}
        }
        ports.store().put_bytes(&bucket, &path, body).await?;
        files.push(f);
    }
    let months: Vec<String> = files
        .iter()
        .map(|f| f.month.to_string())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    if input.month.is_none() && from <= to {
        let label = to.to_string();
        if watermark.as_deref().is_none_or(|w| w < label.as_str()) {
            ports
                .work()
                .set_marker(WATERMARK, watermark.as_deref(), &label)
                .await?;
        }
    }
    ports
        .locks()
        .release(crate::run::PIPELINE_LOCK, &input.execution)
        .await?;
    {
        use crate::metrics::{emit, Metric};
        emit(
            &ports.names().env,
            "bank_extract",
            &[
                Metric::count("ExtractFiles", files.len() as u64),
                Metric::count("ExtractFilesCorrected", corrected.len() as u64),
                Metric::count("ExtractLoans", agg.loans),
            ],
            ports.now() * 1000,
        );
    }
    Ok(ExtractOutput {
        months,
        files: files.len(),
        corrected,
        unchanged,
        loans: agg.loans,
        bucket,
    })
}
