//! Preferred agents, offered transfers, transfers to a queue and blocking MRDs end to end
//! through gRPC against a real server: the contract's new fields are read and answered, and
//! the events are seen on `WatchRoutingEvents`.

mod common;

use std::time::Duration;

use common::routing_setup::{RoutingSetup, one_step_queue, write_queue};
use common::routing_watch::wait_for_event;
use common::{Channel, TestServer, Who, assert_status};
use switchboard::config::ServerConfig;
use switchboard::pb;
use switchboard::pb::routing_event::Event as Ev;
use switchboard::pb::routing_service_client::RoutingServiceClient;
use tonic::{Code, Streaming};

const PASSWORD: &str = "routing-Pw-1";
const WAIT: Duration = Duration::from_secs(10);

async fn routing_as(server: &TestServer, agent: &str) -> RoutingServiceClient<Channel> {
    RoutingServiceClient::new(server.channel_as(Who::Agent(agent), PASSWORD).await)
}

async fn log_in(r: &mut RoutingServiceClient<Channel>, agent: &str, mrd: &str, ready: bool) {
    r.login_agent(pb::LoginAgentRequest {
        agent_id: agent.into(),
        password: PASSWORD.into(),
        mrd: mrd.into(),
        ..Default::default()
    })
    .await
    .unwrap();
    if ready {
        r.change_agent_state(pb::ChangeAgentStateRequest {
            agent_id: agent.into(),
            state: pb::AgentState::Ready.into(),
            mrd: mrd.into(),
            ..Default::default()
        })
        .await
        .unwrap();
    }
}

async fn new_task(
    r: &mut RoutingServiceClient<Channel>,
    req: pb::NewTaskRequest,
) -> pb::TaskStatus {
    r.new_task(req).await.unwrap().into_inner().task.unwrap()
}

async fn task_state(r: &mut RoutingServiceClient<Channel>, task_id: &str) -> pb::TaskStatus {
    r.get_task_state(pb::GetTaskStateRequest {
        task_id: task_id.into(),
    })
    .await
    .unwrap()
    .into_inner()
    .task
    .unwrap()
}

async fn answer(r: &mut RoutingServiceClient<Channel>, task_id: &str, agent: &str, accept: bool) {
    if accept {
        r.accept_task(pb::AcceptTaskRequest {
            task_id: task_id.into(),
            agent_id: agent.into(),
            ..Default::default()
        })
        .await
        .unwrap();
    } else {
        r.reject_task(pb::RejectTaskRequest {
            task_id: task_id.into(),
            agent_id: agent.into(),
            ..Default::default()
        })
        .await
        .unwrap();
    }
}

async fn close(r: &mut RoutingServiceClient<Channel>, task_id: &str) {
    r.change_task_state(pb::ChangeTaskStateRequest {
        task_id: task_id.into(),
        state: pb::TaskState::Closed.into(),
        ..Default::default()
    })
    .await
    .unwrap();
}

/// Whether an event offers `task` to `agent`, chosen as `selection` says.
fn offered(task: String, agent: &'static str, selection: &'static str) -> impl FnMut(&Ev) -> bool {
    move |e: &Ev| {
        matches!(e, Ev::TaskAgentSelected(s)
            if s.task_id == task && s.agent_id == agent && s.selection == selection)
    }
}

/// A server with MRD `chat` (queue `sales`; agents ana, ben and cid match it) and MRD `voice`,
/// interruptible but blocking chat; an admin's routing client and its watch of every event,
/// and each agent's own client.
struct Center {
    server: TestServer,
    admin: RoutingServiceClient<Channel>,
    watch: Streaming<pb::WatchRoutingEventsResponse>,
    ana: RoutingServiceClient<Channel>,
    ben: RoutingServiceClient<Channel>,
    cid: RoutingServiceClient<Channel>,
}

async fn center() -> Center {
    let server = TestServer::start().await;
    let mut c = server.clients().await;
    RoutingSetup::chat()
        .queue("sales", "sales >= 1")
        .agents(&["ana", "ben", "cid"], PASSWORD)
        .attribute("sales", 5)
        .apply(&mut c)
        .await;
    // Voice: interruptible, but a call (or a ringing one) keeps chat closed.
    let voice = pb::Mrd {
        name: "voice".into(),
        max_tasks: 1,
        interruptible: true,
        offer_timeout_seconds: 30,
        blocks: vec!["chat".into()],
        ..Default::default()
    };
    let written = c
        .admin
        .upsert_mrd(pb::UpsertMrdRequest {
            mrd: Some(voice.clone()),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(written.mrd.unwrap().blocks, ["chat"]);
    assert_status(
        c.admin
            .upsert_mrd(pb::UpsertMrdRequest {
                mrd: Some(pb::Mrd {
                    blocks: vec!["voice".into()],
                    ..voice.clone()
                }),
                ..Default::default()
            })
            .await,
        Code::InvalidArgument,
        "mrd.blocks: entry 0: an MRD cannot block itself",
    );

    let mut admin = RoutingServiceClient::new(server.channel().await);
    let watch = admin
        .watch_routing_events(pb::WatchRoutingEventsRequest::default())
        .await
        .unwrap()
        .into_inner();
    let ana = routing_as(&server, "ana").await;
    let ben = routing_as(&server, "ben").await;
    let cid = routing_as(&server, "cid").await;
    Center {
        server,
        admin,
        watch,
        ana,
        ben,
        cid,
    }
}

/// Point 4: with ana and ben free, a task that prefers cid waits for it, then goes to it as
/// `preferred`; cid accepts. Returns the task as submitted.
async fn cid_takes_a_task_that_prefers_it(c: &mut Center) -> pb::TaskStatus {
    log_in(&mut c.ana, "ana", "chat", true).await;
    log_in(&mut c.ben, "ben", "chat", true).await;
    log_in(&mut c.cid, "cid", "chat", false).await;
    let task = new_task(
        &mut c.admin,
        pb::NewTaskRequest {
            mrd: "chat".into(),
            queue: "sales".into(),
            preferred_agent_ids: vec!["cid".into()],
            preferred_timeout_seconds: 600,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(task.state(), pb::TaskState::Queued, "ana and ben are free");
    assert_eq!(task.preferred_agent_ids, ["cid"]);
    assert!(task.preferred_deadline_time.is_some());
    let waiting = task_state(&mut c.admin, &task.task_id).await;
    assert_eq!(
        waiting.preferred_deadline_time,
        task.preferred_deadline_time
    );
    c.cid
        .change_agent_state(pb::ChangeAgentStateRequest {
            agent_id: "cid".into(),
            state: pb::AgentState::Ready.into(),
            mrd: "chat".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let selected = wait_for_event(
        &mut c.watch,
        "the preferred offer",
        |e| matches!(e, Ev::TaskAgentSelected(s) if s.task_id == task.task_id),
    )
    .await;
    let Ev::TaskAgentSelected(selected) = selected else {
        unreachable!()
    };
    assert_eq!(
        (
            selected.agent_id.as_str(),
            selected.selection.as_str(),
            selected.preferred_index
        ),
        ("cid", "preferred", 0)
    );
    answer(&mut c.cid, &task.task_id, "cid", true).await;
    task
}

#[tokio::test]
async fn a_task_waits_for_its_preferred_agent() {
    let mut c = center().await;
    let task = cid_takes_a_task_that_prefers_it(&mut c).await;
    let held = task_state(&mut c.admin, &task.task_id).await;
    assert_eq!(held.owner_agent_id, "cid");
    assert!(held.preferred_deadline_time.is_none(), "the window is over");
    c.server.stop().await;
}

#[tokio::test]
async fn a_call_keeps_chat_closed_until_it_ends() {
    let Center {
        server,
        mut admin,
        mut watch,
        mut ana,
        ..
    } = center().await;
    // Point 6: ana on a call is offered no chat; the call's end offers it in that command.
    log_in(&mut ana, "ana", "chat", true).await;
    log_in(&mut ana, "ana", "voice", true).await;
    let call = new_task(
        &mut admin,
        pb::NewTaskRequest {
            mrd: "voice".into(),
            ..Default::default()
        },
    )
    .await;
    answer(&mut ana, &call.task_id, "ana", true).await;
    let chat = new_task(
        &mut admin,
        pb::NewTaskRequest {
            mrd: "chat".into(),
            queue: "sales".into(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(chat.state(), pb::TaskState::Queued, "blocked by the call");
    close(&mut ana, &call.task_id).await;
    wait_for_event(
        &mut watch,
        "the chat",
        offered(chat.task_id.clone(), "ana", "step"),
    )
    .await;
    answer(&mut ana, &chat.task_id, "ana", true).await;
    close(&mut ana, &chat.task_id).await;

    server.stop().await;
}

#[tokio::test]
async fn transfers_offered_and_to_a_queue() {
    let mut c = center().await;
    let task = cid_takes_a_task_that_prefers_it(&mut c).await;
    let Center {
        server,
        mut admin,
        mut watch,
        mut ana,
        mut ben,
        mut cid,
    } = c;
    // Point 5: refusals.
    let transfer = |owner: &str, agent: &str, queue: &str, consult: bool| pb::TransferTaskRequest {
        task_id: task.task_id.clone(),
        owner_agent_id: owner.into(),
        recipient_agent_id: agent.into(),
        recipient_queue: queue.into(),
        consult,
        ..Default::default()
    };
    assert_status(
        ana.transfer_task(transfer("cid", "ana", "", false)).await,
        Code::PermissionDenied,
        "agent:ana may not transfer task",
    );
    assert_status(
        cid.transfer_task(transfer("cid", "ana", "sales", false))
            .await,
        Code::InvalidArgument,
        "recipient_agent_id: name exactly one of recipient_agent_id and recipient_queue",
    );
    assert_status(
        cid.transfer_task(transfer("cid", "", "sales", true)).await,
        Code::InvalidArgument,
        "consult: applies only to a transfer to recipient_agent_id",
    );

    // An offered transfer: ana rings, rejects, and the task stays with cid.
    let pending = cid
        .transfer_task(transfer("cid", "ana", "", true))
        .await
        .unwrap()
        .into_inner()
        .task
        .unwrap();
    assert_eq!(
        (
            pending.state(),
            pending.owner_agent_id.as_str(),
            pending.offered_agent_id.as_str()
        ),
        (pb::TaskState::Active, "cid", "ana")
    );
    let ringing = wait_for_event(
        &mut watch,
        "the transfer offer",
        offered(task.task_id.clone(), "ana", "transfer"),
    )
    .await;
    let Ev::TaskAgentSelected(ringing) = ringing else {
        unreachable!()
    };
    assert_eq!(ringing.transfer_from_agent_id, "cid");
    // Only the recipient answers: the sender may not accept for it.
    assert_status(
        cid.accept_task(pb::AcceptTaskRequest {
            task_id: task.task_id.clone(),
            agent_id: "ana".into(),
            ..Default::default()
        })
        .await,
        Code::PermissionDenied,
        "may not act as agent 'ana'",
    );
    answer(&mut ana, &task.task_id, "ana", false).await;
    let declined = wait_for_event(
        &mut watch,
        "the declined transfer",
        |e| matches!(e, Ev::TaskStateChanged(s) if s.transfer_declined_agent_id == "ana"),
    )
    .await;
    let Ev::TaskStateChanged(declined) = declined else {
        unreachable!()
    };
    assert_eq!(
        (declined.agent_id.as_str(), declined.requeue_reason()),
        ("cid", pb::RequeueReason::Rejected)
    );
    assert_eq!(
        task_state(&mut admin, &task.task_id).await.owner_agent_id,
        "cid"
    );

    // Offered to ben, who accepts: the task moves.
    cid.transfer_task(transfer("cid", "ben", "", true))
        .await
        .unwrap();
    answer(&mut ben, &task.task_id, "ben", true).await;
    wait_for_event(&mut watch, "the consulted transfer", |e| {
        matches!(e, Ev::TaskAgentTransferred(t)
            if t.owner_agent_id == "cid" && t.recipient_agent_id == "ben" && t.consult)
    })
    .await;

    // To a queue, keeping its arrival: ben is released, the queue offers it again.
    let queued = ben
        .transfer_task(pb::TransferTaskRequest {
            keep_arrival: true,
            ..transfer("ben", "", "sales", false)
        })
        .await
        .unwrap()
        .into_inner()
        .task
        .unwrap();
    assert_eq!(queued.queued_time, queued.created_time);
    assert_ne!(queued.owner_agent_id, "ben");
    let requeued = wait_for_event(&mut watch, "the transfer to a queue", |e| {
        matches!(e, Ev::TaskStateChanged(s)
            if s.requeue_reason() == pb::RequeueReason::Transferred)
    })
    .await;
    let Ev::TaskStateChanged(requeued) = requeued else {
        unreachable!()
    };
    assert_eq!(
        (
            requeued.queue.as_str(),
            requeued.agent_id.as_str(),
            requeued.state()
        ),
        ("sales", "ben", pb::TaskState::Queued)
    );
    let now = task_state(&mut admin, &task.task_id).await;
    assert!(now.declined_agent_ids.contains(&"ben".to_owned()));
    assert_ne!(now.offered_agent_id, "ben");
    server.stop().await;
}

/// Waits until `task_id` is offered to `agent`; fails after `WAIT`.
async fn ringing_on(r: &mut RoutingServiceClient<Channel>, task_id: &str, agent: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while task_state(r, task_id).await.offered_agent_id != agent {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{task_id} never rang on {agent}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// What a restart must bring back of a task: where it is, who holds it, who it rings on and
/// until when, and its place in line.
fn kept(t: &pb::TaskStatus) -> impl PartialEq + std::fmt::Debug {
    (
        t.state(),
        t.queue.clone(),
        t.owner_agent_id.clone(),
        t.offered_agent_id.clone(),
        t.offer_deadline_time,
        t.queued_time,
    )
}

/// An offered transfer still ringing and a task sent to a queue come back the same after a
/// restart on the data directory (the graceful stop leaves a snapshot the start loads), and
/// the transfer can still be taken.
#[tokio::test]
async fn transfers_survive_a_restart() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let config = || ServerConfig {
        data_dir: dir.path().to_owned(),
        ..ServerConfig::default()
    };
    let server = TestServer::start_with(config()).await;
    let mut c = server.clients().await;
    RoutingSetup::chat()
        .queue("sales", "sales >= 1")
        .agents(&["ana", "ben"], PASSWORD)
        .attribute("sales", 5)
        .apply(&mut c)
        .await;
    // Nobody has `support`: a task sent there waits.
    write_queue(
        &mut c,
        one_step_queue("chat", "support", "support >= 1", pb::Queue::default()),
    )
    .await;
    let mut admin = RoutingServiceClient::new(server.channel().await);
    let mut ana = routing_as(&server, "ana").await;
    let mut ben = routing_as(&server, "ben").await;

    // ana holds two tasks (chat takes two at a time); ben is free.
    log_in(&mut ana, "ana", "chat", true).await;
    let sales = || pb::NewTaskRequest {
        mrd: "chat".into(),
        queue: "sales".into(),
        ..Default::default()
    };
    let consulted = new_task(&mut admin, sales()).await;
    ringing_on(&mut admin, &consulted.task_id, "ana").await;
    answer(&mut ana, &consulted.task_id, "ana", true).await;
    let sent = new_task(&mut admin, sales()).await;
    ringing_on(&mut admin, &sent.task_id, "ana").await;
    answer(&mut ana, &sent.task_id, "ana", true).await;
    log_in(&mut ben, "ben", "chat", true).await;
    ana.transfer_task(pb::TransferTaskRequest {
        task_id: consulted.task_id.clone(),
        owner_agent_id: "ana".into(),
        recipient_agent_id: "ben".into(),
        consult: true,
        ..Default::default()
    })
    .await
    .unwrap();
    ana.transfer_task(pb::TransferTaskRequest {
        task_id: sent.task_id.clone(),
        owner_agent_id: "ana".into(),
        recipient_queue: "support".into(),
        keep_arrival: true,
        ..Default::default()
    })
    .await
    .unwrap();
    let before = (
        task_state(&mut admin, &consulted.task_id).await,
        task_state(&mut admin, &sent.task_id).await,
    );
    assert_eq!(
        (
            before.0.owner_agent_id.as_str(),
            before.0.offered_agent_id.as_str()
        ),
        ("ana", "ben"),
        "the transfer rings on ben"
    );
    assert_eq!(
        (before.1.state(), before.1.queue.as_str()),
        (pb::TaskState::Queued, "support")
    );
    assert_eq!(
        before.1.queued_time, sent.queued_time,
        "it kept its arrival"
    );
    server.stop().await;

    let server = TestServer::start_with(config()).await;
    let mut admin = RoutingServiceClient::new(server.channel().await);
    let mut ben = routing_as(&server, "ben").await;
    let after = (
        task_state(&mut admin, &consulted.task_id).await,
        task_state(&mut admin, &sent.task_id).await,
    );
    assert_eq!(kept(&after.0), kept(&before.0));
    assert_eq!(kept(&after.1), kept(&before.1));
    // The transfer is still live: ben takes it.
    answer(&mut ben, &consulted.task_id, "ben", true).await;
    assert_eq!(
        task_state(&mut admin, &consulted.task_id)
            .await
            .owner_agent_id,
        "ben"
    );
    server.stop().await;
}
