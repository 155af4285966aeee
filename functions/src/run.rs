//! What the steps of one run share: the pipeline lock's lease and the check that a step
//! still holds it, the run's batch and manifest, the run's work items read strongly
//! consistently, settings, and the lake's documents and files downloaded to scratch space.

use sluice_core::ports::{Acquire, LockStore, ObjectStore, Settings, WorkItem, WorkQueue};

use crate::contracts::{ItemRef, ManifestRef};
use crate::errors::FnError;
use crate::in_progress_check::lapsed_but_alive;
use crate::ports::Ports;

/// The lock's name in the locks table.
pub const PIPELINE_LOCK: &str = "ingest-pipeline";

/// The shortest lease the lock may have: the longest function timeout (ingest, normalize:
/// 900 s) plus the longest Retry interval between its attempts (30 s) and margin. A shorter
/// lease could lapse while its owner still works, and another execution would take the lock.
pub const MIN_LEASE_SECONDS: i64 = 960;

/// The lease when SSM `lease_seconds` is not set.
pub const DEFAULT_LEASE_SECONDS: i64 = 1_800;

/// SSM `lease_seconds`, refused when shorter than [`MIN_LEASE_SECONDS`].
pub async fn lease_seconds<P: Ports>(ports: &P) -> Result<i64, FnError> {
    let lease = setting_or(ports, "lease_seconds", DEFAULT_LEASE_SECONDS).await?;
    if lease < MIN_LEASE_SECONDS {
        return Err(FnError::bad_input(format!(
                "setting lease_seconds is {lease}: shorter than the longest function timeout plus retry backoff ({MIN_LEASE_SECONDS} s), a working owner could lose the lock"
            ),
        ));
    }
    Ok(lease)
}

/// Days a done work item is kept when SSM `work_retention_days` is not set: over a year, so
/// a yearly re-upload is still known.
pub const DEFAULT_WORK_RETENTION_DAYS: i64 = 400;

/// The shortest retention allowed: the reconciliation and a long outage's catch-up must find
/// the item of every object they list.
pub const MIN_WORK_RETENTION_DAYS: i64 = 30;

/// SSM `work_retention_days` in seconds, refused when shorter than
/// [`MIN_WORK_RETENTION_DAYS`].
pub async fn work_retention_secs<P: Ports>(ports: &P) -> Result<i64, FnError> {
    let days = setting_or(ports, "work_retention_days", DEFAULT_WORK_RETENTION_DAYS).await?;
    if days < MIN_WORK_RETENTION_DAYS {
        return Err(FnError::bad_input(format!(
            "setting work_retention_days is {days}: shorter than {MIN_WORK_RETENTION_DAYS}, an object could be listed again after its work item expired"
        )));
    }
    Ok(days * 86_400)
}

/// For the steps that run under the lock (ingest, normalize): fails with `Sluice.LockLost`
/// unless `execution` holds the pipeline lock. Acquiring again as the same owner renews the
/// lease; after a redrive whose first attempt released the lock, it takes the free lock back.
pub async fn hold_lock<P: Ports>(ports: &P, execution: &str) -> Result<(), FnError> {
    let lease = lease_seconds(ports).await?;
    if let Some(alive) = lapsed_but_alive(ports, execution, ports.now()).await? {
        return Err(FnError::LockLost(format!(
                "the pipeline lock's lease lapsed but its owner {} is still RUNNING: this execution waits",
                alive.owner
            ),
        ));
    }
    match ports
        .locks()
        .acquire(PIPELINE_LOCK, execution, lease, ports.now())
        .await?
    {
        Acquire::Held(other) => Err(FnError::LockLost(format!(
            "the pipeline lock is held by {} until {}: this execution does not hold it",
            other.owner, other.expires_at
        ))),
        Acquire::Acquired(_) => Ok(()),
    }
}

/// The batch of an execution: the last part of its ARN (the execution name). Work items
/// record it, so every step of a run finds the run's items by it.
pub fn batch_of(execution: &str) -> &str {
    execution.rsplit(':').next().unwrap_or(execution)
}

/// The batch manifest of an execution's run (`manifests/<batch>.json` in the lake bucket).
pub fn manifest_of<P: Ports>(ports: &P, execution: &str) -> ManifestRef {
    ManifestRef {
        bucket: ports.names().lake_bucket.clone(),
        key: format!("manifests/{}.json", batch_of(execution)),
    }
}

/// The work items of an execution's run, read strongly consistently: the batch manifest
/// (S3 reads are strongly consistent), then each item by id (`GetItem` with ConsistentRead).
/// Never the batch index, which is eventually consistent and could miss a failed item (the
/// run would end SUCCEEDED, silent) or a done one (its model not rebuilt). A run with no
/// manifest (the extract) has no items.
pub async fn items_of_run<P: Ports>(ports: &P, execution: &str) -> Result<Vec<WorkItem>, FnError> {
    let m = manifest_of(ports, execution);
    let Some(body) = ports.store().get_bytes(&m.bucket, &m.key).await? else {
        return Ok(Vec::new());
    };
    let refs: Vec<ItemRef> = serde_json::from_slice(&body).map_err(|e| {
        FnError::aws(format!(
            "s3://{}/{} is not a batch manifest: {e}",
            m.bucket, m.key
        ))
    })?;
    let mut items = Vec::with_capacity(refs.len());
    for r in refs {
        if let Some(w) = ports.work().get(&r.id).await? {
            items.push(w);
        }
    }
    Ok(items)
}

/// The table spec of a dataset, or `Sluice.SpecNotFound`.
pub async fn spec_of<P: Ports>(
    ports: &P,
    dataset: &str,
) -> Result<sluice_core::TableSpec, FnError> {
    use sluice_core::ports::SpecStore;
    ports
        .specs()
        .get_spec(dataset)
        .await?
        .map(|s| s.spec)
        .ok_or_else(|| FnError::SpecNotFound(format!("no table spec for dataset {dataset:?}")))
}

/// A numeric setting, or `default` when it is not set. An SSM error (AccessDenied,
/// throttling) is an error, never the default; a value that is not a number is refused with
/// its name.
pub async fn setting_or<P: Ports>(
    ports: &P,
    name: &str,
    default: i64,
) -> Result<i64, crate::errors::FnError> {
    match ports.settings().get(name).await? {
        None => Ok(default),
        Some(v) => v.trim().parse().map_err(|_| {
            FnError::bad_input(format!("setting {name} is {v:?}: not a whole number"))
        }),
    }
}

/// True for a key that names a file below a folder: no `..`, no root, no drive prefix.
pub fn is_safe_relative(key: &str) -> bool {
    use std::path::Component;
    !key.is_empty()
        && std::path::Path::new(key)
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}

/// Copies the objects under `prefix` in `bucket` whose key `keep` accepts to `root/<key>`;
/// returns the local paths.
pub async fn download_prefix<P: Ports>(
    ports: &P,
    bucket: &str,
    prefix: &str,
    root: &std::path::Path,
    keep: impl Fn(&str) -> bool,
) -> Result<Vec<std::path::PathBuf>, crate::errors::FnError> {
    use sluice_core::ports::ObjectStore;
    let mut files = Vec::new();
    for o in ports.store().list(bucket, prefix).await? {
        if !keep(&o.key) {
            continue;
        }
        // A key is joined to a local path: one that climbs out (`..`) or is absolute would
        // write outside the scratch folder.
        if !is_safe_relative(&o.key) {
            return Err(FnError::bad_input(format!(
                "s3://{bucket}/{}: a key that is not a plain relative path",
                o.key
            )));
        }
        let dest = root.join(&o.key);
        if let Some(dir) = dest.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| FnError::internal(format!("creating {}", dir.display()), e))?;
        }
        ports
            .store()
            .get_to_file(bucket, &o.key, None, &dest)
            .await?;
        files.push(dest);
    }
    Ok(files)
}

/// The `*.json` documents under `prefix` in the lake bucket (models, targets), in key order,
/// each parsed by `parse` (given its `s3://` name for errors, and its text).
pub async fn config_documents<P: Ports, T>(
    ports: &P,
    prefix: &str,
    parse: impl Fn(&str, &str) -> Result<T, sluice_core::spec::SpecError>,
) -> Result<Vec<T>, FnError> {
    use sluice_core::ports::ObjectStore;
    let lake = ports.names().lake_bucket.clone();
    let mut out = Vec::new();
    for o in ports.store().list(&lake, prefix).await? {
        if !o.key.ends_with(".json") {
            continue;
        }
        let bytes = ports
            .store()
            .get_bytes(&lake, &o.key)
            .await?
            .ok_or_else(|| FnError::aws(format!("s3://{lake}/{} vanished while listing", o.key)))?;
        let name = format!("s3://{lake}/{}", o.key);
        // The spec error names the document itself.
        out.push(
            parse(&name, &String::from_utf8_lossy(&bytes))
                .map_err(|e| FnError::bad_input(e.to_string()))?,
        );
    }
    Ok(out)
}
