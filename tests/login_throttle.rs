//! Failed logins are throttled per agent id (or account id) and per address, and password
//! checks run on a bounded pool, against a real server over gRPC. Windows are set long (or
//! zero) so that no assertion depends on how fast the calls run.
//!
//! The routing logins (`LoginAgent`, `ConnectAgent`) are for agents only, so each is called on
//! a connection signed in as an agent, which signs in (`AuthService.Login`) before any of its
//! failures; `AuthService.Login` itself is throttled the same way, for agents and accounts.

mod common;

use common::auth::try_sign_in;
use common::desktop::ConnectedDesktop;
use common::process::ServerProcess;
use common::{Channel, Clients, TestServer, Who, prepare_request, sign_in, signed};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use switchboard::config::ServerConfig;
use switchboard::pb;
use switchboard::pb::connect_request::Request as Req;
use switchboard::pb::connect_response::Frame;
use switchboard::pb::routing_service_client::RoutingServiceClient;
use tonic::transport::Endpoint;
use tonic::{Code, Status};
use tonic_types::StatusExt;

const PASSWORD: &str = "throttle-Secret-42";
const WRONG: &str = "not-the-Password-1";
const WRONG_PASSWORD: &str = "agent id or password is wrong";
const HOUR_MS: u64 = 3_600_000;
/// The wire's contract for throttled logins and a full pool.
const ERROR_DOMAIN: &str = "switchboard.v1";
const LOGIN_THROTTLED: &str = "LOGIN_THROTTLED";
const POOL_FULL: &str = "too many logins in progress; retry shortly";

/// A server whose backoff and lockout windows are `backoff_ms` and an hour.
async fn server(backoff_ms: u64) -> TestServer {
    TestServer::start_with(ServerConfig {
        login_backoff_ms: backoff_ms,
        login_lockout_secs: 3_600,
        ..ServerConfig::in_memory()
    })
    .await
}

/// A routing client signed in as agent `agent_id` (with `PASSWORD`).
async fn routing_as(server: &TestServer, agent_id: &str) -> RoutingServiceClient<Channel> {
    RoutingServiceClient::new(server.channel_as(Who::Agent(agent_id), PASSWORD).await)
}

/// `AuthService.Login` as `who`, over a connection of its own without a token.
async fn auth_login(
    server: &TestServer,
    who: Who<'_>,
    password: &str,
) -> Result<pb::LoginResponse, Status> {
    try_sign_in(&server.raw_channel().await, who, password).await
}

async fn login(
    routing: &mut RoutingServiceClient<Channel>,
    agent_id: &str,
    password: &str,
) -> Result<pb::LoginAgentResponse, Status> {
    routing
        .login_agent(pb::LoginAgentRequest {
            agent_id: agent_id.into(),
            password: password.into(),
            ..Default::default()
        })
        .await
        .map(tonic::Response::into_inner)
}

/// What a caller can tell from a refused login, the wait's digits aside.
#[derive(Debug, PartialEq, Eq)]
struct Shape {
    code: Code,
    message: String,
    reason: Option<String>,
    retry_info: bool,
}

fn shape<T: std::fmt::Debug>(result: Result<T, Status>) -> Shape {
    let status = result.expect_err("the login is refused");
    Shape {
        code: status.code(),
        message: status.message().replace(|c: char| c.is_ascii_digit(), ""),
        reason: status.get_details_error_info().map(|info| {
            assert_eq!(info.domain, ERROR_DOMAIN);
            info.reason
        }),
        retry_info: status.get_details_retry_info().is_some(),
    }
}

fn wrong_password() -> Shape {
    Shape {
        code: Code::Unauthenticated,
        message: WRONG_PASSWORD.into(),
        reason: None,
        retry_info: false,
    }
}

fn throttled() -> Shape {
    Shape {
        code: Code::Unauthenticated,
        message: "too many failed login attempts; retry after  s".into(),
        reason: Some(LOGIN_THROTTLED.into()),
        retry_info: true,
    }
}

/// The wait a throttled status asks for, in seconds.
fn retry_after(status: &Status) -> u64 {
    status
        .get_details_retry_info()
        .and_then(|info| info.retry_delay)
        .expect("a throttled status says how long to wait")
        .as_secs()
}

#[tokio::test]
async fn fifty_wrong_passwords_lock_the_agent_out_even_for_the_right_one() {
    // No backoff: the ten failures come at once, and the tenth locks the agent out.
    let server = server(0).await;
    let mut c = server.clients().await;
    c.create_agent("rajat1", PASSWORD).await;
    c.create_agent("priya2", PASSWORD).await;
    // Signed in before its failures: the calls below are the agent's own.
    let mut routing = routing_as(&server, "rajat1").await;

    let mut answers = Vec::new();
    for _ in 0..50 {
        answers.push(shape(login(&mut routing, "rajat1", WRONG).await));
    }
    assert!(
        answers[..10].iter().all(|a| *a == wrong_password()),
        "{answers:#?}"
    );
    assert!(
        answers[10..].iter().all(|a| *a == throttled()),
        "{answers:#?}"
    );

    // Locked out: the right password is refused unchecked, on every login call.
    let locked = login(&mut routing, "rajat1", PASSWORD).await.unwrap_err();
    assert!(
        (3_500..=3_600).contains(&retry_after(&locked)),
        "{locked:?}"
    );
    assert_eq!(shape::<()>(Err(locked)), throttled());
    let prepared = c
        .processor
        .prepare_session(prepare_request("rajat1", PASSWORD, false))
        .await;
    assert_eq!(shape(prepared), throttled());
    let connected = routing
        .connect_agent(pb::ConnectAgentRequest {
            agent_id: "rajat1".into(),
            password: PASSWORD.into(),
            ..Default::default()
        })
        .await;
    assert_eq!(shape(connected), throttled());
    // Signing in is a login call too.
    let signed_in = auth_login(&server, Who::Agent("rajat1"), PASSWORD).await;
    assert_eq!(shape(signed_in), throttled());

    // Another agent from the same address still gets its password checked: ten failures
    // do not lock an address.
    let mut other = routing_as(&server, "priya2").await;
    let other = other
        .connect_agent(pb::ConnectAgentRequest {
            agent_id: "priya2".into(),
            password: PASSWORD.into(),
            ..Default::default()
        })
        .await;
    assert!(other.is_ok(), "{other:?}");
}

#[tokio::test]
async fn attempts_during_the_backoff_are_refused_unchecked() {
    // An hour's backoff: after the five free failures every attempt falls inside it.
    let server = server(HOUR_MS).await;
    let mut c = server.clients().await;
    c.create_agent("rajat1", PASSWORD).await;
    // Signed in before its failures, to try its own login below.
    let mut routing = routing_as(&server, "rajat1").await;

    let mut answers = Vec::new();
    for _ in 0..50 {
        let r = c
            .processor
            .prepare_session(prepare_request("rajat1", WRONG, false))
            .await;
        answers.push(shape(r));
    }
    assert!(
        answers[..5].iter().all(|a| *a == wrong_password()),
        "{answers:#?}"
    );
    assert!(
        answers[5..].iter().all(|a| *a == throttled()),
        "{answers:#?}"
    );
    // Refused attempts are not counted: still the first wait, not a lockout's.
    let refused = login(&mut routing, "rajat1", PASSWORD).await.unwrap_err();
    assert!(
        (3_500..=3_600).contains(&retry_after(&refused)),
        "{refused:?}"
    );
}

#[tokio::test]
async fn unknown_agents_and_wrong_passwords_look_alike_locked_or_not() {
    let server = server(0).await;
    let mut c = server.clients().await;
    c.create_agent("rajat1", PASSWORD).await;
    // Signed in before its failures; its connection asks for every agent below.
    let mut routing = routing_as(&server, "rajat1").await;

    // The same answer, detail for detail, on each login call.
    for (agent, password) in [("rajat1", WRONG), ("nobody", WRONG), ("nobody", PASSWORD)] {
        assert_eq!(
            shape(login(&mut routing, agent, password).await),
            wrong_password()
        );
        let prepared = c
            .processor
            .prepare_session(prepare_request(agent, password, false))
            .await;
        assert_eq!(shape(prepared), wrong_password());
        let signed_in = auth_login(&server, Who::Agent(agent), password).await;
        assert_eq!(shape(signed_in), wrong_password());
    }

    // Locked out alike: unknown agents are counted like known ones.
    for agent in ["rajat1", "nobody"] {
        while shape(login(&mut routing, agent, WRONG).await) == wrong_password() {}
    }
    let known = login(&mut routing, "rajat1", PASSWORD).await;
    let unknown = login(&mut routing, "nobody", PASSWORD).await;
    assert_eq!(shape(known), throttled());
    assert_eq!(shape(unknown), throttled());
    for agent in ["rajat1", "nobody"] {
        let signed_in = auth_login(&server, Who::Agent(agent), PASSWORD).await;
        assert_eq!(shape(signed_in), throttled());
    }
    // An id never tried yet is still only checked.
    assert_eq!(
        shape(login(&mut routing, "stranger", WRONG).await),
        wrong_password()
    );
}

/// Creates account `account_id` with `secret` and the supervisor role.
async fn create_account(c: &mut Clients, account_id: &str, secret: &str) {
    c.admin
        .upsert_account(pb::UpsertAccountRequest {
            account: Some(pb::Account {
                account_id: account_id.into(),
                display_name: format!("Account {account_id}"),
                secret: secret.into(),
                roles: vec![pb::Role::Supervisor as i32],
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .expect("the account is created");
}

#[tokio::test]
async fn account_sign_ins_are_throttled_like_agent_logins() {
    // No backoff: the ten failures come at once, and the tenth locks the account out.
    let server = server(0).await;
    let mut c = server.clients().await;
    create_account(&mut c, "ops", PASSWORD).await;
    create_account(&mut c, "audit", PASSWORD).await;

    // An unknown account and a wrong secret get the same answer, detail for detail.
    let wrong = shape(auth_login(&server, Who::Account("ops"), WRONG).await);
    assert_eq!(wrong.code, Code::Unauthenticated, "{wrong:?}");
    assert_eq!(wrong.reason, None, "{wrong:?}");
    assert!(!wrong.retry_info, "{wrong:?}");
    for (account, secret) in [("nobody", WRONG), ("nobody", PASSWORD)] {
        assert_eq!(
            shape(auth_login(&server, Who::Account(account), secret).await),
            wrong,
            "{account} with {secret}"
        );
    }

    let mut answers = Vec::new();
    for _ in 0..50 {
        answers.push(shape(auth_login(&server, Who::Account("ops"), WRONG).await));
    }
    // One failure came first: nine more lock the account out.
    assert!(answers[..9].iter().all(|a| *a == wrong), "{answers:#?}");
    assert!(
        answers[9..].iter().all(|a| *a == throttled()),
        "{answers:#?}"
    );

    // Locked out: the right secret is refused unchecked.
    let locked = auth_login(&server, Who::Account("ops"), PASSWORD)
        .await
        .unwrap_err();
    assert!(
        (3_500..=3_600).contains(&retry_after(&locked)),
        "{locked:?}"
    );
    assert_eq!(shape::<()>(Err(locked)), throttled());

    // Unknown accounts are counted like known ones: locked out alike.
    while shape(auth_login(&server, Who::Account("nobody"), WRONG).await) == wrong {}
    assert_eq!(
        shape(auth_login(&server, Who::Account("nobody"), PASSWORD).await),
        throttled()
    );

    // Another account from the same address still gets its secret checked, and signs in.
    let other = auth_login(&server, Who::Account("audit"), PASSWORD).await;
    assert!(other.is_ok(), "{other:?}");
    // An agent of the same name is another principal, with a count of its own.
    c.create_agent("ops", PASSWORD).await;
    let agent = auth_login(&server, Who::Agent("ops"), PASSWORD).await;
    assert!(agent.is_ok(), "{agent:?}");
}

#[tokio::test]
async fn logins_on_the_connect_stream_are_throttled_too() {
    let server = server(0).await;
    let mut c = server.clients().await;
    c.create_agent("rajat1", PASSWORD).await;
    // LoginAgent is an agent's own call: the desktop is signed in as the agent.
    let token = sign_in(&server.raw_channel().await, Who::Agent("rajat1"), PASSWORD).await;
    let mut desktop = ConnectedDesktop::open_as(server.addr, &token, None).await;

    let mut messages = Vec::new();
    for password in [WRONG; 10].into_iter().chain([PASSWORD]) {
        let answer = desktop
            .answer(Req::LoginAgent(pb::LoginAgentRequest {
                agent_id: "rajat1".into(),
                password: password.into(),
                ..Default::default()
            }))
            .await;
        let Frame::Error(error) = answer else {
            panic!("the login is refused: {answer:?}")
        };
        assert_eq!(error.code, Code::Unauthenticated as i32);
        messages.push(error.message);
    }
    assert!(
        messages[..10].iter().all(|m| m == WRONG_PASSWORD),
        "{messages:?}"
    );
    assert!(
        messages[10].starts_with("too many failed login attempts; retry after "),
        "{messages:?}"
    );
}

/// The server's resident memory, in bytes.
fn resident(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("procfs");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("a VmRSS line");
    kib * 1024
}

const BURST: usize = 128;
const WORKERS: usize = 2;
const QUEUE: usize = 64;
const MIB: u64 = 1024 * 1024;

/// Fires `BURST` logins at once from `local` (its own address, so that the address's
/// throttle starts afresh), each for its own unknown agent with a wrong password, on a
/// connection signed in with the agent's access `token`; returns how many the pool refused.
async fn burst(server: SocketAddr, local: Ipv4Addr, token: &str) -> usize {
    let channel = Endpoint::from_shared(format!("http://{server}"))
        .expect("a valid endpoint")
        .local_address(Some(IpAddr::V4(local)))
        .connect()
        .await
        .expect("the server accepts connections");
    let channel = signed(channel, token);
    let calls: Vec<_> = (0..BURST)
        .map(|n| {
            let mut routing = RoutingServiceClient::new(channel.clone());
            tokio::spawn(
                async move { login(&mut routing, &format!("ghost-{local}-{n}"), WRONG).await },
            )
        })
        .collect();
    let mut exhausted = 0;
    for call in calls {
        let status = call.await.expect("the call task").expect_err("refused");
        match status.code() {
            Code::ResourceExhausted => {
                assert_eq!(status.message(), POOL_FULL);
                exhausted += 1;
            }
            // Checked, or refused by the address's throttle once enough have failed.
            Code::Unauthenticated => {}
            other => panic!("unexpected {other:?}: {status:?}"),
        }
    }
    exhausted
}

#[tokio::test]
async fn a_burst_of_logins_leaves_memory_bounded() {
    let workers = WORKERS.to_string();
    let queue = QUEUE.to_string();
    let server = ServerProcess::start(&[
        "--in-memory",
        "--login-workers",
        &workers,
        "--login-queue",
        &queue,
    ])
    .await;
    let channel = server.channel().await;
    // One hash first, so the pool is up before the baseline.
    Clients::new(channel.clone())
        .create_agent("rajat1", PASSWORD)
        .await;
    // The burst's logins are an agent's calls.
    let token = sign_in(&server.raw_channel().await, Who::Agent("rajat1"), PASSWORD).await;
    let before = resident(server.pid());

    for local in [Ipv4Addr::new(127, 0, 0, 2), Ipv4Addr::new(127, 0, 0, 3)] {
        let exhausted = burst(server.addr(), local, &token).await;
        // A refusal means every queue slot was taken by another of the burst.
        assert!(
            exhausted <= BURST - QUEUE,
            "{exhausted} refused from {local}"
        );
        let after = resident(server.pid());
        eprintln!(
            "from {local}: {exhausted} of {BURST} refused; resident {} -> {} MiB",
            before / MIB,
            after / MIB
        );
        assert!(
            after <= before + 200 * MIB,
            "resident memory grew from {} to {} MiB",
            before / MIB,
            after / MIB
        );
    }
    // Still serving, logins included.
    let mut routing =
        RoutingServiceClient::new(server.channel_as(Who::Agent("rajat1"), PASSWORD).await);
    let refused = login(&mut routing, "rajat1", WRONG).await;
    assert_eq!(shape(refused), wrong_password());
}
