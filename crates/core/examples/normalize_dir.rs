//! A model's normalize over a folder of curated Parquet files (`data/<dataset>/…`), without the
//! CLI's AWS SDK: what `perf` profiles.
//!
//! ```text
//! cargo build --profile profiling -p sluice-core --example normalize_dir
//! perf record -g target/profiling/examples/normalize_dir MODEL INPUT_DIR OUT_DIR
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use sluice_core::model::ModelSpec;
use sluice_core::normalize::{normalize, DataFile, NormalizeOptions};
use sluice_core::read::files::parquet_files;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [model, input, out] = args.as_slice() else {
        return Err("usage: normalize_dir MODEL INPUT_DIR OUT_DIR".into());
    };
    let model = ModelSpec::load(Path::new(model))?;
    let mut inputs = BTreeMap::new();
    for dataset in model.datasets() {
        let files = parquet_files(&Path::new(input).join("data").join(dataset))?;
        inputs.insert(
            dataset.to_owned(),
            files.into_iter().map(DataFile::Local).collect::<Vec<_>>(),
        );
    }
    let as_of = chrono::NaiveDate::from_ymd_opt(2026, 1, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .ok_or("as_of")?;
    let report = normalize(
        &model,
        &inputs,
        Path::new(out),
        &NormalizeOptions::new(as_of),
    )?;
    for t in &report.tables {
        println!(
            "{} written {} quarantined {}",
            t.table, t.rows_written, t.rows_quarantined
        );
    }
    Ok(())
}
