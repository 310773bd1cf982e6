//! What durability costs: `ChangeAgentState` throughput under a closed loop with many calls
//! in flight, on a server whose journal is its SQLite file (group commit, fsync at every
//! commit) against the same server run `--in-memory`. The figure is the ratio durable /
//! in-memory. (Recovery time is measured by the `suite` benchmark.)
//!
//! `cargo bench --bench durability` (add `-- --quick` for a small smoke run).

#[path = "suite/auth.rs"]
#[allow(dead_code)]
mod auth;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use switchboard::config::ServerConfig;
use switchboard::pb;
use switchboard::pb::admin_service_client::AdminServiceClient;
use switchboard::pb::routing_service_client::RoutingServiceClient;
use switchboard::server::Server;
use tonic::transport::{Channel, Endpoint};

use auth::Who;

const PASSWORD: &str = "bench-Password-1";

struct Settings {
    /// Calls in flight at once, each on an agent of its own.
    in_flight: usize,
    connections: usize,
    warm_up: Duration,
    measure: Duration,
    rounds: usize,
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let settings = if quick {
        Settings {
            in_flight: 32,
            connections: 2,
            warm_up: Duration::from_millis(300),
            measure: Duration::from_secs(1),
            rounds: 1,
        }
    } else {
        Settings {
            in_flight: 128,
            connections: 4,
            warm_up: Duration::from_secs(1),
            measure: Duration::from_secs(5),
            rounds: 3,
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(throughput(&settings));
}

async fn throughput(settings: &Settings) {
    println!(
        "ChangeAgentState, closed loop: {} calls in flight over {} connections, {:?} per round",
        settings.in_flight, settings.connections, settings.measure
    );
    let (mut memory, mut durable) = (Vec::new(), Vec::new());
    for round in 0..settings.rounds {
        // Alternate, so that drift in the machine's load hits both alike. Both write the
        // first admin's secret into a directory of their own.
        let m = run_load(true, settings).await;
        let d = run_load(false, settings).await;
        println!("  round {round}: in-memory {m:>9.0} calls/s   durable {d:>9.0} calls/s");
        memory.push(m);
        durable.push(d);
    }
    let best = |v: &[f64]| v.iter().copied().fold(0.0, f64::max);
    let (m, d) = (best(&memory), best(&durable));
    println!("  best: in-memory {m:.0} calls/s, durable {d:.0} calls/s");
    println!("  ratio durable / in-memory: {:.2}", d / m);
}

/// Calls per second of `ChangeAgentState` against a fresh server, its journal in memory or
/// in SQLite. Each agent signs in and changes its own state with its own token, as a desktop
/// does.
async fn run_load(in_memory: bool, settings: &Settings) -> f64 {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let config = ServerConfig {
        in_memory,
        data_dir: dir.path().to_owned(),
        ..ServerConfig::in_memory()
    };
    let server = Server::start(config).await.expect("the server starts");
    let channels: Vec<Channel> = {
        let mut v = Vec::new();
        for _ in 0..settings.connections {
            v.push(connect(server.local_addr()).await);
        }
        v
    };
    let admin_token = auth::sign_in(
        &channels[0],
        Who::Account(auth::ADMIN),
        &auth::admin_secret(dir.path()),
    )
    .await;
    let mut admin = AdminServiceClient::new(auth::signed(channels[0].clone(), &admin_token));
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
    let mut agents = Vec::new();
    for i in 0..settings.in_flight {
        let agent_id = format!("agent{i:04}");
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
        let channel = channels[i % channels.len()].clone();
        let token = auth::sign_in(&channel, Who::Agent(&agent_id), PASSWORD).await;
        let mut routing = RoutingServiceClient::new(auth::signed(channel, &token));
        routing
            .login_agent(pb::LoginAgentRequest {
                agent_id,
                password: PASSWORD.into(),
                ..Default::default()
            })
            .await
            .expect("the agent logs in");
        agents.push(routing);
    }

    let counting = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for (i, mut routing) in agents.into_iter().enumerate() {
        let (counting, stop, done) = (counting.clone(), stop.clone(), done.clone());
        workers.push(tokio::spawn(async move {
            let agent_id = format!("agent{i:04}");
            let mut ready = false;
            while !stop.load(Ordering::Relaxed) {
                ready = !ready;
                let state = if ready {
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
                if counting.load(Ordering::Relaxed) {
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    tokio::time::sleep(settings.warm_up).await;
    counting.store(true, Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(settings.measure).await;
    let calls = done.load(Ordering::Relaxed);
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.await.expect("a worker ends cleanly");
    }
    server.shutdown().await.expect("the server stops");
    calls as f64 / elapsed.as_secs_f64()
}

async fn connect(addr: std::net::SocketAddr) -> Channel {
    Endpoint::from_shared(format!("http://{addr}"))
        .expect("a valid endpoint")
        .connect()
        .await
        .expect("the server accepts connections")
}
