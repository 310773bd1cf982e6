//! Preferred agents: a task may name agents to be offered it first, best first. The task's last
//! agent (`last_agent_id`, the sticky agent) is one of them, ahead of the rest.
//!
//! With `preferred_timeout_ms` the task waits for its preferred agents alone for that long (its
//! queue's steps start counting when the window ends, through the journaled
//! `TaskPreferenceEnded`); without, the queue's steps apply at once. Either way, whenever an
//! offer is made, the first eligible preferred agent wins over the queue's steps.
//!
//! The list is short (`MAX_PREFERRED_AGENTS`) and checked agent by agent; from the agent's side,
//! the waiting index keeps the tasks that prefer each agent. While the window is open the task
//! is not in its queue's levels at all, so step searches never walk past it.

use super::Routing;
use super::index::AgentKey;
use super::model::{Selection, Task, TaskSpec};
use crate::domain::bounds::{
    MAX_PREFERRED_AGENTS, MAX_PREFERRED_TIMEOUT_MS, check_count, check_duration, check_id, in_entry,
};
use crate::domain::error::{DomainError, DomainResult};
use crate::domain::events::Millis;

impl TaskSpec {
    /// The agents to try first, in order: the last agent, then the preferred ones.
    pub fn preferred(&self) -> impl Iterator<Item = &String> {
        let last = (!self.last_agent_id.is_empty()).then_some(&self.last_agent_id);
        last.into_iter().chain(
            self.preferred_agents
                .iter()
                .filter(move |a| **a != self.last_agent_id),
        )
    }

    /// Why `agent_id` would be chosen as a preferred agent of this task, if it is one.
    pub(super) fn preference_of(&self, agent_id: &str) -> Option<Selection> {
        if self.last_agent_id == agent_id {
            return Some(Selection::Sticky);
        }
        let index = self.preferred_agents.iter().position(|a| a == agent_id)?;
        Some(Selection::Preferred { index })
    }

    /// When the preferred-only window of a task that arrives at `now` closes, if it has one.
    pub(super) fn preferred_deadline(&self, now: Millis) -> Option<Millis> {
        (self.preferred_timeout_ms > 0).then(|| now.saturating_add(self.preferred_timeout_ms))
    }

    pub(super) fn validate_preferred(&self) -> DomainResult<()> {
        let field = "preferred_agent_ids";
        check_count(
            field,
            self.preferred_agents.len(),
            MAX_PREFERRED_AGENTS,
            "agents",
        )?;
        for (index, agent) in self.preferred_agents.iter().enumerate() {
            in_entry(format_args!("entry {index}"), check_id(field, agent))?;
            if self.preferred_agents[..index].contains(agent) {
                return Err(DomainError::invalid(
                    field,
                    format!("entry {index}: '{agent}' is named twice"),
                ));
            }
        }
        check_duration(
            "preferred_timeout_seconds",
            self.preferred_timeout_ms,
            0,
            MAX_PREFERRED_TIMEOUT_MS,
        )?;
        if self.preferred_timeout_ms > 0 && self.preferred().next().is_none() {
            return Err(DomainError::invalid(
                "preferred_timeout_seconds",
                "needs preferred_agent_ids or last_agent_id to wait for",
            ));
        }
        Ok(())
    }
}

impl Routing {
    /// The first preferred agent of the task that is eligible and may be offered it.
    pub(super) fn best_preferred_agent(&self, task: &Task) -> Option<(AgentKey, Selection)> {
        task.spec.preferred().find_map(|agent_id| {
            let key = self.eligible(agent_id, &task.spec.mrd)?;
            let selection = task.spec.preference_of(agent_id)?;
            self.may_offer(agent_id, task).then_some((key, selection))
        })
    }
}
