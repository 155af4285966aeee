//! Shared setup for the emulator tests: a fresh, bootstrapped environment per test.
#![allow(dead_code)]

use sluice_aws::bootstrap::bootstrap;
use sluice_aws::{Clients, Names};
use sluice_core::TableSpec;

pub async fn clients() -> Clients {
    Clients::from_config(sluice_testkit::sdk_config().await)
}

/// The repository's table specs with their documents.
pub fn repo_specs() -> Vec<(TableSpec, String)> {
    let dir = sluice_testkit::repo_root().join("config/tables");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            (
                TableSpec::from_json(&p.display().to_string(), &text).unwrap(),
                text,
            )
        })
        .collect()
}

/// A new environment (unique names) with everything bootstrapped.
pub async fn environment(specs: &[(TableSpec, String)]) -> (Clients, Names) {
    let clients = clients().await;
    let names = Names::for_env(&sluice_testkit::unique("t"));
    bootstrap(&clients, &names, specs).await.unwrap();
    (clients, names)
}
