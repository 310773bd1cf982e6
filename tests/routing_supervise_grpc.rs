//! Supervisor moves and disposition codes end to end over gRPC against a real server: a
//! supervisor requeues a task and sets an agent's next state, an agent is refused both, the
//! next state waits for the agent's work, and the events name the supervisor; a queue's
//! required disposition code is asked for, recorded and shown.

mod common;

use common::routing_setup::{RoutingSetup, one_step_queue, write_queue};
use common::routing_watch::wait_for;
use common::{Channel, TestServer, Who, assert_status};
use switchboard::pb;
use switchboard::pb::routing_event::Event as Ev;
use switchboard::pb::routing_service_client::RoutingServiceClient;
use tonic::{Code, Streaming};

const PASSWORD: &str = "supervise-Pw-1";
const SUE: &str = "account:sue";

type Routing = RoutingServiceClient<Channel>;

/// MRD `chat` with queue `sales` and agents ana and ben; a supervisor account `sue`. Answers
/// the admin's, sue's, ana's and ben's routing clients and a watch from the start.
async fn setup(
    server: &TestServer,
    setup: RoutingSetup,
) -> (
    Routing,
    Routing,
    Routing,
    Routing,
    Streaming<pb::WatchRoutingEventsResponse>,
) {
    let mut c = server.clients().await;
    setup
        .queue("sales", "sales >= 1")
        .reason_code("shift_end", "Shift end", pb::ReasonCategory::Logout)
        .agents(&["ana", "ben"], PASSWORD)
        .attribute("sales", 5)
        .apply(&mut c)
        .await;
    c.admin
        .upsert_account(pb::UpsertAccountRequest {
            account: Some(pb::Account {
                account_id: "sue".into(),
                display_name: "Sue".into(),
                secret: PASSWORD.into(),
                roles: vec![pb::Role::Supervisor.into()],
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .expect("the supervisor is created");
    let mut admin = Routing::new(server.channel().await);
    let sue = Routing::new(server.channel_as(Who::Account("sue"), PASSWORD).await);
    let ana = Routing::new(server.channel_as(Who::Agent("ana"), PASSWORD).await);
    let ben = Routing::new(server.channel_as(Who::Agent("ben"), PASSWORD).await);
    let watch = admin
        .watch_routing_events(pb::WatchRoutingEventsRequest {
            start_revision: 1,
            ..Default::default()
        })
        .await
        .expect("the watch opens")
        .into_inner();
    (admin, sue, ana, ben, watch)
}

/// Logs `agent` in on `chat` and makes it READY, as itself.
async fn ready(routing: &mut Routing, agent: &str) {
    routing
        .login_agent(pb::LoginAgentRequest {
            agent_id: agent.into(),
            password: PASSWORD.into(),
            mrd: "chat".into(),
            ..Default::default()
        })
        .await
        .expect("the agent logs in");
    routing
        .change_agent_state(pb::ChangeAgentStateRequest {
            agent_id: agent.into(),
            state: pb::AgentState::Ready.into(),
            mrd: "chat".into(),
            ..Default::default()
        })
        .await
        .expect("the agent is READY");
}

/// A new task in `sales`, offered to `agent` and accepted by it; its id.
async fn task_held_by(admin: &mut Routing, agent: &mut Routing, agent_id: &str) -> String {
    let created = admin
        .new_task(pb::NewTaskRequest {
            mrd: "chat".into(),
            queue: "sales".into(),
            priority: 5,
            ..Default::default()
        })
        .await
        .expect("the task is created")
        .into_inner();
    let task = created.task.expect("the task");
    assert_eq!(task.offered_agent_id, agent_id, "offered to {agent_id}");
    agent
        .accept_task(pb::AcceptTaskRequest {
            task_id: created.task_id.clone(),
            agent_id: agent_id.into(),
            ..Default::default()
        })
        .await
        .expect("the offer is accepted");
    created.task_id
}

fn requeue(task_id: &str, queue: &str, priority: u32) -> pb::RequeueTaskRequest {
    pb::RequeueTaskRequest {
        task_id: task_id.into(),
        queue: queue.into(),
        priority,
        ..Default::default()
    }
}

fn next_state(agent: &str, state: pb::AgentState, reason: &str) -> pb::SetAgentNextStateRequest {
    pb::SetAgentNextStateRequest {
        agent_id: agent.into(),
        state: state.into(),
        mrd: "chat".into(),
        reason_code: reason.into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_supervisor_requeues_a_task_an_agent_may_not_and_the_event_names_the_supervisor() {
    let server = TestServer::start().await;
    let (mut admin, mut sue, mut ana, _ben, mut watch) = setup(&server, RoutingSetup::chat()).await;
    let mut c = server.clients().await;
    write_queue(
        &mut c,
        one_step_queue("chat", "vip", "vip >= 1", pb::Queue::default()),
    )
    .await;
    ready(&mut ana, "ana").await;
    let task_id = task_held_by(&mut admin, &mut ana, "ana").await;

    assert_status(
        ana.requeue_task(requeue(&task_id, "", 0)).await,
        Code::PermissionDenied,
        "",
    );
    let answer = sue
        .requeue_task(requeue(&task_id, "", 9))
        .await
        .expect("a supervisor requeues a task in hand")
        .into_inner();
    let task = answer.task.expect("the task");
    assert_eq!(
        (task.state(), task.priority, task.owner_agent_id.as_str()),
        (pb::TaskState::Queued, 9, "")
    );
    assert_eq!(task.declined_agent_ids, ["ana"], "not offered to ana again");
    let event = wait_for(&mut watch, "the requeue", |e| {
        matches!(e, Ev::TaskStateChanged(s)
            if s.requeue_reason() == pb::RequeueReason::Supervisor && s.agent_id == "ana")
    })
    .await;
    assert_eq!(event.actor, SUE, "the event names who asked");

    // A move to another queue of its MRD shows on the event.
    let moved = sue
        .requeue_task(requeue(&task_id, "vip", 0))
        .await
        .expect("a supervisor moves a waiting task")
        .into_inner();
    assert_eq!(moved.task.unwrap().queue, "vip");
    wait_for(&mut watch, "the move", |e| {
        matches!(e, Ev::TaskStateChanged(s)
            if s.requeue_reason() == pb::RequeueReason::Supervisor && s.queue == "vip")
    })
    .await;

    // Refusals say what to fix.
    assert_status(
        sue.requeue_task(requeue(&task_id, "", 12)).await,
        Code::InvalidArgument,
        "priority",
    );
    assert_status(
        sue.requeue_task(requeue("no-such-task", "", 0)).await,
        Code::NotFound,
        "no-such-task",
    );
    assert_status(
        sue.requeue_task(requeue(&task_id, "nowhere", 0)).await,
        Code::NotFound,
        "nowhere",
    );
    assert_status(
        sue.requeue_task(requeue(&task_id, "vip", 0)).await,
        Code::FailedPrecondition,
        "already",
    );
    server.stop().await;
}

#[tokio::test]
async fn a_supervisors_next_state_waits_for_the_agents_work_and_names_the_supervisor() {
    let server = TestServer::start().await;
    let (mut admin, mut sue, mut ana, mut ben, mut watch) =
        setup(&server, RoutingSetup::chat()).await;
    ready(&mut ana, "ana").await;
    ready(&mut ben, "ben").await;
    let task_id = task_held_by(&mut admin, &mut ana, "ana").await;

    // Agents may not set anyone's next state, their own included.
    for agent in ["ben", "ana"] {
        assert_status(
            ana.set_agent_next_state(next_state(agent, pb::AgentState::Logout, ""))
                .await,
            Code::PermissionDenied,
            "",
        );
    }
    let answer = sue
        .set_agent_next_state(next_state("ana", pb::AgentState::Logout, "shift_end"))
        .await
        .expect("a supervisor sets ana's next state")
        .into_inner();
    let on_chat = &answer.agent.expect("the agent").mrds[0];
    assert_eq!(
        (on_chat.state(), on_chat.logout_pending_by.as_str()),
        (pb::AgentState::PendingNotReady, SUE),
        "pending while ana works"
    );
    let event = wait_for(
        &mut watch,
        "AgentNextStateSet",
        |e| matches!(e, Ev::AgentNextStateSet(s) if s.agent_id == "ana"),
    )
    .await;
    let Some(Ev::AgentNextStateSet(set)) = &event.event else {
        unreachable!()
    };
    assert_eq!(
        (set.state(), set.reason_code.as_str(), set.by.as_str()),
        (pb::AgentState::Logout, "shift_end", SUE)
    );
    assert_eq!(event.actor, SUE);

    // Ana ends her task: the LOGOUT applies.
    ana.change_task_state(pb::ChangeTaskStateRequest {
        task_id,
        state: pb::TaskState::Closed.into(),
        ..Default::default()
    })
    .await
    .expect("ana closes her task");
    wait_for(&mut watch, "ana's LOGOUT", |e| {
        matches!(e, Ev::AgentStateChanged(c)
            if c.agent_id == "ana" && c.state() == pb::AgentState::Logout)
    })
    .await;

    // A free agent's next state applies at once.
    let answer = sue
        .set_agent_next_state(next_state("ben", pb::AgentState::NotReady, ""))
        .await
        .expect("a supervisor sets ben NOT_READY")
        .into_inner();
    assert_eq!(
        answer.agent.unwrap().mrds[0].state(),
        pb::AgentState::NotReady
    );
    let answer = sue
        .set_agent_next_state(next_state("ben", pb::AgentState::Ready, ""))
        .await
        .expect("a supervisor sets ben READY")
        .into_inner();
    assert_eq!(answer.agent.unwrap().mrds[0].state(), pb::AgentState::Ready);

    // Refusals say what to fix.
    assert_status(
        sue.set_agent_next_state(next_state("ben", pb::AgentState::Login, ""))
            .await,
        Code::InvalidArgument,
        "state",
    );
    assert_status(
        sue.set_agent_next_state(next_state("zoe", pb::AgentState::Ready, ""))
            .await,
        Code::NotFound,
        "zoe",
    );
    assert_status(
        sue.set_agent_next_state(next_state("ana", pb::AgentState::Ready, ""))
            .await,
        Code::FailedPrecondition,
        "not logged in",
    );
    server.stop().await;
}

#[tokio::test]
async fn a_queues_required_disposition_code_is_asked_for_recorded_and_shown() {
    let server = TestServer::start().await;
    let (mut admin, _sue, mut ana, _ben, mut watch) = setup(&server, RoutingSetup::chat()).await;
    let mut c = server.clients().await;
    c.admin
        .upsert_queue(pb::UpsertQueueRequest {
            queue: Some(pb::Queue {
                name: "sales".into(),
                mrd: "chat".into(),
                steps: vec![pb::QueueStep {
                    expression: "sales >= 1".into(),
                    timeout_seconds: 0,
                }],
                disposition_codes: ["sale", "no_sale"]
                    .into_iter()
                    .map(|code| pb::DispositionCode {
                        code: code.into(),
                        label: code.replace('_', " "),
                    })
                    .collect(),
                disposition_required: true,
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .expect("the queue takes its codes");
    ready(&mut ana, "ana").await;
    let task_id = task_held_by(&mut admin, &mut ana, "ana").await;
    let close = |code: &str| pb::ChangeTaskStateRequest {
        task_id: task_id.clone(),
        state: pb::TaskState::Closed.into(),
        disposition_code: code.into(),
        ..Default::default()
    };
    assert_status(
        ana.change_task_state(close("")).await,
        Code::FailedPrecondition,
        "requires a disposition code",
    );
    assert_status(
        ana.change_task_state(close("refund")).await,
        Code::InvalidArgument,
        "disposition_code",
    );
    let closed = ana
        .change_task_state(close("sale"))
        .await
        .expect("closed with its code")
        .into_inner()
        .task
        .unwrap();
    assert_eq!(
        (closed.disposition_code.as_str(), closed.disposition_missing),
        ("sale", false)
    );
    wait_for(&mut watch, "the close", |e| {
        matches!(e, Ev::TaskStateChanged(s)
            if s.state() == pb::TaskState::Closed && s.disposition_code == "sale")
    })
    .await;
    let read = admin
        .get_task_state(pb::GetTaskStateRequest {
            task_id: task_id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .task
        .unwrap();
    assert_eq!(read.disposition_code, "sale");
    server.stop().await;
}
