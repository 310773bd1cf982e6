//! Presence heals: a desktop's `Connect` stream is its lease. A desktop that vanishes mid-offer
//! has its session logged out once its grace period passes, and the offer goes to another
//! agent; a desktop that reconnects in time resumes the same client, keeps its session, and
//! catches up on what it missed by resuming its watch. A unary client without calls or
//! streams expires the same way.

mod common;

use std::time::Duration;

use common::desktop::ConnectedDesktop;
use common::routing_setup::RoutingSetup;
use common::routing_watch::wait_for;
use common::{Channel, TestServer, Who};
use switchboard::config::ServerConfig;
use switchboard::pb;
use switchboard::pb::routing_event::Event as Ev;
use switchboard::pb::routing_service_client::RoutingServiceClient;
use tokio_stream::StreamExt;
use tonic::Streaming;

const PASSWORD: &str = "presence-Pw-7";
/// Bounds every wait, so that a broken server fails the test instead of hanging it.
const WAIT: Duration = Duration::from_secs(20);

/// MRD `chat` whose offers wait a long time, so only presence can move a task on quickly.
async fn configure(c: &mut common::Clients, agents: &[&str]) {
    RoutingSetup::chat()
        .offer_timeout(3600)
        .logout_action(pb::LogoutAction::Requeue)
        .agents(agents, PASSWORD)
        .apply(c)
        .await;
}

/// A routing client signed in as the first admin: it submits tasks, reads and watches.
async fn routing(server: &TestServer) -> RoutingServiceClient<Channel> {
    RoutingServiceClient::new(server.channel().await)
}

/// A routing client signed in as `agent_id`, which acts only as itself.
async fn agent_routing(server: &TestServer, agent_id: &str) -> RoutingServiceClient<Channel> {
    RoutingServiceClient::new(server.channel_as(Who::Agent(agent_id), PASSWORD).await)
}

/// A fresh access token of `agent_id`, for its desktop's `Connect` stream.
async fn agent_token(server: &TestServer, agent_id: &str) -> String {
    common::sign_in(&server.raw_channel().await, Who::Agent(agent_id), PASSWORD).await
}

async fn watch_from(
    routing: &mut RoutingServiceClient<Channel>,
    start_revision: u64,
) -> Streaming<pb::WatchRoutingEventsResponse> {
    routing
        .watch_routing_events(pb::WatchRoutingEventsRequest {
            start_revision,
            ..Default::default()
        })
        .await
        .expect("the watch opens")
        .into_inner()
}

/// Logs `agent_id` in and makes it ready; `routing` is signed in as that agent.
async fn log_in_ready(routing: &mut RoutingServiceClient<Channel>, agent_id: &str) -> u64 {
    routing
        .login_agent(pb::LoginAgentRequest {
            agent_id: agent_id.into(),
            password: PASSWORD.into(),
            ..Default::default()
        })
        .await
        .expect("the agent logs in");
    routing
        .change_agent_state(pb::ChangeAgentStateRequest {
            agent_id: agent_id.into(),
            state: pb::AgentState::Ready.into(),
            ..Default::default()
        })
        .await
        .expect("the agent is ready")
        .into_inner()
        .revision
}

async fn new_task(routing: &mut RoutingServiceClient<Channel>) -> String {
    routing
        .new_task(pb::NewTaskRequest {
            mrd: "chat".into(),
            ..Default::default()
        })
        .await
        .expect("the task is queued")
        .into_inner()
        .task_id
}

/// A desktop signed in as `agent_id` (its stream carries the agent's token), logged in and
/// ready for routing.
async fn ready_desktop(server: &TestServer, agent_id: &str) -> (ConnectedDesktop, String) {
    let token = agent_token(server, agent_id).await;
    let mut desktop = ConnectedDesktop::open_as(server.addr, &token, None).await;
    let resource_id = desktop.sign_in(agent_id, PASSWORD).await;
    desktop.invoke(&resource_id, "session.login").await;
    desktop.invoke(&resource_id, "routing.ready").await;
    (desktop, resource_id)
}

#[tokio::test]
async fn a_desktop_that_vanishes_mid_offer_has_its_task_rerouted() {
    let server = TestServer::start_with(ServerConfig {
        presence_grace_ms: 300,
        ..ServerConfig::in_memory()
    })
    .await;
    let mut c = server.clients().await;
    configure(&mut c, &["ana", "ben"]).await;
    let mut routing = routing(&server).await;
    let mut watch = watch_from(&mut routing, 1).await;

    let (desktop, resource_id) = ready_desktop(&server, "ana").await;
    let task_id = new_task(&mut routing).await;
    wait_for(
        &mut watch,
        "the offer to ana",
        |e| matches!(e, Ev::TaskAgentSelected(s) if s.task_id == task_id && s.agent_id == "ana"),
    )
    .await;
    // Ben is ready only once the task is Ana's, so the task can only reach him through her.
    log_in_ready(&mut agent_routing(&server, "ben").await, "ben").await;

    desktop.vanish();

    wait_for(
        &mut watch,
        "the offer rerouted to ben",
        |e| matches!(e, Ev::TaskAgentSelected(s) if s.task_id == task_id && s.agent_id == "ben"),
    )
    .await;
    // Ana's session logged out, in its view and in routing.
    let view = c
        .workflow
        .get_session_state(pb::GetSessionStateRequest {
            resource_id: resource_id.clone(),
        })
        .await
        .expect("the session stays")
        .into_inner();
    assert_eq!(view.view_state, "initial");
    let ana = routing
        .get_agent_state(pb::GetAgentStateRequest {
            agent_id: "ana".into(),
        })
        .await
        .expect("ana is known")
        .into_inner()
        .agent
        .expect("an agent status");
    assert!(
        ana.mrds.iter().all(|m| m.state() == pb::AgentState::Logout),
        "ana is logged out everywhere: {ana:?}"
    );
    assert_eq!(c.client_count().await, 0, "the vanished client is gone");
    server.stop().await;
}

#[tokio::test]
async fn a_desktop_that_reconnects_in_time_keeps_its_session_and_catches_up() {
    let server = TestServer::start_with(ServerConfig {
        presence_grace_ms: 60_000,
        ..ServerConfig::in_memory()
    })
    .await;
    let mut c = server.clients().await;
    configure(&mut c, &["ana"]).await;
    let mut routing = routing(&server).await;

    let (desktop, resource_id) = ready_desktop(&server, "ana").await;
    let client_id = desktop.client_id().to_owned();
    // The last revision the desktop saw before its connection dropped.
    let seen = c
        .workflow
        .get_session_state(pb::GetSessionStateRequest {
            resource_id: resource_id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .revision;
    desktop.vanish();

    // While it is away, a task is offered to its agent.
    let task_id = new_task(&mut routing).await;

    // The client is ana's: her desktop resumes it, signed in as her again.
    let token = agent_token(&server, "ana").await;
    let mut back = ConnectedDesktop::open_as(server.addr, &token, Some(&client_id)).await;
    assert!(back.greeting.resumed, "the stream resumed the client");
    assert_eq!(back.client_id(), client_id);
    assert_eq!(c.client_count().await, 1, "still one client, not a new one");

    // What it missed: the session watch from the next revision shows the offer's
    // `routing.accept` turning on, and the routing watch the offer itself.
    let mut missed = c
        .workflow
        .watch_session_state(pb::WatchSessionStateRequest {
            resource_id: resource_id.clone(),
            start_revision: seen + 1,
        })
        .await
        .unwrap()
        .into_inner();
    loop {
        let frame = tokio::time::timeout(WAIT, missed.next())
            .await
            .expect("the missed update arrives")
            .expect("the watch is open")
            .expect("the watch is healthy");
        let Some(pb::watch_session_state_response::Frame::Event(event)) = frame.frame else {
            continue;
        };
        assert!(event.revision > seen, "nothing already seen is sent again");
        let accept_on = event
            .actions
            .iter()
            .any(|a| a.name == "routing.accept" && a.r#type() == pb::ActionChangeType::Enable);
        if accept_on {
            assert_eq!(
                event.view_state, "logged_in",
                "the session stayed logged in"
            );
            break;
        }
    }
    let mut offers = watch_from(&mut routing, seen + 1).await;
    wait_for(
        &mut offers,
        "the offer made while away",
        |e| matches!(e, Ev::TaskAgentSelected(s) if s.task_id == task_id && s.agent_id == "ana"),
    )
    .await;

    // The resumed stream still holds the session's bindings: it can act on the offer.
    back.invoke(&resource_id, "routing.accept").await;
    let task = routing
        .get_task_state(pb::GetTaskStateRequest {
            task_id: task_id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .task
        .expect("a task status");
    assert_eq!(task.state(), pb::TaskState::Active);
    back.close().await;
    server.stop().await;
}

#[tokio::test]
async fn a_client_that_never_comes_back_cannot_be_resumed() {
    let server = TestServer::start_with(ServerConfig {
        presence_grace_ms: 200,
        ..ServerConfig::in_memory()
    })
    .await;
    let mut c = server.clients().await;
    let desktop = ConnectedDesktop::open(&server, None).await;
    let client_id = desktop.client_id().to_owned();
    desktop.vanish();
    let deadline = tokio::time::Instant::now() + WAIT;
    while c.client_count().await != 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the client outlived its grace period"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let refused = ConnectedDesktop::try_open(&server, Some(&client_id)).await;
    let status = refused.err().expect("an expired client is not resumed");
    assert_eq!(status.code(), tonic::Code::NotFound);
    assert!(
        status.message().contains("switchboard-client-id"),
        "{status:?}"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_unary_client_expires_without_calls_and_its_calls_renew_it() {
    let server = TestServer::start_with(ServerConfig {
        presence_grace_ms: 1_500,
        ..ServerConfig::in_memory()
    })
    .await;
    let mut c = server.clients().await;
    let client_id = c
        .core
        .register_client(pb::RegisterClientRequest {
            client_name: "reporting".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .client_id;
    // Calls that name the client keep it: each one starts its grace period again, so it
    // outlives one grace period by far. (Each gap is a third of the grace period.)
    for _ in 0..5 {
        c.core
            .bind_service(pb::BindServiceRequest {
                client_id: client_id.clone(),
                service_id: common::WORKFLOW.into(),
                ..Default::default()
            })
            .await
            .expect("the client is still registered");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let deadline = tokio::time::Instant::now() + WAIT;
    while c.client_count().await != 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the client never expired"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.stop().await;
}

#[tokio::test]
async fn desktops_resume_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let config = ServerConfig {
        data_dir: dir.path().to_owned(),
        in_memory: false,
        // The first start writes the first admin's secret where the restart finds it.
        bootstrap_secret_file: Some(dir.path().join("bootstrap-admin.secret")),
        presence_grace_ms: 60_000,
        ..ServerConfig::in_memory()
    };
    let server = TestServer::start_with(config.clone()).await;
    let mut c = server.clients().await;
    configure(&mut c, &["ana"]).await;
    let (desktop, resource_id) = ready_desktop(&server, "ana").await;
    let client_id = desktop.client_id().to_owned();
    server.stop().await;
    drop(desktop);

    // Every client gets a fresh grace period after a restart, in which its desktop returns.
    let server = TestServer::start_with(config).await;
    let token = agent_token(&server, "ana").await;
    let mut back = ConnectedDesktop::open_as(server.addr, &token, Some(&client_id)).await;
    assert!(back.greeting.resumed);
    let view = back.invoke(&resource_id, "routing.not_ready").await;
    assert_eq!(
        view.view_state, "logged_in",
        "the session survived the restart"
    );
    back.close().await;
    server.stop().await;
}
