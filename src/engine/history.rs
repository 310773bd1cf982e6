//! The history of closed tasks: written by the committer with the event that closes each
//! task (`Pending::closed`), read here off the engine task, on the blocking pool.

use std::sync::Arc;

use tracing::info;

use crate::domain::routing::model::{Task, TaskState};
use crate::domain::{DomainError, DomainResult, Event, State};
use crate::store::{ClosedTask, HistoryQuery, Journal, StoreError};

/// Reads the journal's history of closed tasks.
#[derive(Clone)]
pub struct History {
    journal: Arc<dyn Journal>,
}

impl History {
    pub(super) fn new(journal: Arc<dyn Journal>) -> Self {
        Self { journal }
    }

    /// The closed task with this id, if the history has it.
    pub async fn task(&self, task_id: String) -> DomainResult<Option<ClosedTask>> {
        let journal = Arc::clone(&self.journal);
        read(move || journal.closed_task(&task_id)).await
    }

    /// A page of tasks closed in a time range, in closing order.
    pub async fn page(&self, query: HistoryQuery) -> DomainResult<Vec<ClosedTask>> {
        let journal = Arc::clone(&self.journal);
        read(move || journal.closed_tasks(query)).await
    }
}

async fn read<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> DomainResult<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| DomainError::Internal(format!("reading the task history: {e}")))?
        .map_err(|e| DomainError::Unavailable(format!("the task history cannot be read: {e}")))
}

/// The task `event` closes, as it stands in `state` once closed.
pub(super) fn closed_by(event: &Event, state: &State) -> Option<Task> {
    match event {
        Event::TaskStateChanged {
            task_id,
            state: TaskState::Closed,
            ..
        } => state.routing().task(task_id).ok().cloned(),
        _ => None,
    }
}

/// A journal written before the history existed has closed tasks that the history lacks:
/// with an empty history, every closed task recovery found (those still in memory and those
/// `retired` past the retention) is written to it once, in closing order. Their closing
/// revisions are long compacted, so they are numbered 1, 2, ... in that order: below every
/// revision to come, as they closed before it.
pub(super) fn backfill(
    journal: &dyn Journal,
    state: &State,
    retired: Vec<Task>,
) -> Result<(), StoreError> {
    let mut tasks: Vec<Task> = retired;
    tasks.extend(state.routing().closed_tasks().cloned());
    if tasks.is_empty() {
        return Ok(());
    }
    let any = HistoryQuery {
        closed_from: 0,
        closed_until: u64::MAX,
        after: 0,
        limit: 1,
    };
    if !journal.closed_tasks(any)?.is_empty() {
        return Ok(());
    }
    tasks.sort_by(|a, b| (a.updated_at, &a.spec.task_id).cmp(&(b.updated_at, &b.spec.task_id)));
    let closed: Vec<ClosedTask> = (1..)
        .zip(tasks)
        .map(|(revision, task)| ClosedTask {
            revision,
            closed_at: task.updated_at,
            task,
        })
        .collect();
    let refs: Vec<&ClosedTask> = closed.iter().collect();
    journal.append(&[], &[], &refs)?;
    info!(
        tasks = closed.len(),
        "closed tasks from before the history written to it"
    );
    Ok(())
}
