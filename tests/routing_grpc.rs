//! Every media routing message end to end through gRPC against a real server: commands are
//! answered, and their events are seen on `WatchRoutingEvents` and on the agent's desktop
//! `Connect` stream. Then the whole desktop story over `Connect`.

mod common;

use std::time::Duration;

use common::Channel;
use common::desktop::ConnectedDesktop;
use common::routing_setup::RoutingSetup;
use common::routing_watch::wait_for;
use common::{DEFAULT_PROCESSOR_ID, TestServer, Who, assert_status, sign_in};
use switchboard::pb;
use switchboard::pb::connect_request::Request as Req;
use switchboard::pb::connect_response::Frame;
use switchboard::pb::routing_event::Event as Ev;
use switchboard::pb::routing_service_client::RoutingServiceClient;
use tokio_stream::StreamExt;
use tonic::Code;

const PASSWORD: &str = "routing-Pw-1";
const WAIT: Duration = Duration::from_secs(10);

/// Routing signed in as the first admin: writes, new tasks, oversight.
async fn routing(server: &TestServer) -> RoutingServiceClient<Channel> {
    RoutingServiceClient::new(server.channel().await)
}

/// Routing signed in as agent `agent`: its own connect, login, state, offers and tasks.
async fn routing_as(server: &TestServer, agent: &str) -> RoutingServiceClient<Channel> {
    RoutingServiceClient::new(server.channel_as(Who::Agent(agent), PASSWORD).await)
}

/// A one-step queue with no timeouts.
fn one_step_queue(name: &str, mrd: &str, expression: &str) -> pb::UpsertQueueRequest {
    pb::UpsertQueueRequest {
        queue: Some(pb::Queue {
            name: name.into(),
            mrd: mrd.into(),
            steps: vec![pb::QueueStep {
                expression: expression.into(),
                timeout_seconds: 0,
            }],
            task_ttl_seconds: 0,
            ..pb::Queue::default()
        }),
        ..Default::default()
    }
}

/// Configures MRD `chat` (max 2), a `sales` queue, a reason code and agents.
async fn configure(c: &mut common::Clients, agents: &[&str]) {
    RoutingSetup::chat()
        .queue("sales", "sales >= 1")
        .reason_code("lunch", "Lunch", pb::ReasonCategory::NotReady)
        .agents(agents, PASSWORD)
        .attribute("sales", 5)
        .display_names(str::to_owned)
        .apply(c)
        .await;
}

fn agent_state_is(agent: &'static str, state: pb::AgentState) -> impl FnMut(&Ev) -> bool {
    move |e| matches!(e, Ev::AgentStateChanged(c) if c.agent_id == agent && c.state() == state)
}

/// A desktop on a `Connect` stream of its own, signed in as agent `agent_id` (its token on
/// the stream) with its session prepared and bound.
async fn desktop(server: &TestServer, agent_id: &str) -> ConnectedDesktop {
    let token = sign_in(&server.raw_channel().await, Who::Agent(agent_id), PASSWORD).await;
    let mut desktop = ConnectedDesktop::open_as(server.addr, &token, None).await;
    desktop.sign_in(agent_id, PASSWORD).await;
    desktop
}

/// The latest `state.updated` actions shown once the stream is drained up to an answer.
async fn shown_actions(desktop: &mut ConnectedDesktop, agent: &str) -> Vec<(String, bool)> {
    // A cheap request flushes every event committed before it.
    desktop
        .call(Req::GetAgentState(pb::GetAgentStateRequest {
            agent_id: agent.into(),
        }))
        .await;
    let event = desktop
        .events
        .iter()
        .rev()
        .find_map(|e| match &e.event {
            Some(pb::client_event::Event::SessionState(s)) if s.name == "state.updated" => Some(s),
            _ => None,
        })
        .expect("a state.updated event");
    common::action_changes(event)
}

fn enabled(actions: &[(String, bool)], name: &str) -> bool {
    actions.iter().any(|(n, on)| n == name && *on)
}

#[tokio::test]
async fn desktop_actions_follow_the_agents_routing_state() {
    let server = TestServer::start().await;
    let mut c = server.clients().await;
    configure(&mut c, &["ana"]).await;
    let mut r = routing(&server).await;
    let mut ana = desktop(&server, "ana").await;
    let resource_id = "Switchboard-ana".to_owned();
    let invoke = |action: &str| {
        Req::InvokeAction(pb::InvokeActionRequest {
            resource_id: resource_id.clone(),
            action: action.into(),
            ..Default::default()
        })
    };

    // Before login nothing of routing applies; routing.ready is refused.
    let shown = shown_actions(&mut ana, "ana").await;
    assert!(!enabled(&shown, "routing.ready") && !enabled(&shown, "routing.accept"));
    let refused = ana.answer(invoke("routing.ready")).await;
    assert!(
        matches!(refused, Frame::Error(ref e) if e.code == Code::FailedPrecondition as i32),
        "{refused:?}"
    );

    // session.login logs the agent in for routing: NOT_READY, so routing.ready applies.
    ana.call(invoke("session.login")).await;
    let shown = shown_actions(&mut ana, "ana").await;
    assert!(
        enabled(&shown, "routing.ready") && !enabled(&shown, "routing.not_ready"),
        "{shown:?}"
    );

    // routing.ready through the workflow: ready, so not_ready applies instead.
    ana.call(invoke("routing.ready")).await;
    let shown = shown_actions(&mut ana, "ana").await;
    assert!(
        !enabled(&shown, "routing.ready") && enabled(&shown, "routing.not_ready"),
        "{shown:?}"
    );

    // An offer enables accept and reject; routing.accept takes the task.
    let task_id = r
        .new_task(pb::NewTaskRequest {
            mrd: "chat".into(),
            queue: "sales".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .task_id;
    let shown = shown_actions(&mut ana, "ana").await;
    assert!(
        enabled(&shown, "routing.accept") && enabled(&shown, "routing.reject"),
        "{shown:?}"
    );
    ana.call(invoke("routing.accept")).await;
    let shown = shown_actions(&mut ana, "ana").await;
    assert!(!enabled(&shown, "routing.accept"), "{shown:?}");
    let task = r
        .get_task_state(pb::GetTaskStateRequest { task_id })
        .await
        .unwrap()
        .into_inner()
        .task
        .unwrap();
    assert_eq!(
        (task.state(), task.owner_agent_id.as_str()),
        (pb::TaskState::Active, "ana")
    );
    server.stop().await;
}

#[tokio::test]
async fn every_routing_message_end_to_end() {
    let server = TestServer::start().await;
    let mut c = server.clients().await;
    let mut r = routing(&server).await;
    configure(&mut c, &["ana", "ben", "cid"]).await;
    let capabilities = c
        .processor
        .get_capabilities(pb::GetCapabilitiesRequest {
            service_id: DEFAULT_PROCESSOR_ID.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .capabilities;
    assert_eq!(capabilities["single-channels-supported"], "true");
    assert_eq!(capabilities["single-channels-media-types"], "chat");
    assert!(capabilities["channel-actions"].contains("transfer"));
    let mut watch = r
        .watch_routing_events(pb::WatchRoutingEventsRequest {
            start_revision: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut ana = desktop(&server, "ana").await;
    // Each agent moves itself; the admin (`r`) creates tasks and oversees.
    let mut ana_r = routing_as(&server, "ana").await;
    let mut agents = std::collections::HashMap::new();
    for agent in ["ana", "ben", "cid"] {
        agents.insert(agent.to_owned(), routing_as(&server, agent).await);
    }

    // Connect and Login.
    ana_r
        .connect_agent(pb::ConnectAgentRequest {
            agent_id: "ana".into(),
            password: PASSWORD.into(),
            extension: "1001".into(),
            destination: "sip:ana@example.test".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let login = ana_r
        .login_agent(pb::LoginAgentRequest {
            agent_id: "ana".into(),
            password: PASSWORD.into(),
            mrd: "chat".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let status = login.agent.unwrap();
    assert_eq!(
        (status.extension.as_str(), status.mrds[0].state()),
        ("1001", pb::AgentState::NotReady)
    );
    wait_for(
        &mut watch,
        "NOT_READY",
        agent_state_is("ana", pb::AgentState::NotReady),
    )
    .await;
    ana.routing_event("NOT_READY", agent_state_is("ana", pb::AgentState::NotReady))
        .await;

    // AgentState command and update.
    ana_r
        .change_agent_state(pb::ChangeAgentStateRequest {
            agent_id: "ana".into(),
            state: pb::AgentState::Ready.into(),
            mrd: "chat".into(),
            reason_code: String::new(),
            ..Default::default()
        })
        .await
        .unwrap();
    wait_for(
        &mut watch,
        "READY",
        agent_state_is("ana", pb::AgentState::Ready),
    )
    .await;
    ana.routing_event("READY", agent_state_is("ana", pb::AgentState::Ready))
        .await;

    // Task -> NewTask (TaskQueued) -> TaskAgentSelected.
    let created = r
        .new_task(pb::NewTaskRequest {
            request_id: "chat-1".into(),
            mrd: "chat".into(),
            queue: "sales".into(),
            priority: 7,
            conversation_id: "conv-1".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let task_id = created.task_id.clone();
    assert_eq!(
        created.task.unwrap().state(),
        pb::TaskState::Offered,
        "ana was free: offered at once"
    );
    let queued = wait_for(
        &mut watch,
        "TaskQueued",
        |e| matches!(e, Ev::TaskQueued(q) if q.task_id == task_id),
    )
    .await;
    let Some(Ev::TaskQueued(queued)) = queued.event else {
        unreachable!()
    };
    assert_eq!(
        (
            queued.queue.as_str(),
            queued.priority,
            queued.request_id.as_str()
        ),
        ("sales", 7, "chat-1")
    );
    let selected = wait_for(&mut watch, "TaskAgentSelected", |e| {
        matches!(e, Ev::TaskAgentSelected(_))
    })
    .await;
    let Some(Ev::TaskAgentSelected(selected)) = selected.event else {
        unreachable!()
    };
    assert_eq!(
        (
            selected.agent_id.as_str(),
            selected.selection.as_str(),
            selected.step_index
        ),
        ("ana", "step", 0)
    );
    assert!(selected.offer_deadline_time.is_some());
    ana.routing_event(
        "the offer",
        |e| matches!(e, Ev::TaskAgentSelected(s) if s.task_id == task_id),
    )
    .await;

    // GetAgentState and GetTaskState.
    let state = r
        .get_agent_state(pb::GetAgentStateRequest {
            agent_id: "ana".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let agent = state.agent.unwrap();
    assert_eq!(
        (agent.mrds[0].state(), agent.pending_offer_task_id.as_str()),
        (pb::AgentState::Reserved, task_id.as_str())
    );
    let task = r
        .get_task_state(pb::GetTaskStateRequest {
            task_id: task_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(task.task.unwrap().offered_agent_id, "ana");
    assert!(task.revision >= state.revision);

    // Accept: TaskState update ACTIVE.
    let accepted = ana_r
        .accept_task(pb::AcceptTaskRequest {
            task_id: task_id.clone(),
            agent_id: "ana".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(accepted.task.unwrap().state(), pb::TaskState::Active);
    let active = |e: &Ev| matches!(e, Ev::TaskStateChanged(s) if s.state() == pb::TaskState::Active && s.agent_id == "ana");
    wait_for(&mut watch, "ACTIVE", active).await;
    ana.routing_event("ACTIVE", active).await;

    // Conference -> TaskConferenced. The owner conferences (the admin may not: only agents on
    // a task, or the integration that created it, conference on it).
    for agent in ["ben", "cid"] {
        let own = agents.get_mut(agent).unwrap();
        own.login_agent(pb::LoginAgentRequest {
            agent_id: agent.into(),
            password: PASSWORD.into(),
            mrd: String::new(),
            ..Default::default()
        })
        .await
        .unwrap();
        own.change_agent_state(pb::ChangeAgentStateRequest {
            agent_id: agent.into(),
            state: pb::AgentState::Ready.into(),
            ..Default::default()
        })
        .await
        .unwrap();
    }
    let conferenced = ana_r
        .conference_task(pb::ConferenceTaskRequest {
            task_id: task_id.clone(),
            conference_owner: "ana".into(),
            conference_participant: "ben".into(),
            mrd: "chat".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(conferenced.task.unwrap().participant_agent_ids, ["ben"]);
    let conf = |e: &Ev| matches!(e, Ev::TaskConferenced(t) if t.owner_agent_id == "ana" && t.participant_agent_id == "ben");
    wait_for(&mut watch, "TaskConferenced", conf).await;
    ana.routing_event("TaskConferenced", conf).await;

    // Transfer -> TaskAgentTransferred.
    let transferred = r
        .transfer_task(pb::TransferTaskRequest {
            task_id: task_id.clone(),
            owner_agent_id: "ana".into(),
            recipient_agent_id: "cid".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(transferred.task.unwrap().owner_agent_id, "cid");
    let moved = |e: &Ev| matches!(e, Ev::TaskAgentTransferred(t) if t.owner_agent_id == "ana" && t.recipient_agent_id == "cid");
    wait_for(&mut watch, "TaskAgentTransferred", moved).await;
    ana.routing_event("TaskAgentTransferred", moved).await;

    // TaskState command -> TaskState update CLOSED, by its owner since the transfer.
    agents
        .get_mut("cid")
        .unwrap()
        .change_task_state(pb::ChangeTaskStateRequest {
            disposition_code: String::new(),
            task_id: task_id.clone(),
            state: pb::TaskState::Closed.into(),
            ..Default::default()
        })
        .await
        .unwrap();
    wait_for(&mut watch, "CLOSED", |e| {
        matches!(e, Ev::TaskStateChanged(s) if s.state() == pb::TaskState::Closed && s.close_reason() == pb::CloseReason::Done)
    })
    .await;

    // Reject: the task goes back ahead of all and on to the next agent.
    let second = r
        .new_task(pb::NewTaskRequest {
            mrd: "chat".into(),
            queue: "sales".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let offered_to = second.task.unwrap().offered_agent_id;
    let rejected = agents
        .get_mut(offered_to.as_str())
        .unwrap_or_else(|| panic!("offered to an unknown agent {offered_to:?}"))
        .reject_task(pb::RejectTaskRequest {
            task_id: second.task_id.clone(),
            agent_id: offered_to.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .task
        .unwrap();
    assert_eq!(rejected.priority, 11);
    assert_eq!(rejected.declined_agent_ids, [offered_to]);
    wait_for(&mut watch, "the requeue", |e| {
        matches!(e, Ev::TaskStateChanged(s) if s.requeue_reason() == pb::RequeueReason::Rejected)
    })
    .await;

    // Listings and statistics.
    let agents = r
        .list_agent_states(pb::ListAgentStatesRequest {
            page_size: 2,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(agents.agents.len(), 2);
    assert!(!agents.next_page_token.is_empty());
    let tasks = r
        .list_tasks(pb::ListTasksRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(tasks.tasks.len(), 2);
    let stats = r
        .get_queue_stats(pb::GetQueueStatsRequest {
            mrd: "chat".into(),
            queue: "sales".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        stats.agents_ready
            + stats.agents_active
            + stats.agents_busy
            + stats.agents_reserved
            + stats.agents_not_ready,
        3
    );

    // A filtered watch: only ana's agent state changes, replayed from the start.
    let mut filtered = r
        .watch_routing_events(pb::WatchRoutingEventsRequest {
            start_revision: 1,
            agent_id: "ana".into(),
            kinds: vec![pb::RoutingEventKind::AgentStateChanged.into()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    for state in [
        pb::AgentState::NotReady,
        pb::AgentState::Ready,
        pb::AgentState::Reserved,
        pb::AgentState::Active,
    ] {
        let frame = tokio::time::timeout(WAIT, filtered.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let Some(pb::watch_routing_events_response::Frame::Event(event)) = frame.frame else {
            panic!("the default progress interval is far longer than this test");
        };
        match event.event {
            Some(Ev::AgentStateChanged(c)) => {
                assert_eq!((c.agent_id.as_str(), c.state()), ("ana", state))
            }
            other => panic!("the filter let through {other:?}"),
        }
    }
    server.stop().await;
}

#[tokio::test]
async fn routing_refusals_have_the_right_status() {
    let server = TestServer::start().await;
    let mut c = server.clients().await;
    let mut r = routing(&server).await;
    configure(&mut c, &["ana"]).await;
    let mut ana = routing_as(&server, "ana").await;

    let bad_queue = c
        .admin
        .upsert_queue(one_step_queue("vip", "chat", "sales >= 11"))
        .await;
    assert_status(
        bad_queue,
        Code::InvalidArgument,
        "queue.steps: step 0 expression: column 10: proficiency must be 0 to 10",
    );
    let no_mrd = c
        .admin
        .upsert_queue(one_step_queue("q", "fax", "TRUE"))
        .await;
    assert_status(no_mrd, Code::NotFound, "mrd 'fax' not found");
    // Signed in as herself, ana still has her password checked when she gives one.
    assert_status(
        ana.login_agent(pb::LoginAgentRequest {
            agent_id: "ana".into(),
            password: "wrong".into(),
            mrd: "chat".into(),
            ..Default::default()
        })
        .await,
        Code::Unauthenticated,
        "password",
    );
    assert_status(
        ana.change_agent_state(pb::ChangeAgentStateRequest {
            agent_id: "ana".into(),
            state: pb::AgentState::Reserved.into(),
            ..Default::default()
        })
        .await,
        Code::InvalidArgument,
        "AGENT_STATE_RESERVED is set by the engine",
    );
    assert_status(
        ana.change_agent_state(pb::ChangeAgentStateRequest {
            agent_id: "ana".into(),
            state: pb::AgentState::Ready.into(),
            mrd: "chat".into(),
            ..Default::default()
        })
        .await,
        Code::FailedPrecondition,
        "not logged in on mrd 'chat'",
    );
    // An agent acts only as itself: the admin may not log ana in or set her READY.
    assert_status(
        r.login_agent(pb::LoginAgentRequest {
            agent_id: "ana".into(),
            password: PASSWORD.into(),
            mrd: "chat".into(),
            ..Default::default()
        })
        .await,
        Code::PermissionDenied,
        "needs one of the roles ROLE_AGENT",
    );
    assert_status(
        r.change_agent_state(pb::ChangeAgentStateRequest {
            agent_id: "ana".into(),
            state: pb::AgentState::Ready.into(),
            mrd: "chat".into(),
            ..Default::default()
        })
        .await,
        Code::PermissionDenied,
        "others' agents may only be set NOT_READY or LOGOUT",
    );
    assert_status(
        r.new_task(pb::NewTaskRequest {
            mrd: "chat".into(),
            priority: 12,
            ..Default::default()
        })
        .await,
        Code::InvalidArgument,
        "priority",
    );
    assert_status(
        r.new_task(pb::NewTaskRequest {
            mrd: "fax".into(),
            ..Default::default()
        })
        .await,
        Code::NotFound,
        "mrd 'fax'",
    );
    assert_status(
        r.new_task(pb::NewTaskRequest::default()).await,
        Code::InvalidArgument,
        "mrd: must not be empty",
    );
    let task = r
        .new_task(pb::NewTaskRequest {
            mrd: "chat".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        task.task.unwrap().queue,
        "default",
        "an empty queue goes to the default queue"
    );
    assert_status(
        r.transfer_task(pb::TransferTaskRequest {
            task_id: task.task_id.clone(),
            owner_agent_id: "ana".into(),
            recipient_agent_id: "ben".into(),
            ..Default::default()
        })
        .await,
        Code::FailedPrecondition,
        "not TASK_STATE_ACTIVE",
    );
    assert_status(
        ana.accept_task(pb::AcceptTaskRequest {
            task_id: task.task_id.clone(),
            agent_id: "ana".into(),
            ..Default::default()
        })
        .await,
        Code::FailedPrecondition,
        "no pending offer",
    );
    assert_status(
        r.change_task_state(pb::ChangeTaskStateRequest {
            disposition_code: String::new(),
            task_id: task.task_id.clone(),
            state: pb::TaskState::Offered.into(),
            ..Default::default()
        })
        .await,
        Code::InvalidArgument,
        "TASK_STATE_OFFERED is not one to set",
    );
    assert_status(
        r.get_task_state(pb::GetTaskStateRequest {
            task_id: "nope".into(),
        })
        .await,
        Code::NotFound,
        "task 'nope'",
    );
    assert_status(
        r.watch_routing_events(pb::WatchRoutingEventsRequest {
            kinds: vec![99],
            ..Default::default()
        })
        .await
        .map(|_| ()),
        Code::InvalidArgument,
        "kinds",
    );
    server.stop().await;
}

#[tokio::test]
async fn the_desktop_story_over_one_connect_stream() {
    let server = TestServer::start().await;
    let mut c = server.clients().await;
    configure(&mut c, &["ana", "ben"]).await;
    let mut r = routing(&server).await;

    // Prepare (inside `open`), log in, go ready: all on the desktop's one stream.
    let mut ana = desktop(&server, "ana").await;
    let mut ben = desktop(&server, "ben").await;
    for (desktop, agent) in [(&mut ana, "ana"), (&mut ben, "ben")] {
        let login = desktop
            .call(Req::InvokeAction(pb::InvokeActionRequest {
                resource_id: format!("Switchboard-{agent}"),
                action: "session.login".into(),
                ..Default::default()
            }))
            .await;
        let Frame::InvokeAction(view) = login else {
            panic!("{login:?}")
        };
        assert_eq!(view.view_state, "logged_in");
        desktop
            .call(Req::ChangeAgentState(pb::ChangeAgentStateRequest {
                agent_id: agent.into(),
                state: pb::AgentState::Ready.into(),
                ..Default::default()
            }))
            .await;
    }

    // A channel submits a chat; ana (longest available) is offered it on her stream.
    let task_id = r
        .new_task(pb::NewTaskRequest {
            mrd: "chat".into(),
            queue: "sales".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .task_id;
    let offer = ana
        .routing_event(
            "the offer",
            |e| matches!(e, Ev::TaskAgentSelected(s) if s.agent_id == "ana"),
        )
        .await;
    let Some(Ev::TaskAgentSelected(offer)) = offer.event else {
        unreachable!()
    };
    assert_eq!(offer.task_id, task_id);

    // Accept, then transfer to ben, who sees it arrive on his stream.
    ana.call(Req::AcceptTask(pb::AcceptTaskRequest {
        task_id: task_id.clone(),
        agent_id: "ana".into(),
        ..Default::default()
    }))
    .await;
    let answer = ana
        .call(Req::TransferTask(pb::TransferTaskRequest {
            task_id: task_id.clone(),
            owner_agent_id: "ana".into(),
            recipient_agent_id: "ben".into(),
            ..Default::default()
        }))
        .await;
    let Frame::TransferTask(moved) = answer else {
        panic!("{answer:?}")
    };
    assert_eq!(moved.task.unwrap().owner_agent_id, "ben");
    let arrived = ben
        .routing_event("the transferred task", |e| matches!(e, Ev::TaskAgentTransferred(t) if t.task_id == task_id && t.recipient_agent_id == "ben"))
        .await;
    assert!(
        arrived.revision <= moved.revision,
        "the answer reflects the event"
    );
    ben.routing_event(
        "ben's new state",
        agent_state_is("ben", pb::AgentState::Active),
    )
    .await;
    let answer = ben
        .call(Req::GetAgentState(pb::GetAgentStateRequest {
            agent_id: "ben".into(),
        }))
        .await;
    let Frame::GetAgentState(state) = answer else {
        panic!("{answer:?}")
    };
    assert_eq!(state.agent.unwrap().mrds[0].active_task_ids, [task_id]);
    server.stop().await;
}

/// A watch filtered by agent sees every change of that agent's task: pause, resume, wrap-up
/// and close name the agents on the task, so the filter matches them. Another agent's
/// filtered watch sees none of them.
#[tokio::test]
async fn an_agent_filtered_watch_follows_its_task_to_the_close() {
    let server = TestServer::start().await;
    let mut c = server.clients().await;
    let mut r = routing(&server).await;
    // Wrap-up lasts until the agent closes the task.
    RoutingSetup::chat()
        .wrap_up_timeout(3600)
        .queue("sales", "sales >= 1")
        .agents(&["ana", "ben"], PASSWORD)
        .attribute("sales", 5)
        .apply(&mut c)
        .await;
    let filtered = |agent: &str| pb::WatchRoutingEventsRequest {
        agent_id: agent.into(),
        ..Default::default()
    };
    let mut ana_watch = r
        .watch_routing_events(filtered("ana"))
        .await
        .unwrap()
        .into_inner();
    let mut ben_watch = r
        .watch_routing_events(filtered("ben"))
        .await
        .unwrap()
        .into_inner();
    // Each agent logs itself in and goes ready; ana, on the task, moves it along.
    let mut ana = routing_as(&server, "ana").await;
    let mut ben = routing_as(&server, "ben").await;
    for (agent, own) in [("ana", &mut ana), ("ben", &mut ben)] {
        own.login_agent(pb::LoginAgentRequest {
            agent_id: agent.into(),
            password: PASSWORD.into(),
            mrd: "chat".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    }
    ana.change_agent_state(pb::ChangeAgentStateRequest {
        agent_id: "ana".into(),
        state: pb::AgentState::Ready.into(),
        mrd: "chat".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let task_id = r
        .new_task(pb::NewTaskRequest {
            mrd: "chat".into(),
            queue: "sales".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .task_id;
    ana.accept_task(pb::AcceptTaskRequest {
        task_id: task_id.clone(),
        agent_id: "ana".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let steps = [
        pb::TaskState::Paused,
        pb::TaskState::Active,
        pb::TaskState::WrappingUp,
        pb::TaskState::Closed,
    ];
    for state in steps {
        ana.change_task_state(pb::ChangeTaskStateRequest {
            disposition_code: String::new(),
            task_id: task_id.clone(),
            state: state.into(),
            ..Default::default()
        })
        .await
        .unwrap();
    }
    for state in steps {
        let what = format!("{} for ana", state.as_str_name());
        wait_for(&mut ana_watch, &what, |e| {
            matches!(e, Ev::TaskStateChanged(t)
                    if t.task_id == task_id && t.state() == state && t.agent_id == "ana")
        })
        .await;
    }

    // Ben's watch reaches his own later change without passing any of ana's task's changes.
    ben.change_agent_state(pb::ChangeAgentStateRequest {
        agent_id: "ben".into(),
        state: pb::AgentState::Ready.into(),
        mrd: "chat".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let mut seen_by_ben = Vec::new();
    wait_for(&mut ben_watch, "ben READY", |e| {
        seen_by_ben.push(e.clone());
        agent_state_is("ben", pb::AgentState::Ready)(e)
    })
    .await;
    assert!(
        !seen_by_ben
            .iter()
            .any(|e| matches!(e, Ev::TaskStateChanged(t) if t.task_id == task_id)),
        "ben's watch saw ana's task: {seen_by_ben:?}"
    );
}
