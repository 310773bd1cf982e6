//! gRPC status codes as a response carries them: the `grpc-status` of its headers (a
//! trailers-only answer) or of its trailers, shared by the metrics and the RPC spans.

use http::{HeaderMap, HeaderName};

/// gRPC's status codes as go-grpc-prometheus names them (Go's `codes.Code.String()`).
pub const CODE_NAMES: [&str; 17] = [
    "OK",
    "Canceled",
    "Unknown",
    "InvalidArgument",
    "DeadlineExceeded",
    "NotFound",
    "AlreadyExists",
    "PermissionDenied",
    "ResourceExhausted",
    "FailedPrecondition",
    "Aborted",
    "OutOfRange",
    "Unimplemented",
    "Internal",
    "Unavailable",
    "DataLoss",
    "Unauthenticated",
];
pub const CANCELED: usize = 1;
pub const UNKNOWN: usize = 2;

/// The index into `CODE_NAMES` of the `grpc-status` in `headers`, if there is one; a value
/// that is not a known code counts as `Unknown`.
pub fn status_code(headers: &HeaderMap) -> Option<usize> {
    // A ready-made name: looking up by `&str` parses the name again on every call.
    const GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");
    let value = headers.get(GRPC_STATUS)?;
    let code = value
        .to_str()
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|code| *code < CODE_NAMES.len());
    Some(code.unwrap_or(UNKNOWN))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_codes_are_named_as_go_names_them() {
        let mut headers = HeaderMap::new();
        assert_eq!(status_code(&headers), None);
        headers.insert("grpc-status", "7".parse().unwrap());
        assert_eq!(
            status_code(&headers).map(|c| CODE_NAMES[c]),
            Some("PermissionDenied")
        );
        headers.insert("grpc-status", "99".parse().unwrap());
        assert_eq!(
            status_code(&headers).map(|c| CODE_NAMES[c]),
            Some("Unknown")
        );
    }
}
