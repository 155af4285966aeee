//! Pulls from database sources, on the pipeline's side:
//!
//! - [`register_pulls`] (queue-generator, on a scheduled run of the dataset's cadence): fixes
//!   each database source's next range from the database, registers it as a work item keyed by
//!   its start (`pull://<dataset>/from=<hwm>`: two runs from one high-water mark register one
//!   item), then moves the high-water mark to the range's end. A source that cannot be reached
//!   is reported and the others go on.
//! - [`ensure_pulled`] (ingest, before the item is read): writes the range to its raw object
//!   unless an earlier attempt already did. The object is never rewritten, so a redrive ingests
//!   the bytes the first attempt wrote; the range itself is fixed in the item.

use chrono::{DateTime, Utc};
use sluice_core::ports::{ObjectStore, SecretStore, WorkItem, WorkQueue, WorkStatus};
use sluice_core::pull::{self, PullRange};
use sluice_core::TableSpec;
use sluice_db::pull::{Pull, PullError, PullOptions};
use sluice_db::Credentials;

use crate::contracts::{ItemRef, PullRegistered, Unmatched};
use crate::errors::FnError;
use crate::ports::Ports;

/// The connection of a database source, from its secret, and the secret's name.
async fn credentials<P: Ports>(
    ports: &P,
    spec: &TableSpec,
) -> Result<(Credentials, String), FnError> {
    let Some((_, db)) = spec.pulled() else {
        return Err(FnError::bad_input(format!(
            "dataset {} is not a database source",
            spec.dataset
        )));
    };
    let secret = &db.connection.secret;
    let text = ports.secrets().secret_string(secret).await.map_err(|e| {
        let message = format!("source {}: reading secret {secret}", spec.dataset);
        if e.is_retryable() {
            FnError::Transient {
                message,
                source: Some(e.into()),
            }
        } else {
            FnError::BadFile {
                message,
                source: Some(e.into()),
            }
        }
    })?;
    let creds =
        Credentials::from_json(&text, secret, &spec.dataset).map_err(|e| FnError::BadFile {
            message: format!("source {}", spec.dataset),
            source: Some(e.into()),
        })?;
    Ok((creds, secret.clone()))
}

/// A pull's failure as the pipeline names it: worth a retry, or the item's own failure (a
/// vanished column, refused credentials), recorded on it like a bad file's.
fn pull_error(e: PullError) -> FnError {
    if e.transient {
        FnError::Transient {
            message: "pulling".into(),
            source: Some(e.into()),
        }
    } else {
        FnError::BadFile {
            message: "pulling".into(),
            source: Some(e.into()),
        }
    }
}

/// What [`register_pulls`] did.
#[derive(Debug, Default)]
pub struct Registered {
    pub items: Vec<ItemRef>,
    pub pulls: Vec<PullRegistered>,
    pub errors: Vec<Unmatched>,
}

/// Registers the next pull of every database source with this cadence (`every_minutes`).
pub async fn register_pulls<P: Ports>(
    ports: &P,
    specs: &[TableSpec],
    every_minutes: u32,
    at: DateTime<Utc>,
    batch: &str,
) -> Result<Registered, FnError> {
    let mut out = Registered::default();
    let raw = ports.names().raw_bucket.clone();
    let label = at.format("%Y-%m-%dT%H:%M").to_string();
    for spec in specs {
        let Some((_, db)) = spec.pulled() else {
            continue;
        };
        if db.every_minutes != every_minutes {
            continue;
        }
        match register_one(ports, spec, at, &label, &raw, batch).await {
            Ok(Some((item, new))) => {
                if new {
                    out.pulls.push(PullRegistered {
                        dataset: spec.dataset.clone(),
                        id: item.id.clone(),
                        key: item.key.clone(),
                    });
                }
                if item.status == WorkStatus::Queued {
                    out.items.push(ItemRef {
                        id: item.id,
                        bucket: item.bucket,
                        key: item.key,
                        etag: item.version,
                        version_id: None,
                        dataset: item.dataset,
                        pull: item.pull,
                    });
                }
            }
            Ok(None) => {}
            // An infrastructure failure of ours (DynamoDB, S3) fails the run as before.
            Err(e @ (FnError::Port(_) | FnError::Aws { .. } | FnError::Internal { .. })) => {
                return Err(e)
            }
            Err(e) => out.errors.push(Unmatched {
                key: spec.dataset.clone(),
                reason: e.message(),
            }),
        }
    }
    Ok(out)
}

/// The item of the dataset's next range (`true`: registered now), or `None`: nothing new.
async fn register_one<P: Ports>(
    ports: &P,
    spec: &TableSpec,
    at: DateTime<Utc>,
    label: &str,
    raw: &str,
    batch: &str,
) -> Result<Option<(WorkItem, bool)>, FnError> {
    let marker = pull::high_water_marker(&spec.dataset);
    let high_water = ports.work().get_marker(&marker).await?;
    let (creds, secret) = credentials(ports, spec).await?;
    let puller = Pull {
        spec,
        creds: &creds,
        secret: &secret,
        opts: PullOptions::default(),
    };
    let Some(range) = puller
        .next_range(high_water.as_deref())
        .await
        .map_err(pull_error)?
    else {
        return Ok(None);
    };
    let item = WorkItem {
        id: pull::item_id(&spec.dataset, &range, label),
        batch: batch.to_owned(),
        bucket: raw.to_owned(),
        key: pull::raw_key(spec, at, &range, label),
        version: "pull".into(),
        dataset: spec.dataset.clone(),
        status: WorkStatus::Queued,
        attempts: 0,
        updated_at: ports.now(),
        execution: None,
        counts: None,
        error: None,
        error_message: None,
        drift: Vec::new(),
        pull: Some(range),
    };
    let new = ports.work().register(&item).await?;
    // Registered now, or by an earlier run from the same mark (which then stopped before
    // moving it): the item as stored is the one whose end the mark moves to.
    let item = match new {
        true => item,
        false => ports.work().get(&item.id).await?.unwrap_or(item),
    };
    if let Some(to) = item.pull.as_ref().and_then(|r| r.to.as_deref()) {
        ports
            .work()
            .set_marker(&marker, high_water.as_deref(), to)
            .await?;
    }
    Ok(Some((item, new)))
}

/// Writes the item's range to its raw object unless it is there already; the item to ingest
/// then, with the object's ETag.
pub async fn ensure_pulled<P: Ports>(
    ports: &P,
    item: &ItemRef,
    range: &PullRange,
) -> Result<ItemRef, FnError> {
    let done = |etag: Option<String>| ItemRef {
        etag: etag.unwrap_or_default(),
        pull: None,
        ..item.clone()
    };
    if let Some(head) = ports.store().head(&item.bucket, &item.key).await? {
        return Ok(done(head.etag));
    }
    let spec = crate::run::spec_of(ports, &item.dataset).await?;
    let (creds, secret) = credentials(ports, &spec).await?;
    let scratch = tempfile::tempdir().map_err(|e| FnError::internal("no scratch space", e))?;
    let path = scratch.path().join("pull.csv");
    Pull {
        spec: &spec,
        creds: &creds,
        secret: &secret,
        opts: PullOptions::default(),
    }
    .to_file(range, &path)
    .await
    .map_err(pull_error)?;
    ports
        .store()
        .put_file(&item.bucket, &item.key, &path)
        .await?;
    let head = ports.store().head(&item.bucket, &item.key).await?;
    Ok(done(head.and_then(|h| h.etag)))
}
