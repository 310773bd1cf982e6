//! The queueing rules end to end through gRPC against a real server: a waiting task's position
//! and estimated wait (`TaskQueued`, `GetTaskState`, `TaskPositionChanged` on a watch), a
//! callback keeping the earlier task's place, attempts closing or overflowing a task, the
//! service level in `GetQueueStats`, and all of it across a restart.

mod common;

use common::routing_setup::{RoutingSetup, one_step_queue};
use common::routing_watch::wait_for_value;
use common::{Channel, TestServer, Who, assert_status};
use switchboard::config::ServerConfig;
use switchboard::pb;
use switchboard::pb::routing_event::Event as Ev;
use switchboard::pb::routing_service_client::RoutingServiceClient;
use tonic::{Code, Streaming};

const PASSWORD: &str = "queueing-Pw-1";

type Routing = RoutingServiceClient<Channel>;

async fn routing(server: &TestServer) -> Routing {
    RoutingServiceClient::new(server.channel().await)
}

async fn routing_as(server: &TestServer, agent: &str) -> Routing {
    RoutingServiceClient::new(server.channel_as(Who::Agent(agent), PASSWORD).await)
}

/// MRD `chat` (one task per agent), agents logged in NOT_READY, no queue yet.
async fn configure(server: &TestServer, c: &mut common::Clients, agents: &[&str]) {
    RoutingSetup::chat()
        .max_tasks(1)
        .agents(agents, PASSWORD)
        .attribute("sales", 5)
        .log_in(&server.raw_channel().await)
        .apply(c)
        .await;
}

/// A one-step queue on `chat` matching every agent, with `extra` on top.
async fn queue(c: &mut common::Clients, name: &str, extra: pb::Queue) -> pb::Queue {
    c.admin
        .upsert_queue(pb::UpsertQueueRequest {
            queue: Some(queue_config(name, extra)),
            ..Default::default()
        })
        .await
        .expect("the queue is written")
        .into_inner()
        .queue
        .expect("the queue as stored")
}

fn queue_config(name: &str, extra: pb::Queue) -> pb::Queue {
    one_step_queue("chat", name, "sales >= 1", extra)
}

async fn new_task(r: &mut Routing, queue: &str, priority: u32, callback_for: &str) -> String {
    r.new_task(pb::NewTaskRequest {
        mrd: "chat".into(),
        queue: queue.into(),
        priority,
        callback_for_task_id: callback_for.into(),
        ..Default::default()
    })
    .await
    .expect("the task is created")
    .into_inner()
    .task_id
}

async fn task(r: &mut Routing, task_id: &str) -> pb::TaskStatus {
    r.get_task_state(pb::GetTaskStateRequest {
        task_id: task_id.into(),
    })
    .await
    .expect("the task's state")
    .into_inner()
    .task
    .expect("a task")
}

async fn stats(r: &mut Routing, queue: &str) -> pb::GetQueueStatsResponse {
    r.get_queue_stats(pb::GetQueueStatsRequest {
        mrd: "chat".into(),
        queue: queue.into(),
    })
    .await
    .expect("the queue's statistics")
    .into_inner()
}

async fn ready(agent: &mut Routing, agent_id: &str) {
    agent
        .change_agent_state(pb::ChangeAgentStateRequest {
            agent_id: agent_id.into(),
            state: pb::AgentState::Ready.into(),
            mrd: "chat".into(),
            ..Default::default()
        })
        .await
        .expect("the agent is READY");
}

async fn accept(agent: &mut Routing, agent_id: &str, task_id: &str) {
    agent
        .accept_task(pb::AcceptTaskRequest {
            task_id: task_id.into(),
            agent_id: agent_id.into(),
            ..Default::default()
        })
        .await
        .expect("the offer is accepted");
}

async fn reject(agent: &mut Routing, agent_id: &str, task_id: &str) -> pb::TaskStatus {
    agent
        .reject_task(pb::RejectTaskRequest {
            task_id: task_id.into(),
            agent_id: agent_id.into(),
            ..Default::default()
        })
        .await
        .expect("the offer is rejected")
        .into_inner()
        .task
        .expect("the task")
}

async fn close(agent: &mut Routing, task_id: &str) {
    agent
        .change_task_state(pb::ChangeTaskStateRequest {
            task_id: task_id.into(),
            state: pb::TaskState::Closed.into(),
            ..Default::default()
        })
        .await
        .expect("the task closes");
}

async fn watch(
    r: &mut Routing,
    kinds: &[pb::RoutingEventKind],
) -> Streaming<pb::WatchRoutingEventsResponse> {
    r.watch_routing_events(pb::WatchRoutingEventsRequest {
        start_revision: 1,
        kinds: kinds.iter().map(|k| (*k).into()).collect(),
        ..Default::default()
    })
    .await
    .expect("the watch opens")
    .into_inner()
}

async fn queued(watch: &mut Streaming<pb::WatchRoutingEventsResponse>, id: &str) -> pb::TaskQueued {
    wait_for_value(watch, "TaskQueued", |e| match e.event? {
        Ev::TaskQueued(q) if q.task_id == id => Some(q),
        _ => None,
    })
    .await
}

async fn moved_to(watch: &mut Streaming<pb::WatchRoutingEventsResponse>, id: &str, position: u32) {
    wait_for_value(watch, "TaskPositionChanged", |e| match e.event? {
        Ev::TaskPositionChanged(p) if p.task_id == id && p.position == position => Some(()),
        _ => None,
    })
    .await;
}

#[tokio::test]
async fn position_and_estimated_wait_on_queued_get_task_state_and_the_watch() {
    let server = TestServer::start().await;
    let mut c = server.clients().await;
    configure(&server, &mut c, &["ana"]).await;
    queue(&mut c, "sales", pb::Queue::default()).await;
    let mut r = routing(&server).await;
    let mut ana = routing_as(&server, "ana").await;
    let mut all = watch(&mut r, &[]).await;
    let mut positions = watch(&mut r, &[pb::RoutingEventKind::TaskPositionChanged]).await;

    // Nobody is ready: each waits, told its place; the queue has no pace yet, so no estimate.
    let t1 = new_task(&mut r, "sales", 5, "").await;
    let t2 = new_task(&mut r, "sales", 5, "").await;
    let q2 = queued(&mut all, &t2).await;
    assert_eq!((q2.position, q2.estimated_wait_ms), (2, 0));
    let s2 = task(&mut r, &t2).await;
    assert_eq!((s2.position, s2.estimated_wait_ms), (2, 0));

    // A higher priority goes ahead: the others move back and the watch says so.
    let t3 = new_task(&mut r, "sales", 9, "").await;
    assert_eq!(queued(&mut all, &t3).await.position, 1);
    moved_to(&mut positions, &t1, 2).await;
    moved_to(&mut positions, &t2, 3).await;

    // Ana takes the head: the others move up.
    ready(&mut ana, "ana").await;
    assert_eq!(task(&mut r, &t3).await.offered_agent_id, "ana");
    moved_to(&mut positions, &t1, 1).await;
    moved_to(&mut positions, &t2, 2).await;
    let offered = task(&mut r, &t3).await;
    assert_eq!((offered.position, offered.estimated_wait_ms), (0, 0));

    // Once a task has left the queue, it has a pace: waiting tasks are given an estimate.
    accept(&mut ana, "ana", &t3).await;
    let s1 = task(&mut r, &t1).await;
    assert_eq!(s1.position, 1);
    assert!(s1.estimated_wait_ms > 0, "{s1:?}");
    let sales = stats(&mut r, "sales").await;
    assert_eq!(sales.answered, 1);
    assert!(sales.estimated_wait_ms > 0, "{sales:?}");
    server.stop().await;
}

#[tokio::test]
async fn a_callback_keeps_the_earlier_tasks_place() {
    let server = TestServer::start().await;
    let mut c = server.clients().await;
    configure(&server, &mut c, &["ana"]).await;
    queue(&mut c, "sales", pb::Queue::default()).await;
    queue(&mut c, "callbacks", pb::Queue::default()).await;
    let mut r = routing(&server).await;
    let mut all = watch(&mut r, &[]).await;

    let early = new_task(&mut r, "sales", 5, "").await;
    let later = new_task(&mut r, "sales", 5, "").await;
    // The caller asks to be called back: the callback waits where the call waited.
    let callback = new_task(&mut r, "sales", 1, &early).await;
    let q = queued(&mut all, &callback).await;
    assert_eq!(
        (q.position, q.priority, q.callback_for_task_id.as_str()),
        (1, 5, early.as_str())
    );
    let replaced = task(&mut r, &early).await;
    assert_eq!(
        (
            replaced.state(),
            replaced.close_reason(),
            replaced.callback_task_id.as_str()
        ),
        (
            pb::TaskState::Closed,
            pb::CloseReason::Cancelled,
            callback.as_str()
        )
    );
    let cb = task(&mut r, &callback).await;
    assert_eq!(
        (cb.position, cb.callback_for_task_id.as_str()),
        (1, early.as_str())
    );
    assert_eq!(task(&mut r, &later).await.position, 2);
    // A callback replaced is not abandoned.
    assert_eq!(stats(&mut r, "sales").await.abandoned, 0);

    // One callback per task; the earlier task must exist.
    assert_status(
        r.new_task(pb::NewTaskRequest {
            mrd: "chat".into(),
            queue: "callbacks".into(),
            callback_for_task_id: early.clone(),
            ..Default::default()
        })
        .await,
        Code::FailedPrecondition,
        "already has callback",
    );
    assert_status(
        r.new_task(pb::NewTaskRequest {
            mrd: "chat".into(),
            callback_for_task_id: "no-such-task".into(),
            ..Default::default()
        })
        .await,
        Code::NotFound,
        "no-such-task",
    );
    server.stop().await;
}

#[tokio::test]
async fn attempts_move_a_task_to_the_overflow_queue_or_close_it() {
    let server = TestServer::start().await;
    let mut c = server.clients().await;
    configure(&server, &mut c, &["ana"]).await;
    queue(&mut c, "spill", pb::Queue::default()).await;
    let overflow = pb::Queue {
        max_attempts: 1,
        overflow_queue: "spill".into(),
        ..Default::default()
    };
    let stored = queue(&mut c, "sales", overflow).await;
    assert_eq!(
        (stored.max_attempts, stored.overflow_queue.as_str()),
        (1, "spill")
    );
    let strict = pb::Queue {
        max_attempts: 1,
        ..Default::default()
    };
    queue(&mut c, "strict", strict).await;
    // The overflow queue must exist, on the same MRD.
    let nowhere = pb::Queue {
        max_attempts: 1,
        overflow_queue: "nowhere".into(),
        ..Default::default()
    };
    assert_status(
        c.admin
            .upsert_queue(pb::UpsertQueueRequest {
                queue: Some(queue_config("bad", nowhere)),
                ..Default::default()
            })
            .await,
        Code::InvalidArgument,
        "queue.overflow_queue",
    );
    let mut r = routing(&server).await;
    let mut ana = routing_as(&server, "ana").await;
    let mut all = watch(&mut r, &[pb::RoutingEventKind::TaskStateChanged]).await;
    ready(&mut ana, "ana").await;

    // Rejected once in `sales`: it moves to `spill`, its count started afresh.
    let t1 = new_task(&mut r, "sales", 5, "").await;
    let after = reject(&mut ana, "ana", &t1).await;
    assert_eq!(
        (after.state(), after.queue.as_str(), after.attempts),
        (pb::TaskState::Queued, "spill", 0)
    );
    let (queue, attempts) = wait_for_value(&mut all, "the overflow", |e| match e.event? {
        Ev::TaskStateChanged(s) if s.task_id == t1 && !s.queue.is_empty() => {
            Some((s.queue, s.attempts))
        }
        _ => None,
    })
    .await;
    assert_eq!((queue.as_str(), attempts), ("spill", 1));
    // (Ana let it go: it is not offered to her again, so it waits, first in `spill`.)
    assert_eq!(task(&mut r, &t1).await.position, 1);

    // Rejected once in `strict`, which has no overflow queue: it closes MAX_ATTEMPTS.
    let t2 = new_task(&mut r, "strict", 5, "").await;
    assert_eq!(task(&mut r, &t2).await.offered_agent_id, "ana");
    let closed = reject(&mut ana, "ana", &t2).await;
    assert_eq!(
        (closed.state(), closed.close_reason(), closed.attempts),
        (pb::TaskState::Closed, pb::CloseReason::MaxAttempts, 1)
    );
    wait_for_value(&mut all, "the close", |e| match e.event? {
        Ev::TaskStateChanged(s)
            if s.task_id == t2 && s.close_reason() == pb::CloseReason::MaxAttempts =>
        {
            Some(())
        }
        _ => None,
    })
    .await;
    server.stop().await;
}

/// The service level of `sales`: (target, threshold, window, answered, within, level, met).
fn level(s: &pb::GetQueueStatsResponse) -> (u32, u32, u32, u32, u32, Option<f64>, bool) {
    (
        s.service_level_target_percent,
        s.service_level_threshold_seconds,
        s.service_level_window_seconds,
        s.answered,
        s.answered_within_threshold,
        s.service_level_percent,
        s.service_level_met,
    )
}

#[tokio::test]
async fn service_level_in_get_queue_stats() {
    let server = TestServer::start().await;
    let mut c = server.clients().await;
    configure(&server, &mut c, &["ana"]).await;
    // A threshold of an hour: the answer below is within it however slow the machine.
    let target = pb::Queue {
        service_level_percent: 80,
        service_level_threshold_seconds: 3600,
        service_level_window_seconds: 600,
        ..Default::default()
    };
    queue(&mut c, "sales", target).await;
    let mut r = routing(&server).await;
    let mut ana = routing_as(&server, "ana").await;
    assert_eq!(
        level(&stats(&mut r, "sales").await),
        (80, 3600, 600, 0, 0, None, false)
    );

    ready(&mut ana, "ana").await;
    let t1 = new_task(&mut r, "sales", 5, "").await;
    accept(&mut ana, "ana", &t1).await;
    close(&mut ana, &t1).await;
    assert_eq!(
        level(&stats(&mut r, "sales").await),
        (80, 3600, 600, 1, 1, Some(100.0), true)
    );
    // A bad target names its field.
    let bad = pb::Queue {
        service_level_percent: 101,
        ..Default::default()
    };
    assert_status(
        c.admin
            .upsert_queue(pb::UpsertQueueRequest {
                queue: Some(queue_config("sales", bad)),
                ..Default::default()
            })
            .await,
        Code::InvalidArgument,
        "queue.service_level_percent",
    );
    server.stop().await;
}

/// Attempt counts, the callback link, positions and the service level window come back the
/// same after a restart (the graceful stop leaves a snapshot the start loads).
#[tokio::test]
async fn queueing_state_survives_a_restart() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let config = || ServerConfig {
        data_dir: dir.path().to_owned(),
        ..ServerConfig::default()
    };
    let server = TestServer::start_with(config()).await;
    let mut c = server.clients().await;
    configure(&server, &mut c, &["ana"]).await;
    let limits = pb::Queue {
        max_attempts: 3,
        service_level_percent: 80,
        service_level_threshold_seconds: 3600,
        ..Default::default()
    };
    queue(&mut c, "sales", limits).await;
    let mut r = routing(&server).await;
    let mut ana = routing_as(&server, "ana").await;
    ready(&mut ana, "ana").await;
    let answered = new_task(&mut r, "sales", 5, "").await;
    accept(&mut ana, "ana", &answered).await;
    close(&mut ana, &answered).await;
    let rejected = new_task(&mut r, "sales", 5, "").await;
    reject(&mut ana, "ana", &rejected).await;
    // Nobody takes the rest: they wait.
    ana.change_agent_state(pb::ChangeAgentStateRequest {
        agent_id: "ana".into(),
        state: pb::AgentState::NotReady.into(),
        mrd: "chat".into(),
        ..Default::default()
    })
    .await
    .expect("the agent is NOT_READY");
    let early = new_task(&mut r, "sales", 5, "").await;
    let callback = new_task(&mut r, "sales", 5, &early).await;
    let before = (
        task(&mut r, &rejected).await,
        task(&mut r, &early).await,
        task(&mut r, &callback).await,
        level(&stats(&mut r, "sales").await),
    );
    assert_eq!(before.0.attempts, 1);
    assert_eq!(before.1.callback_task_id, callback);
    assert_eq!((before.0.position, before.2.position), (1, 2));
    assert_eq!(before.3.3, 1);
    server.stop().await;

    let server = TestServer::start_with(config()).await;
    let mut r = routing(&server).await;
    let after = (
        task(&mut r, &rejected).await,
        task(&mut r, &early).await,
        task(&mut r, &callback).await,
        level(&stats(&mut r, "sales").await),
    );
    let same = |t: &pb::TaskStatus| {
        (
            t.state(),
            t.attempts,
            t.position,
            t.callback_for_task_id.clone(),
            t.callback_task_id.clone(),
        )
    };
    assert_eq!(same(&after.0), same(&before.0));
    assert_eq!(same(&after.1), same(&before.1));
    assert_eq!(same(&after.2), same(&before.2));
    assert_eq!(after.3, before.3);
    server.stop().await;
}
