//! A request message over the maximum size (`--max-message-bytes`) is `RESOURCE_EXHAUSTED`
//! naming the limit. tonic refuses it as soon as it reads the length prefix, without reading
//! the body, but with `OUT_OF_RANGE`, which this server's watches use to mean "relist"; so the
//! status is relabelled on its way out: in the response headers of a unary or server-streaming
//! call (a layer around every service), and by `Connect` for a frame of its request stream.

use tonic::{Code, Status};

/// How tonic's decoder starts the message of a message over the limit.
const TONIC_TOO_LARGE: &str = "Error, decoded message length too large: ";

/// The status for a request message over the limit, when `status` is tonic's refusal of one.
pub fn relabel(status: &Status) -> Option<Status> {
    if status.code() != Code::OutOfRange {
        return None;
    }
    let detail = status.message().strip_prefix(TONIC_TOO_LARGE)?;
    // tonic's detail: "found {len} bytes, the limit is: {limit} bytes".
    let number = |after: &str| -> Option<u64> {
        let rest = &detail[detail.find(after)? + after.len()..];
        rest.split_whitespace().next()?.parse().ok()
    };
    let (found, limit) = (number("found ")?, number("the limit is: ")?);
    Some(Status::resource_exhausted(format!(
        "the request message is {found} bytes, over this server's maximum message size of \
         {limit} bytes (--max-message-bytes)"
    )))
}

/// Relabels a response that carries tonic's refusal of an oversized request in its headers
/// (a trailers-only response); passes every other response through untouched.
pub fn relabel_response<B>(mut response: http::Response<B>) -> http::Response<B> {
    let Some(status) = Status::from_header_map(response.headers()) else {
        return response;
    };
    if let Some(relabelled) = relabel(&status) {
        let headers = response.headers_mut();
        headers.remove("grpc-status");
        headers.remove("grpc-message");
        headers.remove("grpc-status-details-bin");
        if relabelled.add_header(headers).is_err() {
            tracing::warn!("could not relabel an oversized request's status");
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tonic_refusal_becomes_resource_exhausted_naming_the_limit() {
        let tonic = Status::out_of_range(
            "Error, decoded message length too large: found 5000005 bytes, the limit is: 4194304 bytes",
        );
        let relabelled = relabel(&tonic).expect("relabelled");
        assert_eq!(relabelled.code(), Code::ResourceExhausted);
        assert!(relabelled.message().contains("5000005 bytes"));
        assert!(relabelled.message().contains("4194304 bytes"));
    }

    #[test]
    fn other_out_of_range_statuses_stay() {
        assert!(relabel(&Status::out_of_range("revision 3 is compacted")).is_none());
        assert!(relabel(&Status::internal(TONIC_TOO_LARGE)).is_none());
    }
}
