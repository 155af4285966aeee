//! The list of functions, once. Each entry names the function (its directory under
//! `functions/`, its `[[bin]]`, its `${<name>_arn}` placeholder in the state machines and its
//! key in Terraform's `local.functions`), its handler and that handler's input type from
//! [`crate::contracts`]. From it come the in-process dispatch ([`invoke`], used by
//! `sluice run` and the tests), the check of the `events/` examples ([`check_input`]); the
//! wiring test holds `Cargo.toml`, the directories and the state machines' Task resources to
//! it, and Terraform's invariant test holds `local.functions` (names and descriptions) to it.

use serde_json::Value;

use crate::errors::FnError;
use crate::ports::Ports;

/// One function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Function {
    /// `queue-generator`.
    pub name: &'static str,
    /// What it does, in one line: Terraform's `description` of the Lambda function.
    pub description: &'static str,
}

fn parse<T: serde::de::DeserializeOwned>(input: &Value) -> Result<T, FnError> {
    serde_json::from_value(input.clone()).map_err(|e| FnError::unreadable("the input", e))
}

fn json<T: serde::Serialize>(v: T) -> Result<Value, FnError> {
    serde_json::to_value(v).map_err(|e| FnError::internal("writing the output", e))
}

macro_rules! registry {
    ($($name:literal => $module:ident::$handler:ident($input:ty), $description:literal;)*) => {
        /// Every function, in the order of the pipeline.
        pub const FUNCTIONS: &[Function] = &[$(Function { name: $name, description: $description }),*];

        /// Calls the named function's handler in-process.
        pub async fn invoke<P: Ports>(
            ports: &P,
            function: &str,
            input: &Value,
        ) -> Result<Value, FnError> {
            match function {
                // Boxed: the handlers' futures are large, and nested inline they pass the
                // compiler's query depth limit.
                $($name => json(Box::pin(crate::$module::$handler(ports, parse::<$input>(input)?)).await?),)*
                other => Err(FnError::bad_input(format!("no function {other}"))),
            }
        }

        /// Parses `input` as the named function's input: `events/<function>*.json` must.
        pub fn check_input(function: &str, input: &Value) -> Result<(), String> {
            match function {
                $($name => serde_json::from_value::<$input>(input.clone()).map(|_| ()).map_err(|e| e.to_string()),)*
                other => Err(format!("no function {other}")),
            }
        }
    };
}

registry! {
    "queue-generator" => queue_generator::handle_request(crate::contracts::QueueRequest),
        "Scheduled or S3 event -> registered work items";
    "in-progress-check" => in_progress_check::handle(crate::contracts::LockInput),
        "The pipeline lock: acquire with stale-lock takeover, release";
    "ingest" => ingest::handle(crate::contracts::IngestInput),
        "One work item -> curated Parquet, quarantine, Glue partitions";
    "notify" => notify::handle(crate::contracts::NotifyInput),
        "Run summary or failure -> SNS";
    "extract" => extract::handle(crate::contracts::ExtractInput),
        "Monthly bank extract -> one CSV per bank and month";
    "normalize" => normalize::handle(crate::contracts::NormalizeInput),
        "Models reading this run's datasets -> target tables, quarantine, Glue tables";
    "load" => load::handle(crate::contracts::LoadInput),
        "Lake tables this run touched -> the application databases (config/targets/), exactly once, reconciled";
}

/// The function names.
pub fn names() -> impl Iterator<Item = &'static str> {
    FUNCTIONS.iter().map(|f| f.name)
}

/// `${queue_generator_arn}`, `arn:aws:lambda:...:function:sluice-dev-queue-generator` →
/// `queue-generator`.
pub fn function_of(resource: &str) -> Option<&'static str> {
    let name = resource
        .strip_prefix("${")
        .and_then(|r| r.strip_suffix("_arn}"))
        .map(|r| r.replace('_', "-"))
        .unwrap_or_else(|| resource.rsplit(':').next().unwrap_or(resource).to_owned());
    names().find(|f| name == *f || name.ends_with(&format!("-{f}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_name_their_function() {
        assert_eq!(
            function_of("${queue_generator_arn}"),
            Some("queue-generator")
        );
        assert_eq!(
            function_of("${in_progress_check_arn}"),
            Some("in-progress-check")
        );
        assert_eq!(
            function_of("arn:aws:lambda:us-east-1:123456789012:function:sluice-dev-ingest"),
            Some("ingest")
        );
        assert_eq!(function_of("${normalize_arn}"), Some("normalize"));
        assert_eq!(function_of("${transform_arn}"), None);
    }
}
