//! What one routing choice costs as the contact center grows. Each routed task is a backfill:
//! an agent's task closes, the engine offers it the best waiting task, and the agent accepts.
//! The figure that matters is the ratio of two sizes, measured in the same run.
//!
//! Two centers:
//! - `plain`: one queue whose steps look only at agents; 1,000 and then 100,000 logged-in
//!   agents, each time with 100,000 tasks waiting. Target: the mean at most 2x.
//! - `classified`: classification and task-aware steps on. The MRD's classifiers send each new
//!   task (which names no queue) to `vip`, to `lang` (whose steps are `lang = task.lang`, then
//!   `sales >= task.min_sales`, then anyone) or to `sales`; each routed task is followed by a
//!   new classified task, so the backlog stays put and every measured round classifies, pools
//!   by binding and chooses. 1,000 and then 10,000 agents, each time with 100,000 tasks
//!   waiting. Target: the p99 at most 2x.
//!
//! `cargo bench --bench routing_choice` runs both; `-- --scenario classified` (or `plain`) one;
//! `-- --quick` a small smoke run.

#[path = "../tests/common/world.rs"]
mod world;

use std::time::{Duration, Instant};

use switchboard::domain::Event;
use switchboard::domain::commands as cmd;
use switchboard::domain::routing::classify::Classifier;
use switchboard::domain::routing::config::{LogoutAction, MrdConfig, RonaAction};
use switchboard::domain::routing::expr::TaskExpr;
use switchboard::domain::routing::model::{RequestedAgentState, TaskSpec, TaskState};
use world::{World, spec};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Scenario {
    Plain,
    Classified,
}

impl Scenario {
    fn name(self) -> &'static str {
        match self {
            Scenario::Plain => "plain",
            Scenario::Classified => "classified",
        }
    }

    fn parse(name: &str) -> Option<Self> {
        match name {
            "plain" => Some(Scenario::Plain),
            "classified" => Some(Scenario::Classified),
            _ => None,
        }
    }

    /// The small and the large center.
    fn sizes(self, quick: bool) -> (Size, Size) {
        let size = |agents, waiting, routed| Size {
            agents,
            waiting,
            routed,
        };
        match (self, quick) {
            (Scenario::Plain, true) => (size(100, 2_000, 1_000), size(10_000, 2_000, 1_000)),
            (Scenario::Classified, true) => (size(100, 2_000, 1_000), size(1_000, 2_000, 1_000)),
            (Scenario::Plain, false) => {
                (size(1_000, 100_000, 50_000), size(100_000, 100_000, 50_000))
            }
            // Fewer rounds than waiting tasks: every round must find a widened task.
            (Scenario::Classified, false) => {
                (size(1_000, 100_000, 50_000), size(10_000, 100_000, 50_000))
            }
        }
    }
}

struct Size {
    agents: usize,
    waiting: usize,
    routed: usize,
}

/// Mean and 99th percentile of the time per routed task.
#[derive(Clone, Copy)]
struct Figures {
    mean: Duration,
    p99: Duration,
}

/// The `classified` center's configuration: classifiers and three queues on `chat`.
fn configure_classified(w: &mut World) {
    let classifier = |name: &str, expression: &str, queue: &str, priority: u8| Classifier {
        name: name.into(),
        expression: TaskExpr::parse(expression).unwrap(),
        queue: queue.into(),
        priority,
    };
    w.mrd_with(MrdConfig {
        name: "chat".into(),
        max_tasks: 1,
        interruptible: false,
        offer_timeout_ms: 30_000,
        wrap_up_timeout_ms: 0,
        rona_action: RonaAction::NotReady,
        logout_action: LogoutAction::Close,
        classifiers: vec![
            classifier("vip", "vip AND channel = web", "vip", 9),
            classifier(
                "language",
                "lang = en OR lang = fr OR lang = de OR lang = es",
                "lang",
                0,
            ),
        ],
        unclassified_queue: "sales".into(),
        unclassified_priority: 0,
        blocks: Vec::new(),
    });
    w.queue(
        "chat",
        "vip",
        &[("sales >= 8", 30_000), ("sales >= 4", 30_000), ("TRUE", 0)],
        0,
    );
    w.queue(
        "chat",
        "lang",
        &[
            ("lang = task.lang", 30_000),
            ("sales >= task.min_sales", 30_000),
            ("TRUE", 0),
        ],
        0,
    );
    w.queue(
        "chat",
        "sales",
        &[("sales >= 8", 30_000), ("sales >= 4", 30_000), ("TRUE", 0)],
        0,
    );
}

/// Agent `i`'s attributes: sales 0-10 (0: absent) and a few language flags.
fn agent_attributes(scenario: Scenario, i: usize) -> Vec<(&'static str, u32)> {
    let skill = u32::try_from(i % 11).unwrap();
    let mut attributes = Vec::new();
    if skill > 0 {
        attributes.push(("sales", skill));
    }
    if scenario == Scenario::Classified {
        for (flag, every) in [
            ("lang_en", 2),
            ("lang_fr", 3),
            ("lang_de", 5),
            ("lang_es", 7),
        ] {
            if i.is_multiple_of(every) {
                attributes.push((flag, 1));
            }
        }
    }
    attributes
}

/// Task `i`: named queue `sales` (plain), or no queue and attributes to classify by.
fn task_spec(scenario: Scenario, i: usize) -> TaskSpec {
    let task_id = format!("task{i:07}");
    let priority = u8::try_from(1 + i % 10).unwrap();
    match scenario {
        Scenario::Plain => spec(&task_id, "chat", "sales", priority),
        Scenario::Classified => {
            let mut s = spec(&task_id, "chat", "", priority);
            let lang = ["en", "fr", "de", "es", "it"][i % 5];
            s.attributes.insert("lang".into(), lang.into());
            s.attributes
                .insert("min_sales".into(), (1 + i % 9).to_string());
            s.attributes.insert(
                "channel".into(),
                if i.is_multiple_of(3) { "web" } else { "voice" }.into(),
            );
            if i.is_multiple_of(10) {
                s.labels.push("vip".into());
            }
            s
        }
    }
}

/// Builds the center: every agent READY then busy with one task, `waiting` more tasks queued.
fn build(scenario: Scenario, size: &Size) -> (World, Vec<(String, String)>) {
    let mut w = World::new();
    // More tasks are open than a server holds by default (`--max-open-tasks`): lift the bound,
    // as an operator of such a center would.
    w.state = World::empty_state().with_max_open_tasks(usize::MAX);
    match scenario {
        Scenario::Plain => {
            w.mrd("chat", 1);
            w.queue(
                "chat",
                "sales",
                &[("sales >= 8", 30_000), ("sales >= 4", 30_000), ("TRUE", 0)],
                0,
            );
        }
        Scenario::Classified => configure_classified(&mut w),
    }
    let mut held = Vec::with_capacity(size.agents);
    for i in 0..size.agents {
        let id = format!("agent{i:06}");
        w.agent(&id, &agent_attributes(scenario, i));
        w.set_state(&id, RequestedAgentState::Login, "chat")
            .unwrap();
        w.set_state(&id, RequestedAgentState::Ready, "chat")
            .unwrap();
    }
    let mut accept_offers = |w: &mut World, events: Vec<Event>| {
        for e in events {
            if let Event::TaskAgentSelected {
                task_id, agent_id, ..
            } = e
            {
                w.accept(&task_id, &agent_id);
                held.push((agent_id, task_id));
            }
        }
    };
    for i in 0..size.agents + size.waiting {
        let events = w.task_spec(task_spec(scenario, i));
        accept_offers(&mut w, events);
    }
    // Let the steps widen so that every agent is busy and every waiting task searches wide.
    for _ in 0..2 {
        let events = w.advance(30_000);
        accept_offers(&mut w, events);
    }
    w.events.clear();
    (w, held)
}

/// Routes `size.routed` tasks by backfill (in `classified`, each followed by a new task that
/// is classified and waits); returns the figures per routed task.
fn measure(scenario: Scenario, size: &Size) -> Figures {
    let (mut w, mut held) = build(scenario, size);
    assert_eq!(held.len(), size.agents, "every agent holds a task");
    let mut next_task = size.agents + size.waiting;
    let mut rounds = Vec::with_capacity(size.routed);
    let started = Instant::now();
    for i in 0..size.routed {
        let round = Instant::now();
        let slot = i % held.len();
        let (agent, task) = held[slot].clone();
        let events = w.task_state(&task, TaskState::Closed).unwrap();
        let offered = events.iter().find_map(|e| match e {
            Event::TaskAgentSelected {
                task_id, agent_id, ..
            } => Some((task_id.clone(), agent_id.clone())),
            _ => None,
        });
        let (next, to) = offered.expect("a waiting task is offered at once");
        assert_eq!(to, agent, "the freed agent gets the best waiting task");
        w.ok(cmd::AcceptTask {
            task_id: next.clone(),
            agent_id: to.clone(),
        });
        held[slot] = (to, next);
        if scenario == Scenario::Classified {
            let events = w.task_spec(task_spec(scenario, next_task));
            next_task += 1;
            debug_assert!(
                !events
                    .iter()
                    .any(|e| matches!(e, Event::TaskAgentSelected { .. })),
                "no agent is free for the new task"
            );
        }
        rounds.push(round.elapsed());
        // Keep memory flat: the run is about choices, not about the event log.
        w.events.clear();
    }
    let mean = started.elapsed() / u32::try_from(size.routed).unwrap();
    rounds.sort_unstable();
    let p99 = rounds[(rounds.len() * 99).div_ceil(100) - 1];
    Figures { mean, p99 }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let value_of = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
    };
    let scenarios: Vec<Scenario> = match value_of("--scenario") {
        Some(name) => vec![Scenario::parse(name).expect("--scenario plain|classified")],
        None => vec![Scenario::Plain, Scenario::Classified],
    };
    // `--only large` (or small) measures one size of one scenario here, for a profiler or for
    // the parent run below.
    if let Some(only) = value_of("--only") {
        let scenario = scenarios[0];
        let (small, large) = scenario.sizes(quick);
        let size = if only == "large" { &large } else { &small };
        let f = measure(scenario, size);
        println!(
            "{only}: {} {} ns (mean, p99) per routed task",
            f.mean.as_nanos(),
            f.p99.as_nanos()
        );
        return;
    }
    for scenario in scenarios {
        report(scenario, quick);
    }
}

/// Each size twice, alternating, each in a fresh process, keeping the better run per figure:
/// a heap left fragmented by the previous size, or a noisy neighbour, must not decide the
/// ratio.
fn report(scenario: Scenario, quick: bool) {
    let (small, large) = scenario.sizes(quick);
    let mut best = [Figures {
        mean: Duration::MAX,
        p99: Duration::MAX,
    }; 2];
    for _ in 0..2 {
        for (b, size) in best.iter_mut().zip(["small", "large"]) {
            let f = measure_in_child(scenario, size, quick);
            b.mean = b.mean.min(f.mean);
            b.p99 = b.p99.min(f.p99);
        }
    }
    let name = scenario.name();
    for (f, size) in best.iter().zip([&small, &large]) {
        println!(
            "{name}: routed task, {} agents / {} waiting: mean {:.2} µs, p99 {:.2} µs",
            size.agents,
            size.waiting,
            f.mean.as_secs_f64() * 1e6,
            f.p99.as_secs_f64() * 1e6
        );
    }
    let ratio = |pick: fn(&Figures) -> Duration| {
        pick(&best[1]).as_secs_f64() / pick(&best[0]).as_secs_f64()
    };
    let (mean_ratio, p99_ratio) = (ratio(|f| f.mean), ratio(|f| f.p99));
    let target = if quick {
        "smoke run; the target applies to the full run"
    } else {
        "target: at most 2.00"
    };
    match scenario {
        Scenario::Plain => println!(
            "{name}: ratio large / small: mean {mean_ratio:.2} ({target}), p99 {p99_ratio:.2}"
        ),
        Scenario::Classified => println!(
            "{name}: ratio large / small: p99 {p99_ratio:.2} ({target}), mean {mean_ratio:.2}"
        ),
    }
}

fn measure_in_child(scenario: Scenario, size: &str, quick: bool) -> Figures {
    let exe = std::env::current_exe().expect("the bench knows its own path");
    let mut command = std::process::Command::new(exe);
    command.args(["--scenario", scenario.name(), "--only", size]);
    if quick {
        command.arg("--quick");
    }
    let output = command.output().expect("the bench can run itself");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the {} {size} run failed: {stdout}{}",
        scenario.name(),
        String::from_utf8_lossy(&output.stderr)
    );
    let nanos: Vec<u64> = stdout
        .split_whitespace()
        .skip(1)
        .take(2)
        .map_while(|n| n.parse().ok())
        .collect();
    let [mean, p99] = nanos[..] else {
        panic!("unexpected output: {stdout}");
    };
    Figures {
        mean: Duration::from_nanos(mean),
        p99: Duration::from_nanos(p99),
    }
}
