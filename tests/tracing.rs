//! Traces and logs as operators collect them: a real server process exports a span per RPC
//! over OTLP/gRPC to a real collector's trace service (served here), with the method, the
//! `request_id` and the outcome; and `--log-format json` writes one JSON object per line.

mod common;

use std::sync::{Arc, Mutex};

use common::process::ServerProcess;
use common::unsigned;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;
use switchboard::pb;
use switchboard::pb::core_service_client::CoreServiceClient;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;

/// A collector that keeps every span it is sent.
#[derive(Clone, Default)]
struct Collector {
    spans: Arc<Mutex<Vec<Span>>>,
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = self.spans.lock().unwrap();
        for resource in request.into_inner().resource_spans {
            for scope in resource.scope_spans {
                spans.extend(scope.spans);
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

impl Collector {
    /// Serves the collector on a free port; its endpoint.
    async fn start(&self) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let service = TraceServiceServer::new(self.clone());
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(TcpListenerStream::new(listener)),
        );
        endpoint
    }

    fn spans(&self) -> Vec<Span> {
        self.spans.lock().unwrap().clone()
    }
}

fn attribute(span: &Span, key: &str) -> Option<Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref()?.value.clone())
}

fn text(value: Option<Value>) -> Option<String> {
    match value? {
        Value::StringValue(s) => Some(s),
        other => Some(format!("{other:?}")),
    }
}

fn code(span: &Span) -> Option<i64> {
    match attribute(span, "rpc.grpc.status_code")? {
        Value::IntValue(code) => Some(code),
        _ => None,
    }
}

#[tokio::test]
async fn a_login_and_a_keyed_call_reach_the_collector_as_spans() {
    let collector = Collector::default();
    let endpoint = collector.start().await;
    let server = ServerProcess::start(&["--in-memory", "--otlp-endpoint", &endpoint]).await;

    // A login (with the admin's secret), a refused call, and a call with a request_id.
    let admin = server.channel().await;
    let refused = CoreServiceClient::new(unsigned(server.raw_channel().await))
        .register_client(pb::RegisterClientRequest::default())
        .await;
    assert_eq!(refused.unwrap_err().code(), tonic::Code::Unauthenticated);
    CoreServiceClient::new(admin)
        .register_client(pb::RegisterClientRequest {
            client_name: "traced desk".into(),
            request_id: "trace-me-1".into(),
        })
        .await
        .expect("the client registers");
    let secret = server.admin_secret();
    // A clean stop sends what is still batched.
    assert!(server.terminate().await.success());

    let spans = collector.spans();
    let named = |name: &str| {
        spans
            .iter()
            .filter(|s| s.name == name)
            .cloned()
            .collect::<Vec<_>>()
    };
    let logins = named("/switchboard.v1.AuthService/Login");
    let login = logins
        .first()
        .unwrap_or_else(|| panic!("no Login span in {spans:#?}"));
    assert_eq!(
        text(attribute(login, "rpc.service")).as_deref(),
        Some("switchboard.v1.AuthService")
    );
    assert_eq!(
        text(attribute(login, "rpc.method")).as_deref(),
        Some("Login")
    );
    assert_eq!(code(login), Some(0), "the login succeeded: {login:#?}");

    let registrations = named("/switchboard.v1.CoreService/RegisterClient");
    let keyed = registrations
        .iter()
        .find(|s| text(attribute(s, "request_id")).as_deref() == Some("trace-me-1"))
        .unwrap_or_else(|| panic!("no span carries the request_id: {registrations:#?}"));
    assert_eq!(code(keyed), Some(0));
    assert!(
        registrations.iter().any(|s| code(s) == Some(16)),
        "the unauthenticated call's span has its outcome: {registrations:#?}"
    );
    // No secret travels in a span.
    assert!(
        !format!("{spans:?}").contains(&secret),
        "a span carries the admin's secret"
    );
}

#[tokio::test]
async fn json_logs_are_one_object_per_line() {
    let server = ServerProcess::start(&["--in-memory", "--log-format", "json"]).await;
    let _ = server.channel().await;
    let logs = server.logs();
    assert!(!logs.is_empty());
    for line in &logs {
        let json: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(
            json["level"].is_string() && json["fields"].is_object(),
            "{line}"
        );
    }
    assert!(logs.iter().any(|l| l.contains("switchboard serving")));
    server.kill();
}
