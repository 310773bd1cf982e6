//! Supervisor moves: requeue any task, and set any agent's next state. Who asks is checked by
//! `access`; these are the rules, and who made each move is journaled with it.

use serde::{Deserialize, Serialize};

use super::model::{REQUEUE_PRIORITY, RequestedAgentState, RequeueReason, TaskState};
use super::{Routing, Sink};
use crate::domain::bounds::{check_id, check_priority};
use crate::domain::error::{DomainError, DomainResult};
use crate::domain::events::{Event, Millis};
use crate::domain::principals::Actor;

/// A requeue that moves the task to another queue of its MRD: it starts at that queue's
/// first step, under that queue's time to live counted from the move.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueMove {
    pub queue: String,
    pub ttl_deadline: Option<Millis>,
}

/// What a supervisor sets for an agent (`Routing::set_next_state`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NextState {
    pub agent_id: String,
    /// READY, NOT_READY or LOGOUT.
    pub state: RequestedAgentState,
    /// The MRD; empty: every MRD the agent is logged in on.
    pub mrd: String,
    /// For NOT_READY and LOGOUT: a reason code of that category; may be empty.
    pub reason_code: String,
}

/// A LOGOUT a supervisor asked for while the agent still had work on the MRD: it is offered
/// nothing more and logs out once its tasks end and no offer rings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingLogout {
    pub reason_code: String,
    pub by: Actor,
}

impl Routing {
    /// Puts a task back in line: a waiting task moves or changes priority, an offered task's
    /// offer is rescinded, a task in hand (ACTIVE or PAUSED) is taken from its agents. `queue`
    /// names a queue of the task's MRD (empty: its own); `priority` 1-10, or `None`: a waiting
    /// task keeps its own, an offered or held one goes ahead of all, as the engine's requeues
    /// do. The task keeps its place by arrival within its priority, and the agent it was taken
    /// from is not offered it again. A waiting task keeps its arrival time (its wait goes on);
    /// one taken from an agent waits from now, as after RONA.
    pub fn requeue_task(
        &mut self,
        task_id: &str,
        queue: &str,
        priority: Option<u8>,
        now: Millis,
        sink: &mut Sink,
    ) -> DomainResult<()> {
        if let Some(p) = priority {
            check_priority("priority", p)?;
        }
        let task = self.task(task_id)?;
        let agent_id = match task.state {
            TaskState::Queued => String::new(),
            TaskState::Offered => task.offer.as_ref().map(|o| o.0.clone()).unwrap_or_default(),
            TaskState::Active | TaskState::Paused => task.owner.clone().unwrap_or_default(),
            TaskState::WrappingUp | TaskState::Closed => {
                return Err(DomainError::FailedPrecondition(format!(
                    "task '{task_id}' is {}: only a task waiting, offered or in hand can be \
                     requeued",
                    task.state
                )));
            }
        };
        let target = if queue.is_empty() {
            task.spec.queue.clone()
        } else {
            check_id("queue", queue)?;
            queue.to_owned()
        };
        let mut key = task.spec.queue_key();
        let moved = target != task.spec.queue;
        if moved {
            key = super::index::QueueKey::new(&task.spec.mrd, &target);
        }
        let config = self.queues.get(&key).ok_or_else(|| {
            DomainError::not_found("queue", format!("{}/{target}", task.spec.mrd))
        })?;
        let step = if moved { 0 } else { task.step };
        let moved_to = moved.then(|| QueueMove {
            queue: target.clone(),
            ttl_deadline: (config.task_ttl_ms > 0).then(|| now.saturating_add(config.task_ttl_ms)),
        });
        let waiting = task.state == TaskState::Queued;
        let priority = priority.unwrap_or(if waiting {
            task.priority
        } else {
            REQUEUE_PRIORITY
        });
        if waiting && !moved && priority == task.priority {
            return Err(DomainError::FailedPrecondition(format!(
                "task '{task_id}' waits in queue '{target}' at priority {priority} already: \
                 name another queue or priority"
            )));
        }
        let event = Event::TaskRequeued {
            task_id: task_id.to_owned(),
            mrd: task.spec.mrd.clone(),
            agent_id,
            reason: RequeueReason::Supervisor,
            priority,
            seq: task.seq,
            at: now,
            step_deadline: config.step_deadline(step, now),
            moved_to,
        };
        self.emit(event, sink);
        Ok(())
    }

    /// Sets an agent's next state on one MRD, or on every MRD it is logged in on (`mrd`
    /// empty), as a supervisor (`by`) asks: READY at once (withdrawing a pending NOT_READY or
    /// LOGOUT); NOT_READY as the agent's own (pending while its offer and tasks last); LOGOUT
    /// at once when it has neither, otherwise once it has (offered nothing meanwhile).
    pub fn set_next_state(
        &mut self,
        next: &NextState,
        by: &Actor,
        now: Millis,
        sink: &mut Sink,
    ) -> DomainResult<()> {
        let requested = next.state;
        let (agent_id, mrd, reason_code) = (&next.agent_id, &next.mrd, &next.reason_code);
        if requested == RequestedAgentState::Login {
            return Err(DomainError::invalid(
                "state",
                "a next state is READY, NOT_READY or LOGOUT; an agent logs itself in",
            ));
        }
        // The agent, the MRDs and the reason code are checked as the agent's own change is.
        let mrds = self.agent_request_mrds(agent_id, requested, mrd, reason_code)?;
        for m in &mrds {
            self.emit(
                Event::AgentNextStateSet {
                    agent_id: agent_id.to_owned(),
                    mrd: m.clone(),
                    state: requested,
                    reason_code: reason_code.to_owned(),
                    by: by.clone(),
                    at: now,
                },
                sink,
            );
        }
        match requested {
            // The fold of `AgentNextStateSet` made it pending; `settle` logs the agent out
            // where it is free already, and elsewhere once it is.
            RequestedAgentState::Logout => Ok(()),
            _ => self.change_agent_state(agent_id, requested, mrd, reason_code, now, sink),
        }
    }

    /// The fold of `AgentNextStateSet`: a LOGOUT is pending on the MRD from now on.
    pub(super) fn apply_next_state(
        &mut self,
        agent_id: &str,
        mrd: &str,
        state: RequestedAgentState,
        reason_code: &str,
        by: &Actor,
    ) {
        if state != RequestedAgentState::Logout {
            return;
        }
        if let Some(am) = self
            .agents
            .get_mut(agent_id)
            .and_then(|a| a.mrds.get_mut(mrd))
        {
            am.pending_logout = Some(PendingLogout {
                reason_code: reason_code.to_owned(),
                by: by.clone(),
            });
            am.pending_not_ready = true;
        }
        self.touch_agent(agent_id);
    }

    /// Logs out every agent whose pending LOGOUT may take effect: among those whose state may
    /// have changed, the ones with neither a task nor a ringing offer on the MRD.
    pub(super) fn log_out_when_free(&mut self, now: Millis, sink: &mut Sink) {
        let due: Vec<(String, String, String)> = self
            .touched
            .iter()
            .filter_map(|(agent_id, mrd)| {
                let agent = self.agents.get(agent_id)?;
                let am = agent.mrds.get(mrd)?;
                let pending = am.pending_logout.as_ref()?;
                let free = am.tasks.is_empty() && !self.offer_pending_on(agent, mrd);
                free.then(|| (agent_id.clone(), mrd.clone(), pending.reason_code.clone()))
            })
            .collect();
        for (agent_id, mrd, reason_code) in due {
            self.log_out(&agent_id, &mrd, &reason_code, now, sink);
        }
    }
}
