//! Selection: whether an agent can take work now, and the best agent for a task or the best
//! task for an agent. Every choice reads the indexes (`index.rs`); none scans all agents or
//! all tasks.

use super::config::QueueConfig;
use super::index::{AgentKey, TaskKey};
use super::model::{RoutingAgent, Selection, Task};
use super::{Routing, load};

impl Routing {
    /// The agent's key in the pools of `mrd` if it can be offered a task there now.
    pub(super) fn eligible(&self, agent_id: &str, mrd: &str) -> Option<AgentKey> {
        let agent = self.agents.get(agent_id)?;
        let am = agent.mrds.get(mrd)?;
        let can_take = am.ready
            && !am.pending_not_ready
            && agent.routable
            && agent.offer.is_none()
            && load(am) < self.max_tasks(agent, mrd)
            && self.open_on(agent, mrd);
        can_take.then(|| AgentKey {
            load: load(am),
            available_since: am.available_since,
            agent_id: agent_id.to_owned(),
        })
    }

    /// The lowest step of `queue` that looks only at agents and whose expression the agent's
    /// attributes match.
    pub(super) fn first_matching_step(
        &self,
        agent: &RoutingAgent,
        queue: &QueueConfig,
    ) -> Option<usize> {
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

    pub(super) fn may_offer(&self, agent_id: &str, task: &Task) -> bool {
        !task.declined_by.contains(agent_id) && !self.on_conversation(agent_id, task)
    }

    /// The best eligible agent for a waiting task, and why.
    pub(super) fn best_agent_for(&self, task: &Task) -> Option<(AgentKey, Selection)> {
        if let Some(preferred) = self.best_preferred_agent(task) {
            return Some(preferred);
        }
        if task.preferred_deadline.is_some() {
            return None;
        }
        let queue = task.spec.queue_key();
        let config = self.queues.get(&queue)?;
        let mut best: Option<(AgentKey, Selection)> = None;
        for (step, s) in config.steps.iter().enumerate().take(task.step + 1) {
            // A task lacking an attribute the step names has no pool there.
            let Some(binding) = s.expression.binding(&task.spec.attributes) else {
                continue;
            };
            let first = self
                .pools
                .step(&queue, step, &binding)
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
    pub(super) fn best_task_for(&self, agent_id: &str, mrd: &str) -> Option<(TaskKey, Selection)> {
        let agent = self.agents.get(agent_id)?;
        let acceptable = |key: &TaskKey| {
            self.tasks
                .get(&key.task_id)
                .is_some_and(|t| t.spec.mrd == mrd && self.may_offer(agent_id, t))
        };
        let mut best = self
            .waiting
            .preferring(agent_id)
            .find(|k| acceptable(k))
            .and_then(|k| {
                let selection = self.tasks.get(&k.task_id)?.spec.preference_of(agent_id)?;
                Some((k.clone(), selection))
            });
        for (queue_key, queue) in self.queues_of(mrd) {
            // Every task that reached the first agent-only step the agent matches is a
            // candidate; below it, only task-aware steps can add some.
            let agent_step = self.first_matching_step(agent, queue);
            let below = agent_step.unwrap_or(queue.steps.len());
            for (step, s) in queue.steps.iter().enumerate().take(below) {
                if s.expression.task_refs().is_empty() {
                    continue;
                }
                for (binding, tasks) in self.waiting.bound(queue_key, step) {
                    if !s.expression.matches_with(&agent.attributes, binding) {
                        continue;
                    }
                    if let Some(key) = tasks.iter().find(|k| acceptable(k))
                        && best.as_ref().is_none_or(|(b, _)| key < b)
                    {
                        best = Some((key.clone(), Selection::Step { index: step }));
                    }
                }
            }
            let Some(step) = agent_step else {
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
}
