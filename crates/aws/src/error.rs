//! One error type for every AWS call: which service and operation, the error code, and the SDK's message.

use aws_sdk_cloudformation::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

/// An AWS call failed.
#[derive(Debug, thiserror::Error)]
#[error("{service} {operation} failed: {message}")]
pub struct AwsError {
    /// Service name, e.g. `cloudformation`.
    pub service: &'static str,
    /// Operation, e.g. `CreateChangeSet`.
    pub operation: &'static str,
    /// The service's error code, when it sent one (`ValidationError`, `AccessDenied`, …).
    pub code: Option<String>,
    /// What went wrong, with the SDK's context.
    pub message: String,
}

impl AwsError {
    /// Wraps an SDK error; the message carries the service's own text, or the transport failure.
    pub(crate) fn sdk<E, R>(
        service: &'static str,
        operation: &'static str,
        err: SdkError<E, R>,
    ) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        let code = err.code().map(str::to_owned);
        let message = match (err.code(), err.message()) {
            (Some(c), Some(m)) => format!("{c}: {m}"),
            _ => DisplayErrorContext(&err).to_string(),
        };
        Self {
            service,
            operation,
            code,
            message,
        }
    }

    /// An error for a response that lacks something it must have.
    pub(crate) fn malformed(service: &'static str, operation: &'static str, what: &str) -> Self {
        Self {
            service,
            operation,
            code: None,
            message: format!("response lacks {what}"),
        }
    }
}
