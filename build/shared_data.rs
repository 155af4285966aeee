//! Build script of the crates whose tests read `../shared` (the seed files and the recorded
//! AWS executions beside the project). It sets `cfg(sluice_shared)` when that folder is
//! there, so those tests run; where it is absent they show as **ignored**, never as passed
//! (`#[cfg_attr(not(sluice_shared), ignore = "...")]`).

use std::path::{Path, PathBuf};

fn main() {
    println!("cargo::rustc-check-cfg=cfg(sluice_shared)");
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default());
    // The workspace root is the nearest folder up with a Cargo.lock; `shared` sits beside it.
    let root = manifest
        .ancestors()
        .find(|d| d.join("Cargo.lock").is_file())
        .unwrap_or(&manifest)
        .to_path_buf();
    let shared = root.parent().unwrap_or(Path::new("/")).join("shared");
    let markers = [
        shared.join("seed-data/README.md"),
        shared.join("asl-conformance/README.md"),
    ];
    for m in &markers {
        println!("cargo::rerun-if-changed={}", m.display());
    }
    if markers.iter().all(|m| m.is_file()) {
        println!("cargo::rustc-cfg=sluice_shared");
    }
}
