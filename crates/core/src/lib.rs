//! Sluice's pure core: table specs, streaming readers, coercion, quarantine and writers.
//!
//! No AWS and no async runtime here: everything is plain functions over plain data, tested
//! without a network. The AWS adapters and the Lambda functions build on these pieces.

pub mod coerce;
pub mod extract;
pub mod extract_input;
pub mod ingest;
pub mod model;
pub mod normalize;
pub mod ports;
pub mod read;
pub mod spec;
pub mod target;
pub mod write;

pub use ingest::{ingest, IngestError, IngestOptions, IngestReport, Source};
pub use spec::{SpecError, TableSpec};
