//! Helpers shared by the core's integration tests.
#![allow(dead_code)]

use std::io::Cursor;
use std::path::{Path, PathBuf};

use sluice_core::{IngestError, IngestOptions, IngestReport, Source, TableSpec};

pub fn spec(json: &str) -> TableSpec {
    TableSpec::from_json("test-spec.json", json).unwrap()
}

pub fn source(key: &str) -> Source {
    Source {
        object: format!("test://{key}"),
        key: key.to_string(),
        version: None,
    }
}

/// Ingests in-memory bytes into a fresh staging folder.
pub fn ingest_bytes(
    spec: &TableSpec,
    key: &str,
    bytes: Vec<u8>,
) -> (tempfile::TempDir, Result<IngestReport, IngestError>) {
    let dir = tempfile::tempdir().unwrap();
    let r = sluice_core::ingest(
        spec,
        &source(key),
        Cursor::new(bytes),
        dir.path(),
        &IngestOptions::default(),
    );
    (dir, r)
}

pub fn ingest_file(spec: &TableSpec, path: &Path) -> (tempfile::TempDir, IngestReport) {
    let dir = tempfile::tempdir().unwrap();
    let key = path.file_name().unwrap().to_string_lossy().into_owned();
    let f = std::io::BufReader::new(std::fs::File::open(path).unwrap());
    let r = sluice_core::ingest(
        spec,
        &source(&key),
        f,
        dir.path(),
        &IngestOptions::default(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    (dir, r)
}

pub fn quarantine(dir: &Path, report: &IngestReport) -> Vec<serde_json::Value> {
    let Some(q) = &report.quarantine else {
        return vec![];
    };
    std::fs::read_to_string(dir.join(&q.path))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A file of the seed-data folder beside the project. The tests calling it are ignored where
/// `../shared` is absent (`cfg(sluice_shared)`, set by the build script), so reaching here
/// without the file is a failure, never a silent pass.
pub fn seed(rel: &str) -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/seed-data")
        .join(rel);
    assert!(p.exists(), "seed file {} is absent", p.display());
    p
}

/// Reads Parquet files with pyarrow; returns {"schema": [...], "rows": [...]}.
pub fn read_parquet(files: &[PathBuf]) -> serde_json::Value {
    sluice_testdata::read_parquet(files)
}

pub fn output_paths(dir: &Path, report: &IngestReport) -> Vec<PathBuf> {
    report.outputs.iter().map(|o| dir.join(&o.path)).collect()
}

/// The same, as the data files normalize reads.
#[allow(dead_code)]
pub fn output_files(dir: &Path, report: &IngestReport) -> Vec<sluice_core::normalize::DataFile> {
    output_paths(dir, report)
        .into_iter()
        .map(Into::into)
        .collect()
}
