//! The browser's way in, over real HTTP/1.1 on the gRPC port (what a browser speaks to a
//! plaintext server): the pages with their headers, a gRPC-web call answered and one refused
//! by the same authentication as native gRPC, and CORS only for the configured servers.

mod common;

use common::TestServer;
use prost::Message;
use switchboard::config::ServerConfig;
use switchboard::pb;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A server whose desktops compare it with one more server.
const OTHER: &str = "http://desk-b.example:50051";

struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 request on a fresh connection, read to its end.
async fn http1(server: &TestServer, head: &str, body: &[u8]) -> Answer {
    let mut socket = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let request = format!(
        "{head}\r\nHost: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        server.addr,
        body.len()
    );
    socket.write_all(request.as_bytes()).await.unwrap();
    socket.write_all(body).await.unwrap();
    let mut raw = Vec::new();
    socket.read_to_end(&mut raw).await.unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete head");
    let head = String::from_utf8(raw[..split].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(": "))
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .collect::<Vec<_>>();
    let mut body = raw[split + 4..].to_vec();
    if headers
        .iter()
        .any(|(n, v)| n.eq_ignore_ascii_case("transfer-encoding") && v == "chunked")
    {
        body = dechunk(&body);
    }
    Answer {
        status,
        headers,
        body,
    }
}

fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = raw.windows(2).position(|w| w == b"\r\n").unwrap();
        let size =
            usize::from_str_radix(std::str::from_utf8(&raw[..line_end]).unwrap(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&raw[line_end + 2..line_end + 2 + size]);
        raw = &raw[line_end + 2 + size + 2..];
    }
}

/// A gRPC-web call: the message framed as gRPC frames it.
async fn grpc_web(server: &TestServer, path: &str, token: Option<&str>, message: &[u8]) -> Answer {
    let mut framed = vec![0];
    framed.extend_from_slice(&u32::try_from(message.len()).unwrap().to_be_bytes());
    framed.extend_from_slice(message);
    let auth = token.map_or_else(String::new, |t| format!("\r\nAuthorization: Bearer {t}"));
    let head = format!(
        "POST {path} HTTP/1.1\r\nContent-Type: application/grpc-web+proto\r\nX-Grpc-Web: 1{auth}"
    );
    http1(server, &head, &framed).await
}

/// A gRPC-web answer's status: in the headers for a trailers-only answer, else in the
/// trailer frame (flag 0x80) after the messages.
fn grpc_status(answer: &Answer) -> String {
    if let Some(status) = answer.header("grpc-status") {
        return status.to_owned();
    }
    let mut rest = answer.body.as_slice();
    while rest.len() >= 5 {
        let len = u32::from_be_bytes(rest[1..5].try_into().unwrap()) as usize;
        let (flag, payload) = (rest[0], &rest[5..5 + len]);
        if flag & 0x80 != 0 {
            let trailers = String::from_utf8_lossy(payload);
            return trailers
                .lines()
                .find_map(|l| l.strip_prefix("grpc-status:"))
                .expect("a grpc-status trailer")
                .trim()
                .to_owned();
        }
        rest = &rest[5 + len..];
    }
    panic!("no grpc-status in the answer")
}

/// The first message of a gRPC-web answer.
fn first_message(answer: &Answer) -> &[u8] {
    let len = u32::from_be_bytes(answer.body[1..5].try_into().unwrap()) as usize;
    assert_eq!(answer.body[0], 0, "a data frame first");
    &answer.body[5..5 + len]
}

async fn server() -> TestServer {
    TestServer::start_with(ServerConfig {
        web_servers: vec![OTHER.into()],
        ..ServerConfig::in_memory()
    })
    .await
}

#[tokio::test]
async fn the_desktop_and_the_wallboard_are_served_with_safe_headers() {
    let server = server().await;
    for (path, title) in [("/", "desktop"), ("/wallboard", "wallboard")] {
        let page = http1(&server, &format!("GET {path} HTTP/1.1"), b"").await;
        assert_eq!(page.status, 200, "{path}");
        assert!(
            page.header("content-type")
                .unwrap()
                .starts_with("text/html")
        );
        let html = String::from_utf8(page.body.clone()).unwrap();
        assert!(html.to_lowercase().contains(title), "{path} is the {title}");
        let csp = page.header("content-security-policy").expect("a CSP");
        assert!(
            csp.contains("default-src 'self'") && csp.contains(OTHER),
            "{csp}"
        );
        assert_eq!(page.header("x-content-type-options"), Some("nosniff"));

        // Revalidation by ETag answers 304 without the page.
        let etag = page.header("etag").expect("an ETag").to_owned();
        let again = http1(
            &server,
            &format!("GET {path} HTTP/1.1\r\nIf-None-Match: {etag}"),
            b"",
        )
        .await;
        assert_eq!(again.status, 304);
        assert!(again.body.is_empty());
    }
    let script = http1(&server, "GET /desktop.js HTTP/1.1", b"").await;
    assert_eq!(script.status, 200);
    assert!(
        script
            .header("content-type")
            .unwrap()
            .contains("javascript")
    );
    let config = http1(&server, "GET /web-config.json HTTP/1.1", b"").await;
    let config: serde_json::Value = serde_json::from_slice(&config.body).unwrap();
    assert_eq!(config["servers"], serde_json::json!([OTHER]));
    for missing in [
        "/nope.html",
        "/../Cargo.toml",
        "/.gitignore",
        "/%2e%2e/Cargo.toml",
    ] {
        let answer = http1(&server, &format!("GET {missing} HTTP/1.1"), b"").await;
        assert_eq!(answer.status, 404, "{missing}");
    }
    server.stop().await;
}

#[tokio::test]
async fn grpc_web_calls_go_through_the_same_authentication() {
    let server = server().await;
    let status = grpc_web(
        &server,
        "/switchboard.v1.CoreService/GetServerStatus",
        None,
        &[],
    )
    .await;
    assert_eq!(status.status, 200);
    assert_eq!(grpc_status(&status), "0");
    let status = pb::GetServerStatusResponse::decode(first_message(&status)).unwrap();
    assert!(status.accepting_clients);

    let request = pb::ListTasksRequest::default().encode_to_vec();
    let refused = grpc_web(
        &server,
        "/switchboard.v1.RoutingService/ListTasks",
        None,
        &request,
    )
    .await;
    assert_eq!(
        grpc_status(&refused),
        "16",
        "UNAUTHENTICATED without a token"
    );

    let token = server.admin_token().await;
    let listed = grpc_web(
        &server,
        "/switchboard.v1.RoutingService/ListTasks",
        Some(&token),
        &request,
    )
    .await;
    assert_eq!(grpc_status(&listed), "0");
    server.stop().await;
}

#[tokio::test]
async fn only_the_configured_servers_pages_may_call_across_origins() {
    let server = server().await;
    let preflight = |origin: &str| {
        format!(
            "OPTIONS /switchboard.v1.CoreService/GetServerStatus HTTP/1.1\r\nOrigin: {origin}\r\n\
             Access-Control-Request-Method: POST\r\n\
             Access-Control-Request-Headers: content-type,x-grpc-web,authorization"
        )
    };
    let allowed = http1(&server, &preflight(OTHER), b"").await;
    assert_eq!(allowed.header("access-control-allow-origin"), Some(OTHER));
    let headers = allowed.header("access-control-allow-headers").unwrap();
    assert!(headers.contains("authorization") && headers.contains("x-grpc-web"));

    let stranger = http1(&server, &preflight("http://evil.example"), b"").await;
    assert_eq!(stranger.header("access-control-allow-origin"), None);
    server.stop().await;
}
