//! Failover time: three nodes on one PostgreSQL journal and a writer sending a write every few
//! milliseconds, each to the next node in turn (a follower forwards it to the leader), and on
//! to the next when one fails. The leader is killed with SIGKILL; the figure is the time from
//! the kill to the first write the new leader acknowledged: an answer whose revision is past
//! the journal's last one at the kill (the dead leader cannot have written it), from a node
//! whose `GetServerStatus` then says it leads at the old epoch + 1. The killed node is started
//! again (it joins as a follower) before the next trial.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use switchboard::pb;
use switchboard::pb::admin_service_client::AdminServiceClient;
use switchboard::pb::routing_service_client::RoutingServiceClient;
use tonic::transport::{Channel, Endpoint};

use crate::auth::{self, Who};
use crate::nodes::{Lease, NodeSpec, WAIT, status, wait_following, wait_leading};
use crate::postgres::PgServer;
use crate::procs::ServerChild;
use crate::stats::{Latency, heading, ms};

const NODES: usize = 3;
const AGENT: &str = "writer";
const PASSWORD: &str = "bench-Password-1";
/// A guard on one write, so that the writer moves on from a node that hangs; a dead node's
/// connection fails at once.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);
/// Writes acknowledged by the whole cluster before each kill.
const SETTLED_WRITES: usize = 20;

pub struct Settings {
    pub trials: usize,
    pub lease: Lease,
    /// The writer's pause between two writes.
    pub write_every: Duration,
}

/// An acknowledged write.
#[derive(Clone, Copy, Debug)]
struct Ack {
    at: Instant,
    revision: u64,
}

/// What the writer saw, shared with the trials.
#[derive(Default)]
struct Log {
    acks: Vec<Ack>,
    /// Failed writes by status code: how many, and the first one's message.
    failures: BTreeMap<String, (u64, String)>,
}

struct Trial {
    /// From the kill to the first write the new leader acknowledged: the figure.
    failover: Duration,
    /// What was left of the dead leader's lease at the kill, by the database's clock.
    lease_left: Duration,
    /// From the kill until the lease's row showed the next epoch (polled every few ms).
    taken: Duration,
    from: String,
    to: String,
    epoch: u64,
}

pub async fn run(settings: &Settings, pg: &PgServer) {
    heading("Failover: SIGKILL the leader, time to the first write the new leader acknowledges");
    let lease = settings.lease;
    println!(
        "{NODES} nodes, --lease-ttl-ms {} --lease-renew-ms {}; a write every {:?}, round-robin \
         over the nodes; {} trials",
        lease.ttl_ms, lease.renew_ms, settings.write_every, settings.trials
    );
    let database = pg.fresh_database();
    let (db, connection) = tokio_postgres::connect(&database.url, tokio_postgres::NoTls)
        .await
        .expect("connect to the journal's database");
    tokio::spawn(connection);

    let specs: Vec<NodeSpec> = (0..NODES)
        .map(|i| NodeSpec::new(&format!("node{i}"), &database.url, lease))
        .collect();
    let mut nodes: Vec<Option<ServerChild>> = Vec::new();
    let first = specs[0].start();
    wait_leading(first.addr).await;
    let leader_addr = first.addr;
    nodes.push(Some(first));
    for spec in &specs[1..] {
        let node = spec.start();
        wait_following(node.addr, leader_addr, 0).await;
        nodes.push(Some(node));
    }

    let token = writer_agent(nodes[0].as_ref().expect("node0 runs")).await;
    let targets: Arc<Mutex<Vec<Channel>>> = Arc::new(Mutex::new(
        nodes
            .iter()
            .flatten()
            .map(|n| lazy_channel(n.addr))
            .collect(),
    ));
    let log = Arc::new(Mutex::new(Log::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = tokio::spawn(write(
        targets.clone(),
        token,
        log.clone(),
        stop.clone(),
        settings.write_every,
    ));

    let mut trials = Vec::new();
    for trial in 0..settings.trials {
        settle(&log).await;
        // The kill falls anywhere in the leader's renew cycle: trials started at a fixed
        // distance from the last hand-over would otherwise all kill at the same point of it.
        tokio::time::sleep(jitter(trial, lease.renew_ms)).await;
        let (old, before) = leader(&nodes).await;
        let from = specs[old].name.clone();

        let killed_at = Instant::now();
        // SIGKILL, and waits for the process to be gone.
        drop(nodes[old].take());
        let lease_left = lease_left(&db).await;
        let row = db
            .query_one("SELECT COALESCE(MAX(revision), 0) FROM events", &[])
            .await
            .expect("the journal's last revision");
        let last_revision = u64::try_from(row.get::<_, i64>(0)).expect("a revision");

        let (taken_at, ack) =
            hand_over(&db, &log, killed_at, before.lease_epoch, last_revision).await;
        let (new, after) = leader(&nodes).await;
        assert_eq!(
            after.lease_epoch,
            before.lease_epoch + 1,
            "the new leader's epoch is one past the old one"
        );
        let to = specs[new].name.clone();
        let t = Trial {
            failover: ack.at - killed_at,
            lease_left,
            taken: taken_at - killed_at,
            from,
            to,
            epoch: after.lease_epoch,
        };
        println!(
            "  trial {trial:>2}: {} ({} -> {}, epoch {}; lease left at the kill {}, taken after \
             {}; first revision {} past {})",
            ms(t.failover),
            t.from,
            t.to,
            t.epoch,
            ms(t.lease_left),
            ms(t.taken),
            ack.revision,
            last_revision
        );
        trials.push(t);

        // Back as a follower of the new leader, caught up with the journal.
        let restarted = specs[old].start();
        let new_leader = nodes[new].as_ref().expect("the new leader runs").addr;
        targets.lock().expect("the writer's targets")[old] = lazy_channel(restarted.addr);
        wait_following(restarted.addr, new_leader, last_revision).await;
        nodes[old] = Some(restarted);
    }
    stop.store(true, Ordering::Relaxed);
    writer.await.expect("the writer ends cleanly");
    report(settings, &trials, &log.lock().expect("the writer's log"));
}

fn report(settings: &Settings, trials: &[Trial], log: &Log) {
    let latency = Latency::of(trials.iter().map(|t| t.failover).collect());
    let lease = settings.lease;
    println!(
        "\n| trials | p50 | p99 | max | min |\n|---|---|---|---|---|\n| {} | {} | {} | {} | {} |",
        trials.len(),
        ms(latency.p50),
        ms(latency.p99),
        ms(latency.max),
        ms(trials.iter().map(|t| t.failover).min().unwrap_or_default()),
    );
    let part = |name: &str, of: &dyn Fn(&Trial) -> Duration| {
        let parts = Latency::of(trials.iter().map(of).collect());
        println!("{name}: p50 {}, max {}", ms(parts.p50), ms(parts.max));
    };
    part("lease left at the kill", &|t| t.lease_left);
    part("kill to the lease taken", &|t| t.taken);
    part("lease expired to taken (a follower's next look)", &|t| {
        t.taken.saturating_sub(t.lease_left)
    });
    part("lease taken to the first write acknowledged", &|t| {
        t.failover.saturating_sub(t.taken)
    });
    let hand_overs: Vec<String> = trials
        .iter()
        .map(|t| format!("{}->{}@{}", t.from, t.to, t.epoch))
        .collect();
    println!("hand-overs: {}", hand_overs.join(" "));
    // The keeper's loop: a follower looks at the lease once per renew interval, and a node
    // that took it is marked ready to take writes on a turn of that loop.
    println!(
        "bound: what is left of the lease at the kill (at most its time to live, {ttl} ms, and at \
         least that less a renew interval), plus until a follower next looks at the lease (up to \
         a renew interval, {renew} ms), plus catching up, plus until the new leader's keeper marks \
         it ready (at once or up to a renew interval later), plus the writer's next write: from \
         about {low} ms to about {high} ms and the catch-up",
        ttl = lease.ttl_ms,
        renew = lease.renew_ms,
        low = lease.ttl_ms.saturating_sub(lease.renew_ms),
        high = lease.ttl_ms + 2 * lease.renew_ms,
    );
    println!(
        "writes acknowledged: {}; failed, then retried on the next node:",
        log.acks.len()
    );
    for (code, (count, first)) in &log.failures {
        println!("  {code}: {count} (the first: {first})");
    }
}

/// A channel that connects when first used and again after its node is gone.
fn lazy_channel(addr: SocketAddr) -> Channel {
    Endpoint::from_shared(format!("http://{addr}"))
        .expect("a valid endpoint")
        .connect_timeout(CALL_TIMEOUT)
        .connect_lazy()
}

/// The writer's agent, made by the first admin and logged in; its access token.
async fn writer_agent(leader: &ServerChild) -> String {
    let mut admin = AdminServiceClient::new(leader.connect_admin().await);
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
    admin
        .upsert_agent(pb::UpsertAgentRequest {
            agent: Some(pb::Agent {
                agent_id: AGENT.into(),
                display_name: AGENT.into(),
                password: PASSWORD.into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .expect("the agent is created");
    let channel = leader.connect().await;
    let token = auth::sign_in(&channel, Who::Agent(AGENT), PASSWORD).await;
    RoutingServiceClient::new(auth::signed(channel, &token))
        .login_agent(pb::LoginAgentRequest {
            agent_id: AGENT.into(),
            password: PASSWORD.into(),
            ..Default::default()
        })
        .await
        .expect("the agent logs in");
    token
}

/// Toggles the agent between READY and NOT_READY, each write to the next node in turn, until
/// told to stop.
async fn write(
    targets: Arc<Mutex<Vec<Channel>>>,
    token: String,
    log: Arc<Mutex<Log>>,
    stop: Arc<AtomicBool>,
    every: Duration,
) {
    let mut ready = false;
    let mut next = 0;
    while !stop.load(Ordering::Relaxed) {
        let channel = {
            let targets = targets.lock().expect("the writer's targets");
            next = (next + 1) % targets.len();
            targets[next].clone()
        };
        ready = !ready;
        let state = if ready {
            pb::AgentState::Ready
        } else {
            pb::AgentState::NotReady
        };
        let mut request = tonic::Request::new(pb::ChangeAgentStateRequest {
            agent_id: AGENT.into(),
            state: state.into(),
            ..Default::default()
        });
        request.set_timeout(CALL_TIMEOUT);
        let answer = RoutingServiceClient::new(auth::signed(channel, &token))
            .change_agent_state(request)
            .await;
        let at = Instant::now();
        {
            let mut log = log.lock().expect("the writer's log");
            match answer {
                Ok(answer) => log.acks.push(Ack {
                    at,
                    revision: answer.into_inner().revision,
                }),
                Err(status) => {
                    let code = format!("{:?}", status.code());
                    let (count, _) = log
                        .failures
                        .entry(code)
                        .or_insert_with(|| (0, status.message().to_owned()));
                    *count += 1;
                }
            }
        }
        tokio::time::sleep(every).await;
    }
}

/// Waits until the writer has had `SETTLED_WRITES` more writes acknowledged.
async fn settle(log: &Mutex<Log>) {
    let acked = || log.lock().expect("the writer's log").acks.len();
    let target = acked() + SETTLED_WRITES;
    let deadline = Instant::now() + WAIT;
    while acked() < target {
        assert!(Instant::now() < deadline, "the writer made no progress");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A pause of up to `renew_ms`, different in every trial and every run.
fn jitter(trial: usize, renew_ms: u64) -> Duration {
    use std::hash::BuildHasher;
    let random = std::collections::hash_map::RandomState::new().hash_one(trial);
    Duration::from_millis(random % renew_ms.max(1))
}

/// What is left of the lease, by the database's clock.
async fn lease_left(db: &tokio_postgres::Client) -> Duration {
    let row = db
        .query_one(
            "SELECT GREATEST(0, EXTRACT(EPOCH FROM (expires_at - clock_timestamp())) * 1000)::FLOAT8
             FROM cluster_lease WHERE id = 1",
            &[],
        )
        .await
        .expect("the lease's expiry");
    Duration::from_secs_f64(row.get::<_, f64>(0) / 1e3)
}

/// Waits for the hand-over after a kill: when the lease's row first showed an epoch past
/// `epoch`, and the first write acknowledged after `killed_at` with a revision past
/// `last_revision`.
async fn hand_over(
    db: &tokio_postgres::Client,
    log: &Mutex<Log>,
    killed_at: Instant,
    epoch: u64,
    last_revision: u64,
) -> (Instant, Ack) {
    let deadline = Instant::now() + WAIT;
    let mut taken_at = None;
    loop {
        if taken_at.is_none() {
            let row = db
                .query_one("SELECT epoch FROM cluster_lease WHERE id = 1", &[])
                .await
                .expect("the lease's epoch");
            if u64::try_from(row.get::<_, i64>(0)).expect("an epoch") > epoch {
                taken_at = Some(Instant::now());
            }
        }
        let ack = first_ack_after(log, killed_at, last_revision);
        if let (Some(taken_at), Some(ack)) = (taken_at, ack) {
            return (taken_at, ack);
        }
        assert!(
            Instant::now() < deadline,
            "no write acknowledged by a new leader"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// The first write acknowledged after `killed_at` with a revision past `last_revision`.
fn first_ack_after(log: &Mutex<Log>, killed_at: Instant, last_revision: u64) -> Option<Ack> {
    log.lock()
        .expect("the writer's log")
        .acks
        .iter()
        .rev()
        .take_while(|ack| ack.at > killed_at)
        .filter(|ack| ack.revision > last_revision)
        .last()
        .copied()
}

/// The node that leads (ready to take writes), by index, and its status.
async fn leader(nodes: &[Option<ServerChild>]) -> (usize, pb::GetServerStatusResponse) {
    let deadline = Instant::now() + WAIT;
    loop {
        for (i, node) in nodes.iter().enumerate() {
            let Some(node) = node else { continue };
            if let Some(now) = status(node.addr).await
                && now.role() == pb::NodeRole::Leader
            {
                return (i, now);
            }
        }
        assert!(Instant::now() < deadline, "no node leads");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
