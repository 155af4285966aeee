//! The end-to-end harness: a fresh, bootstrapped environment on the emulator per test, the
//! real definition, the real handlers in-process, and independent read-back.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use serde_json::{json, Value};
use sluice_asl::{ExecutionInfo, Options, Record, TaskError, TaskRunner};
use sluice_aws::bootstrap::bootstrap;
use sluice_aws::s3::S3Store;
use sluice_aws::{Clients, Names};
use sluice_core::model::ModelSpec;
use sluice_core::ports::{
    ByteSink, ObjectInfo, ObjectStore, PortError, PortResult, WorkItem, WorkQueue,
};
use sluice_core::TableSpec;
use sluice_functions::local::LocalLambdas;
use sluice_functions::{AwsPorts, Ports};

pub fn root() -> PathBuf {
    sluice_testkit::repo_root()
}

pub fn definition() -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(root().join("statemachine/ingest.asl.json")).unwrap(),
    )
    .unwrap()
}

pub fn specs() -> Vec<(TableSpec, String)> {
    TableSpec::load_dir(&root().join("config/tables")).unwrap()
}

pub fn models() -> Vec<(ModelSpec, String)> {
    ModelSpec::load_dir(&root().join("config/models")).unwrap()
}

pub fn scheduled(time: &str) -> Value {
    json!({
        "version": "0", "id": "test", "detail-type": "Scheduled Event", "source": "aws.events",
        "account": "000000000000", "time": time, "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:000000000000:rule/hourly"], "detail": {}
    })
}

pub fn object_created(bucket: &str, key: &str, etag: &str) -> Value {
    json!({
        "version": "0", "id": "test", "detail-type": "Object Created", "source": "aws.s3",
        "account": "000000000000", "time": "2026-11-21T23:12:41Z", "region": "us-east-1",
        "resources": [format!("arn:aws:s3:::{bucket}")],
        "detail": {"version": "0", "bucket": {"name": bucket}, "object": {"key": key, "size": 1, "etag": etag}}
    })
}

pub fn sample(rel: &str) -> Vec<u8> {
    std::fs::read(root().join("samples").join(rel)).unwrap()
}

/// A loans workbook: header and three rows, dates as text. Built once per test process, so
/// every upload has the same bytes (the writer stamps the creation time).
pub fn loans_xlsx() -> Vec<u8> {
    static BYTES: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    BYTES.get_or_init(build_loans_xlsx).clone()
}

fn build_loans_xlsx() -> Vec<u8> {
    let mut wb = rust_xlsxwriter::Workbook::new();
    let ws = wb.add_worksheet();
    let header = [
        "loan_id",
        "bank_name",
        "branch_id",
        "customer_id",
        "amount",
        "loan_date",
        "status",
        "rate",
        "notes",
    ];
    for (c, h) in header.iter().enumerate() {
        ws.write_string(0, c as u16, *h).unwrap();
    }
    let rows = [
        (
            101.0,
            "Gamma Bank",
            7.0,
            9001.0,
            1200.5,
            "2023-07-01",
            "active",
            3.5,
        ),
        (
            102.0,
            "Gamma Bank",
            7.0,
            9002.0,
            830.0,
            "2023-07-19",
            "closed",
            4.0,
        ),
        (
            103.0,
            "Delta Savings",
            9.0,
            9003.0,
            15000.0,
            "2023-08-02",
            "active",
            2.75,
        ),
    ];
    for (r, (id, bank, branch, cust, amount, date, status, rate)) in rows.iter().enumerate() {
        let r = r as u32 + 1;
        ws.write_number(r, 0, *id).unwrap();
        ws.write_string(r, 1, *bank).unwrap();
        ws.write_number(r, 2, *branch).unwrap();
        ws.write_number(r, 3, *cust).unwrap();
        ws.write_number(r, 4, *amount).unwrap();
        ws.write_string(r, 5, *date).unwrap();
        ws.write_string(r, 6, *status).unwrap();
        ws.write_number(r, 7, *rate).unwrap();
    }
    wb.save_to_buffer().unwrap()
}

pub struct Lab {
    pub rt: tokio::runtime::Runtime,
    pub clients: Clients,
    pub names: Names,
    pub ports: AwsPorts,
}

impl Lab {
    pub fn new() -> Lab {
        Lab::with_specs(specs())
    }

    /// A lab whose spec table lacks `dataset` (a new source uploaded before its spec).
    pub fn without_spec(dataset: &str) -> Lab {
        Lab::with_specs(
            specs()
                .into_iter()
                .filter(|(s, _)| s.dataset != dataset)
                .collect(),
        )
    }

    fn with_specs(specs: Vec<(TableSpec, String)>) -> Lab {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap();
        let names = Names::for_env(&sluice_testkit::unique("e2e"));
        let (clients, ports) = rt.block_on(async {
            let clients = Clients::from_config(sluice_testkit::sdk_config().await);
            bootstrap(&clients, &names, &specs, &models())
                .await
                .unwrap();
            let ports = AwsPorts::from_config(&clients.config, names.clone())
                .await
                .unwrap();
            (clients, ports)
        });
        Lab {
            rt,
            clients,
            names,
            ports,
        }
    }

    /// Uploads into the raw bucket; returns the ETag.
    pub fn put(&self, key: &str, body: Vec<u8>) -> String {
        self.rt.block_on(async {
            self.ports
                .store
                .put_bytes(&self.names.raw_bucket, key, body)
                .await
                .unwrap();
            self.ports
                .store
                .head(&self.names.raw_bucket, key)
                .await
                .unwrap()
                .unwrap()
                .etag
                .unwrap()
        })
    }

    pub fn run(&self, input: Value, name: &str) -> Record {
        self.run_with(&self.ports, input, name)
    }

    pub fn run_with<P: Ports>(&self, ports: &P, input: Value, name: &str) -> Record {
        let runner = LocalLambdas {
            ports,
            runtime: self.rt.handle().clone(),
        };
        self.run_on(&runner, input, name)
    }

    pub fn run_on<R: TaskRunner>(&self, runner: &R, input: Value, name: &str) -> Record {
        let info = ExecutionInfo::local(&format!("sluice-{}-ingest", self.names.env), name);
        sluice_asl::run(&definition(), input, info, runner, &Options::default())
    }

    pub fn redrive_with<P: Ports>(&self, ports: &P, previous: &Record) -> Record {
        let runner = LocalLambdas {
            ports,
            runtime: self.rt.handle().clone(),
        };
        sluice_asl::redrive(previous, &runner, &Options::default()).unwrap()
    }

    /// Every object in the lake bucket except manifests and output records: key -> bytes.
    pub fn lake(&self) -> BTreeMap<String, Vec<u8>> {
        self.rt.block_on(async {
            let mut out = BTreeMap::new();
            for o in self
                .ports
                .store
                .list(&self.names.lake_bucket, "")
                .await
                .unwrap()
            {
                if o.key.starts_with("manifests/") || o.key.starts_with("_sluice/") {
                    continue;
                }
                let bytes = self
                    .ports
                    .store
                    .get_bytes(&self.names.lake_bucket, &o.key)
                    .await
                    .unwrap()
                    .unwrap();
                out.insert(o.key, bytes);
            }
            out
        })
    }

    /// The lake with this environment's bucket names replaced by `<raw>`/`<lake>`, so two
    /// environments' lakes compare byte for byte.
    pub fn lake_normalized(&self) -> BTreeMap<String, Vec<u8>> {
        let raw = self.names.raw_bucket.as_bytes();
        self.lake()
            .into_iter()
            .map(|(k, v)| (k, replace_all(&v, raw, b"<raw>")))
            .collect()
    }

    /// Rows of a dataset's curated Parquet files, read back with pyarrow.
    pub fn rows(&self, dataset: &str) -> Vec<Value> {
        let dir = tempfile::tempdir().unwrap();
        let mut files = Vec::new();
        for (i, (key, bytes)) in self.lake().into_iter().enumerate() {
            if key.starts_with(&format!("data/{dataset}/")) && key.ends_with(".parquet") {
                let p = dir.path().join(format!("{i}.parquet"));
                std::fs::write(&p, bytes).unwrap();
                files.push(p);
            }
        }
        if files.is_empty() {
            return Vec::new();
        }
        sluice_testkit::read_parquet(&files)["rows"]
            .as_array()
            .unwrap()
            .clone()
    }

    pub fn items(&self) -> Vec<WorkItem> {
        self.rt.block_on(self.ports.work.scan_items()).unwrap()
    }

    pub fn partitions(&self, table: &str) -> Vec<Vec<String>> {
        self.rt.block_on(async {
            let out = self
                .clients
                .glue
                .get_partitions()
                .database_name(&self.names.glue_database)
                .table_name(table)
                .send()
                .await
                .unwrap();
            let mut v: Vec<Vec<String>> = out
                .partitions()
                .iter()
                .map(|p| p.values().to_vec())
                .collect();
            v.sort();
            v
        })
    }

    pub fn lock_holder(&self) -> Option<String> {
        use sluice_core::ports::LockStore;
        self.rt.block_on(async {
            self.ports
                .locks
                .current(sluice_functions::run::PIPELINE_LOCK)
                .await
                .unwrap()
                .map(|l| l.owner)
        })
    }

    /// Subscribes a new SQS queue to the notification topic; returns the queue URL.
    pub fn inbox(&self) -> String {
        self.rt.block_on(sluice_testkit::sns_inbox(
            &self.clients.config,
            self.ports.notifier.topic_arn(),
        ))
    }

    /// The next SNS message in `inbox`: (subject, the message's JSON body).
    pub fn next_message(&self, inbox: &str) -> (String, Value) {
        self.rt
            .block_on(sluice_testkit::next_message(&self.clients.config, inbox))
    }

    /// What the EventBridge status-change rules do after `ended` ended (failed: release the
    /// lock, the failure notice; succeeded: the recovered notice after a redrive); every
    /// function must succeed. Returns each function's output.
    pub fn status_change_rule(&self, ended: &Record) -> Vec<(&'static str, Value)> {
        sluice_functions::local::on_execution_finished(&self.ports, self.rt.handle(), ended)
            .into_iter()
            .map(|(function, result)| {
                (
                    function,
                    result.unwrap_or_else(|e| panic!("{function}: {e}")),
                )
            })
            .collect()
    }

    /// Every message published to `inbox` and not read yet.
    pub fn messages(&self, inbox: &str) -> Vec<(String, Value)> {
        self.rt
            .block_on(sluice_testkit::all_messages(&self.clients.config, inbox))
    }

    /// The messages of `inbox` not read yet, by their `kind`.
    pub fn message_kinds(&self, inbox: &str) -> Vec<String> {
        self.messages(inbox)
            .into_iter()
            .map(|(_, m)| m["kind"].as_str().unwrap_or("?").to_owned())
            .collect()
    }

    /// True when nothing more was published to `inbox`.
    pub fn no_more_messages(&self, inbox: &str) -> bool {
        self.rt.block_on(sluice_testkit::no_more_messages(
            &self.clients.config,
            inbox,
        ))
    }

    pub fn watermark(&self) -> Option<String> {
        self.rt
            .block_on(async { self.ports.work.get_marker("watermark").await.unwrap() })
    }
}

fn replace_all(hay: &[u8], needle: &[u8], with: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(hay.len());
    let mut i = 0;
    while i < hay.len() {
        if hay[i..].starts_with(needle) {
            out.extend_from_slice(with);
            i += needle.len();
        } else {
            out.push(hay[i]);
            i += 1;
        }
    }
    out
}

/// Asserts two lakes hold the same keys with the same bytes, naming the first difference.
pub fn assert_same_lake(a: &BTreeMap<String, Vec<u8>>, b: &BTreeMap<String, Vec<u8>>) {
    assert_eq!(
        a.keys().collect::<Vec<_>>(),
        b.keys().collect::<Vec<_>>(),
        "different objects"
    );
    for (k, v) in a {
        assert!(
            &b[k] == v,
            "{k} differs:\n{}\n---\n{}",
            String::from_utf8_lossy(v),
            String::from_utf8_lossy(&b[k])
        );
    }
}

/// What a store fault does.
#[derive(Clone, Copy, Debug)]
pub enum Fault {
    /// The Nth download fails once with a retryable error (throttling).
    ThrottleGet(usize),
    /// The Nth streamed download (a CSV read as it arrives) breaks off halfway through its
    /// first chunk (a connection reset).
    BreakGet(usize),
    /// The Nth upload fails for good (the function dies mid-publish).
    FailPut(usize),
}

/// The S3 store with a fault injected.
pub struct FaultyStore {
    pub inner: S3Store,
    pub fault: Fault,
    pub gets: std::sync::atomic::AtomicUsize,
    pub streams: std::sync::atomic::AtomicUsize,
    pub puts: std::sync::atomic::AtomicUsize,
}

impl ObjectStore for FaultyStore {
    async fn list(&self, bucket: &str, prefix: &str) -> PortResult<Vec<ObjectInfo>> {
        self.inner.list(bucket, prefix).await
    }
    async fn list_page(
        &self,
        bucket: &str,
        prefix: &str,
        start_after: Option<&str>,
        max_keys: usize,
    ) -> PortResult<Vec<ObjectInfo>> {
        self.inner
            .list_page(bucket, prefix, start_after, max_keys)
            .await
    }
    async fn head(&self, bucket: &str, key: &str) -> PortResult<Option<ObjectInfo>> {
        self.inner.head(bucket, key).await
    }
    async fn get_to_file(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        dest: &Path,
    ) -> PortResult<ObjectInfo> {
        let n = self.gets.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        if let Fault::ThrottleGet(at) = self.fault {
            if n == at {
                return Err(PortError {
                    code: Some("SlowDown".into()),
                    ..PortError::retryable(
                        "s3:GetObject",
                        "SlowDown: Please reduce your request rate (injected)",
                    )
                });
            }
        }
        self.inner.get_to_file(bucket, key, version_id, dest).await
    }
    async fn get_into<S: ByteSink>(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        sink: &mut S,
    ) -> PortResult<ObjectInfo> {
        let n = self.gets.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        match self.fault {
            Fault::ThrottleGet(at) if n == at => Err(PortError {
                code: Some("SlowDown".into()),
                ..PortError::retryable(
                    "s3:GetObject",
                    "SlowDown: Please reduce your request rate (injected)",
                )
            }),
            Fault::BreakGet(at)
                if self
                    .streams
                    .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
                    + 1
                    == at =>
            {
                let mut breaking = BreakingSink {
                    inner: sink,
                    broken: false,
                };
                self.inner
                    .get_into(bucket, key, version_id, &mut breaking)
                    .await?;
                Err(PortError::retryable(
                    "s3:GetObject",
                    format!("s3://{bucket}/{key}: the download broke off (injected)"),
                ))
            }
            _ => self.inner.get_into(bucket, key, version_id, sink).await,
        }
    }
    async fn put_file(&self, bucket: &str, key: &str, src: &Path) -> PortResult<()> {
        let n = self.puts.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        if let Fault::FailPut(at) = self.fault {
            if n == at {
                return Err(PortError::permanent(
                    "s3:PutObject",
                    "the function died while publishing (injected)",
                ));
            }
        }
        self.inner.put_file(bucket, key, src).await
    }
    async fn put_bytes(&self, bucket: &str, key: &str, body: Vec<u8>) -> PortResult<()> {
        self.inner.put_bytes(bucket, key, body).await
    }
    async fn put_if_absent(&self, bucket: &str, key: &str, body: Vec<u8>) -> PortResult<bool> {
        self.inner.put_if_absent(bucket, key, body).await
    }
    async fn get_bytes(&self, bucket: &str, key: &str) -> PortResult<Option<Vec<u8>>> {
        self.inner.get_bytes(bucket, key).await
    }
    async fn copy(&self, a: &str, b: &str, c: &str, d: &str) -> PortResult<()> {
        self.inner.copy(a, b, c, d).await
    }
    async fn delete(&self, bucket: &str, key: &str) -> PortResult<()> {
        self.inner.delete(bucket, key).await
    }
}

/// Passes on half of the first chunk, then stops the download; the reader never hears of
/// the end.
struct BreakingSink<'a, S> {
    inner: &'a mut S,
    broken: bool,
}

impl<S: ByteSink> ByteSink for BreakingSink<'_, S> {
    async fn chunk(&mut self, bytes: &[u8]) -> bool {
        if !self.broken {
            self.broken = true;
            self.inner.chunk(&bytes[..bytes.len() / 2]).await;
        }
        false
    }
    async fn end(&mut self) {}
}

/// The AWS ports with a faulty store.
pub struct FaultyPorts<'a> {
    pub aws: &'a AwsPorts,
    pub store: FaultyStore,
}

impl<'a> FaultyPorts<'a> {
    pub fn new(aws: &'a AwsPorts, fault: Fault) -> FaultyPorts<'a> {
        FaultyPorts {
            aws,
            store: FaultyStore {
                inner: aws.store.clone(),
                fault,
                gets: Default::default(),
                streams: Default::default(),
                puts: Default::default(),
            },
        }
    }
}

impl Ports for FaultyPorts<'_> {
    type Store = FaultyStore;
    type Work = <AwsPorts as Ports>::Work;
    type Locks = <AwsPorts as Ports>::Locks;
    type Specs = <AwsPorts as Ports>::Specs;
    type Catalog = <AwsPorts as Ports>::Catalog;
    type Notifier = <AwsPorts as Ports>::Notifier;
    type Executions = <AwsPorts as Ports>::Executions;
    type Settings = <AwsPorts as Ports>::Settings;
    type Secrets = <AwsPorts as Ports>::Secrets;
    fn store(&self) -> &FaultyStore {
        &self.store
    }
    fn work(&self) -> &Self::Work {
        self.aws.work()
    }
    fn locks(&self) -> &Self::Locks {
        self.aws.locks()
    }
    fn specs(&self) -> &Self::Specs {
        self.aws.specs()
    }
    fn catalog(&self) -> &Self::Catalog {
        self.aws.catalog()
    }
    fn notifier(&self) -> &Self::Notifier {
        self.aws.notifier()
    }
    fn executions(&self) -> &Self::Executions {
        self.aws.executions()
    }
    fn settings(&self) -> &Self::Settings {
        self.aws.settings()
    }
    fn secrets(&self) -> &Self::Secrets {
        self.aws.secrets()
    }
    fn names(&self) -> &Names {
        self.aws.names()
    }
}

pub const HOUR: &str = "2026-11-22T00:05:00Z";
pub const CREDIT_A: &str = "credit/yyyy=2026/mm=11/dd=21/hh=22/credit-a.csv";
pub const CREDIT_B: &str = "credit/yyyy=2026/mm=11/dd=21/hh=23/credit-b.csv";
pub const LOANS_CSV: &str = "loans/yyyy=2026/mm=11/dd=21/hh=23/loans-2023-06.csv";
pub const LOANS_XLSX: &str = "loans/yyyy=2026/mm=11/dd=21/hh=22/loan-book.xlsx";

/// CSV and XLSX files for two datasets in two hourly partitions.
pub fn upload_standard(lab: &Lab) {
    let credit = sample("credit/yyyy=2026/mm=11/dd=21/hh=23/credit-0001.csv");
    lab.put(CREDIT_A, credit.clone());
    lab.put(CREDIT_B, credit);
    lab.put(LOANS_CSV, sample("loans/loans-2023-06.csv"));
    lab.put(LOANS_XLSX, loans_xlsx());
}

/// Runs execution A until its first ingest, lets execution B run to the end meanwhile, then
/// lets A go on: the two overlap for certain.
pub struct Pausing<'a, R> {
    pub inner: &'a R,
    pub at_ingest: mpsc::Sender<()>,
    pub resume: std::sync::Mutex<mpsc::Receiver<()>>,
    pub paused: std::sync::atomic::AtomicBool,
}

impl<R: TaskRunner> TaskRunner for Pausing<'_, R> {
    fn invoke(&self, resource: &str, input: &Value, path: &str) -> Result<Value, TaskError> {
        if resource.contains("ingest")
            && !self.paused.swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            self.at_ingest.send(()).unwrap();
            self.resume.lock().unwrap().recv().unwrap();
        }
        self.inner.invoke(resource, input, path)
    }

    fn read_items(&self, reader: &Value) -> Result<Value, TaskError> {
        self.inner.read_items(reader)
    }
}
