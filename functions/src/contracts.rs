//! Every step's input and output: the JSON each function takes from and gives back to the
//! state machines, in one place. The `events/` examples are these types, one file per
//! input (`events/<function>*.json`; the wiring test parses each into its function's input
//! through [`crate::registry`]). A field added here is a change of the state machine's
//! contract: the definitions under `statemachine/` pass these objects through their
//! `Parameters`/`ResultSelector`, and a recorded execution redriven after a deploy must
//! still parse (new fields get `#[serde(default)]`).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use aws_lambda_events::eventbridge::EventBridgeEvent;
use sluice_core::ports::WorkStatus;
use sluice_db::LoadReport;

// ---- queue-generator: the state machine's first step, a requeue by hand, an S3 event ----

#[derive(Debug, Clone, Deserialize)]
pub struct QueueInput {
    /// The execution's input: the EventBridge event.
    pub event: EventBridgeEvent<Value>,
    /// `$$.Execution.Id`
    pub execution: String,
}

/// What the ingest function needs to find one item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemRef {
    pub id: String,
    pub bucket: String,
    pub key: String,
    /// The ETag the item was registered with.
    pub etag: String,
    /// The S3 version id, when the trigger named one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    pub dataset: String,
    /// A pull from a database source: the range to write to `key` first (when it is not there
    /// yet), then ingest like a dropped file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull: Option<sluice_core::pull::PullRange>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestRef {
    pub bucket: String,
    pub key: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unmatched {
    pub key: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    pub from: String,
    pub to: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueOutput {
    pub batch: String,
    /// `schedule` or `object`.
    pub trigger: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<Window>,
    /// The batch's items (a JSON array of [`ItemRef`]), read by the distributed Map.
    pub manifest: ManifestRef,
    /// How many items run at once (SSM `ingest_max_concurrency`, default 4).
    pub max_concurrency: u64,
    pub count: usize,
    /// New work items registered by this run.
    pub registered: usize,
    /// Objects seen again (duplicate events, overlapping listings): not registered twice.
    pub already_known: usize,
    /// Newly seen objects that match no spec (recorded as failed items), the first
    /// [`LISTED_UNMATCHED`] of them.
    pub unmatched: Vec<Unmatched>,
    /// How many there were in all.
    #[serde(default)]
    pub unmatched_total: usize,
    /// Items left `running` by an execution that can no longer finish them, put back to
    /// `queued` and taken in this batch (scheduled runs only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub swept: Vec<Swept>,
    /// Pull items registered for database sources by this run (dataset and range).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pulls: Vec<PullRegistered>,
    /// Database sources whose next range could not be fixed (unreachable, refused
    /// credentials…): the dataset and why. The others went on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pull_errors: Vec<Unmatched>,
}

/// A pull item a run registered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullRegistered {
    pub dataset: String,
    pub id: String,
    pub key: String,
}

/// What the queue-generator function accepts: the state machine's first step, or a requeue
/// (`{"requeue": {...}}`, invoked by hand as `events/queue-generator-requeue.json` shows).
#[derive(Debug, Clone)]
pub enum QueueRequest {
    Batch(QueueInput),
    Requeue(RequeueFilter),
    /// An S3 "Object Created" event delivered straight to the function (the EventBridge rule's
    /// target): register the work item and return; the next drain run ingests it. A burst of
    /// 1,000 uploads becomes 1,000 cheap registrations and a few executions, not 1,000.
    Register(Box<EventBridgeEvent<Value>>),
}

impl<'de> Deserialize<'de> for QueueRequest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Told apart by the `requeue` key, so a malformed input gets the error of the shape
        // it meant, not serde's "did not match any variant".
        let v = Value::deserialize(d)?;
        if v.get("detail-type").is_some() {
            EventBridgeEvent::<Value>::deserialize(v)
                .map(|e| QueueRequest::Register(Box::new(e)))
                .map_err(serde::de::Error::custom)
        } else if v.get("requeue").is_some() {
            RequeueInput::deserialize(v)
                .map(|r| QueueRequest::Requeue(r.requeue))
                .map_err(serde::de::Error::custom)
        } else {
            QueueInput::deserialize(v)
                .map(QueueRequest::Batch)
                .map_err(serde::de::Error::custom)
        }
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum QueueResponse {
    Batch(Box<QueueOutput>),
    Requeue(RequeueOutput),
    Register(RegisterOutput),
}

/// What one delivered event registered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterOutput {
    pub registered: usize,
    pub already_known: usize,
    /// The object matched no spec, or was gone.
    pub unmatched: Vec<Unmatched>,
}

// ---- in-progress-check: the pipeline lock ----

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Acquire,
    Release,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LockInput {
    pub action: Action,
    /// `$$.Execution.Id`
    pub execution: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockOutput {
    /// Acquire: whether this execution holds the lock now. Release: whether it was released.
    pub acquired: bool,
    #[serde(default)]
    pub released: bool,
    /// Who holds the lock when it was not acquired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holder: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub took_over_from: Option<String>,
    pub reason: String,
}

// ---- ingest: one work item (an item of the distributed Map) ----

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IngestInput {
    /// One item of the batch's manifest (the distributed Map's item).
    pub item: ItemRef,
    /// `$$.Execution.Id`
    pub execution: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngestOutput {
    /// `done`, or `superseded` (the object was overwritten before this version was
    /// published; the newer content is its own item)
    pub status: String,
    pub id: String,
    pub dataset: String,
    pub key: String,
    pub rows_read: u64,
    pub rows_written: u64,
    pub rows_quarantined: u64,
    /// Curated files written (lake bucket keys).
    pub outputs: usize,
    /// True when the item was already done and nothing was redone.
    #[serde(default)]
    pub already_done: bool,
    /// Files of the object's earlier version removed from the lake (`on_overwrite: replace`).
    #[serde(default)]
    pub replaced_outputs: usize,
    /// The columns that moved past the spec's drift thresholds against the dataset's previous
    /// files (a spec with `drift`), in words.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drift: Vec<String>,
    /// Seconds from the object's upload (its S3 LastModified) to its rows published.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag_seconds: Option<i64>,
    /// Bytes of the raw object read.
    #[serde(default)]
    pub bytes_read: u64,
}

// ---- notify: the run summary and the failure notices ----

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Summary,
    Failure,
    /// From the status-change rule on SUCCEEDED: a short "recovered" message when the
    /// execution had been redriven, nothing otherwise.
    Recovered,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NotifyInput {
    pub kind: Kind,
    /// `$$.Execution.Id`
    pub execution: String,
    /// The queue-generator's output, when it ran.
    #[serde(default)]
    pub queue: Option<Value>,
    /// The normalize step's output, when it ran: its models and their quarantined rows.
    #[serde(default)]
    pub normalize: Option<Value>,
    /// The load step's output, when it ran: per target and table, the rows loaded and the
    /// database's and the lake's counts.
    #[serde(default)]
    pub load: Option<Value>,
    /// Failure: the state left open; read from the execution's history when absent (the
    /// status-change rule sends only the execution).
    #[serde(default)]
    pub failed_state: Option<String>,
    /// Failure: `{"Error": ..., "Cause": ...}`; read from the execution when absent.
    #[serde(default)]
    pub error: Option<Value>,
    /// Failure: the execution's status (`FAILED`, `TIMED_OUT`, `ABORTED`).
    #[serde(default)]
    pub status: Option<String>,
    /// Failure: how many times the execution was redriven.
    #[serde(default)]
    pub redrive_count: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedItem {
    pub id: String,
    pub file: String,
    pub dataset: String,
    pub status: WorkStatus,
    pub error: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotifyOutput {
    pub published: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    pub subject: String,
    pub items: usize,
    pub items_done: usize,
    pub failed_items: usize,
    pub rows_quarantined: u64,
    pub unmatched: usize,
    /// The models rebuilt in this run, with their tables' counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub models: Option<Value>,
    /// The load step's counts per target table (the run summary carries them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loads: Option<Vec<Value>>,
    /// Files of this run whose columns drifted past their spec's thresholds.
    #[serde(default)]
    pub drifted_files: usize,
}

// ---- extract: the monthly bank extract ----

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
    /// Months with a file written in this run (new or corrected).
    pub months: Vec<String>,
    /// Files written in this run.
    pub files: usize,
    /// Files that existed with other content: rewritten as corrections.
    #[serde(default)]
    pub corrected: Vec<String>,
    /// Files already up to date, left alone.
    #[serde(default)]
    pub unchanged: usize,
    pub loans: u64,
    pub bucket: String,
}

// ---- normalize: the models reading this run's datasets ----

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NormalizeInput {
    /// `$$.Execution.Id`
    pub execution: String,
    /// `$$.Execution.StartTime` (RFC 3339): every row's `created`. Default: now.
    #[serde(default)]
    pub started: Option<String>,
    /// Build these models whatever this run ingested (a manual run); default: the models
    /// that read a dataset with an item done in this run.
    #[serde(default)]
    pub models: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelOutcome {
    pub model: String,
    /// `normalized` or `skipped`
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tables: Vec<TableCounts>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableCounts {
    pub table: String,
    pub rows_written: u64,
    pub rows_quarantined: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NormalizeOutput {
    pub models: Vec<ModelOutcome>,
    pub rows_quarantined: u64,
}

// ---- load: the application databases ----

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoadInput {
    /// `$$.Execution.Id`
    pub execution: String,
    /// The Normalize state's output: the models it rebuilt.
    #[serde(default)]
    pub normalize: Option<NormalizeOutput>,
    /// Load these lake tables whatever the run touched (a manual run).
    #[serde(default)]
    pub tables: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetOutcome {
    pub target: String,
    /// `loaded` or `skipped`
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<LoadReport>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadOutput {
    pub targets: Vec<TargetOutcome>,
    /// Rows loaded into all targets by this run.
    pub rows_loaded: u64,
}

// ---- queue-generator, `{"requeue": …}`: failed items back to the queue ----

/// Which failed items to requeue. Every filter given must match; with none, `all` must be set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequeueFilter {
    /// The run (execution name) the item last belonged to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset: Option<String>,
    /// The error name (`Sluice.SpecNotFound`, `Sluice.NoMatchingSpec`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The raw object key starts with this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_prefix: Option<String>,
    /// Every failed item (only when no other filter is given).
    #[serde(default)]
    pub all: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RequeueInput {
    pub requeue: RequeueFilter,
}

/// One item now queued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Requeued {
    /// The queued item (a new one for an object that matched no spec before).
    pub id: String,
    pub key: String,
    pub dataset: String,
    /// The error it had failed with.
    pub was: String,
}

/// One matching item left failed, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Left {
    pub id: String,
    pub key: String,
    pub error: String,
    pub reason: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequeueOutput {
    pub requeued: Vec<Requeued>,
    pub left: Vec<Left>,
    /// What happens next.
    pub next: String,
}

// ---- queue-generator: stranded items swept back to the queue ----

/// An item the sweep put back to `queued`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Swept {
    pub id: String,
    pub execution: String,
    pub reason: String,
}
