//! The media routing engine's rules: agents' presence per MRD, tasks, and the choice of agent.
//!
//! Every change goes through `emit`, which applies the event at once, so each decision sees the
//! effects of the one before it. `apply` is also the fold replay uses. After every command,
//! `settle` fires due timers, offers every waiting task an eligible agent can take (immediate
//! backfill), and emits a notice for every agent whose derived state changed.

pub mod config;
pub mod expr;
mod index;
pub mod model;
mod snapshot;
mod views;

use std::collections::{BTreeMap, BTreeSet, HashMap};

pub use snapshot::RoutingSnapshot;
pub use views::{AgentMrdView, AgentStatusView, QueueStats};

use self::config::{
    DEFAULT_QUEUE, LogoutAction, MrdConfig, QueueConfig, ReasonCategory, ReasonCode, RonaAction,
};
use self::index::{AgentKey, Pools, QueueKey, TaskKey, Waiting};
use self::model::{
    AgentMrd, AgentState, CloseReason, REQUEUE_PRIORITY, RequestedAgentState, RequeueReason,
    RoutingAgent, Selection, Task, TaskSpec, TaskState,
};
use super::error::{DomainError, DomainResult};
use super::events::{Event, Millis};

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

    pub fn tasks_after(&self, after: Option<&str>, limit: usize) -> (Vec<Task>, Option<String>) {
        page(&self.tasks, after, limit)
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
            .range((mrd.to_owned(), String::new())..)
            .take_while(move |(k, _)| k.0 == mrd)
    }

    /// The agent's derived state on an MRD.
    pub fn agent_state(&self, agent_id: &str, mrd: &str) -> AgentState {
        let Some(agent) = self.agents.get(agent_id) else {
            return AgentState::Logout;
        };
        let Some(am) = agent.mrds.get(mrd) else {
            return AgentState::Logout;
        };
        let offered_here = agent
            .offer
            .as_ref()
            .and_then(|t| self.tasks.get(t))
            .is_some_and(|t| t.spec.mrd == mrd);
        if offered_here {
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

    /// The agent's key in the pools of `mrd` if it can be offered a task there now.
    fn eligible(&self, agent_id: &str, mrd: &str) -> Option<AgentKey> {
        let agent = self.agents.get(agent_id)?;
        let am = agent.mrds.get(mrd)?;
        let can_take = am.ready
            && !am.pending_not_ready
            && agent.routable
            && agent.offer.is_none()
            && load(am) < self.max_tasks(agent, mrd);
        can_take.then(|| AgentKey {
            load: load(am),
            available_since: am.available_since,
            agent_id: agent_id.to_owned(),
        })
    }

    /// The lowest step of `queue` whose expression the agent's attributes match.
    fn first_matching_step(&self, agent: &RoutingAgent, queue: &QueueConfig) -> Option<usize> {
        queue
            .steps
            .iter()
            .position(|s| s.expression.matches(&agent.attributes))
    }

    fn on_conversation(&self, agent_id: &str, task: &Task) -> bool {
        if task.spec.conversation_id.is_empty() {
            return false;
        }
        self.agents
            .get(agent_id)
            .and_then(|a| a.mrds.get(&task.spec.mrd))
            .is_some_and(|am| {
                am.tasks.iter().any(|t| {
                    self.tasks
                        .get(t)
                        .is_some_and(|t| t.spec.conversation_id == task.spec.conversation_id)
                })
            })
    }

    fn may_offer(&self, agent_id: &str, task: &Task) -> bool {
        !task.declined_by.contains(agent_id) && !self.on_conversation(agent_id, task)
    }

    /// The best eligible agent for a waiting task, and why.
    fn best_agent_for(&self, task: &Task) -> Option<(AgentKey, Selection)> {
        let sticky = &task.spec.last_agent_id;
        if !sticky.is_empty()
            && let Some(key) = self.eligible(sticky, &task.spec.mrd)
            && self.may_offer(sticky, task)
        {
            return Some((key, Selection::Sticky));
        }
        let queue: QueueKey = (task.spec.mrd.clone(), task.spec.queue.clone());
        let mut best: Option<(AgentKey, Selection)> = None;
        for step in 0..=task.step {
            let first = self
                .pools
                .step(&queue, step)
                .find(|key| self.may_offer(&key.agent_id, task));
            if let Some(key) = first
                && best.as_ref().is_none_or(|(b, _)| key < b)
            {
                best = Some((key.clone(), Selection::Step { index: step }));
            }
        }
        best
    }

    /// The best waiting task an agent that just became able to take work can be offered.
    fn best_task_for(&self, agent_id: &str, mrd: &str) -> Option<(TaskKey, Selection)> {
        let agent = self.agents.get(agent_id)?;
        let acceptable = |key: &TaskKey| {
            self.tasks
                .get(&key.task_id)
                .is_some_and(|t| t.spec.mrd == mrd && self.may_offer(agent_id, t))
        };
        let mut best = self
            .waiting
            .sticky_to(agent_id)
            .find(|k| acceptable(k))
            .map(|k| (k.clone(), Selection::Sticky));
        for (queue_key, queue) in self.queues_of(mrd) {
            let Some(step) = self.first_matching_step(agent, queue) else {
                continue;
            };
            for level in self.waiting.levels_from(queue_key, step) {
                if let Some(key) = level.iter().find(|k| acceptable(k))
                    && best.as_ref().is_none_or(|(b, _)| key < b)
                {
                    best = Some((key.clone(), Selection::Step { index: step }));
                }
            }
        }
        best
    }

    // ----- commands ------------------------------------------------------------------------

    pub fn upsert_mrd(&mut self, mrd: MrdConfig, sink: &mut Sink) -> DomainResult<()> {
        mrd.validate()?;
        self.emit(Event::MrdUpserted { mrd }, sink);
        Ok(())
    }

    pub fn delete_mrd(&mut self, name: &str, sink: &mut Sink) -> DomainResult<()> {
        self.mrd("name", name)?;
        if self.mrd_agents.get(name).is_some_and(|a| !a.is_empty()) {
            return Err(DomainError::FailedPrecondition(format!(
                "agents are logged in on mrd '{name}'; log them out first"
            )));
        }
        if self
            .tasks
            .values()
            .any(|t| t.spec.mrd == name && t.state != TaskState::Closed)
        {
            return Err(DomainError::FailedPrecondition(format!(
                "mrd '{name}' has open tasks"
            )));
        }
        self.emit(
            Event::MrdDeleted {
                name: name.to_owned(),
            },
            sink,
        );
        Ok(())
    }

    pub fn upsert_queue(&mut self, queue: QueueConfig, sink: &mut Sink) -> DomainResult<()> {
        queue.validate()?;
        self.mrd("queue.mrd", &queue.mrd)?;
        self.emit(Event::QueueUpserted { queue }, sink);
        Ok(())
    }

    pub fn delete_queue(&mut self, mrd: &str, name: &str, sink: &mut Sink) -> DomainResult<()> {
        let key = (mrd.to_owned(), name.to_owned());
        if !self.queues.contains_key(&key) {
            return Err(DomainError::not_found("queue", format!("{mrd}/{name}")));
        }
        if name != DEFAULT_QUEUE && self.waiting.in_queue(&key).next().is_some() {
            return Err(DomainError::FailedPrecondition(format!(
                "queue '{mrd}/{name}' has waiting tasks"
            )));
        }
        self.emit(
            Event::QueueDeleted {
                mrd: mrd.to_owned(),
                name: name.to_owned(),
            },
            sink,
        );
        Ok(())
    }

    pub fn upsert_reason_code(&mut self, reason: ReasonCode, sink: &mut Sink) -> DomainResult<()> {
        reason.validate()?;
        self.emit(Event::ReasonCodeUpserted { reason }, sink);
        Ok(())
    }

    pub fn connect_agent(
        &mut self,
        agent_id: &str,
        extension: String,
        destination: String,
        sink: &mut Sink,
    ) -> DomainResult<()> {
        self.agent(agent_id)?;
        self.emit(
            Event::AgentConnected {
                agent_id: agent_id.to_owned(),
                extension,
                destination,
            },
            sink,
        );
        Ok(())
    }

    /// Applies what an agent asks for; an empty `mrd` means every MRD it is on (for LOGIN:
    /// every MRD it may work on).
    pub fn change_agent_state(
        &mut self,
        agent_id: &str,
        requested: RequestedAgentState,
        mrd: &str,
        reason_code: &str,
        now: Millis,
        sink: &mut Sink,
    ) -> DomainResult<()> {
        let agent = self.agent(agent_id)?;
        if !reason_code.is_empty() {
            let wanted = match requested {
                RequestedAgentState::NotReady => Some(ReasonCategory::NotReady),
                RequestedAgentState::Logout => Some(ReasonCategory::Logout),
                _ => None,
            };
            match (self.reason_codes.get(reason_code), wanted) {
                (None, _) => return Err(DomainError::not_found("reason code", reason_code)),
                (Some(rc), Some(category)) if rc.category != category => {
                    return Err(DomainError::invalid(
                        "reason_code",
                        format!("'{reason_code}' is not a {category:?} reason code"),
                    ));
                }
                (Some(_), None) => {
                    return Err(DomainError::invalid(
                        "reason_code",
                        "only NOT_READY and LOGOUT take a reason code",
                    ));
                }
                _ => {}
            }
        }
        let mrds: Vec<String> = if mrd.is_empty() {
            match requested {
                RequestedAgentState::Login => self
                    .mrds
                    .keys()
                    .filter(|m| self.max_tasks(agent, m) > 0)
                    .cloned()
                    .collect(),
                _ => agent.mrds.keys().cloned().collect(),
            }
        } else {
            self.mrd("mrd", mrd)?;
            vec![mrd.to_owned()]
        };
        if mrds.is_empty() {
            return Err(DomainError::FailedPrecondition(format!(
                "agent '{agent_id}' is not logged in on any mrd"
            )));
        }
        for m in &mrds {
            let logged_in = agent.mrds.contains_key(m);
            if !logged_in && requested != RequestedAgentState::Login {
                return Err(DomainError::FailedPrecondition(format!(
                    "agent '{agent_id}' is not logged in on mrd '{m}'"
                )));
            }
            if requested == RequestedAgentState::Login && self.max_tasks(agent, m) == 0 {
                return Err(DomainError::FailedPrecondition(format!(
                    "agent '{agent_id}' may take no tasks on mrd '{m}' (max_tasks 0)"
                )));
            }
        }
        for m in mrds {
            let agent_id = agent_id.to_owned();
            match requested {
                RequestedAgentState::Login => {
                    if !self.agents[&agent_id].mrds.contains_key(&m) {
                        self.emit(
                            Event::AgentLoggedIn {
                                agent_id,
                                mrd: m,
                                at: now,
                            },
                            sink,
                        );
                    }
                }
                RequestedAgentState::Ready => {
                    if !self.agents[&agent_id].routable {
                        self.emit(
                            Event::AgentRoutable {
                                agent_id: agent_id.clone(),
                                routable: true,
                            },
                            sink,
                        );
                    }
                    self.emit(
                        Event::AgentReady {
                            agent_id,
                            mrd: m,
                            at: now,
                        },
                        sink,
                    );
                }
                RequestedAgentState::NotReady => self.emit(
                    Event::AgentNotReady {
                        agent_id,
                        mrd: m,
                        reason_code: reason_code.to_owned(),
                        at: now,
                    },
                    sink,
                ),
                RequestedAgentState::Logout => {
                    self.log_out(&agent_id, &m, reason_code, now, sink);
                }
            }
        }
        Ok(())
    }

    /// Logout: the agent's pending offer is rerouted, its tasks close or requeue per the MRD,
    /// it leaves conferences, then it is out.
    fn log_out(
        &mut self,
        agent_id: &str,
        mrd: &str,
        reason_code: &str,
        now: Millis,
        sink: &mut Sink,
    ) {
        let logout_action = self
            .mrds
            .get(mrd)
            .map_or(LogoutAction::Close, |m| m.logout_action);
        if let Some(task_id) = self.agents[agent_id].offer.clone()
            && self.tasks.get(&task_id).is_some_and(|t| t.spec.mrd == mrd)
        {
            self.requeue(&task_id, agent_id, RequeueReason::AgentLogout, now, sink);
        }
        let tasks: Vec<String> = self.agents[agent_id].mrds[mrd]
            .tasks
            .iter()
            .cloned()
            .collect();
        for task_id in tasks {
            let owner = self.tasks.get(&task_id).and_then(|t| t.owner.clone());
            if owner.as_deref() != Some(agent_id) {
                self.emit(
                    Event::TaskParticipantLeft {
                        task_id,
                        mrd: mrd.to_owned(),
                        agent_id: agent_id.to_owned(),
                        at: now,
                    },
                    sink,
                );
            } else if logout_action == LogoutAction::Requeue {
                self.requeue(&task_id, agent_id, RequeueReason::AgentLogout, now, sink);
            } else {
                self.close(&task_id, CloseReason::AgentLogout, String::new(), now, sink);
            }
        }
        self.emit(
            Event::AgentLoggedOut {
                agent_id: agent_id.to_owned(),
                mrd: mrd.to_owned(),
                reason_code: reason_code.to_owned(),
            },
            sink,
        );
    }

    pub fn new_task(
        &mut self,
        mut spec: TaskSpec,
        now: Millis,
        sink: &mut Sink,
    ) -> DomainResult<()> {
        self.mrd("mrd", &spec.mrd)?;
        if self.tasks.contains_key(&spec.task_id) {
            return Err(DomainError::FailedPrecondition(format!(
                "task '{}' exists",
                spec.task_id
            )));
        }
        if spec.queue.is_empty()
            || !self
                .queues
                .contains_key(&(spec.mrd.clone(), spec.queue.clone()))
        {
            spec.queue = DEFAULT_QUEUE.into();
        }
        let queue = &self.queues[&(spec.mrd.clone(), spec.queue.clone())];
        let step_deadline = queue.step_deadline(0, now);
        let ttl_deadline = (queue.task_ttl_ms > 0).then(|| now.saturating_add(queue.task_ttl_ms));
        let priority = spec.priority;
        let seq = self.next_seq;
        self.emit(
            Event::TaskQueued {
                spec,
                priority,
                seq,
                at: now,
                step_deadline,
                ttl_deadline,
            },
            sink,
        );
        Ok(())
    }

    fn offered_task(&self, task_id: &str, agent_id: &str) -> DomainResult<&Task> {
        let task = self.task(task_id)?;
        self.agent(agent_id)?;
        match &task.offer {
            Some((offered_to, _)) if offered_to == agent_id => Ok(task),
            _ => Err(DomainError::FailedPrecondition(format!(
                "task '{task_id}' has no pending offer to agent '{agent_id}'"
            ))),
        }
    }

    pub fn accept_task(
        &mut self,
        task_id: &str,
        agent_id: &str,
        now: Millis,
        sink: &mut Sink,
    ) -> DomainResult<()> {
        let mrd = self.offered_task(task_id, agent_id)?.spec.mrd.clone();
        self.emit(
            Event::TaskAccepted {
                task_id: task_id.to_owned(),
                mrd,
                agent_id: agent_id.to_owned(),
                at: now,
            },
            sink,
        );
        Ok(())
    }

    pub fn reject_task(
        &mut self,
        task_id: &str,
        agent_id: &str,
        now: Millis,
        sink: &mut Sink,
    ) -> DomainResult<()> {
        self.offered_task(task_id, agent_id)?;
        self.requeue(task_id, agent_id, RequeueReason::Rejected, now, sink);
        Ok(())
    }

    /// Pause, resume, wrap up or close a task, as its channel or agent says.
    pub fn change_task_state(
        &mut self,
        task_id: &str,
        wanted: TaskState,
        now: Millis,
        sink: &mut Sink,
    ) -> DomainResult<()> {
        let task = self.task(task_id)?;
        let from = task.state;
        let refuse = || {
            Err(DomainError::FailedPrecondition(format!(
                "task '{task_id}' cannot go from {from:?} to {wanted:?}"
            )))
        };
        let mrd = task.spec.mrd.clone();
        let agents: Vec<String> = task.agents().cloned().collect();
        let change = |state, wrap_deadline| Event::TaskStateChanged {
            task_id: task_id.to_owned(),
            mrd: mrd.clone(),
            state,
            close_reason: None,
            wrap_deadline,
            detail: String::new(),
            at: now,
            agents: agents.clone(),
        };
        match (from, wanted) {
            (TaskState::Closed, _) => refuse(),
            (TaskState::Active, TaskState::Paused) | (TaskState::Paused, TaskState::Active) => {
                self.emit(change(wanted, None), sink);
                Ok(())
            }
            (TaskState::Active | TaskState::Paused, TaskState::WrappingUp) => {
                let wrap_up = self
                    .mrds
                    .get(&task.spec.mrd)
                    .map_or(0, |m| m.wrap_up_timeout_ms);
                if wrap_up == 0 {
                    self.close(task_id, CloseReason::Done, String::new(), now, sink);
                } else {
                    self.emit(
                        change(TaskState::WrappingUp, Some(now.saturating_add(wrap_up))),
                        sink,
                    );
                }
                Ok(())
            }
            (TaskState::Queued | TaskState::Offered, TaskState::Closed) => {
                self.close(task_id, CloseReason::Cancelled, String::new(), now, sink);
                Ok(())
            }
            (_, TaskState::Closed) => {
                self.close(task_id, CloseReason::Done, String::new(), now, sink);
                Ok(())
            }
            _ => refuse(),
        }
    }

    /// The checks transfer and conference share: the task is active, `owner` owns it, and
    /// `other` is a different agent, logged in on the MRD, eligible, and not on the task.
    fn check_handover(
        &self,
        task_id: &str,
        owner: &str,
        other: &str,
        other_field: &'static str,
    ) -> DomainResult<()> {
        let task = self.task(task_id)?;
        if task.state != TaskState::Active {
            return Err(DomainError::FailedPrecondition(format!(
                "task '{task_id}' is {:?}, not Active",
                task.state
            )));
        }
        self.agent(owner)?;
        if task.owner.as_deref() != Some(owner) {
            return Err(DomainError::FailedPrecondition(format!(
                "agent '{owner}' does not own task '{task_id}'"
            )));
        }
        if other == owner {
            return Err(DomainError::invalid(
                other_field,
                "must differ from the owner",
            ));
        }
        let recipient = self.agent(other)?;
        if !recipient.mrds.contains_key(&task.spec.mrd) {
            return Err(DomainError::FailedPrecondition(format!(
                "agent '{other}' is not logged in on mrd '{}'",
                task.spec.mrd
            )));
        }
        if task.agents().any(|a| a == other) {
            return Err(DomainError::FailedPrecondition(format!(
                "agent '{other}' is already on task '{task_id}'"
            )));
        }
        if self.eligible(other, &task.spec.mrd).is_none() {
            return Err(DomainError::FailedPrecondition(format!(
                "agent '{other}' cannot take work now ({:?} on mrd '{}')",
                self.agent_state(other, &task.spec.mrd),
                task.spec.mrd
            )));
        }
        Ok(())
    }

    pub fn transfer_task(
        &mut self,
        task_id: &str,
        owner: &str,
        recipient: &str,
        now: Millis,
        sink: &mut Sink,
    ) -> DomainResult<()> {
        self.check_handover(task_id, owner, recipient, "recipient_agent_id")?;
        let mrd = self.task(task_id)?.spec.mrd.clone();
        self.emit(
            Event::TaskAgentTransferred {
                task_id: task_id.to_owned(),
                mrd,
                owner_agent_id: owner.to_owned(),
                recipient_agent_id: recipient.to_owned(),
                at: now,
            },
            sink,
        );
        Ok(())
    }

    pub fn conference_task(
        &mut self,
        task_id: &str,
        owner: &str,
        participant: &str,
        mrd: &str,
        now: Millis,
        sink: &mut Sink,
    ) -> DomainResult<()> {
        let task_mrd = self.task(task_id)?.spec.mrd.clone();
        if !mrd.is_empty() && mrd != task_mrd {
            return Err(DomainError::invalid(
                "mrd",
                format!("task '{task_id}' is on mrd '{task_mrd}', not '{mrd}'"),
            ));
        }
        self.check_handover(task_id, owner, participant, "conference_participant")?;
        self.emit(
            Event::TaskConferenced {
                task_id: task_id.to_owned(),
                mrd: task_mrd,
                owner_agent_id: owner.to_owned(),
                participant_agent_id: participant.to_owned(),
                at: now,
            },
            sink,
        );
        Ok(())
    }

    // ----- the engine's own moves -----------------------------------------------------------

    fn requeue(
        &mut self,
        task_id: &str,
        agent_id: &str,
        reason: RequeueReason,
        now: Millis,
        sink: &mut Sink,
    ) {
        let Some(task) = self.tasks.get(task_id) else {
            return;
        };
        let step_deadline = self
            .queues
            .get(&(task.spec.mrd.clone(), task.spec.queue.clone()))
            .and_then(|q| q.step_deadline(task.step, now));
        let seq = self.next_seq;
        let mrd = task.spec.mrd.clone();
        self.emit(
            Event::TaskRequeued {
                task_id: task_id.to_owned(),
                mrd,
                agent_id: agent_id.to_owned(),
                reason,
                priority: REQUEUE_PRIORITY,
                seq,
                at: now,
                step_deadline,
            },
            sink,
        );
    }

    fn close(
        &mut self,
        task_id: &str,
        reason: CloseReason,
        detail: String,
        now: Millis,
        sink: &mut Sink,
    ) {
        let (mrd, agents) = self
            .tasks
            .get(task_id)
            .map(|t| (t.spec.mrd.clone(), t.agents().cloned().collect()))
            .unwrap_or_default();
        self.emit(
            Event::TaskStateChanged {
                task_id: task_id.to_owned(),
                mrd,
                state: TaskState::Closed,
                close_reason: Some(reason),
                wrap_deadline: None,
                detail,
                at: now,
                agents,
            },
            sink,
        );
    }

    /// Runs after every command: due timers, then every possible offer, then state notices.
    pub fn settle(&mut self, now: Millis, sink: &mut Sink) {
        self.fire_due(now, sink);
        self.dispatch(now, sink);
        self.announce(sink);
    }

    fn fire_due(&mut self, now: Millis, sink: &mut Sink) {
        while let Some((at, kind, task_id)) = self.timers.first().cloned() {
            if at > now {
                break;
            }
            self.timers.remove(&(at, kind, task_id.clone()));
            let Some(task) = self.tasks.get(&task_id) else {
                continue;
            };
            match (kind, task.state) {
                (TimerKind::OfferExpires, TaskState::Offered) => {
                    let Some((agent_id, _)) = task.offer.clone() else {
                        continue;
                    };
                    let mrd = task.spec.mrd.clone();
                    self.requeue(&task_id, &agent_id, RequeueReason::Rona, now, sink);
                    self.penalise_rona(&agent_id, &mrd, now, sink);
                }
                (TimerKind::StepWidens, TaskState::Queued) => {
                    let step = task.step + 1;
                    let step_deadline = self
                        .queues
                        .get(&(task.spec.mrd.clone(), task.spec.queue.clone()))
                        .and_then(|q| q.step_deadline(step, now));
                    let mrd = task.spec.mrd.clone();
                    self.emit(
                        Event::TaskStepWidened {
                            task_id,
                            mrd,
                            step,
                            step_deadline,
                            at: now,
                        },
                        sink,
                    );
                }
                (TimerKind::TimeToLive, TaskState::Queued) => {
                    let detail = self.tried_steps(task);
                    self.close(&task_id, CloseReason::NoAgentAvailable, detail, now, sink);
                }
                (TimerKind::WrapUpEnds, TaskState::WrappingUp) => {
                    self.close(&task_id, CloseReason::Done, String::new(), now, sink);
                }
                _ => {}
            }
        }
    }

    fn penalise_rona(&mut self, agent_id: &str, mrd: &str, now: Millis, sink: &mut Sink) {
        let action = self
            .mrds
            .get(mrd)
            .map_or(RonaAction::NotReady, |m| m.rona_action);
        let Some(agent) = self.agents.get(agent_id) else {
            return;
        };
        match action {
            RonaAction::NotReady if agent.mrds.contains_key(mrd) => self.emit(
                Event::AgentNotReady {
                    agent_id: agent_id.to_owned(),
                    mrd: mrd.to_owned(),
                    reason_code: RONA_REASON.into(),
                    at: now,
                },
                sink,
            ),
            RonaAction::NotRoutable if agent.routable => self.emit(
                Event::AgentRoutable {
                    agent_id: agent_id.to_owned(),
                    routable: false,
                },
                sink,
            ),
            _ => {}
        }
    }

    /// What a task that found nobody searched, for its close.
    fn tried_steps(&self, task: &Task) -> String {
        let Some(queue) = self
            .queues
            .get(&(task.spec.mrd.clone(), task.spec.queue.clone()))
        else {
            return String::new();
        };
        let tried: Vec<String> = queue
            .steps
            .iter()
            .take(task.step + 1)
            .enumerate()
            .map(|(i, s)| format!("step {i}: {}", s.expression.source()))
            .collect();
        format!(
            "no eligible agent in queue '{}/{}'; tried {}",
            task.spec.mrd,
            task.spec.queue,
            tried.join("; ")
        )
    }

    /// Immediate backfill: offers until no waiting task has an eligible agent.
    fn dispatch(&mut self, now: Millis, sink: &mut Sink) {
        loop {
            if let Some(key) = self.dirty_tasks.pop_first() {
                let Some(task) = self.tasks.get(&key.task_id) else {
                    continue;
                };
                if task.state != TaskState::Queued {
                    continue;
                }
                if let Some((agent, selection)) = self.best_agent_for(task) {
                    self.offer(&key.task_id, &agent.agent_id, selection, now, sink);
                }
                continue;
            }
            if let Some((agent_id, mrd)) = self.dirty_agents.pop_first() {
                if self.eligible(&agent_id, &mrd).is_none() {
                    continue;
                }
                if let Some((task, selection)) = self.best_task_for(&agent_id, &mrd) {
                    self.offer(&task.task_id, &agent_id, selection, now, sink);
                }
                continue;
            }
            break;
        }
    }

    fn offer(
        &mut self,
        task_id: &str,
        agent_id: &str,
        selection: Selection,
        now: Millis,
        sink: &mut Sink,
    ) {
        let task = &self.tasks[task_id];
        let mrd = task.spec.mrd.clone();
        let offer_timeout = self.mrds.get(&mrd).map_or(0, |m| m.offer_timeout_ms);
        let agent_load = self.agents[agent_id].mrds.get(&mrd).map_or(0, load);
        self.emit(
            Event::TaskAgentSelected {
                task_id: task_id.to_owned(),
                agent_id: agent_id.to_owned(),
                queue: task.spec.queue.clone(),
                mrd,
                offer_deadline: now.saturating_add(offer_timeout),
                selection,
                agent_load,
                at: now,
            },
            sink,
        );
    }

    /// Emits a notice for each agent whose derived state changed.
    fn announce(&mut self, sink: &mut Sink) {
        let touched = std::mem::take(&mut self.touched);
        for (agent_id, mrd) in touched {
            let state = self.agent_state(&agent_id, &mrd);
            let (reason_code, routable, active) = match self.agents.get(&agent_id) {
                Some(agent) => (
                    agent
                        .mrds
                        .get(&mrd)
                        .map(|am| am.reason_code.clone())
                        .unwrap_or_default(),
                    agent.routable,
                    agent.mrds.get(&mrd).map_or(0, load),
                ),
                None => (String::new(), false, 0),
            };
            let now = (state, reason_code, routable, active);
            let key = (agent_id, mrd);
            let before = self.announced.get(&key);
            let unchanged = match before {
                Some(b) => *b == now,
                None => state == AgentState::Logout,
            };
            if !unchanged {
                let (agent_id, mrd) = key;
                self.emit(
                    Event::AgentStateChanged {
                        agent_id,
                        mrd,
                        state: now.0,
                        reason_code: now.1,
                        routable: now.2,
                        active_tasks: now.3,
                    },
                    sink,
                );
            }
        }
        // Announcing changes nothing an agent could see, so this set stays empty.
        self.touched.clear();
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
    }
}

fn load(am: &AgentMrd) -> u32 {
    u32::try_from(am.tasks.len()).unwrap_or(u32::MAX)
}

fn page<T: Clone>(
    map: &BTreeMap<String, T>,
    after: Option<&str>,
    limit: usize,
) -> (Vec<T>, Option<String>) {
    use std::ops::Bound;
    let start = after.map_or(Bound::Unbounded, |a| Bound::Excluded(a.to_owned()));
    let mut items: Vec<(String, T)> = map
        .range((start, Bound::Unbounded))
        .take(limit + 1)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let next = (items.len() > limit).then(|| {
        items.truncate(limit);
        items.last().map(|(k, _)| k.clone())
    });
    (items.into_iter().map(|(_, v)| v).collect(), next.flatten())
}

mod apply;
