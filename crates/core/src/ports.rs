//! The ports: what the pipeline needs from the outside world, as traits over plain data.
//!
//! `sluice-aws` implements them with the AWS SDK; handler unit tests use in-memory
//! implementations. The futures are `Send` so handlers run on a multi-threaded runtime.
//! Outcomes the pipeline acts on (a key already present, a lock held by someone else, a state
//! transition refused) are values, not errors; `PortError` is for failures, and says whether
//! trying again can help.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::spec::TableSpec;

/// Whether trying the same call again can succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorClass {
    /// Throttling, 5xx, timeouts, dropped connections.
    Retryable,
    /// Anything else: access denied, missing bucket, bad request.
    Permanent,
}

/// A failed call to an outside service.
#[derive(Debug, thiserror::Error)]
#[error("{operation}: {message}")]
pub struct PortError {
    /// Service and operation, e.g. `s3:GetObject`.
    pub operation: String,
    pub class: ErrorClass,
    /// The service's error code when it gave one, e.g. `NoSuchBucket`.
    pub code: Option<String>,
    pub message: String,
    #[source]
    pub source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl PortError {
    pub fn permanent(operation: impl Into<String>, message: impl Into<String>) -> Self {
        PortError {
            operation: operation.into(),
            class: ErrorClass::Permanent,
            code: None,
            message: message.into(),
            source: None,
        }
    }

    pub fn retryable(operation: impl Into<String>, message: impl Into<String>) -> Self {
        PortError {
            class: ErrorClass::Retryable,
            ..PortError::permanent(operation, message)
        }
    }

    pub fn is_retryable(&self) -> bool {
        self.class == ErrorClass::Retryable
    }
}

pub type PortResult<T> = Result<T, PortError>;

// ---------------------------------------------------------------------------------------------
// Object storage (S3)

/// Where [`ObjectStore::get_into`] delivers an object's bytes, in order.
pub trait ByteSink: Send {
    /// The next chunk. `false`: the reader has stopped (it refused the file, or failed), so
    /// the download can stop too.
    fn chunk(&mut self, bytes: &[u8]) -> impl Future<Output = bool> + Send;
    /// The whole object was delivered: the reader may now see its end.
    fn end(&mut self) -> impl Future<Output = ()> + Send;
}

/// What a listing or a head request says about an object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectInfo {
    pub bucket: String,
    pub key: String,
    pub size: u64,
    /// The ETag without its quotes.
    pub etag: Option<String>,
    /// The version id on a versioned bucket.
    pub version_id: Option<String>,
    /// When the object was written, in seconds since the epoch (the store's clock).
    pub last_modified: Option<i64>,
}

pub trait ObjectStore: Send + Sync {
    /// Every object under `prefix`, in key order, across all pages.
    fn list(
        &self,
        bucket: &str,
        prefix: &str,
    ) -> impl Future<Output = PortResult<Vec<ObjectInfo>>> + Send;

    /// One request's worth: at most `max_keys` objects under `prefix` whose keys sort after
    /// `start_after` (from the first when `None`), in key order.
    fn list_page(
        &self,
        bucket: &str,
        prefix: &str,
        start_after: Option<&str>,
        max_keys: usize,
    ) -> impl Future<Output = PortResult<Vec<ObjectInfo>>> + Send;

    /// The object's metadata, or `None` when there is no such key.
    fn head(
        &self,
        bucket: &str,
        key: &str,
    ) -> impl Future<Output = PortResult<Option<ObjectInfo>>> + Send;

    /// Streams the object (that version, when given) into `dest`, chunk by chunk.
    fn get_to_file(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        dest: &Path,
    ) -> impl Future<Output = PortResult<ObjectInfo>> + Send;

    /// Streams the object (that version, when given) into `sink`, chunk by chunk as the
    /// download delivers them: nothing is written to disk and no more than a chunk or two is
    /// held. Stops early, without error, when the sink says its reader has gone. A download
    /// that breaks off is a retryable error; the sink is then never told the object ended, so
    /// its reader cannot take the part it got for the whole file. The returned `size` is the
    /// bytes delivered.
    fn get_into<S: ByteSink>(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        sink: &mut S,
    ) -> impl Future<Output = PortResult<ObjectInfo>> + Send;

    /// Uploads a file; large files go up in parts, read from disk one part at a time.
    fn put_file(
        &self,
        bucket: &str,
        key: &str,
        src: &Path,
    ) -> impl Future<Output = PortResult<()>> + Send;

    /// Writes a small object, replacing any object at that key.
    fn put_bytes(
        &self,
        bucket: &str,
        key: &str,
        body: Vec<u8>,
    ) -> impl Future<Output = PortResult<()>> + Send;

    /// Writes a small object only when the key is free. `false`: something is already there.
    fn put_if_absent(
        &self,
        bucket: &str,
        key: &str,
        body: Vec<u8>,
    ) -> impl Future<Output = PortResult<bool>> + Send;

    /// Reads a small object whole (manifests, markers), or `None` when there is no such key.
    fn get_bytes(
        &self,
        bucket: &str,
        key: &str,
    ) -> impl Future<Output = PortResult<Option<Vec<u8>>>> + Send;

    /// Server-side copy.
    fn copy(
        &self,
        from_bucket: &str,
        from_key: &str,
        to_bucket: &str,
        to_key: &str,
    ) -> impl Future<Output = PortResult<()>> + Send;

    /// Removes an object; a key that is already gone is not an error. Used only on the lake
    /// (outputs an object's newer version replaced); raw objects are never deleted.
    fn delete(&self, bucket: &str, key: &str) -> impl Future<Output = PortResult<()>> + Send;
}

// ---------------------------------------------------------------------------------------------
// Table specs (DynamoDB)

/// A spec as stored: the document and a version that rises with every change.
#[derive(Debug, Clone)]
pub struct StoredSpec {
    pub spec: TableSpec,
    pub document: String,
    pub version: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SpecChange {
    Created,
    Updated,
    Unchanged,
}

pub trait SpecStore: Send + Sync {
    /// Stores `document` (the spec's JSON) for `spec.dataset`; the version rises only when the
    /// document changed.
    fn put_spec(
        &self,
        spec: &TableSpec,
        document: &str,
    ) -> impl Future<Output = PortResult<SpecChange>> + Send;

    fn list_specs(&self) -> impl Future<Output = PortResult<Vec<StoredSpec>>> + Send;

    /// One dataset's spec, or `None` when there is none.
    fn get_spec(
        &self,
        dataset: &str,
    ) -> impl Future<Output = PortResult<Option<StoredSpec>>> + Send {
        async move {
            Ok(self
                .list_specs()
                .await?
                .into_iter()
                .find(|s| s.spec.dataset == dataset))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Work items (DynamoDB)

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkStatus {
    Queued,
    Running,
    Done,
    Failed,
}

impl WorkStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            WorkStatus::Queued => "queued",
            WorkStatus::Running => "running",
            WorkStatus::Done => "done",
            WorkStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<WorkStatus> {
        [
            WorkStatus::Queued,
            WorkStatus::Running,
            WorkStatus::Done,
            WorkStatus::Failed,
        ]
        .into_iter()
        .find(|w| w.as_str() == s)
    }
}

impl fmt::Display for WorkStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Row counts of a finished item.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemCounts {
    pub rows_read: u64,
    pub rows_written: u64,
    pub rows_quarantined: u64,
}

/// One source object version to ingest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkItem {
    /// `s3://bucket/key#etag:dataset`: one item per object content and dataset (a workbook
    /// can feed several datasets, one per sheet).
    pub id: String,
    /// The run that registered it, then the run that last processed it.
    pub batch: String,
    pub bucket: String,
    pub key: String,
    /// The object's ETag when it was registered.
    pub version: String,
    pub dataset: String,
    pub status: WorkStatus,
    pub attempts: u32,
    /// Seconds since the epoch of the last change.
    pub updated_at: i64,
    /// The execution that last ran it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counts: Option<ItemCounts>,
    /// Why it failed: a stable error name and a message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    /// A pull from a database source: the range it reads (fixed when it was registered) into
    /// the object `key` (written by the pull, never rewritten).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull: Option<crate::pull::PullRange>,
    /// Done: the columns that moved past the spec's drift thresholds, in words.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drift: Vec<String>,
}

impl WorkItem {
    pub fn item_id(bucket: &str, key: &str, version: &str, dataset: &str) -> String {
        format!("s3://{bucket}/{key}#{version}:{dataset}")
    }
}

/// The change a transition writes beside the new status.
#[derive(Debug, Clone, Default)]
pub struct TransitionUpdate {
    pub execution: Option<String>,
    /// Moves the item into this run's batch (the run processing it).
    pub batch: Option<String>,
    pub counts: Option<ItemCounts>,
    /// The drift found (replaces what the item had; empty clears it).
    pub drift: Option<Vec<String>>,
    pub error: Option<(String, String)>,
    /// Adds one to `attempts`.
    pub count_attempt: bool,
    pub now: i64,
    /// When the store may forget a done item (seconds since the epoch; DynamoDB TTL).
    pub expires_at: Option<i64>,
}

/// The result of a conditional transition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    Applied(WorkItem),
    /// The item was not in one of the expected states; this is the state it was in.
    Refused(Option<WorkItem>),
}

pub trait WorkQueue: Send + Sync {
    /// Creates the item unless one with its id exists. `false`: it existed (left unchanged).
    fn register(&self, item: &WorkItem) -> impl Future<Output = PortResult<bool>> + Send;

    fn get(&self, id: &str) -> impl Future<Output = PortResult<Option<WorkItem>>> + Send;

    /// Moves the item to `to` only if it is in one of `from`.
    fn transition(
        &self,
        id: &str,
        from: &[WorkStatus],
        to: WorkStatus,
        update: TransitionUpdate,
    ) -> impl Future<Output = PortResult<Transition>> + Send;

    fn by_status(
        &self,
        status: WorkStatus,
    ) -> impl Future<Output = PortResult<Vec<WorkItem>>> + Send;

    fn by_batch(&self, batch: &str) -> impl Future<Output = PortResult<Vec<WorkItem>>> + Send;

    /// A named value kept beside the items (the scheduler's watermark).
    fn get_marker(&self, name: &str) -> impl Future<Output = PortResult<Option<String>>> + Send;

    /// Sets the marker only when it still holds `expected` (`None`: absent). `false`: it moved.
    fn set_marker(
        &self,
        name: &str,
        expected: Option<&str>,
        value: &str,
    ) -> impl Future<Output = PortResult<bool>> + Send;
}

// ---------------------------------------------------------------------------------------------
// The pipeline lock (DynamoDB)

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub name: String,
    pub owner: String,
    /// Seconds since the epoch.
    pub acquired_at: i64,
    pub expires_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Acquire {
    /// The caller holds the lease now (new, renewed by the same owner, or taken over).
    Acquired(Lease),
    /// Someone else holds a live lease.
    Held(Lease),
}

pub trait LockStore: Send + Sync {
    /// Acquires `name` for `owner` when it is free, expired at `now`, or already `owner`'s.
    fn acquire(
        &self,
        name: &str,
        owner: &str,
        ttl_secs: i64,
        now: i64,
    ) -> impl Future<Output = PortResult<Acquire>> + Send;

    /// Takes the lease from `previous_owner` (whose execution is known to be finished),
    /// only if it still holds it.
    fn take_over(
        &self,
        name: &str,
        previous_owner: &str,
        owner: &str,
        ttl_secs: i64,
        now: i64,
    ) -> impl Future<Output = PortResult<Acquire>> + Send;

    /// Extends the lease; `false` when `owner` no longer holds it.
    fn renew(
        &self,
        name: &str,
        owner: &str,
        ttl_secs: i64,
        now: i64,
    ) -> impl Future<Output = PortResult<bool>> + Send;

    /// Frees the lease; `false` (and nothing changes) when `owner` does not hold it.
    fn release(&self, name: &str, owner: &str) -> impl Future<Output = PortResult<bool>> + Send;

    fn current(&self, name: &str) -> impl Future<Output = PortResult<Option<Lease>>> + Send;
}

// ---------------------------------------------------------------------------------------------
// Settings (SSM Parameter Store)

pub trait Settings: Send + Sync {
    /// Every parameter under the settings path, names relative to it (`lookback_hours`), with
    /// SecureStrings decrypted. Read once per process.
    fn all(&self) -> impl Future<Output = PortResult<BTreeMap<String, String>>> + Send;

    fn get(&self, name: &str) -> impl Future<Output = PortResult<Option<String>>> + Send {
        async move { Ok(self.all().await?.get(name).cloned()) }
    }
}

// ---------------------------------------------------------------------------------------------
// Secrets (Secrets Manager): the load step's database connections

pub trait SecretStore: Send + Sync {
    /// The secret's text (`SecretString`): for a database, the JSON RDS writes.
    fn secret_string(&self, id: &str) -> impl Future<Output = PortResult<String>> + Send;
}

// ---------------------------------------------------------------------------------------------
// The data catalog (Glue)

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "change")]
pub enum TableChange {
    Created,
    /// New nullable columns were appended.
    ColumnsAdded {
        columns: Vec<String>,
    },
    Unchanged,
}

pub trait Catalog: Send + Sync {
    fn ensure_database(&self, database: &str) -> impl Future<Output = PortResult<bool>> + Send;

    /// Creates the spec's table at `location` (`s3://lake/data/<dataset>/`), or appends the
    /// spec's new columns to an existing one.
    fn ensure_table(
        &self,
        database: &str,
        spec: &TableSpec,
        location: &str,
    ) -> impl Future<Output = PortResult<TableChange>> + Send;

    /// Registers partitions (key/value pairs in folder order); existing ones count as success.
    /// Returns how many were new.
    fn add_partitions(
        &self,
        database: &str,
        table: &str,
        table_location: &str,
        partitions: &[Vec<(String, String)>],
    ) -> impl Future<Output = PortResult<usize>> + Send;
}

// ---------------------------------------------------------------------------------------------
// Notifications (SNS)

pub trait Notifier: Send + Sync {
    /// Publishes one message: `body` for machines (queues, the default), `text` for people
    /// (e-mail). Returns the message id.
    fn publish(
        &self,
        subject: &str,
        body: &serde_json::Value,
        text: &str,
    ) -> impl Future<Output = PortResult<String>> + Send;
}

// ---------------------------------------------------------------------------------------------
// Executions (Step Functions)

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ExecutionStatus {
    Running,
    Succeeded,
    Failed,
    TimedOut,
    Aborted,
    PendingRedrive,
}

/// `DescribeExecution`'s `redriveStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RedriveStatus {
    Redrivable,
    NotRedrivable,
    RedrivableByMapRun,
}

/// What `DescribeExecution` says about an execution's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecutionState {
    pub status: ExecutionStatus,
    /// Absent where the service does not say (the emulator).
    pub redrive_status: Option<RedriveStatus>,
    /// Seconds since the epoch when it stopped.
    pub stopped_at: Option<i64>,
    /// How many times it was redriven.
    #[serde(default)]
    pub redrive_count: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExecutionSummary {
    pub arn: String,
    pub name: String,
    pub status: ExecutionStatus,
}

/// One event of an execution history, as much of it as finding the failed state needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistoryEvent {
    /// The AWS event type (`TaskStateEntered`, `LambdaFunctionFailed`, ...).
    pub kind: String,
    /// The state name of `…StateEntered` / `…StateExited` events.
    pub state: Option<String>,
    /// The iteration index of `MapIteration…` events.
    pub index: Option<u64>,
    pub error: Option<String>,
    pub cause: Option<String>,
}

/// Where and why an execution failed, read from its history.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedState {
    /// The state that stays open (entered, never exited): what Redrive resumes. Inside a
    /// Map iteration, `Map/<index>/State`.
    pub state: String,
    /// The execution's error and cause (the last failure event's when the execution's are
    /// absent).
    pub error: String,
    pub cause: String,
    pub redrive_count: u32,
}

/// The failed state of a history: the innermost state with an Entered event and no Exited
/// one (not simply the last state entered), with the Map iteration it ran in; the error and
/// cause of the last failure event. `None` when no state was left open.
pub fn failed_state(events: &[HistoryEvent]) -> Option<FailedState> {
    // Open states, innermost last: Entered pushes (replacing a finished sibling at the same
    // depth), Exited pops; iteration events mark the depth of Map iterations.
    let mut open: Vec<(String, Option<u64>)> = Vec::new();
    let mut iteration: Option<u64> = None;
    let (mut error, mut cause) = (String::new(), String::new());
    for e in events {
        let k = e.kind.as_str();
        if k.ends_with("StateEntered") {
            open.push((e.state.clone().unwrap_or_default(), iteration));
        } else if k.ends_with("StateExited") {
            let name = e.state.clone().unwrap_or_default();
            if let Some(i) = open.iter().rposition(|(n, _)| *n == name) {
                open.truncate(i);
            }
        } else if k == "MapIterationStarted" {
            iteration = e.index;
        } else if matches!(
            k,
            "MapIterationSucceeded" | "MapStateExited" | "MapStateSucceeded"
        ) {
            // The iteration's states exited already (or the Map closed over them).
            iteration = None;
        } else if k == "ExecutionRedriven" {
            open.clear();
            error.clear();
            cause.clear();
        }
        if k.ends_with("Failed") || k.ends_with("TimedOut") || k.ends_with("Aborted") {
            if let Some(er) = &e.error {
                error = er.clone();
                cause = e.cause.clone().unwrap_or_default();
            }
        }
    }
    let (name, index) = open.last()?.clone();
    // Inside iteration i, the Map is the nearest open state entered outside that iteration.
    let map = index.and_then(|i| {
        open.iter()
            .rev()
            .find(|(_, ix)| *ix != Some(i))
            .map(|(m, _)| (m.clone(), i))
    });
    let path = match map {
        Some((map, i)) => format!("{map}/{i}/{name}"),
        None => name,
    };
    Some(FailedState {
        state: path,
        error,
        cause,
        redrive_count: 0,
    })
}

pub trait Executions: Send + Sync {
    /// Where and why a finished execution failed (`DescribeExecution` and
    /// `GetExecutionHistory`), or `None` when no such execution exists.
    fn failed_state(
        &self,
        execution_arn: &str,
    ) -> impl Future<Output = PortResult<Option<FailedState>>> + Send;

    /// The execution's status, redrive status and stop time (`DescribeExecution`), or `None`
    /// when no such execution exists.
    fn describe(
        &self,
        execution_arn: &str,
    ) -> impl Future<Output = PortResult<Option<ExecutionState>>> + Send;

    /// The execution's status, or `None` when no such execution exists.
    fn status(
        &self,
        execution_arn: &str,
    ) -> impl Future<Output = PortResult<Option<ExecutionStatus>>> + Send {
        async move { Ok(self.describe(execution_arn).await?.map(|d| d.status)) }
    }

    fn list_failed(
        &self,
        state_machine_arn: &str,
    ) -> impl Future<Output = PortResult<Vec<ExecutionSummary>>> + Send;

    fn redrive(&self, execution_arn: &str) -> impl Future<Output = PortResult<()>> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(kind: &str, state: &str) -> HistoryEvent {
        HistoryEvent {
            kind: kind.into(),
            state: (!state.is_empty()).then(|| state.into()),
            ..HistoryEvent::default()
        }
    }

    fn iteration(kind: &str, index: u64) -> HistoryEvent {
        HistoryEvent {
            kind: kind.into(),
            index: Some(index),
            ..HistoryEvent::default()
        }
    }

    fn failed(kind: &str, error: &str) -> HistoryEvent {
        HistoryEvent {
            kind: kind.into(),
            error: Some(error.into()),
            cause: Some(format!("{error} happened")),
            ..HistoryEvent::default()
        }
    }

    #[test]
    fn the_failed_state_is_the_innermost_one_left_open_with_its_iteration() {
        let events = [
            ev("ExecutionStarted", ""),
            ev("TaskStateEntered", "GenerateQueue"),
            ev("TaskStateExited", "GenerateQueue"),
            ev("MapStateEntered", "Items"),
            ev("MapStateStarted", ""),
            iteration("MapIterationStarted", 0),
            ev("TaskStateEntered", "Ingest"),
            ev("TaskStateExited", "Ingest"),
            iteration("MapIterationSucceeded", 0),
            iteration("MapIterationStarted", 1),
            ev("TaskStateEntered", "Ingest"),
            failed("LambdaFunctionFailed", "AccessDenied"),
            iteration("MapIterationFailed", 1),
            ev("MapStateFailed", ""),
            failed("ExecutionFailed", "AccessDenied"),
        ];
        let f = failed_state(&events).unwrap();
        assert_eq!(f.state, "Items/1/Ingest");
        assert_eq!(f.error, "AccessDenied");
        assert_eq!(f.cause, "AccessDenied happened");
    }

    #[test]
    fn a_caught_map_is_finished_and_the_fail_state_after_it_is_what_failed() {
        let events = [
            ev("ExecutionStarted", ""),
            ev("MapStateEntered", "Items"),
            ev("MapStateStarted", ""),
            iteration("MapIterationStarted", 0),
            ev("FailStateEntered", "ItemBroke"),
            iteration("MapIterationFailed", 0),
            ev("MapStateFailed", ""),
            ev("MapStateExited", "Items"),
            ev("FailStateEntered", "PipelineFailed"),
            failed("ExecutionFailed", "Pipeline.Failed"),
        ];
        let f = failed_state(&events).unwrap();
        assert_eq!(f.state, "PipelineFailed");
        assert_eq!(f.error, "Pipeline.Failed");
    }

    #[test]
    fn nothing_open_means_no_failed_state() {
        let events = [
            ev("ExecutionStarted", ""),
            ev("PassStateEntered", "P"),
            ev("PassStateExited", "P"),
            ev("ExecutionSucceeded", ""),
        ];
        assert_eq!(failed_state(&events), None);
    }
}
