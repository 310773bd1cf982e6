//! Callbacks: a task created as a callback for an earlier one (`TaskSpec::callback_for`) keeps
//! that one's place in line. It takes the earlier task's priority, its first-in-first-out
//! order and its time in queue, in the callback's own queue (of the same MRD).
//!
//! The earlier task must still be in memory (open, or closed within the closed-task
//! retention), on the same MRD, and have no callback yet. One still waiting (QUEUED or
//! OFFERED) is replaced: it closes CANCELLED, with a detail naming the callback, and does not
//! count as abandoned. One in an agent's hands (ACTIVE, PAUSED, WRAPPING_UP) is refused: it has
//! been reached. Both facts are journaled: `TaskQueued` carries the callback's spec (naming the
//! earlier task) with the inherited priority, order and `queued_at`, and the replaced task's
//! close is its own event.

use super::Routing;
use super::model::{TaskSpec, TaskState};
use crate::domain::error::{DomainError, DomainResult};
use crate::domain::events::Millis;

/// Where a callback goes in line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallbackPlace {
    pub priority: u8,
    pub seq: u64,
    pub queued_at: Millis,
    /// The earlier task is still waiting: the callback replaces it.
    pub replaces: bool,
}

impl Routing {
    /// The place a new task takes as a callback, if it is one; refuses an earlier task that
    /// cannot be called back.
    pub(super) fn callback_place(&self, spec: &TaskSpec) -> DomainResult<Option<CallbackPlace>> {
        let earlier_id = &spec.callback_for;
        if earlier_id.is_empty() {
            return Ok(None);
        }
        let earlier = self.task(earlier_id)?;
        if earlier.spec.mrd != spec.mrd {
            return Err(DomainError::invalid(
                "callback_for_task_id",
                format!(
                    "task '{earlier_id}' is on mrd '{}', not '{}'",
                    earlier.spec.mrd, spec.mrd
                ),
            ));
        }
        if let Some(callback) = &earlier.callback_task_id {
            return Err(DomainError::FailedPrecondition(format!(
                "task '{earlier_id}' already has callback '{callback}'"
            )));
        }
        let replaces = match earlier.state {
            TaskState::Queued | TaskState::Offered => true,
            TaskState::Closed => false,
            state => {
                return Err(DomainError::FailedPrecondition(format!(
                    "task '{earlier_id}' is {state}: an agent has it, so there is no place to keep"
                )));
            }
        };
        Ok(Some(CallbackPlace {
            priority: earlier.priority,
            seq: earlier.seq,
            queued_at: earlier.queued_at,
            replaces,
        }))
    }
}
