//! The benchmark suite: Switchboard against a bare tonic echo service, measured in one run so
//! that every figure is a ratio to a baseline that saw the same machine at the same time.
//!
//! ```sh
//! cargo bench --bench suite                    # everything, full size
//! cargo bench --bench suite -- --quick         # smallest setting (CI's smoke run)
//! cargo bench --bench suite -- unary fanout    # only some sections
//! ```
//!
//! Sections: `unary`, `routing`, `fanout`, `memory`, `recovery`. BENCHMARKS.md explains each.

mod echo;
mod procs;
mod stats;
mod unary;

use procs::Cores;

struct Settings {
    unary: unary::Settings,
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
            },
        }
    }
}

const SECTIONS: [&str; 1] = ["unary"];

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
