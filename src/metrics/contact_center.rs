//! Contact-center metrics, labelled only by MRD, queue, state, reason or outcome (never by an
//! agent's or a task's id, which would make a series per person or per contact).
//!
//! Counters and histograms come from one place: `ContactCenter::record`, over each record the
//! journal makes visible (a `watch::Tap`), so they count what is durable, once, on every node
//! alike (a follower sees the leader's records as it folds them). To say how long a task
//! waited or was handled, the tap keeps a few figures per open task, dropped when it closes;
//! it is seeded from the engine's state when it starts. Gauges are the engine's own read
//! model (`Routing::census`, which `GetQueueStats` and `ListAgentStates` share), read at
//! each scrape.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use super::recorder::{Kind, Metric, Registry, label};
use crate::domain::routing::Census;
use crate::domain::routing::model::{
    AgentState, CloseReason, RequestedAgentState, RequeueReason, TaskState,
};
use crate::domain::{Event, Millis, Record, State};

const QUEUED: &str = "switchboard_tasks_queued_total";
const WAIT: &str = "switchboard_task_wait_seconds";
const CLOSED: &str = "switchboard_tasks_closed_total";
const OFFERS: &str = "switchboard_offers_total";
const HANDLE: &str = "switchboard_task_handle_seconds";
const WRAP_UP: &str = "switchboard_task_wrap_up_seconds";
const TRANSFERS: &str = "switchboard_task_transfers_total";
const CONFERENCES: &str = "switchboard_task_conferences_total";
const SUPERVISOR_MOVES: &str = "switchboard_supervisor_moves_total";
const WAITING: &str = "switchboard_queue_tasks_waiting";
const OLDEST: &str = "switchboard_queue_oldest_wait_seconds";
const AGENTS: &str = "switchboard_agents";

pub const METRICS: &[Metric] = &[
    Metric {
        name: QUEUED,
        help: "Tasks that arrived in a queue (mrd, queue).",
        kind: Kind::Counter,
    },
    Metric {
        name: WAIT,
        help: "How long a task waited from its arrival to its first accept, in seconds, \
               observed at that accept (mrd, queue): the wait GetQueueStats' service level counts.",
        kind: Kind::Histogram(&[
            5.0, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0, 90.0, 120.0, 180.0, 300.0,
        ]),
    },
    Metric {
        name: CLOSED,
        help: "Tasks closed (mrd, queue, reason: done, no_agent_available, cancelled, \
               agent_logout, force_closed, max_attempts).",
        kind: Kind::Counter,
    },
    Metric {
        name: OFFERS,
        help: "Offers ended (mrd, outcome: accepted, rejected, rona, rescinded: withdrawn \
               because the task closed or the agent logged out while it rang).",
        kind: Kind::Counter,
    },
    Metric {
        name: HANDLE,
        help: "How long an agent held a task, from accept to wrap-up (or to close without \
               wrap-up), in seconds (mrd).",
        kind: Kind::Histogram(&[
            30.0, 60.0, 120.0, 180.0, 300.0, 600.0, 900.0, 1200.0, 1800.0, 3600.0,
        ]),
    },
    Metric {
        name: WRAP_UP,
        help: "How long a task spent in wrap-up, in seconds (mrd).",
        kind: Kind::Histogram(&[5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 180.0, 300.0, 600.0]),
    },
    Metric {
        name: TRANSFERS,
        help: "Tasks transferred by their holder (mrd, to: agent, for a blind or accepted \
               consultative transfer to another agent; queue, for one sent to a queue).",
        kind: Kind::Counter,
    },
    Metric {
        name: CONFERENCES,
        help: "Agents added to a task as conference participants (mrd).",
        kind: Kind::Counter,
    },
    Metric {
        name: SUPERVISOR_MOVES,
        help: "Supervisor moves (mrd, move: requeue; next_ready, next_not_ready, next_logout \
               for an agent's next state set).",
        kind: Kind::Counter,
    },
    Metric {
        name: WAITING,
        help: "Tasks waiting in a queue now, as GetQueueStats counts them (mrd, queue).",
        kind: Kind::Gauge,
    },
    Metric {
        name: OLDEST,
        help: "How long the task waiting longest in a queue has waited since it was (re)queued, \
               in seconds, as GetQueueStats says; 0 for an empty queue (mrd, queue).",
        kind: Kind::Gauge,
    },
    Metric {
        name: AGENTS,
        help: "Logged-in agents by state, as ListAgentStates shows them (mrd, state).",
        kind: Kind::Gauge,
    },
];

/// Where an open task is, as far as its metrics go.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    Waiting,
    Offered,
    /// Held by an agent since then (unknown for a task held when the tap was seeded).
    Handling(Option<Millis>),
    WrappingUp(Option<Millis>),
}

/// What the tap keeps of one open task.
#[derive(Debug, Clone)]
struct Open {
    mrd: Arc<str>,
    queue: Arc<str>,
    arrived: Millis,
    /// Accepted once already: its wait is observed at its first accept only.
    answered: bool,
    phase: Phase,
}

/// The contact center's counters and histograms (a `watch::Tap`) and gauges.
pub struct ContactCenter {
    registry: Arc<Registry>,
    open: Mutex<HashMap<String, Open>>,
    /// The (mrd, queue) and (mrd, state) series last set, so that one whose queue or MRD is
    /// gone drops to 0 instead of keeping its last value.
    shown: Mutex<BTreeSet<(String, String, &'static str)>>,
}

impl ContactCenter {
    pub fn new(registry: Arc<Registry>) -> Self {
        Self {
            registry,
            open: Mutex::default(),
            shown: Mutex::default(),
        }
    }

    fn open(&self) -> std::sync::MutexGuard<'_, HashMap<String, Open>> {
        // Figures half-updated by a panic are still worth showing.
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sets the gauges from the engine's census.
    pub fn show(&self, census: &Census) {
        let mut now_shown = BTreeSet::new();
        for q in &census.queues {
            let labels = || vec![label("mrd", &q.mrd), label("queue", &q.queue)];
            self.registry
                .gauge(WAITING, labels())
                .set(f64::from(q.waiting));
            self.registry
                .gauge(OLDEST, labels())
                .set(seconds(q.longest_wait_ms));
            now_shown.insert((q.mrd.clone(), q.queue.clone(), "queue"));
        }
        for (mrd, states) in &census.agents {
            for (state, count) in states {
                self.registry
                    .gauge(
                        AGENTS,
                        vec![label("mrd", mrd), label("state", state_name(*state))],
                    )
                    .set(f64::from(*count));
                now_shown.insert((mrd.clone(), state_name(*state).to_owned(), "agents"));
            }
        }
        let mut shown = self.shown.lock().unwrap_or_else(PoisonError::into_inner);
        for (mrd, second, what) in shown.difference(&now_shown) {
            if *what == "queue" {
                let labels = || vec![label("mrd", mrd), label("queue", second)];
                self.registry.gauge(WAITING, labels()).set(0.0);
                self.registry.gauge(OLDEST, labels()).set(0.0);
            } else {
                let labels = vec![label("mrd", mrd), label("state", second)];
                self.registry.gauge(AGENTS, labels).set(0.0);
            }
        }
        *shown = now_shown;
    }

    /// Counts what one durable event says happened.
    fn record(&self, open: &mut HashMap<String, Open>, event: &Event) {
        let r = &self.registry;
        let offer = |mrd: &str, outcome: &str| {
            r.counter(OFFERS, vec![label("mrd", mrd), label("outcome", outcome)])
                .increment(1);
        };
        match event {
            Event::TaskQueued { spec, at, .. } => {
                r.counter(
                    QUEUED,
                    vec![label("mrd", &spec.mrd), label("queue", &spec.queue)],
                )
                .increment(1);
                open.insert(
                    spec.task_id.clone(),
                    Open {
                        mrd: spec.mrd.as_str().into(),
                        queue: spec.queue.as_str().into(),
                        arrived: *at,
                        answered: false,
                        phase: Phase::Waiting,
                    },
                );
            }
            Event::TaskAgentSelected { task_id, .. } => {
                if let Some(task) = open.get_mut(task_id) {
                    task.phase = Phase::Offered;
                }
            }
            Event::TaskAccepted {
                task_id, mrd, at, ..
            } => {
                offer(mrd, "accepted");
                if let Some(task) = open.get_mut(task_id) {
                    if !task.answered {
                        let labels = vec![label("mrd", &task.mrd), label("queue", &task.queue)];
                        r.histogram(WAIT, labels)
                            .record(seconds(at.saturating_sub(task.arrived)));
                        task.answered = true;
                    }
                    task.phase = Phase::Handling(Some(*at));
                }
            }
            Event::TaskRequeued {
                task_id,
                mrd,
                reason,
                moved_to,
                ..
            } => {
                let phase = open.get(task_id).map(|t| t.phase);
                match reason {
                    RequeueReason::Rona => offer(mrd, "rona"),
                    RequeueReason::Rejected => offer(mrd, "rejected"),
                    RequeueReason::AgentLogout | RequeueReason::Supervisor
                        if phase == Some(Phase::Offered) =>
                    {
                        offer(mrd, "rescinded");
                    }
                    RequeueReason::AgentLogout
                    | RequeueReason::Transferred
                    | RequeueReason::Supervisor => {}
                }
                if *reason == RequeueReason::Supervisor {
                    r.counter(
                        SUPERVISOR_MOVES,
                        vec![label("mrd", mrd), label("move", "requeue")],
                    )
                    .increment(1);
                }
                if let Some(task) = open.get_mut(task_id) {
                    task.phase = Phase::Waiting;
                    if let Some(moved) = moved_to {
                        task.queue = moved.queue.as_str().into();
                    }
                }
            }
            Event::TaskTransferredToQueue {
                task_id,
                mrd,
                queue,
                ..
            } => {
                r.counter(TRANSFERS, vec![label("mrd", mrd), label("to", "queue")])
                    .increment(1);
                if let Some(task) = open.get_mut(task_id) {
                    task.phase = Phase::Waiting;
                    task.queue = queue.as_str().into();
                }
            }
            // Closes and waits count under the queue the task is in when they happen.
            Event::TaskOverflowed { task_id, queue, .. } => {
                if let Some(task) = open.get_mut(task_id) {
                    task.queue = queue.as_str().into();
                }
            }
            Event::AgentNextStateSet { mrd, state, .. } => {
                let next = match state {
                    RequestedAgentState::Ready => "next_ready",
                    RequestedAgentState::NotReady => "next_not_ready",
                    RequestedAgentState::Logout => "next_logout",
                    RequestedAgentState::Login => "next_login",
                };
                r.counter(
                    SUPERVISOR_MOVES,
                    vec![label("mrd", mrd), label("move", next)],
                )
                .increment(1);
            }
            Event::TaskStateChanged {
                task_id,
                mrd,
                state,
                close_reason,
                at,
                ..
            } => self.task_changed(open, task_id, mrd, *state, *close_reason, *at),
            Event::TaskAgentTransferred { mrd, .. } => {
                r.counter(TRANSFERS, vec![label("mrd", mrd), label("to", "agent")])
                    .increment(1);
            }
            Event::TaskConferenced { mrd, .. } => {
                r.counter(CONFERENCES, vec![label("mrd", mrd)]).increment(1);
            }
            _ => {}
        }
    }

    /// Wrap-up and close: handle and wrap-up times, closes by reason, offers withdrawn.
    fn task_changed(
        &self,
        open: &mut HashMap<String, Open>,
        task_id: &str,
        mrd: &str,
        state: TaskState,
        reason: Option<CloseReason>,
        at: Millis,
    ) {
        let r = &self.registry;
        let handled = |since: Option<Millis>| {
            if let Some(since) = since {
                r.histogram(HANDLE, vec![label("mrd", mrd)])
                    .record(seconds(at.saturating_sub(since)));
            }
        };
        match state {
            TaskState::WrappingUp => {
                if let Some(task) = open.get_mut(task_id) {
                    if let Phase::Handling(since) = task.phase {
                        handled(since);
                    }
                    task.phase = Phase::WrappingUp(Some(at));
                }
            }
            TaskState::Closed => {
                let task = open.remove(task_id);
                let queue = task.as_ref().map_or("unknown", |t| &t.queue);
                let reason = reason.map_or("unknown", reason_name);
                let labels = vec![
                    label("mrd", mrd),
                    label("queue", queue),
                    label("reason", reason),
                ];
                r.counter(CLOSED, labels).increment(1);
                match task.map(|t| t.phase) {
                    Some(Phase::Offered) => {
                        r.counter(
                            OFFERS,
                            vec![label("mrd", mrd), label("outcome", "rescinded")],
                        )
                        .increment(1);
                    }
                    Some(Phase::Handling(since)) => handled(since),
                    Some(Phase::WrappingUp(Some(since))) => {
                        r.histogram(WRAP_UP, vec![label("mrd", mrd)])
                            .record(seconds(at.saturating_sub(since)));
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }
}

impl ContactCenter {
    /// The tasks open in `state`, as the tap starts.
    pub fn seed(&self, state: &State) {
        let mut open = self.open();
        for task in state.routing().tasks_open() {
            let phase = match task.state {
                TaskState::Queued => Phase::Waiting,
                TaskState::Offered => Phase::Offered,
                TaskState::WrappingUp => Phase::WrappingUp(None),
                _ => Phase::Handling(None),
            };
            open.insert(
                task.spec.task_id.clone(),
                Open {
                    mrd: task.spec.mrd.as_str().into(),
                    queue: task.spec.queue.as_str().into(),
                    arrived: task.created_at,
                    answered: !matches!(phase, Phase::Waiting | Phase::Offered),
                    phase,
                },
            );
        }
    }

    /// Counts what `records` say happened.
    pub fn visible(&self, records: &[Arc<Record>]) {
        let mut open = self.open();
        for record in records {
            self.record(&mut open, &record.event);
        }
    }
}

fn seconds(ms: Millis) -> f64 {
    // Exact for any wait shorter than 285,000 years.
    ms as f64 / 1000.0
}

/// A state's label: its contract name without the prefix, in lower case.
fn state_name(state: AgentState) -> &'static str {
    match state {
        AgentState::Logout => "logout",
        AgentState::NotReady => "not_ready",
        AgentState::Ready => "ready",
        AgentState::Reserved => "reserved",
        AgentState::Active => "active",
        AgentState::Busy => "busy",
        AgentState::WorkReady => "work_ready",
        AgentState::PendingNotReady => "pending_not_ready",
    }
}

fn reason_name(reason: CloseReason) -> &'static str {
    match reason {
        CloseReason::Done => "done",
        CloseReason::NoAgentAvailable => "no_agent_available",
        CloseReason::Cancelled => "cancelled",
        CloseReason::AgentLogout => "agent_logout",
        CloseReason::ForceClosed => "force_closed",
        CloseReason::MaxAttempts => "max_attempts",
    }
}
