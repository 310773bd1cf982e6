//! Idempotent requests (`request_id`) end to end against real servers:
//!
//! - a `NewTask` retried with the same id and body, after its reply was lost or not, gets the
//!   first answer (same task id, same revision) and queues exactly one task, even when the
//!   retries race each other;
//! - the same id with a different body (or for another method) is ALREADY_EXISTS naming the
//!   id, and changes nothing;
//! - ids and their answers survive a graceful restart of a durable server;
//! - `RegisterClient` retried gets the same client; an `UpsertAgent` retried with another
//!   password gets the first answer and keeps the first password (passwords are not part of
//!   the fingerprint); ids longer than 128 characters are INVALID_ARGUMENT; an empty id is not
//!   idempotent;
//! - an inner request on a `Connect` stream retried with its id gets the first answer, on the
//!   same stream, on a new stream and as a unary call.
//!
//! "Nothing changed" is checked with the server's current revision (the revision a read
//! answers with), which moves with every committed event.

mod common;

use std::path::Path;
use std::time::Duration;

use common::Channel;
use common::desktop::ConnectedDesktop;
use common::routing_setup::RoutingSetup;
use common::{Clients, DEFAULT_PROCESSOR_ID, TestServer, Who, assert_status, signed};
use switchboard::config::ServerConfig;
use switchboard::pb;
use switchboard::pb::connect_request::Request as Req;
use switchboard::pb::connect_response::Frame;
use switchboard::pb::routing_service_client::RoutingServiceClient;
use tokio_stream::StreamExt;
use tonic::Code;

const PASSWORD: &str = "idem-Pw-1";
const OTHER_PASSWORD: &str = "idem-Pw-2";
/// Bounds every wait so a broken server fails the test instead of hanging it.
const WAIT: Duration = Duration::from_secs(20);

type Routing = RoutingServiceClient<Channel>;

/// A durable server in `dir`. The first admin's secret is kept there too: only the first
/// start writes it, and every start of the harness reads it back.
fn durable(dir: &Path) -> ServerConfig {
    ServerConfig {
        data_dir: dir.into(),
        in_memory: false,
        bootstrap_secret_file: Some(dir.join("bootstrap-admin.secret")),
        ..ServerConfig::in_memory()
    }
}

async fn routing(server: &TestServer) -> Routing {
    RoutingServiceClient::new(server.channel().await)
}

/// MRD `chat` and its queue `sales`, with no agent: new tasks stay queued.
async fn configure(c: &mut Clients) {
    RoutingSetup::chat()
        .queue("sales", "sales >= 1")
        .apply(c)
        .await;
}

fn new_task(request_id: &str) -> pb::NewTaskRequest {
    pb::NewTaskRequest {
        request_id: request_id.into(),
        mrd: "chat".into(),
        queue: "sales".into(),
        priority: 3,
        conversation_id: "conv-1".into(),
        labels: vec!["web".into()],
        attributes: [("customer".to_owned(), "Jo".to_owned())].into(),
        ..Default::default()
    }
}

async fn tasks(r: &mut Routing) -> Vec<pb::TaskStatus> {
    let page = r
        .list_tasks(pb::ListTasksRequest {
            page_size: 1000,
            page_token: String::new(),
            ..Default::default()
        })
        .await
        .expect("tasks are listed")
        .into_inner();
    assert!(page.next_page_token.is_empty(), "one page holds them all");
    page.tasks
}

/// The tasks queued with `request_id`.
async fn tasks_with(r: &mut Routing, request_id: &str) -> Vec<pb::TaskStatus> {
    tasks(r)
        .await
        .into_iter()
        .filter(|t| t.request_id == request_id)
        .collect()
}

async fn waiting_in_sales(r: &mut Routing) -> u32 {
    r.get_queue_stats(pb::GetQueueStatsRequest {
        mrd: "chat".into(),
        queue: "sales".into(),
    })
    .await
    .expect("the queue has statistics")
    .into_inner()
    .waiting
}

/// The server's current revision: a read answers with it and commits nothing.
async fn current_revision(r: &mut Routing) -> u64 {
    r.list_tasks(pb::ListTasksRequest::default())
        .await
        .expect("tasks are listed")
        .into_inner()
        .revision
}

#[tokio::test]
async fn a_retried_new_task_gets_the_first_answer_and_queues_one_task() {
    let server = TestServer::start().await;
    let mut c = server.clients().await;
    configure(&mut c).await;
    let mut r = routing(&server).await;

    let first = r.new_task(new_task("r-1")).await.unwrap().into_inner();
    assert!(!first.task_id.is_empty());
    assert_eq!(first.task.as_ref().unwrap().request_id, "r-1");
    let committed = current_revision(&mut r).await;
    assert_eq!(committed, first.revision);

    let retry = r.new_task(new_task("r-1")).await.unwrap().into_inner();
    assert_eq!(retry, first, "the retry gets the first answer, whole");
    assert_eq!(
        current_revision(&mut r).await,
        committed,
        "the retry committed nothing"
    );
    assert_eq!(tasks(&mut r).await.len(), 1);
    assert_eq!(waiting_in_sales(&mut r).await, 1);

    // Retries racing each other (and the first call) still queue one task.
    let racing: Vec<_> = (0..8)
        .map(|_| {
            let mut r = r.clone();
            tokio::spawn(async move { r.new_task(new_task("r-2")).await })
        })
        .collect();
    let mut answers = Vec::new();
    for call in racing {
        answers.push(
            call.await
                .unwrap()
                .expect("every racer is answered")
                .into_inner(),
        );
    }
    assert!(
        answers.windows(2).all(|w| w[0] == w[1]),
        "every racer got the same answer: {answers:?}"
    );
    assert_ne!(answers[0].task_id, first.task_id);
    assert_eq!(tasks_with(&mut r, "r-2").await.len(), 1);
    assert_eq!(tasks(&mut r).await.len(), 2);

    // Without an id a request is not idempotent: each call queues a task.
    let a = r.new_task(new_task("")).await.unwrap().into_inner();
    let b = r.new_task(new_task("")).await.unwrap().into_inner();
    assert_ne!(a.task_id, b.task_id);
    assert!(b.revision > a.revision);
    assert_eq!(tasks(&mut r).await.len(), 4);
    assert_eq!(waiting_in_sales(&mut r).await, 4);

    server.stop().await;
}

#[tokio::test]
async fn a_retry_after_a_lost_reply_creates_one_task() {
    let server = TestServer::start().await;
    let mut c = server.clients().await;
    configure(&mut c).await;
    let mut r = routing(&server).await;

    // The first call commits (the watch shows its task) but its caller never reads the reply.
    let mut queued = r
        .watch_routing_events(pb::WatchRoutingEventsRequest {
            start_revision: 0,
            kinds: vec![pb::RoutingEventKind::TaskQueued.into()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let lost_call = {
        let mut r = r.clone();
        tokio::spawn(async move { r.new_task(new_task("lost-1")).await })
    };
    let event = loop {
        let frame = tokio::time::timeout(WAIT, queued.next())
            .await
            .expect("the task is queued in time")
            .expect("the watch is open")
            .expect("the watch is healthy");
        if let Some(pb::watch_routing_events_response::Frame::Event(event)) = frame.frame {
            break event;
        }
    };
    let Some(pb::routing_event::Event::TaskQueued(task_queued)) = &event.event else {
        panic!("the watch only shows queued tasks: {event:?}");
    };
    assert_eq!(task_queued.request_id, "lost-1");
    lost_call.abort();
    drop(queued);

    let retry = r.new_task(new_task("lost-1")).await.unwrap().into_inner();
    assert_eq!(
        retry.task_id, task_queued.task_id,
        "the retry gets the task the lost call queued"
    );
    assert!(retry.revision >= event.revision);
    assert_eq!(tasks_with(&mut r, "lost-1").await.len(), 1);

    // Calls cut off at once, whether or not they reached the server: a retry still leaves
    // exactly one task per id.
    for i in 0..5 {
        let id = format!("cut-{i}");
        let _ = tokio::time::timeout(Duration::ZERO, r.clone().new_task(new_task(&id))).await;
        let _ =
            tokio::time::timeout(Duration::from_millis(i), r.clone().new_task(new_task(&id))).await;
        let retry = r.new_task(new_task(&id)).await.unwrap().into_inner();
        let queued = tasks_with(&mut r, &id).await;
        assert_eq!(queued.len(), 1, "{id}: {queued:?}");
        assert_eq!(queued[0].task_id, retry.task_id);
    }
    assert_eq!(tasks(&mut r).await.len(), 6);

    server.stop().await;
}

#[tokio::test]
async fn reusing_an_id_for_a_different_request_is_already_exists_and_changes_nothing() {
    let server = TestServer::start().await;
    let mut c = server.clients().await;
    configure(&mut c).await;
    let mut r = routing(&server).await;
    let first = r.new_task(new_task("r-1")).await.unwrap().into_inner();
    let committed = current_revision(&mut r).await;

    // Another body under the same id: a different priority, then different attributes.
    let higher = pb::NewTaskRequest {
        priority: 9,
        ..new_task("r-1")
    };
    assert_status(r.new_task(higher).await, Code::AlreadyExists, "r-1");
    let mut other_attributes = new_task("r-1");
    other_attributes
        .attributes
        .insert("customer".into(), "Sam".into());
    let refused = r.new_task(other_attributes).await;
    assert_status(refused, Code::AlreadyExists, "request_id");

    // The same id for another method is another request too.
    let delete = c
        .admin
        .delete_queue(pb::DeleteQueueRequest {
            mrd: "chat".into(),
            name: "sales".into(),
            request_id: "r-1".into(),
        })
        .await;
    assert_status(delete, Code::AlreadyExists, "r-1");
    let queues = c
        .admin
        .list_queues(pb::ListQueuesRequest {})
        .await
        .unwrap()
        .into_inner()
        .queues;
    assert!(
        queues.iter().any(|q| q.name == "sales"),
        "the queue is still there: {queues:?}"
    );

    assert_eq!(
        current_revision(&mut r).await,
        committed,
        "nothing was committed"
    );
    assert_eq!(tasks(&mut r).await.len(), 1);
    assert_eq!(waiting_in_sales(&mut r).await, 1);
    // The original request still gets its first answer.
    let retry = r.new_task(new_task("r-1")).await.unwrap().into_inner();
    assert_eq!(retry, first);

    server.stop().await;
}

#[tokio::test]
async fn request_ids_and_their_answers_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_with(durable(dir.path())).await;
    let mut c = server.clients().await;
    // Signing in commits (it starts a refresh chain), so the admin signs in once, before the
    // task, and keeps its access token across the restart: the durable server keeps its
    // signing key, and the restarted server's revision is then exactly the first answer's.
    let token = server.admin_token().await;
    configure(&mut c).await;
    let mut r = RoutingServiceClient::new(signed(server.raw_channel().await, &token));
    let first = r
        .new_task(new_task("r-restart"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        current_revision(&mut r).await,
        first.revision,
        "the task was the last thing committed before the stop"
    );
    drop((c, r));
    server.stop().await;

    let server = TestServer::start_with(durable(dir.path())).await;
    let mut r = RoutingServiceClient::new(signed(server.raw_channel().await, &token));
    let committed = current_revision(&mut r).await;
    assert_eq!(
        committed, first.revision,
        "the restart replayed the journal"
    );

    let retry = r
        .new_task(new_task("r-restart"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(retry.task_id, first.task_id);
    assert_eq!(retry.revision, first.revision);
    assert_eq!(retry, first, "the whole first answer, as remembered");
    let different = pb::NewTaskRequest {
        priority: 10,
        ..new_task("r-restart")
    };
    assert_status(
        r.new_task(different).await,
        Code::AlreadyExists,
        "r-restart",
    );
    assert_eq!(current_revision(&mut r).await, committed);
    let queued = tasks(&mut r).await;
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0].task_id, first.task_id);

    server.stop().await;
}

#[tokio::test]
async fn a_retried_register_client_gets_the_same_client() {
    let server = TestServer::start().await;
    let mut c = server.clients().await;
    let register = |name: &str, request_id: &str| pb::RegisterClientRequest {
        client_name: name.into(),
        request_id: request_id.into(),
    };

    let first = c
        .core
        .register_client(register("media-bar ana", "reg-1"))
        .await
        .unwrap()
        .into_inner();
    let retry = c
        .core
        .register_client(register("media-bar ana", "reg-1"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(retry.client_id, first.client_id);
    assert_eq!(retry.revision, first.revision);
    assert_eq!(c.client_count().await, 1, "one client registered");

    assert_status(
        c.core
            .register_client(register("media-bar bob", "reg-1"))
            .await,
        Code::AlreadyExists,
        "reg-1",
    );
    assert_eq!(c.client_count().await, 1);

    // Without an id, each call registers another client.
    let a = c.register("media-bar ana").await;
    let b = c.register("media-bar ana").await;
    assert_ne!(a, b);
    assert_eq!(c.client_count().await, 3);

    server.stop().await;
}

#[tokio::test]
async fn an_upsert_agent_retry_gets_the_first_answer_whatever_its_password() {
    let server = TestServer::start().await;
    let mut c = server.clients().await;
    let mut r = routing(&server).await;
    let upsert = |display_name: &str, password: &str| pb::UpsertAgentRequest {
        agent: Some(pb::Agent {
            agent_id: "ana".into(),
            display_name: display_name.into(),
            password: password.into(),
            ..Default::default()
        }),
        request_id: "ua-1".into(),
    };

    let first = c
        .admin
        .upsert_agent(upsert("Ana", PASSWORD))
        .await
        .unwrap()
        .into_inner();
    assert!(first.created);
    let committed = current_revision(&mut r).await;

    // Passwords are left out of the fingerprint, so this is a retry: the first answer...
    let retry = c
        .admin
        .upsert_agent(upsert("Ana", OTHER_PASSWORD))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(retry, first);
    assert_eq!(current_revision(&mut r).await, committed);
    // ...and the first password stays in force: ana signs in with it, not with the other,
    // and connecting (as herself) checks the password given against it too.
    assert_status(
        common::auth::try_sign_in(
            &server.raw_channel().await,
            Who::Agent("ana"),
            OTHER_PASSWORD,
        )
        .await,
        Code::Unauthenticated,
        "",
    );
    let mut ana = RoutingServiceClient::new(server.channel_as(Who::Agent("ana"), PASSWORD).await);
    let connect = |password: &str| pb::ConnectAgentRequest {
        agent_id: "ana".into(),
        password: password.into(),
        extension: "1001".into(),
        ..Default::default()
    };
    assert_status(
        ana.connect_agent(connect(OTHER_PASSWORD)).await,
        Code::Unauthenticated,
        "",
    );
    ana.connect_agent(connect(PASSWORD))
        .await
        .expect("the first password is the agent's");

    // Anything else that differs is another request.
    assert_status(
        c.admin.upsert_agent(upsert("Ana B.", PASSWORD)).await,
        Code::AlreadyExists,
        "ua-1",
    );
    let stored = c
        .admin
        .get_agent(pb::GetAgentRequest {
            agent_id: "ana".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .agent
        .unwrap();
    assert_eq!(stored.display_name, "Ana");

    server.stop().await;
}

#[tokio::test]
async fn request_ids_are_at_most_128_characters_without_control_characters() {
    let server = TestServer::start().await;
    let mut c = server.clients().await;
    configure(&mut c).await;
    let mut r = routing(&server).await;
    let committed = current_revision(&mut r).await;

    let too_long = "x".repeat(129);
    assert_status(
        r.new_task(new_task(&too_long)).await,
        Code::InvalidArgument,
        "request_id",
    );
    assert_status(
        c.core
            .register_client(pb::RegisterClientRequest {
                client_name: "bar".into(),
                request_id: too_long.clone(),
            })
            .await,
        Code::InvalidArgument,
        "request_id",
    );
    assert_status(
        r.new_task(new_task("line\nbreak")).await,
        Code::InvalidArgument,
        "request_id",
    );
    assert_eq!(
        current_revision(&mut r).await,
        committed,
        "refused requests commit nothing"
    );
    assert!(tasks(&mut r).await.is_empty());

    // 128 characters is fine, counted as characters (these take two bytes each).
    for id in ["x".repeat(128), "é".repeat(128)] {
        let first = r.new_task(new_task(&id)).await.unwrap().into_inner();
        let retry = r.new_task(new_task(&id)).await.unwrap().into_inner();
        assert_eq!(retry, first);
        assert_eq!(first.task.unwrap().request_id, id);
    }
    assert_eq!(tasks(&mut r).await.len(), 2);

    server.stop().await;
}

async fn new_task_on(
    desktop: &mut ConnectedDesktop,
    request: pb::NewTaskRequest,
) -> pb::NewTaskResponse {
    match desktop.call(Req::NewTask(request)).await {
        Frame::NewTask(answer) => answer,
        other => panic!("expected a NewTask answer, got {other:?}"),
    }
}

/// Binds this stream's client to the processor service; the answer may be an error frame.
async fn bind_processor(desktop: &mut ConnectedDesktop, request_id: &str) -> Frame {
    desktop
        .answer(Req::BindService(pb::BindServiceRequest {
            client_id: String::new(),
            service_id: DEFAULT_PROCESSOR_ID.into(),
            request_id: request_id.into(),
        }))
        .await
}

#[tokio::test]
async fn a_request_retried_on_a_connect_stream_gets_the_first_answer() {
    let server = TestServer::start().await;
    let mut c = server.clients().await;
    configure(&mut c).await;
    let mut r = routing(&server).await;
    let mut desktop = ConnectedDesktop::open(&server, None).await;

    let first = new_task_on(&mut desktop, new_task("c-1")).await;
    let committed = current_revision(&mut r).await;
    let retry = new_task_on(&mut desktop, new_task("c-1")).await;
    assert_eq!(
        retry, first,
        "the retry on the stream gets the first answer"
    );
    assert_eq!(current_revision(&mut r).await, committed);

    // The same id with another body is refused with the stream's error frame.
    let refused = desktop
        .answer(Req::NewTask(pb::NewTaskRequest {
            priority: 8,
            ..new_task("c-1")
        }))
        .await;
    let Frame::Error(error) = refused else {
        panic!("expected an error frame, got {refused:?}")
    };
    assert_eq!(error.code, Code::AlreadyExists as i32, "{error:?}");
    assert!(error.message.contains("c-1"), "{error:?}");

    // A stream-relative request (empty client_id: this stream's client) retried on the
    // stream: the same answer, and the binding is made once.
    let Frame::BindService(bound) = bind_processor(&mut desktop, "c-bind").await else {
        panic!("the service binds")
    };
    assert_eq!(c.service_counts().await[0], 1);
    let committed = current_revision(&mut r).await;
    let Frame::BindService(again) = bind_processor(&mut desktop, "c-bind").await else {
        panic!("the retry is answered")
    };
    assert_eq!(again, bound);
    assert_eq!(current_revision(&mut r).await, committed);
    assert_eq!(c.service_counts().await[0], 1);

    // The reply was lost with the stream: a new stream's retry gets the first answer too,
    // and so does a unary retry.
    desktop.vanish();
    let mut reconnected = ConnectedDesktop::open(&server, None).await;
    assert_eq!(new_task_on(&mut reconnected, new_task("c-1")).await, first);
    assert_eq!(
        r.new_task(new_task("c-1")).await.unwrap().into_inner(),
        first
    );
    assert_eq!(tasks(&mut r).await.len(), 1);
    assert_eq!(tasks_with(&mut r, "c-1").await[0].task_id, first.task_id);

    drop(reconnected);
    server.stop().await;
}

/// Two desktops that happen to choose the same id for the same stream-relative request are
/// two different requests: each acts for its own client. Either both bind, or the second is
/// told its id is taken; it must never get the first desktop's answer without being bound.
/// (The fingerprint names the client the request acts for.)
#[tokio::test]
async fn the_same_id_from_two_desktops_does_not_answer_one_for_the_other() {
    let server = TestServer::start().await;
    let mut c = server.clients().await;
    let mut ana = ConnectedDesktop::open(&server, None).await;
    let mut bob = ConnectedDesktop::open(&server, None).await;

    let Frame::BindService(_) = bind_processor(&mut ana, "bind-1").await else {
        panic!("ana's desktop binds")
    };
    assert_eq!(c.service_counts().await[0], 1);
    match bind_processor(&mut bob, "bind-1").await {
        Frame::BindService(_) => assert_eq!(
            c.service_counts().await[0],
            2,
            "bob's desktop was answered as bound, so it must be bound"
        ),
        Frame::Error(error) => assert_eq!(error.code, Code::AlreadyExists as i32, "{error:?}"),
        other => panic!("unexpected answer {other:?}"),
    }

    drop((ana, bob));
    server.stop().await;
}
