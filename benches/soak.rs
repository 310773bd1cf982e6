//! Soak: a compressed day. The release server on a durable journal takes a day's traffic with
//! its retention windows scaled down so that minutes reach steady state: 1,000 agents (each
//! signed in as itself) take a million tasks through offer, accept (some RONA, rejects,
//! transfers), wrap-up and close, logging out and back in meanwhile. Memory and the journal's
//! size are sampled every second into `target/soak/samples.csv`; then the server is killed
//! with SIGKILL and restarted on the same journal, and a task closed beyond the retention is
//! read back from the journal's history.
//!
//! ```sh
//! cargo bench --bench soak              # the full day (a million tasks)
//! cargo bench --bench soak -- --quick   # 100 agents, 5,000 tasks: CI's smoke run
//! scripts/plot-soak.py                  # the plot, from the CSV
//! ```

#[path = "suite/auth.rs"]
#[allow(dead_code)]
mod auth;
#[path = "soak/center.rs"]
mod center;
// The suite's process helpers: resident memory of the server.
#[path = "soak/load.rs"]
mod load;
#[path = "suite/procs.rs"]
#[allow(dead_code)]
mod procs;
#[path = "soak/samples.rs"]
mod samples;
#[path = "soak/server.rs"]
mod server;

use std::sync::Arc;
use std::time::{Duration, Instant};

use switchboard::pb;
use switchboard::pb::admin_service_client::AdminServiceClient;
use switchboard::pb::routing_service_client::RoutingServiceClient;

use center::MrdSettings;
use load::{Counters, Day, Plan};
use samples::Sample;
use server::Server;

/// BENCHMARKS.md's bound for recovery: a million events replayed within 5 s.
const RECOVERY_BOUND: Duration = Duration::from_secs(5);
/// The largest memory growth allowed from a quarter of the run to its end.
const GROWTH_TARGET: f64 = 0.10;

struct Settings {
    name: &'static str,
    agents: usize,
    plan: Plan,
    mrd: MrdSettings,
    /// The server's retention windows, scaled down from a day.
    closed_task_retention_secs: u64,
    task_history_secs: u64,
    request_window_secs: u64,
    retain_events: u64,
    snapshot_every: u64,
    csv: &'static str,
    progress_every: usize,
}

impl Settings {
    fn full() -> Self {
        Self {
            name: "full",
            agents: 1_000,
            plan: Plan {
                tasks: 1_000_000,
                rate: 1_200,
                open_cap: 1_500,
                logout_every: Duration::from_millis(200),
            },
            mrd: MrdSettings {
                max_tasks: 2,
                offer_timeout_seconds: 3,
                wrap_up_timeout_seconds: 1,
            },
            closed_task_retention_secs: 30,
            task_history_secs: 120,
            request_window_secs: 60,
            retain_events: 200_000,
            snapshot_every: 100_000,
            csv: "samples.csv",
            progress_every: 30,
        }
    }

    fn quick() -> Self {
        Self {
            name: "quick",
            agents: 100,
            plan: Plan {
                tasks: 5_000,
                rate: 500,
                open_cap: 150,
                logout_every: Duration::from_secs(1),
            },
            mrd: MrdSettings {
                max_tasks: 2,
                offer_timeout_seconds: 3,
                wrap_up_timeout_seconds: 1,
            },
            closed_task_retention_secs: 5,
            task_history_secs: 600,
            request_window_secs: 60,
            retain_events: 20_000,
            snapshot_every: 10_000,
            csv: "samples-quick.csv",
            progress_every: 5,
        }
    }

    fn flags(&self) -> Vec<String> {
        [
            (
                "--closed-task-retention-secs",
                self.closed_task_retention_secs,
            ),
            ("--task-history-secs", self.task_history_secs),
            ("--request-window-secs", self.request_window_secs),
            ("--retain-events", self.retain_events),
            ("--snapshot-every", self.snapshot_every),
            // Tokens outlive the run, so no desktop has to refresh mid-day.
            ("--access-token-ttl-secs", 86_400),
        ]
        .iter()
        .flat_map(|(flag, value)| [(*flag).to_owned(), value.to_string()])
        .collect()
    }
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let settings = if quick {
        Settings::quick()
    } else {
        Settings::full()
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let failures = runtime.block_on(soak(&settings));
    if !failures.is_empty() {
        eprintln!("\nSoak failed:\n- {}", failures.join("\n- "));
        std::process::exit(1);
    }
}

/// Runs the day, prints the figures; returns what went wrong.
async fn soak(s: &Settings) -> Vec<String> {
    println!("# Soak: a compressed day ({})", s.name);
    println!(
        "{} agents, {} tasks at up to {} a second (at most {} open), MRD max {} tasks, offers \
         ring {} s, wrap-up {} s; an idle agent logs out and back in every {:?}.",
        s.agents,
        s.plan.tasks,
        s.plan.rate,
        s.plan.open_cap,
        s.mrd.max_tasks,
        s.mrd.offer_timeout_seconds,
        s.mrd.wrap_up_timeout_seconds,
        s.plan.logout_every
    );
    let flags = s.flags();
    println!("Server: switchboard serve {}", flags.join(" "));
    let data = tempfile::tempdir().expect("a temporary directory");
    let server = Server::start(data.path(), &flags);
    let admin = server.connect_admin().await;
    let channel = center::configure(&server, &admin, &s.mrd).await;
    let building = Instant::now();
    let agents = center::agents(&server, &admin, s.agents).await;
    println!(
        "{} agents created by the admin and signed in, each with its own password, in {:.1?}.",
        agents.len(),
        building.elapsed()
    );
    let head = AdminServiceClient::new(admin.clone())
        .list_mrds(pb::ListMrdsRequest {})
        .await
        .expect("the MRDs")
        .into_inner()
        .revision;

    let day = Day::new(agents, &s.plan);
    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    let running = tokio::spawn(load::run(
        Arc::clone(&day),
        admin.clone(),
        channel,
        head + 1,
        s.plan.clone(),
        started_tx,
    ));
    let started = started_rx.await.expect("the day starts");
    let sampling = tokio::spawn(samples::sample(
        Arc::clone(&day),
        server.pid(),
        data.path().to_owned(),
        samples::csv_path(s.csv),
        started,
        s.progress_every,
    ));
    running.await.expect("the day runs to its end");
    let ran = started.elapsed();
    let samples = sampling.await.expect("the sampler ends");
    let warnings = server.warnings();

    let mut failures = Vec::new();
    report_traffic(&day.counters, ran, &mut failures);
    report_memory(&samples, ran, s, &mut failures);
    {
        let w = warnings.lock().expect("not poisoned");
        println!("\nServer log: {} warnings or errors.", w.count);
        for line in &w.first {
            println!("  {line}");
        }
    }
    restart(server, data.path(), &flags, &samples, s, &mut failures).await;
    println!("\nCSV: {}", samples::csv_path(s.csv).display());
    failures
}

fn report_traffic(c: &Counters, ran: Duration, failures: &mut Vec<String>) {
    let get = Counters::get;
    let (submitted, closed) = (get(&c.submitted), get(&c.closed));
    println!("\n## Traffic\n");
    println!("| what | count |");
    println!("|---|---|");
    for (what, n) in [
        ("tasks submitted (NewTask)", submitted),
        ("tasks closed", closed),
        ("offers (TaskAgentSelected)", get(&c.offers)),
        ("offers accepted", get(&c.accepted)),
        ("offers rejected", get(&c.rejected)),
        ("offers left to ring out", get(&c.let_ring)),
        ("agents NOT_READY by RONA", get(&c.rona_not_ready)),
        ("... back to READY", get(&c.back_ready)),
        ("transfers", get(&c.transferred)),
        (
            "transfers refused (recipient busy or away)",
            get(&c.transfers_refused),
        ),
        ("wrap-ups", get(&c.wrapped_up)),
        (
            "closed by the agent (the rest by the wrap-up timer)",
            get(&c.closed_by_agent),
        ),
        ("NewTask retried with its request id", get(&c.retries)),
        ("agents logged out", get(&c.logouts)),
        ("agents logged back in", get(&c.logins)),
        ("watch reopened", get(&c.watch_reopened)),
    ] {
        println!("| {what} | {n} |");
    }
    let errors = c.errors.lock().expect("not poisoned");
    if !errors.is_empty() {
        println!(
            "\nRefused calls (races of the day: an offer gone after a logout or RONA, a wrap-up timer that closed the task first, a watch that lagged and resumed):"
        );
        for (what, n) in errors.iter() {
            println!("- {what}: {n}");
        }
    }
    println!(
        "\nThroughput: {closed} tasks closed in {:.0} s, {:.0} tasks/s.",
        ran.as_secs_f64(),
        closed as f64 / ran.as_secs_f64()
    );
    if closed < submitted {
        failures.push(format!(
            "{} tasks submitted never closed",
            submitted - closed
        ));
    }
    if get(&c.retries_differing) > 0 {
        failures.push(format!(
            "{} NewTask retries answered another task",
            get(&c.retries_differing)
        ));
    }
}

fn report_memory(samples: &[Sample], ran: Duration, s: &Settings, failures: &mut Vec<String>) {
    let rss = |x: &Sample| x.rss_kib;
    let journal = |x: &Sample| x.journal_bytes;
    let end = ran.as_secs_f64();
    let quarter = end / 4.0;
    // Medians over a window (2.5% of the run either side, at least a second) smooth out the
    // allocator's and SQLite's checkpoints.
    let half = (end * 0.025).max(1.0);
    let at_end = end - half;
    let (rss_q, rss_e) = (
        samples::median_around(samples, quarter, half, rss),
        samples::median_around(samples, at_end, half, rss),
    );
    let (j_q, j_e) = (
        samples::median_around(samples, quarter, half, journal),
        samples::median_around(samples, at_end, half, journal),
    );
    let growth = rss_e as f64 / rss_q.max(1) as f64 - 1.0;
    let mib = |kib: u64| kib as f64 / 1024.0;
    let mib_b = |b: u64| b as f64 / (1024.0 * 1024.0);
    println!("\n## Memory and journal ({} samples)\n", samples.len());
    println!(
        "| | at a quarter ({quarter:.0} s) | at the end | growth | largest after the quarter |"
    );
    println!("|---|---|---|---|---|");
    println!(
        "| server RSS | {:.1} MiB | {:.1} MiB | {:+.1}% | {:.1} MiB |",
        mib(rss_q),
        mib(rss_e),
        growth * 100.0,
        mib(samples::max_from(samples, quarter, rss))
    );
    println!(
        "| journal (+ WAL, SHM) | {:.1} MiB | {:.1} MiB | {:+.1}% | {:.1} MiB |",
        mib_b(j_q),
        mib_b(j_e),
        (j_e as f64 / j_q.max(1) as f64 - 1.0) * 100.0,
        mib_b(samples::max_from(samples, quarter, journal))
    );
    let met = growth <= GROWTH_TARGET;
    println!(
        "\nTarget: memory grows at most {:.0}% from a quarter of the run to its end: {} ({:+.1}%).",
        GROWTH_TARGET * 100.0,
        if met { "met" } else { "NOT met" },
        growth * 100.0
    );
    println!(
        "The journal keeps {} events behind its latest snapshot (every {}), closed tasks for {} s \
         of history and request ids for {} s: it stays at {:.1} MiB after the quarter, against \
         {:.1} MiB at it.",
        s.retain_events,
        s.snapshot_every,
        s.task_history_secs,
        s.request_window_secs,
        mib_b(j_e),
        mib_b(j_q)
    );
    // A short run is mostly warm-up: its growth is printed, not judged.
    if s.name == "full" && !met {
        failures.push(format!(
            "memory grew {:+.1}% after the quarter",
            growth * 100.0
        ));
    }
}

/// SIGKILL, then a restart on the same journal, against a fresh start; then a task closed
/// beyond the retention, read from the journal's history.
async fn restart(
    server: Server,
    data_dir: &std::path::Path,
    flags: &[String],
    samples: &[Sample],
    s: &Settings,
    failures: &mut Vec<String>,
) {
    let journal = server::journal_bytes(data_dir);
    let killed_at = samples.last().map_or(0.0, |x| x.elapsed);
    server.kill();
    println!(
        "\n## Restart after SIGKILL\n\nKilled with SIGKILL; the journal is {:.1} MiB.",
        journal as f64 / (1024.0 * 1024.0)
    );
    let restarted = Server::start(data_dir, flags);
    let fresh_dir = tempfile::tempdir().expect("a temporary directory");
    let fresh = Server::start(fresh_dir.path(), flags);
    println!("\n| start | start to serving | state recovered in | events replayed |");
    println!("|---|---|---|---|");
    for (what, server) in [
        ("fresh journal (baseline)", &fresh),
        ("after the soak, SIGKILL", &restarted),
    ] {
        println!(
            "| {what} | {:.0} ms | {} ms | {} |",
            server.start_to_serving.as_secs_f64() * 1000.0,
            server.recovered_ms.map_or("?".into(), |ms| ms.to_string()),
            server.replayed.map_or("?".into(), |n| n.to_string()),
        );
    }
    let within = restarted.start_to_serving <= RECOVERY_BOUND;
    println!(
        "\nBound: start to serving within {} s, as for recovering a million events: {} ({:.2} s, \
         {:.1}x a fresh start).",
        RECOVERY_BOUND.as_secs(),
        if within { "met" } else { "NOT met" },
        restarted.start_to_serving.as_secs_f64(),
        restarted.start_to_serving.as_secs_f64() / fresh.start_to_serving.as_secs_f64()
    );
    if !within {
        failures.push("the restart after SIGKILL took longer than the bound".into());
    }
    drop(fresh);

    let mut routing = RoutingServiceClient::new(restarted.connect_admin().await);
    let margin = 5.0;
    let old_enough = |x: &&Sample| {
        let age = killed_at - x.elapsed;
        age >= s.closed_task_retention_secs as f64 + margin
            && age <= s.task_history_secs as f64 - margin
    };
    let first = samples.iter().find_map(|x| x.last_closed.clone());
    let Some((check, age)) = samples
        .iter()
        .filter(|x| x.last_closed.is_some())
        .find(old_enough)
        .and_then(|x| Some((x.last_closed.clone()?, killed_at - x.elapsed)))
    else {
        failures.push("no task closed beyond the retention and within the history".into());
        return;
    };
    match read(&mut routing, &check).await {
        Ok(task) if task.state() == pb::TaskState::Closed => println!(
            "\nGetTaskState of {check}, closed {age:.0} s before the kill (retention {} s): \
             CLOSED ({:?}), from the journal's history.",
            s.closed_task_retention_secs,
            task.close_reason()
        ),
        other => failures.push(format!(
            "GetTaskState of {check}, closed {age:.0} s before the kill, answered {other:?}"
        )),
    }
    if let Some(first) = first.filter(|f| *f != check) {
        let answer = match read(&mut routing, &first).await {
            Ok(task) => format!("{:?}", task.state()),
            Err(e) => format!("{:?} ({})", e.code(), e.message()),
        };
        println!(
            "GetTaskState of the first task closed, {first} (beyond the {} s of history if the \
             run was longer): {answer}.",
            s.task_history_secs
        );
    }
}

async fn read(
    routing: &mut RoutingServiceClient<auth::Channel>,
    task_id: &str,
) -> Result<pb::TaskStatus, tonic::Status> {
    routing
        .get_task_state(pb::GetTaskStateRequest {
            task_id: task_id.into(),
        })
        .await
        .map(|r| r.into_inner().task.unwrap_or_default())
}
