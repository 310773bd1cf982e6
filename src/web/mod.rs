//! The browser's way in, on the gRPC port: the pages (the agent desktop at `/`, the supervisor
//! wallboard at `/wallboard`, built from `web/` into `web/dist` and embedded in the binary),
//! gRPC-web beside native gRPC (tonic-web, inside the same authentication), and CORS for the
//! other servers a desktop compares.

mod origins;
mod pages;

pub use origins::{OriginError, WebOrigins};
pub use pages::{PageSource, PagesLayer};

use http::{HeaderName, HeaderValue, Method};
use tower_http::cors::{AllowOrigin, CorsLayer};

/// CORS for pages served by the other configured servers: they may call this one with
/// gRPC-web, sending the headers a gRPC-web call carries and reading its status.
pub fn cors(origins: &WebOrigins) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let headers = [
        "authorization",
        "content-type",
        "x-grpc-web",
        "x-user-agent",
        "grpc-timeout",
    ];
    let exposed = ["grpc-status", "grpc-message", "grpc-status-details-bin"];
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins.header_values()))
            .allow_methods([Method::POST, Method::GET, Method::OPTIONS])
            .allow_headers(headers.map(HeaderName::from_static))
            .expose_headers(exposed.map(HeaderName::from_static))
            .max_age(std::time::Duration::from_secs(3600)),
    )
}

/// What `/web-config.json` answers: the servers a desktop compares (none: the one that
/// served it).
pub fn page_config(origins: &WebOrigins) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({ "servers": origins.as_strs().collect::<Vec<_>>() }))
        .unwrap_or_else(|_| b"{\"servers\":[]}".to_vec())
}

/// The `Content-Security-Policy` of every page: scripts and styles from this server only,
/// calls to this server and the configured ones, no framing.
fn content_security_policy(origins: &WebOrigins) -> HeaderValue {
    let connect = std::iter::once("'self'")
        .chain(origins.as_strs())
        .collect::<Vec<_>>()
        .join(" ");
    let policy = format!(
        "default-src 'self'; connect-src {connect}; img-src 'self' data:; \
         frame-ancestors 'none'; base-uri 'none'; form-action 'none'; object-src 'none'"
    );
    // The origins were checked to be visible ASCII.
    HeaderValue::from_str(&policy)
        .unwrap_or_else(|_| HeaderValue::from_static("default-src 'self'"))
}
