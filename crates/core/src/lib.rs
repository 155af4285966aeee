//! Sluice's pure core: table specs, streaming readers, coercion, quarantine and writers.
//!
//! No AWS and no async runtime here: everything is plain functions over plain data, tested
//! without a network. The AWS adapters and the Lambda functions build on these pieces.

pub mod coerce;
pub mod dms;
pub mod extract;
pub mod extract_input;
pub mod infer;
pub mod ingest;
pub mod model;
pub mod normalize;
pub mod ports;
pub mod profile;
pub mod profile_html;
pub mod pull;
pub mod read;
pub mod rowset;
pub mod spec;
pub mod target;
pub mod write;

pub use ingest::{ingest, IngestError, IngestOptions, IngestReport, Source};
pub use spec::{SpecError, TableSpec};

/// The cores this process may use (its CPU affinity and cgroup quota, as the standard library
/// reads them), looked up once: the readers, the extract's CSV parts and normalize size their
/// threads by it, and the lookup reads cgroup files, which the standard library advises caching.
pub(crate) fn cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// `e` and its causes, outermost first, joined by `": "`: what a person reads (a function's
/// error message, the CLI's). A cause whose text the one before already ends with (a library
/// error that interpolates its source) is not said twice.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        let text = cause.to_string();
        if !text.is_empty() && !out.ends_with(&text) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&text);
        }
        next = cause.source();
    }
    out
}
