//! The fold for routing: how each event changes routing's state and its indexes.

use super::Routing;
use super::config::{DEFAULT_QUEUE, QueueConfig};
use super::index::QueueKey;
use super::model::{AgentMrd, RoutingAgent, Task, TaskSpec, TaskState};
use crate::domain::events::Event;

impl Routing {
    pub fn apply(&mut self, event: &Event) {
        self.fold(event);
        self.drop_vacated_bindings();
    }

    fn fold(&mut self, event: &Event) {
        match event {
            Event::AgentUpserted {
                agent_id,
                attributes,
                mrd_max_tasks,
                ..
            } => {
                self.agent_ids.insert(agent_id.clone());
                let agent = self
                    .agents
                    .entry(agent_id.clone())
                    .or_insert_with(|| RoutingAgent::new(Default::default(), Default::default()));
                agent.attributes.clone_from(attributes);
                agent.max_tasks.clone_from(mrd_max_tasks);
                self.reindex_agent(agent_id);
            }
            Event::AgentDeleted { agent_id } => {
                self.pools.remove(agent_id);
                self.agents.remove(agent_id);
                self.agent_ids.remove(agent_id);
            }
            Event::MrdUpserted { mrd } => {
                self.queues
                    .entry(QueueKey::new(&mrd.name, DEFAULT_QUEUE))
                    .or_insert_with(|| QueueConfig::built_in_default(&mrd.name));
                self.mrds.insert(mrd.name.clone(), mrd.clone());
                self.reindex_mrd(&mrd.name);
            }
            Event::MrdDeleted { name } => {
                self.mrds.remove(name);
                let keys: Vec<QueueKey> = self.queues_of(name).map(|(k, _)| k.clone()).collect();
                for key in keys {
                    self.pools.forget_queue(&key);
                    self.queues.remove(&key);
                }
                self.forget_windows();
            }
            Event::QueueUpserted { queue } => {
                let key = queue.key();
                self.queues.insert(key.clone(), queue.clone());
                self.pools.forget_queue(&key);
                self.requeue_waiting_in(&key);
                self.forget_windows();
                self.reindex_mrd(&queue.mrd);
            }
            Event::QueueDeleted { mrd, name } => {
                let key = QueueKey::new(mrd, name);
                self.pools.forget_queue(&key);
                if name == DEFAULT_QUEUE {
                    self.queues
                        .insert(key.clone(), QueueConfig::built_in_default(mrd));
                    self.requeue_waiting_in(&key);
                } else {
                    self.queues.remove(&key);
                }
                self.forget_windows();
                self.reindex_mrd(mrd);
            }
            Event::ReasonCodeUpserted { reason } => {
                self.reason_codes
                    .insert(reason.code.clone(), reason.clone());
            }
            Event::AgentConnected {
                agent_id,
                extension,
                destination,
            } => {
                if let Some(agent) = self.agents.get_mut(agent_id) {
                    agent.extension.clone_from(extension);
                    agent.destination.clone_from(destination);
                }
            }
            Event::AgentLoggedIn { agent_id, mrd, at } => {
                if let Some(agent) = self.agents.get_mut(agent_id) {
                    agent.mrds.insert(
                        mrd.clone(),
                        AgentMrd {
                            available_since: *at,
                            ..AgentMrd::default()
                        },
                    );
                    self.mrd_agents
                        .entry(mrd.clone())
                        .or_default()
                        .insert(agent_id.clone());
                }
                self.touch_agent(agent_id);
            }
            Event::AgentReady { agent_id, mrd, at } => {
                let mut became_ready = true;
                if let Some(am) = self.agent_mrd(agent_id, mrd) {
                    became_ready = !am.ready || am.pending_not_ready;
                    if became_ready {
                        am.available_since = *at;
                    }
                    am.ready = true;
                    am.pending_not_ready = false;
                    am.pending_logout = None;
                    am.reason_code.clear();
                }
                // READY again while READY changes neither eligibility nor place in line, so
                // there is nothing to reindex or route.
                if became_ready {
                    self.touch_agent(agent_id);
                }
            }
            Event::AgentNotReady {
                agent_id,
                mrd,
                reason_code,
                ..
            } => {
                if let Some(am) = self.agent_mrd(agent_id, mrd) {
                    am.reason_code.clone_from(reason_code);
                    am.pending_not_ready = true;
                }
                self.apply_pending_not_ready(agent_id, mrd);
                self.touch_agent(agent_id);
            }
            Event::AgentLoggedOut { agent_id, mrd, .. } => {
                if let Some(agent) = self.agents.get_mut(agent_id) {
                    agent.mrds.remove(mrd);
                }
                if let Some(set) = self.mrd_agents.get_mut(mrd) {
                    set.remove(agent_id);
                }
                self.touched.insert((agent_id.clone(), mrd.clone()));
                self.touch_agent(agent_id);
            }
            Event::AgentRoutable { agent_id, routable } => {
                if let Some(agent) = self.agents.get_mut(agent_id) {
                    agent.routable = *routable;
                }
                self.touch_agent(agent_id);
            }
            Event::AgentNextStateSet {
                agent_id,
                mrd,
                state,
                reason_code,
                by,
                ..
            } => self.apply_next_state(agent_id, mrd, *state, reason_code, by),
            Event::AgentStateChanged {
                agent_id,
                mrd,
                state,
                reason_code,
                routable,
                active_tasks,
            } => {
                let key = (agent_id.clone(), mrd.clone());
                if *state == super::model::AgentState::Logout {
                    self.announced.remove(&key);
                } else {
                    self.announced
                        .insert(key, (*state, reason_code.clone(), *routable, *active_tasks));
                }
            }
            Event::TaskQueued {
                spec,
                priority,
                seq,
                at,
                step_deadline,
                ttl_deadline,
                queued_at,
                preferred_deadline,
                ..
            } => {
                self.next_seq = self.next_seq.max(seq + 1);
                if let Some(earlier) = self.tasks.get_mut(&spec.callback_for) {
                    earlier.callback_task_id = Some(spec.task_id.clone());
                }
                self.tasks.insert(
                    spec.task_id.clone(),
                    Task {
                        spec: TaskSpec::clone(spec),
                        state: TaskState::Queued,
                        priority: *priority,
                        close_reason: None,
                        created_at: *at,
                        queued_at: queued_at.unwrap_or(*at),
                        seq: *seq,
                        step: 0,
                        step_deadline: *step_deadline,
                        ttl_deadline: *ttl_deadline,
                        offer: None,
                        owner: None,
                        participants: Default::default(),
                        wrap_deadline: None,
                        declined_by: Default::default(),
                        updated_at: *at,
                        attempts: 0,
                        answered_at: None,
                        callback_task_id: None,
                        preferred_deadline: *preferred_deadline,
                        arrival_seq: *seq,
                        disposition: Default::default(),
                    },
                );
                self.place_waiting(&spec.task_id);
            }
            Event::TaskPreferenceEnded { task_id, .. } => {
                if let Some(task) = self.tasks.get_mut(task_id) {
                    task.preferred_deadline = None;
                }
                self.place_waiting(task_id);
            }
            Event::TaskTransferOffered { .. }
            | Event::TaskTransferDeclined { .. }
            | Event::TaskTransferredToQueue { .. } => self.apply_transfer(event),
            Event::TaskAgentSelected {
                task_id,
                agent_id,
                offer_deadline,
                at,
                ..
            } => {
                self.waiting.remove(task_id);
                if let Some(task) = self.tasks.get_mut(task_id) {
                    task.state = TaskState::Offered;
                    task.offer = Some((agent_id.clone(), *offer_deadline));
                    task.updated_at = *at;
                }
                if let Some(agent) = self.agents.get_mut(agent_id) {
                    agent.offer = Some(task_id.clone());
                }
                self.rearm(task_id);
                self.touch_agent(agent_id);
            }
            Event::TaskAccepted {
                task_id,
                agent_id,
                at,
                ..
            } => {
                let mut mrd = None;
                if let Some(task) = self.tasks.get_mut(task_id) {
                    task.state = TaskState::Active;
                    task.offer = None;
                    task.preferred_deadline = None;
                    task.owner = Some(agent_id.clone());
                    task.updated_at = *at;
                    mrd = Some(task.spec.mrd.clone());
                }
                if let Some(agent) = self.agents.get_mut(agent_id) {
                    agent.offer = None;
                }
                self.note_outcome(task_id, *at, true);
                if let Some(mrd) = mrd
                    && let Some(am) = self.agent_mrd(agent_id, &mrd)
                {
                    am.tasks.insert(task_id.clone());
                }
                self.rearm(task_id);
                self.touch_agent(agent_id);
            }
            Event::TaskRequeued {
                task_id,
                agent_id,
                reason,
                priority,
                seq,
                at,
                step_deadline,
                moved_to,
                ..
            } => {
                self.next_seq = self.next_seq.max(seq + 1);
                let released = self.release_agents(task_id, *at, true);
                let mut unoffered = None;
                if let Some(task) = self.tasks.get_mut(task_id) {
                    if let Some((offered_to, _)) = task.offer.take()
                        && let Some(agent) = self.agents.get_mut(&offered_to)
                        && agent.offer.as_deref() == Some(task_id)
                    {
                        agent.offer = None;
                        unoffered = Some((offered_to, task.spec.mrd.clone()));
                    }
                    if *reason != super::model::RequeueReason::AgentLogout && !agent_id.is_empty() {
                        task.declined_by.insert(agent_id.clone());
                    }
                    if reason.is_attempt() {
                        task.attempts += 1;
                    }
                    if let Some(moved) = moved_to {
                        task.spec.queue.clone_from(&moved.queue);
                        task.step = 0;
                        task.ttl_deadline = moved.ttl_deadline;
                        // Attempts count per queue: the new queue's bound starts afresh.
                        task.attempts = 0;
                    }
                    // A waiting task a supervisor moved keeps its arrival: its wait goes on.
                    if task.state != TaskState::Queued {
                        task.queued_at = *at;
                    }
                    task.state = TaskState::Queued;
                    task.priority = *priority;
                    task.seq = *seq;
                    task.step_deadline = *step_deadline;
                    task.updated_at = *at;
                }
                if let Some((offered_to, mrd)) = unoffered {
                    self.apply_pending_not_ready(&offered_to, &mrd);
                    // The recipient of an offered transfer is not the agent requeuing it: it
                    // is free again and must be back in its pools.
                    self.touch_agent(&offered_to);
                }
                self.place_waiting(task_id);
                self.touch_agent(agent_id);
                for agent in released {
                    self.touch_agent(&agent);
                }
            }
            Event::TaskStepWidened {
                task_id,
                step,
                step_deadline,
                at,
                ..
            } => {
                if let Some(task) = self.tasks.get_mut(task_id) {
                    task.step = *step;
                    task.step_deadline = *step_deadline;
                    task.updated_at = *at;
                }
                self.place_waiting(task_id);
            }
            Event::TaskStateChanged {
                task_id,
                state,
                close_reason,
                wrap_deadline,
                at,
                disposition,
                ..
            } => {
                let mut released = Vec::new();
                if *state == TaskState::Closed {
                    self.waiting.remove(task_id);
                    released = self.release_agents(task_id, *at, false);
                }
                // A task that closes or goes to wrap-up withdraws its pending offer, a routed
                // one or an offered transfer.
                if matches!(state, TaskState::Closed | TaskState::WrappingUp)
                    && let Some(task) = self.tasks.get_mut(task_id)
                    && let Some((offered_to, _)) = task.offer.take()
                    && let Some(agent) = self.agents.get_mut(&offered_to)
                {
                    agent.offer = None;
                    let mrd = task.spec.mrd.clone();
                    self.apply_pending_not_ready(&offered_to, &mrd);
                    released.push(offered_to);
                }
                if let Some(task) = self.tasks.get(task_id)
                    && task.state == TaskState::Closed
                {
                    self.closed.remove(&(task.updated_at, task_id.clone()));
                }
                if *state == TaskState::Closed {
                    self.note_closed(task_id, *at);
                    self.note_outcome(task_id, *at, false);
                }
                if let Some(task) = self.tasks.get_mut(task_id) {
                    task.state = *state;
                    task.close_reason = *close_reason;
                    task.wrap_deadline = *wrap_deadline;
                    task.updated_at = *at;
                    task.disposition.clone_from(disposition);
                    released.extend(task.agents().cloned());
                }
                self.rearm(task_id);
                for agent in released {
                    self.touch_agent(&agent);
                }
            }
            Event::TaskOverflowed {
                task_id,
                queue,
                step_deadline,
                ttl_deadline,
                at,
                ..
            } => self.apply_overflow(task_id, queue, *step_deadline, *ttl_deadline, *at),
            Event::TaskAgentTransferred {
                task_id,
                owner_agent_id,
                recipient_agent_id,
                at,
                ..
            } => {
                let Some(task) = self.tasks.get_mut(task_id) else {
                    return;
                };
                task.owner = Some(recipient_agent_id.clone());
                task.updated_at = *at;
                let mrd = task.spec.mrd.clone();
                self.end_transfer_offer(task_id, recipient_agent_id);
                self.leave(owner_agent_id, &mrd, task_id, *at);
                if let Some(am) = self.agent_mrd(recipient_agent_id, &mrd) {
                    am.tasks.insert(task_id.clone());
                }
                self.touch_agent(owner_agent_id);
                self.touch_agent(recipient_agent_id);
            }
            Event::TaskConferenced {
                task_id,
                participant_agent_id,
                at,
                ..
            } => {
                let Some(task) = self.tasks.get_mut(task_id) else {
                    return;
                };
                task.participants.insert(participant_agent_id.clone());
                task.updated_at = *at;
                let mrd = task.spec.mrd.clone();
                if let Some(am) = self.agent_mrd(participant_agent_id, &mrd) {
                    am.tasks.insert(task_id.clone());
                }
                self.touch_agent(participant_agent_id);
            }
            Event::TaskParticipantLeft {
                task_id,
                agent_id,
                at,
                ..
            } => {
                let Some(task) = self.tasks.get_mut(task_id) else {
                    return;
                };
                task.participants.remove(agent_id);
                let mrd = task.spec.mrd.clone();
                self.leave(agent_id, &mrd, task_id, *at);
                self.touch_agent(agent_id);
            }
            _ => {}
        }
    }

    fn agent_mrd(&mut self, agent_id: &str, mrd: &str) -> Option<&mut AgentMrd> {
        self.agents.get_mut(agent_id)?.mrds.get_mut(mrd)
    }

    /// Takes a task off an agent's load; a pending NOT_READY may take effect.
    fn leave(&mut self, agent_id: &str, mrd: &str, task_id: &str, at: u64) {
        if let Some(am) = self.agent_mrd(agent_id, mrd)
            && am.tasks.remove(task_id)
        {
            am.available_since = at;
            self.apply_pending_not_ready(agent_id, mrd);
        }
    }

    /// A pending NOT_READY takes effect once the agent has neither a task nor a ringing offer
    /// on the MRD.
    pub(super) fn apply_pending_not_ready(&mut self, agent_id: &str, mrd: &str) {
        let Some(agent) = self.agents.get(agent_id) else {
            return;
        };
        let free = agent
            .mrds
            .get(mrd)
            .is_some_and(|am| am.pending_not_ready && am.tasks.is_empty())
            && !self.offer_pending_on(agent, mrd);
        if free && let Some(am) = self.agent_mrd(agent_id, mrd) {
            am.ready = false;
            am.pending_not_ready = false;
        }
    }

    /// Frees everyone on a task (owner and participants) and returns who they were. A closed
    /// task keeps their names for the record; a requeued one forgets them.
    pub(super) fn release_agents(&mut self, task_id: &str, at: u64, forget: bool) -> Vec<String> {
        let Some(task) = self.tasks.get_mut(task_id) else {
            return Vec::new();
        };
        let mrd = task.spec.mrd.clone();
        let agents: Vec<String> = task.agents().cloned().collect();
        if forget {
            task.owner = None;
            task.participants.clear();
        }
        for agent in &agents {
            self.leave(agent, &mrd, task_id, at);
        }
        agents
    }
}
