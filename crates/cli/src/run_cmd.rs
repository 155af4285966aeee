//! `sluice run` and `sluice redrive`: execute the state machine locally, calling the
//! functions in-process against the AWS endpoint in the environment (the emulator).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde_json::Value;
use sluice_asl::{Event, ExecutionInfo, Options, Record, Status};
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
    let kind = e.kind.as_str();
    if let Some(caught) = e.detail.get("caught") {
        println!(
            "{pad}caught {:<24}             {} -> {}",
            e.state,
            caught["error"].as_str().unwrap_or(""),
            caught["next"].as_str().unwrap_or("")
        );
    } else if kind.ends_with("StateExited") {
        println!("{pad}ok     {:<24} {ms:>6} ms   {}", e.state, e.path);
    } else if kind == "FailStateEntered" {
        println!("{pad}FAILED {:<24}             (Fail state)", e.state);
    } else if kind.ends_with("Failed")
        && !matches!(
            kind,
            "MapIterationFailed" | "ExecutionFailed" | "MapStateFailed"
        )
    {
        let what = if e.state.is_empty() {
            &e.path
        } else {
            &e.state
        };
        match e.detail.get("retry") {
            Some(r) => println!(
                "{pad}retry  {what:<24}             {} (attempt {}, after {:.1} s)",
                e.detail["error"].as_str().unwrap_or(""),
                r["attempt"],
                r["delay_seconds"].as_f64().unwrap_or(0.0)
            ),
            None => println!(
                "{pad}FAILED {what:<24}             {}: {}",
                e.detail["error"].as_str().unwrap_or(""),
                e.detail["cause"].as_str().unwrap_or("")
            ),
        }
    } else if kind == "ExecutionRedriven" {
        println!("{pad}redriven (redrive {})", e.detail["redriveCount"]);
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
        Status::Failed | Status::TimedOut | Status::Aborted => {
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

/// What the EventBridge "Step Functions Execution Status Change" rules do on AWS when an
/// execution ends: after a failure, free the pipeline lock it may hold and send the one
/// failure notice; after a redrive that succeeded, the recovered notice.
fn status_change(record: &Record, ports: &AwsPorts, rt: &tokio::runtime::Runtime) {
    for (function, result) in
        sluice_functions::local::on_execution_finished(ports, rt.handle(), record)
    {
        match result {
            Ok(_) => println!("status-change rule: {function} done"),
            Err(e) => eprintln!("status-change rule: {function} failed: {e}"),
        }
    }
}

async fn ports(env: Option<&str>) -> Result<AwsPorts> {
    AwsPorts::from_config(&sluice_aws::load_config().await, names(env))
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
    status_change(&record, &ports, &rt);
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
    if let Some(why) = sluice_asl::not_redrivable(&previous) {
        bail!("cannot redrive: {why}");
    }
    println!(
        "redriving {} (redrive {})",
        previous.execution.execution_arn,
        previous.execution.redrive_count + 1
    );
    println!("resuming the states entered and never exited, with their recorded input:");
    for (path, _) in sluice_asl::restart_points(&previous) {
        println!("  {path}");
    }
    println!("(everything that exited keeps its result and does not run again)");
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
    status_change(&record, &ports, &rt);
    report(&record, history)
}

/// `sluice requeue`: failed items back to `queued` (what `events/queue-generator-requeue.json` asks the
/// queue-generator function on AWS).
pub fn requeue(
    filter: sluice_functions::contracts::RequeueFilter,
    env: Option<&str>,
    real_account: bool,
    json: bool,
) -> Result<()> {
    guard_real_account(real_account)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let ports = rt.block_on(ports(env))?;
    let out = rt
        .block_on(sluice_functions::requeue::handle(&ports, filter))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    for r in &out.requeued {
        println!("requeued  {}  ({}, was {})", r.id, r.dataset, r.was);
    }
    for l in &out.left {
        println!("left      {}  ({}: {})", l.id, l.error, l.reason);
    }
    println!("{}", out.next);
    Ok(())
}

/// `20261122T031500` from the system clock, for execution names.
fn execution_timestamp() -> String {
    chrono::Utc::now().format("%Y%m%dT%H%M%S").to_string()
}
