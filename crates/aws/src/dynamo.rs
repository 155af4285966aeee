//! DynamoDB: the table-spec store, the work items and the pipeline lock.
//!
//! Tables (created by `bootstrap`, and by Terraform with the same shape):
//! - specs: key `dataset`; `document` (the spec's JSON), `version`.
//! - work: key `id` (`s3://bucket/key#version`); GSIs `open-status-index` (`open_status`, `updated_at`; open items only)
//!   and `batch-index` (`batch`, `id`). Markers (the watermark) live here too, as `marker#<name>`
//!   items without `status`/`batch`, so the indexes never see them.
//! - locks: key `name`; `owner`, `acquired_at`, `expires_at`.

use std::collections::HashMap;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use sluice_core::ports::{
    Acquire, ItemCounts, Lease, LockStore, PortError, PortResult, SpecChange, SpecStore,
    StoredSpec, Transition, TransitionUpdate, WorkItem, WorkQueue, WorkStatus,
};
use sluice_core::pull::PullRange;
use sluice_core::TableSpec;

use crate::error::{code_of, port_error};

/// Open items (queued, running, failed) by status and time. Sparse: an item carries the
/// index's key `open_status` only while it is open, so done items (every object ever
/// ingested) are never written to the index and its few partitions stay small and cool.
/// <https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/bp-indexes-general-sparse-indexes.html>
pub const STATUS_INDEX: &str = "open-status-index";
/// The attribute [`STATUS_INDEX`] is keyed by.
pub const OPEN_STATUS: &str = "open_status";
/// The work table's TTL attribute: set on done items only (SSM `work_retention_days`).
/// <https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/TTL.html>
pub const EXPIRES_AT: &str = "expires_at";
pub const BATCH_INDEX: &str = "batch-index";

type Attrs = HashMap<String, AttributeValue>;

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn get_s<'a>(a: &'a Attrs, k: &str) -> Option<&'a str> {
    a.get(k).and_then(|v| v.as_s().ok()).map(String::as_str)
}

fn get_n<T: std::str::FromStr>(a: &Attrs, k: &str) -> Option<T> {
    a.get(k)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
}

fn is_condition_failed<E: aws_sdk_dynamodb::error::ProvideErrorMetadata>(
    e: &SdkError<E, aws_sdk_dynamodb::config::http::HttpResponse>,
) -> bool {
    code_of(e) == Some("ConditionalCheckFailedException")
}

/// A conditional write's outcome: `true` when applied, `false` when its condition failed.
fn applied<
    T,
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
>(
    operation: &str,
    result: Result<T, SdkError<E, aws_sdk_dynamodb::config::http::HttpResponse>>,
) -> PortResult<bool> {
    match result {
        Ok(_) => Ok(true),
        Err(e) if is_condition_failed(&e) => Ok(false),
        Err(e) => Err(port_error(operation, e)),
    }
}

/// One item by its key, read consistently.
async fn get_item(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    key: &str,
    value: &str,
) -> PortResult<Option<Attrs>> {
    let out = client
        .get_item()
        .table_name(table)
        .key(key, s(value))
        .consistent_read(true)
        .send()
        .await
        .map_err(|e| port_error("dynamodb:GetItem", e))?;
    Ok(out.item)
}

/// A list of strings as a DynamoDB list (L of S: order kept, empty strings allowed).
/// Every item of `table`, strongly consistent, across all pages.
async fn scan(client: &aws_sdk_dynamodb::Client, table: &str) -> PortResult<Vec<Attrs>> {
    let mut pages = client
        .scan()
        .table_name(table)
        .consistent_read(true)
        .into_paginator()
        .send();
    let mut out = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| port_error("dynamodb:Scan", e))?;
        out.extend(page.items().iter().cloned());
    }
    Ok(out)
}

fn strings(v: &[String]) -> AttributeValue {
    AttributeValue::L(v.iter().map(|x| AttributeValue::S(x.clone())).collect())
}

fn bad_item(table: &str, what: &str) -> PortError {
    PortError::permanent("dynamodb", format!("table {table}: malformed item: {what}"))
}

// ---------------------------------------------------------------------------------------------
// Work items

/// A work item as DynamoDB attributes.
pub fn work_item_to_attrs(w: &WorkItem) -> Attrs {
    let mut a = Attrs::new();
    a.insert("id".into(), s(&w.id));
    a.insert("batch".into(), s(&w.batch));
    a.insert("bucket".into(), s(&w.bucket));
    a.insert("key".into(), s(&w.key));
    a.insert("version".into(), s(&w.version));
    a.insert("dataset".into(), s(&w.dataset));
    a.insert("status".into(), s(w.status.as_str()));
    if w.status != WorkStatus::Done {
        a.insert(OPEN_STATUS.into(), s(w.status.as_str()));
    }
    a.insert("attempts".into(), n(w.attempts));
    a.insert("updated_at".into(), n(w.updated_at));
    if let Some(x) = &w.execution {
        a.insert("execution".into(), s(x));
    }
    if let Some(c) = &w.counts {
        a.insert("rows_read".into(), n(c.rows_read));
        a.insert("rows_written".into(), n(c.rows_written));
        a.insert("rows_quarantined".into(), n(c.rows_quarantined));
    }
    if let Some(e) = &w.error {
        a.insert("error".into(), s(e));
    }
    if let Some(e) = &w.error_message {
        a.insert("error_message".into(), s(e));
    }
    if !w.drift.is_empty() {
        a.insert("drift".into(), strings(&w.drift));
    }
    if let Some(p) = &w.pull {
        a.insert("pull".into(), s("range"));
        if let Some(f) = &p.from {
            a.insert("pull_from".into(), s(f));
        }
        if let Some(t) = &p.to {
            a.insert("pull_to".into(), s(t));
        }
    }
    a
}

/// The attributes back as a work item; `None` names the first missing or malformed field.
pub fn work_item_from_attrs(a: &Attrs) -> Result<WorkItem, &'static str> {
    let req = |k: &'static str| get_s(a, k).map(str::to_owned).ok_or(k);
    let status = get_s(a, "status")
        .and_then(WorkStatus::parse)
        .ok_or("status")?;
    let counts = match (
        get_n(a, "rows_read"),
        get_n(a, "rows_written"),
        get_n(a, "rows_quarantined"),
    ) {
        (Some(rows_read), Some(rows_written), Some(rows_quarantined)) => Some(ItemCounts {
            rows_read,
            rows_written,
            rows_quarantined,
        }),
        _ => None,
    };
    Ok(WorkItem {
        id: req("id")?,
        batch: req("batch")?,
        bucket: req("bucket")?,
        key: req("key")?,
        version: req("version")?,
        dataset: req("dataset")?,
        status,
        attempts: get_n(a, "attempts").unwrap_or(0),
        updated_at: get_n(a, "updated_at").unwrap_or(0),
        execution: get_s(a, "execution").map(str::to_owned),
        counts,
        error: get_s(a, "error").map(str::to_owned),
        error_message: get_s(a, "error_message").map(str::to_owned),
        drift: match a.get("drift") {
            Some(AttributeValue::L(l)) => l.iter().filter_map(|v| v.as_s().ok().cloned()).collect(),
            _ => Vec::new(),
        },
        // A pull item carries `pull` (any value) and its bounds.
        pull: a.contains_key("pull").then(|| PullRange {
            from: get_s(a, "pull_from").map(str::to_owned),
            to: get_s(a, "pull_to").map(str::to_owned),
        }),
    })
}

/// The update expression of a transition, with its names and values.
pub fn transition_expression(
    from: &[WorkStatus],
    to: WorkStatus,
    u: &TransitionUpdate,
) -> (String, String, Attrs) {
    let mut values = Attrs::new();
    values.insert(":to".into(), s(to.as_str()));
    values.insert(":now".into(), n(u.now));
    let mut set = vec!["#status = :to".to_owned(), "updated_at = :now".to_owned()];
    let mut remove = Vec::new();
    // Only open items are in the status index; only done ones may expire.
    if to == WorkStatus::Done {
        remove.push(OPEN_STATUS.to_owned());
        if let Some(t) = u.expires_at {
            values.insert(":exp".into(), n(t));
            set.push(format!("{EXPIRES_AT} = :exp"));
        }
    } else {
        set.push(format!("{OPEN_STATUS} = :to"));
        remove.push(EXPIRES_AT.to_owned());
    }
    if let Some(x) = &u.execution {
        values.insert(":ex".into(), s(x));
        set.push("#execution = :ex".into());
    }
    if let Some(b) = &u.batch {
        values.insert(":batch".into(), s(b));
        set.push("#batch = :batch".into());
    }
    if let Some(c) = &u.counts {
        values.insert(":rr".into(), n(c.rows_read));
        values.insert(":rw".into(), n(c.rows_written));
        values.insert(":rq".into(), n(c.rows_quarantined));
        set.extend(
            [
                "rows_read = :rr",
                "rows_written = :rw",
                "rows_quarantined = :rq",
            ]
            .map(String::from),
        );
    }
    match &u.drift {
        Some(d) if !d.is_empty() => {
            values.insert(":drift".into(), strings(d));
            set.push("drift = :drift".into());
        }
        Some(_) => remove.push("drift".into()),
        None => {}
    }
    match &u.error {
        Some((name, message)) => {
            values.insert(":err".into(), s(name));
            values.insert(":msg".into(), s(message));
            set.extend(["#error = :err", "error_message = :msg"].map(String::from));
        }
        None => remove.extend(["#error", "error_message"].map(String::from)),
    }
    if u.count_attempt {
        values.insert(":one".into(), n(1));
        values.insert(":zero".into(), n(0));
        set.push("attempts = if_not_exists(attempts, :zero) + :one".into());
    }
    let mut update = format!("SET {}", set.join(", "));
    if !remove.is_empty() {
        update.push_str(&format!(" REMOVE {}", remove.join(", ")));
    }
    let mut alternatives = Vec::new();
    for (i, f) in from.iter().enumerate() {
        let k = format!(":from{i}");
        values.insert(k.clone(), s(f.as_str()));
        alternatives.push(k);
    }
    let condition = if alternatives.is_empty() {
        "attribute_exists(id) AND attribute_not_exists(id)".to_owned()
    } else {
        format!(
            "attribute_exists(id) AND #status IN ({})",
            alternatives.join(", ")
        )
    };
    (update, condition, values)
}

/// Done items are read by key (the exactly-once record), never listed by status.
pub fn done_not_indexed() -> PortError {
    PortError::permanent(
        "dynamodb:Query",
        "done items are not in the status index (it holds open items only); read one by its id",
    )
}

#[derive(Clone, Debug)]
pub struct DynamoWork {
    client: crate::lazy::Lazy<aws_sdk_dynamodb::Client>,
    table: String,
}

impl DynamoWork {
    pub fn new(
        client: impl Into<crate::lazy::Lazy<aws_sdk_dynamodb::Client>>,
        table: impl Into<String>,
    ) -> DynamoWork {
        DynamoWork {
            client: client.into(),
            table: table.into(),
        }
    }

    async fn query_index(&self, index: &str, key: &str, value: &str) -> PortResult<Vec<WorkItem>> {
        let mut pages = self
            .client
            .get()
            .query()
            .table_name(&self.table)
            .index_name(index)
            .key_condition_expression("#k = :v")
            .expression_attribute_names("#k", key)
            .expression_attribute_values(":v", s(value))
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| port_error("dynamodb:Query", e))?;
            for item in page.items() {
                out.push(work_item_from_attrs(item).map_err(|f| bad_item(&self.table, f))?);
            }
        }
        Ok(out)
    }

    fn marker_id(name: &str) -> String {
        format!("marker#{name}")
    }

    /// Every work item, done ones included (a full Scan: for audits and tests, never for a
    /// run's decisions), markers left out.
    pub async fn scan_items(&self) -> PortResult<Vec<WorkItem>> {
        scan(self.client.get(), &self.table)
            .await?
            .iter()
            .filter(|a| !get_s(a, "id").is_some_and(|id| id.starts_with("marker#")))
            .map(|a| work_item_from_attrs(a).map_err(|f| bad_item(&self.table, f)))
            .collect()
    }
}

impl WorkQueue for DynamoWork {
    async fn register(&self, item: &WorkItem) -> PortResult<bool> {
        let result = self
            .client
            .get()
            .put_item()
            .table_name(&self.table)
            .set_item(Some(work_item_to_attrs(item)))
            .condition_expression("attribute_not_exists(id)")
            .send()
            .await;
        applied("dynamodb:PutItem", result)
    }

    async fn get(&self, id: &str) -> PortResult<Option<WorkItem>> {
        let item = get_item(self.client.get(), &self.table, "id", id).await?;
        item.as_ref()
            .map(|a| work_item_from_attrs(a).map_err(|f| bad_item(&self.table, f)))
            .transpose()
    }

    async fn transition(
        &self,
        id: &str,
        from: &[WorkStatus],
        to: WorkStatus,
        update: TransitionUpdate,
    ) -> PortResult<Transition> {
        let (expr, condition, values) = transition_expression(from, to, &update);
        // Every transition sets or removes `#error`; reserved words (BATCH, ...) go by alias.
        let mut req = self
            .client
            .get()
            .update_item()
            .table_name(&self.table)
            .key("id", s(id))
            .update_expression(expr)
            .condition_expression(condition)
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#error", "error")
            .set_expression_attribute_values(Some(values))
            .return_values(ReturnValue::AllNew);
        if update.execution.is_some() {
            req = req.expression_attribute_names("#execution", "execution");
        }
        if update.batch.is_some() {
            req = req.expression_attribute_names("#batch", "batch");
        }
        match req.send().await {
            Ok(out) => {
                let a = out
                    .attributes()
                    .ok_or_else(|| bad_item(&self.table, "no attributes returned"))?;
                Ok(Transition::Applied(
                    work_item_from_attrs(a).map_err(|f| bad_item(&self.table, f))?,
                ))
            }
            Err(e) if is_condition_failed(&e) => Ok(Transition::Refused(self.get(id).await?)),
            Err(e) => Err(port_error("dynamodb:UpdateItem", e)),
        }
    }

    async fn by_status(&self, status: WorkStatus) -> PortResult<Vec<WorkItem>> {
        if status == WorkStatus::Done {
            return Err(done_not_indexed());
        }
        self.query_index(STATUS_INDEX, OPEN_STATUS, status.as_str())
            .await
    }

    async fn by_batch(&self, batch: &str) -> PortResult<Vec<WorkItem>> {
        self.query_index(BATCH_INDEX, "batch", batch).await
    }

    async fn get_marker(&self, name: &str) -> PortResult<Option<String>> {
        let item = get_item(self.client.get(), &self.table, "id", &Self::marker_id(name)).await?;
        Ok(item
            .as_ref()
            .and_then(|a| get_s(a, "marker_value"))
            .map(str::to_owned))
    }

    async fn set_marker(
        &self,
        name: &str,
        expected: Option<&str>,
        value: &str,
    ) -> PortResult<bool> {
        let mut req = self
            .client
            .get()
            .put_item()
            .table_name(&self.table)
            .item("id", s(Self::marker_id(name)))
            .item("marker_value", s(value));
        req = match expected {
            None => req.condition_expression("attribute_not_exists(id)"),
            Some(old) => req
                .condition_expression("marker_value = :old")
                .expression_attribute_values(":old", s(old)),
        };
        applied("dynamodb:PutItem", req.send().await)
    }
}

// ---------------------------------------------------------------------------------------------
// Specs

#[derive(Clone, Debug)]
pub struct DynamoSpecs {
    client: crate::lazy::Lazy<aws_sdk_dynamodb::Client>,
    table: String,
}

impl DynamoSpecs {
    pub fn new(
        client: impl Into<crate::lazy::Lazy<aws_sdk_dynamodb::Client>>,
        table: impl Into<String>,
    ) -> DynamoSpecs {
        DynamoSpecs {
            client: client.into(),
            table: table.into(),
        }
    }
}

impl DynamoSpecs {
    fn stored_spec(&self, a: &Attrs) -> PortResult<StoredSpec> {
        let document = get_s(a, "document").ok_or_else(|| bad_item(&self.table, "document"))?;
        let name = get_s(a, "dataset").unwrap_or("?");
        let spec = TableSpec::from_json(&format!("dynamodb:{}/{name}", self.table), document)
            .map_err(|e| PortError::permanent("dynamodb", e.to_string()))?;
        Ok(StoredSpec {
            spec,
            document: document.to_owned(),
            version: get_n(a, "version").unwrap_or(0),
        })
    }
}

impl SpecStore for DynamoSpecs {
    async fn put_spec(&self, spec: &TableSpec, document: &str) -> PortResult<SpecChange> {
        let current = get_item(self.client.get(), &self.table, "dataset", &spec.dataset).await?;
        let (version, change, condition) = match current.as_ref() {
            None => (1, SpecChange::Created, "attribute_not_exists(dataset)"),
            Some(a) if get_s(a, "document") == Some(document) => return Ok(SpecChange::Unchanged),
            Some(a) => (
                get_n::<u64>(a, "version").unwrap_or(0) + 1,
                SpecChange::Updated,
                "#version = :old",
            ),
        };
        let mut req = self
            .client
            .get()
            .put_item()
            .table_name(&self.table)
            .item("dataset", s(&spec.dataset))
            .item("document", s(document))
            .item("version", n(version))
            .condition_expression(condition);
        if change == SpecChange::Updated {
            req = req
                .expression_attribute_values(":old", n(version - 1))
                .expression_attribute_names("#version", "version");
        }
        match req.send().await {
            Ok(_) => Ok(change),
            Err(e) if is_condition_failed(&e) => Err(PortError::retryable(
                "dynamodb:PutItem",
                format!("spec {} changed while it was being stored", spec.dataset),
            )),
            Err(e) => Err(port_error("dynamodb:PutItem", e)),
        }
    }

    async fn list_specs(&self) -> PortResult<Vec<StoredSpec>> {
        let mut out = scan(self.client.get(), &self.table)
            .await?
            .iter()
            .map(|a| self.stored_spec(a))
            .collect::<PortResult<Vec<_>>>()?;
        out.sort_by(|a, b| a.spec.dataset.cmp(&b.spec.dataset));
        Ok(out)
    }

    /// One GetItem instead of a scan of every spec (ingest reads one spec per item).
    async fn get_spec(&self, dataset: &str) -> PortResult<Option<StoredSpec>> {
        get_item(self.client.get(), &self.table, "dataset", dataset)
            .await?
            .map(|a| self.stored_spec(&a))
            .transpose()
    }
}

// ---------------------------------------------------------------------------------------------
// The lock

#[derive(Clone, Debug)]
pub struct DynamoLocks {
    client: crate::lazy::Lazy<aws_sdk_dynamodb::Client>,
    table: String,
}

impl DynamoLocks {
    pub fn new(
        client: impl Into<crate::lazy::Lazy<aws_sdk_dynamodb::Client>>,
        table: impl Into<String>,
    ) -> DynamoLocks {
        DynamoLocks {
            client: client.into(),
            table: table.into(),
        }
    }

    async fn put_lease(&self, lease: &Lease, condition: &str, values: Attrs) -> PortResult<bool> {
        let result = self
            .client
            .get()
            .put_item()
            .table_name(&self.table)
            .item("name", s(&lease.name))
            .item("owner", s(&lease.owner))
            .item("acquired_at", n(lease.acquired_at))
            .item("expires_at", n(lease.expires_at))
            .condition_expression(condition)
            .expression_attribute_names("#name", "name")
            .expression_attribute_names("#owner", "owner")
            .set_expression_attribute_values(Some(values))
            .send()
            .await;
        applied("dynamodb:PutItem", result)
    }

    async fn held_or_retry(&self, name: &str) -> PortResult<Acquire> {
        match self.current(name).await? {
            Some(lease) => Ok(Acquire::Held(lease)),
            None => Err(PortError::retryable(
                "dynamodb:PutItem",
                format!("lock {name} was released while it was being acquired"),
            )),
        }
    }
}

fn new_lease(name: &str, owner: &str, ttl_secs: i64, now: i64) -> Lease {
    Lease {
        name: name.to_owned(),
        owner: owner.to_owned(),
        acquired_at: now,
        expires_at: now + ttl_secs,
    }
}

impl LockStore for DynamoLocks {
    async fn acquire(
        &self,
        name: &str,
        owner: &str,
        ttl_secs: i64,
        now: i64,
    ) -> PortResult<Acquire> {
        let lease = new_lease(name, owner, ttl_secs, now);
        let values = Attrs::from([(":now".to_owned(), n(now)), (":me".to_owned(), s(owner))]);
        let condition = "attribute_not_exists(#name) OR expires_at < :now OR #owner = :me";
        if self.put_lease(&lease, condition, values).await? {
            return Ok(Acquire::Acquired(lease));
        }
        self.held_or_retry(name).await
    }

    async fn take_over(
        &self,
        name: &str,
        previous_owner: &str,
        owner: &str,
        ttl_secs: i64,
        now: i64,
    ) -> PortResult<Acquire> {
        let lease = new_lease(name, owner, ttl_secs, now);
        let values = Attrs::from([(":prev".to_owned(), s(previous_owner))]);
        if self
            .put_lease(&lease, "attribute_exists(#name) AND #owner = :prev", values)
            .await?
        {
            return Ok(Acquire::Acquired(lease));
        }
        self.held_or_retry(name).await
    }

    async fn renew(&self, name: &str, owner: &str, ttl_secs: i64, now: i64) -> PortResult<bool> {
        let result = self
            .client
            .get()
            .update_item()
            .table_name(&self.table)
            .key("name", s(name))
            .update_expression("SET expires_at = :exp")
            .condition_expression("#owner = :me")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":exp", n(now + ttl_secs))
            .expression_attribute_values(":me", s(owner))
            .send()
            .await;
        applied("dynamodb:UpdateItem", result)
    }

    async fn release(&self, name: &str, owner: &str) -> PortResult<bool> {
        let result = self
            .client
            .get()
            .delete_item()
            .table_name(&self.table)
            .key("name", s(name))
            .condition_expression("#owner = :me")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":me", s(owner))
            .send()
            .await;
        applied("dynamodb:DeleteItem", result)
    }

    async fn current(&self, name: &str) -> PortResult<Option<Lease>> {
        let Some(a) = get_item(self.client.get(), &self.table, "name", name).await? else {
            return Ok(None);
        };
        let a = &a;
        Ok(Some(Lease {
            name: name.to_owned(),
            owner: get_s(a, "owner")
                .ok_or_else(|| bad_item(&self.table, "owner"))?
                .to_owned(),
            acquired_at: get_n(a, "acquired_at").unwrap_or(0),
            expires_at: get_n(a, "expires_at").unwrap_or(0),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item() -> WorkItem {
        WorkItem {
            id: WorkItem::item_id("raw", "loans/a.csv", "e1", "loans"),
            batch: "b1".into(),
            bucket: "raw".into(),
            key: "loans/a.csv".into(),
            version: "e1".into(),
            dataset: "loans".into(),
            status: WorkStatus::Done,
            attempts: 2,
            updated_at: 1_700_000_000,
            execution: Some("arn:x".into()),
            counts: Some(ItemCounts {
                rows_read: 10,
                rows_written: 9,
                rows_quarantined: 1,
            }),
            error: None,
            error_message: None,
            pull: None,
            drift: Vec::new(),
        }
    }

    #[test]
    fn work_items_round_trip_through_attributes() {
        let w = item();
        assert_eq!(work_item_from_attrs(&work_item_to_attrs(&w)), Ok(w));
        // Drift found on a done item, in order.
        let d = WorkItem {
            drift: vec!["income: null rate 90.0 %".into(), "age: range".into()],
            ..item()
        };
        assert_eq!(work_item_from_attrs(&work_item_to_attrs(&d)), Ok(d));
        // Pull items keep their range, an open start and a snapshot included.
        for (from, to) in [(Some("11"), Some("42")), (None, Some("42")), (None, None)] {
            let p = WorkItem {
                pull: Some(PullRange {
                    from: from.map(str::to_owned),
                    to: to.map(str::to_owned),
                }),
                ..item()
            };
            assert_eq!(work_item_from_attrs(&work_item_to_attrs(&p)), Ok(p));
        }
        let mut a = work_item_to_attrs(&item());
        a.insert("status".into(), s("lost"));
        assert_eq!(work_item_from_attrs(&a), Err("status"));
    }

    #[test]
    fn a_transition_names_its_allowed_states_and_clears_old_errors() {
        let (update, condition, values) = transition_expression(
            &[WorkStatus::Queued, WorkStatus::Failed],
            WorkStatus::Running,
            &TransitionUpdate {
                count_attempt: true,
                now: 5,
                ..Default::default()
            },
        );
        assert_eq!(
            condition,
            "attribute_exists(id) AND #status IN (:from0, :from1)"
        );
        assert!(
            update.contains("REMOVE expires_at, #error, error_message"),
            "an open item never expires, and its old error goes: {update}"
        );
        assert!(update.contains("open_status = :to"), "{update}");
        assert!(
            update.contains("attempts = if_not_exists(attempts, :zero) + :one"),
            "{update}"
        );
        assert_eq!(values.get(":from1"), Some(&s("failed")));
        assert_eq!(values.get(":to"), Some(&s("running")));
    }
}
