//! Routing configuration: media routing domains (MRDs), queues with widening steps, and reason
//! codes. Validated here, once, whichever way it arrives.

use serde::{Deserialize, Serialize};

use super::attempts::AttemptPolicy;
use super::classify::Classifier;
use super::disposition::Dispositions;
use super::expr::Expr;
use super::index::QueueKey;
use super::model::display_wire_name;
use super::service_level::ServiceLevelTarget;
use crate::domain::bounds::{
    MAX_MRD_BLOCKS, MAX_OFFER_TIMEOUT_MS, MAX_QUEUE_STEPS, MAX_STEP_TIMEOUT_MS, MAX_TASK_TTL_MS,
    MAX_TASKS_PER_MRD, MAX_WRAP_UP_TIMEOUT_MS, MIN_OFFER_TIMEOUT_MS, check_count, check_duration,
    check_id, check_name, in_entry,
};
use crate::domain::error::{DomainError, DomainResult};
use crate::domain::events::Millis;

/// The queue every MRD has: tasks with an unknown or empty queue go to it. Until configured it
/// has one step that matches every agent and no time to live.
pub const DEFAULT_QUEUE: &str = "default";
/// Most steps a queue may have (see `bounds`).
pub const MAX_STEPS: usize = MAX_QUEUE_STEPS;
/// Most tasks an agent may hold on one MRD (see `bounds`).
pub const MAX_TASKS_LIMIT: u32 = MAX_TASKS_PER_MRD;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RonaAction {
    /// The agent who did not answer goes NOT_READY on the MRD.
    NotReady,
    /// The agent stays in its state but is no longer offered work until made routable again.
    NotRoutable,
}

impl RonaAction {
    pub const ALL: [RonaAction; 2] = [Self::NotReady, Self::NotRoutable];

    /// The name of the contract's `RonaAction` value, as messages show it.
    pub fn wire_name(self) -> &'static str {
        match self {
            Self::NotReady => "RONA_ACTION_NOT_READY",
            Self::NotRoutable => "RONA_ACTION_NOT_ROUTABLE",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LogoutAction {
    /// The agent's tasks close with AGENT_LOGOUT.
    Close,
    /// The agent's tasks go back to their queues, ahead of all.
    Requeue,
}

impl LogoutAction {
    pub const ALL: [LogoutAction; 2] = [Self::Close, Self::Requeue];

    /// The name of the contract's `LogoutAction` value, as messages show it.
    pub fn wire_name(self) -> &'static str {
        match self {
            Self::Close => "LOGOUT_ACTION_CLOSE",
            Self::Requeue => "LOGOUT_ACTION_REQUEUE",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MrdConfig {
    pub name: String,
    pub max_tasks: u32,
    /// Whether an agent working a task here may be offered work of other MRDs (see
    /// `cross_mrd`); when false it is offered none until it holds no task here.
    pub interruptible: bool,
    pub offer_timeout_ms: Millis,
    pub wrap_up_timeout_ms: Millis,
    pub rona_action: RonaAction,
    pub logout_action: LogoutAction,
    /// Other MRDs an agent holding a task (or an offer) here is offered nothing on, even when
    /// this MRD is interruptible (see `cross_mrd`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blocks: Vec<String>,
    /// Ordered filters that pick the queue of a task naming none (see `classify`).
    #[serde(default)]
    pub classifiers: Vec<Classifier>,
    /// Where a task no classifier matches goes; empty: the `default` queue.
    #[serde(default)]
    pub unclassified_queue: String,
    /// The priority such a task gets; 0: its own.
    #[serde(default)]
    pub unclassified_priority: u8,
}

impl MrdConfig {
    /// Checks the MRD against `bounds`: its name, max tasks, and both timeouts.
    pub fn validate(&self) -> DomainResult<()> {
        check_id("mrd.name", &self.name)?;
        if !(1..=MAX_TASKS_PER_MRD).contains(&self.max_tasks) {
            return Err(DomainError::invalid(
                "mrd.max_tasks",
                format!("must be 1 to {MAX_TASKS_PER_MRD}, not {}", self.max_tasks),
            ));
        }
        check_duration(
            "mrd.offer_timeout_seconds",
            self.offer_timeout_ms,
            MIN_OFFER_TIMEOUT_MS,
            MAX_OFFER_TIMEOUT_MS,
        )?;
        check_duration(
            "mrd.wrap_up_timeout_seconds",
            self.wrap_up_timeout_ms,
            0,
            MAX_WRAP_UP_TIMEOUT_MS,
        )?;
        check_count("mrd.blocks", self.blocks.len(), MAX_MRD_BLOCKS, "MRDs")?;
        for (index, blocked) in self.blocks.iter().enumerate() {
            let field = "mrd.blocks";
            in_entry(format_args!("entry {index}"), check_id(field, blocked))?;
            if *blocked == self.name {
                return Err(DomainError::invalid(
                    field,
                    format!("entry {index}: an MRD cannot block itself"),
                ));
            }
            if self.blocks[..index].contains(blocked) {
                return Err(DomainError::invalid(
                    field,
                    format!("entry {index}: '{blocked}' is named twice"),
                ));
            }
        }
        super::classify::validate(self)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    pub expression: Expr,
    /// How long a task waits at this step before the search widens to the next; 0 on the last
    /// step means "wait here".
    pub timeout_ms: Millis,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueConfig {
    pub name: String,
    pub mrd: String,
    pub steps: Vec<Step>,
    /// A task still waiting this long after it arrived closes with NO_AGENT_AVAILABLE; 0: never.
    pub task_ttl_ms: Millis,
    /// How many offers a task may let go here, and what then (`attempts`).
    #[serde(default)]
    pub attempts: AttemptPolicy,
    /// The service level target and its window (`service_level`).
    #[serde(default)]
    pub service_level: ServiceLevelTarget,
    /// The codes an agent gives when a task of this queue closes (see `disposition`).
    #[serde(default)]
    pub dispositions: Dispositions,
}

impl QueueConfig {
    pub fn built_in_default(mrd: &str) -> Self {
        Self {
            name: DEFAULT_QUEUE.into(),
            mrd: mrd.into(),
            steps: vec![Step {
                expression: Expr::always(),
                timeout_ms: 0,
            }],
            task_ttl_ms: 0,
            attempts: AttemptPolicy::default(),
            service_level: ServiceLevelTarget::default(),
            dispositions: Dispositions::default(),
        }
    }

    /// Checks the queue against `bounds`: its names, its number of steps, each step's timeout
    /// and the time to live. (Step expressions are checked when parsed.)
    pub fn validate(&self) -> DomainResult<()> {
        check_id("queue.name", &self.name)?;
        check_id("queue.mrd", &self.mrd)?;
        if self.steps.is_empty() || self.steps.len() > MAX_QUEUE_STEPS {
            return Err(DomainError::invalid(
                "queue.steps",
                format!(
                    "must have 1 to {MAX_QUEUE_STEPS} steps, not {}",
                    self.steps.len()
                ),
            ));
        }
        for (index, step) in self.steps.iter().enumerate() {
            in_entry(
                format_args!("step {index}"),
                check_duration(
                    "queue.steps.timeout_seconds",
                    step.timeout_ms,
                    0,
                    MAX_STEP_TIMEOUT_MS,
                ),
            )?;
        }
        check_duration(
            "queue.task_ttl_seconds",
            self.task_ttl_ms,
            0,
            MAX_TASK_TTL_MS,
        )?;
        self.attempts.validate(&self.name)?;
        self.service_level.validate()?;
        self.dispositions.validate()
    }

    pub(in crate::domain::routing) fn key(&self) -> QueueKey {
        QueueKey::new(&self.mrd, &self.name)
    }

    /// When a task that reached `step` at `since` widens to the next step, if it ever does.
    pub fn step_deadline(&self, step: usize, since: Millis) -> Option<Millis> {
        let has_next = step + 1 < self.steps.len();
        let timeout = self.steps.get(step)?.timeout_ms;
        (has_next && timeout > 0).then(|| since.saturating_add(timeout))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReasonCategory {
    NotReady,
    Logout,
}

impl ReasonCategory {
    pub const ALL: [ReasonCategory; 2] = [Self::NotReady, Self::Logout];

    /// The name of the contract's `ReasonCategory` value, as messages show it.
    pub fn wire_name(self) -> &'static str {
        match self {
            Self::NotReady => "REASON_CATEGORY_NOT_READY",
            Self::Logout => "REASON_CATEGORY_LOGOUT",
        }
    }
}

display_wire_name!(RonaAction, LogoutAction, ReasonCategory);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReasonCode {
    pub code: String,
    pub label: String,
    pub category: ReasonCategory,
}

impl ReasonCode {
    pub fn validate(&self) -> DomainResult<()> {
        check_id("reason_code.code", &self.code)?;
        check_name("reason_code.label", &self.label)
    }
}
