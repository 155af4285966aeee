//! queue-generator: turns a trigger into the batch of work items one execution processes.
//!
//! - Scheduled event: lists every dataset prefix's `yyyy=/mm=/dd=/hh=` partitions from the
//!   hour after the watermark (minus `lookback_hours` for late files) up to the previous hour,
//!   then moves the watermark to the previous hour. A run after an outage catches up (at most
//!   [`MAX_CATCH_UP_HOURS`] at a time). Items left queued by earlier runs join the batch.
//! - S3 "Object Created" event (EventBridge form): that one object.
//!
//! Every (object, ETag, dataset) becomes one work item through a conditional write, so
//! duplicate events and overlapping listings never create a second one. An object that
//! matches no spec is recorded as a failed item (`Sluice.NoMatchingSpec`) and reported once.
//! The batch travels as an S3 manifest (`manifests/<batch>.json`), read by the distributed Map.
//!
//! A scheduled run first sweeps back to `queued` the items left `running` by an execution that
//! can no longer finish them ([`crate::sweep`]). The same function also takes a requeue
//! request ([`crate::requeue`]).

use crate::contracts::{
    ItemRef, QueueInput, QueueOutput, QueueRequest, QueueResponse, RegisterOutput, Unmatched,
    Window,
};
use crate::run::{batch_of, manifest_of};
use std::collections::BTreeSet;

use aws_lambda_events::eventbridge::EventBridgeEvent;
use chrono::{DateTime, Duration, TimeZone, Timelike, Utc};
use serde_json::Value;
use sluice_core::ports::{ObjectInfo, ObjectStore, SpecStore, WorkItem, WorkQueue, WorkStatus};
use sluice_core::TableSpec;

use crate::errors::FnError;
use crate::ports::Ports;
use crate::requeue::{self};
use crate::run::setting_or;
use crate::sweep::sweep;

/// The most hours one scheduled run lists.
pub const MAX_CATCH_UP_HOURS: i64 = 7 * 24;
/// The most work items one execution takes on; the rest stay queued for the next run.
pub const MAX_ITEMS: usize = 10_000;
/// The most unmatched objects the output lists (it travels in the state payload).
pub const LISTED_UNMATCHED: usize = 50;
/// The error recorded for an object no spec matches.
pub const NO_MATCHING_SPEC: &str = "Sluice.NoMatchingSpec";
const WATERMARK: &str = "watermark";

/// The function's entry point: a batch for the state machine, or a requeue.
pub async fn handle_request<P: Ports>(
    ports: &P,
    request: QueueRequest,
) -> Result<QueueResponse, FnError> {
    // Boxed: the two futures nested inline are deeper than the compiler's layout limit.
    match request {
        QueueRequest::Batch(input) => Box::pin(handle(ports, input)).await.map(|b| {
            // The run's registrations as EMF, for the whole pipeline (dataset `all`).
            use crate::metrics::{emit, Metric, PIPELINE};
            emit(
                &ports.names().env,
                PIPELINE,
                &[
                    Metric::count("ItemsRegistered", b.registered as u64),
                    Metric::count("ObjectsUnmatched", b.unmatched_total as u64),
                    Metric::count("PullErrors", b.pull_errors.len() as u64),
                ],
                ports.now() * 1000,
            );
            QueueResponse::Batch(Box::new(b))
        }),
        QueueRequest::Requeue(filter) => Box::pin(requeue::handle(ports, filter))
            .await
            .map(QueueResponse::Requeue),
        QueueRequest::Register(event) => Box::pin(register_event(ports, &event))
            .await
            .map(QueueResponse::Register),
    }
}

/// `2026-11-21T22` for the hour starting then.
pub fn hour_label(h: DateTime<Utc>) -> String {
    h.format("%Y-%m-%dT%H").to_string()
}

fn parse_hour(label: &str) -> Option<DateTime<Utc>> {
    chrono::NaiveDateTime::parse_from_str(&format!("{label}:00:00"), "%Y-%m-%dT%H:%M:%S")
        .ok()
        .map(|n| Utc.from_utc_datetime(&n))
}

fn truncate_hour(t: DateTime<Utc>) -> DateTime<Utc> {
    t.with_minute(0)
        .and_then(|t| t.with_second(0))
        .and_then(|t| t.with_nanosecond(0))
        .unwrap_or(t)
}

/// The hours a scheduled run at `now` lists: from the hour after `watermark` minus `lookback`
/// hours (or `lookback` hours back when there is no watermark) up to the previous hour, at
/// most [`MAX_CATCH_UP_HOURS`] of them, oldest first. After a longer outage the run lists the
/// oldest hours it missed and the next runs go on from there: no hour is skipped.
pub fn hours_to_list(
    now: DateTime<Utc>,
    watermark: Option<&str>,
    lookback: i64,
) -> Vec<DateTime<Utc>> {
    let last = truncate_hour(now) - Duration::hours(1);
    let first = match watermark.and_then(parse_hour) {
        Some(w) => w + Duration::hours(1) - Duration::hours(lookback.max(0)),
        None => last - Duration::hours(lookback.max(0)),
    };
    let last = last.min(first + Duration::hours(MAX_CATCH_UP_HOURS - 1));
    let mut out = Vec::new();
    let mut h = first;
    while h <= last {
        out.push(h);
        h += Duration::hours(1);
    }
    out
}

/// The most objects one reconciliation run checks against the work table (SSM
/// `reconcile_batch` overrides); the next run goes on after the last key checked.
pub const RECONCILE_BATCH: i64 = 50_000;
const RECONCILED_UP_TO: &str = "reconciled_up_to";

/// A reconciliation (the scheduled event with `detail.reconcile = true`): the full listing
/// of every spec prefix, unpartitioned ones included, so an object no event and no hourly
/// listing brought in still gets its work item. Bounded per run: it checks the objects after
/// the last key the previous run checked, then starts over from the beginning.
async fn reconcile_listing<P: Ports>(
    ports: &P,
    specs: &[TableSpec],
    raw: &str,
    objects: &mut Vec<(ObjectInfo, Option<String>)>,
) -> Result<Advance, FnError> {
    let batch = setting_or(ports, "reconcile_batch", RECONCILE_BATCH)
        .await?
        .max(1) as usize;
    let after = ports.work().get_marker(RECONCILED_UP_TO).await?;
    // Nested prefixes (`a/` and `a/b/`) are listed once.
    let mut prefixes: Vec<&str> = specs.iter().map(|s| s.source.prefix.as_str()).collect();
    prefixes.sort_unstable();
    prefixes.dedup();
    let prefixes: Vec<&str> = prefixes
        .iter()
        .copied()
        .filter(|p| !prefixes.iter().any(|q| q != p && p.starts_with(q)))
        .collect();
    let mut listed: Vec<ObjectInfo> = Vec::new();
    for p in prefixes {
        listed.extend(ports.store().list(raw, p).await?);
    }
    listed.sort_by(|a, b| a.key.cmp(&b.key));
    let start = after
        .as_deref()
        .map(|a| listed.partition_point(|o| o.key.as_str() <= a))
        .unwrap_or(0);
    let chosen: Vec<ObjectInfo> = listed.into_iter().skip(start).take(batch).collect();
    // A full pass done: the next run starts over.
    let next = if chosen.len() < batch {
        String::new()
    } else {
        chosen.last().map(|o| o.key.clone()).unwrap_or_default()
    };
    // An object older than the work items' retention was listed by every reconciliation
    // since it arrived; its done item may have expired, and is not to be taken for "never
    // seen" (it would be ingested again).
    let oldest = ports.now() - crate::run::work_retention_secs(ports).await?;
    let chosen: Vec<ObjectInfo> = chosen
        .into_iter()
        .filter(|o| o.last_modified.is_none_or(|t| t >= oldest))
        .collect();
    objects.extend(chosen.into_iter().map(|o| (o, None)));
    Ok(Advance {
        marker: RECONCILED_UP_TO,
        read: after,
        to: next,
    })
}

/// A marker to move once the run's objects are all registered (never before: a run that
/// fails half-way lists them again).
struct Advance {
    marker: &'static str,
    read: Option<String>,
    to: String,
}

/// `<prefix>yyyy=2026/mm=11/dd=21/hh=23/`
pub fn hour_prefix(prefix: &str, h: DateTime<Utc>) -> String {
    format!("{prefix}{}", h.format("yyyy=%Y/mm=%m/dd=%d/hh=%H/"))
}

/// The object an S3 "Object Created" event names (with the version it names), or why there
/// is none to register.
async fn object_of_event<P: Ports>(
    ports: &P,
    event: &EventBridgeEvent<Value>,
) -> Result<Result<(ObjectInfo, Option<String>), Unmatched>, FnError> {
    let d = &event.detail;
    let bucket = d.pointer("/bucket/name").and_then(Value::as_str);
    let key = d.pointer("/object/key").and_then(Value::as_str);
    let (Some(bucket), Some(key)) = (bucket, key) else {
        return Err(FnError::bad_input(
            "an Object Created event needs detail.bucket.name and detail.object.key",
        ));
    };
    // The key as the event spells it may be URL-encoded (S3 notifications encode it; whether
    // EventBridge's do is not documented): find the object either way.
    let Some(mut info) = resolve_event_key(ports, bucket, key).await? else {
        return Ok(Err(Unmatched {
            key: key.to_owned(),
            reason: "the object no longer exists (deleted after its event)".into(),
        }));
    };
    let version = d
        .pointer("/object/version-id")
        .and_then(Value::as_str)
        .map(str::to_owned);
    if version.is_some() {
        // That exact version: its ETag is the event's.
        if let Some(etag) = d.pointer("/object/etag").and_then(Value::as_str) {
            info.etag = Some(etag.trim_matches('"').to_owned());
        }
    }
    Ok(Ok((info, version)))
}

/// An event delivered straight to the function: registers its object's work items (queued)
/// and returns. Duplicate deliveries register nothing twice.
pub async fn register_event<P: Ports>(
    ports: &P,
    event: &EventBridgeEvent<Value>,
) -> Result<RegisterOutput, FnError> {
    if (event.source.as_str(), event.detail_type.as_str()) != ("aws.s3", "Object Created") {
        return Err(FnError::bad_input(format!(
                "only S3 Object Created events are registered directly, not source {:?}, detail-type {:?}",
                event.source, event.detail_type
            ),
        ));
    }
    // The queue keeps the object's ETag; the drain run reads the current object and checks it.
    let (object, _version) = match object_of_event(ports, event).await? {
        Ok(o) => o,
        Err(gone) => {
            return Ok(RegisterOutput {
                registered: 0,
                already_known: 0,
                unmatched: vec![gone],
            })
        }
    };
    let specs = current_specs(ports).await?;
    let etag = object.etag.clone().unwrap_or_default();
    let now = ports.now();
    let label = format!("event-{}", event.id.as_deref().unwrap_or("unknown"));
    let matching = datasets_for(&specs, &object.key);
    if matching.is_empty() && pulled_object(&specs, &object.key) {
        return Ok(RegisterOutput {
            registered: 0,
            already_known: 1,
            unmatched: Vec::new(),
        });
    }
    if matching.is_empty() {
        let new = register_unmatched(ports, &object, &etag, &label, now).await?;
        return Ok(RegisterOutput {
            registered: 0,
            already_known: usize::from(!new),
            unmatched: if new {
                vec![no_spec(&object.key)]
            } else {
                Vec::new()
            },
        });
    }
    let (mut registered, mut already_known) = (0, 0);
    for spec in matching {
        let item = new_item(
            &object,
            &etag,
            &spec.dataset,
            &label,
            now,
            WorkStatus::Queued,
        );
        if ports.work().register(&item).await? {
            registered += 1;
        } else {
            already_known += 1;
        }
    }
    Ok(RegisterOutput {
        registered,
        already_known,
        unmatched: Vec::new(),
    })
}

/// The object an event's key names: the key as given, else its URL-decoded form (`+` is a
/// space, `%XX` a byte). `None` when neither exists.
async fn resolve_event_key<P: Ports>(
    ports: &P,
    bucket: &str,
    key: &str,
) -> Result<Option<ObjectInfo>, FnError> {
    if let Some(info) = ports.store().head(bucket, key).await? {
        return Ok(Some(info));
    }
    match form_decode(key) {
        Some(decoded) if decoded != key => Ok(ports.store().head(bucket, &decoded).await?),
        _ => Ok(None),
    }
}

/// `application/x-www-form-urlencoded` decoding, as S3 encodes keys in notifications.
/// `None` when the result is not UTF-8 or an escape is malformed.
pub fn form_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// Every table spec as the spec table holds it now.
pub async fn current_specs<P: Ports>(ports: &P) -> Result<Vec<TableSpec>, FnError> {
    Ok(ports
        .specs()
        .list_specs()
        .await?
        .into_iter()
        .map(|s| s.spec)
        .collect())
}

/// Records an object no spec matches as a failed work item (`Sluice.NoMatchingSpec`), once.
/// `true` when it was new.
async fn register_unmatched<P: Ports>(
    ports: &P,
    o: &ObjectInfo,
    etag: &str,
    batch: &str,
    now: i64,
) -> Result<bool, FnError> {
    let item = WorkItem {
        error: Some(NO_MATCHING_SPEC.into()),
        error_message: Some(format!("no table spec matches s3://{}/{}", o.bucket, o.key)),
        ..new_item(o, etag, "", batch, now, WorkStatus::Failed)
    };
    Ok(ports.work().register(&item).await?)
}

fn no_spec(key: &str) -> Unmatched {
    Unmatched {
        key: key.to_owned(),
        reason: "no table spec matches this key".into(),
    }
}

/// The datasets an object key belongs to.
/// Objects of a database source are written by its pulls, whose own work items ingest them:
/// they are never registered again from a listing or an event.
pub fn datasets_for<'a>(specs: &'a [TableSpec], key: &str) -> Vec<&'a TableSpec> {
    specs
        .iter()
        .filter(|s| s.pulled().is_none() && s.matches_key(key))
        .collect()
}

/// True when the key is an object a database source's pull wrote.
fn pulled_object(specs: &[TableSpec], key: &str) -> bool {
    specs
        .iter()
        .any(|s| s.pulled().is_some() && s.matches_key(key))
}

pub async fn handle<P: Ports>(ports: &P, input: QueueInput) -> Result<QueueOutput, FnError> {
    let batch = batch_of(&input.execution).to_owned();
    let specs = current_specs(ports).await?;
    let raw = ports.names().raw_bucket.clone();
    let event = &input.event;
    let now_secs = ports.now();
    let mut objects: Vec<(ObjectInfo, Option<String>)> = Vec::new();
    let mut advance: Option<Advance> = None;
    // Objects not registered, and why (the first LISTED_UNMATCHED), and how many in all.
    let (mut unmatched, mut unmatched_total) = (Vec::new(), 0);
    let (trigger, window) = match (event.source.as_str(), event.detail_type.as_str()) {
        ("aws.s3", "Object Created") => {
            match object_of_event(ports, event).await? {
                Ok(object) => objects.push(object),
                // Deleted before its event was handled: an empty run that says so.
                Err(gone) => {
                    unmatched.push(gone);
                    unmatched_total += 1;
                }
            }
            ("object".to_owned(), None)
        }
        (_, "Scheduled Event") if event.detail.get("pull_every_minutes").is_some() => {
            // A cadence of its own (a rule per `every_minutes` the specs name): its database
            // sources' pulls are registered below; nothing is listed.
            ("pull".to_owned(), None)
        }
        (_, "Scheduled Event") if event.detail.get("drain") == Some(&Value::Bool(true)) => {
            // Nothing to list: the items registered by events (and requeued or swept ones)
            // wait in the queue.
            ("drain".to_owned(), None)
        }
        (_, "Scheduled Event") if event.detail.get("reconcile") == Some(&Value::Bool(true)) => {
            advance = Some(reconcile_listing(ports, &specs, &raw, &mut objects).await?);
            ("reconcile".to_owned(), None)
        }
        (_, "Scheduled Event") => {
            let now = event
                .time
                .unwrap_or_else(|| Utc.timestamp_opt(now_secs, 0).single().unwrap_or_default());
            let lookback = setting_or(ports, "lookback_hours", 6).await?;
            let watermark = ports.work().get_marker(WATERMARK).await?;
            let hours = hours_to_list(now, watermark.as_deref(), lookback);
            let prefixes: BTreeSet<&str> = specs.iter().map(|s| s.source.prefix.as_str()).collect();
            for h in &hours {
                for p in &prefixes {
                    for o in ports.store().list(&raw, &hour_prefix(p, *h)).await? {
                        objects.push((o, None));
                    }
                }
            }
            // The watermark moves only once every object of these hours is registered (at
            // the end of this run).
            if let Some(last) = hours.last() {
                let label = hour_label(*last);
                if watermark.as_deref().is_none_or(|w| w < label.as_str()) {
                    advance = Some(Advance {
                        marker: WATERMARK,
                        read: watermark.clone(),
                        to: label,
                    });
                }
            }
            let window = match (hours.first(), hours.last()) {
                (Some(f), Some(l)) => Some(Window {
                    from: hour_label(*f),
                    to: hour_label(*l),
                }),
                _ => None,
            };
            ("schedule".to_owned(), window)
        }
        (source, kind) => {
            return Err(FnError::bad_input(format!("unsupported event: source {source:?}, detail-type {kind:?} (expected a Scheduled Event or an S3 Object Created event)"),
            ))
        }
    };

    let mut refs: Vec<ItemRef> = Vec::new();
    let mut seen = BTreeSet::new();
    let (mut registered, mut already_known) = (0, 0);
    for (o, version_id) in objects {
        let etag = o.etag.clone().unwrap_or_default();
        let matching = datasets_for(&specs, &o.key);
        if matching.is_empty() && pulled_object(&specs, &o.key) {
            already_known += 1;
            continue;
        }
        if matching.is_empty() {
            if register_unmatched(ports, &o, &etag, &batch, now_secs).await? {
                unmatched_total += 1;
                // The list rides in the state payload (256 KB): the first ones, and a count.
                if unmatched.len() < LISTED_UNMATCHED {
                    unmatched.push(no_spec(&o.key));
                }
            }
            continue;
        }
        for spec in matching {
            let item = new_item(
                &o,
                &etag,
                &spec.dataset,
                &batch,
                now_secs,
                WorkStatus::Queued,
            );
            // A reconciliation sees mostly known objects: a read is cheaper than a refused
            // conditional write.
            let known = match trigger.as_str() {
                "reconcile" => ports.work().get(&item.id).await?,
                _ => None,
            };
            let take = if known.is_none() && ports.work().register(&item).await? {
                registered += 1;
                true
            } else {
                already_known += 1;
                // Seen before: take it only if it still waits (a run that lost the lock).
                let existing = match known {
                    Some(w) => Some(w),
                    None => ports.work().get(&item.id).await?,
                };
                existing.is_some_and(|w| w.status == WorkStatus::Queued)
            };
            if take && seen.insert(item.id.clone()) {
                refs.push(ItemRef {
                    id: item.id,
                    bucket: o.bucket.clone(),
                    key: o.key.clone(),
                    etag: etag.clone(),
                    version_id: version_id.clone(),
                    dataset: spec.dataset.clone(),
                    pull: None,
                });
            }
        }
    }
    // Database sources: the hourly run registers the pulls of the hourly ones, a cadence's
    // rule those of its cadence.
    let cadence = match trigger.as_str() {
        "schedule" => Some(60),
        "pull" => Some(
            event
                .detail
                .get("pull_every_minutes")
                .and_then(Value::as_u64)
                .and_then(|m| u32::try_from(m).ok())
                .ok_or_else(|| {
                    FnError::bad_input("detail.pull_every_minutes must be a number of minutes")
                })?,
        ),
        _ => None,
    };
    let mut pulled = crate::pull::Registered::default();
    if let Some(every) = cadence {
        let at = event
            .time
            .unwrap_or_else(|| Utc.timestamp_opt(now_secs, 0).single().unwrap_or_default());
        pulled = crate::pull::register_pulls(ports, &specs, every, at, &batch).await?;
        registered += pulled.pulls.len();
        for r in std::mem::take(&mut pulled.items) {
            if seen.insert(r.id.clone()) {
                refs.push(r);
            }
        }
    }
    let mut swept = Vec::new();
    if trigger != "object" {
        // Nothing stranded: items whose execution can no longer finish them join this batch.
        swept = sweep(ports).await?;
        for w in ports.work().by_status(WorkStatus::Queued).await? {
            if refs.len() >= MAX_ITEMS {
                break;
            }
            if seen.insert(w.id.clone()) {
                refs.push(ItemRef {
                    id: w.id,
                    bucket: w.bucket,
                    key: w.key,
                    etag: w.version,
                    version_id: None,
                    dataset: w.dataset,
                    pull: w.pull,
                });
            }
        }
    }
    refs.truncate(MAX_ITEMS);
    let count = refs.len();
    // The batch always travels as a manifest: the distributed Map reads its items from it
    // (ItemReader), so the state payload stays small whatever the batch size.
    let manifest = manifest_of(ports, &input.execution);
    let body = serde_json::to_vec(&refs)
        .map_err(|e| FnError::internal("writing the batch manifest", e))?;
    ports
        .store()
        .put_bytes(&manifest.bucket, &manifest.key, body)
        .await?;
    let max_concurrency = setting_or(ports, "ingest_max_concurrency", 4).await?.max(1) as u64;
    // Every object listed is registered: only now may the watermark (or the reconciliation's
    // position) pass them. A failure before this point leaves it where it was, and the next
    // run lists them again.
    if let Some(a) = advance {
        ports
            .work()
            .set_marker(a.marker, a.read.as_deref(), &a.to)
            .await?;
    }
    Ok(QueueOutput {
        batch,
        trigger,
        window,
        manifest,
        max_concurrency,
        count,
        registered,
        already_known,
        unmatched,
        unmatched_total,
        swept,
        pulls: pulled.pulls,
        pull_errors: pulled.errors,
    })
}

/// A work item for one object version and dataset (`dataset` empty: matched no spec).
pub fn new_item(
    o: &ObjectInfo,
    etag: &str,
    dataset: &str,
    batch: &str,
    now: i64,
    status: WorkStatus,
) -> WorkItem {
    WorkItem {
        id: WorkItem::item_id(
            &o.bucket,
            &o.key,
            etag,
            if dataset.is_empty() { "-" } else { dataset },
        ),
        batch: batch.to_owned(),
        bucket: o.bucket.clone(),
        key: o.key.clone(),
        version: etag.to_owned(),
        dataset: dataset.to_owned(),
        status,
        attempts: 0,
        updated_at: now,
        execution: None,
        counts: None,
        error: None,
        error_message: None,
        drift: Vec::new(),
        pull: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .map(|d| d.with_timezone(&Utc))
            .unwrap_or_default()
    }

    #[test]
    fn the_window_runs_from_the_watermark_minus_lookback_to_the_previous_hour() {
        let hours = hours_to_list(at("2026-11-22T03:05:00Z"), Some("2026-11-22T01"), 1);
        let labels: Vec<String> = hours.into_iter().map(hour_label).collect();
        assert_eq!(labels, ["2026-11-22T01", "2026-11-22T02"]);
        let fresh: Vec<String> = hours_to_list(at("2026-11-22T03:05:00Z"), None, 0)
            .into_iter()
            .map(hour_label)
            .collect();
        assert_eq!(fresh, ["2026-11-22T02"]);
        // After a long outage: capped, oldest first, so the next run goes on from there.
        let caught_up = hours_to_list(at("2026-11-22T03:05:00Z"), Some("2025-01-01T00"), 6);
        assert_eq!(caught_up.len() as i64, MAX_CATCH_UP_HOURS);
        assert_eq!(hour_label(caught_up[0]), "2024-12-31T19");
        // Already up to date and no lookback: nothing to list.
        assert!(hours_to_list(at("2026-11-22T03:05:00Z"), Some("2026-11-22T02"), 0).is_empty());
    }

    #[test]
    fn event_keys_decode_as_s3_encodes_them() {
        assert_eq!(form_decode("a+b%2Bc.csv").as_deref(), Some("a b+c.csv"));
        assert_eq!(
            form_decode("caf%C3%A9/100%25.csv").as_deref(),
            Some("café/100%.csv")
        );
        assert_eq!(
            form_decode("plain/key.csv").as_deref(),
            Some("plain/key.csv")
        );
        assert_eq!(form_decode("bad%zz"), None);
        assert_eq!(form_decode("cut%4"), None);
        assert_eq!(form_decode("%ff%fe"), None, "not UTF-8");
    }

    #[test]
    fn hour_prefixes_use_the_raw_layout() {
        assert_eq!(
            hour_prefix("credit/", at("2026-11-21T23:00:00Z")),
            "credit/yyyy=2026/mm=11/dd=21/hh=23/"
        );
    }
}
