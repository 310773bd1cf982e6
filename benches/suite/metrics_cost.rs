//! What metrics cost: the unary section's `GetAgentState` and durable `ChangeAgentState`
//! against a server without `--metrics-listen` and one with it, scraped every second (a far
//! busier Prometheus than the usual 15 s) while h2load runs. Both servers run in the same
//! round, in alternating order, so that drift hits both alike; the figure is the ratio of
//! the median rounds (a durable write's rate swings more between runs than the cost sought
//! here, and the best of a few runs is the figure most at the mercy of one lucky run).
//! Target: metrics on keeps >= 0.95 of the calls/s of metrics off.

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use switchboard::pb;

use crate::auth::Who;
use crate::procs::Cores;
use crate::scrape;
use crate::stats::{heading, ms};
use crate::unary::{AGENT, PASSWORD, Run, Settings, h2load, start_with_agent};

/// How often the metrics are scraped while h2load runs.
const SCRAPE_EVERY: Duration = Duration::from_secs(1);

pub async fn run(settings: &Settings, cores: Option<Cores>) {
    heading("Metrics: unary calls with /metrics on (scraped every second) against off");
    let get_body = pb::GetAgentStateRequest {
        agent_id: AGENT.into(),
    };
    let change_body = pb::ChangeAgentStateRequest {
        agent_id: AGENT.into(),
        state: pb::AgentState::Ready.into(),
        mrd: "chat".into(),
        ..Default::default()
    };
    // (off, on) runs of each RPC.
    let mut get: (Vec<Run>, Vec<Run>) = Default::default();
    let mut change: (Vec<Run>, Vec<Run>) = Default::default();
    for round in 0..settings.rounds {
        let order = if round % 2 == 0 {
            [false, true]
        } else {
            [true, false]
        };
        for metrics_on in order {
            let data = tempfile::tempdir().expect("a temporary directory");
            let metrics = free_port();
            let listen = metrics.to_string();
            let flags: &[&str] = if metrics_on {
                &["--metrics-listen", &listen]
            } else {
                &[]
            };
            let server = start_with_agent(data.path(), flags, cores).await;
            let token = server.token_as(Who::Agent(AGENT), PASSWORD).await;
            let scraper = metrics_on.then(|| tokio::spawn(scrape_forever(metrics)));
            let get_run = h2load(
                &server,
                "/switchboard.v1.RoutingService/GetAgentState",
                &get_body,
                Some(&token),
                settings,
                cores,
            )
            .await;
            let change_run = h2load(
                &server,
                "/switchboard.v1.RoutingService/ChangeAgentState",
                &change_body,
                Some(&token),
                settings,
                cores,
            )
            .await;
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
            let (get_runs, change_runs) = if metrics_on {
                (&mut get.1, &mut change.1)
            } else {
                (&mut get.0, &mut change.0)
            };
            get_runs.push(get_run);
            change_runs.push(change_run);
        }
    }

    let median = |runs: &[Run]| {
        let mut runs = runs.to_vec();
        runs.sort_by(|a, b| a.calls_per_sec.total_cmp(&b.calls_per_sec));
        runs[runs.len() / 2].clone()
    };
    println!();
    println!("Median rounds:\n");
    println!("| RPC | off calls/s | on calls/s | on / off | off p99 | on p99 |");
    println!("|---|---|---|---|---|---|");
    let mut ratios = Vec::new();
    for (name, (off, on)) in [
        ("GetAgentState", &get),
        ("ChangeAgentState (durable)", &change),
    ] {
        let (off, on) = (median(off), median(on));
        let ratio = on.calls_per_sec / off.calls_per_sec;
        ratios.push(ratio);
        println!(
            "| {name} | {:.0} | {:.0} | {ratio:.3} | {} | {} |",
            off.calls_per_sec,
            on.calls_per_sec,
            ms(off.latency.p99),
            ms(on.latency.p99),
        );
    }
    println!(
        "\nTarget: metrics on >= 0.95 of metrics off's calls/s (here {:.3} and {:.3}).",
        ratios[0], ratios[1]
    );
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
