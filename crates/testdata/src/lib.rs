//! Test support without AWS: the repository root, unique names, pyarrow as an independent
//! Parquet reader, generated credit-shaped CSV, and the local PostgreSQL and MariaDB servers
//! (`scripts/local-db`) with a way to query them through their own clients. The core's and
//! the database crate's tests depend on this alone, so they build none of the AWS SDK;
//! `sluice-testkit` adds the emulator and re-exports this.

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

/// The repository root: above the running test's package (`CARGO_MANIFEST_DIR`, which cargo
/// sets when it runs a test), the first folder holding `scripts/local-db`. Not this crate's
/// compile-time folder: with a `CARGO_TARGET_DIR` shared by two checkouts, cargo may reuse this
/// crate built in the other one, and its tests would run the other checkout's scripts.
pub fn repo_root() -> PathBuf {
    let compiled = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let Some(start) = std::env::var_os("CARGO_MANIFEST_DIR") else {
        return compiled;
    };
    PathBuf::from(start)
        .ancestors()
        .find(|d| d.join("scripts/local-db").is_file())
        .map(PathBuf::from)
        .unwrap_or(compiled)
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
    match start_servers(
        "local-db",
        &[
            "SLUICE_TEST_PG",
            "SLUICE_TEST_MYSQL",
            "SLUICE_TEST_CA",
            "SLUICE_TEST_OTHER_CA",
        ],
        "the local database servers",
        "",
    )?
    .as_slice()
    {
        [pg, my, ca, other] => Ok((pg.clone(), my.clone(), ca.clone(), other.clone())),
        _ => Err("scripts/local-db start: unexpected output".into()),
    }
}

/// Runs `bash scripts/<script> start` (a server the tests use, started once per checkout) and
/// returns the values of the `export NAME=value` lines it prints for `names`, in order; or why
/// `what` did not start: the script's exit status and stderr, then `advice`.
pub fn start_servers(
    script: &str,
    names: &[&str],
    what: &str,
    advice: &str,
) -> Result<Vec<String>, String> {
    let path = repo_root().join("scripts").join(script);
    let out = Command::new("bash")
        .arg(&path)
        .arg("start")
        .output()
        .map_err(|e| format!("cannot run {}: {e}", path.display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let values: Option<Vec<String>> = names
        .iter()
        .map(|name| {
            stdout.lines().find_map(|l| {
                l.strip_prefix(&format!("export {name}="))
                    .map(|v| v.trim_matches('\'').to_owned())
            })
        })
        .collect();
    match (out.status.success(), values) {
        (true, Some(values)) => Ok(values),
        _ => Err(format!(
            "{what} did not start ({} start exited {}):\n{}{advice}",
            path.display(),
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

/// The values of one SQL tuple: `('J.P. Morgan Chase', 100000)` → ["J.P. Morgan Chase", "100000"].
pub fn sql_values(t: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = t.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('\'', false) => quoted = true,
            ('\'', true) if chars.peek() == Some(&'\'') => {
                chars.next();
                cur.push('\'');
            }
            ('\'', true) => quoted = false,
            (',', false) => out.push(std::mem::take(&mut cur).trim().to_owned()),
            (c, _) => cur.push(c),
        }
    }
    out.push(cur.trim().to_owned());
    out
}

/// A database of its own on the local server of `engine` (`postgres`, else MariaDB), named
/// after `prefix`: its RDS-shaped connection. Panics (failing the test) when it cannot be made.
pub fn fresh_database(engine: &str, prefix: &str) -> serde_json::Value {
    let servers = local_db();
    let mut creds = if engine == "postgres" {
        servers.postgres
    } else {
        servers.mysql
    };
    let db = unique(prefix).replace('-', "_");
    if let Err(e) = sql(engine, &creds, &format!("CREATE DATABASE {db}")) {
        panic!("cannot create database {db} on the local {engine} server: {e}");
    }
    creds["dbname"] = db.into();
    creds
}
