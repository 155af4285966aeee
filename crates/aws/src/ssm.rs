//! `Settings` over SSM Parameter Store: every parameter under `/sluice/<env>/` (the settings
//! all functions share) and under the function's own secrets path
//! (`/sluice-secrets/<env>/<function>/`, SecureStrings, decrypted), read by path and cached
//! for [`SETTINGS_TTL`] (a changed setting reaches warm Lambda containers within that time,
//! not at their next cold start).
//!
//! Secrets live outside the shared path because IAM cannot fence a level of a path read by
//! path: "if a user has access to a path, then the user can access all levels of that path"
//! (<https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_GetParametersByPath.html>).
//! Each function's role may read the shared path and its own secrets path only.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use sluice_core::ports::{PortError, PortResult, Settings};
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

/// How long settings read from SSM are reused.
pub const SETTINGS_TTL: Duration = Duration::from_secs(300);

use crate::error::port_error;

#[derive(Debug)]
pub struct SsmSettings {
    client: crate::lazy::Lazy<aws_sdk_ssm::Client>,
    path: String,
    secrets: Option<String>,
    cache: Mutex<Option<(Instant, BTreeMap<String, String>)>>,
    ttl: Duration,
    fetches: AtomicUsize,
}

impl SsmSettings {
    pub fn new(
        client: impl Into<crate::lazy::Lazy<aws_sdk_ssm::Client>>,
        path: impl Into<String>,
    ) -> SsmSettings {
        SsmSettings {
            client: client.into(),
            path: path.into(),
            secrets: None,
            cache: Mutex::new(None),
            ttl: SETTINGS_TTL,
            fetches: AtomicUsize::new(0),
        }
    }

    /// The same, with this function's secrets from `path` (`None`: none).
    pub fn with_secrets(mut self, path: Option<String>) -> SsmSettings {
        self.secrets = path;
        self
    }

    /// The same, reusing what it read for `ttl` instead of [`SETTINGS_TTL`].
    pub fn with_ttl(mut self, ttl: Duration) -> SsmSettings {
        self.ttl = ttl;
        self
    }

    /// How many times the parameters were read from SSM (1 after any number of reads within
    /// the TTL).
    pub fn fetches(&self) -> usize {
        self.fetches.load(Ordering::Relaxed)
    }

    async fn fetch(&self) -> PortResult<BTreeMap<String, String>> {
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let mut out = self.read_path(&self.path).await?;
        if let Some(secrets) = &self.secrets {
            for (name, value) in self.read_path(secrets).await? {
                // A secret never silently replaces a shared setting (or the reverse).
                if out.contains_key(&name) {
                    return Err(PortError::permanent(
                        "ssm:GetParametersByPath",
                        format!(
                            "{secrets}{name} has the name of the setting {}{name}; rename one",
                            self.path
                        ),
                    ));
                }
                out.insert(name, value);
            }
        }
        Ok(out)
    }

    async fn read_path(&self, path: &str) -> PortResult<BTreeMap<String, String>> {
        let mut pages = self
            .client
            .get()
            .get_parameters_by_path()
            .path(path)
            .recursive(true)
            .with_decryption(true)
            .into_paginator()
            .send();
        let mut out = BTreeMap::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| port_error("ssm:GetParametersByPath", e))?;
            for p in page.parameters() {
                if let (Some(name), Some(value)) = (p.name(), p.value()) {
                    out.insert(relative_name(path, name), value.to_owned());
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
        let mut cache = self.cache.lock().await;
        if let Some((at, values)) = cache.as_ref() {
            if at.elapsed() < self.ttl {
                return Ok(values.clone());
            }
        }
        // An error is returned, never a stale or default value (AccessDenied must not read as
        // "not set").
        let values = self.fetch().await?;
        *cache = Some((Instant::now(), values.clone()));
        Ok(values)
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
