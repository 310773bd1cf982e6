//! The `/metrics` listener: plain HTTP/1.1 on an address of its own (`--metrics-listen`),
//! answering `GET /metrics` in Prometheus' text format.
//!
//! Served here rather than by the exporter crate's own listener for two reasons: a scrape
//! first refreshes the figures read from the engine and the process (`Metrics::scrape`), and
//! the server binds the address itself, so port 0 works and the bound address is known
//! (`Server::metrics_addr`). Bounded like the rest: a few connections at once (more are
//! closed at once), a client that does not send its request headers in time is dropped, and
//! scrapes take turns, so scrapers cannot pile reads onto the engine.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{ALLOW, CONTENT_TYPE};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::{JoinHandle, JoinSet};
use tracing::{debug, warn};

use super::Metrics;

/// Connections served at once; Prometheus needs one per scraping server.
const MAX_CONNECTIONS: usize = 8;
/// How long a connection may take to send a request's headers.
const HEADER_WAIT: Duration = Duration::from_secs(10);
/// How often histogram samples are folded into their buckets between scrapes.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// Prometheus' text exposition format.
const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Serves `/metrics` on `listener` until the task is aborted, which ends its connections too.
pub fn spawn(metrics: Metrics, listener: TcpListener) -> JoinHandle<()> {
    tokio::spawn(async move {
        let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        let mut connections = JoinSet::new();
        let mut upkeep = tokio::time::interval(UPKEEP_EVERY);
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let (stream, peer) = match accepted {
                        Ok(accepted) => accepted,
                        Err(e) => {
                            // Out of file descriptors, say: wait rather than spin.
                            warn!(error = %e, "accepting a metrics connection failed");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            continue;
                        }
                    };
                    let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
                        debug!(%peer, "too many metrics connections; closing one");
                        continue;
                    };
                    let metrics = metrics.clone();
                    connections.spawn(async move {
                        let _permit = permit;
                        let service = service_fn(move |request| answer(metrics.clone(), request));
                        let served = http1::Builder::new()
                            .timer(TokioTimer::new())
                            .header_read_timeout(HEADER_WAIT)
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                        if let Err(e) = served {
                            debug!(%peer, error = %e, "metrics connection ended");
                        }
                    });
                }
                Some(_) = connections.join_next() => {}
                _ = upkeep.tick() => metrics.upkeep(),
            }
        }
    })
}

async fn answer(
    metrics: Metrics,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let plain = |status: StatusCode, text: &'static str| {
        let mut response = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
        *response.status_mut() = status;
        response
    };
    if request.uri().path() != "/metrics" {
        return Ok(plain(
            StatusCode::NOT_FOUND,
            "not found: the metrics are at /metrics\n",
        ));
    }
    if request.method() != Method::GET {
        let mut response = plain(
            StatusCode::METHOD_NOT_ALLOWED,
            "GET /metrics is the only request served here\n",
        );
        response
            .headers_mut()
            .insert(ALLOW, http::HeaderValue::from_static("GET"));
        return Ok(response);
    }
    let mut response = Response::new(Full::new(Bytes::from(metrics.scrape().await)));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, http::HeaderValue::from_static(TEXT_FORMAT));
    Ok(response)
}
