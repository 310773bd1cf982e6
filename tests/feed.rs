//! `CoreService.Feed`, a browser desktop's lease and event feed, over a real socket: it
//! registers a client and carries the events of what the client binds with unary calls; a
//! feed that breaks keeps its client for the grace period, and one that comes back in time
//! with `start_revision` gets what it missed (once, in order) before what happens next; one
//! that does not come back loses its offer to another agent; and what it is given is checked.

mod common;

use std::time::Duration;

use common::feed_desktop::FeedDesktop;
use common::routing_setup::RoutingSetup;
use common::{Channel, Clients, TestServer};
use switchboard::config::ServerConfig;
use switchboard::pb;
use switchboard::pb::client_event::Event as ClientEv;
use switchboard::pb::core_service_client::CoreServiceClient;
use switchboard::pb::feed_response::Frame;
use switchboard::pb::routing_event::Event as Ev;
use switchboard::pb::routing_service_client::RoutingServiceClient;
use tonic::Code;

const PASSWORD: &str = "feed-Pw-7";
/// Bounds every wait, so that a broken server fails the test instead of hanging it.
const WAIT: Duration = Duration::from_secs(20);

fn offer_to(task_id: &str, agent: &str) -> impl Fn(&pb::ClientEvent) -> bool {
    let (task_id, agent) = (task_id.to_owned(), agent.to_owned());
    move |e| {
        matches!(&e.event, Some(ClientEv::Routing(r))
            if matches!(&r.event, Some(Ev::TaskAgentSelected(s)) if s.task_id == task_id && s.agent_id == agent))
    }
}

fn accept_enabled(e: &pb::ClientEvent) -> bool {
    matches!(&e.event, Some(ClientEv::SessionState(s))
        if s.actions.iter().any(|a| a.name == "routing.accept" && a.r#type() == pb::ActionChangeType::Enable))
}

async fn server(grace_ms: u64) -> (TestServer, Clients) {
    let server = TestServer::start_with(ServerConfig {
        presence_grace_ms: grace_ms,
        watch_progress_ms: 200,
        ..ServerConfig::in_memory()
    })
    .await;
    let mut admin = server.clients().await;
    RoutingSetup::chat()
        .offer_timeout(3600)
        .logout_action(pb::LogoutAction::Requeue)
        .agents(&["ana", "ben"], PASSWORD)
        .apply(&mut admin)
        .await;
    (server, admin)
}

async fn agent(server: &TestServer, agent_id: &str) -> Clients {
    server.agent_clients(agent_id, PASSWORD).await
}

async fn routing(server: &TestServer) -> RoutingServiceClient<Channel> {
    RoutingServiceClient::new(server.channel().await)
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

/// A feed desktop of `agent_id`, signed in, logged in and ready.
async fn ready_desktop(server: &TestServer, agent_id: &str) -> (FeedDesktop, String) {
    let calls = agent(server, agent_id).await;
    let mut desktop = FeedDesktop::open(&calls, "", 0)
        .await
        .expect("the feed opens");
    let resource_id = desktop.sign_in(agent_id, PASSWORD).await;
    desktop.invoke(&resource_id, "session.login").await;
    desktop.invoke(&resource_id, "routing.ready").await;
    (desktop, resource_id)
}

#[tokio::test]
async fn a_feed_registers_its_client_and_carries_the_events_of_its_bindings() {
    let (server, mut admin) = server(60_000).await;
    let (mut desktop, _) = ready_desktop(&server, "ana").await;
    assert!(!desktop.greeting.resumed, "a new client");
    assert_eq!(
        admin.client_count().await,
        1,
        "the feed's client is registered"
    );

    // The session's view, through the workflow manager binding: routing.ready turned off.
    desktop
        .wait_for("the ready view", |e| {
            matches!(&e.event, Some(ClientEv::SessionState(s)) if s.actions.iter().any(|a| a.name == "routing.ready"))
        })
        .await;
    // Routing events about the agent, through the session binding.
    let task_id = new_task(&mut routing(&server).await).await;
    desktop
        .wait_for("the offer", offer_to(&task_id, "ana"))
        .await;
    let revisions: Vec<u64> = desktop.events.iter().map(|e| e.revision).collect();
    assert!(
        revisions.windows(2).all(|w| w[0] < w[1]),
        "in revision order, once each: {revisions:?}"
    );
    assert!(
        revisions[0] > desktop.greeting.revision,
        "nothing before the greeting"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_feed_back_in_time_resumes_its_client_and_replays_what_it_missed() {
    let (server, mut admin) = server(60_000).await;
    let (mut desktop, resource_id) = ready_desktop(&server, "ana").await;
    desktop
        .wait_for("the ready view", |e| {
            matches!(&e.event, Some(ClientEv::SessionState(_)))
        })
        .await;
    let seen = desktop.events.last().expect("an event").revision;
    let client_id = desktop.client_id();
    let calls = desktop.calls.clone();
    // The page goes away (its network drops): the call is cancelled without a word.
    drop(desktop);

    let mut routing = routing(&server).await;
    let task_id = new_task(&mut routing).await;
    // Wait until the offer is made while the desktop is away.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let task = routing
            .get_task_state(pb::GetTaskStateRequest {
                task_id: task_id.clone(),
            })
            .await
            .unwrap()
            .into_inner()
            .task
            .unwrap();
        if task.state() == pb::TaskState::Offered {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the task is offered"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(admin.client_count().await, 1, "kept for its grace period");

    let mut back = FeedDesktop::open(&calls, &client_id, seen + 1)
        .await
        .expect("the feed resumes");
    assert!(back.greeting.resumed);
    assert_eq!(back.client_id(), client_id);
    back.wait_for("the offer made while away", offer_to(&task_id, "ana"))
        .await;
    back.wait_for("routing.accept turning on", accept_enabled)
        .await;
    let replayed: Vec<u64> = back.events.iter().map(|e| e.revision).collect();
    assert!(
        replayed.iter().all(|r| *r > seen),
        "nothing seen is sent again: {replayed:?}"
    );
    assert!(
        replayed.iter().all(|r| *r <= back.greeting.revision),
        "the missed events come first: {replayed:?} (greeting at {})",
        back.greeting.revision
    );

    // Live again: accepting the offer is heard on the resumed feed, after the replay.
    back.invoke(&resource_id, "routing.accept").await;
    back.wait_for("the task accepted", |e| {
        matches!(&e.event, Some(ClientEv::Routing(r)) if matches!(&r.event,
            Some(Ev::TaskStateChanged(s)) if s.task_id == task_id && s.state() == pb::TaskState::Active))
    })
    .await;
    let all: Vec<u64> = back.events.iter().map(|e| e.revision).collect();
    assert!(
        all.windows(2).all(|w| w[0] < w[1]),
        "no gap in order, no repeat: {all:?}"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_feed_that_does_not_come_back_loses_its_offer_to_another_agent() {
    let (server, mut admin) = server(300).await;
    let (mut desktop, _) = ready_desktop(&server, "ana").await;
    let mut routing = routing(&server).await;
    let task_id = new_task(&mut routing).await;
    desktop
        .wait_for("the offer to ana", offer_to(&task_id, "ana"))
        .await;
    let (mut ben, _) = ready_desktop(&server, "ben").await;
    let (client_id, calls) = (desktop.client_id(), desktop.calls.clone());
    drop(desktop);

    ben.wait_for("the offer rerouted to ben", offer_to(&task_id, "ben"))
        .await;
    assert_eq!(admin.client_count().await, 1, "only ben's client is left");
    let refused = FeedDesktop::open(&calls, &client_id, 0).await;
    let status = refused
        .err()
        .expect("a client past its grace period is not resumed");
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    server.stop().await;
}

#[tokio::test]
async fn an_idle_feed_gets_progress_and_unregistering_ends_it() {
    let (server, mut admin) = server(60_000).await;
    let calls = agent(&server, "ana").await;
    let mut desktop = FeedDesktop::open(&calls, "", 0).await.unwrap();
    let progress = loop {
        if let Frame::Progress(progress) = desktop.next_frame().await {
            break progress;
        }
    };
    assert!(progress.revision >= desktop.greeting.revision);

    calls
        .core
        .clone()
        .unregister_client(pb::UnregisterClientRequest {
            client_id: desktop.client_id(),
            ..Default::default()
        })
        .await
        .expect("the desktop unregisters");
    let status = desktop.ending().await;
    assert_eq!(status.code(), Code::Aborted, "{status:?}");
    assert_eq!(admin.client_count().await, 0);
    server.stop().await;
}

#[tokio::test]
async fn what_a_feed_is_given_is_checked() {
    let (server, _admin) = server(60_000).await;
    let ana = agent(&server, "ana").await;
    let ben = agent(&server, "ben").await;
    let desktop = FeedDesktop::open(&ana, "", 0).await.unwrap();
    let head = desktop.greeting.revision;

    let refusal = |result: Result<FeedDesktop, tonic::Status>| result.err().expect("refused");
    let bad = refusal(FeedDesktop::open(&ana, "not-a-uuid", 0).await);
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert!(bad.message().contains("client_id"), "{bad:?}");

    let long_name = "n".repeat(300);
    let named = ana
        .core
        .clone()
        .feed(pb::FeedRequest {
            client_name: long_name,
            ..Default::default()
        })
        .await;
    let Err(named) = named else {
        panic!("an over-long name is refused")
    };
    assert_eq!(named.code(), Code::InvalidArgument);
    assert!(named.message().contains("client_name"), "{named:?}");

    // A start past the head opens (the greeting names the head), then ends.
    let mut ahead = FeedDesktop::open(&ana, &desktop.client_id(), head + 1_000)
        .await
        .unwrap();
    let status = ahead.ending().await;
    assert_eq!(status.code(), Code::OutOfRange, "{status:?}");

    // Another principal cannot take over ana's client.
    let taken = refusal(FeedDesktop::open(&ben, &desktop.client_id(), 0).await);
    assert_eq!(taken.code(), Code::PermissionDenied, "{taken:?}");

    let unsigned = CoreServiceClient::new(common::unsigned(server.raw_channel().await))
        .feed(pb::FeedRequest::default())
        .await;
    assert_eq!(
        unsigned.map(|_| ()).expect_err("refused").code(),
        Code::Unauthenticated
    );
    server.stop().await;
}
