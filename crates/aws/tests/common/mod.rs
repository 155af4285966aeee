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
    TableSpec::load_dir(&sluice_testkit::repo_root().join("config/tables")).unwrap()
}

/// A new environment (unique names) with everything bootstrapped.
pub async fn environment(specs: &[(TableSpec, String)]) -> (Clients, Names) {
    let clients = clients().await;
    let names = Names::for_env(&sluice_testkit::unique("t"));
    bootstrap(&clients, &names, specs, &[]).await.unwrap();
    (clients, names)
}
