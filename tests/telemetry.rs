//! Traces and logs of the real binary. With `--otlp-endpoint` pointing at an OTLP collector (a
//! real gRPC server implementing the collector's trace service, started here), the spans of
//! the calls made reach it, each with its method, `request_id` and outcome; with
//! `--log-format json` every line the server logs is a JSON object.

mod common;

use std::sync::{Arc, Mutex, PoisonError};

use common::process::ServerProcess;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use switchboard::pb;
use switchboard::pb::admin_service_client::AdminServiceClient;
use switchboard::pb::auth_service_client::AuthServiceClient;
use tonic::transport::server::TcpIncoming;
use tonic::{Code, Request, Response, Status};

/// Keeps every span exported to it.
#[derive(Clone, Default)]
struct Collector {
    spans: Arc<Mutex<Vec<Span>>>,
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let spans = request
            .into_inner()
            .resource_spans
            .into_iter()
            .flat_map(|r| r.scope_spans)
            .flat_map(|s| s.spans);
        self.spans
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(spans);
        Ok(Response::new(ExportTraceServiceResponse::default()))
    }
}

/// Starts a collector on a free loopback port; answers its endpoint.
async fn collector(spans: Collector) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a free port");
    let addr = listener.local_addr().expect("its address");
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(spans))
            .serve_with_incoming(TcpIncoming::from(listener)),
    );
    format!("http://{addr}")
}

/// A span's string attribute.
fn attribute<'a>(span: &'a Span, key: &str) -> Option<&'a str> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
            Value::StringValue(s) => Some(s.as_str()),
            _ => None,
        })
}

#[tokio::test]
async fn the_spans_of_a_login_and_a_write_reach_the_collector() {
    let received = Collector::default();
    let endpoint = collector(received.clone()).await;
    let server = ServerProcess::start(&[
        "--in-memory",
        "--otlp-endpoint",
        &endpoint,
        "--log-format",
        "json",
    ])
    .await;

    // A login, a refused login, and a write with a request id.
    let mut admin = AdminServiceClient::new(server.channel().await);
    let refused = AuthServiceClient::new(server.raw_channel().await)
        .login(common::auth::login_request(
            common::Who::Account("admin"),
            "not-the-secret",
        ))
        .await;
    assert_eq!(refused.unwrap_err().code(), Code::Unauthenticated);
    admin
        .upsert_mrd(pb::UpsertMrdRequest {
            mrd: Some(pb::Mrd {
                name: "chat".into(),
                max_tasks: 1,
                offer_timeout_seconds: 30,
                ..Default::default()
            }),
            request_id: "mrd-chat-1".into(),
        })
        .await
        .expect("the MRD is written");

    // A graceful stop sends what is still buffered.
    let logs_before = server.logs();
    assert!(server.terminate().await.success());
    let spans = received
        .spans
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let named = |name: &str| -> Vec<&Span> { spans.iter().filter(|s| s.name == name).collect() };

    let logins = named("/switchboard.v1.AuthService/Login");
    let outcomes: Vec<&str> = logins
        .iter()
        .filter_map(|s| attribute(s, "outcome"))
        .collect();
    assert!(outcomes.contains(&"OK"), "{logins:#?}");
    assert!(outcomes.contains(&"Unauthenticated"), "{logins:#?}");
    for login in &logins {
        assert_eq!(login.kind, SpanKind::Server as i32);
        assert_eq!(attribute(login, "rpc.system"), Some("grpc"));
        assert_eq!(
            attribute(login, "rpc.service"),
            Some("switchboard.v1.AuthService")
        );
        assert_eq!(attribute(login, "rpc.method"), Some("Login"));
        assert!(login.end_time_unix_nano >= login.start_time_unix_nano);
        // Unauthenticated is the caller's error, not the server's.
        let status = login.status.as_ref().map_or(0, |s| s.code);
        assert_eq!(status, StatusCode::Ok as i32, "{login:#?}");
    }
    let writes = named("/switchboard.v1.AdminService/UpsertMrd");
    assert_eq!(writes.len(), 1, "{spans:#?}");
    assert_eq!(attribute(writes[0], "request_id"), Some("mrd-chat-1"));
    assert_eq!(attribute(writes[0], "outcome"), Some("OK"));

    // Every line logged is one JSON object; the start-up line carries its fields.
    assert!(!logs_before.is_empty());
    for line in &logs_before {
        let parsed: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(parsed["level"].is_string(), "{line}");
    }
    let serving = logs_before
        .iter()
        .find(|l| l.contains("switchboard serving"))
        .expect("the start-up line");
    let serving: serde_json::Value = serde_json::from_str(serving).expect("JSON");
    assert_eq!(serving["fields"]["message"], "switchboard serving");
    assert!(serving["fields"]["addr"].is_string());
}
