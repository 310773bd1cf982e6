//! How a `Connect` stream's end decides its client's fate, from a raw HTTP/2 client on a real
//! socket: only a `Goodbye` frame unregisters the client (and the stream then ends OK); a
//! reset with any RST_STREAM code, a cancel or a half-close keeps it for its grace period, so a
//! tonic client resumes it; a frame that does not decode ends the stream with
//! INVALID_ARGUMENT.
//!
//! Nothing here passes by waiting long enough: after a reset (which the server cannot answer)
//! the test waits for the server's own record that it closed the stream, its
//! `connect stream closed` debug event, and only then checks what became of the client.
//! Every test runs the server on two worker threads, as production runs it on many: on one
//! thread the tasks that see a reset always ran in the same order, which hid the race that
//! once turned a cancel into a goodbye.

mod common;

use std::fmt;
use std::net::SocketAddr;
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::Duration;

use common::desktop::ConnectedDesktop;
use common::{Clients, DEFAULT_PROCESSOR_ID, TestServer, WORKFLOW};
use prost::Message;
use switchboard::config::ServerConfig;
use switchboard::pb;
use switchboard::pb::connect_request::Request as Req;
use switchboard::pb::connect_response::Frame;
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tonic::Code;
use tonic::codegen::{Bytes, http};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

const PASSWORD: &str = "lifecycle-Pw-7";
/// Bounds every wait, so that a broken server fails the test instead of hanging it.
const WAIT: Duration = Duration::from_secs(20);
/// Long enough that no client in these tests expires while a test runs.
const LONG_GRACE_MS: u64 = 600_000;
/// How many times the cancel case runs: it used to go either way from run to run.
const CANCEL_RUNS: usize = 15;

/// Every RST_STREAM code RFC 9113 defines, and one it does not.
fn reset_codes() -> [h2::Reason; 15] {
    [
        h2::Reason::NO_ERROR,
        h2::Reason::PROTOCOL_ERROR,
        h2::Reason::INTERNAL_ERROR,
        h2::Reason::FLOW_CONTROL_ERROR,
        h2::Reason::SETTINGS_TIMEOUT,
        h2::Reason::STREAM_CLOSED,
        h2::Reason::FRAME_SIZE_ERROR,
        h2::Reason::REFUSED_STREAM,
        h2::Reason::CANCEL,
        h2::Reason::COMPRESSION_ERROR,
        h2::Reason::CONNECT_ERROR,
        h2::Reason::ENHANCE_YOUR_CALM,
        h2::Reason::INADEQUATE_SECURITY,
        h2::Reason::HTTP_1_1_REQUIRED,
        h2::Reason::from(0xbad),
    ]
}

async fn server() -> (TestServer, Clients) {
    closings(); // Installed before the server logs anything.
    let server = TestServer::start_with(ServerConfig {
        presence_grace_ms: LONG_GRACE_MS,
        ..ServerConfig::in_memory()
    })
    .await;
    let mut clients = server.clients().await;
    clients.create_agent("ana", PASSWORD).await;
    (server, clients)
}

/// A `Connect` call on a raw HTTP/2 connection of its own, which stays up when the call ends.
struct RawCall {
    send: h2::SendStream<Bytes>,
    body: h2::RecvStream,
    buffered: Vec<u8>,
    ping: h2::PingPong,
    /// Holds the connection open.
    _connection: h2::client::SendRequest<Bytes>,
    client_id: String,
}

impl RawCall {
    /// Opens the call, signed in with the access token `token`, and reads the `Connected`
    /// greeting.
    async fn open(addr: SocketAddr, token: &str) -> Self {
        let tcp = TcpStream::connect(addr).await.expect("the server accepts");
        let (sender, mut connection) = h2::client::handshake(tcp)
            .await
            .expect("an HTTP/2 handshake");
        let ping = connection.ping_pong().expect("the ping handle is free");
        tokio::spawn(async move {
            let _ = connection.await;
        });
        let mut sender = sender.ready().await.expect("the connection takes a stream");
        let request = http::Request::builder()
            .method("POST")
            .uri(format!("http://{addr}/switchboard.v1.CoreService/Connect"))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .header("authorization", format!("Bearer {token}"))
            .body(())
            .expect("a valid request");
        let (response, send) = sender
            .send_request(request, false)
            .expect("the request goes out");
        let response = tokio::time::timeout(WAIT, response)
            .await
            .expect("the response headers arrive")
            .expect("a response");
        assert_eq!(response.status(), http::StatusCode::OK);
        let mut call = Self {
            send,
            body: response.into_body(),
            buffered: Vec::new(),
            ping,
            _connection: sender,
            client_id: String::new(),
        };
        let greeting = call.next_message().await.expect("the greeting arrives");
        let Some(Frame::Connected(connected)) = greeting.frame else {
            panic!("the first frame is the greeting, not {greeting:?}");
        };
        assert!(!connected.resumed);
        call.client_id = connected.client_id;
        call
    }

    /// Sends bytes as one DATA frame, without ending the request side.
    fn send_raw(&mut self, bytes: Vec<u8>) {
        self.send
            .send_data(Bytes::from(bytes), false)
            .expect("the frame goes out");
    }

    /// The next message from the server, or `None` when its side ended.
    async fn next_message(&mut self) -> Option<pb::ConnectResponse> {
        loop {
            if self.buffered.len() >= 5 {
                assert_eq!(self.buffered[0], 0, "the server does not compress");
                let len = u32::from_be_bytes(self.buffered[1..5].try_into().unwrap()) as usize;
                if self.buffered.len() >= 5 + len {
                    let message: Vec<u8> = self.buffered.drain(..5 + len).skip(5).collect();
                    return Some(
                        pb::ConnectResponse::decode(message.as_slice())
                            .expect("the server's frames decode"),
                    );
                }
            }
            let data = tokio::time::timeout(WAIT, self.body.data())
                .await
                .expect("the server sends or ends");
            match data {
                Some(chunk) => {
                    let chunk = chunk.expect("the response body is readable");
                    let _ = self.body.flow_control().release_capacity(chunk.len());
                    self.buffered.extend_from_slice(&chunk);
                }
                None => {
                    assert!(self.buffered.is_empty(), "the server cut a frame short");
                    return None;
                }
            }
        }
    }

    /// Reads to the end of the server's side and returns its gRPC status.
    async fn status(mut self) -> tonic::Status {
        while let Some(message) = self.next_message().await {
            assert!(
                matches!(message.frame, Some(Frame::Event(_))),
                "only events may come before the end, not {message:?}"
            );
        }
        let trailers = tokio::time::timeout(WAIT, self.body.trailers())
            .await
            .expect("the trailers arrive")
            .expect("the trailers are readable")
            .expect("the stream ends with trailers");
        tonic::Status::from_header_map(&trailers).expect("the trailers carry a grpc-status")
    }

    /// Resets the call with `reason` and returns once the server has read the reset: a ping
    /// sent after it on the same connection came back, so the connection is still up too (and
    /// stays up while `self` lives).
    async fn reset(&mut self, reason: h2::Reason) {
        self.send.send_reset(reason);
        tokio::time::timeout(WAIT, self.ping.ping(h2::Ping::opaque()))
            .await
            .expect("the ping comes back")
            .expect("the connection is still up after the reset");
    }
}

/// A message with the gRPC length prefix: not compressed, then its length.
fn grpc_frame(message: &[u8]) -> Vec<u8> {
    let mut frame = vec![0];
    frame.extend_from_slice(&u32::try_from(message.len()).unwrap().to_be_bytes());
    frame.extend_from_slice(message);
    frame
}

/// Binds `client_id` to Ana's session (taking it over) and logs her in: a session only this
/// client holds, which logs out the moment the client is unregistered.
async fn log_in(clients: &mut Clients, client_id: &str) -> String {
    for service_id in [DEFAULT_PROCESSOR_ID, WORKFLOW] {
        clients.bind_service(client_id, service_id).await;
    }
    let resource_id = clients.prepare("ana", PASSWORD, true).await.resource_id;
    for service_id in [DEFAULT_PROCESSOR_ID, WORKFLOW] {
        clients
            .core
            .bind_resource(pb::BindResourceRequest {
                client_id: client_id.into(),
                service_id: service_id.into(),
                resource_id: resource_id.clone(),
                ..Default::default()
            })
            .await
            .expect("the session binds");
    }
    clients
        .workflow
        .invoke_action(pb::InvokeActionRequest {
            resource_id: resource_id.clone(),
            action: "session.login".into(),
            ..Default::default()
        })
        .await
        .expect("the session logs in");
    assert_eq!(view_state(clients, &resource_id).await, "logged_in");
    resource_id
}

async fn view_state(clients: &mut Clients, resource_id: &str) -> String {
    clients
        .workflow
        .get_session_state(pb::GetSessionStateRequest {
            resource_id: resource_id.into(),
        })
        .await
        .expect("the session exists")
        .into_inner()
        .view_state
}

/// The client is still registered and resumable: its session stayed logged in, and a tonic
/// `Connect` naming it resumes it. The resumed desktop then says goodbye, which unregisters
/// the client and logs the session out.
async fn assert_kept_then_goodbye(
    server: &TestServer,
    clients: &mut Clients,
    client_id: &str,
    resource_id: &str,
    what: &str,
) {
    assert_eq!(
        view_state(clients, resource_id).await,
        "logged_in",
        "{what}: the session logged out, as if the client were gone"
    );
    assert_eq!(
        clients.client_count().await,
        1,
        "{what}: the client is gone"
    );
    let back = ConnectedDesktop::try_open(server, Some(client_id))
        .await
        .unwrap_or_else(|status| panic!("{what}: the client cannot be resumed: {status:?}"));
    assert!(back.greeting.resumed, "{what}: not resumed");
    assert_eq!(back.client_id(), client_id);
    back.close().await;
    assert_gone(server, clients, client_id, resource_id).await;
}

/// The client is unregistered: nothing counts it, its session logged out, and resuming it is
/// NOT_FOUND. Checked right away: a goodbye's OK comes only once the client is gone.
async fn assert_gone(
    server: &TestServer,
    clients: &mut Clients,
    client_id: &str,
    resource_id: &str,
) {
    assert_eq!(
        clients.client_count().await,
        0,
        "the client is still counted"
    );
    assert_eq!(view_state(clients, resource_id).await, "initial");
    let refused = ConnectedDesktop::try_open(server, Some(client_id)).await;
    let status = refused
        .err()
        .expect("a client that said goodbye is not resumed");
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
}

/// One reset: the client keeps its grace period and is resumed.
async fn reset_keeps_the_client(server: &TestServer, clients: &mut Clients, reason: h2::Reason) {
    let what = format!("RST_STREAM {reason:?}");
    let mut call = RawCall::open(server.addr, &server.admin_token().await).await;
    let client_id = call.client_id.clone();
    let resource_id = log_in(clients, &client_id).await;
    call.reset(reason).await;
    let outcome = closed(&client_id, 1).await;
    assert_eq!(
        outcome,
        ["grace period"],
        "{what}: the server decided otherwise"
    );
    assert_kept_then_goodbye(server, clients, &client_id, &resource_id, &what).await;
    drop(call);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_reset_code_starts_the_grace_period() {
    let (server, mut clients) = server().await;
    for reason in reset_codes() {
        reset_keeps_the_client(&server, &mut clients, reason).await;
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_starts_the_grace_period_every_time() {
    let (server, mut clients) = server().await;
    for _ in 0..CANCEL_RUNS {
        reset_keeps_the_client(&server, &mut clients, h2::Reason::CANCEL).await;
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ending_the_requests_without_a_goodbye_starts_the_grace_period() {
    let (server, mut clients) = server().await;
    let mut call = RawCall::open(server.addr, &server.admin_token().await).await;
    let resource_id = log_in(&mut clients, &call.client_id).await;
    let client_id = call.client_id.clone();
    call.send
        .send_data(Bytes::new(), true)
        .expect("the request side ends");
    let status = call.status().await;
    assert_eq!(status.code(), Code::Cancelled, "{status:?}");
    assert!(
        status.message().contains("Goodbye") && status.message().contains("switchboard-client-id"),
        "the status says what to do: {status:?}"
    );
    assert_eq!(closed(&client_id, 1).await, ["grace period"]);
    assert_kept_then_goodbye(
        &server,
        &mut clients,
        &client_id,
        &resource_id,
        "half-close",
    )
    .await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_goodbye_frame_unregisters_the_client_and_ends_the_stream_ok() {
    let (server, mut clients) = server().await;
    let mut call = RawCall::open(server.addr, &server.admin_token().await).await;
    let resource_id = log_in(&mut clients, &call.client_id).await;
    let client_id = call.client_id.clone();
    // A request, then the goodbye, in one DATA frame; the request side stays open.
    let mut bytes = grpc_frame(
        &pb::ConnectRequest {
            request_id: "r1".into(),
            request: Some(Req::GetServerStatus(pb::GetServerStatusRequest {})),
        }
        .encode_to_vec(),
    );
    bytes.extend(grpc_frame(
        &pb::ConnectRequest {
            request_id: String::new(),
            request: Some(Req::Goodbye(pb::Goodbye {})),
        }
        .encode_to_vec(),
    ));
    call.send_raw(bytes);
    let answer = loop {
        let message = call.next_message().await.expect("the request is answered");
        if !matches!(message.frame, Some(Frame::Event(_))) {
            break message;
        }
    };
    assert_eq!(answer.request_id, "r1");
    assert!(
        matches!(answer.frame, Some(Frame::GetServerStatus(_))),
        "{answer:?}"
    );
    let status = call.status().await;
    assert_eq!(status.code(), Code::Ok, "{status:?}");
    assert_gone(&server, &mut clients, &client_id, &resource_id).await;
    assert_eq!(closed(&client_id, 1).await, ["unregistered"]);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_frame_ends_the_stream_with_invalid_argument() {
    let (server, mut clients) = server().await;
    let mut call = RawCall::open(server.addr, &server.admin_token().await).await;
    let resource_id = log_in(&mut clients, &call.client_id).await;
    let client_id = call.client_id.clone();
    // A varint that never ends: no ConnectRequest decodes from it.
    call.send_raw(grpc_frame(&[0xff, 0xff, 0xff]));
    let status = call.status().await;
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().contains("could not be decoded"),
        "{status:?}"
    );
    // A desktop that sends garbage is broken, not gone: it keeps its grace period.
    assert_eq!(closed(&client_id, 1).await, ["grace period"]);
    assert_kept_then_goodbye(
        &server,
        &mut clients,
        &client_id,
        &resource_id,
        "malformed frame",
    )
    .await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tonic_client_that_drops_its_call_keeps_its_client() {
    let (server, mut clients) = server().await;
    let desktop = ConnectedDesktop::open(&server, None).await;
    let client_id = desktop.client_id().to_owned();
    let resource_id = log_in(&mut clients, &client_id).await;
    desktop.vanish();
    assert_eq!(closed(&client_id, 1).await, ["grace period"]);
    assert_kept_then_goodbye(
        &server,
        &mut clients,
        &client_id,
        &resource_id,
        "dropped call",
    )
    .await;
    server.stop().await;
}

/// The server's `connect stream closed` events, as (client id, what became of the client).
#[derive(Default)]
struct Closings {
    seen: Mutex<Vec<(String, String)>>,
    changed: Notify,
}

fn closings() -> &'static Closings {
    static CLOSINGS: OnceLock<&'static Closings> = OnceLock::new();
    CLOSINGS.get_or_init(|| {
        let closings: &'static Closings = Box::leak(Box::default());
        let layer = CloseLog(closings)
            .with_filter(Targets::new().with_target("switchboard::api::connect", Level::DEBUG));
        tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer))
            .expect("no other subscriber in this test binary");
        closings
    })
}

/// What became of `client_id` at each of its first `count` stream closes, once the server
/// has closed that many.
async fn closed(client_id: &str, count: usize) -> Vec<String> {
    let closings = closings();
    let wait = async {
        loop {
            let changed = closings.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let outcomes: Vec<String> = closings
                .seen
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .iter()
                .filter(|(id, _)| id == client_id)
                .map(|(_, outcome)| outcome.clone())
                .collect();
            if outcomes.len() >= count {
                return outcomes;
            }
            changed.await;
        }
    };
    tokio::time::timeout(WAIT, wait)
        .await
        .unwrap_or_else(|_| panic!("the server never closed the stream of {client_id}"))
}

struct CloseLog(&'static Closings);

impl<S: Subscriber> Layer<S> for CloseLog {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let mut fields = CloseFields::default();
        event.record(&mut fields);
        if fields.message == "connect stream closed" {
            self.0
                .seen
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push((fields.client_id, fields.client));
            self.0.changed.notify_waiters();
        }
    }
}

#[derive(Default)]
struct CloseFields {
    message: String,
    client_id: String,
    client: String,
}

impl Visit for CloseFields {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "client" => self.client = value.to_owned(),
            _ => self.record_debug(field, &value),
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        match field.name() {
            "message" => self.message = format!("{value:?}"),
            "client_id" => self.client_id = format!("{value:?}"),
            _ => {}
        }
    }
}
