//! ingest: one work item. Reads the raw object as it downloads (a workbook, which must seek,
//! is downloaded to /tmp first), applies its spec, writes
//! curated files and quarantine under deterministic names, publishes them only when the whole
//! file was processed, registers Glue partitions, and marks the item done with counts — or
//! failed with the reason. Rerunning an item rewrites the same objects with the same bytes.
//! Raw objects are only read.

use crate::contracts::{IngestInput, IngestOutput};
use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use sluice_core::ingest::output_stem;
use sluice_core::ingest::Stream;
use sluice_core::ports::{
    Catalog, ItemCounts, LockStore, ObjectStore, Transition, TransitionUpdate, WorkQueue,
    WorkStatus,
};
use sluice_core::spec::OnOverwrite;
use sluice_core::{ingest, IngestError, IngestOptions, Source, TableSpec};

use crate::contracts::ItemRef;
use crate::errors::FnError;
use crate::ports::Ports;
use crate::run::batch_of;
use crate::run::setting_or;
use crate::run::{hold_lock, PIPELINE_LOCK};

/// Ingests one work item. (Its log lines carry the execution, the item, its dataset and its
/// object key: the invocation span of `crate::serve`.)
pub async fn handle<P: Ports>(ports: &P, input: IngestInput) -> Result<IngestOutput, FnError> {
    handle_item(ports, input).await
}

async fn handle_item<P: Ports>(ports: &P, input: IngestInput) -> Result<IngestOutput, FnError> {
    // Only the lock holder ingests.
    hold_lock(ports, &input.execution).await?;
    let item = input.item.clone();
    let batch = batch_of(&input.execution).to_owned();
    let start = TransitionUpdate {
        execution: Some(input.execution.clone()),
        batch: Some(batch.clone()),
        count_attempt: true,
        now: ports.now(),
        ..Default::default()
    };
    // Queued, failed (a redrive) or running (a retry after a crash): this execution holds the
    // pipeline lock, so no one else is running it.
    let from = [WorkStatus::Queued, WorkStatus::Failed, WorkStatus::Running];
    match ports
        .work()
        .transition(&item.id, &from, WorkStatus::Running, start)
        .await?
    {
        Transition::Applied(_) => {}
        Transition::Refused(Some(w)) if w.status == WorkStatus::Done => {
            let c = w.counts.unwrap_or_default();
            return Ok(IngestOutput {
                status: "done".into(),
                id: w.id,
                dataset: w.dataset,
                key: w.key,
                rows_read: c.rows_read,
                rows_written: c.rows_written,
                rows_quarantined: c.rows_quarantined,
                outputs: 0,
                already_done: true,
                replaced_outputs: 0,
                drift: w.drift,
                lag_seconds: None,
                bytes_read: 0,
            });
        }
        Transition::Refused(other) => {
            return Err(FnError::bad_input(format!(
                "work item {} cannot start: {:?}",
                item.id,
                other.map(|w| w.status)
            )))
        }
    }
    // The lease is renewed while the item is worked on, so it never lapses under a live owner.
    let lease = crate::run::lease_seconds(ports).await?;
    // A done item is kept for the retention, then DynamoDB may forget it.
    let expires_at = ports.now() + crate::run::work_retention_secs(ports).await?;
    let work = async {
        // A pull writes its range to the raw object first (once), then ingests it.
        let item = match &item.pull {
            Some(range) => crate::pull::ensure_pulled(ports, &item, range).await?,
            None => item.clone(),
        };
        run(ports, &item).await
    };
    let heartbeat = async {
        let period = std::time::Duration::from_secs((lease / 3).max(1) as u64);
        loop {
            tokio::time::sleep(period).await;
            let renewed = ports
                .locks()
                .renew(PIPELINE_LOCK, &input.execution, lease, ports.now())
                .await;
            if !matches!(renewed, Ok(true)) {
                lambda_runtime::tracing::warn!(?renewed, "the pipeline lock could not be renewed");
            }
        }
    };
    let started = std::time::Instant::now();
    let outcome = tokio::select! {
        out = work => out,
        never = heartbeat => never,
    };
    match outcome {
        Ok(out) => {
            // One structured line per item ingested (the saved Logs Insights queries read it),
            // and its metrics as an EMF line (the freshness alarms read ItemsIngested).
            lambda_runtime::tracing::info!(
                dataset = %out.dataset,
                rows_written = out.rows_written,
                rows_quarantined = out.rows_quarantined,
                "item ingested"
            );
            use crate::metrics::{emit, Metric};
            let lag = out.lag_seconds.map(|s| Metric::seconds("LagSeconds", s));
            emit(
                &ports.names().env,
                &out.dataset,
                &[
                    Metric::count("ItemsIngested", 1),
                    Metric::count("RowsRead", out.rows_read),
                    Metric::count("RowsWritten", out.rows_written),
                    Metric::count("RowsQuarantined", out.rows_quarantined),
                    Metric::count("FilesDrifted", u64::from(!out.drift.is_empty())),
                    Metric::bytes("BytesRead", out.bytes_read),
                    Metric::milliseconds(
                        "IngestMilliseconds",
                        started.elapsed().as_millis() as u64,
                    ),
                ]
                .into_iter()
                .chain(lag)
                .collect::<Vec<_>>(),
                ports.now() * 1000,
            );
            if !out.drift.is_empty() {
                lambda_runtime::tracing::warn!(drift = ?out.drift, "the file drifted from the dataset's previous files");
            }
            let done = TransitionUpdate {
                counts: Some(ItemCounts {
                    rows_read: out.rows_read,
                    rows_written: out.rows_written,
                    rows_quarantined: out.rows_quarantined,
                }),
                drift: Some(out.drift.clone()),
                now: ports.now(),
                expires_at: Some(expires_at),
                ..Default::default()
            };
            ports
                .work()
                .transition(&item.id, &[WorkStatus::Running], WorkStatus::Done, done)
                .await?;
            Ok(out)
        }
        Err(e) if matches!(e, FnError::ObjectChanged(_)) => {
            // Superseded: the object was overwritten before this version was published. Its
            // newer content is a work item of its own; this one is closed, saying so, and is
            // not a failure of the run (a quick correction must not page anyone).
            let closed = TransitionUpdate {
                error: Some((
                    e.error_type().to_owned(),
                    format!("superseded: {}", e.message()),
                )),
                counts: Some(ItemCounts::default()),
                now: ports.now(),
                expires_at: Some(expires_at),
                ..Default::default()
            };
            ports
                .work()
                .transition(&item.id, &[WorkStatus::Running], WorkStatus::Done, closed)
                .await?;
            Ok(IngestOutput {
                status: "superseded".into(),
                id: item.id.clone(),
                dataset: item.dataset.clone(),
                key: item.key.clone(),
                rows_read: 0,
                rows_written: 0,
                rows_quarantined: 0,
                outputs: 0,
                already_done: false,
                replaced_outputs: 0,
                drift: Vec::new(),
                lag_seconds: None,
                bytes_read: 0,
            })
        }
        Err(e) => {
            // Problems with the file itself are recorded on the item; infrastructure errors
            // leave it running, for the state machine's retry or a redrive.
            if matches!(e, FnError::BadFile { .. } | FnError::SpecNotFound(_)) {
                let failed = TransitionUpdate {
                    error: Some((e.error_type().to_owned(), e.message())),
                    now: ports.now(),
                    ..Default::default()
                };
                ports
                    .work()
                    .transition(&item.id, &[WorkStatus::Running], WorkStatus::Failed, failed)
                    .await?;
            }
            Err(e)
        }
    }
}

async fn run<P: Ports>(ports: &P, item: &ItemRef) -> Result<IngestOutput, FnError> {
    let spec = crate::run::spec_of(ports, &item.dataset).await?;
    // A workbook is read from a file (its zip directory is at its end); everything else is
    // read as it downloads, never spooled to /tmp.
    let format = spec.format_for(&item.key);
    let (limit_name, default_limit) = if format.needs_file() {
        ("max_workbook_bytes", DEFAULT_MAX_WORKBOOK_BYTES)
    } else {
        ("max_file_bytes", DEFAULT_MAX_FILE_BYTES)
    };
    // A file past the configured size is refused before anything is downloaded.
    let max_bytes = setting_or(ports, limit_name, default_limit).await?;
    if let Some(head) = ports.store().head(&item.bucket, &item.key).await? {
        if head.size as i64 > max_bytes {
            return Err(FnError::bad_file(format!(
                    "s3://{}/{} is {} bytes: larger than {limit_name} ({max_bytes}); split it, or raise the setting",
                    item.bucket, item.key, head.size
                ),
            ));
        }
    }
    let work = tempfile::tempdir().map_err(|e| FnError::internal("no scratch space", e))?;
    let staging = work.path().join("out");
    let source = Source {
        object: format!("s3://{}/{}", item.bucket, item.key),
        key: item.key.clone(),
        version: Some(item.etag.clone()),
    };
    // A partition past output_roll_rows rolls to a new file; the closed one leaves /tmp at
    // once (crate::stage), so /tmp holds the files still open, not the whole output.
    let lake = ports.names().lake_bucket.clone();
    let roll_rows = setting_or(ports, "output_roll_rows", DEFAULT_ROLL_ROWS).await?;
    let (on_close, closed) = crate::stage::channel();
    let opts = IngestOptions {
        profile: spec.drift.is_some(),
        roll_rows: roll_rows.max(0) as u64,
        on_close: Some(on_close),
        ..IngestOptions::default()
    };
    let uploads = crate::stage::serve(ports, &lake, staging.clone(), closed);
    let (spec2, staging2, source2) = (spec.clone(), staging.clone(), source.clone());
    let (got, report, staged) = if format.needs_file() {
        let raw_path = work.path().join("raw");
        let got = ports
            .store()
            .get_to_file(
                &item.bucket,
                &item.key,
                item.version_id.as_deref(),
                &raw_path,
            )
            .await?;
        let reading = tokio::task::spawn_blocking(move || {
            let file = std::fs::File::open(&raw_path)
                .map_err(|e| FnError::internal("reading the download", e))?;
            ingest(
                &spec2,
                &source2,
                std::io::BufReader::new(file),
                &staging2,
                &opts,
            )
            .map_err(ingest_error)
        });
        let (report, staged) = tokio::join!(reading, uploads);
        let report = report.map_err(|e| FnError::internal("the ingest task stopped", e))?;
        (got, report, staged)
    } else {
        let (sink, reader) = crate::stream::channel(STREAM_DEPTH);
        let cut = reader.cut_flag();
        let reading = tokio::task::spawn_blocking(move || {
            let input = std::io::BufReader::with_capacity(1 << 18, reader);
            ingest(&spec2, &source2, Stream(input), &staging2, &opts).map_err(ingest_error)
        });
        let download = async {
            // The sink is dropped when the download ends, however it ends: a reader waiting
            // for more then hears of it.
            let mut sink = sink;
            ports
                .store()
                .get_into(
                    &item.bucket,
                    &item.key,
                    item.version_id.as_deref(),
                    &mut sink,
                )
                .await
        };
        let (got, report, staged) = tokio::join!(download, reading, uploads);
        // A download that broke off is the infrastructure's failure (retried), whatever the
        // reader made of the part it got.
        let got = got?;
        let report = report.map_err(|e| FnError::internal("the ingest task stopped", e))?;
        if cut.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(FnError::transient(format!(
                "s3://{}/{}: the download stopped before the object's end",
                item.bucket, item.key
            )));
        }
        (got, report, staged)
    };
    // A failed upload of a closed file stopped the ingest: that failure is the cause.
    let staged = staged?;
    if item.version_id.is_none() && got.etag.as_deref().is_some_and(|e| e != item.etag) {
        return Err(FnError::ObjectChanged(format!(
                "s3://{}/{} now has ETag {:?}, not {} as registered; the new content is its own work item",
                item.bucket, item.key, got.etag, item.etag
            ),
        ));
    }
    let report = report?;

    // Rows quarantined by column and reason, one line each (the saved query "rows quarantined
    // by reason today" sums them).
    for r in &report.rejects {
        lambda_runtime::tracing::info!(
            column = %r.column,
            reason = r.reason.as_str(),
            rows = r.rows,
            "rows quarantined"
        );
    }
    // What the lake holds for this key and dataset now (replace and reject only).
    let versions = Versions::read(ports, &spec, item).await?;
    // Publish: every file under its relative name (a staged one copied from its staged key).
    let files: Vec<String> = report
        .outputs
        .iter()
        .chain(report.quarantine.iter())
        .map(|f| f.path.clone())
        .collect();
    for f in &files {
        crate::stage::publish(ports, &lake, &staging, f, &staged).await?;
    }
    let replaced_outputs = versions.replace(ports, item, &source, &files).await?;
    let drift = match (&spec.drift, &report.profile) {
        (Some(thresholds), Some(profile)) => {
            // Profiles sort by upload time (the raw object's LastModified: the same for every
            // attempt at this version).
            let uploaded = got.last_modified.unwrap_or_else(|| ports.now());
            check_drift(
                ports,
                &spec.dataset,
                &output_stem(&source),
                uploaded,
                thresholds,
                profile,
            )
            .await?
        }
        _ => Vec::new(),
    };
    let partitions: BTreeSet<Vec<(String, String)>> = report
        .outputs
        .iter()
        .filter(|o| !o.partition.is_empty())
        .map(|o| o.partition.clone())
        .collect();
    // Every dataset gets its Glue table, partitioned or not (a deployment has no bootstrap
    // to create it: without this, unpartitioned datasets were invisible to Athena).
    let db = ports.names().glue_database.clone();
    let location = ports.names().table_location(&spec.dataset);
    ports.catalog().ensure_table(&db, &spec, &location).await?;
    if !partitions.is_empty() {
        let parts: Vec<_> = partitions.into_iter().collect();
        ports
            .catalog()
            .add_partitions(&db, &spec.dataset, &location, &parts)
            .await?;
    }
    Ok(IngestOutput {
        status: "done".into(),
        id: item.id.clone(),
        dataset: spec.dataset.clone(),
        key: item.key.clone(),
        rows_read: report.rows_read,
        rows_written: report.rows_written,
        rows_quarantined: report.rows_quarantined,
        outputs: report.outputs.len(),
        already_done: false,
        replaced_outputs,
        drift,
        lag_seconds: got.last_modified.map(|t| (ports.now() - t).max(0)),
        bytes_read: got.size,
    })
}

/// Where ingest keeps the compact profiles of a dataset's files in the lake bucket: outside
/// `data/`, so no Athena table reads them. Keys sort by ingest time.
pub fn profiles_prefix(dataset: &str) -> String {
    format!("_sluice/profiles/{dataset}/")
}

/// Compares `profile` (this file's, `stem` its output stem, `uploaded` when its raw object
/// was written) with the profiles of the dataset's files uploaded before it, then stores it
/// beside them under `<uploaded>-<stem>.json`. A redrive writes the same key again: the
/// baseline never counts a file twice, and never compares a file with itself.
///
/// The baseline is read with a bounded number of one-page listings, never the whole prefix
/// (which grows by one profile per file for ever): the files uploaded within a second
/// before this one, then 8 seconds, about a minute, and so on (×8) until `files` earlier
/// profiles are found or the window covers everything. A window holding more than a page (a burst)
/// gives a baseline of files from the same burst.
async fn check_drift<P: Ports>(
    ports: &P,
    dataset: &str,
    stem: &str,
    uploaded: i64,
    thresholds: &sluice_core::spec::DriftSpec,
    profile: &sluice_core::profile::Profile,
) -> Result<Vec<String>, FnError> {
    let lake = ports.names().lake_bucket.clone();
    let prefix = profiles_prefix(dataset);
    let own_key = format!("{prefix}{:012}-{stem}.json", uploaded.max(0));
    let mut window: i64 = 1;
    let earlier: Vec<String> = loop {
        let from = uploaded - window;
        let start = (from > 0).then(|| format!("{prefix}{from:012}"));
        let page = ports
            .store()
            .list_page(&lake, &prefix, start.as_deref(), BASELINE_PAGE)
            .await?;
        let full = page.len() >= BASELINE_PAGE;
        let keys: Vec<String> = page
            .into_iter()
            .map(|o| o.key)
            .filter(|k| k.ends_with(".json") && *k < own_key)
            .collect();
        if keys.len() >= thresholds.files || start.is_none() || full {
            break keys;
        }
        window = window.saturating_mul(8);
    };
    let mut previous = Vec::new();
    for key in earlier.iter().rev().take(thresholds.files).rev() {
        let Some(bytes) = ports.store().get_bytes(&lake, key).await? else {
            continue;
        };
        match serde_json::from_slice::<sluice_core::profile::Profile>(&bytes) {
            Ok(p) => previous.push(p),
            Err(e) => {
                lambda_runtime::tracing::warn!(key, error = %e, "a stored profile is unreadable; left out of the drift baseline")
            }
        }
    }
    let found: Vec<String> = sluice_core::profile::drift(thresholds, profile, &previous)
        .into_iter()
        .map(|d| d.message)
        .collect();
    let body =
        serde_json::to_vec(profile).map_err(|e| FnError::internal("serialising a profile", e))?;
    ports.store().put_bytes(&lake, &own_key, body).await?;
    Ok(found)
}

/// The most profiles one baseline listing reads (one S3 request).
const BASELINE_PAGE: usize = 1000;

/// The raw objects ingest takes by default (SSM `max_file_bytes`). They are read as they
/// download, never spooled: the bound is the function's 15 minutes, not its disk.
pub const DEFAULT_MAX_FILE_BYTES: i64 = 10 << 30;

/// The workbooks ingest takes by default (SSM `max_workbook_bytes`): a workbook is downloaded
/// to /tmp before it is read (it must seek), well inside the function's 4 GB of /tmp with its
/// outputs. Excel's own limit of 1,048,576 rows a sheet keeps real workbooks far below it.
pub const DEFAULT_MAX_WORKBOOK_BYTES: i64 = 1 << 30;

/// Rows a data file of one partition holds before it rolls (SSM `output_roll_rows`): a few
/// hundred MB of Parquet for typical rows; most files never roll.
pub const DEFAULT_ROLL_ROWS: i64 = 5_000_000;

/// Chunks of a streamed download in flight between the download and the reader.
const STREAM_DEPTH: usize = 16;

/// What the core's ingest error is to the pipeline: the file's fault, a full disk, or ours.
fn ingest_error(e: IngestError) -> FnError {
    match e {
        IngestError::Read { object, source } => FnError::BadFile {
            message: object,
            source: Some(source.into()),
        },
        IngestError::Write { .. } if disk_full(&e) => FnError::BadFile {
            message: "the file's outputs do not fit the function's /tmp (its ephemeral storage); raise it, or split the file".into(),
            source: Some(e.into()),
        },
        IngestError::Write { .. } => FnError::internal("ingesting", e),
    }
}

/// True when an error, or one of its sources, is a full disk (ENOSPC).
fn disk_full(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    let full = |io: &std::io::Error| {
        io.kind() == std::io::ErrorKind::StorageFull || io.raw_os_error() == Some(28)
    };
    while let Some(err) = cur {
        if err.downcast_ref::<std::io::Error>().is_some_and(full) {
            return true;
        }
        // WriteError::Io is transparent: its source() skips the io::Error itself.
        if let Some(sluice_core::write::WriteError::Io(io)) =
            err.downcast_ref::<sluice_core::write::WriteError>()
        {
            if full(io) {
                return true;
            }
        }
        cur = err.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_is_told_apart_from_other_write_errors() {
        let write = |io: std::io::Error| IngestError::Write {
            object: "s3://raw/big.csv".into(),
            source: sluice_core::write::WriteError::Io(io),
        };
        assert!(disk_full(&write(std::io::Error::from_raw_os_error(28))));
        assert!(!disk_full(&write(std::io::Error::other("broken pipe"))));
    }
}

/// The version of a source object (key and dataset) the lake holds: its ETag, its work item
/// and the manifest of its outputs. Kept as a marker beside the work items.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Current {
    version: String,
    item: String,
    manifest: String,
}

/// The outputs one version of an object published (`_sluice/outputs/<dataset>/<stem>.json`
/// in the lake bucket): what a later version removes, and the audit trail of replacements.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputsManifest {
    pub item: String,
    pub object: String,
    pub version: String,
    pub outputs: Vec<String>,
    /// The work item whose outputs these replaced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaces: Option<String>,
}

fn current_marker(item: &ItemRef) -> String {
    format!("current:s3://{}/{}:{}", item.bucket, item.key, item.dataset)
}

/// What a spec's `on_overwrite` asks of this item, read before anything is published.
struct Versions {
    policy: OnOverwrite,
    /// The marker as read (the condition of its update).
    raw: Option<String>,
    /// The version the lake holds, when it is not this item's.
    earlier: Option<Current>,
}

impl Versions {
    async fn read<P: Ports>(
        ports: &P,
        spec: &TableSpec,
        item: &ItemRef,
    ) -> Result<Versions, FnError> {
        let policy = spec.on_overwrite;
        if policy == OnOverwrite::Append {
            return Ok(Versions {
                policy,
                raw: None,
                earlier: None,
            });
        }
        let raw = ports.work().get_marker(&current_marker(item)).await?;
        let current: Option<Current> = match &raw {
            Some(r) => Some(serde_json::from_str(r).map_err(|e| {
                FnError::aws(format!(
                    "the version marker of {} is unreadable: {e}",
                    item.id
                ))
            })?),
            None => None,
        };
        let earlier = current.filter(|c| c.version != item.etag);
        if let (OnOverwrite::Reject, Some(c)) = (policy, &earlier) {
            return Err(FnError::bad_file(format!(
                    "dataset {} refuses a new version of s3://{}/{} (on_overwrite: reject): the lake holds ETag {}",
                    item.dataset, item.bucket, item.key, c.version
                ),
            ));
        }
        // Only the object's current content may replace what the lake holds: a version that
        // was overwritten while it was being read is not published.
        if let Some(now) = ports.store().head(&item.bucket, &item.key).await? {
            if now.etag.as_deref().is_some_and(|e| e != item.etag) {
                return Err(FnError::ObjectChanged(format!(
                        "s3://{}/{} was overwritten while it was ingested (now ETag {:?}); the new content is its own work item",
                        item.bucket, item.key, now.etag
                    ),
                ));
            }
        }
        Ok(Versions {
            policy,
            raw,
            earlier,
        })
    }

    /// After this item's files are up: records them, removes the earlier version's files that
    /// this one did not rewrite, then moves the marker. Returns how many files were removed.
    /// A rerun after a crash at any point converges: the marker moves last.
    async fn replace<P: Ports>(
        &self,
        ports: &P,
        item: &ItemRef,
        source: &Source,
        files: &[String],
    ) -> Result<usize, FnError> {
        if self.policy == OnOverwrite::Append {
            return Ok(0);
        }
        let lake = ports.names().lake_bucket.clone();
        let manifest = format!(
            "_sluice/outputs/{}/{}.json",
            item.dataset,
            output_stem(source)
        );
        let record = OutputsManifest {
            item: item.id.clone(),
            object: format!("s3://{}/{}", item.bucket, item.key),
            version: item.etag.clone(),
            outputs: files.to_vec(),
            replaces: self.earlier.as_ref().map(|c| c.item.clone()),
        };
        let body = serde_json::to_vec_pretty(&record)
            .map_err(|e| FnError::internal("writing the outputs manifest", e))?;
        ports.store().put_bytes(&lake, &manifest, body).await?;
        let mut removed = 0;
        if let Some(earlier) = &self.earlier {
            let old: Option<OutputsManifest> =
                match ports.store().get_bytes(&lake, &earlier.manifest).await? {
                    Some(b) => serde_json::from_slice(&b).ok(),
                    None => None,
                };
            let keep: BTreeSet<&String> = files.iter().collect();
            for f in old.map(|o| o.outputs).unwrap_or_default() {
                if !keep.contains(&f) {
                    ports.store().delete(&lake, &f).await?;
                    removed += 1;
                }
            }
        }
        let now = Current {
            version: item.etag.clone(),
            item: item.id.clone(),
            manifest,
        };
        let value = serde_json::to_string(&now)
            .map_err(|e| FnError::internal("writing the version marker", e))?;
        if !ports
            .work()
            .set_marker(&current_marker(item), self.raw.as_deref(), &value)
            .await?
        {
            return Err(FnError::transient(format!(
                "the lake's version of s3://{}/{} changed meanwhile; retrying",
                item.bucket, item.key
            )));
        }
        Ok(removed)
    }
}
