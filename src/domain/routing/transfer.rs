//! Transfers beyond the immediate hand-over (`transfer_task`): to a queue, and offered
//! (consultative) transfers to an agent.
//!
//! - To a queue: the owner (and any conference participant) is released and the task waits
//!   under that queue's steps, on the same MRD, at the channel's priority. `keep_arrival` keeps
//!   its place in line from when it first arrived; otherwise it queues from now. The sender is
//!   not offered it again (it declined it by sending it away).
//! - Offered: the recipient gets an offer, as from routing: it rings for the MRD's offer
//!   timeout, uses the recipient's one pending offer (so it is RESERVED and offered nothing
//!   else meanwhile) and needs room below its max, checked when offered. The task stays ACTIVE
//!   (or PAUSED) with its owner, whose load is unchanged. Accepting moves it (the owner is
//!   released then); rejecting, the timeout or the recipient's logout leave it with the owner.
//!   A timed-out transfer offer is not RONA: a colleague asked, not routing, so the recipient's
//!   state is left alone. Wrap-up or close withdraw the offer.

use super::index::QueueKey;
use super::model::{RequeueReason, TaskState};
use super::{Routing, Sink};
use crate::domain::error::{DomainError, DomainResult};
use crate::domain::events::{Event, Millis};

impl Routing {
    /// Sends an owned, active task to `queue` on its MRD.
    pub fn transfer_to_queue(
        &mut self,
        task_id: &str,
        owner: &str,
        queue: &str,
        keep_arrival: bool,
        now: Millis,
        sink: &mut Sink,
    ) -> DomainResult<()> {
        self.check_owned_active(task_id, owner)?;
        self.check_no_transfer_offer(task_id)?;
        let task = self.task(task_id)?;
        let key = QueueKey::new(&task.spec.mrd, queue);
        let Some(config) = self.queues.get(&key) else {
            return Err(DomainError::not_found(
                "queue",
                format!("{}/{queue}", task.spec.mrd),
            ));
        };
        let (seq, queued_at) = if keep_arrival {
            (task.arrival_seq, task.created_at)
        } else {
            (self.next_seq, now)
        };
        let event = Event::TaskTransferredToQueue {
            task_id: task_id.to_owned(),
            mrd: task.spec.mrd.clone(),
            agent_id: owner.to_owned(),
            from_queue: task.spec.queue.clone(),
            queue: queue.to_owned(),
            keep_arrival,
            priority: task.spec.priority,
            seq,
            queued_at,
            step_deadline: config.step_deadline(0, now),
            ttl_deadline: (config.task_ttl_ms > 0).then(|| now.saturating_add(config.task_ttl_ms)),
            at: now,
        };
        self.emit(event, sink);
        Ok(())
    }

    /// Offers an owned, active task to another agent, who may accept or reject it.
    pub fn offer_transfer(
        &mut self,
        task_id: &str,
        owner: &str,
        recipient: &str,
        now: Millis,
        sink: &mut Sink,
    ) -> DomainResult<()> {
        self.check_handover(task_id, owner, recipient, "recipient_agent_id")?;
        self.check_no_transfer_offer(task_id)?;
        let mrd = self.task(task_id)?.spec.mrd.clone();
        let offer_timeout = self.mrds.get(&mrd).map_or(0, |m| m.offer_timeout_ms);
        self.emit(
            Event::TaskTransferOffered {
                task_id: task_id.to_owned(),
                mrd,
                owner_agent_id: owner.to_owned(),
                recipient_agent_id: recipient.to_owned(),
                offer_deadline: now.saturating_add(offer_timeout),
                at: now,
            },
            sink,
        );
        Ok(())
    }

    /// The agent lets the task it was offered go (rejected, RONA or logout): a routed offer
    /// goes back to its queue, an offered transfer stays with its owner.
    pub(super) fn let_offer_go(
        &mut self,
        task_id: &str,
        agent_id: &str,
        reason: RequeueReason,
        now: Millis,
        sink: &mut Sink,
    ) {
        let Some(task) = self.tasks.get(task_id) else {
            return;
        };
        match (&task.owner, task.state) {
            (Some(owner), TaskState::Active | TaskState::Paused) => {
                let event = Event::TaskTransferDeclined {
                    task_id: task_id.to_owned(),
                    mrd: task.spec.mrd.clone(),
                    owner_agent_id: owner.clone(),
                    recipient_agent_id: agent_id.to_owned(),
                    reason,
                    at: now,
                };
                self.emit(event, sink);
            }
            _ => self.requeue(task_id, agent_id, reason, now, sink),
        }
    }

    /// Whether the task's pending offer is an offered transfer (the task is held meanwhile).
    pub(super) fn is_transfer_offer(&self, task_id: &str) -> bool {
        self.tasks.get(task_id).is_some_and(|t| {
            t.offer.is_some() && matches!(t.state, TaskState::Active | TaskState::Paused)
        })
    }

    /// The task is ACTIVE and `owner` owns it.
    pub(super) fn check_owned_active(&self, task_id: &str, owner: &str) -> DomainResult<()> {
        let task = self.task(task_id)?;
        if task.state != TaskState::Active {
            return Err(DomainError::FailedPrecondition(format!(
                "task '{task_id}' is {}, not {}",
                task.state,
                TaskState::Active
            )));
        }
        self.agent(owner)?;
        if task.owner.as_deref() != Some(owner) {
            return Err(DomainError::FailedPrecondition(format!(
                "agent '{owner}' does not own task '{task_id}'"
            )));
        }
        Ok(())
    }

    fn check_no_transfer_offer(&self, task_id: &str) -> DomainResult<()> {
        match &self.task(task_id)?.offer {
            Some((recipient, _)) => Err(DomainError::FailedPrecondition(format!(
                "task '{task_id}' is already offered to agent '{recipient}'; wait for its answer"
            ))),
            None => Ok(()),
        }
    }

    /// Clears the task's offered transfer to `recipient`, if that is what is pending.
    pub(super) fn end_transfer_offer(&mut self, task_id: &str, recipient: &str) {
        let Some(task) = self.tasks.get_mut(task_id) else {
            return;
        };
        if task.offer.as_ref().is_none_or(|(to, _)| to != recipient) {
            return;
        }
        task.offer = None;
        let mrd = task.spec.mrd.clone();
        if let Some(agent) = self.agents.get_mut(recipient)
            && agent.offer.as_deref() == Some(task_id)
        {
            agent.offer = None;
        }
        self.apply_pending_not_ready(recipient, &mrd);
        self.rearm(task_id);
        self.touch_agent(recipient);
    }

    /// The fold of the transfer events.
    pub(super) fn apply_transfer(&mut self, event: &Event) {
        match event {
            Event::TaskTransferOffered {
                task_id,
                recipient_agent_id,
                offer_deadline,
                at,
                ..
            } => {
                if let Some(task) = self.tasks.get_mut(task_id) {
                    task.offer = Some((recipient_agent_id.clone(), *offer_deadline));
                    task.updated_at = *at;
                }
                if let Some(agent) = self.agents.get_mut(recipient_agent_id) {
                    agent.offer = Some(task_id.clone());
                }
                self.rearm(task_id);
                self.touch_agent(recipient_agent_id);
            }
            Event::TaskTransferDeclined {
                task_id,
                recipient_agent_id,
                at,
                ..
            } => {
                if let Some(task) = self.tasks.get_mut(task_id) {
                    task.updated_at = *at;
                }
                self.end_transfer_offer(task_id, recipient_agent_id);
            }
            Event::TaskTransferredToQueue {
                task_id,
                agent_id,
                queue,
                priority,
                seq,
                queued_at,
                step_deadline,
                ttl_deadline,
                at,
                ..
            } => {
                self.next_seq = self.next_seq.max(seq + 1);
                self.waiting.remove(task_id);
                let released = self.release_agents(task_id, *at, true);
                if let Some(task) = self.tasks.get_mut(task_id) {
                    task.declined_by.insert(agent_id.clone());
                    task.spec.queue.clone_from(queue);
                    task.state = TaskState::Queued;
                    task.priority = *priority;
                    task.seq = *seq;
                    task.queued_at = *queued_at;
                    task.step = 0;
                    task.step_deadline = *step_deadline;
                    task.ttl_deadline = *ttl_deadline;
                    task.preferred_deadline = None;
                    // Attempts count per queue, as on an overflow: the new queue's bound
                    // starts afresh.
                    task.attempts = 0;
                    task.updated_at = *at;
                }
                self.place_waiting(task_id);
                for agent in released {
                    self.touch_agent(&agent);
                }
            }
            _ => {}
        }
    }
}
