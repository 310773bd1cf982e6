//! Closed tasks leave memory after the retention. A task is written to the journal's history
//! in the transaction that closes it, so memory only serves recent lookups; past the
//! retention `GetTaskState` and `ListTasks` read the history. Retiring records no event: it
//! changes no decision (nothing refers to a closed task), and recovery retires again.

use super::Routing;
use super::model::Task;
use crate::domain::events::Millis;

impl Routing {
    /// Notes that `task_id` closed at `at` (called by the fold).
    pub(super) fn note_closed(&mut self, task_id: &str, at: Millis) {
        self.closed.insert((at, task_id.to_owned()));
    }

    /// When the oldest closed task in memory closed.
    pub fn oldest_closed(&self) -> Option<Millis> {
        self.closed.first().map(|(at, _)| *at)
    }

    /// Tasks not closed yet: waiting, offered or in hand.
    pub fn open_tasks(&self) -> usize {
        self.tasks.len() - self.closed.len()
    }

    /// Closed tasks in memory, oldest close first.
    pub fn closed_tasks(&self) -> impl Iterator<Item = &Task> {
        self.closed.iter().filter_map(|(_, id)| self.tasks.get(id))
    }

    /// Drops the tasks closed before `before` from memory and returns them.
    pub fn retire_closed(&mut self, before: Millis) -> Vec<Task> {
        let mut retired = Vec::new();
        while let Some((at, _)) = self.closed.first() {
            if *at >= before {
                break;
            }
            let Some((_, task_id)) = self.closed.pop_first() else {
                break;
            };
            // Closed long ago: no timer, queue, offer or work list still names it.
            if let Some(task) = self.tasks.remove(&task_id) {
                retired.push(task);
            }
        }
        retired
    }
}
