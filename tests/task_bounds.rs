//! What bounds the tasks a server holds. Closed tasks leave memory after
//! `--closed-task-retention-secs` and live on in the journal's history: `GetTaskState` answers
//! them from it (under the same ownership rule), `ListTasks` pages them by close time, and
//! snapshots no longer carry them. Open tasks are capped by `--max-open-tasks`. Run against the
//! server binary on a durable data directory, across restarts.

mod common;

use std::path::Path;

use common::process::ServerProcess;
use common::routing_setup::RoutingSetup;
use common::{Channel, Clients, Who, assert_status};
use prost_types::Timestamp;
use switchboard::pb;
use switchboard::pb::routing_service_client::RoutingServiceClient;
use tonic::Code;

const PASSWORD: &str = "history-Password-1";
const MRD: &str = "chat";

type Routing = RoutingServiceClient<Channel>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_tasks_leave_memory_and_are_answered_from_the_history() {
    let dir = tempfile::tempdir().unwrap();
    // No retention: a closed task leaves memory at the first command a millisecond later, and
    // at every start.
    let args = ["--closed-task-retention-secs", "0"];
    let server = ServerProcess::start_durable(dir.path(), &args).await;
    RoutingSetup::chat()
        .max_tasks(1)
        .wrap_up_timeout(300)
        .agents(&["ana", "ben"], PASSWORD)
        .log_in(&server.raw_channel().await)
        .apply(&mut Clients::new(server.channel().await))
        .await;
    let mut admin = RoutingServiceClient::new(server.channel().await);
    let mut ana = agent(&server, "ana").await;
    ready(&mut ana, "ana").await;

    let mut closed = Vec::new();
    for i in 0..3 {
        let task_id = submit(&mut admin, &format!("closed-{i}")).await;
        accept(&mut ana, &task_id).await;
        for state in [pb::TaskState::WrappingUp, pb::TaskState::Closed] {
            ana.change_task_state(pb::ChangeTaskStateRequest {
                disposition_code: String::new(),
                task_id: task_id.clone(),
                state: state.into(),
                request_id: String::new(),
            })
            .await
            .expect("the owner moves its task on");
        }
        closed.push(task_id);
    }
    let open = submit(&mut admin, "open").await;
    let history = list_history(&mut admin, None, None).await;
    assert_eq!(
        history, closed,
        "the history pages closed tasks in closing order"
    );
    server.terminate().await;

    // After a restart the closed tasks are in no snapshot and no longer in memory.
    let server = ServerProcess::start_durable(dir.path(), &args).await;
    let mut admin = RoutingServiceClient::new(server.channel().await);
    let mut ana = agent(&server, "ana").await;
    let mut ben = agent(&server, "ben").await;
    let live = list_live(&mut admin).await;
    assert_eq!(live, [open], "only the open task is in memory");

    for task_id in &closed {
        let task = ana
            .get_task_state(pb::GetTaskStateRequest {
                task_id: task_id.clone(),
            })
            .await
            .expect("the history answers the task's owner")
            .into_inner()
            .task
            .unwrap();
        assert_eq!(task.state(), pb::TaskState::Closed);
        assert_eq!(task.owner_agent_id, "ana");
        assert_eq!(task.labels, [format!("history-{}", &task.request_id)]);
    }
    assert_status(
        ben.get_task_state(pb::GetTaskStateRequest {
            task_id: closed[0].clone(),
        })
        .await,
        Code::PermissionDenied,
        "may not read task",
    );
    assert_status(
        ana.get_task_state(pb::GetTaskStateRequest {
            task_id: "no-such-task".into(),
        })
        .await,
        Code::NotFound,
        "no-such-task",
    );
    assert_eq!(list_history(&mut admin, None, None).await, closed);

    // Time ranges: nothing closed before 1970-01-02, everything before the far future.
    let day_one = Some(Timestamp {
        seconds: 86_400,
        nanos: 0,
    });
    let far = Some(Timestamp {
        seconds: 32_503_680_000,
        nanos: 0,
    });
    assert!(list_history(&mut admin, None, day_one).await.is_empty());
    assert_eq!(list_history(&mut admin, day_one, far).await, closed);
    assert_status(
        admin
            .list_tasks(pb::ListTasksRequest {
                closed_from: far,
                closed_until: day_one,
                ..Default::default()
            })
            .await,
        Code::InvalidArgument,
        "closed_until: must be after closed_from",
    );
    assert_status(
        admin
            .list_tasks(pb::ListTasksRequest {
                closed_from: Some(Timestamp {
                    seconds: -1,
                    nanos: 0,
                }),
                ..Default::default()
            })
            .await,
        Code::InvalidArgument,
        "closed_from: must not be before 1970",
    );
    // A token of the live listing is no token of a history listing.
    submit(&mut admin, "second-open").await;
    let live_token = admin
        .list_tasks(pb::ListTasksRequest {
            page_size: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .next_page_token;
    assert!(!live_token.is_empty(), "two open tasks make two pages");
    assert_status(
        admin
            .list_tasks(pb::ListTasksRequest {
                page_token: live_token,
                closed_from: day_one,
                ..Default::default()
            })
            .await,
        Code::InvalidArgument,
        "page_token",
    );
    server.terminate().await;
    assert_no_closed_task_in_the_snapshot(dir.path(), &closed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_tasks_are_refused_while_the_open_ones_fill_the_cap() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start_durable(dir.path(), &["--max-open-tasks", "2"]).await;
    RoutingSetup::chat()
        .max_tasks(1)
        .wrap_up_timeout(300)
        .agents(&["ana"], PASSWORD)
        .log_in(&server.raw_channel().await)
        .apply(&mut Clients::new(server.channel().await))
        .await;
    let mut admin = RoutingServiceClient::new(server.channel().await);
    let mut ana = agent(&server, "ana").await;
    ready(&mut ana, "ana").await;
    let first = submit(&mut admin, "first").await;
    submit(&mut admin, "second").await;
    let refused = admin
        .new_task(pb::NewTaskRequest {
            request_id: "third".into(),
            mrd: MRD.into(),
            ..Default::default()
        })
        .await;
    assert_status(refused, Code::ResourceExhausted, "--max-open-tasks");
    // A task that closes makes room.
    accept(&mut ana, &first).await;
    for state in [pb::TaskState::WrappingUp, pb::TaskState::Closed] {
        ana.change_task_state(pb::ChangeTaskStateRequest {
            disposition_code: String::new(),
            task_id: first.clone(),
            state: state.into(),
            request_id: String::new(),
        })
        .await
        .expect("the owner moves its task on");
    }
    submit(&mut admin, "third").await;
    server.terminate().await;
}

/// The latest snapshot (written at the graceful stop) carries none of `closed`.
fn assert_no_closed_task_in_the_snapshot(data_dir: &Path, closed: &[String]) {
    let journal = rusqlite::Connection::open(data_dir.join("journal.sqlite3")).unwrap();
    let body: String = journal
        .query_row(
            "SELECT body FROM snapshots ORDER BY revision DESC LIMIT 1",
            [],
            |row| row.get(0),
        )
        .expect("a snapshot was written at the stop");
    let snapshot: serde_json::Value = serde_json::from_str(&body).unwrap();
    let tasks = snapshot["routing"]["tasks"]
        .as_array()
        .expect("the snapshot lists tasks");
    assert!(!tasks.is_empty(), "the open tasks are in the snapshot");
    for task in tasks {
        let id = task["spec"]["task_id"].as_str().unwrap();
        assert!(
            !closed.iter().any(|c| c == id),
            "{id} is still in the snapshot"
        );
        assert_ne!(task["state"], "Closed", "{task}");
    }
}

async fn agent(server: &ServerProcess, agent_id: &str) -> Routing {
    RoutingServiceClient::new(server.channel_as(Who::Agent(agent_id), PASSWORD).await)
}

async fn ready(routing: &mut Routing, agent_id: &str) {
    routing
        .change_agent_state(pb::ChangeAgentStateRequest {
            agent_id: agent_id.into(),
            state: pb::AgentState::Ready.into(),
            mrd: MRD.into(),
            ..Default::default()
        })
        .await
        .expect("the agent goes ready");
}

/// Submits a task labelled `history-<request_id>`; its id.
async fn submit(routing: &mut Routing, request_id: &str) -> String {
    routing
        .new_task(pb::NewTaskRequest {
            request_id: request_id.into(),
            mrd: MRD.into(),
            labels: vec![format!("history-{request_id}")],
            ..Default::default()
        })
        .await
        .expect("the task is submitted")
        .into_inner()
        .task_id
}

async fn accept(routing: &mut Routing, task_id: &str) {
    routing
        .accept_task(pb::AcceptTaskRequest {
            task_id: task_id.into(),
            agent_id: "ana".into(),
            request_id: String::new(),
        })
        .await
        .expect("the offer is accepted");
}

/// Every task id in memory, a page of 2 at a time.
async fn list_live(routing: &mut Routing) -> Vec<String> {
    list(routing, None, None, false).await
}

/// Every task id the history has closed in the range, a page of 2 at a time.
async fn list_history(
    routing: &mut Routing,
    closed_from: Option<Timestamp>,
    closed_until: Option<Timestamp>,
) -> Vec<String> {
    let closed_from = closed_from.or(Some(Timestamp::default()));
    list(routing, closed_from, closed_until, true).await
}

async fn list(
    routing: &mut Routing,
    closed_from: Option<Timestamp>,
    closed_until: Option<Timestamp>,
    closed_only: bool,
) -> Vec<String> {
    let mut ids = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = routing
            .list_tasks(pb::ListTasksRequest {
                page_size: 2,
                page_token,
                closed_from,
                closed_until,
            })
            .await
            .expect("a page of tasks")
            .into_inner();
        if closed_only {
            for task in &page.tasks {
                assert_eq!(task.state(), pb::TaskState::Closed, "{task:?}");
            }
        }
        ids.extend(page.tasks.into_iter().map(|t| t.task_id));
        if page.next_page_token.is_empty() {
            return ids;
        }
        page_token = page.next_page_token;
    }
}
