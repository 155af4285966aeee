//! extract: the monthly bank extract in Lambda. Copies the banking datasets' curated files
//! from the lake to local disk, computes every month from the month after the extract
//! watermark up to the last completed month (so a run after an outage produces every missed
//! month), writes one CSV per bank and month to the extracts bucket (an S3 PUT: a file
//! appears complete or not at all; same input, same bytes), then moves the watermark.

use serde::{Deserialize, Serialize};
use sluice_core::extract::Month;
use sluice_core::extract_input::read_input;
use sluice_core::ports::{ObjectStore, WorkQueue};

use crate::errors::{FnError, AWS, BAD_INPUT, NO_DATA};
use crate::ports::{download_prefix, Ports};

/// The datasets the extract reads (the banking model), or `loans` (flat).
pub const DATASETS: &[&str] = &["bank", "branch", "client", "account", "bank_loans", "loans"];
const WATERMARK: &str = "extract_watermark";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExtractInput {
    /// `$$.Execution.Id`
    pub execution: String,
    /// When the run was triggered (the schedule's `time`), RFC 3339; default: now.
    #[serde(default)]
    pub time: Option<String>,
    /// Extract exactly this month (YYYY-MM) instead of catching up; must be completed.
    #[serde(default)]
    pub month: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtractOutput {
    pub months: Vec<String>,
    pub files: usize,
    pub loans: u64,
    pub bucket: String,
}

pub async fn handle<P: Ports>(ports: &P, input: ExtractInput) -> Result<ExtractOutput, FnError> {
    let now = match &input.time {
        Some(t) => chrono::DateTime::parse_from_rfc3339(t)
            .map_err(|e| FnError::new(BAD_INPUT, format!("time {t:?}: {e}")))?
            .with_timezone(&chrono::Utc),
        None => chrono::Utc::now(),
    };
    let running = Month::of_date(now.format("%Y-%m-%d").to_string().as_bytes())
        .ok_or_else(|| FnError::new(BAD_INPUT, "unreadable date"))?;
    let last_done = Month(running.0 - 1);

    let work =
        tempfile::tempdir().map_err(|e| FnError::new(AWS, format!("no scratch space: {e}")))?;
    let lake = ports.names().lake_bucket.clone();
    for dataset in DATASETS {
        download_prefix(
            ports,
            &lake,
            &format!("data/{dataset}/"),
            work.path(),
            |_| true,
        )
        .await?;
    }
    let root = work.path().to_path_buf();
    let agg = tokio::task::spawn_blocking(move || read_input(&root))
        .await
        .map_err(|e| FnError::new(AWS, format!("the extract task stopped: {e}")))?
        .map_err(|e| FnError::new(NO_DATA, format!("s3://{lake}/data/: {e}")))?;
    let first = agg
        .first_month()
        .ok_or_else(|| FnError::new(NO_DATA, "no loans"))?;

    let watermark = ports.work().get_marker(WATERMARK).await?;
    let (from, to) = match &input.month {
        Some(m) => {
            let m = Month::parse(m)
                .ok_or_else(|| FnError::new(BAD_INPUT, format!("month {m:?}: expected YYYY-MM")))?;
            if m > last_done {
                return Err(FnError::new(
                    BAD_INPUT,
                    format!("{m} is not a completed month (the running month is {running})"),
                ));
            }
            (m, m)
        }
        None => {
            let from = watermark
                .as_deref()
                .and_then(Month::parse)
                .map(|w| Month(w.0 + 1))
                .unwrap_or(first);
            (from, last_done)
        }
    };
    let files = agg.files(from, to);
    let bucket = ports.names().extracts_bucket.clone();
    for f in &files {
        ports
            .store()
            .put_bytes(&bucket, &f.path(), f.csv().into_bytes())
            .await?;
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
    Ok(ExtractOutput {
        months,
        files: files.len(),
        loans: agg.loans,
        bucket,
    })
}
