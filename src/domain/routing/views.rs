//! Read models for GetAgentState, ListAgentStates and GetQueueStats.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Routing;
use super::config::DEFAULT_QUEUE;
use super::index::QueueKey;
use super::model::AgentState;
use crate::domain::error::{DomainError, DomainResult};
use crate::domain::events::Millis;
use crate::domain::paging::Page;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentMrdView {
    pub mrd: String,
    pub state: AgentState,
    pub reason_code: String,
    pub active_tasks: Vec<String>,
    pub max_tasks: u32,
    pub available_since: Millis,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentStatusView {
    pub agent_id: String,
    pub routable: bool,
    pub pending_offer: Option<String>,
    pub extension: String,
    pub destination: String,
    pub mrds: Vec<AgentMrdView>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct QueueStats {
    pub mrd: String,
    pub queue: String,
    /// Waiting tasks per priority (11: requeued ahead of all).
    pub waiting_by_priority: BTreeMap<u8, u32>,
    pub longest_wait_ms: Millis,
    pub agents_ready: u32,
    pub agents_active: u32,
    pub agents_busy: u32,
    pub agents_not_ready: u32,
    pub agents_reserved: u32,
}

impl Routing {
    pub fn agent_status(&self, agent_id: &str) -> DomainResult<AgentStatusView> {
        let agent = self.agent(agent_id)?;
        Ok(AgentStatusView {
            agent_id: agent_id.to_owned(),
            routable: agent.routable,
            pending_offer: agent.offer.clone(),
            extension: agent.extension.clone(),
            destination: agent.destination.clone(),
            mrds: agent
                .mrds
                .iter()
                .map(|(mrd, am)| AgentMrdView {
                    mrd: mrd.clone(),
                    state: self.agent_state(agent_id, mrd),
                    reason_code: am.reason_code.clone(),
                    active_tasks: am.tasks.iter().cloned().collect(),
                    max_tasks: self.max_tasks(agent, mrd),
                    available_since: am.available_since,
                })
                .collect(),
        })
    }

    /// A page of agents' statuses in id order, through the ordered ids kept for this.
    pub fn agent_statuses_after(&self, after: Option<&str>, limit: usize) -> Page<AgentStatusView> {
        let page = Page::of_set(&self.agent_ids, after, limit, String::clone);
        Page {
            items: page
                .items
                .iter()
                .filter_map(|id| self.agent_status(id).ok())
                .collect(),
            next_after: page.next_after,
        }
    }

    /// Queue statistics: waiting tasks, and the MRD's agents who match any step of the queue.
    pub fn queue_stats(&self, mrd: &str, queue: &str, now: Millis) -> DomainResult<QueueStats> {
        let queue = if queue.is_empty() {
            DEFAULT_QUEUE
        } else {
            queue
        };
        let key = QueueKey::new(mrd, queue);
        let config = self
            .queues
            .get(&key)
            .ok_or_else(|| DomainError::not_found("queue", format!("{mrd}/{queue}")))?;
        let mut stats = QueueStats {
            mrd: mrd.to_owned(),
            queue: queue.to_owned(),
            ..QueueStats::default()
        };
        if let Some(tally) = self.waiting.tally(&key) {
            stats.waiting_by_priority = tally.by_priority.clone();
            stats.longest_wait_ms = tally
                .oldest_arrival()
                .map_or(0, |at| now.saturating_sub(at));
        }
        for agent_id in self.mrd_agents.get(mrd).into_iter().flatten() {
            let Some(agent) = self.agents.get(agent_id) else {
                continue;
            };
            if self.first_matching_step(agent, config).is_none() {
                continue;
            }
            match self.agent_state(agent_id, mrd) {
                AgentState::Ready => stats.agents_ready += 1,
                AgentState::Active | AgentState::WorkReady => stats.agents_active += 1,
                AgentState::Busy => stats.agents_busy += 1,
                AgentState::Reserved => stats.agents_reserved += 1,
                AgentState::NotReady | AgentState::PendingNotReady => stats.agents_not_ready += 1,
                AgentState::Logout => {}
            }
        }
        Ok(stats)
    }
}
