//! The media routing engine's rules: agents' presence per MRD, tasks, and the choice of agent.
//!
//! Every change goes through `emit`, which applies the event at once, so each decision sees the
//! effects of the one before it. `apply` is also the fold replay uses. After every command,
//! `settle` fires due timers, offers every waiting task an eligible agent can take (immediate
//! backfill), and emits a notice for every agent whose derived state changed.
//!
//! `Routing` is one type whose `impl` is spread by concern:
//! - here: its state, the queries, derived agent state, and `emit`;
//! - `classify`: the queue and priority of a task that names no queue;
//! - `selection`: eligibility, the best agent for a task, the best task for an agent;
//! - `commands`: what operators, channels and agents ask for;
//! - `settle`: timers, dispatch (offers) and state notices;
//! - `apply`: the fold; `reindex` keeps the indexes of `index` and the timers in step with it;
//! - `views` and `snapshot`: read models and the snapshot form;
//! - `retention`: closed tasks leaving memory;
//! - `position`: a waiting task's position and estimated wait (over `rank`'s ordered counts);
//! - `callback`, `attempts`, `service_level`: callbacks keeping a place in line, the bound on
//!   offers let go, and the service level window.

mod apply;
pub mod attempts;
mod callback;
pub mod classify;
mod commands;
pub mod config;
mod cross_mrd;
pub mod disposition;
pub mod expr;
mod index;
pub mod model;
mod position;
mod preferred;
mod rank;
mod reindex;
mod retention;
mod selection;
mod service_level;
mod settle;
mod snapshot;
pub mod supervise;
mod transfer;
mod views;

use std::collections::{BTreeMap, BTreeSet, HashMap};

pub use position::QueuePlace;
pub use service_level::{Outcomes, ServiceLevel, ServiceLevelTarget};
pub use snapshot::RoutingSnapshot;
pub use views::{AgentMrdView, AgentStatusView, Census, QueueStats, QueueWaiting};

use self::config::{MrdConfig, QueueConfig, ReasonCode};
use self::index::{Pools, QueueKey, TaskKey, Waiting};
use self::model::{AgentMrd, AgentState, RoutingAgent, Task, TaskState};
use super::error::{DomainError, DomainResult};
use super::events::{Event, Millis};
use super::paging::Page;

/// What a desktop may do about routing, shown beside its workflow model's actions and
/// invoked like them (`InvokeAction`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DesktopAction {
    Ready,
    NotReady,
    Accept,
    Reject,
}

impl DesktopAction {
    pub const ALL: [DesktopAction; 4] = [Self::Ready, Self::NotReady, Self::Accept, Self::Reject];
    /// Workflow models may not name actions with this prefix.
    pub const PREFIX: &'static str = "routing.";

    pub fn name(self) -> &'static str {
        match self {
            Self::Ready => "routing.ready",
            Self::NotReady => "routing.not_ready",
            Self::Accept => "routing.accept",
            Self::Reject => "routing.reject",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.name() == name)
    }
}

/// The reason code given to an agent put NOT_READY for not answering an offer.
pub const RONA_REASON: &str = "RONA";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum TimerKind {
    OfferExpires,
    PreferenceEnds,
    StepWidens,
    TimeToLive,
    WrapUpEnds,
}

#[derive(Debug, Clone, Default)]
pub struct Routing {
    mrds: BTreeMap<String, MrdConfig>,
    /// Every queue of every MRD, the built-in defaults included.
    queues: BTreeMap<QueueKey, QueueConfig>,
    reason_codes: BTreeMap<String, ReasonCode>,
    /// Agents by id: looked up on every decision, so hashed rather than ordered.
    agents: HashMap<String, RoutingAgent>,
    /// Agent ids in order, for paging through them.
    agent_ids: BTreeSet<String>,
    tasks: BTreeMap<String, Task>,
    /// Closed tasks still in memory, by when they closed: the oldest leave first.
    closed: BTreeSet<(Millis, String)>,
    /// Logged-in agents per MRD.
    mrd_agents: BTreeMap<String, BTreeSet<String>>,
    next_seq: u64,
    pools: Pools,
    waiting: Waiting,
    timers: BTreeSet<(Millis, TimerKind, String)>,
    task_timers: HashMap<String, Vec<(Millis, TimerKind)>>,
    /// What `settle` must look at: tasks that may find an agent, agents that may find a task.
    dirty_tasks: BTreeSet<TaskKey>,
    dirty_agents: BTreeSet<(String, String)>,
    /// (agent, MRD) pairs whose derived state may have changed.
    touched: BTreeSet<(String, String)>,
    /// The last derived state announced per (agent, MRD).
    announced: HashMap<(String, String), (AgentState, String, bool, u32)>,
    /// Per queue, its service level counts over its sliding window.
    service_windows: HashMap<QueueKey, service_level::ServiceWindow>,
}

/// Collects events as they are applied.
pub type Sink = Vec<Event>;

impl Routing {
    // ----- queries -------------------------------------------------------------------------

    pub fn mrds(&self) -> impl Iterator<Item = &MrdConfig> {
        self.mrds.values()
    }

    pub fn queues(&self) -> impl Iterator<Item = &QueueConfig> {
        self.queues.values()
    }

    pub fn reason_codes(&self) -> impl Iterator<Item = &ReasonCode> {
        self.reason_codes.values()
    }

    pub fn task(&self, task_id: &str) -> DomainResult<&Task> {
        self.tasks
            .get(task_id)
            .ok_or_else(|| DomainError::not_found("task", task_id))
    }

    pub fn tasks_after(&self, after: Option<&str>, limit: usize) -> Page<Task> {
        Page::of_map(&self.tasks, after, limit, Task::clone)
    }

    pub fn is_logged_in_anywhere(&self, agent_id: &str) -> bool {
        self.agents
            .get(agent_id)
            .is_some_and(|a| !a.mrds.is_empty())
    }

    pub fn pending_offer(&self, agent_id: &str) -> Option<String> {
        self.agents.get(agent_id).and_then(|a| a.offer.clone())
    }

    /// The routing actions a desktop shows for its agent, with whether each applies now:
    /// ready while not ready somewhere, not ready while taking work somewhere, accept and
    /// reject while an offer is pending.
    pub fn desktop_actions(&self, agent_id: &str) -> [(&'static str, bool); 4] {
        let agent = self.agents.get(agent_id);
        let states: Vec<AgentState> = agent
            .map(|a| {
                a.mrds
                    .keys()
                    .map(|m| self.agent_state(agent_id, m))
                    .collect()
            })
            .unwrap_or_default();
        let not_ready =
            |s: &AgentState| matches!(s, AgentState::NotReady | AgentState::PendingNotReady);
        let can_ready = states.iter().any(not_ready)
            || (!states.is_empty() && agent.is_some_and(|a| !a.routable));
        let can_not_ready = states.iter().any(|s| !not_ready(s));
        let offered = agent.is_some_and(|a| a.offer.is_some());
        DesktopAction::ALL.map(|action| {
            let enabled = match action {
                DesktopAction::Ready => can_ready,
                DesktopAction::NotReady => can_not_ready,
                DesktopAction::Accept | DesktopAction::Reject => offered,
            };
            (action.name(), enabled)
        })
    }

    /// The pools task-aware steps keep for the task-side values of waiting tasks: they follow
    /// the backlog, not every value ever seen.
    pub fn binding_pools(&self) -> usize {
        self.pools.binding_count()
    }

    /// The earliest timer, for the engine to wake up at.
    pub fn next_deadline(&self) -> Option<Millis> {
        self.timers.first().map(|(at, _, _)| *at)
    }

    fn agent(&self, agent_id: &str) -> DomainResult<&RoutingAgent> {
        self.agents
            .get(agent_id)
            .ok_or_else(|| DomainError::not_found("agent", agent_id))
    }

    fn mrd(&self, field: &'static str, name: &str) -> DomainResult<&MrdConfig> {
        if name.is_empty() {
            return Err(DomainError::invalid(field, "must not be empty"));
        }
        self.mrds
            .get(name)
            .ok_or_else(|| DomainError::not_found("mrd", name))
    }

    fn max_tasks(&self, agent: &RoutingAgent, mrd: &str) -> u32 {
        agent
            .max_tasks
            .get(mrd)
            .copied()
            .or_else(|| self.mrds.get(mrd).map(|m| m.max_tasks))
            .unwrap_or(0)
    }

    fn queues_of<'a>(
        &'a self,
        mrd: &'a str,
    ) -> impl Iterator<Item = (&'a QueueKey, &'a QueueConfig)> + 'a {
        self.queues
            .range(QueueKey::new(mrd, "")..)
            .take_while(move |(k, _)| k.mrd() == mrd)
    }

    /// The agent's derived state on an MRD.
    pub fn agent_state(&self, agent_id: &str, mrd: &str) -> AgentState {
        let Some(agent) = self.agents.get(agent_id) else {
            return AgentState::Logout;
        };
        let Some(am) = agent.mrds.get(mrd) else {
            return AgentState::Logout;
        };
        if self.offer_pending_on(agent, mrd) {
            return AgentState::Reserved;
        }
        if !am.tasks.is_empty() {
            if am.pending_not_ready {
                return AgentState::PendingNotReady;
            }
            let all_wrapping = am.tasks.iter().all(|t| {
                self.tasks
                    .get(t)
                    .is_some_and(|t| t.state == TaskState::WrappingUp)
            });
            if all_wrapping {
                return AgentState::WorkReady;
            }
            return if load(am) >= self.max_tasks(agent, mrd) {
                AgentState::Busy
            } else {
                AgentState::Active
            };
        }
        if am.ready {
            AgentState::Ready
        } else {
            AgentState::NotReady
        }
    }

    /// Whether the agent's pending offer, if any, is of a task on `mrd`.
    fn offer_pending_on(&self, agent: &RoutingAgent, mrd: &str) -> bool {
        agent
            .offer
            .as_ref()
            .and_then(|t| self.tasks.get(t))
            .is_some_and(|t| t.spec.mrd == mrd)
    }

    fn emit(&mut self, event: Event, sink: &mut Sink) {
        self.apply(&event);
        sink.push(event);
    }

    /// Forgets the work lists a replay filled: what was replayed was already settled.
    pub fn finish_replay(&mut self) {
        self.dirty_agents.clear();
        self.dirty_tasks.clear();
        self.touched.clear();
        self.waiting.take_moves();
    }
}

fn load(am: &AgentMrd) -> u32 {
    u32::try_from(am.tasks.len()).unwrap_or(u32::MAX)
}
