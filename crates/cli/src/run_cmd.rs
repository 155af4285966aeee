//! `sluice run` and `sluice redrive`: execute the state machine locally, calling the
//! functions in-process against the AWS endpoint in the environment (the emulator).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde_json::Value;
use sluice_asl::{Event, ExecutionInfo, Options, Record, Status};
use sluice_aws::Clients;
use sluice_functions::local::LocalLambdas;
use sluice_functions::AwsPorts;

use crate::aws_cmd::{guard_real_account, names};

pub struct RunArgs<'a> {
    pub definition: &'a Path,
    pub input: &'a Path,
    pub env: Option<&'a str>,
    pub name: Option<String>,
    pub history: Option<PathBuf>,
    pub real_account: bool,
    pub time_scale: f64,
}

fn print_event(e: &Event) {
    let depth = e.path.matches('/').count() / 2;
    let pad = "  ".repeat(depth + 1);
    let ms = e
        .detail
        .get("duration_ms")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    match e.kind.as_str() {
        "StateExited" => println!("{pad}ok     {:<24} {ms:>6} ms   {}", e.state, e.path),
        "StateFailed" => println!(
            "{pad}FAILED {:<24} {ms:>6} ms   {}: {}",
            e.state,
            e.detail["error"].as_str().unwrap_or(""),
            e.detail["cause"].as_str().unwrap_or("")
        ),
        "Caught" => println!(
            "{pad}caught {:<24}             {} -> {}",
            e.state,
            e.detail["error"].as_str().unwrap_or(""),
            e.detail["next"].as_str().unwrap_or("")
        ),
        "RetryScheduled" => println!(
            "{pad}retry  {:<24}             {} (attempt {}, after {:.1} s)",
            e.state,
            e.detail["error"].as_str().unwrap_or(""),
            e.detail["attempt"],
            e.detail["delay_seconds"].as_f64().unwrap_or(0.0)
        ),
        "TaskReplayed" => println!(
            "{pad}kept   {:<24}             result of the earlier attempt",
            e.state
        ),
        _ => {}
    }
}

fn save(record: &Record, path: &Path) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, serde_json::to_vec_pretty(record)?)
        .with_context(|| format!("writing {}", path.display()))
}

fn report(record: &Record, history: &Path) -> Result<()> {
    match record.status {
        Status::Succeeded => {
            println!("\nSUCCEEDED {}", record.execution.execution_arn);
            println!("{}", serde_json::to_string_pretty(&record.output)?);
            println!("history: {}", history.display());
            Ok(())
        }
        Status::Failed => {
            println!("\nFAILED {}", record.execution.execution_arn);
            println!(
                "error: {}\ncause: {}",
                record.error.as_deref().unwrap_or(""),
                record.cause.as_deref().unwrap_or("")
            );
            println!("history: {}", history.display());
            println!("fix the cause, then: sluice redrive {}", history.display());
            bail!("execution failed")
        }
    }
}

async fn ports(env: Option<&str>) -> Result<AwsPorts> {
    let clients = Clients::load().await;
    AwsPorts::new(&clients, names(env))
        .await
        .context("connecting to the pipeline's resources (run `sluice bootstrap` first?)")
}

pub fn run(args: RunArgs) -> Result<()> {
    guard_real_account(args.real_account)?;
    let definition: Value = serde_json::from_str(
        &std::fs::read_to_string(args.definition)
            .with_context(|| format!("reading {}", args.definition.display()))?,
    )
    .with_context(|| format!("{} is not JSON", args.definition.display()))?;
    let input: Value = serde_json::from_str(
        &std::fs::read_to_string(args.input)
            .with_context(|| format!("reading {}", args.input.display()))?,
    )
    .with_context(|| format!("{} is not JSON", args.input.display()))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let ports = rt.block_on(ports(args.env))?;
    let machine = args
        .definition
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("ingest")
        .trim_end_matches(".asl");
    let name = args
        .name
        .unwrap_or_else(|| format!("local-{}", execution_timestamp()));
    let info = ExecutionInfo::local(&format!("sluice-{}-{machine}", ports.names.env), &name);
    let history = args
        .history
        .unwrap_or_else(|| PathBuf::from(format!(".sluice/history/{name}.json")));
    println!("execution {}", info.execution_arn);
    let runner = LocalLambdas {
        ports: &ports,
        runtime: rt.handle().clone(),
    };
    let observer = print_event;
    let opts = Options {
        time_scale: args.time_scale,
        observer: Some(&observer),
    };
    let record = sluice_asl::run(&definition, input, info, &runner, &opts);
    save(&record, &history)?;
    report(&record, &history)
}

pub fn redrive(
    history: &Path,
    env: Option<&str>,
    real_account: bool,
    time_scale: f64,
) -> Result<()> {
    guard_real_account(real_account)?;
    let previous: Record = serde_json::from_slice(
        &std::fs::read(history).with_context(|| format!("reading {}", history.display()))?,
    )
    .with_context(|| {
        format!(
            "{} is not an execution history written by `sluice run`",
            history.display()
        )
    })?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let ports = rt.block_on(ports(env))?;
    println!(
        "redriving {} (redrive {})",
        previous.execution.execution_arn,
        previous.execution.redrive_count + 1
    );
    let runner = LocalLambdas {
        ports: &ports,
        runtime: rt.handle().clone(),
    };
    let observer = print_event;
    let opts = Options {
        time_scale,
        observer: Some(&observer),
    };
    let record =
        sluice_asl::redrive(&previous, &runner, &opts).map_err(|e| anyhow::anyhow!("{e}"))?;
    save(&record, history)?;
    report(&record, history)
}

/// `20261122T031500` from the system clock, for execution names.
fn execution_timestamp() -> String {
    chrono::Utc::now().format("%Y%m%dT%H%M%S").to_string()
}
