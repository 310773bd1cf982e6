//! Hostile callers and overload, against the release server:
//!
//! - `stats`: a queue of many waiting tasks and 64 callers asking `GetQueueStats` in a loop;
//!   unrelated `NewTask` p99 with them against without them, in the same run.
//! - `stalled`: watches replaying from revision 1 to a client that grants no flow-control
//!   window (raw HTTP/2, initial window 0); the server's resident memory before and after.
//! - `overload`: the sustainable `NewTask` rate measured first, then twice that rate offered;
//!   accepted calls' latency, how fast the refused hear `UNAVAILABLE`, and after a SIGKILL and
//!   restart every acknowledged task is there.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use prost::Message;
use switchboard::pb;
use switchboard::pb::routing_service_client::RoutingServiceClient;
use tonic::Code;
use tonic::codegen::{Bytes, http};

use crate::auth;
use crate::procs::{Cores, ServerChild, ServerKind};
use crate::stats::{Latency, heading, ms, ratio};

pub struct Settings {
    /// (agents, waiting tasks) of the `stats` center.
    pub stats_center: (usize, usize),
    /// `NewTask` calls timed in each `stats` phase.
    pub stats_calls: usize,
    /// Stalled watches, and the waiting tasks seeded so that each has a long replay.
    pub stalled: (usize, usize),
    /// Seconds each `overload` phase runs.
    pub overload_secs: u64,
}

const STATS_CALLERS: usize = 64;

fn start(data: &std::path::Path, flags: &[&str], cores: Option<Cores>) -> ServerChild {
    ServerChild::start(
        &ServerKind::Switchboard {
            data_dir: data,
            flags,
        },
        cores.map(|c| c.server),
    )
}

async fn new_task(
    routing: &mut RoutingServiceClient<auth::Channel>,
) -> Result<String, tonic::Status> {
    routing
        .new_task(pb::NewTaskRequest {
            mrd: "chat".into(),
            queue: "live".into(),
            ..Default::default()
        })
        .await
        .map(|r| r.into_inner().task_id)
}

async fn timed_new_tasks(
    routing: &mut RoutingServiceClient<auth::Channel>,
    calls: usize,
) -> Latency {
    let mut samples = Vec::with_capacity(calls);
    for _ in 0..calls {
        let started = Instant::now();
        new_task(routing).await.expect("the task is taken");
        samples.push(started.elapsed());
    }
    Latency::of(samples)
}

pub async fn stats(settings: &Settings, cores: Option<Cores>) {
    let (agents, waiting) = settings.stats_center;
    heading("GetQueueStats under load: unrelated NewTask with and without 64 stats callers");
    let data = tempfile::tempdir().expect("a temporary directory");
    crate::routing::seed(data.path(), agents, waiting);
    let server = start(data.path(), &[], cores);
    let mut routing = RoutingServiceClient::new(server.connect_admin().await);
    // Warm-up, untimed.
    timed_new_tasks(&mut routing, 50).await;
    let without = timed_new_tasks(&mut routing, settings.stats_calls).await;

    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicU64::new(0));
    let mut callers = Vec::new();
    for i in 0..STATS_CALLERS {
        // Four connections, sixteen callers each.
        if i % 16 == 0 {
            callers.push(RoutingServiceClient::new(server.connect_admin().await));
        }
        let mut client = callers[i / 16].clone();
        let (stop, answered) = (Arc::clone(&stop), Arc::clone(&answered));
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let asked = client
                    .get_queue_stats(pb::GetQueueStatsRequest {
                        mrd: "chat".into(),
                        queue: "backlog".into(),
                    })
                    .await;
                match asked {
                    Ok(stats) => assert!(stats.into_inner().waiting as usize >= waiting),
                    // The server goes once the timed calls are done.
                    Err(_) if stop.load(Ordering::Relaxed) => return,
                    Err(status) => panic!("the queue's statistics: {status:?}"),
                }
                answered.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    let started = Instant::now();
    let with = timed_new_tasks(&mut routing, settings.stats_calls).await;
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let stats_rate = answered.load(Ordering::Relaxed) as f64 / elapsed.as_secs_f64();
    println!("{agents} agents, {waiting} tasks waiting in the queue the callers ask about.\n");
    println!("| NewTask, one at a time | p50 | p99 |");
    println!("|---|---|---|");
    println!("| alone | {} | {} |", ms(without.p50), ms(without.p99));
    println!(
        "| beside {STATS_CALLERS} GetQueueStats callers ({stats_rate:.0} answers/s) | {} | {} |",
        ms(with.p50),
        ms(with.p99)
    );
    println!(
        "\nNewTask p99 with / without: {:.2} (target: at most 2).",
        ratio(with.p99, without.p99)
    );
    drop(server);
}

/// A gRPC message frame: no compression, the length, the message.
fn grpc_frame(message: &impl Message) -> Bytes {
    let body = message.encode_to_vec();
    let mut frame = Vec::with_capacity(5 + body.len());
    frame.push(0);
    frame.extend_from_slice(
        &u32::try_from(body.len())
            .expect("a small message")
            .to_be_bytes(),
    );
    frame.extend_from_slice(&body);
    Bytes::from(frame)
}

pub async fn stalled(settings: &Settings, cores: Option<Cores>) {
    let (watches, waiting) = settings.stalled;
    heading("Stalled replaying watches: a client that grants no flow-control window");
    let data = tempfile::tempdir().expect("a temporary directory");
    crate::routing::seed(data.path(), 100, waiting);
    // One principal holds them all here: lift its bound to measure what each watch holds.
    let server = start(
        data.path(),
        &["--max-watches-per-principal", "1000000"],
        cores,
    );
    let token = server.admin_token().await;
    let head = RoutingServiceClient::new(server.connect_admin().await)
        .list_tasks(pb::ListTasksRequest {
            page_size: 1,
            ..Default::default()
        })
        .await
        .expect("a list")
        .into_inner()
        .revision;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = server.rss_kib();

    let per_connection = 200;
    let mut held = Vec::new();
    let mut connections = Vec::new();
    let body = grpc_frame(&pb::WatchRoutingEventsRequest {
        start_revision: 1,
        ..Default::default()
    });
    for i in 0..watches {
        if i % per_connection == 0 {
            let tcp = tokio::net::TcpStream::connect(server.addr)
                .await
                .expect("the server accepts");
            let (sender, connection) = h2::client::Builder::new()
                .initial_window_size(0)
                .initial_connection_window_size(65_535)
                .handshake::<_, Bytes>(tcp)
                .await
                .expect("an HTTP/2 handshake");
            tokio::spawn(async move {
                let _ = connection.await;
            });
            connections.push(sender);
        }
        let sender = connections.last_mut().expect("a connection");
        let mut ready = sender.clone().ready().await.expect("a stream slot");
        let request = http::Request::builder()
            .method("POST")
            .uri(format!(
                "http://{}/switchboard.v1.RoutingService/WatchRoutingEvents",
                server.addr
            ))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .header("authorization", format!("Bearer {token}"))
            .body(())
            .expect("a request");
        let (response, mut send) = ready
            .send_request(request, false)
            .expect("the stream opens");
        send.send_data(body.clone(), true)
            .expect("the request goes out");
        held.push((response, send));
    }
    // Let every replay fill what it may hold, then measure: RSS stops growing.
    let mut after = server.rss_kib();
    for _ in 0..30 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = server.rss_kib();
        if now.abs_diff(after) * 100 < after {
            after = now;
            break;
        }
        after = now;
    }
    let per_watch = (after.saturating_sub(before)) as f64 / watches as f64;
    println!(
        "{watches} watches from revision 1 of {head}, {per_connection} per connection, each granting no window."
    );
    println!();
    println!("| server RSS before | after | per watch |");
    println!("|---|---|---|");
    println!(
        "| {:.1} MiB | {:.1} MiB | {per_watch:.1} KiB |",
        before as f64 / 1024.0,
        after as f64 / 1024.0
    );
    println!(
        "\nBound per stalled watch: 64 records queued + a replay page of at most 16 records + one \
         flow-control window (64 KiB) in HTTP/2; at most --max-watches-per-principal (256) per \
         principal and --max-streams-per-connection (256) per connection."
    );
    drop(held);
    drop(server);
}

/// Offers `rate` NewTask calls a second for `secs` seconds over `channels`, each call on its
/// own task; returns acknowledged ids with their latencies, and refusals with theirs.
async fn offer(
    channels: &[RoutingServiceClient<auth::Channel>],
    rate: f64,
    secs: u64,
) -> (Vec<(String, Duration)>, Vec<Duration>, usize) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let total = (rate * secs as f64) as usize;
    let interval = Duration::from_secs_f64(1.0 / rate);
    let started = Instant::now();
    for i in 0..total {
        let due = started + interval.mul_f64(i as f64);
        tokio::time::sleep_until(due.into()).await;
        let mut client = channels[i % channels.len()].clone();
        let tx = tx.clone();
        tokio::spawn(async move {
            let sent = Instant::now();
            let result = new_task(&mut client).await;
            let _ = tx.send((result, sent.elapsed()));
        });
    }
    drop(tx);
    let (mut acked, mut refused, mut other) = (Vec::new(), Vec::new(), 0);
    while let Some((result, took)) = rx.recv().await {
        match result {
            Ok(task_id) => acked.push((task_id, took)),
            Err(status) if status.code() == Code::Unavailable => {
                assert!(status.message().contains("overloaded"), "{status:?}");
                refused.push(took);
            }
            Err(status) => {
                eprintln!("unexpected: {status:?}");
                other += 1;
            }
        }
    }
    (acked, refused, other)
}

/// The closed-loop rate: `callers` callers, each sending its next call when the last returns.
async fn sustainable(
    channels: &[RoutingServiceClient<auth::Channel>],
    callers: usize,
    secs: u64,
) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let done = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for i in 0..callers {
        let mut client = channels[i % channels.len()].clone();
        let done = Arc::clone(&done);
        tasks.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                if new_task(&mut client).await.is_ok() {
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for task in tasks {
        task.await.expect("a caller");
    }
    done.load(Ordering::Relaxed) as f64 / secs as f64
}

pub async fn overload(settings: &Settings, cores: Option<Cores>) {
    heading("Overload: twice the sustainable NewTask rate");
    let data = tempfile::tempdir().expect("a temporary directory");
    crate::routing::seed(data.path(), 10, 0);
    // A smaller inbox than the default, below what 16 connections may have in flight
    // (16 x 256 streams), so that the inbox, not the transport, is what fills.
    let kind_flags: &[&str] = &["--inbox-depth", "1024"];
    let server = start(data.path(), kind_flags, cores);
    let mut channels = Vec::new();
    for _ in 0..16 {
        channels.push(RoutingServiceClient::new(server.connect_admin().await));
    }
    let secs = settings.overload_secs;
    let rate = sustainable(&channels, 256, secs).await;
    let (acked_1x, refused_1x, _) = offer(&channels, rate * 0.5, secs).await;
    let (acked, refused, other) = offer(&channels, rate * 2.0, secs).await;
    let half = Latency::of(acked_1x.iter().map(|(_, d)| *d).collect());
    let accepted = Latency::of(acked.iter().map(|(_, d)| *d).collect());
    let refusals = Latency::of(refused.clone());
    println!("Sustainable rate (256 callers in a closed loop, {secs} s): {rate:.0} NewTask/s.\n");
    println!(
        "| offered | acknowledged | refused UNAVAILABLE | other errors | accepted p50 | accepted p99 | refusal p99 |"
    );
    println!("|---|---|---|---|---|---|---|");
    println!(
        "| {:.0}/s (0.5x) | {} | {} | 0 | {} | {} | - |",
        rate * 0.5,
        acked_1x.len(),
        refused_1x.len(),
        ms(half.p50),
        ms(half.p99)
    );
    println!(
        "| {:.0}/s (2x) | {} | {} | {other} | {} | {} | {} |",
        rate * 2.0,
        acked.len(),
        refused.len(),
        ms(accepted.p50),
        ms(accepted.p99),
        ms(refusals.p99)
    );

    // SIGKILL, restart, and look for every acknowledged task.
    let pid = server.pid();
    let _ = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status();
    drop(server);
    let server = start(data.path(), kind_flags, cores);
    let mut routing = RoutingServiceClient::new(server.connect_admin().await);
    let mut present = HashSet::new();
    let mut token = String::new();
    loop {
        let page = routing
            .list_tasks(pb::ListTasksRequest {
                page_size: 1000,
                page_token: token,
                ..Default::default()
            })
            .await
            .expect("a page of tasks")
            .into_inner();
        present.extend(page.tasks.into_iter().map(|t| t.task_id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    let missing = acked_1x
        .iter()
        .chain(&acked)
        .filter(|(id, _)| !present.contains(id))
        .count();
    println!(
        "\nAfter SIGKILL and restart: {} of {} acknowledged tasks present, {missing} missing.",
        acked_1x.len() + acked.len() - missing,
        acked_1x.len() + acked.len()
    );
}
