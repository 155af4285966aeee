//! Requeue: failed work items go back to `queued` once their cause was fixed (a missing spec
//! added, a model corrected), and the next scheduled run ingests them. Run by
//! `sluice requeue` or by invoking the queue-generator function with
//! `{"requeue": {...filters}}` (`events/queue-generator-requeue.json`).
//!
//! - An item that failed in ingest (`Sluice.SpecNotFound`, `Sluice.BadFile`, …) goes back to
//!   `queued`, its error cleared; its attempts stay counted.
//! - An object that matched no spec (`Sluice.NoMatchingSpec`) is matched again against today's
//!   specs: each matching dataset gets its own queued item, and the old record is closed
//!   (`done`, its error kept, its message naming the new items) so it is never requeued twice.
//! - `Sluice.ObjectChanged` is left alone: the object's new content is a work item of its own.

use crate::contracts::{Left, RequeueFilter, RequeueOutput, Requeued};
use sluice_core::ports::{
    ObjectInfo, Transition, TransitionUpdate, WorkItem, WorkQueue, WorkStatus,
};

use crate::errors::{FnError, OBJECT_CHANGED};
use crate::ports::Ports;
use crate::queue_generator::{current_specs, datasets_for, new_item, NO_MATCHING_SPEC};

impl RequeueFilter {
    fn is_empty(&self) -> bool {
        self.batch.is_none()
            && self.dataset.is_none()
            && self.error.is_none()
            && self.key_prefix.is_none()
    }

    pub fn matches(&self, w: &WorkItem) -> bool {
        let eq = |want: &Option<String>, have: Option<&str>| {
            want.as_deref().is_none_or(|want| Some(want) == have)
        };
        eq(&self.batch, Some(&w.batch))
            && eq(&self.dataset, Some(&w.dataset))
            && eq(&self.error, w.error.as_deref())
            && self
                .key_prefix
                .as_deref()
                .is_none_or(|p| w.key.starts_with(p))
    }
}

pub async fn handle<P: Ports>(ports: &P, filter: RequeueFilter) -> Result<RequeueOutput, FnError> {
    if filter.is_empty() && !filter.all {
        return Err(FnError::bad_input("name at least one filter (batch, dataset, error, key prefix), or ask for all failed items (`--all`, `\"all\": true`)",
        ));
    }
    if !filter.is_empty() && filter.all {
        return Err(FnError::bad_input(
            "all: true cannot be combined with other filters",
        ));
    }
    let specs = current_specs(ports).await?;
    let now = ports.now();
    let mut out = RequeueOutput::default();
    for w in ports.work().by_status(WorkStatus::Failed).await? {
        if !filter.matches(&w) {
            continue;
        }
        let was = w.error.clone().unwrap_or_default();
        let left = |reason: String| Left {
            id: w.id.clone(),
            key: w.key.clone(),
            error: was.clone(),
            reason,
        };
        if was == OBJECT_CHANGED {
            out.left.push(left("the object changed after it was registered; its new content is a work item of its own".into()));
            continue;
        }
        if was == NO_MATCHING_SPEC {
            let matching = datasets_for(&specs, &w.key);
            if matching.is_empty() {
                out.left
                    .push(left("still no table spec matches this key".into()));
                continue;
            }
            let object = ObjectInfo {
                bucket: w.bucket.clone(),
                key: w.key.clone(),
                size: 0,
                etag: Some(w.version.clone()),
                version_id: None,
                last_modified: None,
            };
            let mut ids = Vec::new();
            for spec in matching {
                let item = new_item(
                    &object,
                    &w.version,
                    &spec.dataset,
                    &w.batch,
                    now,
                    WorkStatus::Queued,
                );
                // Registered once: a second requeue (or a listing) finds it and leaves it.
                if ports.work().register(&item).await? {
                    out.requeued.push(Requeued {
                        id: item.id.clone(),
                        key: w.key.clone(),
                        dataset: spec.dataset.clone(),
                        was: was.clone(),
                    });
                }
                ids.push(item.id);
            }
            let close = TransitionUpdate {
                error: Some((
                    was.clone(),
                    format!("a table spec matched later: requeued as {}", ids.join(", ")),
                )),
                now,
                expires_at: Some(now + crate::run::work_retention_secs(ports).await?),
                ..Default::default()
            };
            ports
                .work()
                .transition(&w.id, &[WorkStatus::Failed], WorkStatus::Done, close)
                .await?;
            continue;
        }
        let update = TransitionUpdate {
            now,
            ..Default::default()
        };
        match ports
            .work()
            .transition(&w.id, &[WorkStatus::Failed], WorkStatus::Queued, update)
            .await?
        {
            Transition::Applied(_) => out.requeued.push(Requeued {
                id: w.id.clone(),
                key: w.key.clone(),
                dataset: w.dataset.clone(),
                was,
            }),
            Transition::Refused(now) => out.left.push(left(format!(
                "it changed meanwhile (now {})",
                now.map(|n| n.status.to_string())
                    .unwrap_or_else(|| "gone".into())
            ))),
        }
    }
    out.next = if out.requeued.is_empty() {
        "nothing requeued".into()
    } else {
        format!(
            "{} item(s) queued: the next scheduled run ingests them",
            out.requeued.len()
        )
    };
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(key: &str, dataset: &str, error: &str, batch: &str) -> WorkItem {
        WorkItem {
            id: format!("s3://raw/{key}#e:{dataset}"),
            batch: batch.into(),
            bucket: "raw".into(),
            key: key.into(),
            version: "e".into(),
            dataset: dataset.into(),
            status: WorkStatus::Failed,
            attempts: 1,
            updated_at: 0,
            execution: None,
            counts: None,
            error: Some(error.into()),
            error_message: Some("why".into()),
            drift: Vec::new(),
            pull: None,
        }
    }

    #[test]
    fn every_filter_given_must_match() {
        let w = failed("loans/a.csv", "loans", "Sluice.BadFile", "run-1");
        let f = |batch: Option<&str>,
                 dataset: Option<&str>,
                 error: Option<&str>,
                 prefix: Option<&str>| {
            RequeueFilter {
                batch: batch.map(Into::into),
                dataset: dataset.map(Into::into),
                error: error.map(Into::into),
                key_prefix: prefix.map(Into::into),
                all: false,
            }
        };
        assert!(f(Some("run-1"), None, None, None).matches(&w));
        assert!(f(None, Some("loans"), Some("Sluice.BadFile"), Some("loans/")).matches(&w));
        assert!(!f(Some("run-2"), Some("loans"), None, None).matches(&w));
        assert!(!f(None, None, Some("Sluice.SpecNotFound"), None).matches(&w));
        assert!(!f(None, None, None, Some("credit/")).matches(&w));
        assert!(RequeueFilter {
            all: true,
            ..Default::default()
        }
        .matches(&w));
    }
}
