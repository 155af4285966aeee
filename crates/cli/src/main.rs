//! `sluice`: the data engineer's command line.

mod aws_cmd;
mod extract_cmd;
mod ingest_cmd;
mod load_cmd;
mod normalize_cmd;
mod profile_cmd;
mod pull_cmd;
mod run_cmd;

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
    /// load every table spec and model. Idempotent. Needs an endpoint override (the local emulator)
    /// unless --real-account is given.
    Bootstrap {
        /// Environment name (default: $SLUICE_ENV, else `dev`); all resource names derive from it.
        #[arg(long)]
        env: Option<String>,
        /// Folder of table specs to load.
        #[arg(long, default_value = "config/tables")]
        tables: PathBuf,
        /// Folder of target data models to load (config/models/<model>.json).
        #[arg(long, default_value = "config/models")]
        models: PathBuf,
        /// Load targets to put in the lake (config/targets/<name>.json; repeatable). None by
        /// default: a target makes every run load into its database.
        #[arg(long = "target")]
        targets: Vec<PathBuf>,
        /// Allow running without an endpoint override, i.e. against a real AWS account.
        #[arg(long)]
        real_account: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Execute a state machine definition locally: each Task calls its function in-process
    /// against the AWS endpoint in the environment (the emulator). Prints every state and the
    /// final output; saves the execution history for `sluice redrive`.
    Run {
        /// The definition (statemachine/ingest.asl.json).
        definition: PathBuf,
        /// The execution input (an event from events/).
        #[arg(long)]
        input: PathBuf,
        /// Environment name (default: $SLUICE_ENV, else `dev`).
        #[arg(long)]
        env: Option<String>,
        /// Execution name (default: local-<time>).
        #[arg(long)]
        name: Option<String>,
        /// Where to save the history (default: .sluice/history/<name>.json).
        #[arg(long)]
        history: Option<PathBuf>,
        /// Wait and Retry delays are multiplied by this (0: do not wait).
        #[arg(long, default_value_t = 1.0)]
        time_scale: f64,
        /// Allow running without an endpoint override, i.e. against a real AWS account.
        #[arg(long)]
        real_account: bool,
    },
    /// Resume a failed local execution from where it failed (same execution id and input;
    /// successful steps keep their results), as the console's Redrive does.
    Redrive {
        /// The history file `sluice run` saved; it is updated in place.
        history: PathBuf,
        #[arg(long)]
        env: Option<String>,
        #[arg(long, default_value_t = 1.0)]
        time_scale: f64,
        #[arg(long)]
        real_account: bool,
    },
    /// Put failed work items back to `queued` once their cause is fixed (a spec added); the
    /// next scheduled run ingests them. Every filter given must match.
    Requeue {
        /// The run (execution name) the items belonged to.
        #[arg(long)]
        batch: Option<String>,
        #[arg(long)]
        dataset: Option<String>,
        /// The error name, e.g. Sluice.NoMatchingSpec or Sluice.SpecNotFound.
        #[arg(long)]
        error: Option<String>,
        /// Raw object keys starting with this.
        #[arg(long)]
        key_prefix: Option<String>,
        /// Every failed item (instead of filters).
        #[arg(long)]
        all: bool,
        #[arg(long)]
        env: Option<String>,
        #[arg(long)]
        real_account: bool,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// The monthly bank extract: per bank and completed month, one CSV with a row per branch
    /// (the month's loans and the trailing 3-month window).
    Extract {
        /// One completed month, YYYY-MM.
        #[arg(long, conflicts_with = "through")]
        month: Option<String>,
        /// Every month from the first month of the loan data through this one, YYYY-MM.
        #[arg(long)]
        through: Option<String>,
        /// A flat loans file (CSV or Parquet), or a folder with data/<dataset>/ as `sluice
        /// ingest` writes it (the banking model: bank, branch, client, account, bank_loans).
        #[arg(long)]
        input: PathBuf,
        /// Output root: bank=<Bank>/year=<YYYY>/month=<MM>/<Bank>_<YYYYMMDD>.csv
        #[arg(long)]
        out: PathBuf,
        /// Today's date (YYYY-MM-DD) for deciding which months are complete (default: the clock).
        #[arg(long, hide = true)]
        today: Option<String>,
        #[arg(long, hide = true)]
        phases: bool,
    },
    /// Build a target data model's tables (config/models/<MODEL>.json) from curated datasets:
    /// OUT/data/<table>/ and, for rows that break the model, OUT/quarantine/<table>/.
    Normalize {
        /// A model name (config/models/<MODEL>.json) or a model file.
        #[arg(long)]
        model: String,
        /// What `sluice ingest` wrote: a folder with data/<dataset>/ (Parquet).
        #[arg(long)]
        input: PathBuf,
        /// Output root; written only when the whole model was built.
        #[arg(long)]
        out: PathBuf,
        /// The rows' `created` time, YYYY-MM-DD HH:MM:SS (default: when the newest input was
        /// written).
        #[arg(long)]
        as_of: Option<String>,
        /// Print one JSON object instead of the human summary.
        #[arg(long)]
        json: bool,
    },
    /// Pull the next range of a database source (a spec with source.kind postgres or mysql)
    /// into OUT/<the raw key the pipeline would write>, and ingest it into --lake if given.
    /// The connection is the JSON of the spec's secret in SLUICE_SOURCE_<DATASET>.
    Pull {
        /// The table spec (config/tables/<dataset>.json).
        spec: PathBuf,
        /// Where the pulled CSV is written (the raw side).
        #[arg(long)]
        out: PathBuf,
        /// The high-water mark: the previous pull's end (none: from the start).
        #[arg(long)]
        from: Option<String>,
        /// Ingest the pulled file into this lake folder.
        #[arg(long)]
        lake: Option<PathBuf>,
        /// Print one JSON object instead of the human summary.
        #[arg(long)]
        json: bool,
    },
    /// Load lake tables into a target database (config/targets/<TARGET>.json): tables created
    /// or extended from the specs, rows by COPY / LOAD DATA LOCAL INFILE, exactly once per lake
    /// file (the target's sluice_load_ledger), counts reconciled with the lake's.
    Load {
        /// A target name (config/targets/<TARGET>.json) or a target file. Its connection comes
        /// from $SLUICE_TARGET_<TARGET>: the secret's JSON (host, port, username, password, dbname).
        #[arg(long)]
        target: String,
        /// A folder laid out as the lake bucket: data/<lake table>/…/*.parquet.
        #[arg(long)]
        input: PathBuf,
        /// Only these lake tables (repeatable; a model's tables go together). Default: all.
        #[arg(long = "only")]
        only: Vec<String>,
        #[arg(long, default_value = "config/targets")]
        targets: PathBuf,
        #[arg(long, default_value = "config/tables")]
        tables: PathBuf,
        #[arg(long, default_value = "config/models")]
        models: PathBuf,
        /// Print one JSON object instead of the human summary.
        #[arg(long)]
        json: bool,
    },
    /// Profile a file as its spec reads it, or a dataset's curated files (--dataset with
    /// --input): per column values, NULLs, values the spec refuses, distinct values, range,
    /// mean, standard deviation, quantiles, most frequent values, string lengths, a histogram;
    /// duplicate primary keys. Streamed, in bounded memory.
    Profile {
        /// The file (.csv, .xlsx, …). Without --spec or --dataset, profiled with a spec
        /// drafted from it (`sluice spec infer`).
        file: Option<PathBuf>,
        /// The table spec.
        #[arg(long)]
        spec: Option<PathBuf>,
        /// The dataset (its spec: TABLES/<dataset>.json).
        #[arg(long)]
        dataset: Option<String>,
        /// A folder laid out as the lake bucket: the dataset's curated Parquet files under
        /// data/<dataset>/.
        #[arg(long)]
        input: Option<PathBuf>,
        #[arg(long, default_value = "config/tables")]
        tables: PathBuf,
        /// Also write the profile as one self-contained HTML page.
        #[arg(long)]
        html: Option<PathBuf>,
        /// Print the profile as JSON instead of the table.
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
    /// Validate table spec, model and target files (a top-level "model" is a model, "target"
    /// a load target, checked against the specs and models given with it); prints each
    /// problem with its file and field.
    Check {
        #[arg(required = true)]
        specs: Vec<PathBuf>,
    },
    /// Draft a table spec from a sample file (printed on stdout; why each column got its type
    /// on stderr), then prove it: the file is ingested with it and the quarantine counted.
    Infer {
        /// The sample (.csv, .tsv, .txt, .xlsx).
        file: PathBuf,
        /// The dataset's name (default: from the file name).
        #[arg(long)]
        dataset: Option<String>,
        /// xlsx: the sheet (default: the first).
        #[arg(long)]
        sheet: Option<String>,
        /// 1-based row (line) of the header.
        #[arg(long, default_value_t = 1)]
        header_row: u32,
        /// Read at most this many data rows.
        #[arg(long)]
        rows: Option<u64>,
    },
    /// Turn an AWS DMS external table definition (schema.json) into table specs, one file per
    /// table in OUT (existing files are left alone unless --force), each checked.
    ImportDms {
        /// The DMS table definition (TableCount, Tables[]).
        definition: PathBuf,
        /// Where the specs are written (config/tables/).
        #[arg(long)]
        out: PathBuf,
        /// Read DMS's S3 target output (Op, commit timestamp, columns) as a change log, for
        /// the apply_changes load mode.
        #[arg(long)]
        change_log: bool,
        /// The commit timestamp column (DMS's TimestampColumnName; default dms_commit_ts).
        #[arg(long)]
        timestamp_column: Option<String>,
        /// Put before every TablePath (the raw bucket folder DMS writes under).
        #[arg(long, default_value = "")]
        prefix: String,
        /// Overwrite existing spec files.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Format {
    Parquet,
    Csv,
}

/// Locally, a database secret's JSON comes from the environment variable `var` (the pipeline
/// reads the secret itself); `whom` names the target or source in the error.
fn local_secret(var: &str, whom: &str, secret: &str) -> anyhow::Result<String> {
    std::env::var(var).map_err(|_| {
        anyhow::anyhow!(
            "{whom}: set {var} to the JSON of secret {secret} (host, port, username, password, \
             dbname), as RDS writes it"
        )
    })
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
        Command::Normalize {
            model,
            input,
            out,
            as_of,
            json,
        } => normalize_cmd::run(normalize_cmd::NormalizeArgs {
            model: &model,
            input: &input,
            out: &out,
            as_of: as_of.as_deref(),
            json,
        }),
        Command::Pull {
            spec,
            out,
            from,
            lake,
            json,
        } => pull_cmd::run(&spec, &out, from, lake.as_deref(), json),
        Command::Load {
            target,
            input,
            only,
            targets,
            tables,
            models,
            json,
        } => load_cmd::run(load_cmd::LoadArgs {
            target: &target,
            input: &input,
            targets: &targets,
            tables: &tables,
            models: &models,
            only,
            json,
        }),
        Command::Profile {
            file,
            spec,
            dataset,
            input,
            tables,
            html,
            json,
        } => profile_cmd::run(profile_cmd::ProfileArgs {
            file: file.as_deref(),
            spec: spec.as_deref(),
            dataset: dataset.as_deref(),
            input: input.as_deref(),
            tables: &tables,
            html: html.as_deref(),
            json,
        }),
        Command::Spec {
            command: SpecCommand::Check { specs },
        } => ingest_cmd::check_specs(&specs),
        Command::Spec {
            command:
                SpecCommand::Infer {
                    file,
                    dataset,
                    sheet,
                    header_row,
                    rows,
                },
        } => ingest_cmd::infer_spec(&file, dataset, sheet, header_row, rows),
        Command::Spec {
            command:
                SpecCommand::ImportDms {
                    definition,
                    out,
                    change_log,
                    timestamp_column,
                    prefix,
                    force,
                },
        } => ingest_cmd::import_dms(
            &definition,
            &out,
            &sluice_core::dms::ImportOptions {
                change_log,
                timestamp_column,
                prefix,
            },
            force,
        ),
        Command::Run {
            definition,
            input,
            env,
            name,
            history,
            time_scale,
            real_account,
        } => run_cmd::run(run_cmd::RunArgs {
            definition: &definition,
            input: &input,
            env: env.as_deref(),
            name,
            history,
            real_account,
            time_scale,
        }),
        Command::Redrive {
            history,
            env,
            time_scale,
            real_account,
        } => run_cmd::redrive(&history, env.as_deref(), real_account, time_scale),
        Command::Requeue {
            batch,
            dataset,
            error,
            key_prefix,
            all,
            env,
            real_account,
            json,
        } => run_cmd::requeue(
            sluice_functions::contracts::RequeueFilter {
                batch,
                dataset,
                error,
                key_prefix,
                all,
            },
            env.as_deref(),
            real_account,
            json,
        ),
        Command::Extract {
            month,
            through,
            input,
            out,
            today,
            phases,
        } => extract_cmd::run(extract_cmd::ExtractArgs {
            month: month.as_deref(),
            through: through.as_deref(),
            input: &input,
            out: &out,
            today: today.as_deref(),
            phases,
        }),
        Command::Bootstrap {
            env,
            tables,
            models,
            targets,
            real_account,
            json,
        } => runtime().and_then(|rt| {
            rt.block_on(aws_cmd::run_bootstrap(
                env.as_deref(),
                &tables,
                &models,
                &targets,
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
