//! Routing's records: agents per MRD, tasks, and the states the engine derives from them.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::domain::principals::Actor;

use super::disposition::TaskDisposition;
use super::index::QueueKey;
use super::supervise::PendingLogout;
use crate::domain::bounds::{
    MAX_EXTERNAL_ID_CHARS, MAX_ID_CHARS, MAX_REQUEST_ID_CHARS, MAX_TASK_ATTRIBUTE_VALUE_CHARS,
    MAX_TASK_ATTRIBUTES, MAX_TASK_LABEL_CHARS, MAX_TASK_LABELS, check_count, check_id,
    check_multiline_text, check_optional_id, check_priority, check_text, in_entry,
};
use crate::domain::error::{DomainError, DomainResult};
use crate::domain::events::Millis;
use crate::domain::ids::shorten;

/// Priorities tasks may be given (see `bounds`); a task rerouted after RONA, rejection or
/// logout goes back in at `REQUEUE_PRIORITY`, ahead of all.
pub use crate::domain::bounds::{DEFAULT_PRIORITY, MAX_PRIORITY, MIN_PRIORITY};
pub const REQUEUE_PRIORITY: u8 = MAX_PRIORITY + 1;

/// An agent's state on one MRD as everyone sees it. Agents ask for LOGIN, READY, NOT_READY
/// and LOGOUT; the engine derives the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum AgentState {
    Logout,
    NotReady,
    Ready,
    /// An offer is pending on the agent.
    Reserved,
    /// One or more tasks, below the MRD's max.
    Active,
    /// At the MRD's max.
    Busy,
    /// Only tasks in wrap-up.
    WorkReady,
    /// Asked for NOT_READY while tasks were still active or an offer was ringing; NOT_READY
    /// when the tasks end and the offer is answered (while the offer rings, RESERVED shows).
    PendingNotReady,
}

impl AgentState {
    pub const ALL: [AgentState; 8] = [
        Self::Logout,
        Self::NotReady,
        Self::Ready,
        Self::Reserved,
        Self::Active,
        Self::Busy,
        Self::WorkReady,
        Self::PendingNotReady,
    ];

    /// The name of the contract's `AgentState` value, as messages show it.
    pub fn wire_name(self) -> &'static str {
        match self {
            Self::Logout => "AGENT_STATE_LOGOUT",
            Self::NotReady => "AGENT_STATE_NOT_READY",
            Self::Ready => "AGENT_STATE_READY",
            Self::Reserved => "AGENT_STATE_RESERVED",
            Self::Active => "AGENT_STATE_ACTIVE",
            Self::Busy => "AGENT_STATE_BUSY",
            Self::WorkReady => "AGENT_STATE_WORK_READY",
            Self::PendingNotReady => "AGENT_STATE_PENDING_NOT_READY",
        }
    }
}

/// What an agent asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RequestedAgentState {
    Login,
    Ready,
    NotReady,
    Logout,
}

impl RequestedAgentState {
    pub const ALL: [RequestedAgentState; 4] =
        [Self::Login, Self::Ready, Self::NotReady, Self::Logout];

    /// The name of the contract's `AgentState` value asked for, as messages show it.
    pub fn wire_name(self) -> &'static str {
        match self {
            Self::Login => "AGENT_STATE_LOGIN",
            Self::Ready => "AGENT_STATE_READY",
            Self::NotReady => "AGENT_STATE_NOT_READY",
            Self::Logout => "AGENT_STATE_LOGOUT",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum TaskState {
    Queued,
    Offered,
    Active,
    Paused,
    WrappingUp,
    Closed,
}

impl TaskState {
    pub const ALL: [TaskState; 6] = [
        Self::Queued,
        Self::Offered,
        Self::Active,
        Self::Paused,
        Self::WrappingUp,
        Self::Closed,
    ];

    /// The name of the contract's `TaskState` value, as messages show it.
    pub fn wire_name(self) -> &'static str {
        match self {
            Self::Queued => "TASK_STATE_QUEUED",
            Self::Offered => "TASK_STATE_OFFERED",
            Self::Active => "TASK_STATE_ACTIVE",
            Self::Paused => "TASK_STATE_PAUSED",
            Self::WrappingUp => "TASK_STATE_WRAPPING_UP",
            Self::Closed => "TASK_STATE_CLOSED",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CloseReason {
    Done,
    NoAgentAvailable,
    Cancelled,
    AgentLogout,
    ForceClosed,
    /// Its queue's `max_attempts` offers were let go and the queue has no overflow queue.
    MaxAttempts,
}

impl CloseReason {
    pub const ALL: [CloseReason; 6] = [
        Self::Done,
        Self::NoAgentAvailable,
        Self::Cancelled,
        Self::AgentLogout,
        Self::ForceClosed,
        Self::MaxAttempts,
    ];

    /// The name of the contract's `CloseReason` value, as messages show it.
    pub fn wire_name(self) -> &'static str {
        match self {
            Self::Done => "CLOSE_REASON_DONE",
            Self::NoAgentAvailable => "CLOSE_REASON_NO_AGENT_AVAILABLE",
            Self::Cancelled => "CLOSE_REASON_CANCELLED",
            Self::AgentLogout => "CLOSE_REASON_AGENT_LOGOUT",
            Self::ForceClosed => "CLOSE_REASON_FORCE_CLOSED",
            Self::MaxAttempts => "CLOSE_REASON_MAX_ATTEMPTS",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RequeueReason {
    /// Reroute on no answer: the offer timed out.
    Rona,
    Rejected,
    AgentLogout,
    /// Its owner transferred it to a queue.
    Transferred,
    /// A supervisor put it back in line (`Routing::requeue_task`).
    Supervisor,
}

impl RequeueReason {
    pub const ALL: [RequeueReason; 5] = [
        Self::Rona,
        Self::Rejected,
        Self::AgentLogout,
        Self::Transferred,
        Self::Supervisor,
    ];

    /// The name of the contract's `RequeueReason` value, as messages show it.
    pub fn wire_name(self) -> &'static str {
        match self {
            Self::Rona => "REQUEUE_REASON_RONA",
            Self::Rejected => "REQUEUE_REASON_REJECTED",
            Self::AgentLogout => "REQUEUE_REASON_AGENT_LOGOUT",
            Self::Transferred => "REQUEUE_REASON_TRANSFERRED",
            Self::Supervisor => "REQUEUE_REASON_SUPERVISOR",
        }
    }
}

/// Shows the contract's name of each value (`TASK_STATE_WRAPPING_UP`, not `WrappingUp`), so
/// that a message names what a client sends and receives.
macro_rules! display_wire_name {
    ($($ty:ty),*) => {$(
        impl ::std::fmt::Display for $ty {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.wire_name())
            }
        }
    )*};
}
pub(crate) use display_wire_name;

display_wire_name!(
    AgentState,
    RequestedAgentState,
    TaskState,
    CloseReason,
    RequeueReason
);

/// Why an agent was chosen, so that a choice can be explained.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Selection {
    /// The task's last agent was eligible.
    Sticky,
    /// The agent matched this step of the task's queue (0-based).
    Step { index: usize },
    /// The agent is this entry of the task's `preferred_agents` (0-based).
    Preferred { index: usize },
}

/// One agent's presence on one MRD.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AgentMrd {
    pub ready: bool,
    pub reason_code: String,
    /// NOT_READY was asked while the agent had tasks or a ringing offer on this MRD: it takes
    /// effect once it has neither (see `Routing::change_agent_state`).
    pub pending_not_ready: bool,
    /// When the agent last became available (READY, or a task ended): ties go to the longest.
    pub available_since: Millis,
    /// Tasks the agent owns or takes part in on this MRD: its load.
    pub tasks: BTreeSet<String>,
    /// A supervisor's LOGOUT that waits for the agent's work to end (see `supervise`).
    #[serde(default)]
    pub pending_logout: Option<PendingLogout>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoutingAgent {
    pub attributes: BTreeMap<String, u32>,
    pub max_tasks: BTreeMap<String, u32>,
    pub extension: String,
    pub destination: String,
    pub routable: bool,
    /// The one pending offer an agent may have.
    pub offer: Option<String>,
    pub mrds: BTreeMap<String, AgentMrd>,
}

impl RoutingAgent {
    pub fn new(attributes: BTreeMap<String, u32>, max_tasks: BTreeMap<String, u32>) -> Self {
        Self {
            attributes,
            max_tasks,
            extension: String::new(),
            destination: String::new(),
            routable: true,
            offer: None,
            mrds: BTreeMap::new(),
        }
    }
}

/// What a channel submits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskSpec {
    pub task_id: String,
    pub request_id: String,
    pub mrd: String,
    pub queue: String,
    pub priority: u8,
    pub conversation_id: String,
    pub last_agent_id: String,
    pub labels: Vec<String>,
    pub attributes: BTreeMap<String, String>,
    /// The principal that submitted it: an integration may act on the tasks it created.
    #[serde(default)]
    pub created_by: Actor,
    /// The earlier task this one calls back: it takes that one's place in line (`callback`).
    #[serde(default)]
    pub callback_for: String,
    /// Agents to offer it to first, best first (see `preferred`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub preferred_agents: Vec<String>,
    /// How long only the preferred agents (and the last agent) may be offered it; 0: the queue's
    /// steps apply at once, after them.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub preferred_timeout_ms: Millis,
}

fn is_zero(ms: &Millis) -> bool {
    *ms == 0
}

impl TaskSpec {
    /// Checks what a channel submitted against `bounds`: ids, priority, and the size of its
    /// labels and attributes. Whether the MRD and queue exist is routing's to say.
    pub fn validate(&self) -> DomainResult<()> {
        check_id("task_id", &self.task_id)?;
        check_text("request_id", &self.request_id, MAX_REQUEST_ID_CHARS)?;
        check_id("mrd", &self.mrd)?;
        check_optional_id("queue", &self.queue)?;
        check_priority("priority", self.priority)?;
        check_text(
            "conversation_id",
            &self.conversation_id,
            MAX_EXTERNAL_ID_CHARS,
        )?;
        check_optional_id("last_agent_id", &self.last_agent_id)?;
        check_optional_id("callback_for_task_id", &self.callback_for)?;
        check_count("labels", self.labels.len(), MAX_TASK_LABELS, "labels")?;
        for (index, label) in self.labels.iter().enumerate() {
            in_entry(
                format_args!("label {index}"),
                check_text("labels", label, MAX_TASK_LABEL_CHARS),
            )?;
        }
        check_count(
            "attributes",
            self.attributes.len(),
            MAX_TASK_ATTRIBUTES,
            "attributes",
        )?;
        for (name, value) in &self.attributes {
            if name.is_empty() {
                return Err(DomainError::invalid(
                    "attributes",
                    "an attribute name must not be empty",
                ));
            }
            in_entry(
                format_args!("attribute {:?}", shorten(name)),
                check_text("attributes", name, MAX_ID_CHARS).and_then(|()| {
                    check_multiline_text("attributes", value, MAX_TASK_ATTRIBUTE_VALUE_CHARS)
                }),
            )?;
        }
        self.validate_preferred()
    }

    /// The queue the task waits in.
    pub(in crate::domain::routing) fn queue_key(&self) -> QueueKey {
        QueueKey::new(&self.mrd, &self.queue)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Task {
    pub spec: TaskSpec,
    pub state: TaskState,
    pub priority: u8,
    pub close_reason: Option<CloseReason>,
    pub created_at: Millis,
    /// When the task last went into its queue: arrival, or a requeue that took it from an
    /// agent (a supervisor's move of a waiting task keeps it).
    pub queued_at: Millis,
    /// First-in-first-out order within a priority.
    pub seq: u64,
    /// The widest queue step searched so far.
    pub step: usize,
    pub step_deadline: Option<Millis>,
    pub ttl_deadline: Option<Millis>,
    pub offer: Option<(String, Millis)>,
    pub owner: Option<String>,
    pub participants: BTreeSet<String>,
    pub wrap_deadline: Option<Millis>,
    /// Agents who let an offer of this task go (rejected or RONA): not offered it again.
    pub declined_by: BTreeSet<String>,
    pub updated_at: Millis,
    /// Offers of it let go (rejected or RONA) in its current queue (`attempts`).
    #[serde(default)]
    pub attempts: u32,
    /// When an agent first accepted it: it was answered then (`service_level`).
    #[serde(default)]
    pub answered_at: Option<Millis>,
    /// The callback that took its place, if one did (`callback`).
    #[serde(default)]
    pub callback_task_id: Option<String>,
    /// While set, only the preferred agents may be offered the task (see `preferred`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_deadline: Option<Millis>,
    /// Its place in line when it arrived, for a transfer to a queue that keeps it.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub arrival_seq: u64,
    /// The disposition code its close gave, or that a required one is missing.
    #[serde(default)]
    pub disposition: TaskDisposition,
}

impl Task {
    /// Agents currently on the task: its owner and conference participants.
    pub fn agents(&self) -> impl Iterator<Item = &String> {
        self.owner.iter().chain(self.participants.iter())
    }
}
