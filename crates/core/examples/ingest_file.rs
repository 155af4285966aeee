//! The ingest of one local file, without the CLI's AWS SDK: what `perf` profiles.
//!
//! ```text
//! cargo build --profile profiling -p sluice-core --example ingest_file
//! perf record -g target/profiling/examples/ingest_file FILE SPEC OUT_DIR [csv|parquet]
//! ```

use std::fs::File;
use std::io::BufReader;
use std::path::PathBuf;

use sluice_core::spec::OutputFormat;
use sluice_core::{IngestOptions, Source, TableSpec};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [input, spec, out, rest @ ..] = args.as_slice() else {
        return Err("usage: ingest_file FILE SPEC OUT_DIR [csv|parquet]".into());
    };
    let format = match rest.first().map(String::as_str) {
        None => None,
        Some("csv") => Some(OutputFormat::Csv),
        Some("parquet") => Some(OutputFormat::Parquet),
        Some(other) => return Err(format!("unknown format {other}").into()),
    };
    let spec = TableSpec::load(std::path::Path::new(spec))?;
    let source = Source {
        object: input.clone(),
        key: input.clone(),
        version: None,
    };
    let out = PathBuf::from(out);
    let opts = IngestOptions {
        format,
        ..IngestOptions::default()
    };
    let report = sluice_core::ingest(
        &spec,
        &source,
        BufReader::new(File::open(input)?),
        &out,
        &opts,
    )?;
    println!(
        "{} rows read, {} written, {} quarantined",
        report.rows_read, report.rows_written, report.rows_quarantined
    );
    Ok(())
}
