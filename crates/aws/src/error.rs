//! SDK errors → `PortError`, keeping the source and classifying it retryable or permanent.

use std::error::Error as StdError;

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use sluice_core::ports::{ErrorClass, PortError};

/// How a call failed, before any service error code is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The request could not be built (a bug or bad input): never worth retrying.
    Construction,
    /// No response in time.
    Timeout,
    /// The connection failed.
    Dispatch,
    /// A response came back that could not be read.
    Response,
    /// The service answered with an error.
    Service,
}

/// Error codes that mean "slow down" or "try again", across the services we use.
const RETRYABLE_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottled",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "LimitExceededException",
    "TransactionInProgressException",
    "SlowDown",
    // Glue: another writer changed the table meanwhile; the catalog was slow to answer.
    "ConcurrentModificationException",
    "OperationTimeoutException",
    "RequestTimeout",
    "RequestTimeoutException",
    "InternalError",
    "InternalFailure",
    "InternalServerError",
    "InternalServiceError",
    "InternalServiceException",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "ConditionalRequestConflict",
];

/// The classification rule, on plain data: throttling, 5xx, 429, timeouts and dropped
/// connections can pass; everything else will fail the same way again.
pub fn classify(failure: Failure, code: Option<&str>, http_status: Option<u16>) -> ErrorClass {
    match failure {
        Failure::Construction => ErrorClass::Permanent,
        Failure::Timeout | Failure::Dispatch | Failure::Response => ErrorClass::Retryable,
        Failure::Service => {
            let by_code = code.is_some_and(|c| RETRYABLE_CODES.contains(&c));
            let by_status = http_status.is_some_and(|s| s == 429 || (500..600).contains(&s));
            if by_code || by_status {
                ErrorClass::Retryable
            } else {
                ErrorClass::Permanent
            }
        }
    }
}

/// Converts any SDK operation error.
pub fn port_error<E>(operation: &str, err: SdkError<E, HttpResponse>) -> PortError
where
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
{
    let failure = match &err {
        SdkError::ConstructionFailure(_) => Failure::Construction,
        SdkError::TimeoutError(_) => Failure::Timeout,
        SdkError::DispatchFailure(_) => Failure::Dispatch,
        SdkError::ResponseError(_) => Failure::Response,
        _ => Failure::Service,
    };
    let code = err.code().map(str::to_owned);
    let status = err.raw_response().map(|r| r.status().as_u16());
    let message = match (err.message(), &code) {
        (Some(m), Some(c)) => format!("{c}: {m}"),
        (None, Some(c)) => c.clone(),
        _ => DisplayErrorContext(&err).to_string(),
    };
    PortError {
        operation: operation.to_owned(),
        class: classify(failure, code.as_deref(), status),
        code,
        message,
        source: Some(Box::new(err)),
    }
}

/// The service error code, when the call got as far as an answer.
pub fn code_of<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> Option<&str> {
    err.code()
}

/// The HTTP status of the answer, when there was one.
pub fn status_of<E>(err: &SdkError<E, HttpResponse>) -> Option<u16> {
    err.raw_response().map(|r| r.status().as_u16())
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_s3::operation::get_object::GetObjectError;

    #[test]
    fn glue_conflicts_and_timeouts_are_retryable() {
        for code in [
            "ConcurrentModificationException",
            "OperationTimeoutException",
        ] {
            assert_eq!(
                classify(Failure::Service, Some(code), Some(400)),
                ErrorClass::Retryable,
                "{code}"
            );
        }
        assert_eq!(
            classify(Failure::Service, Some("EntityNotFoundException"), Some(400)),
            ErrorClass::Permanent
        );
    }

    #[test]
    fn throttling_5xx_and_transport_failures_are_retryable() {
        use ErrorClass::*;
        assert_eq!(
            classify(Failure::Service, Some("SlowDown"), Some(503)),
            Retryable
        );
        assert_eq!(
            classify(Failure::Service, Some("ThrottlingException"), Some(400)),
            Retryable
        );
        assert_eq!(
            classify(
                Failure::Service,
                Some("ProvisionedThroughputExceededException"),
                Some(400)
            ),
            Retryable
        );
        assert_eq!(classify(Failure::Service, None, Some(500)), Retryable);
        assert_eq!(classify(Failure::Service, None, Some(429)), Retryable);
        assert_eq!(classify(Failure::Timeout, None, None), Retryable);
        assert_eq!(classify(Failure::Dispatch, None, None), Retryable);
    }

    #[test]
    fn client_errors_are_permanent() {
        use ErrorClass::*;
        assert_eq!(
            classify(Failure::Service, Some("NoSuchBucket"), Some(404)),
            Permanent
        );
        assert_eq!(
            classify(Failure::Service, Some("AccessDenied"), Some(403)),
            Permanent
        );
        assert_eq!(
            classify(
                Failure::Service,
                Some("ConditionalCheckFailedException"),
                Some(400)
            ),
            Permanent
        );
        assert_eq!(classify(Failure::Service, None, Some(400)), Permanent);
        assert_eq!(classify(Failure::Construction, None, None), Permanent);
    }

    #[test]
    fn sdk_errors_keep_their_source_and_class() {
        let timeout: SdkError<GetObjectError, HttpResponse> =
            SdkError::timeout_error("no answer in 3 s");
        let e = port_error("s3:GetObject", timeout);
        assert!(e.is_retryable());
        assert!(e.source.is_some());
        assert_eq!(e.operation, "s3:GetObject");

        let built: SdkError<GetObjectError, HttpResponse> =
            SdkError::construction_failure("bucket is empty");
        let e = port_error("s3:GetObject", built);
        assert_eq!(e.class, ErrorClass::Permanent);
    }
}
