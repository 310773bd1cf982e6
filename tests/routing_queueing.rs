//! Queueing rules on a `World`: a waiting task's position and estimated wait, callbacks that
//! keep the earlier task's place, attempts that close or overflow a task, and the service
//! level over a sliding window.

mod common;

use common::replay::ReplayCheck;
use common::world::{World, spec};
use switchboard::domain::DomainError;
use switchboard::domain::commands as cmd;
use switchboard::domain::routing::attempts::AttemptPolicy;
use switchboard::domain::routing::config::{
    LogoutAction, MrdConfig, QueueConfig, RonaAction, Step,
};
use switchboard::domain::routing::expr::Expr;
use switchboard::domain::routing::model::{CloseReason, RequestedAgentState, TaskState};
use switchboard::domain::routing::{QueueStats, ServiceLevelTarget};
use switchboard::domain::{Event, Millis, Snapshot, State};

fn invalid<T: std::fmt::Debug>(result: Result<T, DomainError>) -> (&'static str, String) {
    match result {
        Err(DomainError::InvalidArgument { field, reason }) => (field, reason),
        other => panic!("expected INVALID_ARGUMENT, got {other:?}"),
    }
}

fn position(w: &World, task_id: &str) -> Option<u32> {
    w.state
        .routing()
        .queue_place(task_id, w.now)
        .map(|p| p.position)
}

/// The (task, position) of each position announcement among `events`.
fn announced(events: &[Event]) -> Vec<(String, u32)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::TaskPositionChanged {
                task_id, position, ..
            } => Some((task_id.clone(), *position)),
            _ => None,
        })
        .collect()
}

fn queued_place(events: &[Event]) -> (u32, Option<Millis>) {
    events
        .iter()
        .find_map(|e| match e {
            Event::TaskQueued {
                position,
                estimated_wait_ms,
                ..
            } => Some((*position, *estimated_wait_ms)),
            _ => None,
        })
        .expect("a TaskQueued")
}

fn stats(w: &mut World, queue: &str) -> QueueStats {
    w.run(cmd::GetQueueStats {
        mrd: "chat".into(),
        queue: queue.into(),
    })
    .expect("the queue's statistics")
    .0
}

/// `sales` on `chat` with the given attempts and service level, one step matching everyone.
fn sales(attempts: AttemptPolicy, service_level: ServiceLevelTarget) -> cmd::UpsertQueue {
    cmd::UpsertQueue(QueueConfig {
        name: "sales".into(),
        mrd: "chat".into(),
        steps: vec![Step {
            expression: Expr::always(),
            timeout_ms: 0,
        }],
        task_ttl_ms: 0,
        attempts,
        service_level,
        dispositions: Default::default(),
    })
}

fn chat() -> World {
    let mut w = World::new();
    w.mrd("chat", 1);
    w.queue("chat", "sales", &[("TRUE", 0)], 0);
    w
}

#[test]
fn position_follows_dispatch_order_and_moves_are_announced() {
    let mut w = chat();
    assert_eq!(queued_place(&w.task("t1", "chat", "sales", 5)).0, 1);
    assert_eq!(queued_place(&w.task("t2", "chat", "sales", 5)).0, 2);
    // Higher priority goes ahead: both others move back, and are told.
    let events = w.task("t3", "chat", "sales", 9);
    assert_eq!(queued_place(&events).0, 1);
    assert_eq!(
        announced(&events),
        [("t1".to_owned(), 2), ("t2".to_owned(), 3)]
    );
    assert_eq!(
        ["t3", "t1", "t2"].map(|t| position(&w, t)),
        [Some(1), Some(2), Some(3)]
    );
    // The head is offered: it has no position any more, and the others move up.
    w.agent("ann", &[]);
    let events = w.login_ready("ann", "chat");
    assert_eq!(position(&w, "t3"), None);
    assert_eq!(
        announced(&events),
        [("t1".to_owned(), 1), ("t2".to_owned(), 2)]
    );
    // Rejected, it comes back in ahead of all (requeue priority), and is told where.
    let events = w.ok(cmd::RejectTask {
        task_id: "t3".into(),
        agent_id: "ann".into(),
    });
    // (Ann is free again and takes t1, so t2 stays second: it is not told.)
    assert_eq!(announced(&events), [("t3".to_owned(), 1)]);
    assert_eq!(w.get_task("t1").offer.map(|o| o.0).as_deref(), Some("ann"));
    assert_eq!(position(&w, "t2"), Some(2));
}

#[test]
fn only_moves_onto_a_milestone_are_announced() {
    let mut w = chat();
    for i in 0..30 {
        w.task(&format!("t{i:02}"), "chat", "sales", 5);
    }
    w.agent("ann", &[]);
    let events = w.login_ready("ann", "chat");
    // t00 is offered; 29 tasks move up one: those now at 1-5, 10 and 20 are told.
    let mut positions: Vec<u32> = announced(&events).into_iter().map(|(_, p)| p).collect();
    positions.sort_unstable();
    assert_eq!(positions, [1, 2, 3, 4, 5, 10, 20]);
    assert_eq!(
        announced(&events)
            .into_iter()
            .find(|(_, p)| *p == 20)
            .map(|(t, _)| t),
        Some("t20".to_owned())
    );
}

#[test]
fn the_estimate_is_position_times_the_recent_time_per_departure() {
    let mut w = chat();
    // No task has left the queue: no pace, no estimate.
    assert_eq!(queued_place(&w.task("t1", "chat", "sales", 5)).1, None);
    assert_eq!(stats(&mut w, "sales").estimated_wait_ms, None);
    w.agent("ann", &[]);
    w.login_ready("ann", "chat");
    w.advance(20_000);
    w.accept("t1", "ann");
    w.task("t2", "chat", "sales", 5);
    w.task("t3", "chat", "sales", 5);
    let one = w.state.routing().queue_place("t2", w.now).unwrap();
    let two = w.state.routing().queue_place("t3", w.now).unwrap();
    let per = one.estimated_wait_ms.expect("a pace once a task left");
    assert!(per > 0);
    assert_eq!((one.position, two.position), (1, 2));
    assert_eq!(two.estimated_wait_ms, Some(2 * per));
    assert_eq!(stats(&mut w, "sales").estimated_wait_ms, Some(3 * per));
    // GetTaskState answers the same place.
    let ((_, place), _) = w
        .run(cmd::GetTaskState {
            task_id: "t3".into(),
        })
        .unwrap();
    assert_eq!(place, Some(two));
}

#[test]
fn a_callback_takes_the_place_of_a_closed_task() {
    let mut w = chat();
    w.task("early", "chat", "sales", 7);
    w.task("later", "chat", "sales", 7);
    w.task_state("early", TaskState::Closed).unwrap();
    w.advance(5_000);
    let mut callback = spec("cb", "chat", "sales", 1);
    callback.callback_for = "early".into();
    let events = w.task_spec(callback);
    assert_eq!(queued_place(&events).0, 1);
    assert_eq!(position(&w, "later"), Some(2));
    let cb = w.get_task("cb");
    let early = w.get_task("early");
    assert_eq!(
        (cb.priority, cb.seq, cb.queued_at),
        (early.priority, early.seq, early.queued_at)
    );
    assert_eq!(early.callback_task_id.as_deref(), Some("cb"));
    // One callback per task.
    let mut again = spec("cb2", "chat", "sales", 1);
    again.callback_for = "early".into();
    assert!(matches!(
        w.run(cmd::NewTask(again)),
        Err(DomainError::FailedPrecondition(m)) if m.contains("already has callback 'cb'")
    ));
}

#[test]
fn a_callback_replaces_a_task_still_waiting() {
    let mut w = chat();
    w.task("early", "chat", "sales", 5);
    w.task("later", "chat", "sales", 5);
    // (Its id sorts after the task it replaces: the place it is told leaves that one out.)
    let mut callback = spec("zz-cb", "chat", "sales", 5);
    callback.callback_for = "early".into();
    let events = w.task_spec(callback);
    assert_eq!(queued_place(&events).0, 1);
    let early = w.get_task("early");
    assert_eq!(early.state, TaskState::Closed);
    assert_eq!(early.close_reason, Some(CloseReason::Cancelled));
    assert!(events.iter().any(|e| matches!(e,
        Event::TaskStateChanged { task_id, detail, .. }
            if task_id == "early" && detail == "replaced by callback task 'zz-cb'")));
    // Replaced by its callback, it is not counted abandoned.
    assert_eq!(stats(&mut w, "sales").service_level.counts.abandoned, 0);
    assert_eq!(
        ["zz-cb", "later"].map(|t| position(&w, t)),
        [Some(1), Some(2)]
    );
}

#[test]
fn a_callback_is_refused_for_a_task_in_hand_or_elsewhere() {
    let mut w = chat();
    w.mrd("email", 1);
    w.agent("ann", &[]);
    w.login_ready("ann", "chat");
    w.task("held", "chat", "sales", 5);
    w.accept("held", "ann");
    let callback = |of: &str, mrd: &str| {
        let mut s = spec("cb", mrd, "", 5);
        s.callback_for = of.into();
        cmd::NewTask(s)
    };
    assert!(matches!(
        w.run(callback("held", "chat")),
        Err(DomainError::FailedPrecondition(m)) if m.contains("TASK_STATE_ACTIVE")
    ));
    assert_eq!(
        invalid(w.run(callback("held", "email"))),
        (
            "callback_for_task_id",
            "task 'held' is on mrd 'chat', not 'email'".to_owned()
        )
    );
    assert!(matches!(
        w.run(callback("nobody", "chat")),
        Err(DomainError::NotFound { kind: "task", .. })
    ));
}

#[test]
fn attempts_count_rejections_and_ronas_then_close_the_task() {
    let mut w = chat();
    let attempts = AttemptPolicy {
        max_attempts: 2,
        overflow_queue: String::new(),
    };
    w.ok(sales(attempts, ServiceLevelTarget::default()));
    for agent in ["ann", "bob"] {
        w.agent(agent, &[]);
    }
    w.login_ready("ann", "chat");
    w.task("t1", "chat", "sales", 5);
    w.ok(cmd::RejectTask {
        task_id: "t1".into(),
        agent_id: "ann".into(),
    });
    assert_eq!(w.get_task("t1").attempts, 1);
    w.login_ready("bob", "chat");
    assert_eq!(w.get_task("t1").offer.map(|o| o.0).as_deref(), Some("bob"));
    // Bob does not answer: RONA is the second attempt, and the last.
    let events = w.advance(30_000);
    let t1 = w.get_task("t1");
    assert_eq!(
        (t1.state, t1.close_reason, t1.attempts),
        (TaskState::Closed, Some(CloseReason::MaxAttempts), 2)
    );
    assert!(events.iter().any(|e| matches!(e,
        Event::TaskStateChanged { detail, .. }
            if detail == "let go 2 offers in queue 'chat/sales' (max_attempts 2)")));
}

#[test]
fn a_logout_requeue_is_not_an_attempt() {
    let mut w = World::new();
    w.mrd_with(MrdConfig {
        name: "chat".into(),
        max_tasks: 1,
        interruptible: false,
        offer_timeout_ms: 30_000,
        wrap_up_timeout_ms: 0,
        rona_action: RonaAction::NotReady,
        logout_action: LogoutAction::Requeue,
        blocks: Vec::new(),
        classifiers: Vec::new(),
        unclassified_queue: String::new(),
        unclassified_priority: 0,
    });
    w.ok(sales(
        AttemptPolicy {
            max_attempts: 1,
            overflow_queue: String::new(),
        },
        ServiceLevelTarget::default(),
    ));
    w.agent("ann", &[]);
    w.login_ready("ann", "chat");
    w.task("t1", "chat", "sales", 5);
    w.set_state("ann", RequestedAgentState::Logout, "chat")
        .unwrap();
    let t1 = w.get_task("t1");
    assert_eq!((t1.state, t1.attempts), (TaskState::Queued, 0));
}

#[test]
fn attempts_used_up_move_a_task_to_the_overflow_queue() {
    let mut w = chat();
    w.queue("chat", "spill", &[("TRUE", 0)], 0);
    w.ok(sales(
        AttemptPolicy {
            max_attempts: 1,
            overflow_queue: "spill".into(),
        },
        ServiceLevelTarget::default(),
    ));
    w.task("waiting", "chat", "spill", 5);
    w.agent("ann", &[]);
    w.login_ready("ann", "chat");
    w.task("t1", "chat", "sales", 3);
    w.accept("waiting", "ann");
    w.task_state("waiting", TaskState::Closed).unwrap();
    assert_eq!(w.get_task("t1").offer.map(|o| o.0).as_deref(), Some("ann"));
    let events = w.ok(cmd::RejectTask {
        task_id: "t1".into(),
        agent_id: "ann".into(),
    });
    assert!(events.iter().any(|e| matches!(e,
        Event::TaskOverflowed { from_queue, queue, attempts: 1, .. }
            if from_queue == "sales" && queue == "spill")));
    let t1 = w.get_task("t1");
    assert_eq!(
        (t1.spec.queue.as_str(), t1.state, t1.attempts),
        ("spill", TaskState::Queued, 0)
    );
    assert_eq!(position(&w, "t1"), Some(1));
}

#[test]
fn attempts_and_overflow_are_validated() {
    let mut w = chat();
    let with = |max_attempts, overflow: &str| {
        sales(
            AttemptPolicy {
                max_attempts,
                overflow_queue: overflow.into(),
            },
            ServiceLevelTarget::default(),
        )
    };
    assert_eq!(
        invalid(w.run(with(101, ""))),
        (
            "queue.max_attempts",
            "must be 0 (no limit) to 100, not 101".to_owned()
        )
    );
    assert_eq!(invalid(w.run(with(2, "sales"))).0, "queue.overflow_queue");
    assert_eq!(invalid(w.run(with(0, "default"))).0, "queue.overflow_queue");
    assert_eq!(
        invalid(w.run(with(2, "nowhere"))),
        (
            "queue.overflow_queue",
            "mrd 'chat' has no queue 'nowhere'".to_owned()
        )
    );
    w.ok(with(2, "default"));
}

#[test]
fn service_level_counts_answers_within_the_threshold_over_the_window() {
    let mut w = chat();
    let target = ServiceLevelTarget {
        percent: 80,
        threshold_ms: 20_000,
        window_ms: 600_000,
    };
    w.ok(sales(AttemptPolicy::default(), target));
    w.agent("ann", &[]);
    w.login_ready("ann", "chat");
    w.set_state("ann", RequestedAgentState::NotReady, "chat")
        .unwrap();
    for t in ["fast", "slow", "gone-late", "gone-early"] {
        w.task(t, "chat", "sales", 5);
    }
    w.advance(5_000);
    w.task_state("gone-early", TaskState::Closed).unwrap();
    w.set_state("ann", RequestedAgentState::Ready, "chat")
        .unwrap();
    w.accept("fast", "ann");
    w.task_state("fast", TaskState::Closed).unwrap();
    w.advance(20_000);
    w.task_state("gone-late", TaskState::Closed).unwrap();
    w.accept("slow", "ann");
    let level = stats(&mut w, "sales").service_level;
    assert_eq!(level.target, target);
    assert_eq!(
        (
            level.counts.answered,
            level.counts.answered_within,
            level.counts.abandoned,
            level.counts.abandoned_after
        ),
        (2, 1, 2, 1)
    );
    // 1 within / (2 answered + 1 abandoned after the threshold).
    let achieved = level.achieved_percent().unwrap();
    assert!((achieved - 100.0 / 3.0).abs() < 1e-9, "{achieved}");
    assert!(!level.met());
    // The window slides: ten minutes on, none of it counts.
    w.advance(600_000);
    let level = stats(&mut w, "sales").service_level;
    assert_eq!(level.counts.departed(), 0);
    assert_eq!(level.achieved_percent(), None);
}

#[test]
fn service_level_targets_are_validated() {
    let mut w = chat();
    let with = |percent, threshold_ms, window_ms| {
        sales(
            AttemptPolicy::default(),
            ServiceLevelTarget {
                percent,
                threshold_ms,
                window_ms,
            },
        )
    };
    assert_eq!(
        invalid(w.run(with(101, 20_000, 0))).0,
        "queue.service_level_percent"
    );
    assert_eq!(
        invalid(w.run(with(80, 3_601_000, 0))).0,
        "queue.service_level_threshold_seconds"
    );
    assert_eq!(
        invalid(w.run(with(80, 20_000, 59_000))),
        (
            "queue.service_level_window_seconds",
            "must be 60 to 86400 seconds (1 day), not 59".to_owned()
        )
    );
    w.ok(with(80, 20_000, 0));
}

/// Where each task waits in `state`, and the queue's service level: what replay must rebuild
/// beside the records the replay check compares.
fn places(state: &State, now: Millis, tasks: &[&str]) -> Vec<Option<(u32, Option<Millis>)>> {
    tasks
        .iter()
        .map(|t| {
            let place = state.routing().queue_place(t, now)?;
            Some((place.position, place.estimated_wait_ms))
        })
        .collect()
}

#[test]
fn queueing_state_survives_replay_and_snapshot() {
    let mut w = chat();
    let mut replay = ReplayCheck::default();
    w.queue("chat", "spill", &[("TRUE", 0)], 0);
    let target = ServiceLevelTarget {
        percent: 80,
        threshold_ms: 20_000,
        window_ms: 600_000,
    };
    w.ok(sales(
        AttemptPolicy {
            max_attempts: 2,
            overflow_queue: "spill".into(),
        },
        target,
    ));
    w.agent("ann", &[]);
    w.login_ready("ann", "chat");
    replay.check(&w, "configured");
    // An answer in the window, a rejection counted, a callback linked.
    w.task("answered", "chat", "sales", 5);
    w.advance(25_000);
    w.accept("answered", "ann");
    w.task_state("answered", TaskState::Closed).unwrap();
    w.task("rejected", "chat", "sales", 5);
    w.ok(cmd::RejectTask {
        task_id: "rejected".into(),
        agent_id: "ann".into(),
    });
    w.set_state("ann", RequestedAgentState::NotReady, "chat")
        .unwrap();
    w.task("early", "chat", "sales", 5);
    w.task("waiting", "chat", "sales", 5);
    replay.check(&w, "before the callback");
    let mut callback = spec("cb", "chat", "sales", 1);
    callback.callback_for = "early".into();
    w.task_spec(callback);
    w.advance(1_000);
    assert_eq!(w.get_task("rejected").attempts, 1);
    assert_eq!(w.get_task("early").callback_task_id.as_deref(), Some("cb"));
    let level = stats(&mut w, "sales").service_level;
    assert_eq!(
        (level.counts.answered, level.counts.answered_within),
        (1, 0)
    );
    // Replayed from the start, and from the snapshot taken before the callback.
    replay.check(&w, "after the callback");

    let tasks = ["rejected", "cb", "waiting"];
    let live = places(&w.state, w.now, &tasks);
    assert_eq!(
        live.iter().map(|p| p.map(|p| p.0)).collect::<Vec<_>>(),
        [Some(1), Some(2), Some(3)]
    );
    let mut replayed = World::empty_state();
    for event in &w.events {
        replayed.apply(event);
    }
    replayed.finish_replay(w.now);
    assert_eq!(places(&replayed, w.now, &tasks), live);
    let body = serde_json::to_string(&w.state.snapshot()).unwrap();
    let mut restored = World::empty_state();
    restored.restore(serde_json::from_str::<Snapshot>(&body).unwrap());
    restored.finish_replay(w.now);
    assert_eq!(places(&restored, w.now, &tasks), live);
    // The restored state goes on counting attempts where it left off: one more overflows.
    let mut again = World {
        state: restored,
        ..World::new()
    };
    again.now = w.now;
    again
        .set_state("ann", RequestedAgentState::Ready, "chat")
        .unwrap();
    again.agent("bob", &[]);
    let events = again.login_ready("bob", "chat");
    assert_eq!(
        common::world::offer_of(&events, "rejected").as_deref(),
        Some("bob")
    );
    let events = again.ok(cmd::RejectTask {
        task_id: "rejected".into(),
        agent_id: "bob".into(),
    });
    assert!(events.iter().any(|e| matches!(e,
        Event::TaskOverflowed { task_id, attempts: 2, .. } if task_id == "rejected")));
}

/// A small deterministic generator (64-bit LCG), so the simulation is the same every run.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

/// Four agents, tasks arriving every 0-30 s and handled in 20-80 s (83% busy): every task
/// that had to wait is told an estimate when it arrives; its real wait is when an agent
/// accepted it. Prints the mean absolute error; it must beat the naive guess of no wait.
#[test]
fn the_estimate_is_measured_against_real_waits_in_a_simulation() {
    let mut w = World::new();
    w.mrd("chat", 1);
    w.queue("chat", "sales", &[("TRUE", 0)], 0);
    let agents = ["a0", "a1", "a2", "a3"];
    for agent in agents {
        w.agent(agent, &[]);
        w.login_ready(agent, "chat");
    }
    let mut rng = Lcg(17);
    type Ends = std::collections::BTreeSet<(Millis, String)>;
    let mut ends = Ends::default();
    let mut told: Vec<(String, Millis, Millis)> = Vec::new();
    let mut answered: std::collections::HashMap<String, Millis> = Default::default();
    let mut accept_offers = |w: &mut World, events: Vec<Event>, ends: &mut Ends, rng: &mut Lcg| {
        for (task, agent) in common::world::offers(&events) {
            w.accept(&task, &agent);
            answered.insert(task.clone(), w.now);
            ends.insert((w.now + 20_000 + rng.below(60_000), task));
        }
    };
    let mut next_arrival = w.now;
    for n in 0..1500 {
        while let Some((end, task)) = ends.first().cloned()
            && end <= next_arrival
        {
            ends.pop_first();
            w.advance(end - w.now);
            let events = w.task_state(&task, TaskState::Closed).unwrap();
            accept_offers(&mut w, events, &mut ends, &mut rng);
        }
        w.advance(next_arrival - w.now);
        let task = format!("t{n:04}");
        let events = w.task(&task, "chat", "sales", 5);
        let waits = common::world::offer_of(&events, &task).is_none();
        if waits && let (_, Some(estimate)) = queued_place(&events) {
            told.push((task, w.now, estimate));
        }
        accept_offers(&mut w, events, &mut ends, &mut rng);
        next_arrival += rng.below(30_000);
    }
    let mut errors = Vec::new();
    let mut waits = Vec::new();
    for (task, arrived, estimate) in &told {
        if let Some(at) = answered.get(task) {
            let wait = at - arrived;
            errors.push(estimate.abs_diff(wait));
            waits.push(wait);
        }
    }
    let mean = |v: &[u64]| v.iter().sum::<u64>() as f64 / v.len() as f64 / 1000.0;
    let (mae, mean_wait) = (mean(&errors), mean(&waits));
    println!(
        "estimated wait: {} tasks waited, mean wait {mean_wait:.1} s, mean absolute error {mae:.1} s",
        errors.len()
    );
    assert!(errors.len() > 300, "too few tasks waited: {}", errors.len());
    assert!(
        mae < mean_wait,
        "the estimate ({mae:.1} s off) is worse than guessing no wait"
    );
}
