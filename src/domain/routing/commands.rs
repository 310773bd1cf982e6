//! Commands: what operators, channels and agents ask of routing. Each one checks its request
//! against the current state, then emits the events that carry it out.

use super::config::{
    DEFAULT_QUEUE, LogoutAction, MrdConfig, QueueConfig, ReasonCategory, ReasonCode,
};
use super::index::{QueueKey, TaskKey};
use super::model::{CloseReason, RequestedAgentState, RequeueReason, Task, TaskSpec, TaskState};
use super::{Routing, Sink};
use crate::domain::error::{DomainError, DomainResult};
use crate::domain::events::{Event, Millis};

impl Routing {
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
        let overflow = &queue.attempts.overflow_queue;
        if !overflow.is_empty()
            && !self
                .queues
                .contains_key(&QueueKey::new(&queue.mrd, overflow))
        {
            return Err(DomainError::invalid(
                "queue.overflow_queue",
                format!("mrd '{}' has no queue '{overflow}'", queue.mrd),
            ));
        }
        self.emit(Event::QueueUpserted { queue }, sink);
        Ok(())
    }

    pub fn delete_queue(&mut self, mrd: &str, name: &str, sink: &mut Sink) -> DomainResult<()> {
        let key = QueueKey::new(mrd, name);
        if !self.queues.contains_key(&key) {
            return Err(DomainError::not_found("queue", format!("{mrd}/{name}")));
        }
        if name != DEFAULT_QUEUE && self.waiting.tally(&key).is_some() {
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
    ///
    /// NOT_READY is never dropped. An agent with nothing on the MRD goes NOT_READY at once. One
    /// with tasks, or with an offer ringing there, is offered nothing more and goes NOT_READY,
    /// with the reason code it gave, as soon as it has neither: when its last task ends, or
    /// when the ringing offer is rejected, times out (RONA) or is withdrawn; an accepted offer
    /// is one more task to finish first (PENDING_NOT_READY). While the offer rings the agent
    /// shows RESERVED, with the reason code it gave. RONA does not overwrite that reason: the
    /// agent asked for its break before the offer timed out. READY before then withdraws the
    /// request. The rule lives in the fold (`apply`), on the journaled `AgentNotReady`, so a
    /// replay or a snapshot restores it as it was.
    pub fn change_agent_state(
        &mut self,
        agent_id: &str,
        requested: RequestedAgentState,
        mrd: &str,
        reason_code: &str,
        now: Millis,
        sink: &mut Sink,
    ) -> DomainResult<()> {
        let mrds = self.agent_request_mrds(agent_id, requested, mrd, reason_code)?;
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

    /// Checks what an agent (or a supervisor for it) asks for: the reason code's category, and
    /// that the agent is logged in (for LOGIN: may work) on the MRDs; answers those MRDs.
    pub(super) fn agent_request_mrds(
        &self,
        agent_id: &str,
        requested: RequestedAgentState,
        mrd: &str,
        reason_code: &str,
    ) -> DomainResult<Vec<String>> {
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
                        format!(
                            "'{reason_code}' is a {} reason code; {requested} takes a {category} one",
                            rc.category
                        ),
                    ));
                }
                (Some(_), None) => {
                    return Err(DomainError::invalid(
                        "reason_code",
                        format!(
                            "only {} and {} take a reason code, not {requested}",
                            RequestedAgentState::NotReady,
                            RequestedAgentState::Logout
                        ),
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
        Ok(mrds)
    }

    /// Logout: the agent's pending offer is rerouted, its tasks close or requeue per the MRD,
    /// it leaves conferences, then it is out.
    pub(super) fn log_out(
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
            self.let_offer_go(&task_id, agent_id, RequeueReason::AgentLogout, now, sink);
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
        spec.validate()?;
        self.mrd("mrd", &spec.mrd)?;
        if self.tasks.contains_key(&spec.task_id) {
            return Err(DomainError::FailedPrecondition(format!(
                "task '{}' exists",
                spec.task_id
            )));
        }
        let (queue, priority, choice) = self.classify(&spec);
        spec.queue = queue;
        let callback = self.callback_place(&spec)?;
        let queue = &self.queues[&spec.queue_key()];
        let preferred_deadline = spec.preferred_deadline(now);
        // The queue's steps start counting once the preferred agents had their time.
        let step_deadline = queue.step_deadline(0, preferred_deadline.unwrap_or(now));
        let ttl_deadline = (queue.task_ttl_ms > 0).then(|| now.saturating_add(queue.task_ttl_ms));
        // A callback takes its earlier task's priority and place in line.
        let (priority, seq) = callback.map_or((priority, self.next_seq), |c| (c.priority, c.seq));
        let place = self.joining_place(
            &spec.queue_key(),
            &TaskKey::new(priority, seq, &spec.task_id),
            &spec.callback_for,
            now,
        );
        let task_id = spec.task_id.clone();
        let earlier = spec.callback_for.clone();
        self.emit(
            Event::TaskQueued {
                spec: Box::new(spec),
                priority,
                seq,
                at: now,
                step_deadline,
                ttl_deadline,
                queued_at: callback.map(|c| c.queued_at),
                position: place.position,
                estimated_wait_ms: place.estimated_wait_ms,
                preferred_deadline,
                choice,
            },
            sink,
        );
        if callback.is_some_and(|c| c.replaces) {
            let detail = format!("replaced by callback task '{task_id}'");
            self.close(&earlier, CloseReason::Cancelled, detail, now, sink);
        }
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
        let task = self.offered_task(task_id, agent_id)?;
        let mrd = task.spec.mrd.clone();
        if self.is_transfer_offer(task_id) {
            let owner = task.owner.clone().unwrap_or_default();
            self.emit(
                Event::TaskAgentTransferred {
                    task_id: task_id.to_owned(),
                    mrd,
                    owner_agent_id: owner,
                    recipient_agent_id: agent_id.to_owned(),
                    at: now,
                    consult: true,
                },
                sink,
            );
            return Ok(());
        }
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
        self.let_offer_go(task_id, agent_id, RequeueReason::Rejected, now, sink);
        Ok(())
    }

    /// Pause, resume, wrap up or close a task, as its channel or agent says; a close of a
    /// handled task may give a disposition code (see `disposition`).
    pub fn change_task_state(
        &mut self,
        task_id: &str,
        wanted: TaskState,
        disposition_code: &str,
        now: Millis,
        sink: &mut Sink,
    ) -> DomainResult<()> {
        let task = self.task(task_id)?;
        let from = task.state;
        let wrap_up = self
            .mrds
            .get(&task.spec.mrd)
            .map_or(0, |m| m.wrap_up_timeout_ms);
        let closes = wanted == TaskState::Closed
            || (wanted == TaskState::WrappingUp && wrap_up == 0 && from != TaskState::WrappingUp);
        let disposition = if from == TaskState::Closed {
            Default::default()
        } else {
            self.disposition_for_close(task, disposition_code, closes)?
        };
        let refuse = || {
            Err(DomainError::FailedPrecondition(format!(
                "task '{task_id}' cannot go from {from} to {wanted}"
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
            disposition: Default::default(),
        };
        match (from, wanted) {
            (TaskState::Closed, _) => refuse(),
            (TaskState::Active, TaskState::Paused) | (TaskState::Paused, TaskState::Active) => {
                self.emit(change(wanted, None), sink);
                Ok(())
            }
            (TaskState::Active | TaskState::Paused, TaskState::WrappingUp) => {
                if wrap_up == 0 {
                    let done = CloseReason::Done;
                    self.close_with(task_id, done, String::new(), disposition, now, sink);
                } else {
                    self.emit(
                        change(TaskState::WrappingUp, Some(now.saturating_add(wrap_up))),
                        sink,
                    );
                }
                Ok(())
            }
            (TaskState::Queued | TaskState::Offered, TaskState::Closed) => {
                let cancelled = CloseReason::Cancelled;
                self.close_with(task_id, cancelled, String::new(), disposition, now, sink);
                Ok(())
            }
            (_, TaskState::Closed) => {
                let done = CloseReason::Done;
                self.close_with(task_id, done, String::new(), disposition, now, sink);
                Ok(())
            }
            _ => refuse(),
        }
    }

    /// The checks transfer and conference share: the task is active, `owner` owns it, and
    /// `other` is a different agent, logged in on the MRD, eligible, and not on the task.
    pub(super) fn check_handover(
        &self,
        task_id: &str,
        owner: &str,
        other: &str,
        other_field: &'static str,
    ) -> DomainResult<()> {
        self.check_owned_active(task_id, owner)?;
        let task = self.task(task_id)?;
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
        if let Some(blocking) = self.blocking_mrd(other, &task.spec.mrd) {
            return Err(DomainError::FailedPrecondition(format!(
                "agent '{other}' is working on mrd '{blocking}', which keeps it from mrd '{}'",
                task.spec.mrd
            )));
        }
        if self.eligible(other, &task.spec.mrd).is_none() {
            return Err(DomainError::FailedPrecondition(format!(
                "agent '{other}' cannot take work now ({} on mrd '{}')",
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
                consult: false,
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
}
