//! A call that must carry exactly one request message and carried none is a request
//! cardinality violation, which gRPC's status table answers `UNIMPLEMENTED`; tonic answers it
//! `INTERNAL` ("Missing request message."), a code that tells clients the server broke. One
//! tower layer around the router rewrites that one answer, for every service alike (health
//! included).

use std::task::{Context, Poll};

use futures_util::FutureExt;
use futures_util::future::Map;
use http::Response;
use tonic::{Code, Status};
use tower::{Layer, Service};

/// tonic's message for a unary or server-streaming call whose body held no message.
const TONIC_MISSING_REQUEST: &str = "Missing request message.";
const MISSING_REQUEST: &str =
    "the method takes exactly one request message and the request carried none";

/// Rewrites tonic's answer to a call with no request message (see the module).
#[derive(Debug, Clone, Copy, Default)]
pub struct CardinalityLayer;

impl<S> Layer<S> for CardinalityLayer {
    type Service = Cardinality<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Cardinality(inner)
    }
}

/// A service behind [`CardinalityLayer`].
#[derive(Debug, Clone)]
pub struct Cardinality<S>(S);

type Answer<B, E> = Result<Response<B>, E>;

impl<S, R, B> Service<R> for Cardinality<S>
where
    S: Service<R, Response = Response<B>>,
{
    type Response = Response<B>;
    type Error = S::Error;
    type Future = Map<S::Future, fn(Answer<B, S::Error>) -> Answer<B, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> Self::Future {
        self.0.call(request).map(rewrite::<B, S::Error>)
    }
}

/// The answer, with a missing request message's `INTERNAL` made `UNIMPLEMENTED`. tonic sends
/// it trailers-only, so the status is in the response headers.
fn rewrite<B, E>(answer: Answer<B, E>) -> Answer<B, E> {
    answer.map(|mut response| {
        let missing = Status::from_header_map(response.headers()).is_some_and(|status| {
            status.code() == Code::Internal && status.message() == TONIC_MISSING_REQUEST
        });
        if missing {
            // Only fails for a message that is not a valid header value, which this one is.
            let _ = Status::unimplemented(MISSING_REQUEST).add_header(response.headers_mut());
        }
        response
    })
}
