//! The one mapping from rule errors to gRPC statuses.
//!
//! Beside its message, a status carries a typed detail (`google.rpc.Status.details`) where a
//! client has something to act on:
//!
//! - `INVALID_ARGUMENT`: `google.rpc.BadRequest` with one field violation naming the field;
//! - a watch ended or refused for its revision: `google.rpc.ErrorInfo` in domain
//!   [`ERROR_DOMAIN`], with a reason from this module and the revisions as decimal strings in
//!   its metadata;
//! - a login refused for too many failures (`UNAUTHENTICATED`, like a wrong password, so that
//!   clients do not retry it blindly): `google.rpc.RetryInfo` with the wait, and
//!   `google.rpc.ErrorInfo` with reason [`LOGIN_THROTTLED`].

use std::collections::HashMap;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::domain::{DomainError, Revision};
use crate::watch::WatchError;

/// `ErrorInfo.domain` of every detail this server sets.
pub const ERROR_DOMAIN: &str = "switchboard.v1";

/// `ErrorInfo.reason` of a watch ended for falling behind (`ABORTED`); metadata
/// [`RESUME_REVISION`].
pub const WATCH_LAGGED: &str = "WATCH_LAGGED";
/// `ErrorInfo.reason` of a watch from before the oldest kept revision (`OUT_OF_RANGE`);
/// metadata [`REQUESTED_REVISION`] and [`OLDEST_REVISION`].
pub const WATCH_COMPACTED: &str = "WATCH_COMPACTED";
/// `ErrorInfo.reason` of a watch from past the next revision (`OUT_OF_RANGE`); metadata
/// [`REQUESTED_REVISION`] and [`HEAD_REVISION`].
pub const WATCH_BEYOND_HEAD: &str = "WATCH_BEYOND_HEAD";

/// `ErrorInfo.reason` of a login refused unchecked after too many failed ones
/// (`UNAUTHENTICATED`), for the account or from the caller's address alike.
pub const LOGIN_THROTTLED: &str = "LOGIN_THROTTLED";

/// The revision to watch from again, having missed nothing.
pub const RESUME_REVISION: &str = "resume_revision";
/// The oldest revision the journal still keeps.
pub const OLDEST_REVISION: &str = "oldest_revision";
/// The last committed revision when the watch was refused.
pub const HEAD_REVISION: &str = "head_revision";
/// The `start_revision` the watch asked for.
pub const REQUESTED_REVISION: &str = "requested_revision";

impl From<DomainError> for Status {
    fn from(error: DomainError) -> Self {
        let message = error.to_string();
        match error {
            DomainError::InvalidArgument { field, reason } => Status::with_error_details(
                Code::InvalidArgument,
                message,
                ErrorDetails::with_bad_request_violation(field, reason),
            ),
            DomainError::NotFound { .. } => Status::not_found(message),
            DomainError::FailedPrecondition(_) => Status::failed_precondition(message),
            DomainError::AlreadyExists(_) => Status::already_exists(message),
            DomainError::Unauthenticated => Status::unauthenticated(message),
            DomainError::LoginThrottled { retry_after_secs } => {
                let mut details = ErrorDetails::with_retry_info(Some(
                    std::time::Duration::from_secs(retry_after_secs),
                ));
                details.set_error_info(LOGIN_THROTTLED, ERROR_DOMAIN, HashMap::new());
                Status::with_error_details(Code::Unauthenticated, message, details)
            }
            DomainError::ResourceExhausted(_) => Status::resource_exhausted(message),
            DomainError::PermissionDenied(_) => Status::permission_denied(message),
            DomainError::Unavailable(_) => Status::unavailable(message),
            DomainError::Internal(_) => Status::internal(message),
        }
    }
}

impl From<WatchError> for Status {
    fn from(error: WatchError) -> Self {
        let message = error.to_string();
        match error {
            // The watcher resumes from `resume_revision`.
            WatchError::Lagged { resume_from } => watch_status(
                Code::Aborted,
                message,
                WATCH_LAGGED,
                &[(RESUME_REVISION, resume_from)],
            ),
            // The watcher relists, then watches from `oldest_revision`.
            WatchError::Compacted { requested, oldest } => watch_status(
                Code::OutOfRange,
                message,
                WATCH_COMPACTED,
                &[(REQUESTED_REVISION, requested), (OLDEST_REVISION, oldest)],
            ),
            // The watcher watches from `head_revision + 1` or earlier.
            WatchError::BeyondHead { requested, head } => watch_status(
                Code::OutOfRange,
                message,
                WATCH_BEYOND_HEAD,
                &[(REQUESTED_REVISION, requested), (HEAD_REVISION, head)],
            ),
            WatchError::Journal(_) => Status::unavailable(message),
            WatchError::TooMany { .. } => Status::resource_exhausted(message),
        }
    }
}

/// A status with an `ErrorInfo` detail whose metadata holds `revisions` in decimal.
fn watch_status(
    code: Code,
    message: String,
    reason: &str,
    revisions: &[(&str, Revision)],
) -> Status {
    let metadata: HashMap<String, String> = revisions
        .iter()
        .map(|(key, revision)| ((*key).to_owned(), revision.to_string()))
        .collect();
    Status::with_error_details(
        code,
        message,
        ErrorDetails::with_error_info(reason, ERROR_DOMAIN, metadata),
    )
}
