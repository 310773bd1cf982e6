//! `/metrics` end to end: a real server with `--metrics-listen 127.0.0.1:0`, a scripted day of
//! a contact center over gRPC (agents log in, tasks are routed, one is rejected, one rings out
//! (RONA), one is transferred, one conferenced, one withdrawn while offered, all close), then
//! scrapes over HTTP. Every counter equals what happened, the gauges equal what
//! `GetQueueStats` and `ListAgentStates` answer, histogram counts equal the events they
//! observe, and the gRPC counters equal the calls made.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::routing_setup::{RoutingSetup, one_step_queue, write_queue};
use common::scrape::{Scrape, get, scrape};
use common::{Channel, TestServer, Who};
use switchboard::config::ServerConfig;
use switchboard::pb;
use switchboard::pb::routing_service_client::RoutingServiceClient;
use tokio_stream::StreamExt;
use tonic::Code;
use tonic::codegen::http::uri::PathAndQuery;

const PASSWORD: &str = "metrics-Pw-1";
/// The integration that submits and withdraws tasks.
const CHANNEL: &str = "webchat";
/// The longest any condition is waited for.
const WAIT: Duration = Duration::from_secs(20);

type Routing = RoutingServiceClient<Channel>;

/// A server on a SQLite journal in `data`, so the commit's sync is measured too.
async fn start(data: &tempfile::TempDir) -> TestServer {
    TestServer::start_with(ServerConfig {
        data_dir: data.path().to_owned(),
        metrics_listen: Some("127.0.0.1:0".parse().expect("an address")),
        // No progress notices: the watch below receives events only.
        watch_progress_ms: 3_600_000,
        ..ServerConfig::default()
    })
    .await
}

/// MRD `chat` (offers wait 30 s, wrap-up 600 s) with queue `sales` and agents ana and ben;
/// MRD `voice` (offers ring out after 1 s) with agent dan; the integration `CHANNEL`.
async fn configure(server: &TestServer) {
    let mut c = server.clients().await;
    RoutingSetup::chat()
        .wrap_up_timeout(600)
        .queue("sales", "sales >= 1")
        .agents(&["ana", "ben"], PASSWORD)
        .attribute("sales", 5)
        .log_in(&server.raw_channel().await)
        .apply(&mut c)
        .await;
    c.admin
        .upsert_mrd(pb::UpsertMrdRequest {
            mrd: Some(pb::Mrd {
                name: "voice".into(),
                max_tasks: 1,
                interruptible: false,
                offer_timeout_seconds: 1,
                wrap_up_timeout_seconds: 0,
                rona_action: pb::RonaAction::NotReady.into(),
                logout_action: pb::LogoutAction::Close.into(),
                blocks: Vec::new(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect("the voice MRD is written");
    c.create_agent("dan", PASSWORD).await;
    c.admin
        .upsert_account(pb::UpsertAccountRequest {
            account: Some(pb::Account {
                account_id: CHANNEL.into(),
                display_name: "Web chat".into(),
                secret: PASSWORD.into(),
                roles: vec![pb::Role::Integration as i32],
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .expect("the integration is created");
}

async fn routing_as(server: &TestServer, who: Who<'_>) -> Routing {
    RoutingServiceClient::new(server.channel_as(who, PASSWORD).await)
}

async fn ready(agent: &mut Routing, agent_id: &str, mrd: &str) {
    agent
        .change_agent_state(pb::ChangeAgentStateRequest {
            agent_id: agent_id.into(),
            state: pb::AgentState::Ready.into(),
            mrd: mrd.into(),
            ..Default::default()
        })
        .await
        .expect("the agent is ready");
}

/// Submits a task; answers its id and the agent it was offered to at once, if any.
async fn new_task(channel: &mut Routing, mrd: &str, queue: &str) -> (String, String) {
    let created = channel
        .new_task(pb::NewTaskRequest {
            mrd: mrd.into(),
            queue: queue.into(),
            ..Default::default()
        })
        .await
        .expect("the task is submitted")
        .into_inner();
    let task = created.task.expect("the task");
    (created.task_id, task.offered_agent_id)
}

/// Moves a task; answers the revision of the change.
async fn change(who: &mut Routing, task_id: &str, state: pb::TaskState) -> u64 {
    who.change_task_state(pb::ChangeTaskStateRequest {
        disposition_code: String::new(),
        task_id: task_id.into(),
        state: state.into(),
        ..Default::default()
    })
    .await
    .expect("the task changes")
    .into_inner()
    .revision
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

async fn queue_stats(r: &mut Routing, mrd: &str, queue: &str) -> pb::GetQueueStatsResponse {
    r.get_queue_stats(pb::GetQueueStatsRequest {
        mrd: mrd.into(),
        queue: queue.into(),
    })
    .await
    .expect("queue statistics")
    .into_inner()
}

/// Logged-in agents per (MRD, state name as the metrics label it), from `ListAgentStates`.
async fn agents_by_state(r: &mut Routing) -> BTreeMap<(String, String), f64> {
    let mut counts = BTreeMap::new();
    let mut page_token = String::new();
    loop {
        let page = r
            .list_agent_states(pb::ListAgentStatesRequest {
                page_size: 2,
                page_token,
            })
            .await
            .expect("a page of agents")
            .into_inner();
        for agent in page.agents {
            for mrd in agent.mrds {
                let state = mrd.state().as_str_name();
                let label = state
                    .trim_start_matches("AGENT_STATE_")
                    .to_ascii_lowercase();
                *counts.entry((mrd.mrd, label)).or_default() += 1.0;
            }
        }
        if page.next_page_token.is_empty() {
            return counts;
        }
        page_token = page.next_page_token;
    }
}

/// Every `switchboard_agents` series equals the count `ListAgentStates` gives (0 if none).
async fn agents_match(r: &mut Routing, scraped: &Scrape) {
    let listed = agents_by_state(r).await;
    let shown: Vec<_> = scraped.matching("switchboard_agents", &[]).collect();
    assert!(!shown.is_empty(), "agents by state are shown");
    for series in &shown {
        let key = (series.labels["mrd"].clone(), series.labels["state"].clone());
        assert_eq!(
            series.value,
            listed.get(&key).copied().unwrap_or(0.0),
            "agents {key:?}"
        );
    }
    for (key, count) in listed {
        let labels = [("mrd", key.0.as_str()), ("state", key.1.as_str())];
        assert_eq!(
            scraped.value("switchboard_agents", &labels),
            count,
            "{key:?}"
        );
    }
}

/// Scrapes until `done` holds; fails after `WAIT`.
async fn scrape_until(server: &TestServer, what: &str, done: impl Fn(&Scrape) -> bool) -> Scrape {
    let addr = server.metrics_addr.expect("metrics are served");
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let scraped = scrape(addr).await;
        if done(&scraped) {
            return scraped;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}:\n{}",
            scraped.text
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn grpc<'a>(method: &'a str, code: Option<&'a str>) -> Vec<(&'a str, &'a str)> {
    let service = if method == "unknown" {
        "unknown"
    } else {
        "switchboard.v1.RoutingService"
    };
    let mut labels = vec![("grpc_service", service), ("grpc_method", method)];
    labels.extend(code.map(|code| ("grpc_code", code)));
    labels
}

#[tokio::test]
async fn a_scripted_day_is_counted_exactly() {
    let data = tempfile::tempdir().expect("a data directory");
    let server = start(&data).await;
    let metrics = server.metrics_addr.expect("metrics are served");
    configure(&server).await;
    let mut r = RoutingServiceClient::new(server.channel().await);
    let mut channel = routing_as(&server, Who::Account(CHANNEL)).await;
    let mut ana = routing_as(&server, Who::Agent("ana")).await;
    let mut ben = routing_as(&server, Who::Agent("ben")).await;
    let mut dan = routing_as(&server, Who::Agent("dan")).await;
    let mut core = server.clients().await.core;
    let mut watch = r
        .watch_routing_events(pb::WatchRoutingEventsRequest::default())
        .await
        .expect("the watch opens")
        .into_inner();
    dan.login_agent(pb::LoginAgentRequest {
        agent_id: "dan".into(),
        password: PASSWORD.into(),
        mrd: "voice".into(),
        ..Default::default()
    })
    .await
    .expect("dan logs in");

    // t1 is offered to ana, who rejects it; with ben not ready, it waits.
    ready(&mut ana, "ana", "chat").await;
    let (t1, offered) = new_task(&mut channel, "chat", "sales").await;
    assert_eq!(offered, "ana");
    ana.reject_task(pb::RejectTaskRequest {
        task_id: t1.clone(),
        agent_id: "ana".into(),
        ..Default::default()
    })
    .await
    .expect("ana rejects");

    // The gauges while it waits: what GetQueueStats says before and after the scrape.
    let before = queue_stats(&mut r, "chat", "sales").await;
    let waiting = scrape(metrics).await;
    let after = queue_stats(&mut r, "chat", "sales").await;
    let sales = [("mrd", "chat"), ("queue", "sales")];
    assert_eq!((before.waiting, after.waiting), (1, 1));
    assert_eq!(
        waiting.value("switchboard_queue_tasks_waiting", &sales),
        1.0
    );
    let oldest = waiting.value("switchboard_queue_oldest_wait_seconds", &sales);
    assert!(
        before.longest_wait_ms as f64 / 1000.0 <= oldest
            && oldest <= after.longest_wait_ms as f64 / 1000.0,
        "{oldest} s is between {before:?} and {after:?}"
    );
    agents_match(&mut r, &waiting).await;

    // ben takes t1; t2 goes to ana, the least loaded; ana joins t1, then hands t2 to ben.
    ready(&mut ben, "ben", "chat").await;
    accept(&mut ben, "ben", &t1).await;
    let (t2, offered) = new_task(&mut channel, "chat", "sales").await;
    assert_eq!(offered, "ana");
    accept(&mut ana, "ana", &t2).await;
    ben.conference_task(pb::ConferenceTaskRequest {
        task_id: t1.clone(),
        conference_owner: "ben".into(),
        conference_participant: "ana".into(),
        mrd: "chat".into(),
        ..Default::default()
    })
    .await
    .expect("ana joins t1");
    r.transfer_task(pb::TransferTaskRequest {
        task_id: t2.clone(),
        owner_agent_id: "ana".into(),
        recipient_agent_id: "ben".into(),
        ..Default::default()
    })
    .await
    .expect("t2 goes to ben");

    // t4 rings on ana and is withdrawn; t1 is wrapped up and closed, t2 closed at once.
    let (t4, offered) = new_task(&mut channel, "chat", "sales").await;
    assert_eq!(offered, "ana");
    change(&mut channel, &t4, pb::TaskState::Closed).await;
    change(&mut ben, &t1, pb::TaskState::WrappingUp).await;
    change(&mut ben, &t1, pb::TaskState::Closed).await;
    change(&mut ben, &t2, pb::TaskState::Closed).await;

    // t3 rings on dan until the voice MRD's offer times out (RONA), then is withdrawn.
    ready(&mut dan, "dan", "voice").await;
    let (t3, offered) = new_task(&mut channel, "voice", "").await;
    assert_eq!(offered, "dan");
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let task = r
            .get_task_state(pb::GetTaskStateRequest {
                task_id: t3.clone(),
            })
            .await
            .expect("t3")
            .into_inner()
            .task
            .expect("t3's status");
        if task.state() == pb::TaskState::Queued {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "t3 never rang out");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let last = change(&mut channel, &t3, pb::TaskState::Closed).await;

    // Refused calls: an agent may not submit tasks; nobody may call an unlisted method.
    let refused = ben.new_task(pb::NewTaskRequest {
        mrd: "chat".into(),
        ..Default::default()
    });
    assert_eq!(refused.await.unwrap_err().code(), Code::PermissionDenied);
    let mut raw = tonic::client::Grpc::new(server.channel().await);
    raw.ready().await.expect("the connection is ready");
    let unlisted = raw
        .unary(
            tonic::Request::new(()),
            PathAndQuery::from_static("/switchboard.v1.RoutingService/Nothing"),
            tonic_prost::ProstCodec::<(), ()>::default(),
        )
        .await;
    assert_eq!(unlisted.unwrap_err().code(), Code::PermissionDenied);

    // The watch has everything up to the last change.
    let mut watched = 0.0;
    loop {
        let frame = tokio::time::timeout(WAIT, watch.next())
            .await
            .expect("the watch keeps up")
            .expect("the watch is open")
            .expect("the watch is healthy");
        watched += 1.0;
        if let Some(pb::watch_routing_events_response::Frame::Event(event)) = frame.frame
            && event.revision >= last
        {
            break;
        }
    }

    // Nothing is written from here on: the status and the scrape see the same revision.
    let status = core
        .get_server_status(pb::GetServerStatusRequest {})
        .await
        .expect("the status")
        .into_inner();
    let day = scrape(metrics).await;
    let m = &day;
    let chat = [("mrd", "chat")];
    let voice_default = [("mrd", "voice"), ("queue", "default")];
    let offers = |mrd, outcome| {
        m.sum(
            "switchboard_offers_total",
            &[("mrd", mrd), ("outcome", outcome)],
        )
    };
    let closed = |mrd, queue, reason| {
        m.sum(
            "switchboard_tasks_closed_total",
            &[("mrd", mrd), ("queue", queue), ("reason", reason)],
        )
    };

    // Counters: what happened.
    assert_eq!(m.value("switchboard_tasks_queued_total", &sales), 3.0);
    assert_eq!(
        m.value("switchboard_tasks_queued_total", &voice_default),
        1.0
    );
    assert_eq!(offers("chat", "accepted"), 2.0);
    assert_eq!(offers("chat", "rejected"), 1.0);
    assert_eq!(offers("chat", "rescinded"), 1.0);
    assert_eq!(offers("chat", "rona"), 0.0);
    assert_eq!(offers("voice", "rona"), 1.0);
    assert_eq!(m.sum("switchboard_offers_total", &[("mrd", "voice")]), 1.0);
    assert_eq!(closed("chat", "sales", "done"), 2.0);
    assert_eq!(closed("chat", "sales", "cancelled"), 1.0);
    assert_eq!(closed("voice", "default", "cancelled"), 1.0);
    assert_eq!(m.sum("switchboard_tasks_closed_total", &[]), 4.0);
    assert_eq!(m.value("switchboard_task_transfers_total", &chat), 1.0);
    assert_eq!(m.value("switchboard_task_conferences_total", &chat), 1.0);

    // Histograms: one observation per event they measure.
    assert_eq!(m.types["switchboard_task_wait_seconds"], "histogram");
    assert_eq!(m.value("switchboard_task_wait_seconds_count", &sales), 2.0);
    assert_eq!(
        m.value(
            "switchboard_task_wait_seconds_bucket",
            &[("mrd", "chat"), ("queue", "sales"), ("le", "+Inf")]
        ),
        2.0
    );
    assert_eq!(
        m.sum("switchboard_task_wait_seconds_count", &voice_default),
        0.0
    );
    assert_eq!(m.value("switchboard_task_handle_seconds_count", &chat), 2.0);
    assert_eq!(
        m.value("switchboard_task_wrap_up_seconds_count", &chat),
        1.0
    );

    // Gauges: what the read RPCs say.
    for (mrd, queue) in [("chat", "sales"), ("chat", "default"), ("voice", "default")] {
        let stats = queue_stats(&mut r, mrd, queue).await;
        let labels = [("mrd", mrd), ("queue", queue)];
        assert_eq!(
            m.value("switchboard_queue_tasks_waiting", &labels),
            f64::from(stats.waiting)
        );
        assert_eq!(
            m.value("switchboard_queue_oldest_wait_seconds", &labels),
            stats.longest_wait_ms as f64 / 1000.0
        );
    }
    assert_eq!(
        m.matching("switchboard_queue_tasks_waiting", &[]).count(),
        3
    );
    agents_match(&mut r, m).await;
    assert_eq!(
        m.value(
            "switchboard_agents",
            &[("mrd", "voice"), ("state", "not_ready")]
        ),
        1.0,
        "dan is NOT_READY after ringing out"
    );

    // gRPC: the calls made.
    assert_eq!(
        m.value("grpc_server_started_total", &grpc("NewTask", None)),
        5.0
    );
    assert_eq!(
        m.value("grpc_server_handled_total", &grpc("NewTask", Some("OK"))),
        4.0
    );
    assert_eq!(
        m.value(
            "grpc_server_handled_total",
            &grpc("NewTask", Some("PermissionDenied"))
        ),
        1.0
    );
    assert_eq!(
        m.value("grpc_server_msg_received_total", &grpc("NewTask", None)),
        5.0,
        "a unary call counts its request at start, the refused one too"
    );
    assert_eq!(
        m.value("grpc_server_msg_sent_total", &grpc("NewTask", None)),
        4.0
    );
    assert_eq!(
        m.value("grpc_server_handling_seconds_count", &grpc("NewTask", None)),
        5.0
    );
    for (method, calls) in [
        ("AcceptTask", 2.0),
        ("RejectTask", 1.0),
        ("TransferTask", 1.0),
        ("ConferenceTask", 1.0),
        ("ChangeTaskState", 5.0),
        ("GetQueueStats", 2.0),
    ] {
        let handled = m.value("grpc_server_handled_total", &grpc(method, Some("OK")));
        assert_eq!(handled, calls, "{method}");
        assert_eq!(
            m.sum("grpc_server_handled_total", &grpc(method, None)),
            calls
        );
    }
    assert_eq!(
        m.value(
            "grpc_server_handled_total",
            &grpc("unknown", Some("PermissionDenied"))
        ),
        1.0
    );
    // Every unary call has ended: each one started is handled, once.
    for started in m.matching("grpc_server_started_total", &[("grpc_type", "unary")]) {
        let labels: Vec<(&str, &str)> = started
            .labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            m.sum("grpc_server_handled_total", &labels),
            started.value,
            "{labels:?}"
        );
    }
    let watch_labels = grpc("WatchRoutingEvents", None);
    assert_eq!(m.value("grpc_server_open_streams", &watch_labels), 1.0);
    assert_eq!(
        m.value("grpc_server_msg_received_total", &watch_labels),
        1.0
    );
    assert_eq!(
        m.value("grpc_server_msg_sent_total", &watch_labels),
        watched
    );

    // Platform: the revision, every record committed once, the open watch.
    let revision = status.applied_revision as f64;
    assert_eq!(m.value("switchboard_revision", &[]), revision);
    assert_eq!(
        m.value("switchboard_journal_commit_records_sum", &[]),
        revision
    );
    let commits = m.value("switchboard_journal_commit_seconds_count", &[]);
    assert!(commits >= 1.0);
    assert_eq!(
        m.value("switchboard_journal_sync_seconds_count", &[]),
        commits,
        "every SQLite commit has its sync timed"
    );
    assert_eq!(m.value("switchboard_watches_open", &[]), 1.0);
    assert_eq!(m.value("switchboard_watches_lagged_total", &[]), 0.0);
    assert_eq!(
        m.value("switchboard_clients", &[]),
        f64::from(status.client_count)
    );
    assert!(m.value("process_resident_memory_bytes", &[]) > 0.0);
    assert!(m.value("process_cpu_seconds_total", &[]) > 0.0);

    // The watch ends: the server sees its client go, as a cancelled call.
    drop(watch);
    scrape_until(&server, "the watch is counted as ended", |m| {
        m.value("grpc_server_open_streams", &watch_labels) == 0.0
            && m.sum(
                "grpc_server_handled_total",
                &grpc("WatchRoutingEvents", Some("Canceled")),
            ) == 1.0
    })
    .await;
    server.stop().await;
}

/// A task that overflows after one rejection, one sent to another queue and then moved by a
/// supervisor, and an agent's next state set: the transfer and both moves are counted, and
/// each close counts under the queue the task was in when it closed.
#[tokio::test]
async fn overflows_queue_transfers_and_supervisor_moves_are_counted() {
    let data = tempfile::tempdir().expect("a data directory");
    let server = start(&data).await;
    configure(&server).await;
    let mut c = server.clients().await;
    // Nobody has `support`: a task sent there waits.
    write_queue(
        &mut c,
        one_step_queue("chat", "support", "support >= 1", pb::Queue::default()),
    )
    .await;
    // One offer in sales, then on to support.
    let overflowing = pb::Queue {
        max_attempts: 1,
        overflow_queue: "support".into(),
        ..Default::default()
    };
    write_queue(
        &mut c,
        one_step_queue("chat", "sales", "sales >= 1", overflowing),
    )
    .await;
    let mut supervisor = RoutingServiceClient::new(server.channel().await);
    let mut channel = routing_as(&server, Who::Account(CHANNEL)).await;
    let mut ana = routing_as(&server, Who::Agent("ana")).await;

    ready(&mut ana, "ana", "chat").await;
    let (overflowed, offered) = new_task(&mut channel, "chat", "sales").await;
    assert_eq!(offered, "ana");
    ana.reject_task(pb::RejectTaskRequest {
        task_id: overflowed.clone(),
        agent_id: "ana".into(),
        ..Default::default()
    })
    .await
    .expect("ana rejects it: it overflows to support");
    let (task, offered) = new_task(&mut channel, "chat", "sales").await;
    assert_eq!(offered, "ana");
    accept(&mut ana, "ana", &task).await;
    ana.transfer_task(pb::TransferTaskRequest {
        task_id: task.clone(),
        owner_agent_id: "ana".into(),
        recipient_queue: "support".into(),
        ..Default::default()
    })
    .await
    .expect("ana sends the task to support");
    supervisor
        .requeue_task(pb::RequeueTaskRequest {
            task_id: task.clone(),
            priority: 9,
            ..Default::default()
        })
        .await
        .expect("the supervisor raises its priority");
    supervisor
        .set_agent_next_state(pb::SetAgentNextStateRequest {
            agent_id: "ana".into(),
            state: pb::AgentState::NotReady.into(),
            mrd: "chat".into(),
            ..Default::default()
        })
        .await
        .expect("the supervisor sets ana's next state");
    change(&mut channel, &overflowed, pb::TaskState::Closed).await;
    change(&mut channel, &task, pb::TaskState::Closed).await;

    let closed = [
        ("mrd", "chat"),
        ("queue", "support"),
        ("reason", "cancelled"),
    ];
    let m = scrape_until(&server, "both closes are counted", |m| {
        m.sum("switchboard_tasks_closed_total", &closed) >= 2.0
    })
    .await;
    let moves = |to: &str| {
        m.sum(
            "switchboard_supervisor_moves_total",
            &[("mrd", "chat"), ("move", to)],
        )
    };
    assert_eq!(moves("requeue"), 1.0);
    assert_eq!(moves("next_not_ready"), 1.0);
    assert_eq!(m.sum("switchboard_supervisor_moves_total", &[]), 2.0);
    let transfers = |to: &str| {
        m.sum(
            "switchboard_task_transfers_total",
            &[("mrd", "chat"), ("to", to)],
        )
    };
    assert_eq!((transfers("queue"), transfers("agent")), (1.0, 0.0));
    assert_eq!(m.sum("switchboard_tasks_closed_total", &closed), 2.0);
    assert_eq!(m.sum("switchboard_tasks_closed_total", &[]), 2.0);
    let offers = |outcome: &str| {
        m.sum(
            "switchboard_offers_total",
            &[("mrd", "chat"), ("outcome", outcome)],
        )
    };
    assert_eq!((offers("rejected"), offers("accepted")), (1.0, 1.0));
    server.stop().await;
}

#[tokio::test]
async fn only_get_metrics_is_served_and_it_is_off_unless_asked() {
    let data = tempfile::tempdir().expect("a data directory");
    let server = start(&data).await;
    let metrics = server.metrics_addr.expect("metrics are served");
    let (status, _, _) = get(metrics, "/").await;
    assert_eq!(status, 404);
    let (status, headers, _) = get(metrics, "/metrics?x=1").await;
    assert_eq!(status, 200, "{headers:?}");
    server.admin_token().await;
    let scraped = scrape(metrics).await;
    assert_eq!(scraped.types["grpc_server_handled_total"], "counter");
    assert_eq!(scraped.types["grpc_server_handling_seconds"], "histogram");
    let login = [
        ("grpc_service", "switchboard.v1.AuthService"),
        ("grpc_method", "Login"),
        ("grpc_type", "unary"),
    ];
    let mut ok = login.to_vec();
    ok.push(("grpc_code", "OK"));
    assert_eq!(scraped.value("grpc_server_handled_total", &ok), 1.0);
    assert_eq!(scraped.value("grpc_server_started_total", &login), 1.0);
    server.stop().await;

    let plain = TestServer::start().await;
    assert_eq!(plain.metrics_addr, None);
    plain.stop().await;
}

#[tokio::test]
async fn a_task_waiting_across_a_restart_is_measured_from_its_arrival() {
    let data = tempfile::tempdir().expect("a data directory");
    let config = ServerConfig {
        data_dir: data.path().to_owned(),
        metrics_listen: Some("127.0.0.1:0".parse().expect("an address")),
        ..ServerConfig::default()
    };
    let server = TestServer::start_with(config.clone()).await;
    configure(&server).await;
    let mut channel = routing_as(&server, Who::Account(CHANNEL)).await;
    let (t1, offered) = new_task(&mut channel, "chat", "sales").await;
    assert_eq!(offered, "", "nobody is ready");
    server.stop().await;

    // The restarted server's tap starts from the state recovered, t1 waiting in it.
    let server = TestServer::start_with(config).await;
    let metrics = server.metrics_addr.expect("metrics are served");
    let mut ana = routing_as(&server, Who::Agent("ana")).await;
    ready(&mut ana, "ana", "chat").await;
    accept(&mut ana, "ana", &t1).await;
    change(&mut ana, &t1, pb::TaskState::Closed).await;
    let m = scrape(metrics).await;
    let sales = [("mrd", "chat"), ("queue", "sales")];
    assert_eq!(
        m.sum("switchboard_tasks_queued_total", &sales),
        0.0,
        "it arrived before"
    );
    assert_eq!(m.value("switchboard_task_wait_seconds_count", &sales), 1.0);
    assert_eq!(
        m.value(
            "switchboard_tasks_closed_total",
            &[("mrd", "chat"), ("queue", "sales"), ("reason", "done")]
        ),
        1.0
    );
    assert_eq!(
        m.value(
            "switchboard_offers_total",
            &[("mrd", "chat"), ("outcome", "accepted")]
        ),
        1.0
    );
    assert_eq!(
        m.value("switchboard_task_handle_seconds_count", &[("mrd", "chat")]),
        1.0
    );
    server.stop().await;
}

#[test]
fn the_readme_lists_every_metric() {
    let readme =
        std::fs::read_to_string(common::tools::repo_root().join("README.md")).expect("README.md");
    let section = readme
        .split("\n## Metrics\n")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("README.md has a Metrics section");
    let missing: Vec<&str> = switchboard::metrics::catalog()
        .map(|metric| metric.name)
        .filter(|name| !section.contains(&format!("`{name}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "not in the README's Metrics section: {missing:?}"
    );
}
