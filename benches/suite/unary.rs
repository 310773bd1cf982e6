//! Unary throughput and latency: `GetAgentState` (a read) and `ChangeAgentState` (a durable
//! write) against the baseline's `Echo`, each driven by `h2load` with a prepared gRPC body, a
//! closed loop of `connections x streams` calls in flight. Every Switchboard call carries the
//! agent's access token (`authorization: Bearer ...`), as a desktop's would.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use prost::Message;
use switchboard::pb;
use switchboard::pb::admin_service_client::AdminServiceClient;
use switchboard::pb::routing_service_client::RoutingServiceClient;

use crate::auth::{self, Who};
use crate::echo::pb::EchoRequest;
use crate::echo::pb::echo_service_client::EchoServiceClient;
use crate::procs::{Cores, ServerChild, ServerKind, cpu_seconds};
use crate::stats::{Latency, heading, ms};

pub const AGENT: &str = "agent-0001";
pub const PASSWORD: &str = "bench-Password-1";

pub struct Settings {
    pub warm_up_secs: u32,
    pub measure_secs: u32,
    pub connections: u32,
    pub streams_per_connection: u32,
    pub rounds: usize,
    /// When set, h2load sends exactly this many calls, with no warm-up, instead of running
    /// for `measure_secs`.
    pub calls: Option<u64>,
}

/// One h2load run.
#[derive(Clone, Debug)]
pub struct Run {
    pub calls_per_sec: f64,
    pub latency: Latency,
    pub succeeded: u64,
    /// Cores the server kept busy over the run (1.0 = one core all the time).
    pub server_cores: f64,
    /// Cores h2load kept busy.
    pub load_cores: f64,
}

pub async fn run(settings: &Settings, cores: Option<Cores>) {
    heading("Unary calls: Switchboard against the echo baseline (h2load)");
    println!(
        "h2load, {} connections x {} streams = {} calls in flight, {} s warm-up, {} s measured, {} rounds; server on core {:?}, h2load on core {:?}",
        settings.connections,
        settings.streams_per_connection,
        settings.connections * settings.streams_per_connection,
        settings.warm_up_secs,
        settings.measure_secs,
        settings.rounds,
        cores.map(|c| c.server),
        cores.map(|c| c.load),
    );
    let echo_body = EchoRequest {
        // As long as the agent id GetAgentState sends.
        payload: AGENT.as_bytes().to_vec(),
        broadcast: false,
    };
    let get_body = pb::GetAgentStateRequest {
        agent_id: AGENT.into(),
    };
    let change_body = pb::ChangeAgentStateRequest {
        agent_id: AGENT.into(),
        state: pb::AgentState::Ready.into(),
        mrd: "chat".into(),
        ..Default::default()
    };

    let (mut echo, mut get, mut change) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..settings.rounds {
        // Fresh servers each round, in the same order, so drift hits all three alike.
        let server = ServerChild::start(&ServerKind::Echo, cores.map(|c| c.server));
        let mut client = EchoServiceClient::new(server.connect().await);
        client
            .echo(echo_body.clone())
            .await
            .expect("the prepared echo body is answered OK");
        echo.push(
            h2load(
                &server,
                "/switchboard.bench.EchoService/Echo",
                &echo_body,
                None,
                settings,
                cores,
            )
            .await,
        );
        drop(server);

        let data = tempfile::tempdir().expect("a temporary directory");
        let server = start_with_agent(data.path(), &[], cores).await;
        // Signed in as the agent, as its desktop is: it reads and changes its own state. h2load
        // sends the same `authorization` header on every call of both runs; it sees only HTTP
        // status, but the ChangeAgentState run's journal check below proves the header passes.
        let token = server.token_as(Who::Agent(AGENT), PASSWORD).await;
        let mut routing = RoutingServiceClient::new(auth::signed(server.connect().await, &token));
        routing
            .get_agent_state(get_body.clone())
            .await
            .expect("the prepared GetAgentState body is answered OK");
        get.push(
            h2load(
                &server,
                "/switchboard.v1.RoutingService/GetAgentState",
                &get_body,
                Some(&token),
                settings,
                cores,
            )
            .await,
        );

        // Each call journals the agent's READY again: a durable write, fsync included. The
        // journal's growth proves every counted call committed (h2load sees only HTTP status).
        let before = revision(&mut routing).await;
        routing
            .change_agent_state(change_body.clone())
            .await
            .expect("the prepared ChangeAgentState body is answered OK");
        let per_call = revision(&mut routing).await - before;
        let before = revision(&mut routing).await;
        let run = h2load(
            &server,
            "/switchboard.v1.RoutingService/ChangeAgentState",
            &change_body,
            Some(&token),
            settings,
            cores,
        )
        .await;
        let grown = revision(&mut routing).await - before;
        assert!(
            per_call > 0 && grown >= per_call * run.succeeded,
            "{} calls succeeded but the journal grew by {grown} events ({per_call} per call)",
            run.succeeded
        );
        change.push(run);
        let (e, g, c) = (
            echo[round].calls_per_sec,
            get[round].calls_per_sec,
            change[round].calls_per_sec,
        );
        println!(
            "  round {round}: echo {e:.0}/s, GetAgentState {g:.0}/s ({:.2}), ChangeAgentState {c:.0}/s ({:.2}; journal +{grown} events)",
            g / e,
            c / e
        );
    }

    let best = |runs: &[Run]| {
        runs.iter()
            .max_by(|a, b| a.calls_per_sec.total_cmp(&b.calls_per_sec))
            .cloned()
            .expect("at least one round")
    };
    let (echo, get, change) = (best(&echo), best(&get), best(&change));
    println!();
    println!(
        "| RPC | calls/s | / echo | p50 | p99 | p99.9 | p99 / echo | server CPU | h2load CPU |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for (name, run) in [
        ("Echo (baseline)", &echo),
        ("GetAgentState", &get),
        ("ChangeAgentState (durable)", &change),
    ] {
        println!(
            "| {name} | {:.0} | {:.2} | {} | {} | {} | {:.2} | {:.0}% | {:.0}% |",
            run.calls_per_sec,
            run.calls_per_sec / echo.calls_per_sec,
            ms(run.latency.p50),
            ms(run.latency.p99),
            ms(run.latency.p999),
            crate::stats::ratio(run.latency.p99, echo.latency.p99),
            run.server_cores * 100.0,
            run.load_cores * 100.0,
        );
    }
    println!(
        "\nTargets: GetAgentState >= 0.75 of echo's calls/s (here {:.2}) with p99 <= 1.5x (here {:.2}); durable ChangeAgentState >= 0.40 (here {:.2}).",
        get.calls_per_sec / echo.calls_per_sec,
        crate::stats::ratio(get.latency.p99, echo.latency.p99),
        change.calls_per_sec / echo.calls_per_sec,
    );
}

/// A durable Switchboard (journal in `data_dir`) with MRD `chat` and [`AGENT`] logged in on
/// it, READY: the first admin writes the MRD and the agent, the agent logs itself in.
pub async fn start_with_agent(
    data_dir: &std::path::Path,
    flags: &[&str],
    cores: Option<Cores>,
) -> ServerChild {
    let server = ServerChild::start(
        &ServerKind::Switchboard { data_dir, flags },
        cores.map(|c| c.server),
    );
    prepare_agent(&server).await;
    server
}

/// Configures the `chat` MRD and `AGENT` on `server`, and logs the agent in, READY.
pub async fn prepare_agent(server: &ServerChild) {
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
    let mut routing =
        RoutingServiceClient::new(server.connect_as(Who::Agent(AGENT), PASSWORD).await);
    routing
        .login_agent(pb::LoginAgentRequest {
            agent_id: AGENT.into(),
            password: PASSWORD.into(),
            mrd: "chat".into(),
            ..Default::default()
        })
        .await
        .expect("the agent logs in");
    routing
        .change_agent_state(pb::ChangeAgentStateRequest {
            agent_id: AGENT.into(),
            state: pb::AgentState::Ready.into(),
            mrd: "chat".into(),
            ..Default::default()
        })
        .await
        .expect("the agent is ready");
}

/// The server's current revision, as a read reports it.
pub async fn revision(routing: &mut RoutingServiceClient<auth::Channel>) -> u64 {
    routing
        .get_agent_state(pb::GetAgentStateRequest {
            agent_id: AGENT.into(),
        })
        .await
        .expect("the agent's state")
        .into_inner()
        .revision
}

/// Drives `path` with `body` (a gRPC frame around it) through h2load on the load core; with
/// `token`, every call carries it as `authorization: Bearer <token>`.
pub async fn h2load(
    server: &ServerChild,
    path: &str,
    body: &impl Message,
    token: Option<&str>,
    settings: &Settings,
    cores: Option<Cores>,
) -> Run {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let body_file = dir.path().join("body");
    let log_file = dir.path().join("log");
    let encoded = body.encode_to_vec();
    let mut framed = vec![0u8];
    framed.extend_from_slice(
        &u32::try_from(encoded.len())
            .expect("a small body")
            .to_be_bytes(),
    );
    framed.extend_from_slice(&encoded);
    std::fs::File::create(&body_file)
        .and_then(|mut f| f.write_all(&framed))
        .expect("the body file is written");

    let mut command = match cores {
        Some(cores) => {
            let mut c = Command::new("taskset");
            c.args(["-c", &cores.load.to_string(), "h2load"]);
            c
        }
        None => Command::new("h2load"),
    };
    command
        .args(["-t", "1"])
        .args(["-c", &settings.connections.to_string()])
        .args(["-m", &settings.streams_per_connection.to_string()])
        .arg("-d")
        .arg(&body_file)
        .args(["-H", "content-type: application/grpc", "-H", "te: trailers"]);
    match settings.calls {
        Some(calls) => command.args(["-n", &calls.to_string()]),
        None => command
            .args(["-D", &settings.measure_secs.to_string()])
            .args(["--warm-up-time", &settings.warm_up_secs.to_string()]),
    };
    if let Some(token) = token {
        command.args(["-H", &format!("authorization: Bearer {token}")]);
    }
    command
        .arg(format!("--log-file={}", log_file.display()))
        .arg(format!("{}{path}", server.url()))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());

    let server_pid = server.pid();
    let warm_up = match settings.calls {
        Some(_) => Duration::ZERO,
        None => Duration::from_secs(settings.warm_up_secs.into()),
    };
    tokio::task::spawn_blocking(move || {
        let launched = SystemTime::now();
        let server_cpu = cpu_seconds(server_pid).unwrap_or(0.0);
        let started = Instant::now();
        let mut child = command
            .spawn()
            .expect("h2load runs (Debian package nghttp2-client)");
        // /proc forgets a process once it is reaped: read its CPU time until it exits.
        let mut load_cpu = 0.0;
        while child.try_wait().expect("h2load's status").is_none() {
            load_cpu = cpu_seconds(child.id()).unwrap_or(load_cpu);
            std::thread::sleep(Duration::from_millis(20));
        }
        let wall = started.elapsed().as_secs_f64();
        let server_cores = (cpu_seconds(server_pid).unwrap_or(0.0) - server_cpu) / wall;
        let output = child.wait_with_output().expect("h2load's output");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "h2load failed: {stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let summary = parse_summary(&stdout);
        assert!(
            summary.failed == 0 && summary.succeeded > 0,
            "h2load saw failures:\n{stdout}"
        );
        // The warm-up's calls are in the log too; only the measured ones count.
        let latency = Latency::of(read_log(&log_file, launched + warm_up));
        Run {
            calls_per_sec: summary.calls_per_sec,
            latency,
            succeeded: summary.succeeded,
            server_cores,
            load_cores: load_cpu / wall,
        }
    })
    .await
    .expect("the h2load run")
}

struct Summary {
    calls_per_sec: f64,
    succeeded: u64,
    failed: u64,
}

/// `finished in 5.00s, 41234.40 req/s, ...` and `requests: N total, N started, N done,
/// N succeeded, N failed, N errored, N timeout`.
fn parse_summary(stdout: &str) -> Summary {
    let calls_per_sec = stdout
        .lines()
        .find(|l| l.starts_with("finished in"))
        .and_then(|l| l.split(", ").nth(1))
        .and_then(|s| s.strip_suffix(" req/s"))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no req/s in h2load's output:\n{stdout}"));
    let requests = stdout
        .lines()
        .find(|l| l.starts_with("requests:"))
        .unwrap_or_else(|| panic!("no request counts in h2load's output:\n{stdout}"));
    let count = |what: &str| -> u64 {
        requests
            .trim_start_matches("requests:")
            .split(',')
            .find_map(|part| part.trim().strip_suffix(what))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0)
    };
    let errored = count("errored") + count("timeout");
    Summary {
        calls_per_sec,
        succeeded: count("succeeded"),
        failed: count("failed") + errored,
    }
}

/// Latencies of the requests h2load started after `from` (its log: start µs since the epoch,
/// HTTP status, µs until the response ended).
fn read_log(path: &std::path::Path, from: SystemTime) -> Vec<Duration> {
    let from_us = from
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64);
    std::fs::read_to_string(path)
        .expect("h2load's log")
        .lines()
        .filter_map(|line| {
            let mut columns = line.split('\t');
            let start: u64 = columns.next()?.parse().ok()?;
            let _status = columns.next()?;
            let took: u64 = columns.next()?.parse().ok()?;
            (start >= from_us).then_some(Duration::from_micros(took))
        })
        .collect()
}
