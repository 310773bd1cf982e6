//! Keeping routing's indexes and timers in step with the state the fold (`apply`) changed: a
//! task placed in (or taken out of) its queue's waiting sets and binding pools, its timers
//! re-derived, an agent's pools recomputed.

use super::expr::Binding;
use super::index::{PoolKey, QueueKey, TaskKey};
use super::model::TaskState;
use super::{Routing, TimerKind};

impl Routing {
    /// Puts a queued task in the waiting index at its widest step and marks it for a search.
    pub(super) fn place_waiting(&mut self, task_id: &str) {
        let Some(task) = self.tasks.get(task_id) else {
            return;
        };
        if task.state != TaskState::Queued {
            self.waiting.remove(task_id);
            self.rearm(task_id);
            return;
        }
        let key = TaskKey::new(task.priority, task.seq, task_id);
        let preferred = task.spec.preferred().cloned().collect();
        // While only its preferred agents may take it, no step search should meet it: no
        // level, no bindings.
        let level = task.preferred_deadline.is_none().then_some(task.step);
        let queue = task.spec.queue_key();
        let bindings: Vec<(usize, Binding)> = self
            .queues
            .get(&queue)
            .into_iter()
            .flat_map(|q| q.steps.iter().enumerate().take(level.map_or(0, |l| l + 1)))
            .filter(|(_, s)| !s.expression.task_refs().is_empty())
            .filter_map(|(i, s)| Some((i, s.expression.binding(&task.spec.attributes)?)))
            .collect();
        let queued_at = task.queued_at;
        for (step, binding) in &bindings {
            self.add_binding_pool(&queue, *step, binding);
        }
        self.waiting
            .insert(queue, level, key.clone(), preferred, queued_at, bindings);
        self.dirty_tasks.insert(key);
        self.rearm(task_id);
    }

    /// Drops the pools of bindings no waiting task uses any more, after each event: a
    /// task-aware step over many values (order numbers, say) keeps only the pools its waiting
    /// tasks need, so memory follows the backlog, not the history.
    pub(super) fn drop_vacated_bindings(&mut self) {
        for (queue, step, binding) in self.waiting.take_vacated() {
            if !self.waiting.is_bound(&queue, step, &binding) {
                self.pools.drop_binding(&queue, step, &binding);
            }
        }
    }

    /// Builds the pool of a task-aware step for a binding first seen: one pass over the MRD's
    /// logged-in agents (see `index`).
    pub(super) fn add_binding_pool(&mut self, queue: &QueueKey, step: usize, binding: &Binding) {
        if !self.pools.add_binding(queue, step, binding) {
            return;
        }
        let Some(expression) = self.queues.get(queue).and_then(|q| q.steps.get(step)) else {
            return;
        };
        let pool = (queue.clone(), step, binding.clone());
        let mut joining = Vec::new();
        for agent_id in self.mrd_agents.get(queue.mrd()).into_iter().flatten() {
            if let Some(key) = self.eligible(agent_id, queue.mrd())
                && expression
                    .expression
                    .matches_with(&self.agents[agent_id].attributes, binding)
            {
                joining.push(key);
            }
        }
        for key in joining {
            self.pools.insert(&key, vec![pool.clone()]);
        }
    }

    /// After a queue changed: its waiting tasks are placed again, with steps that still exist.
    pub(super) fn requeue_waiting_in(&mut self, queue: &QueueKey) {
        let steps = self.queues.get(queue).map_or(1, |q| q.steps.len());
        let waiting: Vec<String> = self
            .waiting
            .in_queue(queue)
            .map(|k| k.task_id.clone())
            .collect();
        for task_id in waiting {
            if let Some(task) = self.tasks.get_mut(&task_id) {
                task.step = task.step.min(steps - 1);
            }
            self.place_waiting(&task_id);
        }
    }

    /// Re-derives the timers of one task from its state.
    pub(super) fn rearm(&mut self, task_id: &str) {
        for (at, kind) in self.task_timers.remove(task_id).unwrap_or_default() {
            self.timers.remove(&(at, kind, task_id.to_owned()));
        }
        let Some(task) = self.tasks.get(task_id) else {
            return;
        };
        let mut timers = Vec::new();
        match task.state {
            TaskState::Queued => {
                timers.extend(
                    task.preferred_deadline
                        .map(|at| (at, TimerKind::PreferenceEnds)),
                );
                timers.extend(task.step_deadline.map(|at| (at, TimerKind::StepWidens)));
                timers.extend(task.ttl_deadline.map(|at| (at, TimerKind::TimeToLive)));
            }
            TaskState::Offered | TaskState::Active | TaskState::Paused => {
                timers.extend(
                    task.preferred_deadline
                        .map(|at| (at, TimerKind::PreferenceEnds)),
                );
                // A routed offer, or an offered transfer of an active task.
                timers.extend(
                    task.offer
                        .as_ref()
                        .map(|(_, at)| (*at, TimerKind::OfferExpires)),
                );
            }
            TaskState::WrappingUp => {
                timers.extend(task.wrap_deadline.map(|at| (at, TimerKind::WrapUpEnds)));
            }
            _ => {}
        }
        for (at, kind) in &timers {
            self.timers.insert((*at, *kind, task_id.to_owned()));
        }
        if !timers.is_empty() {
            self.task_timers.insert(task_id.to_owned(), timers);
        }
    }

    /// An agent's eligibility may have changed: update the pools and note what to look at.
    pub(super) fn touch_agent(&mut self, agent_id: &str) {
        if let Some(agent) = self.agents.get(agent_id) {
            for mrd in agent.mrds.keys() {
                self.touched.insert((agent_id.to_owned(), mrd.clone()));
            }
        }
        self.reindex_agent(agent_id);
    }

    pub(super) fn reindex_agent(&mut self, agent_id: &str) {
        self.pools.remove(agent_id);
        let Some(agent) = self.agents.get(agent_id) else {
            return;
        };
        let mut placements = Vec::new();
        for mrd in agent.mrds.keys() {
            let Some(key) = self.eligible(agent_id, mrd) else {
                continue;
            };
            let mut pools: Vec<PoolKey> = Vec::new();
            for (qk, queue) in self.queues_of(mrd) {
                for (i, s) in queue.steps.iter().enumerate() {
                    if s.expression.task_refs().is_empty() {
                        if s.expression.matches(&agent.attributes) {
                            pools.push((qk.clone(), i, Binding::default()));
                        }
                        continue;
                    }
                    for binding in self.pools.bindings(qk, i) {
                        if s.expression.matches_with(&agent.attributes, binding) {
                            pools.push((qk.clone(), i, binding.clone()));
                        }
                    }
                }
            }
            placements.push((mrd.clone(), key, pools));
        }
        for (mrd, key, pools) in placements {
            self.pools.insert(&key, pools);
            self.dirty_agents.insert((agent_id.to_owned(), mrd));
        }
    }

    pub(super) fn reindex_mrd(&mut self, mrd: &str) {
        let agents: Vec<String> = self
            .mrd_agents
            .get(mrd)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default();
        for agent in agents {
            self.reindex_agent(&agent);
        }
    }
}
