//! `/metrics` end to end: a real server with `--metrics-listen 127.0.0.1:0`, scraped over HTTP.

mod common;

use common::TestServer;
use common::scrape::{get, scrape};
use switchboard::config::ServerConfig;

async fn start() -> TestServer {
    TestServer::start_with(ServerConfig {
        metrics_listen: Some("127.0.0.1:0".parse().expect("an address")),
        ..ServerConfig::in_memory()
    })
    .await
}

#[tokio::test]
async fn only_get_metrics_is_served_and_it_is_off_unless_asked() {
    let server = start().await;
    let metrics = server.metrics_addr.expect("metrics are served");
    let (status, _, _) = get(metrics, "/").await;
    assert_eq!(status, 404);
    let (status, headers, _) = get(metrics, "/metrics?x=1").await;
    assert_eq!(status, 200, "{headers:?}");
    server.admin_token().await;
    let scraped = scrape(metrics).await;
    assert_eq!(scraped.types["grpc_server_handled_total"], "counter");
    assert_eq!(scraped.types["grpc_server_handling_seconds"], "histogram");
    let login = [
        ("grpc_service", "switchboard.v1.AuthService"),
        ("grpc_method", "Login"),
        ("grpc_type", "unary"),
    ];
    let mut ok = login.to_vec();
    ok.push(("grpc_code", "OK"));
    assert_eq!(scraped.value("grpc_server_handled_total", &ok), 1.0);
    assert_eq!(scraped.value("grpc_server_started_total", &login), 1.0);
    assert_eq!(scraped.value("grpc_server_msg_received_total", &login), 1.0);
    assert_eq!(scraped.value("grpc_server_msg_sent_total", &login), 1.0);
    assert_eq!(scraped.types["process_resident_memory_bytes"], "gauge");
    assert!(scraped.value("process_resident_memory_bytes", &[]) > 0.0);
    assert!(scraped.value("process_threads", &[]) >= 1.0);
    server.stop().await;

    let plain = TestServer::start().await;
    assert_eq!(plain.metrics_addr, None);
    plain.stop().await;
}
