//! Black-box robustness: the real server binary, over real HTTP/2 from a raw `h2` client, is
//! sent malformed and hostile gRPC bodies on every method of its descriptor sets (switchboard,
//! health, reflection; unary and streaming alike): length prefixes longer or shorter than the
//! message, the compressed flag without `grpc-encoding`, an encoding it does not support,
//! random bytes, frames cut short, empty bodies, two messages on a unary call, the wrong
//! content-type, and well-formed messages made up from the descriptors, with huge strings near
//! the size limit and huge repeated and map fields.
//!
//! Every answer must carry a `grpc-status` (or, for a content-type that is not gRPC, be HTTP
//! 415); none may be `UNKNOWN`; `INTERNAL` only for a body that does not decode, with one of the
//! decoder's own messages (gRPC prescribes `INTERNAL` there); an `INVALID_ARGUMENT` of a
//! well-formed message names its field; a call without a token is `UNAUTHENTICATED` whatever
//! its body. Every violation is collected, and the test fails listing them all.
//!
//! Then the server must still serve (health `SERVING`, a normal call), have logged no panic,
//! stop cleanly on SIGTERM, and restart on its data dir with the agent and MRD made before the
//! barrage intact. The cases come from a PRNG seeded per method, so every run sends the same
//! bytes.

mod common;
#[path = "common/random_messages.rs"]
mod random_messages;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use common::auth::{self, ADMIN, Who};
use common::process::ServerProcess;
use common::{DEFAULT_PROCESSOR_ID, WORKFLOW};
use random_messages::{Generator, Method, Rng, Schema, Twist, frame};
use switchboard::auth::{Access, access};
use switchboard::pb;
use switchboard::pb::admin_service_client::AdminServiceClient;
use tokio::net::TcpStream;
use tonic::Code;
use tonic::codegen::{Bytes, http};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_types::StatusExt;

const PASSWORD: &str = "robust-Pw-42";
/// Made before the barrage; nothing the barrage sends names them, and they must survive it.
const KEPT_AGENT: &str = "ana";
const KEPT_MRD: &str = "voice";
/// Ids the made-up messages use, so that some requests reach the rules behind "not found".
const FODDER_AGENT: &str = "fodder";
const FODDER_MRD: &str = "fodder-mrd";
/// A well-formed JWT that this server never signed.
const FORGED_TOKEN: &str = "eyJhbGciOiJFZERTQSJ9.e30.c2lnbmF0dXJl";
/// tonic's default limit on a decoded message.
const MESSAGE_LIMIT: usize = 4 * 1024 * 1024;
/// Bounds the wait for any answer: a failure guard, never a pass condition.
const WAIT: Duration = Duration::from_secs(20);
/// How long a streaming answer may stay quiet before the test stops listening and counts it
/// as an open stream (a watch with nothing to send). Only decides when to stop reading.
const QUIET: Duration = Duration::from_millis(200);
/// Made-up well-formed messages per method.
const RANDOM_MESSAGES: usize = 8;
/// Random byte strings (framed and not) per method.
const RANDOM_BODIES: usize = 4;

/// The INTERNAL messages of tonic's decoder for a body that does not decode: a protobuf
/// decode error, the compressed flag without an encoding (which gRPC's compression spec says
/// MUST be INTERNAL), an invalid flag, and a frame cut off by the end of the body (tonic says
/// "missing request message" when nothing of the message came after its length prefix).
const DECODE_FAILURES: [&str; 5] = [
    "failed to decode Protobuf message",
    "protocol error: received message with compressed-flag but no grpc-encoding was specified",
    "protocol error: received message with invalid compression flag",
    "Unexpected EOF decoding stream.",
    "Missing request message.",
];

/// What a case's body is, which decides the answers it may get.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Body {
    /// Every frame holds a well-formed message of the request type.
    WellFormed,
    /// Some frame does not decode, or the framing is broken.
    Malformed,
    /// Random bytes, or a frame cut short by a lying prefix: may happen to decode.
    Random,
    /// A frame whose length prefix is over the size limit.
    OverLimit,
    /// Compressed with an encoding the server does not offer.
    UnsupportedEncoding,
    /// A content-type that is not gRPC.
    NotGrpc,
    /// No message where the method takes exactly one.
    NoMessage,
    /// Two messages where the method takes one: tonic answers the first and decodes the
    /// rest, so only the general rules apply.
    TwoMessages,
}

struct Case {
    name: String,
    body: Body,
    bytes: Vec<u8>,
    content_type: &'static str,
    encoding: Option<&'static str>,
    /// `grpc-timeout`, when the case sets one.
    timeout: Option<&'static str>,
}

impl Case {
    fn new(name: impl Into<String>, body: Body, bytes: Vec<u8>) -> Self {
        Self {
            name: name.into(),
            body,
            bytes,
            content_type: "application/grpc",
            encoding: None,
            timeout: None,
        }
    }
}

/// The cases for `method`, always the same bytes for the same method.
fn cases(schema: &Schema, method: &Method) -> Vec<Case> {
    let strings = [
        FODDER_AGENT,
        FODDER_MRD,
        "fodder-queue",
        "fodder-reason",
        DEFAULT_PROCESSOR_ID,
        WORKFLOW,
        "00000000-0000-0000-0000-000000000000",
        "switchboard.v1.CoreService",
        "grpc.health.v1.Health",
    ];
    let mut rng = Rng::seeded_by(&method.path, 13);
    let make = |twist: Twist, rng: &mut Rng| {
        Generator::new(schema, rng, &strings).message(&method.input, twist)
    };
    let mut out = Vec::new();
    let well_formed =
        |name: String, message: Vec<u8>| Case::new(name, Body::WellFormed, frame(0, &message));

    out.push(well_formed("empty message".into(), Vec::new()));
    for i in 0..RANDOM_MESSAGES {
        let message = make(Twist::None, &mut rng).expect("no twist");
        out.push(well_formed(format!("random message {i}"), message));
    }
    let huge = [
        ("huge string", Twist::HugeString(MESSAGE_LIMIT - 64 * 1024)),
        (
            "huge repeated field",
            Twist::HugeRepeated(MESSAGE_LIMIT - 128 * 1024),
        ),
    ];
    for (name, twist) in huge {
        if let Some(message) = make(twist, &mut rng) {
            // The other fields' values may push it past the limit: then it is refused as such.
            let body = if message.len() > MESSAGE_LIMIT {
                Body::OverLimit
            } else {
                Body::WellFormed
            };
            out.push(Case::new(name, body, frame(0, &message)));
        }
    }
    let message = make(Twist::None, &mut rng).expect("no twist");
    let mut unknown = message.clone();
    // Field numbers the contract does not use: varint, length-delimited, fixed32.
    unknown.extend_from_slice(&[0xf8, 0x3e, 0x01, 0xfa, 0x3e, 0x02, b'h', b'i', 0xfd, 0x3e]);
    unknown.extend_from_slice(&[1, 2, 3, 4]);
    out.push(well_formed("unknown fields".into(), unknown));

    if let Some(message) = make(Twist::BadUtf8, &mut rng) {
        out.push(Case::new(
            "string not UTF-8",
            Body::Malformed,
            frame(0, &message),
        ));
    }
    if let Some(message) = make(Twist::WrongWireType, &mut rng) {
        out.push(Case::new(
            "wrong wire type",
            Body::Malformed,
            frame(0, &message),
        ));
    }

    // Length prefixes that lie.
    let mut longer = frame(0, &message);
    longer[1..5].copy_from_slice(&(message.len() as u32 + 10).to_be_bytes());
    out.push(Case::new(
        "length prefix longer than the body",
        Body::Malformed,
        longer,
    ));
    if !message.is_empty() {
        let mut shorter = frame(0, &message);
        shorter[1..5].copy_from_slice(&(message.len() as u32 / 2).to_be_bytes());
        out.push(Case::new(
            "length prefix shorter than the body",
            Body::Random,
            shorter,
        ));
    }
    let mut over = vec![0];
    over.extend_from_slice(&(MESSAGE_LIMIT as u32 + 1).to_be_bytes());
    over.extend_from_slice(&message);
    out.push(Case::new(
        "length prefix over the limit",
        Body::OverLimit,
        over,
    ));
    let mut max = vec![0, 0xff, 0xff, 0xff, 0xff];
    max.extend_from_slice(&message);
    out.push(Case::new("length prefix 4 GiB", Body::OverLimit, max));
    out.push(Case::new(
        "frame header cut short",
        Body::Malformed,
        vec![0, 0, 0],
    ));
    let mut cut = frame(0, &message);
    cut.truncate(5 + message.len() / 2);
    if message.len() >= 2 {
        out.push(Case::new("frame cut short", Body::Malformed, cut));
    }

    // Compression flags.
    out.push(Case::new(
        "compressed flag without grpc-encoding",
        Body::Malformed,
        frame(1, &message),
    ));
    out.push(Case::new(
        "compression flag 2",
        Body::Malformed,
        frame(2, &message),
    ));
    out.push(Case::new(
        "compression flag 255",
        Body::Malformed,
        frame(255, &message),
    ));
    for encoding in ["br", "gzip", "identity;q=1"] {
        out.push(Case {
            encoding: Some(encoding),
            ..Case::new(
                format!("grpc-encoding {encoding}"),
                Body::UnsupportedEncoding,
                frame(1, &message),
            )
        });
    }

    // Random bytes, framed and not.
    for i in 0..RANDOM_BODIES {
        let len = rng.below(64) + 1;
        let bytes = rng.bytes(len);
        out.push(Case::new(
            format!("random framed bytes {i}"),
            Body::Random,
            frame(0, &bytes),
        ));
        let len = rng.below(64) + 1;
        out.push(Case::new(
            format!("random bytes {i}"),
            Body::Random,
            rng.bytes(len),
        ));
    }

    // How many messages.
    if !method.client_streaming {
        out.push(Case::new("no message", Body::NoMessage, Vec::new()));
        let mut two = frame(0, &message);
        two.extend_from_slice(&frame(0, &message));
        out.push(Case::new("two messages", Body::TwoMessages, two));
    } else {
        let mut many = Vec::new();
        for _ in 0..5 {
            let message = make(Twist::None, &mut rng).expect("no twist");
            many.extend_from_slice(&frame(0, &message));
        }
        out.push(Case::new("five messages", Body::WellFormed, many.clone()));
        many.extend_from_slice(&frame(0, &[0xff, 0xff, 0xff]));
        out.push(Case::new(
            "messages, then one that does not decode",
            Body::Malformed,
            many,
        ));
        out.push(Case::new("no message", Body::WellFormed, Vec::new()));
    }

    // Deadlines: one that has passed on arrival, and values that are not a timeout.
    for timeout in ["1n", "0S", "99999999H", "soon", "-5m"] {
        out.push(Case {
            timeout: Some(timeout),
            ..Case::new(
                format!("grpc-timeout {timeout}"),
                Body::WellFormed,
                frame(0, &message),
            )
        });
    }

    for content_type in ["application/json", "text/plain"] {
        out.push(Case {
            content_type,
            ..Case::new(
                format!("content-type {content_type}"),
                Body::NotGrpc,
                frame(0, &message),
            )
        });
    }
    out
}

/// What the server answered to one call.
enum Answer {
    /// A gRPC status, in the trailers or a trailers-only response.
    Status {
        status: tonic::Status,
        messages: usize,
    },
    /// A streaming call still open when the test stopped listening: the server took it.
    Open { messages: usize },
    /// An HTTP response that carries no gRPC status.
    NoStatus { http: http::StatusCode },
    /// No answer: a reset, a broken connection, or nothing within `WAIT`.
    Failed(String),
}

impl Answer {
    /// The status code's name, or what came instead.
    fn outcome(&self) -> String {
        match self {
            Self::Status { status, .. } => format!("{:?}", status.code()),
            Self::Open { .. } => "open stream".into(),
            Self::NoStatus { http } => format!("HTTP {http}"),
            Self::Failed(_) => "no answer".into(),
        }
    }
}

impl fmt::Display for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Status { status, messages } => write!(
                f,
                "{:?} {:?} after {messages} message(s)",
                status.code(),
                status.message()
            ),
            Self::Open { messages } => write!(f, "open after {messages} message(s)"),
            Self::NoStatus { http } => write!(f, "HTTP {http} without grpc-status"),
            Self::Failed(why) => write!(f, "no answer: {why}"),
        }
    }
}

/// One HTTP/2 connection, made again when the server closed the last one.
struct Connection {
    addr: SocketAddr,
    token: Option<String>,
    sender: Option<h2::client::SendRequest<Bytes>>,
}

impl Connection {
    fn new(addr: SocketAddr, token: Option<String>) -> Self {
        Self {
            addr,
            token,
            sender: None,
        }
    }

    async fn sender(&mut self) -> Result<h2::client::SendRequest<Bytes>, String> {
        if let Some(sender) = self.sender.take()
            && let Ok(ready) = sender.ready().await
        {
            self.sender = Some(ready.clone());
            return Ok(ready);
        }
        let tcp = TcpStream::connect(self.addr)
            .await
            .map_err(|e| format!("connecting: {e}"))?;
        let (sender, connection) = h2::client::Builder::new()
            .max_frame_size(1 << 20)
            .initial_window_size(1 << 20)
            .handshake(tcp)
            .await
            .map_err(|e| format!("the HTTP/2 handshake: {e}"))?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        let ready = sender.ready().await.map_err(|e| format!("a stream: {e}"))?;
        self.sender = Some(ready.clone());
        Ok(ready)
    }

    async fn call(&mut self, method: &Method, case: &Case) -> Answer {
        match tokio::time::timeout(WAIT, self.try_call(method, case)).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(why)) => {
                self.sender = None;
                Answer::Failed(why)
            }
            Err(_) => {
                self.sender = None;
                Answer::Failed(format!("nothing within {WAIT:?}"))
            }
        }
    }

    async fn try_call(&mut self, method: &Method, case: &Case) -> Result<Answer, String> {
        let mut sender = self.sender().await?;
        let mut request = http::Request::builder()
            .method("POST")
            .uri(format!("http://{}{}", self.addr, method.path))
            .header("content-type", case.content_type)
            .header("te", "trailers");
        if let Some(token) = &self.token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        if let Some(encoding) = case.encoding {
            request = request.header("grpc-encoding", encoding);
        }
        if let Some(timeout) = case.timeout {
            request = request.header("grpc-timeout", timeout);
        }
        let request = request.body(()).expect("a valid request");
        let (response, mut send) = sender
            .send_request(request, case.bytes.is_empty())
            .map_err(|e| format!("sending the request: {e}"))?;
        // The server may have answered (and closed the stream) before the body goes out:
        // its answer is still read below.
        if !case.bytes.is_empty() {
            let _ = send.send_data(Bytes::from(case.bytes.clone()), true);
        }
        let response = response.await.map_err(|e| format!("the response: {e}"))?;
        if let Some(status) = tonic::Status::from_header_map(response.headers()) {
            return Ok(Answer::Status {
                status,
                messages: 0,
            });
        }
        let http = response.status();
        let mut body = response.into_body();
        let streams = method.server_streaming || method.client_streaming;
        let mut bytes = 0;
        let mut messages = 0;
        let mut pending = Vec::new();
        loop {
            let chunk = if streams {
                match tokio::time::timeout(QUIET, body.data()).await {
                    Ok(chunk) => chunk,
                    Err(_) => {
                        send.send_reset(h2::Reason::CANCEL);
                        return Ok(Answer::Open { messages });
                    }
                }
            } else {
                body.data().await
            };
            let Some(chunk) = chunk else { break };
            let chunk = chunk.map_err(|e| format!("the response body: {e}"))?;
            let _ = body.flow_control().release_capacity(chunk.len());
            bytes += chunk.len();
            pending.extend_from_slice(&chunk);
            while pending.len() >= 5 {
                let len = u32::from_be_bytes(pending[1..5].try_into().unwrap()) as usize;
                if pending.len() < 5 + len {
                    break;
                }
                pending.drain(..5 + len);
                messages += 1;
            }
            if streams && messages > 50 {
                send.send_reset(h2::Reason::CANCEL);
                return Ok(Answer::Open { messages });
            }
        }
        let trailers = body
            .trailers()
            .await
            .map_err(|e| format!("the trailers: {e}"))?;
        match trailers.as_ref().and_then(tonic::Status::from_header_map) {
            Some(status) => Ok(Answer::Status { status, messages }),
            None if bytes == 0 => Ok(Answer::NoStatus { http }),
            None => Err(format!("{bytes} bytes, then no trailers with a status")),
        }
    }
}

/// Everything wrong with `answer` to `case` on `method`; `unsigned` says how the call lacked
/// a valid token ("no token", "a forged token"), `None` for a signed-in call.
fn violations(
    method: &Method,
    case: &Case,
    unsigned: Option<&str>,
    answer: &Answer,
) -> Vec<String> {
    let signed = unsigned.is_none();
    let mut found = Vec::new();
    let mut violation = |what: &str| {
        found.push(format!(
            "{} [{}{}]: {what}: {answer}",
            method.path,
            case.name,
            unsigned.map(|how| format!(", {how}")).unwrap_or_default()
        ))
    };
    let public = matches!(access(&method.path), Some(Access::Public));
    // tonic-reflection ends its stream OK on a request it cannot decode, and its errors carry
    // no BadRequest: those two rules hold for this server's own services only.
    let ours = method.path.starts_with("/switchboard.v1.");
    let status = match answer {
        Answer::Status { status, .. } => status,
        Answer::Open { .. } if method.server_streaming || method.client_streaming => {
            if !signed && !public {
                violation("a call without a token is UNAUTHENTICATED");
            } else if matches!(
                case.body,
                Body::Malformed | Body::OverLimit | Body::NoMessage
            ) {
                violation("a stream took a body that is not a well-formed request");
            }
            return found;
        }
        Answer::NoStatus { http } if case.body == Body::NotGrpc => {
            if *http != http::StatusCode::UNSUPPORTED_MEDIA_TYPE {
                violation("a content-type that is not gRPC is HTTP 415");
            }
            return found;
        }
        _ => {
            violation("no grpc-status");
            return found;
        }
    };
    if !signed && !public {
        if status.code() != Code::Unauthenticated {
            violation("a call without a token is UNAUTHENTICATED");
        }
        return found;
    }
    match status.code() {
        Code::Unknown => violation("UNKNOWN"),
        Code::Internal => {
            let decoder = DECODE_FAILURES
                .iter()
                .any(|prefix| status.message().starts_with(prefix));
            if !matches!(case.body, Body::Malformed | Body::Random) || !decoder {
                violation("INTERNAL for something other than a body that does not decode");
            }
        }
        Code::InvalidArgument if ours && case.body == Body::WellFormed => {
            let named = status.get_details_bad_request().is_some_and(|bad| {
                matches!(bad.field_violations.as_slice(), [one]
                    if status.message() == format!("{}: {}", one.field, one.description))
            });
            if !named {
                violation("INVALID_ARGUMENT without a BadRequest naming the field");
            }
        }
        Code::Ok
            if ours
                && matches!(
                    case.body,
                    Body::Malformed | Body::OverLimit | Body::NoMessage
                ) =>
        {
            violation("OK for a body that is not a well-formed request");
        }
        _ => {}
    }
    let expected: &[Code] = match case.body {
        // tonic-reflection ends OK here too (see `ours`). OUT_OF_RANGE would tell a watch to
        // relist: an oversized request is RESOURCE_EXHAUSTED.
        Body::OverLimit if ours => &[Code::ResourceExhausted],
        Body::UnsupportedEncoding => &[Code::Unimplemented],
        // gRPC's status table: a request cardinality violation is UNIMPLEMENTED.
        Body::NoMessage => &[Code::Unimplemented],
        _ => &[],
    };
    if !expected.is_empty() && !expected.contains(&status.code()) {
        violation(&format!("expected one of {expected:?}"));
    }
    found
}

/// The principal each method is called as: the admin where allowed, else an agent.
fn caller_is_agent(path: &str) -> bool {
    match access(path) {
        Some(Access::Roles(roles)) => !roles.iter().any(|r| r.wire_name() == "ROLE_ADMIN"),
        _ => false,
    }
}

async fn make_kept_data(admin: &auth::Channel) {
    let mut directory = AdminServiceClient::new(admin.clone());
    for (agent_id, name) in [(KEPT_AGENT, "Ana Kept"), (FODDER_AGENT, "Fodder")] {
        directory
            .upsert_agent(pb::UpsertAgentRequest {
                agent: Some(pb::Agent {
                    agent_id: agent_id.into(),
                    display_name: name.into(),
                    password: PASSWORD.into(),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await
            .expect("the agent is created");
    }
    for name in [KEPT_MRD, FODDER_MRD] {
        directory
            .upsert_mrd(pb::UpsertMrdRequest {
                mrd: Some(pb::Mrd {
                    name: name.into(),
                    max_tasks: 3,
                    offer_timeout_seconds: 30,
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await
            .expect("the MRD is created");
    }
}

/// The agent and MRD made before the barrage, as the server has them now.
async fn kept_data(admin: &auth::Channel) -> (pb::Agent, pb::Mrd) {
    let mut directory = AdminServiceClient::new(admin.clone());
    let agent = directory
        .get_agent(pb::GetAgentRequest {
            agent_id: KEPT_AGENT.into(),
        })
        .await
        .expect("the kept agent is there")
        .into_inner()
        .agent
        .expect("an agent");
    let mrd = directory
        .list_mrds(pb::ListMrdsRequest::default())
        .await
        .expect("the MRDs are listed")
        .into_inner()
        .mrds
        .into_iter()
        .find(|mrd| mrd.name == KEPT_MRD)
        .expect("the kept MRD is there");
    (agent, mrd)
}

async fn serving(server: &ServerProcess) -> ServingStatus {
    let answer = HealthClient::new(server.raw_channel().await)
        .check(tonic_health::pb::HealthCheckRequest::default())
        .await
        .expect("health answers")
        .into_inner();
    answer.status()
}

/// How each kind of body was answered on this server's own methods, signed in.
type Tally = BTreeMap<(Body, String), usize>;

/// Every case on every method, as the admin or (where only agents may call) an agent: the
/// violations, the number of calls, and the tally.
async fn signed_barrage(
    methods: &[Method],
    cases: &[Vec<Case>],
    as_admin: &mut Connection,
    as_agent: &mut Connection,
) -> (Vec<String>, usize, Tally) {
    let mut found = Vec::new();
    let mut calls = 0;
    let mut tally = Tally::new();
    for (method, cases) in methods.iter().zip(cases) {
        let caller = if caller_is_agent(&method.path) {
            &mut *as_agent
        } else {
            &mut *as_admin
        };
        for case in cases {
            let answer = caller.call(method, case).await;
            found.extend(violations(method, case, None, &answer));
            calls += 1;
            if method.path.starts_with("/switchboard.v1.") {
                *tally.entry((case.body, answer.outcome())).or_default() += 1;
            }
        }
    }
    (found, calls, tally)
}

/// Every fourth case but the huge ones on every method, without a token and with a forged
/// one (each from another offset, so that between them they send every kind of body).
async fn unsigned_barrage(
    methods: &[Method],
    cases: &[Vec<Case>],
    nobody: &mut Connection,
    forged: &mut Connection,
) -> (Vec<String>, usize) {
    let mut found = Vec::new();
    let mut calls = 0;
    for (method, cases) in methods.iter().zip(cases) {
        let unsigned = [("no token", &mut *nobody), ("a forged token", &mut *forged)];
        for (i, (how, connection)) in unsigned.into_iter().enumerate() {
            let some = cases.iter().filter(|c| !c.name.starts_with("huge"));
            for case in some.skip(2 * i).step_by(4) {
                let answer = connection.call(method, case).await;
                found.extend(violations(method, case, Some(how), &answer));
                calls += 1;
            }
        }
    }
    (found, calls)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_hostile_bodies_on_every_method_get_proper_statuses_and_break_nothing() {
    let data = tempfile::tempdir().expect("a temporary directory");
    let server = ServerProcess::start_durable(data.path(), &[]).await;
    let admin = server.channel().await;
    make_kept_data(&admin).await;
    let before = kept_data(&admin).await;

    let raw = server.raw_channel().await;
    let admin_token = auth::sign_in(&raw, Who::Account(ADMIN), &server.admin_secret()).await;
    let agent_token = auth::sign_in(&raw, Who::Agent(KEPT_AGENT), PASSWORD).await;
    let mut as_admin = Connection::new(server.addr(), Some(admin_token));
    let mut as_agent = Connection::new(server.addr(), Some(agent_token));
    let mut nobody = Connection::new(server.addr(), None);
    let mut forged = Connection::new(server.addr(), Some(FORGED_TOKEN.into()));

    let (schema, methods) = Schema::read(&[
        pb::FILE_DESCRIPTOR_SET,
        tonic_health::pb::FILE_DESCRIPTOR_SET,
        tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
        tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
    ]);
    assert!(methods.len() > 50, "only {} methods read", methods.len());
    assert!(methods.iter().any(|m| m.path.ends_with("/Connect")));

    let started = std::time::Instant::now();
    let cases: Vec<Vec<Case>> = methods.iter().map(|m| cases(&schema, m)).collect();
    let made = started.elapsed();
    // Signed in, and without a valid token, side by side on their own connections.
    let (signed, unsigned) = tokio::join!(
        signed_barrage(&methods, &cases, &mut as_admin, &mut as_agent),
        unsigned_barrage(&methods, &cases, &mut nobody, &mut forged),
    );
    // Figures for whoever reads the output; nothing depends on them.
    eprintln!(
        "cases made in {made:?}, sent in {:?}",
        started.elapsed() - made
    );
    let (mut found, signed_calls, tally) = signed;
    let (unsigned_found, unsigned_calls) = unsigned;
    found.extend(unsigned_found);
    let calls = signed_calls + unsigned_calls;
    eprintln!(
        "{calls} calls on {} methods; signed-in answers on switchboard.v1:",
        methods.len()
    );
    for ((body, outcome), count) in &tally {
        eprintln!("  {body:?} -> {outcome}: {count}");
    }
    // The made-up requests got past decoding to the rules, both ways.
    let well_formed = |outcome: &str| tally.get(&(Body::WellFormed, outcome.into())).copied();
    for outcome in ["Ok", "InvalidArgument", "NotFound"] {
        assert!(
            well_formed(outcome).unwrap_or(0) >= 10,
            "too few well-formed requests answered {outcome}: {tally:?}"
        );
    }

    // Still serving, and a normal call works.
    assert_eq!(serving(&server).await, ServingStatus::Serving);
    assert_eq!(
        kept_data(&admin).await,
        before,
        "the barrage changed kept data"
    );
    let panics: Vec<String> = server
        .logs()
        .into_iter()
        .filter(|line| line.contains("panicked"))
        .collect();
    if !panics.is_empty() {
        found.push(format!("the server panicked:\n{}", panics.join("\n")));
    }
    assert!(
        found.is_empty(),
        "{} violation(s) in {calls} calls:\n{}",
        found.len(),
        found.join("\n")
    );

    assert!(server.terminate().await.success(), "a graceful stop");
    let server = ServerProcess::start_durable(data.path(), &[]).await;
    let admin = server.channel().await;
    assert_eq!(serving(&server).await, ServingStatus::Serving);
    assert_eq!(
        kept_data(&admin).await,
        before,
        "the restart lost kept data"
    );
    assert!(server.terminate().await.success(), "a graceful stop");
}
