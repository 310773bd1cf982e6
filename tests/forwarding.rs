//! The forwarding edge, over real sockets: two ordinary single-node servers, a leader A and a
//! node B with the forwarding layer in front, its route and applied revision driven by the
//! test. B's data directory holds a copy of A's signing key, so a token A issued is good for a
//! read B serves itself. The two do not share a journal: what B answers from its own state
//! is told apart from what A answers.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::auth::try_sign_in;
use common::desktop::ConnectedDesktop;
use common::feed_desktop::FeedDesktop;
use common::routing_setup::RoutingSetup;
use common::{ADMIN, Channel, TestServer, Who, assert_status, sign_in, signed};
use switchboard::cluster::{ClientTls, ForwardLayer, Route};
use switchboard::config::ServerConfig;
use switchboard::pb;
use switchboard::pb::admin_service_client::AdminServiceClient;
use switchboard::pb::connect_request::Request as Req;
use switchboard::pb::connect_response::Frame;
use switchboard::pb::core_service_client::CoreServiceClient;
use switchboard::pb::routing_event::Event as Ev;
use switchboard::pb::routing_service_client::RoutingServiceClient;
use switchboard::server::Server;
use tempfile::TempDir;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tonic::Code;
use tonic::transport::Endpoint;

const PASSWORD: &str = "forward-Pw-1";

/// Bounds every wait on a condition, so that a broken edge fails the test instead of hanging
/// it; never what a test's outcome depends on.
const WAIT: Duration = Duration::from_secs(20);

/// A node with the forwarding layer in front, and the handles that drive it.
struct Node {
    addr: SocketAddr,
    server: Option<Server>,
    route: watch::Sender<Route>,
    applied: watch::Sender<u64>,
    layer: ForwardLayer,
    _dir: TempDir,
}

impl Node {
    /// Starts a node named `NodeB` (so its server id is not A's) whose route is `route`,
    /// with A's signing key copied from `key_from` when given, TLS towards the leader when
    /// `tls` says so, and its forwarding layer as `tune` sets it.
    async fn start(
        route: Route,
        key_from: Option<&Path>,
        tls: Option<ClientTls>,
        tune: impl FnOnce(ForwardLayer) -> ForwardLayer,
    ) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        if let Some(leader_dir) = key_from {
            std::fs::copy(
                leader_dir.join("signing-key.pk8"),
                dir.path().join("signing-key.pk8"),
            )
            .expect("the leader's signing key is copied");
        }
        let (route, route_rx) = watch::channel(route);
        let (applied, applied_rx) = watch::channel(0);
        let layer = tune(
            ForwardLayer::new(route_rx, applied_rx, tls)
                .with_node_name("node-b")
                .expect("a valid node name"),
        );
        let config = ServerConfig {
            listen: "127.0.0.1:0".parse().expect("a valid address"),
            data_dir: dir.path().to_owned(),
            in_memory: false,
            processor_name: "NodeB".into(),
            bootstrap_secret_file: Some(dir.path().join("bootstrap-admin.secret")),
            ..ServerConfig::in_memory()
        };
        let server = Server::start_with_forwarding(config, layer.clone())
            .await
            .expect("node B starts");
        Self {
            addr: server.local_addr(),
            server: Some(server),
            route,
            applied,
            layer,
            _dir: dir,
        }
    }

    async fn raw_channel(&self) -> tonic::transport::Channel {
        connect(self.addr).await
    }

    /// A connection to B whose every call carries `token`.
    async fn channel(&self, token: &str) -> Channel {
        signed(self.raw_channel().await, token)
    }

    async fn stop(mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown().await.expect("node B stops cleanly");
        }
    }
}

/// Leader A (durable, so that its signing key is a file) and node B forwarding to it.
struct Pair {
    a: TestServer,
    b: Node,
    /// An access token of A's first admin.
    token: String,
    _a_dir: TempDir,
}

impl Pair {
    async fn start() -> Self {
        Self::start_with(ServerConfig::in_memory(), |layer| {
            layer.with_revision_wait(WAIT)
        })
        .await
    }

    /// A started with `a_config` (made durable), B's layer as `tune` sets it.
    async fn start_with(
        a_config: ServerConfig,
        tune: impl FnOnce(ForwardLayer) -> ForwardLayer,
    ) -> Self {
        let a_dir = tempfile::tempdir().expect("a temporary directory");
        let a = TestServer::start_with(ServerConfig {
            data_dir: a_dir.path().to_owned(),
            in_memory: false,
            ..a_config
        })
        .await;
        let b = Node::start(
            Route::Leader(a.addr.to_string()),
            Some(a_dir.path()),
            None,
            tune,
        )
        .await;
        let token = a.admin_token().await;
        Self {
            a,
            b,
            token,
            _a_dir: a_dir,
        }
    }

    async fn admin_on_a(&self) -> AdminServiceClient<Channel> {
        AdminServiceClient::new(signed(self.a.raw_channel().await, &self.token))
    }

    async fn admin_on_b(&self) -> AdminServiceClient<Channel> {
        AdminServiceClient::new(self.b.channel(&self.token).await)
    }

    async fn core_on_a(&self) -> CoreServiceClient<Channel> {
        CoreServiceClient::new(signed(self.a.raw_channel().await, &self.token))
    }

    async fn core_on_b(&self) -> CoreServiceClient<Channel> {
        CoreServiceClient::new(self.b.channel(&self.token).await)
    }

    async fn stop(self) {
        self.b.stop().await;
        self.a.stop().await;
    }
}

async fn connect(addr: SocketAddr) -> tonic::transport::Channel {
    Endpoint::from_shared(format!("http://{addr}"))
        .expect("a valid endpoint")
        .connect()
        .await
        .expect("the server accepts connections")
}

fn agent(agent_id: &str) -> pb::UpsertAgentRequest {
    pb::UpsertAgentRequest {
        agent: Some(pb::Agent {
            agent_id: agent_id.into(),
            display_name: format!("Agent {agent_id}"),
            password: PASSWORD.into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Whether `admin`'s server knows agent `agent_id`.
async fn knows(admin: &mut AdminServiceClient<Channel>, agent_id: &str) -> bool {
    match admin
        .get_agent(pb::GetAgentRequest {
            agent_id: agent_id.into(),
        })
        .await
    {
        Ok(_) => true,
        Err(status) if status.code() == Code::NotFound => false,
        Err(status) => panic!("GetAgent {agent_id}: {status:?}"),
    }
}

async fn server_id(core: &mut CoreServiceClient<Channel>) -> String {
    core.get_server_status(pb::GetServerStatusRequest {})
        .await
        .expect("status answers")
        .into_inner()
        .server_id
}

async fn client_count(core: &mut CoreServiceClient<Channel>) -> u32 {
    core.get_server_status(pb::GetServerStatusRequest {})
        .await
        .expect("status answers")
        .into_inner()
        .client_count
}

/// Waits until `condition` holds, polling; fails after `WAIT`.
async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !condition() {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn a_write_sent_to_b_is_applied_on_the_leader_and_a_read_is_answered_by_b() {
    let pair = Pair::start().await;
    let (mut on_a, mut on_b) = (pair.admin_on_a().await, pair.admin_on_b().await);

    on_b.upsert_agent(agent("ana"))
        .await
        .expect("the write is forwarded");
    assert!(
        knows(&mut on_a, "ana").await,
        "A applied the write sent to B"
    );
    assert!(
        !knows(&mut on_b, "ana").await,
        "B answered the read from its own state, which the write never reached"
    );

    // Status is B's own: its server id, not A's.
    let (mut core_a, mut core_b) = (pair.core_on_a().await, pair.core_on_b().await);
    let (id_a, id_b) = (server_id(&mut core_a).await, server_id(&mut core_b).await);
    assert_ne!(id_a, id_b);
    assert_eq!(id_a, common::DEFAULT_PROCESSOR_ID);

    // Login is the leader's: A's secret signs in through B, whose own admin has another one.
    let raw_b = pair.b.raw_channel().await;
    let token = sign_in(&raw_b, Who::Account(ADMIN), pair.a.admin_secret()).await;
    let mut on_a_with_it = AdminServiceClient::new(signed(pair.a.raw_channel().await, &token));
    assert!(knows(&mut on_a_with_it, "ana").await);
    pair.stop().await;
}

#[tokio::test]
async fn a_request_id_retried_through_b_gets_the_first_answer() {
    let pair = Pair::start().await;
    let register = || pb::RegisterClientRequest {
        client_name: "desk-1".into(),
        request_id: "register-desk-1".into(),
    };
    let mut core_b = pair.core_on_b().await;
    let first = core_b
        .register_client(register())
        .await
        .expect("registered");
    let again = core_b.register_client(register()).await.expect("answered");
    let (first, again) = (first.into_inner(), again.into_inner());
    assert_eq!(first.client_id, again.client_id);
    assert_eq!(first.revision, again.revision);

    // A remembers it: the same id sent to A directly gets the same answer.
    let mut core_a = pair.core_on_a().await;
    let direct = core_a.register_client(register()).await.expect("answered");
    assert_eq!(direct.into_inner().client_id, first.client_id);
    assert_eq!(client_count(&mut core_a).await, 1);
    assert_eq!(client_count(&mut core_b).await, 0, "B registered nobody");
    pair.stop().await;
}

#[tokio::test]
async fn a_connect_stream_opened_on_b_is_served_by_the_leader_both_ways() {
    let pair = Pair::start().await;
    let mut admin_a = common::Clients::new(signed(pair.a.raw_channel().await, &pair.token));
    RoutingSetup::chat()
        .queue("sales", "sales >= 1")
        .agents(&["ana"], PASSWORD)
        .attribute("sales", 5)
        .apply(&mut admin_a)
        .await;

    // Ana signs in through B (A's agent: B's state has no such agent) and opens her stream
    // there.
    let raw_b = pair.b.raw_channel().await;
    let ana_token = sign_in(&raw_b, Who::Agent("ana"), PASSWORD).await;
    let mut ana = ConnectedDesktop::open_as(pair.b.addr, &ana_token, None).await;
    let resource_id = ana.sign_in("ana", PASSWORD).await;
    ana.invoke(&resource_id, "session.login").await;
    ana.invoke(&resource_id, "routing.ready").await;
    let (mut core_a, mut core_b) = (pair.core_on_a().await, pair.core_on_b().await);
    assert_eq!(
        client_count(&mut core_a).await,
        1,
        "the stream's client is A's"
    );
    assert_eq!(client_count(&mut core_b).await, 0);

    // A task created on A is offered on the stream opened on B, and accepted through it.
    let mut routing_a = RoutingServiceClient::new(signed(pair.a.raw_channel().await, &pair.token));
    let task_id = routing_a
        .new_task(pb::NewTaskRequest {
            mrd: "chat".into(),
            queue: "sales".into(),
            ..Default::default()
        })
        .await
        .expect("the task is created")
        .into_inner()
        .task_id;
    ana.routing_event(
        "the offer",
        |e| matches!(e, Ev::TaskAgentSelected(s) if s.task_id == task_id),
    )
    .await;
    let accepted = ana
        .call(Req::AcceptTask(pb::AcceptTaskRequest {
            task_id: task_id.clone(),
            agent_id: "ana".into(),
            ..Default::default()
        }))
        .await;
    assert!(matches!(accepted, Frame::AcceptTask(_)), "{accepted:?}");
    let task = routing_a
        .get_task_state(pb::GetTaskStateRequest { task_id })
        .await
        .expect("the task is known")
        .into_inner()
        .task
        .expect("a task");
    assert_eq!(
        (task.state(), task.owner_agent_id.as_str()),
        (pb::TaskState::Active, "ana")
    );

    // B draining ends the forwarded stream as a local one would end: reconnect elsewhere.
    let b = pair.b;
    let stopped = tokio::spawn(b.stop());
    let ending = ana.ending().await.expect("the stream ends with a status");
    assert_eq!(ending.code(), Code::Unavailable, "{ending:?}");
    assert!(ending.message().contains("reconnect"), "{ending:?}");
    tokio::time::timeout(WAIT, stopped)
        .await
        .expect("B's drain does not wait on the forwarded stream")
        .expect("B stops");
    pair.a.stop().await;
}

#[tokio::test]
async fn a_browser_feed_opened_on_b_is_served_by_the_leader() {
    let pair = Pair::start().await;
    let mut admin_a = common::Clients::new(signed(pair.a.raw_channel().await, &pair.token));
    RoutingSetup::chat()
        .agents(&["ana"], PASSWORD)
        .apply(&mut admin_a)
        .await;

    // Ana's page talks only to B: its feed, and its unary calls naming the feed's client.
    let raw_b = pair.b.raw_channel().await;
    let ana_token = sign_in(&raw_b, Who::Agent("ana"), PASSWORD).await;
    let calls = common::Clients::new(signed(raw_b, &ana_token));
    let mut ana = FeedDesktop::open(&calls, "", 0)
        .await
        .expect("the feed opens on B");
    let resource_id = ana.sign_in("ana", PASSWORD).await;
    ana.invoke(&resource_id, "session.login").await;
    ana.invoke(&resource_id, "routing.ready").await;
    let mut core_a = pair.core_on_a().await;
    assert_eq!(
        client_count(&mut core_a).await,
        1,
        "the feed's client is A's"
    );

    let mut routing_a = RoutingServiceClient::new(signed(pair.a.raw_channel().await, &pair.token));
    let task_id = routing_a
        .new_task(pb::NewTaskRequest {
            mrd: "chat".into(),
            ..Default::default()
        })
        .await
        .expect("the task is created")
        .into_inner()
        .task_id;
    ana.wait_for("the offer, on the feed opened on B", |e| {
        matches!(&e.event, Some(pb::client_event::Event::Routing(r))
            if matches!(&r.event, Some(Ev::TaskAgentSelected(s)) if s.task_id == task_id))
    })
    .await;
    drop(ana);
    pair.stop().await;
}

#[tokio::test]
async fn no_leader_refuses_writes_with_unavailable_and_still_serves_reads() {
    let pair = Pair::start().await;
    pair.b.route.send_replace(Route::NoLeader);
    let mut on_b = pair.admin_on_b().await;
    assert_status(
        on_b.upsert_agent(agent("ana")).await,
        Code::Unavailable,
        "no leader at the moment (a hand-over is in progress): retry in a moment",
    );
    let raw_b = pair.b.raw_channel().await;
    assert_status(
        try_sign_in(&raw_b, Who::Account(ADMIN), pair.a.admin_secret()).await,
        Code::Unavailable,
        "no leader at the moment",
    );
    assert!(!knows(&mut on_b, "ana").await, "reads are still answered");
    let mut on_a = pair.admin_on_a().await;
    assert!(!knows(&mut on_a, "ana").await, "nothing reached A");
    pair.stop().await;
}

#[tokio::test]
async fn a_route_change_to_local_stops_forwarding_and_back_resumes_it() {
    let pair = Pair::start().await;
    let (mut on_a, mut on_b) = (pair.admin_on_a().await, pair.admin_on_b().await);

    on_b.upsert_agent(agent("ana")).await.expect("forwarded");
    pair.b.route.send_replace(Route::Local);
    on_b.upsert_agent(agent("ben")).await.expect("applied on B");
    assert!(knows(&mut on_b, "ben").await, "B applied it itself");
    assert!(!knows(&mut on_a, "ben").await, "A never saw it");

    pair.b
        .route
        .send_replace(Route::Leader(pair.a.addr.to_string()));
    on_b.upsert_agent(agent("cid")).await.expect("forwarded");
    assert!(knows(&mut on_a, "cid").await && !knows(&mut on_b, "cid").await);
    assert!(knows(&mut on_a, "ana").await && !knows(&mut on_b, "ana").await);
    pair.stop().await;
}

#[tokio::test]
async fn an_unreachable_leader_is_unavailable_naming_its_address() {
    let pair = Pair::start().await;
    // A port nobody listens on any more.
    let gone = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let gone_addr = gone.local_addr().expect("its address").to_string();
    drop(gone);
    pair.b.route.send_replace(Route::Leader(gone_addr.clone()));

    let mut on_b = pair.admin_on_b().await;
    let refused = on_b.upsert_agent(agent("ana")).await.unwrap_err();
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    assert!(
        refused
            .message()
            .contains(&format!("the leader at {gone_addr} cannot be reached")),
        "{refused:?}"
    );
    assert!(!refused.message().contains(&pair.token), "no token echoed");

    // A route to the live leader again: the next write goes through.
    pair.b
        .route
        .send_replace(Route::Leader(pair.a.addr.to_string()));
    on_b.upsert_agent(agent("ana")).await.expect("forwarded");
    assert!(knows(&mut pair.admin_on_a().await, "ana").await);
    pair.stop().await;
}

#[tokio::test]
async fn a_call_is_forwarded_once_and_never_back() {
    let pair = Pair::start().await;
    // B believes it is led by itself: the call it forwards comes back to it, marked as
    // forwarded, and is refused instead of going round again.
    pair.b
        .route
        .send_replace(Route::Leader(pair.b.addr.to_string()));
    let mut on_b = pair.admin_on_b().await;
    assert_status(
        on_b.upsert_agent(agent("ana")).await,
        Code::Unavailable,
        "this node is not the leader either",
    );

    // A caller cannot make A refuse: the mark matters only to a node that would forward.
    let mut marked = tonic::Request::new(agent("ben"));
    marked
        .metadata_mut()
        .insert("x-switchboard-forwarded-by", "someone".parse().unwrap());
    pair.admin_on_a()
        .await
        .upsert_agent(marked)
        .await
        .expect("A serves it");
    pair.stop().await;
}

fn with_min_revision<T>(message: T, value: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert(
        "x-switchboard-min-revision",
        value.parse().expect("an ASCII value"),
    );
    request
}

#[tokio::test]
async fn a_read_on_b_waits_for_the_revision_it_asks_for() {
    let pair = Pair::start().await;
    pair.b.applied.send_replace(4);
    let mut on_b = pair.admin_on_b().await;

    // Applied already: served at once.
    on_b.list_mrds(with_min_revision(pb::ListMrdsRequest {}, "4"))
        .await
        .expect("served");
    assert_eq!(pair.b.layer.waiting_reads(), 0);

    // Ahead of B: held until B has applied it.
    let mut held = on_b.clone();
    let read = tokio::spawn(async move {
        held.list_mrds(with_min_revision(pb::ListMrdsRequest {}, "9"))
            .await
    });
    eventually("the read waits on B", || pair.b.layer.waiting_reads() == 1).await;
    pair.b.applied.send_replace(9);
    tokio::time::timeout(WAIT, read)
        .await
        .expect("the read is answered")
        .expect("the task ends")
        .expect("served once applied");
    assert_eq!(pair.b.layer.waiting_reads(), 0);

    // A malformed value names the header.
    for bad in ["soon", "-1", "1,2"] {
        assert_status(
            on_b.list_mrds(with_min_revision(pb::ListMrdsRequest {}, bad))
                .await,
            Code::InvalidArgument,
            "x-switchboard-min-revision",
        );
    }
    pair.stop().await;
}

#[tokio::test]
async fn a_read_on_b_that_stays_behind_is_unavailable_naming_both_revisions() {
    // B's applied revision never moves: the bound is reached, however long it is.
    let pair = Pair::start_with(ServerConfig::in_memory(), |layer| {
        layer.with_revision_wait(Duration::from_millis(200))
    })
    .await;
    pair.b.applied.send_replace(3);
    let mut on_b = pair.admin_on_b().await;
    assert_status(
        on_b.list_mrds(with_min_revision(pb::ListMrdsRequest {}, "12"))
            .await,
        Code::Unavailable,
        "this node has applied revision 3, behind the requested 12; retry or ask another node",
    );
    // A forwarded call is the leader's to serve: B does not hold it.
    on_b.upsert_agent(with_min_revision(agent("ana"), "12"))
        .await
        .expect("forwarded at once");
    pair.stop().await;
}

/// A TCP proxy to `target` whose connections the test cuts, as a network failure would.
struct Proxy {
    addr: SocketAddr,
    accept: tokio::task::JoinHandle<()>,
    pipes: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Proxy {
    async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a free port");
        let addr = listener.local_addr().expect("its address");
        let pipes = Arc::new(Mutex::new(Vec::new()));
        let held = Arc::clone(&pipes);
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let pipe = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                held.lock().expect("the pipes").push(pipe);
            }
        });
        Self {
            addr,
            accept,
            pipes,
        }
    }

    /// Closes every connection and the listener.
    fn cut(&self) {
        self.accept.abort();
        for pipe in self.pipes.lock().expect("the pipes").drain(..) {
            pipe.abort();
        }
    }
}

#[tokio::test]
async fn a_leader_lost_during_a_forwarded_stream_ends_it_with_unavailable_naming_the_leader() {
    let pair = Pair::start().await;
    let proxy = Proxy::start(pair.a.addr).await;
    pair.b
        .route
        .send_replace(Route::Leader(proxy.addr.to_string()));
    let mut desktop = ConnectedDesktop::open_as(pair.b.addr, &pair.token, None).await;
    let answer = desktop
        .call(Req::GetServerStatus(pb::GetServerStatusRequest {}))
        .await;
    let Frame::GetServerStatus(status) = answer else {
        panic!("GetServerStatus answered {answer:?}");
    };
    assert_eq!(status.server_id, common::DEFAULT_PROCESSOR_ID, "A answers");

    proxy.cut();
    let ending = desktop
        .ending()
        .await
        .expect("the stream ends with a status");
    assert_eq!(ending.code(), Code::Unavailable, "{ending:?}");
    let lost = format!("the connection to the leader at {} was lost", proxy.addr);
    assert!(ending.message().contains(&lost), "{ending:?}");
    assert!(!ending.message().contains(&pair.token), "no token echoed");
    pair.stop().await;
}

/// A CA and, from it, a certificate for `localhost` and 127.0.0.1 with its key, as PEM.
fn server_pki() -> (String, String, String) {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair,
        KeyUsagePurpose,
    };
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, "Switchboard test CA");
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().expect("a CA key"))
        .expect("a CA certificate");
    let mut params = CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
        .expect("leaf parameters");
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    let key = KeyPair::generate().expect("a leaf key");
    let cert = params.signed_by(&key, &ca).expect("a leaf certificate");
    (ca.pem(), cert.pem(), key.serialize_pem())
}

#[tokio::test]
async fn forwarding_reaches_a_leader_that_serves_tls_trusting_the_given_ca() {
    let (ca_pem, cert_pem, key_pem) = server_pki();
    let files = tempfile::tempdir().expect("a temporary directory");
    let write = |name: &str, contents: &str| {
        let path = files.path().join(name);
        std::fs::write(&path, contents).expect("a PEM file is written");
        path
    };
    let a = TestServer::start_with(ServerConfig {
        tls_cert: Some(write("server.pem", &cert_pem)),
        tls_key: Some(write("server.key", &key_pem)),
        ..ServerConfig::in_memory()
    })
    .await;
    let leader = Route::Leader(a.addr.to_string());
    let tls = |ca_pem: &str| ClientTls {
        ca_pem: ca_pem.as_bytes().to_vec(),
        domain: "localhost".into(),
    };
    let b = Node::start(leader.clone(), None, Some(tls(&ca_pem)), |layer| layer).await;

    // Signing in and writing through B, both served by A over TLS.
    let raw_b = b.raw_channel().await;
    let token = sign_in(&raw_b, Who::Account(ADMIN), a.admin_secret()).await;
    let mut on_b = AdminServiceClient::new(signed(raw_b, &token));
    on_b.upsert_agent(agent("ana")).await.expect("forwarded");
    let tls_to_a = Endpoint::from_shared(format!("https://{}", a.addr))
        .expect("a valid endpoint")
        .tls_config(
            tonic::transport::ClientTlsConfig::new()
                .ca_certificate(tonic::transport::Certificate::from_pem(&ca_pem))
                .domain_name("localhost"),
        )
        .expect("a TLS configuration")
        .connect()
        .await
        .expect("A accepts TLS connections");
    let mut on_a = AdminServiceClient::new(signed(tls_to_a, &token));
    assert!(
        knows(&mut on_a, "ana").await,
        "A applied the write sent to B"
    );

    // A node trusting another CA does not reach A, and says where it tried.
    let (other_ca, _, _) = server_pki();
    let c = Node::start(leader, None, Some(tls(&other_ca)), |layer| layer).await;
    let refused = try_sign_in(
        &c.raw_channel().await,
        Who::Account(ADMIN),
        a.admin_secret(),
    )
    .await
    .unwrap_err();
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    let named = format!("the leader at {} cannot be reached", a.addr);
    assert!(refused.message().contains(&named), "{refused:?}");
    c.stop().await;
    b.stop().await;
    a.stop().await;
}

#[tokio::test]
async fn more_desktop_streams_than_one_connection_carries_open_more_connections_to_the_leader() {
    // A takes one stream per connection; B puts one call on each of its connections to A.
    let pair = Pair::start_with(
        ServerConfig {
            max_streams_per_connection: 1,
            ..ServerConfig::in_memory()
        },
        |layer| layer.with_calls_per_connection(1),
    )
    .await;
    let open = || async {
        tokio::time::timeout(
            WAIT,
            ConnectedDesktop::open_as(pair.b.addr, &pair.token, None),
        )
        .await
        .expect("the stream opens while the others stay open")
    };
    let mut desktops = Vec::new();
    for _ in 0..3 {
        desktops.push(open().await);
    }
    let ids: std::collections::HashSet<_> =
        desktops.iter().map(|d| d.client_id().to_owned()).collect();
    assert_eq!(ids.len(), 3);
    assert_eq!(
        client_count(&mut pair.core_on_a().await).await,
        3,
        "all three are A's"
    );
    // Each still carries calls.
    for desktop in &mut desktops {
        let answer = desktop
            .call(Req::GetServerStatus(pb::GetServerStatusRequest {}))
            .await;
        assert!(matches!(answer, Frame::GetServerStatus(_)), "{answer:?}");
    }
    drop(desktops);
    pair.stop().await;
}
