//! Routing at scale through the server: from sending `NewTask` until a routing watch delivers
//! the task's `TaskAgentSelected`, with a small center and a large one.
//!
//! A task can only be routed at once if an eligible agent is free, and a free agent never
//! leaves an eligible task waiting; so the waiting tasks sit in a queue of their own (a
//! backlog team on break, NOT_READY), and the measured tasks go to a live team that is READY.
//! Both teams are logged in on the same MRD, and the engine holds every waiting task in its
//! indexes, snapshots and timers, which is what the large setting puts to the test.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use switchboard::domain::routing::model::RequestedAgentState;
use switchboard::pb;
use switchboard::pb::routing_service_client::RoutingServiceClient;
use tokio::sync::mpsc;
use tokio_stream::StreamExt;

use crate::auth::{self, Who};
use crate::echo::pb::EchoRequest;
use crate::echo::pb::echo_service_client::EchoServiceClient;
use crate::procs::{Cores, ServerChild, ServerKind};
use crate::seed::Seeder;
use crate::stats::{Latency, heading, ratio};
use crate::world::spec;

pub struct Settings {
    /// (agents, waiting tasks) for the small and the large center.
    pub small: (usize, usize),
    pub large: (usize, usize),
    /// Tasks routed and timed per center.
    pub tasks: usize,
}

pub async fn run(settings: &Settings, cores: Option<Cores>) {
    heading("Routing at scale: NewTask to TaskAgentSelected, through the server");
    println!(
        "{} tasks per center, one at a time; each is then accepted and closed (untimed) so the live team stays the same size.",
        settings.tasks
    );
    let echo = echo_latency(settings.tasks, cores).await;
    let small = center(settings.small, settings.tasks, cores).await;
    let large = center(settings.large, settings.tasks, cores).await;
    println!();
    println!("| center | p50 | p99 | p99 / echo p99 |");
    println!("|---|---|---|---|");
    println!(
        "| echo, one call at a time (baseline) | {} | {} | 1.00 |",
        crate::stats::ms(echo.p50),
        crate::stats::ms(echo.p99)
    );
    for ((agents, waiting), latency) in [(settings.small, small), (settings.large, large)] {
        println!(
            "| {agents} agents, {waiting} waiting | {} | {} | {:.2} |",
            crate::stats::ms(latency.p50),
            crate::stats::ms(latency.p99),
            ratio(latency.p99, echo.p99)
        );
    }
    println!(
        "\nTarget: p99 of the large center at most 2x the small one's (here {:.2}).",
        ratio(large.p99, small.p99)
    );
}

/// One echo call at a time: the round trip a routed task cannot beat.
async fn echo_latency(calls: usize, cores: Option<Cores>) -> Latency {
    let server = ServerChild::start(&ServerKind::Echo, cores.map(|c| c.server));
    let mut client = EchoServiceClient::new(server.connect().await);
    let mut samples = Vec::with_capacity(calls);
    for _ in 0..calls {
        let started = Instant::now();
        client
            .echo(EchoRequest {
                payload: b"task".to_vec(),
                broadcast: false,
            })
            .await
            .expect("an echo");
        samples.push(started.elapsed());
    }
    Latency::of(samples)
}

/// Routes `tasks` tasks one at a time on a center of `agents` agents with `waiting` tasks
/// waiting; returns their latencies.
async fn center((agents, waiting): (usize, usize), tasks: usize, cores: Option<Cores>) -> Latency {
    let data = tempfile::tempdir().expect("a temporary directory");
    let seeded = Instant::now();
    let live = seed(data.path(), agents, waiting);
    println!(
        "{agents} agents ({live} live), {waiting} waiting: journal seeded in {:.1?}",
        seeded.elapsed()
    );
    let server = ServerChild::start(
        &ServerKind::Switchboard {
            data_dir: data.path(),
            flags: &[],
        },
        cores.map(|c| c.server),
    );
    // The channel server submits tasks as the first admin; each agent accepts and closes its
    // own, signed in as itself (on the first task it gets, untimed), on one shared connection.
    let mut routing = RoutingServiceClient::new(server.connect_admin().await);
    let agents_connection = server.connect().await;
    let mut agents: HashMap<String, RoutingServiceClient<auth::Channel>> = HashMap::new();
    let waiting_now = queue_length(&mut routing, "backlog").await;
    assert_eq!(waiting_now as usize, waiting, "the backlog is waiting");

    // Timestamps each selection as it arrives, on a connection of its own.
    let mut watch = RoutingServiceClient::new(server.connect_admin().await)
        .watch_routing_events(pb::WatchRoutingEventsRequest {
            kinds: vec![pb::RoutingEventKind::TaskAgentSelected.into()],
            ..Default::default()
        })
        .await
        .expect("the watch opens")
        .into_inner();
    let (selected_tx, mut selected) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(Ok(frame)) = watch.next().await {
            if let Some(pb::watch_routing_events_response::Frame::Event(event)) = frame.frame
                && let Some(pb::routing_event::Event::TaskAgentSelected(s)) = event.event
                && selected_tx
                    .send((s.task_id, s.agent_id, Instant::now()))
                    .is_err()
            {
                return;
            }
        }
    });

    let mut samples = Vec::with_capacity(tasks);
    let mut early: HashMap<String, (String, Instant)> = HashMap::new();
    for _ in 0..tasks {
        let started = Instant::now();
        let task_id = routing
            .new_task(pb::NewTaskRequest {
                mrd: "chat".into(),
                queue: "live".into(),
                ..Default::default()
            })
            .await
            .expect("the task is taken")
            .into_inner()
            .task_id;
        let (agent_id, at) = loop {
            if let Some(found) = early.remove(&task_id) {
                break found;
            }
            let (task, agent, at) = tokio::time::timeout(Duration::from_secs(30), selected.recv())
                .await
                .expect("the task is routed within 30 s")
                .expect("the watch is open");
            early.insert(task, (agent, at));
        };
        samples.push(at - started);
        if !agents.contains_key(&agent_id) {
            let token = auth::sign_in(
                &agents_connection,
                Who::Agent(&agent_id),
                crate::unary::PASSWORD,
            )
            .await;
            let signed = auth::signed(agents_connection.clone(), &token);
            agents.insert(agent_id.clone(), RoutingServiceClient::new(signed));
        }
        let agent = agents.get_mut(&agent_id).expect("signed in above");
        agent
            .accept_task(pb::AcceptTaskRequest {
                task_id: task_id.clone(),
                agent_id,
                ..Default::default()
            })
            .await
            .expect("the agent accepts");
        agent
            .change_task_state(pb::ChangeTaskStateRequest {
                disposition_code: String::new(),
                task_id,
                state: pb::TaskState::Closed.into(),
                ..Default::default()
            })
            .await
            .expect("the task closes");
    }
    assert_eq!(
        queue_length(&mut routing, "backlog").await as usize,
        waiting,
        "the backlog is still waiting"
    );
    let latency = Latency::of(samples);
    println!("  {latency}");
    latency
}

/// Seeds a center: a tenth of the agents (at least one) on a backlog team, NOT_READY, with
/// `waiting` tasks queued for them; the rest on a live team, READY. Returns the live count.
pub fn seed(dir: &std::path::Path, agents: usize, waiting: usize) -> usize {
    let mut seeder = Seeder::new(dir, crate::unary::PASSWORD);
    let w = &mut seeder.world;
    w.mrd("chat", 1);
    w.queue("chat", "backlog", &[("backlog >= 1", 0)], 0);
    w.queue("chat", "live", &[("live >= 1", 0)], 0);
    let backlog_team = (agents / 10).max(1);
    for i in 0..agents {
        let agent_id = format!("agent-{i:06}");
        let team = if i < backlog_team { "backlog" } else { "live" };
        seeder.world.agent(&agent_id, &[(team, 1)]);
        seeder.world.login_ready(&agent_id, "chat");
        if team == "backlog" {
            seeder
                .world
                .set_state(&agent_id, RequestedAgentState::NotReady, "chat")
                .expect("a logged-in agent takes a break");
        }
        seeder.flush_some();
    }
    for i in 0..waiting {
        seeder
            .world
            .task_spec(spec(&format!("backlog-{i:07}"), "chat", "backlog", 5));
        seeder.flush_some();
    }
    seeder.finish();
    agents - backlog_team
}

async fn queue_length(routing: &mut RoutingServiceClient<auth::Channel>, queue: &str) -> u64 {
    let stats = routing
        .get_queue_stats(pb::GetQueueStatsRequest {
            mrd: "chat".into(),
            queue: queue.into(),
        })
        .await
        .expect("the queue stats")
        .into_inner();
    u64::from(stats.waiting)
}
