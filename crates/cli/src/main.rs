//! `sluice`: the data engineer's command line.

mod aws_cmd;
mod ingest_cmd;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use sluice_core::spec::OutputFormat;

#[derive(Parser)]
#[command(
    name = "sluice",
    version,
    about = "Move business files into the data lake"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Ingest one local file: typed rows under OUT/data/, rejected rows under OUT/quarantine/.
    Ingest {
        /// The source file (.csv, .xlsx, …).
        input: PathBuf,
        /// The table spec (config/tables/<dataset>.json).
        #[arg(long)]
        spec: PathBuf,
        /// Output root; written only when the whole file was processed.
        #[arg(long)]
        out: PathBuf,
        /// Output format (default: the spec's).
        #[arg(long, value_enum)]
        format: Option<Format>,
        /// The object key the file would have in the raw bucket (default: INPUT as given);
        /// read for `yyyy=/mm=/dd=/hh=` partitions and part of the output names.
        #[arg(long)]
        key: Option<String>,
        /// Print one JSON object instead of the human summary.
        #[arg(long)]
        json: bool,
        /// Print a `PHASES {json}` timing line on stderr (for the benchmark harness).
        #[arg(long, hide = true)]
        phases: bool,
    },
    /// Create the buckets, tables, parameters, topic and Glue catalog the pipeline needs, and
    /// load every table spec. Idempotent. Needs an endpoint override (the local emulator)
    /// unless --real-account is given.
    Bootstrap {
        /// Environment name (default: $SLUICE_ENV, else `dev`); all resource names derive from it.
        #[arg(long)]
        env: Option<String>,
        /// Folder of table specs to load.
        #[arg(long, default_value = "config/tables")]
        tables: PathBuf,
        /// Allow running without an endpoint override, i.e. against a real AWS account.
        #[arg(long)]
        real_account: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Table spec tools.
    Spec {
        #[command(subcommand)]
        command: SpecCommand,
    },
}

#[derive(Subcommand)]
enum SpecCommand {
    /// Validate spec files; prints each problem with its file and field.
    Check {
        #[arg(required = true)]
        specs: Vec<PathBuf>,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Format {
    Parquet,
    Csv,
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Ingest {
            input,
            spec,
            out,
            format,
            key,
            json,
            phases,
        } => ingest_cmd::run(
            &input,
            &spec,
            &out,
            format.map(|f| match f {
                Format::Parquet => OutputFormat::Parquet,
                Format::Csv => OutputFormat::Csv,
            }),
            key,
            json,
            phases,
        ),
        Command::Spec {
            command: SpecCommand::Check { specs },
        } => ingest_cmd::check_specs(&specs),
        Command::Bootstrap {
            env,
            tables,
            real_account,
            json,
        } => runtime().and_then(|rt| {
            rt.block_on(aws_cmd::run_bootstrap(
                env.as_deref(),
                &tables,
                real_account,
                json,
            ))
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sluice: {e:#}");
            ExitCode::FAILURE
        }
    }
}
