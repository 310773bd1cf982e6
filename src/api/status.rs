//! The one mapping from rule errors to gRPC statuses.

use tonic::Status;

use crate::domain::DomainError;
use crate::watch::WatchError;

impl From<DomainError> for Status {
    fn from(error: DomainError) -> Self {
        let message = error.to_string();
        match error {
            DomainError::InvalidArgument { .. } => Status::invalid_argument(message),
            DomainError::NotFound { .. } => Status::not_found(message),
            DomainError::FailedPrecondition(_) => Status::failed_precondition(message),
            DomainError::AlreadyExists(_) => Status::already_exists(message),
            DomainError::Unauthenticated => Status::unauthenticated(message),
            DomainError::Unavailable(_) => Status::unavailable(message),
            DomainError::Internal(_) => Status::internal(message),
        }
    }
}

impl From<WatchError> for Status {
    fn from(error: WatchError) -> Self {
        let message = error.to_string();
        match error {
            // The watcher resumes from the revision named in the message.
            WatchError::Lagged { .. } => Status::aborted(message),
            // The watcher relists, then watches from the oldest revision named in the message.
            WatchError::Compacted { .. } => Status::out_of_range(message),
            WatchError::Journal(_) => Status::unavailable(message),
        }
    }
}
