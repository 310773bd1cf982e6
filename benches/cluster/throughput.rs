//! Durable `ChangeAgentState` on the shared PostgreSQL journal, through the leader and through
//! a follower (forwarded), against a single node on its SQLite journal and the bare tonic
//! echo. Every target gets the same closed-loop load: a number of callers over a few
//! connections, each Switchboard caller an agent of its own toggling READY and NOT_READY with
//! its own token (two events per call), each echo caller sending an agent id's worth of bytes.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use switchboard::pb;
use switchboard::pb::admin_service_client::AdminServiceClient;
use switchboard::pb::routing_service_client::RoutingServiceClient;
use tonic::transport::Channel;

use crate::auth::{self, Who};
use crate::echo::pb::EchoRequest;
use crate::echo::pb::echo_service_client::EchoServiceClient;
use crate::nodes::{Lease, NodeSpec, postgres_pids, wait_following, wait_leading};
use crate::postgres::PgServer;
use crate::procs::{ServerChild, ServerKind, cpu_seconds};
use crate::stats::{Latency, heading, ms, ratio};

const PASSWORD: &str = "bench-Password-1";

pub struct Settings {
    /// Calls in flight at once (callers, each on an agent of its own).
    pub in_flight: usize,
    pub connections: usize,
    pub warm_up: Duration,
    /// The longest a measurement lasts.
    pub measure: Duration,
    /// Ends a measurement sooner, once this many calls were counted.
    pub max_calls: Option<u64>,
    pub rounds: usize,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Target {
    Echo,
    Sqlite,
    PgLeader,
    PgFollower,
}

const TARGETS: [Target; 4] = [
    Target::Echo,
    Target::Sqlite,
    Target::PgLeader,
    Target::PgFollower,
];

impl Target {
    fn label(self) -> &'static str {
        match self {
            Target::Echo => "echo (baseline)",
            Target::Sqlite => "single node, SQLite",
            Target::PgLeader => "cluster leader, PostgreSQL",
            Target::PgFollower => "cluster follower (forwarded), PostgreSQL",
        }
    }
}

/// One measurement.
#[derive(Clone, Debug)]
struct Run {
    calls_per_sec: f64,
    latency: Latency,
    /// Cores each group of processes kept busy while measured (1.0: one core all the time).
    cores: Vec<(&'static str, f64)>,
}

/// Processes whose CPU time a measurement reports, by group.
type Watched = Vec<(&'static str, Vec<u32>)>;

pub async fn run(settings: &Settings, pg: &PgServer) {
    heading("Durable ChangeAgentState: PostgreSQL against SQLite and the echo");
    println!(
        "closed loop: {} callers over {} connections, {:?} warm-up, measured for {:?}{}; {} rounds; \
         PostgreSQL with fsync=on, synchronous_commit=on; SQLite with WAL, synchronous=FULL",
        settings.in_flight,
        settings.connections,
        settings.warm_up,
        settings.measure,
        settings
            .max_calls
            .map_or(String::new(), |n| format!(" or {n} calls")),
        settings.rounds,
    );
    let mut runs: Vec<(Target, Run)> = Vec::new();
    for round in 0..settings.rounds {
        // Fresh servers each round, in the same order, so drift hits every target alike.
        let echo = echo_run(settings).await;
        let sqlite = sqlite_run(settings).await;
        let (leader, follower) = postgres_runs(settings, pg).await;
        println!(
            "  round {round}: calls/s PostgreSQL / SQLite {:.2}, PostgreSQL / echo {:.2}",
            leader.calls_per_sec / sqlite.calls_per_sec,
            leader.calls_per_sec / echo.calls_per_sec
        );
        for (target, run) in TARGETS.into_iter().zip([echo, sqlite, leader, follower]) {
            let cores: Vec<String> = run
                .cores
                .iter()
                .map(|(group, cores)| format!("{group} {cores:.2}"))
                .collect();
            println!(
                "  round {round}: {:<42} {:>8.0} calls/s  {}\n             cores busy: {}",
                target.label(),
                run.calls_per_sec,
                run.latency,
                cores.join(", ")
            );
            runs.push((target, run));
        }
    }

    // The best round of each target counts, as in the durability benchmark.
    let best = |target: Target| -> Run {
        runs.iter()
            .filter(|(t, _)| *t == target)
            .map(|(_, run)| run.clone())
            .max_by(|a, b| a.calls_per_sec.total_cmp(&b.calls_per_sec))
            .expect("every target ran")
    };
    let [echo, sqlite, leader, follower] = TARGETS.map(best);
    println!("\n| target | calls/s | p50 | p99 |\n|---|---|---|---|");
    for (target, run) in TARGETS
        .into_iter()
        .zip([&echo, &sqlite, &leader, &follower])
    {
        println!(
            "| {} | {:.0} | {} | {} |",
            target.label(),
            run.calls_per_sec,
            ms(run.latency.p50),
            ms(run.latency.p99)
        );
    }
    println!("\n| ratio | calls/s | p50 | p99 |\n|---|---|---|---|");
    for (name, a, b) in [
        ("PostgreSQL / SQLite", &leader, &sqlite),
        ("PostgreSQL / echo", &leader, &echo),
        ("SQLite / echo", &sqlite, &echo),
        ("follower / leader", &follower, &leader),
    ] {
        println!(
            "| {name} | {:.2} | {:.2} | {:.2} |",
            a.calls_per_sec / b.calls_per_sec,
            ratio(a.latency.p50, b.latency.p50),
            ratio(a.latency.p99, b.latency.p99)
        );
    }
}

async fn echo_run(settings: &Settings) -> Run {
    let server = ServerChild::start(&ServerKind::Echo, None);
    let mut callers = Vec::new();
    let channels = connections(&server, settings.connections).await;
    for i in 0..settings.in_flight {
        callers.push(Caller::Echo {
            client: EchoServiceClient::new(channels[i % channels.len()].clone()),
            payload: agent_id(i).into_bytes(),
        });
    }
    let watched = vec![("echo", vec![server.pid()])];
    measure(callers, settings, watched).await
}

async fn sqlite_run(settings: &Settings) -> Run {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let kind = ServerKind::Switchboard {
        data_dir: dir.path(),
        flags: &["--access-token-ttl-secs", "86400"],
    };
    let server = ServerChild::start(&kind, None);
    let tokens = agents(&server, settings).await;
    let channels = connections(&server, settings.connections).await;
    let watched = vec![("switchboard", vec![server.pid()])];
    measure(agent_callers(&channels, &tokens), settings, watched).await
}

/// Through the leader, then through a follower, of one fresh cluster on its own database.
async fn postgres_runs(settings: &Settings, pg: &PgServer) -> (Run, Run) {
    let database = pg.fresh_database();
    // Throughput does not depend on the lease: the defaults.
    let lease = Lease {
        ttl_ms: 5_000,
        renew_ms: 1_000,
    };
    let leader_spec = NodeSpec::new("leader", &database.url, lease);
    let follower_spec = NodeSpec::new("follower", &database.url, lease);
    let leader = leader_spec.start();
    wait_leading(leader.addr).await;
    let follower = follower_spec.start();
    wait_following(follower.addr, leader.addr, 0).await;

    let tokens = agents(&leader, settings).await;
    let channels = connections(&leader, settings.connections).await;
    let watched = vec![
        ("leader", vec![leader.pid()]),
        ("postgres", postgres_pids(pg.port())),
    ];
    let through_leader = measure(agent_callers(&channels, &tokens), settings, watched).await;
    let channels = connections(&follower, settings.connections).await;
    let watched = vec![
        ("follower", vec![follower.pid()]),
        ("leader", vec![leader.pid()]),
        ("postgres", postgres_pids(pg.port())),
    ];
    let through_follower = measure(agent_callers(&channels, &tokens), settings, watched).await;
    (through_leader, through_follower)
}

fn agent_id(i: usize) -> String {
    format!("agent{i:04}")
}

async fn connections(server: &ServerChild, n: usize) -> Vec<Channel> {
    let mut channels = Vec::new();
    for _ in 0..n {
        channels.push(server.connect().await);
    }
    channels
}

/// An MRD and one agent per caller, each signed in with its own password and logged in on
/// the MRD; their access tokens, by caller.
async fn agents(server: &ServerChild, settings: &Settings) -> Vec<String> {
    let mut admin = AdminServiceClient::new(server.connect_admin().await);
    admin
        .upsert_mrd(pb::UpsertMrdRequest {
            mrd: Some(pb::Mrd {
                name: "chat".into(),
                max_tasks: 1,
                offer_timeout_seconds: 30,
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .expect("the MRD is configured");
    let channel = server.connect().await;
    let mut tokens = Vec::new();
    for i in 0..settings.in_flight {
        let agent_id = agent_id(i);
        admin
            .upsert_agent(pb::UpsertAgentRequest {
                agent: Some(pb::Agent {
                    agent_id: agent_id.clone(),
                    display_name: agent_id.clone(),
                    password: PASSWORD.into(),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await
            .expect("the agent is created");
        let token = auth::sign_in(&channel, Who::Agent(&agent_id), PASSWORD).await;
        RoutingServiceClient::new(auth::signed(channel.clone(), &token))
            .login_agent(pb::LoginAgentRequest {
                agent_id,
                password: PASSWORD.into(),
                ..Default::default()
            })
            .await
            .expect("the agent logs in");
        tokens.push(token);
    }
    tokens
}

fn agent_callers(channels: &[Channel], tokens: &[String]) -> Vec<Caller> {
    tokens
        .iter()
        .enumerate()
        .map(|(i, token)| Caller::Agent {
            routing: RoutingServiceClient::new(auth::signed(
                channels[i % channels.len()].clone(),
                token,
            )),
            agent_id: agent_id(i),
            ready: false,
        })
        .collect()
}

enum Caller {
    Echo {
        client: EchoServiceClient<Channel>,
        payload: Vec<u8>,
    },
    Agent {
        routing: RoutingServiceClient<auth::Channel>,
        agent_id: String,
        ready: bool,
    },
}

impl Caller {
    async fn call(&mut self) {
        match self {
            Caller::Echo { client, payload } => {
                client
                    .echo(EchoRequest {
                        payload: payload.clone(),
                        broadcast: false,
                    })
                    .await
                    .expect("the echo answers");
            }
            Caller::Agent {
                routing,
                agent_id,
                ready,
            } => {
                *ready = !*ready;
                let state = if *ready {
                    pb::AgentState::Ready
                } else {
                    pb::AgentState::NotReady
                };
                routing
                    .change_agent_state(pb::ChangeAgentStateRequest {
                        agent_id: agent_id.clone(),
                        state: state.into(),
                        ..Default::default()
                    })
                    .await
                    .expect("the state changes");
            }
        }
    }
}

/// Runs every caller in a closed loop; after the warm-up, counts the calls answered and keeps
/// each one's latency until the measurement ends.
async fn measure(callers: Vec<Caller>, settings: &Settings, mut watched: Watched) -> Run {
    watched.push(("load", vec![std::process::id()]));
    let counting = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for mut caller in callers {
        let (counting, stop, done) = (counting.clone(), stop.clone(), done.clone());
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let sent = Instant::now();
                caller.call().await;
                if counting.load(Ordering::Relaxed) {
                    latencies.push(sent.elapsed());
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }
            latencies
        }));
    }
    tokio::time::sleep(settings.warm_up).await;
    counting.store(true, Ordering::Relaxed);
    let started = Instant::now();
    let cpu_before: Vec<f64> = watched.iter().map(|(_, pids)| cpu(pids)).collect();
    match settings.max_calls {
        None => tokio::time::sleep(settings.measure).await,
        Some(max) => {
            while done.load(Ordering::Relaxed) < max && started.elapsed() < settings.measure {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    }
    let calls = done.load(Ordering::Relaxed);
    let elapsed = started.elapsed();
    let cores = watched
        .iter()
        .zip(cpu_before)
        .map(|((group, pids), before)| (*group, (cpu(pids) - before) / elapsed.as_secs_f64()))
        .collect();
    counting.store(false, Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    let mut latencies = Vec::new();
    for worker in workers {
        latencies.extend(worker.await.expect("a caller ends cleanly"));
    }
    Run {
        calls_per_sec: calls as f64 / elapsed.as_secs_f64(),
        latency: Latency::of(latencies),
        cores,
    }
}

/// CPU seconds, user and system, of the processes in `pids` still running.
fn cpu(pids: &[u32]) -> f64 {
    pids.iter().filter_map(|pid| cpu_seconds(*pid)).sum()
}
