//! The functions' error names: stable strings that the state machine's Retry and Catch match.

use sluice_core::ports::PortError;

/// A file that cannot be ingested as it is (corrupt, wrong shape, unreadable): retrying will
/// not help; a corrected upload becomes a new work item. Caught per item.
pub const BAD_FILE: &str = "Sluice.BadFile";
/// No table spec for the item's dataset. Caught per item.
pub const SPEC_NOT_FOUND: &str = "Sluice.SpecNotFound";
/// The object changed (another ETag) since it was registered; the new content is its own item.
/// Ingest closes such an item as superseded (done, nothing published) rather than failing it;
/// the per-item Catch stays as a backstop.
pub const OBJECT_CHANGED: &str = "Sluice.ObjectChanged";
/// Throttling, 5xx, timeouts: retried by the state machine with backoff.
pub const TRANSIENT: &str = "Sluice.Transient";
/// An AWS call failed for good (access denied, missing resource): fails the execution; fix
/// the cause and redrive.
pub const AWS: &str = "Sluice.AwsError";
/// A failure inside the function that is neither AWS nor the data: no scratch space, a
/// worker task that stopped, a local file that cannot be written. Not retried; the message
/// says what failed; fix it (often the function's ephemeral storage) and redrive.
pub const INTERNAL: &str = "Sluice.Internal";
/// The function's input could not be read.
pub const BAD_INPUT: &str = "Sluice.BadInput";
/// Another live execution holds the pipeline lock (e.g. a redrive after the status-change rule
/// released it and another run took it): retried with a long backoff, so a redrive waits for
/// the other run to finish.
pub const LOCK_LOST: &str = "Sluice.LockLost";
/// The extract found nothing to work on (no loans in the lake): fix the data, then redrive.
pub const NO_DATA: &str = "Sluice.NoData";
/// The load into a target database failed for good: the target refers to what is not there, a
/// table cannot take the spec's change (NOT NULL column, narrowing, type change), the
/// database refused the secret's credentials, the counts differ from the lake's. Not caught:
/// the execution fails in Load; fix the cause, then Redrive resumes at Load.
pub const LOAD_FAILED: &str = "Sluice.LoadFailed";
/// Failed items at the end of a run (the final Fail state).
pub const ITEMS_FAILED: &str = "Sluice.ItemsFailed";

/// Every name a function raises or a Fail state uses.
pub const ALL: &[&str] = &[
    BAD_FILE,
    SPEC_NOT_FOUND,
    OBJECT_CHANGED,
    TRANSIENT,
    AWS,
    INTERNAL,
    BAD_INPUT,
    LOCK_LOST,
    NO_DATA,
    LOAD_FAILED,
    ITEMS_FAILED,
];

/// The Lambda service's own transient errors (not raised by our code), retried like
/// [`TRANSIENT`].
pub const LAMBDA_SERVICE_ERRORS: &[&str] = &[
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
];

#[derive(Debug, Clone, thiserror::Error)]
#[error("{name}: {message}")]
pub struct FnError {
    pub name: &'static str,
    pub message: String,
}

/// The longest message an error carries: it is written to the work item (DynamoDB items
/// stop at 400 KB), into the execution history and into notices (SNS stops at 256 KB).
pub const MAX_MESSAGE_BYTES: usize = 4_000;

/// At most `max` bytes of `s`, cut at a character boundary and marked.
pub fn bounded(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes cut)", &s[..end], s.len() - end)
}

impl FnError {
    /// The message is bounded to [`MAX_MESSAGE_BYTES`] (a file's whole header can end up in
    /// a message: 588 KB were seen).
    pub fn new(name: &'static str, message: impl Into<String>) -> FnError {
        FnError {
            name,
            message: bounded(&message.into(), MAX_MESSAGE_BYTES),
        }
    }

    pub fn bad_input(e: impl std::fmt::Display) -> FnError {
        FnError::new(BAD_INPUT, e.to_string())
    }
}

impl From<PortError> for FnError {
    fn from(e: PortError) -> FnError {
        let name = if e.is_retryable() { TRANSIENT } else { AWS };
        FnError::new(name, e.to_string())
    }
}

impl From<FnError> for lambda_runtime::Diagnostic {
    fn from(e: FnError) -> lambda_runtime::Diagnostic {
        lambda_runtime::Diagnostic {
            error_type: e.name.to_owned(),
            error_message: e.message,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_bounded_at_a_character_boundary() {
        let header = "é".repeat(300_000);
        let e = FnError::new(
            BAD_FILE,
            format!("missing column x; the file has: {header}"),
        );
        assert!(
            e.message.len() < MAX_MESSAGE_BYTES + 40,
            "{}",
            e.message.len()
        );
        assert!(e.message.starts_with("missing column x; the file has: é"));
        assert!(e.message.ends_with("bytes cut)"), "{}", &e.message[3_900..]);
        assert_eq!(FnError::new(BAD_FILE, "short").message, "short");
    }

    #[test]
    fn port_errors_map_by_class() {
        assert_eq!(
            FnError::from(PortError::retryable("s3:GetObject", "slow down")).name,
            TRANSIENT
        );
        assert_eq!(
            FnError::from(PortError::permanent("s3:GetObject", "denied")).name,
            AWS
        );
        let d: lambda_runtime::Diagnostic = FnError::new(BAD_FILE, "not a zip").into();
        assert_eq!(
            (d.error_type.as_str(), d.error_message.as_str()),
            (BAD_FILE, "not a zip")
        );
    }
}
