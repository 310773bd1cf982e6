//! Disposition (wrap-up) codes: per queue, the codes an agent gives when a task it handled
//! closes, optional or required. The rule lives here, once: the close a client asks for is
//! checked by `disposition_for_close`, and the engine's own closes (the wrap-up timer, a
//! logout) record a required code as missing rather than keep the agent waiting.

use serde::{Deserialize, Serialize};

use super::Routing;
use super::model::{Task, TaskState};
use crate::domain::bounds::{MAX_DISPOSITION_CODES, check_count, check_id, check_name, in_entry};
use crate::domain::error::{DomainError, DomainResult};

/// One code a queue offers, with the label a desktop shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DispositionCode {
    pub code: String,
    pub label: String,
}

/// A queue's disposition codes, and whether a handled task must be closed with one.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Dispositions {
    pub codes: Vec<DispositionCode>,
    pub required: bool,
}

impl Dispositions {
    pub fn validate(&self) -> DomainResult<()> {
        check_count(
            "queue.disposition_codes",
            self.codes.len(),
            MAX_DISPOSITION_CODES,
            "codes",
        )?;
        for (index, entry) in self.codes.iter().enumerate() {
            in_entry(
                format_args!("code {index}"),
                check_id("queue.disposition_codes.code", &entry.code)
                    .and_then(|()| check_name("queue.disposition_codes.label", &entry.label)),
            )?;
            if self.codes[..index].iter().any(|c| c.code == entry.code) {
                return Err(DomainError::invalid(
                    "queue.disposition_codes.code",
                    format!("code {index}: '{}' is listed twice", entry.code),
                ));
            }
        }
        if self.required && self.codes.is_empty() {
            return Err(DomainError::invalid(
                "queue.disposition_required",
                "a queue that requires a disposition code must list at least one",
            ));
        }
        Ok(())
    }

    fn offers(&self, code: &str) -> bool {
        self.codes.iter().any(|c| c.code == code)
    }

    fn listed(&self) -> String {
        let codes: Vec<&str> = self.codes.iter().map(|c| c.code.as_str()).collect();
        if codes.is_empty() {
            "none".into()
        } else {
            codes.join(", ")
        }
    }
}

/// How a task's handling was dispositioned, recorded on its close.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TaskDisposition {
    /// The code the close gave; empty when none was.
    pub code: String,
    /// The task's queue required a code and its close gave none (the engine closed it: the
    /// wrap-up timer ran out, or its agent logged out).
    pub missing: bool,
}

/// Whether an agent handled the task (so that its close takes a disposition code).
fn handled(task: &Task) -> bool {
    matches!(
        task.state,
        TaskState::Active | TaskState::Paused | TaskState::WrappingUp
    )
}

impl Routing {
    fn dispositions_of(&self, task: &Task) -> Option<&Dispositions> {
        self.queues
            .get(&task.spec.queue_key())
            .map(|q| &q.dispositions)
    }

    /// Checks the code a client gives with a change of `task`; `closes` says whether the
    /// change closes it. A code is taken only when a handled task closes, and must be one of
    /// its queue's; a queue that requires one refuses such a close without it.
    pub(super) fn disposition_for_close(
        &self,
        task: &Task,
        code: &str,
        closes: bool,
    ) -> DomainResult<TaskDisposition> {
        let queue = format!("{}/{}", task.spec.mrd, task.spec.queue);
        let empty = Dispositions::default();
        let offered = self.dispositions_of(task).unwrap_or(&empty);
        if !code.is_empty() {
            check_id("disposition_code", code)?;
            if !(closes && handled(task)) {
                return Err(DomainError::FailedPrecondition(format!(
                    "task '{}' is {}: a disposition code is given only when a task an agent \
                     handled closes",
                    task.spec.task_id, task.state
                )));
            }
            if !offered.offers(code) {
                return Err(DomainError::invalid(
                    "disposition_code",
                    format!(
                        "'{code}' is not a disposition code of queue '{queue}' (it has: {})",
                        offered.listed()
                    ),
                ));
            }
        } else if closes && handled(task) && offered.required {
            return Err(DomainError::FailedPrecondition(format!(
                "queue '{queue}' requires a disposition code to close task '{}' \
                 (disposition_code: one of {})",
                task.spec.task_id,
                offered.listed()
            )));
        }
        Ok(TaskDisposition {
            code: code.to_owned(),
            missing: false,
        })
    }

    /// The disposition of a close the engine makes on its own: a handled task of a queue
    /// that requires a code closes without one, recorded as missing.
    pub(super) fn disposition_by_engine(&self, task_id: &str) -> TaskDisposition {
        let missing = self.tasks.get(task_id).is_some_and(|task| {
            handled(task) && self.dispositions_of(task).is_some_and(|d| d.required)
        });
        TaskDisposition {
            code: String::new(),
            missing,
        }
    }
}
