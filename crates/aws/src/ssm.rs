//! `Settings` over SSM Parameter Store: every parameter under `/sluice/<env>/`, SecureStrings
//! decrypted, read once per process and cached.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use sluice_core::ports::{PortResult, Settings};
use tokio::sync::OnceCell;

use crate::error::port_error;

#[derive(Debug)]
pub struct SsmSettings {
    client: aws_sdk_ssm::Client,
    path: String,
    cache: OnceCell<BTreeMap<String, String>>,
    fetches: AtomicUsize,
}

impl SsmSettings {
    pub fn new(client: aws_sdk_ssm::Client, path: impl Into<String>) -> SsmSettings {
        SsmSettings {
            client,
            path: path.into(),
            cache: OnceCell::new(),
            fetches: AtomicUsize::new(0),
        }
    }

    /// How many times the parameters were read from SSM (1 after any number of reads).
    pub fn fetches(&self) -> usize {
        self.fetches.load(Ordering::Relaxed)
    }

    async fn fetch(&self) -> PortResult<BTreeMap<String, String>> {
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let mut pages = self
            .client
            .get_parameters_by_path()
            .path(&self.path)
            .recursive(true)
            .with_decryption(true)
            .into_paginator()
            .send();
        let mut out = BTreeMap::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| port_error("ssm:GetParametersByPath", e))?;
            for p in page.parameters() {
                if let (Some(name), Some(value)) = (p.name(), p.value()) {
                    out.insert(relative_name(&self.path, name), value.to_owned());
                }
            }
        }
        Ok(out)
    }
}

/// `/sluice/dev/notify/console_region` under `/sluice/dev/` → `notify/console_region`.
pub fn relative_name(path: &str, name: &str) -> String {
    let base = path.trim_end_matches('/');
    name.strip_prefix(base)
        .map(|r| r.trim_start_matches('/'))
        .unwrap_or(name)
        .to_owned()
}

impl Settings for SsmSettings {
    async fn all(&self) -> PortResult<BTreeMap<String, String>> {
        self.cache.get_or_try_init(|| self.fetch()).await.cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_relative_to_the_path() {
        assert_eq!(
            relative_name("/sluice/dev/", "/sluice/dev/lookback_hours"),
            "lookback_hours"
        );
        assert_eq!(relative_name("/sluice/dev", "/sluice/dev/a/b"), "a/b");
        assert_eq!(relative_name("/sluice/dev/", "/other/x"), "/other/x");
    }
}
