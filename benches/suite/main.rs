//! The benchmark suite: Switchboard against a bare tonic echo service, measured in one run so
//! that every figure is a ratio to a baseline that saw the same machine at the same time.
//!
//! ```sh
//! cargo bench --bench suite                    # everything, full size
//! cargo bench --bench suite -- --quick         # smallest setting (CI's smoke run)
//! cargo bench --bench suite -- unary fanout    # only some sections
//! cargo bench --bench suite -- metrics --control  # the metrics section's noise floor
//! ```
//!
//! Sections: `unary`, `metrics`, `routing`, `fanout`, `memory`, `recovery`, `stats`,
//! `stalled`, `overload`. BENCHMARKS.md explains each.

mod auth;
mod callgrind;
mod echo;
mod fanout;
mod hostile;
mod memory;
mod metrics_cost;
mod procs;
mod recovery;
mod routing;
// Only the scrape helpers are used here.
#[allow(dead_code)]
#[path = "../../tests/common/scrape.rs"]
mod scrape;
mod seed;
mod stats;
mod unary;
#[path = "../../tests/common/world.rs"]
mod world;

use procs::Cores;

struct Settings {
    unary: unary::Settings,
    metrics: metrics_cost::Settings,
    routing: routing::Settings,
    fanout: fanout::Settings,
    memory: memory::Settings,
    recovery: recovery::Settings,
    hostile: hostile::Settings,
}

impl Settings {
    fn full() -> Self {
        Self {
            unary: unary::Settings {
                warm_up_secs: 1,
                measure_secs: 5,
                connections: 4,
                streams_per_connection: 32,
                rounds: 3,
                calls: None,
            },
            metrics: metrics_cost::Settings {
                rounds: 9,
                counted_calls: 5_000,
                control: false,
            },
            routing: routing::Settings {
                small: (100, 100),
                large: (10_000, 100_000),
                tasks: 2_000,
            },
            fanout: fanout::Settings {
                streams: vec![100, 1_000, 5_000],
                shared: 100,
                events: 50,
            },
            memory: memory::Settings { desktops: 10_000 },
            recovery: recovery::Settings { events: 1_000_000 },
            hostile: hostile::Settings {
                stats_center: (100, 50_000),
                stats_calls: 2_000,
                stalled: (2_000, 20_000),
                overload_secs: 5,
            },
        }
    }

    fn quick() -> Self {
        Self {
            unary: unary::Settings {
                warm_up_secs: 1,
                measure_secs: 1,
                connections: 2,
                streams_per_connection: 8,
                rounds: 1,
                calls: None,
            },
            metrics: metrics_cost::Settings {
                rounds: 1,
                counted_calls: 200,
                control: false,
            },
            routing: routing::Settings {
                small: (100, 100),
                large: (1_000, 2_000),
                tasks: 100,
            },
            fanout: fanout::Settings {
                streams: vec![100],
                shared: 50,
                events: 10,
            },
            memory: memory::Settings { desktops: 200 },
            recovery: recovery::Settings { events: 50_000 },
            hostile: hostile::Settings {
                stats_center: (100, 5_000),
                stats_calls: 200,
                stalled: (200, 2_000),
                overload_secs: 1,
            },
        }
    }
}

const SECTIONS: [&str; 9] = [
    "unary", "metrics", "routing", "fanout", "memory", "recovery", "stats", "stalled", "overload",
];

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
    let mut settings = if quick {
        Settings::quick()
    } else {
        Settings::full()
    };
    settings.metrics.control = args.iter().any(|a| a == "--control");

    println!(
        "# Switchboard benchmark suite ({})",
        if quick { "quick" } else { "full" }
    );
    println!("{}", machine());
    let cores: Option<Cores> = procs::pin_this_process();
    match cores {
        Some(c) => println!(
            "Servers run on core {}, the load on core {}.",
            c.server, c.load
        ),
        None => println!("One core (or no taskset): servers and load share the machine."),
    }

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        if wanted("unary") {
            unary::run(&settings.unary, cores).await;
        }
        if wanted("metrics") {
            metrics_cost::run(&settings.unary, &settings.metrics, cores).await;
        }
        if wanted("routing") {
            routing::run(&settings.routing, cores).await;
        }
        if wanted("fanout") {
            fanout::run(&settings.fanout, cores).await;
        }
        if wanted("memory") {
            memory::run(&settings.memory, cores).await;
        }
        if wanted("recovery") {
            recovery::run(&settings.recovery).await;
        }
        if wanted("stats") {
            hostile::stats(&settings.hostile, cores).await;
        }
        if wanted("stalled") {
            hostile::stalled(&settings.hostile, cores).await;
        }
        if wanted("overload") {
            hostile::overload(&settings.hostile, cores).await;
        }
    });
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
