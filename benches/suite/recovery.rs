//! Recovery: time from starting the process until it serves, with a journal of a million
//! events; the baseline is the echo server's own start to serving.

use std::time::Instant;

use switchboard::domain::routing::model::{RequestedAgentState, TaskState};

use crate::procs::{ServerChild, ServerKind};
use crate::seed::Seeder;
use crate::stats::{heading, ms, ratio};
use crate::world::{offers, spec};

pub struct Settings {
    pub events: usize,
}

pub async fn run(settings: &Settings) {
    heading("Recovery: start to serving with a journal of a million events");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let written = Instant::now();
    let events = write_journal(dir.path(), settings.events);
    println!(
        "A journal of {events} events ({} MiB), written in {:.1?}. Servers are not pinned: recovery may use both cores.",
        journal_size(dir.path()) / (1024 * 1024),
        written.elapsed()
    );
    let echo = ServerChild::start(&ServerKind::Echo, None).start_to_serving;
    let server = ServerKind::Switchboard {
        data_dir: dir.path(),
        // No snapshot while serving, so the first start replays every event.
        flags: &["--snapshot-every", "18446744073709551615"],
    };
    let replaying = ServerChild::start(&server, None);
    let full = replaying.start_to_serving;
    // A graceful stop leaves a snapshot; the next start loads it and replays nothing.
    replaying.terminate();
    let after_stop = ServerChild::start(&server, None).start_to_serving;

    println!();
    println!("| start | start to serving | / echo |");
    println!("|---|---|---|");
    println!("| echo, nothing to recover (baseline) | {} | 1 |", ms(echo));
    println!(
        "| Switchboard, replaying all {events} events | {} | {:.0} |",
        ms(full),
        ratio(full, echo)
    );
    println!(
        "| Switchboard, after a graceful stop (snapshot, nothing to replay) | {} | {:.0} |",
        ms(after_stop),
        ratio(after_stop, echo)
    );
    println!(
        "\nTarget: one million events within 5 s (here {:.2} s for {events}, {:.0} events/s).",
        full.as_secs_f64(),
        events as f64 / full.as_secs_f64()
    );
}

/// Writes at least `target` events of a working contact center: 1,000 agents taking chats
/// (queued, offered, accepted, closed) and changing state.
fn write_journal(dir: &std::path::Path, target: usize) -> usize {
    let mut seeder = Seeder::new(dir, crate::unary::PASSWORD);
    seeder.world.mrd("chat", 1);
    let agents: Vec<String> = (0..1000).map(|i| format!("agent-{i:04}")).collect();
    for agent in &agents {
        seeder.world.agent(agent, &[]);
        seeder.world.login_ready(agent, "chat");
    }
    let mut written = 0;
    let mut i = 0usize;
    while written + seeder.world.events.len() < target {
        let w = &mut seeder.world;
        let task_id = format!("task-{i:08}");
        let agent = &agents[i % agents.len()];
        let offered = w.task_spec(spec(&task_id, "chat", "default", 5));
        if let Some((task, owner)) = offers(&offered).into_iter().next() {
            w.accept(&task, &owner);
            w.task_state(&task, TaskState::Closed)
                .expect("an active task closes");
        }
        if i.is_multiple_of(7) {
            let _ = w.set_state(agent, RequestedAgentState::NotReady, "chat");
            let _ = w.set_state(agent, RequestedAgentState::Ready, "chat");
        }
        w.now += 5;
        i += 1;
        if w.events.len() >= 10_000 {
            written += w.events.len();
            seeder.flush();
        }
    }
    usize::try_from(seeder.finish()).unwrap_or(usize::MAX)
}

fn journal_size(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}
