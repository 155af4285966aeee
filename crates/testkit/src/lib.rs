//! Test support: the local AWS emulator and unique resource names.
//!
//! `endpoint()` returns the emulator's URL. It uses `AWS_ENDPOINT_URL` when that points at
//! 127.0.0.1 (a server you started), and otherwise runs `scripts/local-aws start`, which
//! installs moto into a project-local virtualenv if needed and starts it (once per machine
//! state directory; `.ci/run` stops it afterwards). If the emulator cannot start, the calling
//! test fails and says how to install it: AWS tests are never skipped.
//!
//! Only plain data is shared between tests: each `#[tokio::test]` has its own runtime, and SDK
//! clients must not outlive the runtime that made them, so every test builds its own.

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;

/// The repository root (this crate lives in `crates/testkit`).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

static ENDPOINT: OnceLock<Result<String, String>> = OnceLock::new();

fn start() -> Result<String, String> {
    if let Ok(url) = std::env::var("AWS_ENDPOINT_URL") {
        if url.starts_with("http://127.0.0.1:") {
            return Ok(url);
        }
        return Err(format!(
            "AWS_ENDPOINT_URL={url}: tests only run against a local emulator on 127.0.0.1; unset it"
        ));
    }
    let script = repo_root().join("scripts/local-aws");
    let out = Command::new("bash")
        .arg(&script)
        .arg("start")
        .output()
        .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let url = stdout
        .lines()
        .find_map(|l| l.strip_prefix("export AWS_ENDPOINT_URL="))
        .map(str::to_owned);
    match (out.status.success(), url) {
        (true, Some(url)) => Ok(url),
        _ => Err(format!(
            "the local AWS emulator did not start ({} start exited {}):\n{}\n\
             It needs python3 with venv and pip (Debian: apt-get install -y python3 python3-venv) \
             and a reachable package registry to install moto[server].",
            script.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )),
    }
}

/// The emulator's endpoint URL; panics (failing the test) with install advice when it cannot
/// be started.
pub fn endpoint() -> String {
    match ENDPOINT.get_or_init(start) {
        Ok(url) => url.clone(),
        Err(message) => panic!("{message}"),
    }
}

/// SDK configuration for the emulator: the same loader as production, with the endpoint,
/// test credentials and us-east-1.
pub async fn sdk_config() -> SdkConfig {
    let url = endpoint();
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(url)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(
            "test",
            "test",
            None,
            None,
            "sluice-testkit",
        ))
        .load()
        .await
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A name no other test (in this run or an earlier one on the same server) uses: lowercase,
/// digits and dashes, valid for buckets, tables and topics.
pub fn unique(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{prefix}-{}-{n}-{nanos:x}", std::process::id())
}

/// The environment a child process (the `sluice` binary) needs to reach the emulator.
pub fn child_env() -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ENDPOINT_URL", endpoint()),
        ("AWS_ACCESS_KEY_ID", "test".into()),
        ("AWS_SECRET_ACCESS_KEY", "test".into()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_EC2_METADATA_DISABLED", "true".into()),
    ]
}

/// The Python interpreter with pyarrow for independent checks: `$SLUICE_PYTHON` (set by
/// `.ci/run` from `scripts/python-env`), else the project's `.venv`.
pub fn python() -> PathBuf {
    if let Ok(p) = std::env::var("SLUICE_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = repo_root().join(".venv/bin/python");
    if venv.exists() {
        return venv;
    }
    panic!("no Python with pyarrow for the independent Parquet check: run scripts/python-env (or .ci/run), or set SLUICE_PYTHON");
}

/// Reads Parquet files with pyarrow (not with our code); returns `{"schema": [...], "rows": [...]}`.
pub fn read_parquet(files: &[PathBuf]) -> serde_json::Value {
    let script = repo_root().join("crates/core/tests/read_parquet.py");
    let out = Command::new(python()).arg(script).args(files).output();
    let out = match out {
        Ok(o) => o,
        Err(e) => panic!("cannot run {}: {e}", python().display()),
    };
    if !out.status.success() {
        panic!("pyarrow failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    match serde_json::from_slice(&out.stdout) {
        Ok(v) => v,
        Err(e) => panic!("pyarrow printed no JSON: {e}"),
    }
}

/// Subscribes a new SQS queue to an SNS topic (how messages are read back from the emulator);
/// returns the queue URL.
pub async fn sns_inbox(config: &SdkConfig, topic_arn: &str) -> String {
    use aws_sdk_sqs::types::QueueAttributeName;
    let sqs = aws_sdk_sqs::Client::new(config);
    let created = sqs.create_queue().queue_name(unique("inbox")).send().await;
    let url = created
        .ok()
        .and_then(|c| c.queue_url)
        .unwrap_or_else(|| panic!("cannot create an SQS queue"));
    let attrs = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .ok()
        .and_then(|a| a.attributes)
        .unwrap_or_default();
    let arn = attrs
        .get(&QueueAttributeName::QueueArn)
        .cloned()
        .unwrap_or_else(|| panic!("the queue has no ARN"));
    let sub = aws_sdk_sns::Client::new(config)
        .subscribe()
        .topic_arn(topic_arn)
        .protocol("sqs")
        .endpoint(arn)
        .send()
        .await;
    if let Err(e) = sub {
        panic!("cannot subscribe the queue to {topic_arn}: {e}");
    }
    url
}

/// The next message delivered to an inbox: (subject, the message's JSON body).
pub async fn next_message(config: &SdkConfig, inbox: &str) -> (String, serde_json::Value) {
    let sqs = aws_sdk_sqs::Client::new(config);
    let got = sqs
        .receive_message()
        .queue_url(inbox)
        .wait_time_seconds(2)
        .send()
        .await;
    let body = got
        .ok()
        .and_then(|g| g.messages.and_then(|m| m.into_iter().next()))
        .and_then(|m| m.body)
        .unwrap_or_else(|| panic!("no message arrived in {inbox}"));
    unwrap_sns(&body)
}

/// Every message still to arrive in `inbox`: received until a second passes with none.
pub async fn all_messages(config: &SdkConfig, inbox: &str) -> Vec<(String, serde_json::Value)> {
    let sqs = aws_sdk_sqs::Client::new(config);
    let mut out = Vec::new();
    loop {
        let got = sqs
            .receive_message()
            .queue_url(inbox)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await;
        let batch = got.ok().and_then(|g| g.messages).unwrap_or_default();
        if batch.is_empty() {
            return out;
        }
        out.extend(
            batch
                .into_iter()
                .filter_map(|m| m.body)
                .map(|b| unwrap_sns(&b)),
        );
    }
}

/// The subject and the JSON message of an SNS envelope delivered to SQS.
fn unwrap_sns(body: &str) -> (String, serde_json::Value) {
    let envelope: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    let message = envelope["Message"]
        .as_str()
        .and_then(|m| serde_json::from_str(m).ok())
        .unwrap_or_default();
    (
        envelope["Subject"].as_str().unwrap_or("").to_owned(),
        message,
    )
}

/// True when no further message arrives in `inbox` within a second (messages already
/// received stay invisible for the queue's visibility timeout).
pub async fn no_more_messages(config: &SdkConfig, inbox: &str) -> bool {
    let sqs = aws_sdk_sqs::Client::new(config);
    let got = sqs
        .receive_message()
        .queue_url(inbox)
        .wait_time_seconds(1)
        .send()
        .await;
    got.ok()
        .and_then(|g| g.messages)
        .is_none_or(|m| m.is_empty())
}

/// The local database servers (`scripts/local-db`): an RDS-shaped connection JSON for the
/// PostgreSQL server and one for the MariaDB server, each naming the server's `sluice`
/// database. Started once per test binary (the script keeps one pair per checkout); panics
/// (failing the test) with the script's own message when they cannot be started.
pub struct LocalDb {
    pub postgres: serde_json::Value,
    pub mysql: serde_json::Value,
    /// The CA that signed both servers' TLS certificate, and one that signed nothing.
    pub ca: PathBuf,
    pub other_ca: PathBuf,
}

type DbEnv = (String, String, String, String);
static LOCAL_DB: OnceLock<Result<DbEnv, String>> = OnceLock::new();

fn start_db() -> Result<DbEnv, String> {
    let script = repo_root().join("scripts/local-db");
    let out = Command::new("bash")
        .arg(&script)
        .arg("start")
        .output()
        .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let var = |name: &str| {
        stdout.lines().find_map(|l| {
            l.strip_prefix(&format!("export {name}="))
                .map(|v| v.trim_matches('\'').to_owned())
        })
    };
    match (
        out.status.success(),
        var("SLUICE_TEST_PG"),
        var("SLUICE_TEST_MYSQL"),
        var("SLUICE_TEST_CA"),
        var("SLUICE_TEST_OTHER_CA"),
    ) {
        (true, Some(pg), Some(my), Some(ca), Some(other)) => Ok((pg, my, ca, other)),
        _ => Err(format!(
            "the local database servers did not start ({} start exited {}):\n{}",
            script.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )),
    }
}

pub fn local_db() -> LocalDb {
    match LOCAL_DB.get_or_init(start_db) {
        Ok((pg, my, ca, other)) => LocalDb {
            postgres: serde_json::from_str(pg).unwrap_or_default(),
            mysql: serde_json::from_str(my).unwrap_or_default(),
            ca: PathBuf::from(ca),
            other_ca: PathBuf::from(other),
        },
        Err(message) => panic!("{message}"),
    }
}

/// Credit-shaped CSV: rows `first..first+n`, every 7th monthly income `NA`, every 11th
/// dependents `NA`.
pub fn credit_csv(first: u64, n: u64, salt: u64) -> String {
    let mut s = String::from(",SeriousDlqin2yrs,RevolvingUtilizationOfUnsecuredLines,age,NumberOfTime30-59DaysPastDueNotWorse,DebtRatio,MonthlyIncome,NumberOfOpenCreditLinesAndLoans,NumberOfTimes90DaysLate,NumberRealEstateLoansOrLines,NumberOfTime60-89DaysPastDueNotWorse,NumberOfDependents\n");
    for i in first..first + n {
        let income = if i % 7 == 0 {
            "NA".to_string()
        } else {
            format!("{}", 1000 + i * 3 + salt)
        };
        let deps = if i % 11 == 0 {
            "NA".to_string()
        } else {
            (i % 4).to_string()
        };
        s.push_str(&format!(
            "{i},{},0.{:06},{},{},{}.25,{income},{},0,{},0,{deps}\n",
            i % 2,
            i % 1_000_000,
            20 + i % 60,
            i % 3,
            i % 5,
            i % 13,
            i % 2
        ));
    }
    s
}

/// One SQL statement through the engine's own command-line client (`psql` for `postgres`,
/// `mariadb` otherwise) on the connection of an RDS-shaped `creds`; Err is the client's message.
pub fn sql(engine: &str, creds: &serde_json::Value, statement: &str) -> Result<String, String> {
    let text = |k: &str| creds[k].as_str().unwrap_or_default().to_owned();
    let (host, port, user, pass, db) = (
        text("host"),
        creds["port"].to_string(),
        text("username"),
        text("password"),
        text("dbname"),
    );
    let out = match engine {
        "postgres" => Command::new("psql")
            .args([
                "-X",
                "-q",
                "-t",
                "-A",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                &host,
                "-p",
                &port,
            ])
            .args(["-U", &user, "-d", &db, "-c", statement])
            .env("PGPASSWORD", &pass)
            .output(),
        _ => Command::new("mariadb")
            .args([
                "--no-defaults",
                "-N",
                "-B",
                "-h",
                &host,
                "-P",
                &port,
                "-u",
                &user,
            ])
            .args([&format!("-p{pass}"), &db, "-e", statement])
            .output(),
    }
    .map_err(|e| format!("cannot run the {engine} client: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// The rows of each table of the Aspen model built from the seed workbook
/// (`../shared/seed-data/aspencapital-candidate-project-data-engineer/data_engineer_raw_data.xlsx`),
/// parents first.
pub const ASPEN_TABLES: [(&str, usize); 9] = [
    ("phone_number_type", 2),
    ("email_type", 2),
    ("role_profile_type", 2),
    ("user_profile", 1000),
    ("user", 1000),
    ("role_profile", 1000),
    ("phone_number", 1461),
    ("address", 1000),
    ("email", 683),
];
