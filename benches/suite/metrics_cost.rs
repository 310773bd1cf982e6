//! What metrics cost: the unary section's `GetAgentState` and durable `ChangeAgentState`
//! against a server without `--metrics-listen` and one with it, scraped every second (a far
//! busier Prometheus than the usual 15 s) while h2load runs. Both servers run in the same
//! round, back to back in alternating order, so that drift hits both alike. The figure is
//! the median over rounds of each round's own on/off ratio: on a shared machine a round's
//! rate swings more from one minute to the next than the cost sought here, and pairing
//! cancels what the two halves of a round share. The server's CPU time per call, on and off,
//! is the second view: what the metrics add to each call, whatever the neighbours do.
//! Target: metrics on keeps >= 0.95 of the calls/s of metrics off.
//!
//! On a shared machine neither calls/s nor CPU time can resolve 5%, so the section ends with
//! a third view that can: the server's instructions per call under callgrind (see
//! `callgrind.rs`), metrics off and on. A run of `calls` calls and one of twice as many, each
//! on a fresh server, differ by `calls` calls' instructions: start-up, log-in and the final
//! scrape cancel out.
//!
//! With `--control`, both halves of every round run without metrics (the scrape skipped): the
//! ratios then show how far two identical servers differ on this machine, the floor under
//! which no difference in calls/s or CPU per call means anything.

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use switchboard::pb;

use crate::auth::Who;
use crate::callgrind::Counted;
use crate::procs::Cores;
use crate::scrape;
use crate::stats::heading;
use crate::unary::{self, AGENT, PASSWORD, Run, h2load, prepare_agent, start_with_agent};

/// How often the metrics are scraped while h2load runs.
const SCRAPE_EVERY: Duration = Duration::from_secs(1);

const GET: &str = "/switchboard.v1.RoutingService/GetAgentState";
const CHANGE: &str = "/switchboard.v1.RoutingService/ChangeAgentState";

/// The section's own settings; the h2load ones are the unary section's.
pub struct Settings {
    /// Rounds, each a pair of runs (off and on) of both RPCs.
    pub rounds: usize,
    /// Calls in the shorter of the two callgrind-counted runs.
    pub counted_calls: u64,
    /// Both halves of each round without metrics: the measure's noise floor.
    pub control: bool,
}

pub async fn run(load: &unary::Settings, settings: &Settings, cores: Option<Cores>) {
    if settings.control {
        heading("Metrics, control: the same rounds with metrics off in both halves");
    } else {
        heading("Metrics: unary calls with /metrics on (scraped every second) against off");
    }
    let get_body = pb::GetAgentStateRequest {
        agent_id: AGENT.into(),
    };
    let change_body = pb::ChangeAgentStateRequest {
        agent_id: AGENT.into(),
        state: pb::AgentState::Ready.into(),
        mrd: "chat".into(),
        ..Default::default()
    };
    // Each round's (off, on) runs of each RPC.
    let mut get: Vec<Pair> = Vec::new();
    let mut change: Vec<Pair> = Vec::new();
    for round in 0..settings.rounds {
        let (mut get_pair, mut change_pair) = (Pair::default(), Pair::default());
        let order = if round % 2 == 0 {
            [false, true]
        } else {
            [true, false]
        };
        for half_on in order {
            let metrics_on = half_on && !settings.control;
            let data = tempfile::tempdir().expect("a temporary directory");
            let metrics = free_port();
            let listen = metrics.to_string();
            let flags = serve_flags(metrics_on, &listen);
            let server = start_with_agent(data.path(), &flags, cores).await;
            let token = server.token_as(Who::Agent(AGENT), PASSWORD).await;
            let scraper = metrics_on.then(|| tokio::spawn(scrape_forever(metrics)));
            let get_run = h2load(&server, GET, &get_body, Some(&token), load, cores).await;
            let change_run = h2load(&server, CHANGE, &change_body, Some(&token), load, cores).await;
            if let Some(scraper) = scraper {
                scraper.abort();
                // The metrics counted what h2load did: they were on, and they were right.
                let counted = scrape::scrape(metrics).await.sum(
                    "grpc_server_handled_total",
                    &[("grpc_method", "ChangeAgentState"), ("grpc_code", "OK")],
                );
                assert!(
                    counted >= change_run.succeeded as f64,
                    "{counted} ChangeAgentState calls counted, {} succeeded",
                    change_run.succeeded
                );
            }
            println!(
                "  round {round}, metrics {}: GetAgentState {:.0}/s, ChangeAgentState {:.0}/s",
                if metrics_on { "on" } else { "off" },
                get_run.calls_per_sec,
                change_run.calls_per_sec
            );
            get_pair.set(half_on, get_run);
            change_pair.set(half_on, change_run);
        }
        get.push(get_pair);
        change.push(change_pair);
    }

    println!();
    println!("Each round's on / off, and the median over rounds:\n");
    println!("| RPC | on / off by round | median on / off | server CPU per call, off | on |");
    println!("|---|---|---|---|---|");
    let mut ratios = Vec::new();
    for (name, pairs) in [
        ("GetAgentState", &get),
        ("ChangeAgentState (durable)", &change),
    ] {
        let by_round: Vec<f64> = pairs.iter().map(Pair::ratio).collect();
        let ratio = median(&by_round);
        ratios.push(ratio);
        let cpu = |on: bool| median(&pairs.iter().map(|p| p.cpu_per_call(on)).collect::<Vec<_>>());
        println!(
            "| {name} | {} | {ratio:.3} | {:.1} µs | {:.1} µs |",
            by_round
                .iter()
                .map(|r| format!("{r:.3}"))
                .collect::<Vec<_>>()
                .join(", "),
            cpu(false) * 1e6,
            cpu(true) * 1e6,
        );
    }
    println!(
        "\nTarget: metrics on >= 0.95 of metrics off's calls/s (here {:.3} and {:.3}).",
        ratios[0], ratios[1]
    );
    if settings.control {
        return;
    }

    println!(
        "\nThe server's instructions per call (callgrind, {} calls):\n",
        settings.counted_calls
    );
    println!("| RPC | metrics off | metrics on | off / on |");
    println!("|---|---|---|---|");
    let get = off_and_on(GET, &get_body, settings, load, cores).await;
    let change = off_and_on(CHANGE, &change_body, settings, load, cores).await;
    for (name, [off, on]) in [
        ("GetAgentState", get),
        ("ChangeAgentState (durable)", change),
    ] {
        println!("| {name} | {off:.0} | {on:.0} | {:.3} |", off / on);
    }
    println!(
        "\nA CPU-bound server's calls/s go as 1 / instructions per call: off / on is what \
         metrics on would keep of metrics off's calls/s (target >= 0.95)."
    );
}

/// The server's instructions per call of `path` with `body`, metrics off and on.
async fn off_and_on(
    path: &str,
    body: &impl prost::Message,
    settings: &Settings,
    load: &unary::Settings,
    cores: Option<Cores>,
) -> [f64; 2] {
    let calls = settings.counted_calls;
    [
        instructions_per_call(false, path, body, calls, load, cores).await,
        instructions_per_call(true, path, body, calls, load, cores).await,
    ]
}

/// The server's instructions per call of `path` with `body`, metrics on or off: the
/// difference between a fresh server's whole run with `calls` calls and one with twice as
/// many, over `calls`.
async fn instructions_per_call(
    metrics_on: bool,
    path: &str,
    body: &impl prost::Message,
    calls: u64,
    load: &unary::Settings,
    cores: Option<Cores>,
) -> f64 {
    let mut totals = Vec::new();
    for run_calls in [calls, 2 * calls] {
        let data = tempfile::tempdir().expect("a temporary directory");
        let metrics = free_port();
        let listen = metrics.to_string();
        let flags = serve_flags(metrics_on, &listen);
        let counted = Counted::start(data.path(), &flags, cores.map(|c| c.server));
        prepare_agent(&counted.server).await;
        let token = counted.server.token_as(Who::Agent(AGENT), PASSWORD).await;
        let fixed = unary::Settings {
            calls: Some(run_calls),
            ..*load
        };
        let run = h2load(&counted.server, path, body, Some(&token), &fixed, cores).await;
        assert_eq!(run.succeeded, run_calls, "every counted call succeeded");
        if metrics_on {
            // One scrape, in both runs alike: its cost cancels, and it shows metrics were on.
            let started = scrape::scrape(metrics)
                .await
                .sum("grpc_server_started_total", &[]);
            assert!(
                started >= run_calls as f64,
                "{started} calls counted of {run_calls}"
            );
        }
        totals.push(counted.stop());
    }
    (totals[1] as f64 - totals[0] as f64) / calls as f64
}

/// One round's runs of one RPC, without metrics and with them.
#[derive(Default)]
struct Pair {
    off: Option<Run>,
    on: Option<Run>,
}

impl Pair {
    fn set(&mut self, metrics_on: bool, run: Run) {
        *if metrics_on {
            &mut self.on
        } else {
            &mut self.off
        } = Some(run);
    }

    fn run(&self, metrics_on: bool) -> &Run {
        let run = if metrics_on { &self.on } else { &self.off };
        run.as_ref().expect("both halves of a round ran")
    }

    /// Metrics on's calls/s over metrics off's, in this round.
    fn ratio(&self) -> f64 {
        self.run(true).calls_per_sec / self.run(false).calls_per_sec
    }

    /// Seconds of the server's CPU per call.
    fn cpu_per_call(&self, metrics_on: bool) -> f64 {
        let run = self.run(metrics_on);
        run.server_cores / run.calls_per_sec
    }
}

fn median(values: &[f64]) -> f64 {
    let mut values = values.to_vec();
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// The `serve` flags of a server with metrics on (served at `listen`) or off.
fn serve_flags(metrics_on: bool, listen: &str) -> Vec<&str> {
    if metrics_on {
        vec!["--metrics-listen", listen]
    } else {
        Vec::new()
    }
}

/// A loopback port nothing listens on now, for the server to bind.
fn free_port() -> SocketAddr {
    let probe = TcpListener::bind("127.0.0.1:0").expect("a free port");
    probe.local_addr().expect("its address")
}

/// Scrapes `/metrics` every `SCRAPE_EVERY` until aborted.
async fn scrape_forever(metrics: SocketAddr) {
    let mut every = tokio::time::interval(SCRAPE_EVERY);
    loop {
        every.tick().await;
        scrape::scrape(metrics).await;
    }
}
