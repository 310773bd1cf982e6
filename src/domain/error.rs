//! The one error type of the rules. `api::status` maps each kind to its gRPC status.

use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DomainError {
    /// The request is malformed; `field` names the field to fix.
    #[error("{field}: {reason}")]
    InvalidArgument { field: &'static str, reason: String },
    /// A named thing does not exist.
    #[error("{kind} '{id}' not found")]
    NotFound { kind: &'static str, id: String },
    /// A rule forbids the change in the current state.
    #[error("{0}")]
    FailedPrecondition(String),
    /// The request's id was already used for a different request.
    #[error("{0}")]
    AlreadyExists(String),
    /// Credentials did not match. The message never says which part was wrong.
    #[error("agent id or password is wrong")]
    Unauthenticated,
    /// Too many failed logins for the account or from the caller's address: the attempt was
    /// refused unchecked, the right password too, and alike whether the account exists or not.
    #[error("too many failed login attempts; retry after {retry_after_secs} s")]
    LoginThrottled { retry_after_secs: u64 },
    /// The server has no room for this request now (every password check slot is taken);
    /// retrying shortly may succeed.
    #[error("{0}")]
    ResourceExhausted(String),
    /// The caller is known, but may not do this; the message says what is missing.
    #[error("{0}")]
    PermissionDenied(String),
    /// The server is not taking this request now (starting or draining).
    #[error("{0}")]
    Unavailable(String),
    /// Something broke inside the server; not the caller's fault.
    #[error("internal error: {0}")]
    Internal(String),
}

impl DomainError {
    pub fn denied(reason: impl Into<String>) -> Self {
        Self::PermissionDenied(reason.into())
    }

    pub fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Self::InvalidArgument {
            field,
            reason: reason.into(),
        }
    }

    pub fn not_found(kind: &'static str, id: impl Into<String>) -> Self {
        Self::NotFound {
            kind,
            id: id.into(),
        }
    }
}

pub type DomainResult<T> = Result<T, DomainError>;
