//! In-memory implementations of the ports, for the handlers' unit tests (no AWS at all).
//! Conditional operations behave as their AWS counterparts do: a registration never
//! overwrites, a transition checks the current state, a lease is taken only when free,
//! expired or already the caller's.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Mutex;

use serde_json::Value;
use sluice_aws::Names;
use sluice_core::ports::{
    Acquire, ByteSink, Catalog, ExecutionState, ExecutionStatus, ExecutionSummary, Executions,
    FailedState, Lease, LockStore, Notifier, ObjectInfo, ObjectStore, PortError, PortResult,
    RedriveStatus, Settings, SpecChange, SpecStore, StoredSpec, TableChange, Transition,
    TransitionUpdate, WorkItem, WorkQueue, WorkStatus,
};
use sluice_core::TableSpec;

use crate::ports::Ports;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[derive(Default)]
pub struct MemStore {
    pub objects: Mutex<BTreeMap<(String, String), Vec<u8>>>,
    /// When set, `put_bytes` fails (throttled), as S3 can mid-run.
    pub fail_put_bytes: std::sync::atomic::AtomicBool,
    /// Downloads spooled to a file (`get_to_file`) and streamed (`get_into`).
    pub spooled: std::sync::atomic::AtomicUsize,
    pub streamed: std::sync::atomic::AtomicUsize,
    /// When set, a streamed download breaks off after this many bytes (a connection reset).
    pub break_after: Mutex<Option<usize>>,
    /// Small or whole-object reads (`get_bytes`), and whether they fail (throttled).
    pub reads: std::sync::atomic::AtomicUsize,
    pub fail_get_bytes: std::sync::atomic::AtomicBool,
    /// Objects' LastModified (seconds), where a test set one.
    pub modified: Mutex<BTreeMap<(String, String), i64>>,
}

/// The chunk size of the in-memory store's streamed downloads: small, so readers meet chunk
/// boundaries inside lines and fields.
const MEM_CHUNK: usize = 1000;

impl MemStore {
    pub fn put(&self, bucket: &str, key: &str, body: &[u8]) {
        lock(&self.objects).insert((bucket.to_owned(), key.to_owned()), body.to_vec());
    }

    /// Puts an object written at `time` (seconds since the epoch).
    pub fn put_at(&self, bucket: &str, key: &str, body: &[u8], time: i64) {
        self.put(bucket, key, body);
        lock(&self.modified).insert((bucket.to_owned(), key.to_owned()), time);
    }

    fn dated(&self, mut info: ObjectInfo) -> ObjectInfo {
        info.last_modified = lock(&self.modified)
            .get(&(info.bucket.clone(), info.key.clone()))
            .copied();
        info
    }

    pub(crate) fn info(bucket: &str, key: &str, body: &[u8]) -> ObjectInfo {
        ObjectInfo {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            size: body.len() as u64,
            etag: Some(format!("{:016x}", sluice_core::ingest::fnv1a64(body))),
            version_id: None,
            last_modified: None,
        }
    }
}

impl ObjectStore for MemStore {
    async fn list(&self, bucket: &str, prefix: &str) -> PortResult<Vec<ObjectInfo>> {
        Ok(lock(&self.objects)
            .iter()
            .filter(|((b, k), _)| b == bucket && k.starts_with(prefix))
            .map(|((b, k), v)| self.dated(MemStore::info(b, k, v)))
            .collect())
    }

    async fn list_page(
        &self,
        bucket: &str,
        prefix: &str,
        start_after: Option<&str>,
        max_keys: usize,
    ) -> PortResult<Vec<ObjectInfo>> {
        Ok(self
            .list(bucket, prefix)
            .await?
            .into_iter()
            .filter(|o| start_after.is_none_or(|a| o.key.as_str() > a))
            .take(max_keys)
            .collect())
    }

    async fn head(&self, bucket: &str, key: &str) -> PortResult<Option<ObjectInfo>> {
        Ok(lock(&self.objects)
            .get(&(bucket.to_owned(), key.to_owned()))
            .map(|v| self.dated(MemStore::info(bucket, key, v))))
    }

    async fn get_to_file(
        &self,
        bucket: &str,
        key: &str,
        _v: Option<&str>,
        dest: &Path,
    ) -> PortResult<ObjectInfo> {
        self.spooled
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let body = lock(&self.objects)
            .get(&(bucket.to_owned(), key.to_owned()))
            .cloned()
            .ok_or_else(|| PortError::permanent("mem:get", format!("no {bucket}/{key}")))?;
        std::fs::write(dest, &body).map_err(|e| PortError::permanent("mem:get", e.to_string()))?;
        Ok(self.dated(MemStore::info(bucket, key, &body)))
    }

    async fn get_into<S: ByteSink>(
        &self,
        bucket: &str,
        key: &str,
        _v: Option<&str>,
        sink: &mut S,
    ) -> PortResult<ObjectInfo> {
        self.streamed
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let body = lock(&self.objects)
            .get(&(bucket.to_owned(), key.to_owned()))
            .cloned()
            .ok_or_else(|| PortError::permanent("mem:get", format!("no {bucket}/{key}")))?;
        let limit = *lock(&self.break_after);
        let deliver = limit.map_or(body.len(), |n| n.min(body.len()));
        for chunk in body[..deliver].chunks(MEM_CHUNK) {
            if !sink.chunk(chunk).await {
                return Ok(self.dated(MemStore::info(bucket, key, &body)));
            }
        }
        if limit.is_some() {
            return Err(PortError::retryable(
                "mem:get",
                format!("{bucket}/{key}: the download broke off after {deliver} bytes"),
            ));
        }
        sink.end().await;
        Ok(self.dated(MemStore::info(bucket, key, &body)))
    }

    async fn put_file(&self, bucket: &str, key: &str, src: &Path) -> PortResult<()> {
        let body =
            std::fs::read(src).map_err(|e| PortError::permanent("mem:put", e.to_string()))?;
        self.put(bucket, key, &body);
        Ok(())
    }

    async fn put_bytes(&self, bucket: &str, key: &str, body: Vec<u8>) -> PortResult<()> {
        if self
            .fail_put_bytes
            .load(std::sync::atomic::Ordering::SeqCst)
        {
            return Err(PortError::retryable("mem:put_bytes", "SlowDown"));
        }
        self.put(bucket, key, &body);
        Ok(())
    }

    async fn put_if_absent(&self, bucket: &str, key: &str, body: Vec<u8>) -> PortResult<bool> {
        let mut objects = lock(&self.objects);
        let k = (bucket.to_owned(), key.to_owned());
        if objects.contains_key(&k) {
            return Ok(false);
        }
        objects.insert(k, body);
        Ok(true)
    }

    async fn get_bytes(&self, bucket: &str, key: &str) -> PortResult<Option<Vec<u8>>> {
        use std::sync::atomic::Ordering::SeqCst;
        self.reads.fetch_add(1, SeqCst);
        if self.fail_get_bytes.load(SeqCst) {
            return Err(PortError::retryable("mem:get_bytes", "SlowDown"));
        }
        Ok(lock(&self.objects)
            .get(&(bucket.to_owned(), key.to_owned()))
            .cloned())
    }

    async fn copy(&self, fb: &str, fk: &str, tb: &str, tk: &str) -> PortResult<()> {
        let body = self
            .get_bytes(fb, fk)
            .await?
            .ok_or_else(|| PortError::permanent("mem:copy", "no source"))?;
        self.put(tb, tk, &body);
        Ok(())
    }

    async fn delete(&self, bucket: &str, key: &str) -> PortResult<()> {
        lock(&self.objects).remove(&(bucket.to_owned(), key.to_owned()));
        Ok(())
    }
}

#[derive(Default)]
pub struct MemWork {
    pub items: Mutex<BTreeMap<String, WorkItem>>,
    pub markers: Mutex<HashMap<String, String>>,
    /// When set, the batch index lags (as a DynamoDB GSI may): `by_batch` sees nothing yet.
    pub batch_index_lags: std::sync::atomic::AtomicBool,
    /// The expiry (DynamoDB TTL) of each done item that was given one.
    pub expiries: Mutex<BTreeMap<String, i64>>,
}

impl WorkQueue for MemWork {
    async fn register(&self, item: &WorkItem) -> PortResult<bool> {
        let mut items = lock(&self.items);
        if items.contains_key(&item.id) {
            return Ok(false);
        }
        items.insert(item.id.clone(), item.clone());
        Ok(true)
    }

    async fn get(&self, id: &str) -> PortResult<Option<WorkItem>> {
        Ok(lock(&self.items).get(id).cloned())
    }

    async fn transition(
        &self,
        id: &str,
        from: &[WorkStatus],
        to: WorkStatus,
        u: TransitionUpdate,
    ) -> PortResult<Transition> {
        let mut items = lock(&self.items);
        let Some(w) = items.get_mut(id) else {
            return Ok(Transition::Refused(None));
        };
        if !from.contains(&w.status) {
            return Ok(Transition::Refused(Some(w.clone())));
        }
        w.status = to;
        w.updated_at = u.now;
        if let Some(x) = u.execution {
            w.execution = Some(x);
        }
        if let Some(b) = u.batch {
            w.batch = b;
        }
        if let Some(c) = u.counts {
            w.counts = Some(c);
        }
        if let Some(d) = u.drift {
            w.drift = d;
        }
        match u.error {
            Some((e, m)) => {
                w.error = Some(e);
                w.error_message = Some(m);
            }
            None => {
                w.error = None;
                w.error_message = None;
            }
        }
        if u.count_attempt {
            w.attempts += 1;
        }
        match (to, u.expires_at) {
            (WorkStatus::Done, Some(t)) => {
                lock(&self.expiries).insert(id.to_owned(), t);
            }
            (WorkStatus::Done, None) => {}
            _ => {
                lock(&self.expiries).remove(id);
            }
        }
        Ok(Transition::Applied(w.clone()))
    }

    async fn by_status(&self, status: WorkStatus) -> PortResult<Vec<WorkItem>> {
        // As the sparse index on AWS: done items are not listed.
        if status == WorkStatus::Done {
            return Err(sluice_aws::dynamo::done_not_indexed());
        }
        Ok(lock(&self.items)
            .values()
            .filter(|w| w.status == status)
            .cloned()
            .collect())
    }

    async fn by_batch(&self, batch: &str) -> PortResult<Vec<WorkItem>> {
        if self
            .batch_index_lags
            .load(std::sync::atomic::Ordering::SeqCst)
        {
            return Ok(Vec::new());
        }
        Ok(lock(&self.items)
            .values()
            .filter(|w| w.batch == batch)
            .cloned()
            .collect())
    }

    async fn get_marker(&self, name: &str) -> PortResult<Option<String>> {
        Ok(lock(&self.markers).get(name).cloned())
    }

    async fn set_marker(
        &self,
        name: &str,
        expected: Option<&str>,
        value: &str,
    ) -> PortResult<bool> {
        let mut markers = lock(&self.markers);
        if markers.get(name).map(String::as_str) != expected {
            return Ok(false);
        }
        markers.insert(name.to_owned(), value.to_owned());
        Ok(true)
    }
}

#[derive(Default)]
pub struct MemLocks {
    pub leases: Mutex<HashMap<String, Lease>>,
}

impl LockStore for MemLocks {
    async fn acquire(&self, name: &str, owner: &str, ttl: i64, now: i64) -> PortResult<Acquire> {
        let mut leases = lock(&self.leases);
        match leases.get(name) {
            Some(l) if l.owner != owner && l.expires_at >= now => Ok(Acquire::Held(l.clone())),
            _ => {
                let l = Lease {
                    name: name.to_owned(),
                    owner: owner.to_owned(),
                    acquired_at: now,
                    expires_at: now + ttl,
                };
                leases.insert(name.to_owned(), l.clone());
                Ok(Acquire::Acquired(l))
            }
        }
    }

    async fn take_over(
        &self,
        name: &str,
        previous: &str,
        owner: &str,
        ttl: i64,
        now: i64,
    ) -> PortResult<Acquire> {
        let mut leases = lock(&self.leases);
        match leases.get(name) {
            Some(l) if l.owner == previous => {
                let l = Lease {
                    name: name.to_owned(),
                    owner: owner.to_owned(),
                    acquired_at: now,
                    expires_at: now + ttl,
                };
                leases.insert(name.to_owned(), l.clone());
                Ok(Acquire::Acquired(l))
            }
            Some(l) => Ok(Acquire::Held(l.clone())),
            None => Err(PortError::retryable("mem:lock", "released meanwhile")),
        }
    }

    async fn renew(&self, name: &str, owner: &str, ttl: i64, now: i64) -> PortResult<bool> {
        let mut leases = lock(&self.leases);
        match leases.get_mut(name) {
            Some(l) if l.owner == owner => {
                l.expires_at = now + ttl;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn release(&self, name: &str, owner: &str) -> PortResult<bool> {
        let mut leases = lock(&self.leases);
        if leases.get(name).is_some_and(|l| l.owner == owner) {
            leases.remove(name);
            return Ok(true);
        }
        Ok(false)
    }

    async fn current(&self, name: &str) -> PortResult<Option<Lease>> {
        Ok(lock(&self.leases).get(name).cloned())
    }
}

#[derive(Default)]
pub struct MemSpecs {
    pub specs: Mutex<Vec<StoredSpec>>,
}

impl SpecStore for MemSpecs {
    async fn put_spec(&self, spec: &TableSpec, document: &str) -> PortResult<SpecChange> {
        let mut specs = lock(&self.specs);
        match specs.iter_mut().find(|s| s.spec.dataset == spec.dataset) {
            Some(s) if s.document == document => Ok(SpecChange::Unchanged),
            Some(s) => {
                s.spec = spec.clone();
                s.document = document.to_owned();
                s.version += 1;
                Ok(SpecChange::Updated)
            }
            None => {
                specs.push(StoredSpec {
                    spec: spec.clone(),
                    document: document.to_owned(),
                    version: 1,
                });
                Ok(SpecChange::Created)
            }
        }
    }

    async fn list_specs(&self) -> PortResult<Vec<StoredSpec>> {
        Ok(lock(&self.specs).clone())
    }
}

/// A partition as key/value pairs in folder order.
type Partition = Vec<(String, String)>;

#[derive(Default)]
pub struct MemCatalog {
    pub partitions: Mutex<BTreeMap<String, Vec<Partition>>>,
}

impl Catalog for MemCatalog {
    async fn ensure_database(&self, _database: &str) -> PortResult<bool> {
        Ok(false)
    }

    async fn ensure_table(
        &self,
        _db: &str,
        _spec: &TableSpec,
        _location: &str,
    ) -> PortResult<TableChange> {
        Ok(TableChange::Unchanged)
    }

    async fn add_partitions(
        &self,
        _db: &str,
        table: &str,
        _loc: &str,
        parts: &[Vec<(String, String)>],
    ) -> PortResult<usize> {
        let mut all = lock(&self.partitions);
        let known = all.entry(table.to_owned()).or_default();
        let mut added = 0;
        for p in parts {
            if !known.contains(p) {
                known.push(p.clone());
                added += 1;
            }
        }
        Ok(added)
    }
}

#[derive(Default)]
pub struct MemNotifier {
    pub published: Mutex<Vec<(String, Value)>>,
    pub texts: Mutex<Vec<String>>,
}

impl Notifier for MemNotifier {
    async fn publish(&self, subject: &str, body: &Value, text: &str) -> PortResult<String> {
        lock(&self.texts).push(text.to_owned());
        let mut p = lock(&self.published);
        p.push((subject.to_owned(), body.clone()));
        Ok(format!("msg-{}", p.len()))
    }
}

#[derive(Default)]
pub struct MemExecutions {
    pub status: Mutex<HashMap<String, ExecutionState>>,
    pub failures: Mutex<HashMap<String, FailedState>>,
}

impl MemExecutions {
    pub fn set(
        &self,
        arn: &str,
        status: ExecutionStatus,
        redrive_status: Option<RedriveStatus>,
        stopped_at: Option<i64>,
    ) {
        lock(&self.status).insert(
            arn.to_owned(),
            ExecutionState {
                status,
                redrive_status,
                stopped_at,
                redrive_count: 0,
            },
        );
    }
}

impl Executions for MemExecutions {
    async fn failed_state(&self, arn: &str) -> PortResult<Option<FailedState>> {
        Ok(lock(&self.failures).get(arn).cloned())
    }

    async fn describe(&self, arn: &str) -> PortResult<Option<ExecutionState>> {
        Ok(lock(&self.status).get(arn).copied())
    }

    async fn list_failed(&self, _machine: &str) -> PortResult<Vec<ExecutionSummary>> {
        Ok(Vec::new())
    }

    async fn redrive(&self, _arn: &str) -> PortResult<()> {
        Ok(())
    }
}

#[derive(Default)]
pub struct MemSecrets {
    pub values: std::sync::Mutex<BTreeMap<String, String>>,
}

impl sluice_core::ports::SecretStore for MemSecrets {
    async fn secret_string(&self, id: &str) -> PortResult<String> {
        self.values
            .lock()
            .map_err(|_| PortError::permanent("GetSecretValue", "poisoned"))?
            .get(id)
            .cloned()
            .ok_or_else(|| {
                PortError::permanent(
                    format!("GetSecretValue {id}"),
                    "ResourceNotFoundException: Secrets Manager can't find the specified secret.",
                )
            })
    }
}

#[derive(Default)]
pub struct MemSettings {
    pub values: BTreeMap<String, String>,
}

impl Settings for MemSettings {
    async fn all(&self) -> PortResult<BTreeMap<String, String>> {
        Ok(self.values.clone())
    }
}

/// Every port in memory, with a settable clock.
pub struct MemPorts {
    pub store: MemStore,
    pub work: MemWork,
    pub locks: MemLocks,
    pub specs: MemSpecs,
    pub catalog: MemCatalog,
    pub notifier: MemNotifier,
    pub executions: MemExecutions,
    pub settings: MemSettings,
    pub secrets: MemSecrets,
    pub names: Names,
    pub now: i64,
}

impl MemPorts {
    pub fn new(specs: Vec<TableSpec>) -> MemPorts {
        MemPorts {
            store: MemStore::default(),
            work: MemWork::default(),
            locks: MemLocks::default(),
            specs: MemSpecs {
                specs: Mutex::new(
                    specs
                        .into_iter()
                        .map(|spec| StoredSpec {
                            spec,
                            document: String::new(),
                            version: 1,
                        })
                        .collect(),
                ),
            },
            catalog: MemCatalog::default(),
            notifier: MemNotifier::default(),
            executions: MemExecutions::default(),
            settings: MemSettings::default(),
            secrets: MemSecrets::default(),
            names: Names::for_env("unit"),
            now: 1_700_000_000,
        }
    }
}

impl Ports for MemPorts {
    type Store = MemStore;
    type Work = MemWork;
    type Locks = MemLocks;
    type Specs = MemSpecs;
    type Catalog = MemCatalog;
    type Notifier = MemNotifier;
    type Executions = MemExecutions;
    type Settings = MemSettings;
    type Secrets = MemSecrets;

    fn store(&self) -> &MemStore {
        &self.store
    }
    fn work(&self) -> &MemWork {
        &self.work
    }
    fn locks(&self) -> &MemLocks {
        &self.locks
    }
    fn specs(&self) -> &MemSpecs {
        &self.specs
    }
    fn catalog(&self) -> &MemCatalog {
        &self.catalog
    }
    fn notifier(&self) -> &MemNotifier {
        &self.notifier
    }
    fn executions(&self) -> &MemExecutions {
        &self.executions
    }
    fn settings(&self) -> &MemSettings {
        &self.settings
    }
    fn secrets(&self) -> &MemSecrets {
        &self.secrets
    }
    fn names(&self) -> &Names {
        &self.names
    }
    fn now(&self) -> i64 {
        self.now
    }
}
