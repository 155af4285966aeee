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

/// What an error came from, kept for the message (see [`FnError::message`]).
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A function's failure. Each variant is one of the names above ([`FnError::error_type`]),
/// which is what Step Functions' Retry and Catch see; the message is the variant's text
/// followed by its causes, each once.
#[derive(Debug, thiserror::Error)]
pub enum FnError {
    /// [`BAD_FILE`].
    #[error("{message}")]
    BadFile {
        message: String,
        #[source]
        source: Option<Cause>,
    },
    /// [`SPEC_NOT_FOUND`].
    #[error("{0}")]
    SpecNotFound(String),
    /// [`OBJECT_CHANGED`].
    #[error("{0}")]
    ObjectChanged(String),
    /// [`TRANSIENT`], raised by our code (a database that is not reachable yet, a marker that
    /// moved meanwhile); an AWS call's own throttling is a [`FnError::Port`].
    #[error("{message}")]
    Transient {
        message: String,
        #[source]
        source: Option<Cause>,
    },
    /// An AWS call that failed: [`TRANSIENT`] when it may succeed if retried, else [`AWS`].
    #[error(transparent)]
    Port(#[from] PortError),
    /// [`AWS`]: what an AWS service returned cannot be used (an object vanished while it was
    /// listed, a marker that is not JSON).
    #[error("{message}")]
    Aws {
        message: String,
        #[source]
        source: Option<Cause>,
    },
    /// [`INTERNAL`].
    #[error("{message}")]
    Internal {
        message: String,
        #[source]
        source: Option<Cause>,
    },
    /// [`BAD_INPUT`].
    #[error("{message}")]
    BadInput {
        message: String,
        #[source]
        source: Option<Cause>,
    },
    /// [`LOCK_LOST`].
    #[error("{0}")]
    LockLost(String),
    /// [`NO_DATA`].
    #[error("{0}")]
    NoData(String),
    /// [`LOAD_FAILED`].
    #[error("{message}")]
    LoadFailed {
        message: String,
        #[source]
        source: Option<Cause>,
    },
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

/// An error and its causes, outermost first, joined by `": "`, each said once.
pub use sluice_core::error_chain;

impl FnError {
    /// The stable name Step Functions matches (one of [`ALL`]).
    pub fn error_type(&self) -> &'static str {
        match self {
            FnError::BadFile { .. } => BAD_FILE,
            FnError::SpecNotFound(_) => SPEC_NOT_FOUND,
            FnError::ObjectChanged(_) => OBJECT_CHANGED,
            FnError::Transient { .. } => TRANSIENT,
            FnError::Port(e) if e.is_retryable() => TRANSIENT,
            FnError::Port(_) | FnError::Aws { .. } => AWS,
            FnError::Internal { .. } => INTERNAL,
            FnError::BadInput { .. } => BAD_INPUT,
            FnError::LockLost(_) => LOCK_LOST,
            FnError::NoData(_) => NO_DATA,
            FnError::LoadFailed { .. } => LOAD_FAILED,
        }
    }

    /// The message with its causes, bounded to [`MAX_MESSAGE_BYTES`] (a file's whole header
    /// can end up in a message: 588 KB were seen).
    pub fn message(&self) -> String {
        bounded(&error_chain(self), MAX_MESSAGE_BYTES)
    }

    pub fn bad_file(message: impl Into<String>) -> FnError {
        FnError::BadFile {
            message: message.into(),
            source: None,
        }
    }

    pub fn transient(message: impl Into<String>) -> FnError {
        FnError::Transient {
            message: message.into(),
            source: None,
        }
    }

    pub fn aws(message: impl Into<String>) -> FnError {
        FnError::Aws {
            message: message.into(),
            source: None,
        }
    }

    /// A local failure: `what` failed because of `source`.
    pub fn internal(what: impl Into<String>, source: impl Into<Cause>) -> FnError {
        FnError::Internal {
            message: what.into(),
            source: Some(source.into()),
        }
    }

    pub fn bad_input(message: impl Into<String>) -> FnError {
        FnError::BadInput {
            message: message.into(),
            source: None,
        }
    }

    /// The input (or a document it names) is not what was expected, because of `source`.
    pub fn unreadable(what: impl Into<String>, source: impl Into<Cause>) -> FnError {
        FnError::BadInput {
            message: what.into(),
            source: Some(source.into()),
        }
    }

    pub fn load_failed(message: impl Into<String>) -> FnError {
        FnError::LoadFailed {
            message: message.into(),
            source: None,
        }
    }
}

impl From<FnError> for lambda_runtime::Diagnostic {
    fn from(e: FnError) -> lambda_runtime::Diagnostic {
        lambda_runtime::Diagnostic {
            error_type: e.error_type().to_owned(),
            error_message: e.message(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_bounded_at_a_character_boundary() {
        let header = "é".repeat(300_000);
        let e = FnError::bad_file(format!("missing column x; the file has: {header}")).message();
        assert!(e.len() < MAX_MESSAGE_BYTES + 40, "{}", e.len());
        assert!(e.starts_with("missing column x; the file has: é"));
        assert!(e.ends_with("bytes cut)"), "{}", &e[3_900..]);
        assert_eq!(FnError::bad_file("short").message(), "short");
    }

    #[test]
    fn port_errors_map_by_class() {
        assert_eq!(
            FnError::from(PortError::retryable("s3:GetObject", "slow down")).error_type(),
            TRANSIENT
        );
        assert_eq!(
            FnError::from(PortError::permanent("s3:GetObject", "denied")).error_type(),
            AWS
        );
        let d: lambda_runtime::Diagnostic = FnError::bad_file("not a zip").into();
        assert_eq!(
            (d.error_type.as_str(), d.error_message.as_str()),
            (BAD_FILE, "not a zip")
        );
    }

    #[test]
    fn causes_are_said_once_after_the_message() {
        let io = std::io::Error::new(std::io::ErrorKind::StorageFull, "No space left on device");
        let e = FnError::internal("no scratch space", io);
        assert_eq!(e.error_type(), INTERNAL);
        assert_eq!(e.message(), "no scratch space: No space left on device");
        // A core error that chains its cause (not interpolating it) reads whole, once.
        let read = sluice_core::IngestError::Read {
            object: "s3://raw/a.csv".into(),
            source: sluice_core::read::ReadError::Io(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "No such file",
            )),
        };
        let e = FnError::BadFile {
            message: "ingest".into(),
            source: Some(read.into()),
        };
        assert_eq!(
            e.message(),
            "ingest: s3://raw/a.csv: cannot read the file: No such file"
        );
    }

    #[test]
    fn every_variant_has_a_name_the_state_machines_know() {
        let all = [
            FnError::bad_file("x"),
            FnError::SpecNotFound("x".into()),
            FnError::ObjectChanged("x".into()),
            FnError::transient("x"),
            FnError::Port(PortError::retryable("s3:GetObject", "x")),
            FnError::Port(PortError::permanent("s3:GetObject", "x")),
            FnError::aws("x"),
            FnError::internal("x", std::io::Error::other("y")),
            FnError::bad_input("x"),
            FnError::LockLost("x".into()),
            FnError::NoData("x".into()),
            FnError::load_failed("x"),
        ];
        let names: std::collections::BTreeSet<&str> = all.iter().map(FnError::error_type).collect();
        for n in &names {
            assert!(ALL.contains(n), "{n}");
        }
        // Every name but the final Fail state's is raised by some variant.
        assert_eq!(names.len(), ALL.len() - 1);
        assert!(!names.contains(ITEMS_FAILED));
    }
}
