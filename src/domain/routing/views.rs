//! Read models for GetAgentState, ListAgentStates and GetQueueStats, and the census the
//! server's metrics show, computed the same way.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Routing;
use super::config::DEFAULT_QUEUE;
use super::index::QueueKey;
use super::model::{AgentState, Task, TaskState};
use super::service_level::ServiceLevel;
use crate::domain::error::{DomainError, DomainResult};
use crate::domain::events::Millis;
use crate::domain::paging::Page;
use crate::domain::principals::Actor;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentMrdView {
    pub mrd: String,
    pub state: AgentState,
    pub reason_code: String,
    pub active_tasks: Vec<String>,
    pub max_tasks: u32,
    pub available_since: Millis,
    /// Who set a LOGOUT that waits for the agent's work to end, if one does.
    pub logout_pending_by: Option<Actor>,
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
    /// Answered within the target's threshold over its window (`service_level`).
    pub service_level: ServiceLevel,
    /// What a task arriving now at the back of the queue would be told it waits.
    pub estimated_wait_ms: Option<Millis>,
}

/// Routing at one instant as the server's metrics show it: the figures of `GetQueueStats` and
/// `ListAgentStates` over every queue and MRD at once, without any agent's or task's id.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Census {
    pub queues: Vec<QueueWaiting>,
    /// Per MRD (every configured one, and any an agent is still logged in to), its logged-in
    /// agents by state; a state nobody is in counts 0.
    pub agents: BTreeMap<String, BTreeMap<AgentState, u32>>,
}

/// One queue's waiting tasks, as `GetQueueStats` counts them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueWaiting {
    pub mrd: String,
    pub queue: String,
    pub waiting: u32,
    pub longest_wait_ms: Millis,
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
                    logout_pending_by: am.pending_logout.as_ref().map(|p| p.by.clone()),
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
        (stats.waiting_by_priority, stats.longest_wait_ms) = self.waiting_in(&key, now);
        stats.service_level = self.service_level(&key, now);
        stats.estimated_wait_ms = self.queue_tail_estimate(&key, now);
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

    /// A queue's waiting tasks per priority, and how long the one waiting longest has waited.
    fn waiting_in(&self, key: &QueueKey, now: Millis) -> (BTreeMap<u8, u32>, Millis) {
        self.waiting
            .tally(key)
            .map_or_else(Default::default, |tally| {
                let longest = tally
                    .oldest_arrival()
                    .map_or(0, |at| now.saturating_sub(at));
                (tally.by_priority.clone(), longest)
            })
    }

    /// Every queue's waiting tasks and every MRD's agents by state, at `now`. Costs a walk of
    /// the logged-in agents, so the server's metrics read it once per scrape.
    pub fn census(&self, now: Millis) -> Census {
        let queues = self
            .queues
            .iter()
            .map(|(key, config)| {
                let (by_priority, longest_wait_ms) = self.waiting_in(key, now);
                QueueWaiting {
                    mrd: config.mrd.clone(),
                    queue: config.name.clone(),
                    waiting: by_priority.values().sum(),
                    longest_wait_ms,
                }
            })
            .collect();
        let zero = || {
            AgentState::ALL
                .into_iter()
                .filter(|s| *s != AgentState::Logout)
                .map(|s| (s, 0))
                .collect::<BTreeMap<_, _>>()
        };
        let mut agents: BTreeMap<String, BTreeMap<AgentState, u32>> =
            self.mrds.keys().map(|mrd| (mrd.clone(), zero())).collect();
        for (mrd, ids) in &self.mrd_agents {
            let counts = agents.entry(mrd.clone()).or_insert_with(zero);
            for agent_id in ids {
                let state = self.agent_state(agent_id, mrd);
                if state != AgentState::Logout {
                    *counts.entry(state).or_default() += 1;
                }
            }
        }
        Census { queues, agents }
    }

    /// Tasks not closed yet, in id order.
    pub fn tasks_open(&self) -> impl Iterator<Item = &Task> {
        self.tasks.values().filter(|t| t.state != TaskState::Closed)
    }
}
