//! Attempts: a queue may bound how many offers of a task are let go (rejected, or not answered
//! in time: RONA) before the task stops waiting there. A requeue after the agent's logout is
//! not the task's attempt and does not count.
//!
//! Each such requeue (`TaskRequeued` with reason REJECTED or RONA) counts one attempt on the
//! task, in the fold. Once a task's attempts reach its queue's `max_attempts`, it either moves
//! to the queue's `overflow_queue` (`TaskOverflowed`: same MRD, from its first step, its place
//! in line kept, its count started afresh, the overflow queue's time to live counted from the
//! move) or, with no overflow queue (or one deleted since), closes with MAX_ATTEMPTS.

use serde::{Deserialize, Serialize};

use super::index::QueueKey;
use super::model::{CloseReason, RequeueReason, TaskState};
use super::{Routing, Sink};
use crate::domain::bounds::{MAX_QUEUE_ATTEMPTS, check_optional_id};
use crate::domain::error::{DomainError, DomainResult};
use crate::domain::events::{Event, Millis};

/// A queue's bound on attempts.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AttemptPolicy {
    /// Offers a task may let go in this queue before it leaves; 0: no limit.
    pub max_attempts: u32,
    /// The queue of the same MRD the task moves to then; empty: it closes with MAX_ATTEMPTS.
    pub overflow_queue: String,
}

impl AttemptPolicy {
    /// Checks the bound and the overflow queue's name (that it exists is routing's to say).
    pub fn validate(&self, queue: &str) -> DomainResult<()> {
        if self.max_attempts > MAX_QUEUE_ATTEMPTS {
            return Err(DomainError::invalid(
                "queue.max_attempts",
                format!(
                    "must be 0 (no limit) to {MAX_QUEUE_ATTEMPTS}, not {}",
                    self.max_attempts
                ),
            ));
        }
        check_optional_id("queue.overflow_queue", &self.overflow_queue)?;
        if self.overflow_queue == queue {
            return Err(DomainError::invalid(
                "queue.overflow_queue",
                "must name another queue than the queue itself",
            ));
        }
        if !self.overflow_queue.is_empty() && self.max_attempts == 0 {
            return Err(DomainError::invalid(
                "queue.overflow_queue",
                "needs queue.max_attempts above 0",
            ));
        }
        Ok(())
    }
}

impl RequeueReason {
    /// Whether the requeue is an attempt of the task's: an offer it was let go.
    pub fn is_attempt(self) -> bool {
        matches!(self, Self::Rona | Self::Rejected)
    }
}

impl Routing {
    /// After an attempt: a task that used up its queue's attempts overflows or closes.
    pub(super) fn enforce_attempts(&mut self, task_id: &str, now: Millis, sink: &mut Sink) {
        let Some(task) = self.tasks.get(task_id) else {
            return;
        };
        let Some(queue) = self.queues.get(&task.spec.queue_key()) else {
            return;
        };
        let policy = &queue.attempts;
        if task.state != TaskState::Queued
            || policy.max_attempts == 0
            || task.attempts < policy.max_attempts
        {
            return;
        }
        let overflow = QueueKey::new(&task.spec.mrd, &policy.overflow_queue);
        match self.queues.get(&overflow) {
            Some(to) if !policy.overflow_queue.is_empty() => {
                let event = Event::TaskOverflowed {
                    task_id: task_id.to_owned(),
                    mrd: task.spec.mrd.clone(),
                    from_queue: task.spec.queue.clone(),
                    queue: to.name.clone(),
                    attempts: task.attempts,
                    step_deadline: to.step_deadline(0, now),
                    ttl_deadline: (to.task_ttl_ms > 0).then(|| now.saturating_add(to.task_ttl_ms)),
                    at: now,
                };
                self.emit(event, sink);
            }
            _ => {
                let detail = format!(
                    "let go {} offers in queue '{}/{}' (max_attempts {})",
                    task.attempts, task.spec.mrd, task.spec.queue, policy.max_attempts
                );
                self.close(task_id, CloseReason::MaxAttempts, detail, now, sink);
            }
        }
    }

    /// The fold of an overflow: the task waits in the other queue from its first step.
    pub(super) fn apply_overflow(
        &mut self,
        task_id: &str,
        queue: &str,
        step_deadline: Option<Millis>,
        ttl_deadline: Option<Millis>,
        at: Millis,
    ) {
        if let Some(task) = self.tasks.get_mut(task_id) {
            task.spec.queue = queue.to_owned();
            task.attempts = 0;
            task.step = 0;
            task.step_deadline = step_deadline;
            task.ttl_deadline = ttl_deadline;
            task.updated_at = at;
        }
        self.place_waiting(task_id);
    }
}
