//! The cluster's benchmarks, on a real PostgreSQL server started for the run (the tests'
//! harness, with PostgreSQL's durable defaults: fsync on):
//! - `throughput`: durable `ChangeAgentState` on the PostgreSQL journal (through the leader and
//!   through a follower) against the single node's SQLite journal and the bare tonic echo, the
//!   same load on each, measured in the same run;
//! - `failover`: three nodes, SIGKILL the leader, the time to the first write the new leader
//!   acknowledges.
//!
//! ```sh
//! cargo bench --bench cluster                  # both, full size
//! cargo bench --bench cluster -- --quick       # CI's smoke run
//! cargo bench --bench cluster -- failover      # one section
//! ```

#[path = "suite/auth.rs"]
#[allow(dead_code)]
mod auth;
#[path = "suite/echo.rs"]
mod echo;
#[path = "cluster/failover.rs"]
mod failover;
#[path = "cluster/nodes.rs"]
mod nodes;
#[path = "../tests/common/postgres.rs"]
#[allow(dead_code)]
mod postgres;
#[path = "suite/procs.rs"]
#[allow(dead_code)]
mod procs;
#[path = "suite/stats.rs"]
#[allow(dead_code)]
mod stats;
#[path = "cluster/throughput.rs"]
mod throughput;

use std::time::Duration;

use nodes::Lease;
use postgres::PgServer;

const SECTIONS: [&str; 2] = ["throughput", "failover"];

struct Settings {
    throughput: throughput::Settings,
    failover: failover::Settings,
}

impl Settings {
    fn full() -> Self {
        Self {
            throughput: throughput::Settings {
                in_flight: 128,
                connections: 4,
                warm_up: Duration::from_secs(1),
                measure: Duration::from_secs(5),
                max_calls: None,
                rounds: 3,
            },
            failover: failover::Settings {
                trials: 20,
                // The defaults of `switchboard serve`.
                lease: Lease {
                    ttl_ms: 5_000,
                    renew_ms: 1_000,
                },
                write_every: Duration::from_millis(5),
            },
        }
    }

    fn quick() -> Self {
        Self {
            throughput: throughput::Settings {
                in_flight: 16,
                connections: 2,
                warm_up: Duration::from_millis(200),
                measure: Duration::from_secs(2),
                max_calls: Some(400),
                rounds: 1,
            },
            failover: failover::Settings {
                trials: 3,
                lease: Lease {
                    ttl_ms: 1_000,
                    renew_ms: 200,
                },
                write_every: Duration::from_millis(5),
            },
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // The baseline server's own process (see procs.rs).
    if args.first().map(String::as_str) == Some("serve-echo") {
        echo::serve();
        return;
    }
    let quick = args.iter().any(|a| a == "--quick");
    // `cargo bench` passes `--bench`; every other bare word names a section.
    let chosen: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|a| !a.starts_with("--"))
        .collect();
    if let Some(unknown) = chosen.iter().find(|c| !SECTIONS.contains(c)) {
        eprintln!("unknown section '{unknown}'; the sections are {SECTIONS:?}");
        std::process::exit(2);
    }
    let wanted = |section: &str| chosen.is_empty() || chosen.contains(&section);
    let settings = if quick {
        Settings::quick()
    } else {
        Settings::full()
    };
    println!(
        "# Switchboard cluster benchmarks ({})",
        if quick { "quick" } else { "full" }
    );
    println!("{}", machine());
    let pg = PgServer::start_durable();
    println!(
        "PostgreSQL on 127.0.0.1:{} (fsync=on, synchronous_commit=on, full_page_writes=on); \
         servers and load not pinned.",
        pg.port()
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        if wanted("throughput") {
            throughput::run(&settings.throughput, &pg).await;
        }
        if wanted("failover") {
            failover::run(&settings.failover, &pg).await;
        }
    });
    pg.stop();
}

/// The CPU model and core count, from the operating system.
fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    format!("Machine: {model}, {cores} cores available.")
}
