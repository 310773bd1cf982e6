//! The journal: where events become durable. The engine's committer appends each group of
//! batches in one transaction and lets replies and events out only after `append` returns;
//! watches replay from it; start-up loads the latest snapshot and folds the events after it.
//! Implementations: `SqliteJournal` (the durable default), `PostgresJournal` (shared by the
//! nodes of a cluster, every write fenced by the leader's lease) and `MemoryJournal` (throwaway
//! runs and tests). The SQL in `schema.sql` keeps to what SQLite and PostgreSQL share, so both
//! use the same tables. Every journal passes one contract, `tests/journal_contract.rs`, where a
//! new one joins with a line.

mod fence;
mod memory;
pub(crate) mod postgres;
mod sqlite;

pub use fence::Fence;
pub use memory::MemoryJournal;
pub use postgres::{PostgresJournal, PostgresOptions};
pub use sqlite::SqliteJournal;

use std::time::Duration;

use thiserror::Error;

use crate::domain::routing::model::Task;
use crate::domain::{Millis, Record, Revision};

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("journal write failed: {0}")]
    Write(String),
    #[error("journal read failed: {0}")]
    Read(String),
    #[error("journal at {path} cannot be opened: {reason}")]
    Open { path: String, reason: String },
    #[error("journal is not contiguous: expected revision {expected}, got {got}")]
    Gap { expected: Revision, got: Revision },
    /// A shared journal refused a write: the lease moved on (or expired) since this node took
    /// it. Nothing of the write was kept.
    #[error(
        "this node no longer holds the leader's lease ({}; the lease is at epoch {current}, or \
         has expired): nothing was written",
        held_epoch(.held)
    )]
    Fenced { held: Option<u64>, current: u64 },
}

fn held_epoch(held: &Option<u64>) -> String {
    match held {
        Some(epoch) => format!("it held epoch {epoch}"),
        None => "it holds none".to_owned(),
    }
}

/// A request id the server answered, kept so that a retry gets the same answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RememberedRequest {
    pub request_id: String,
    /// Tells the same request from a different one that reuses the id.
    pub fingerprint: String,
    /// The first answer, as the engine serialised it.
    pub answer: String,
    pub revision: Revision,
    pub time_ms: Millis,
}

/// The state at one revision, serialised by the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSnapshot {
    pub revision: Revision,
    pub time_ms: Millis,
    pub body: String,
}

/// What a journal keeps, besides the events after the latest snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Events kept for watches to resume from, counted back from the last one.
    pub events: u64,
    /// Remembered requests younger than this at the time of compaction are kept.
    pub requests_since: Millis,
    /// Closed tasks that closed at or after this are kept in the history.
    pub history_since: Millis,
}

/// A task as it closed, written to the history in the transaction of the event that closed
/// it. A task id used again after its task left memory replaces the older entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClosedTask {
    /// The revision of the event that closed it: the history's order and page key.
    pub revision: Revision,
    pub closed_at: Millis,
    pub task: Task,
}

/// A slice of the history: tasks closed in `[closed_from, closed_until)`, in closing order,
/// after the closing revision `after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryQuery {
    pub closed_from: Millis,
    pub closed_until: Millis,
    pub after: Revision,
    pub limit: usize,
}

/// What an append tells of itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Appended {
    /// How long the step that made it durable took, where the journal can tell it apart:
    /// SQLite's `COMMIT`, which writes and fsyncs its write-ahead log. PostgreSQL's `COMMIT`
    /// goes out pipelined with the inserts (its server reports its own WAL sync times), and
    /// a journal in memory has nothing to sync: `None`.
    pub sync: Option<Duration>,
}

pub trait Journal: Send + Sync + 'static {
    /// Appends records whose revisions follow the last one without a gap, remembers
    /// requests and writes the tasks they closed to the history, in one transaction. Durable
    /// on return.
    fn append(
        &self,
        records: &[&Record],
        requests: &[&RememberedRequest],
        closed: &[&ClosedTask],
    ) -> Result<Appended, StoreError>;

    /// The closed task with this id in the history.
    fn closed_task(&self, task_id: &str) -> Result<Option<ClosedTask>, StoreError>;

    /// A page of the history.
    fn closed_tasks(&self, query: HistoryQuery) -> Result<Vec<ClosedTask>, StoreError>;

    /// Up to `limit` records with revision >= `from`, in revision order.
    fn read_from(&self, from: Revision, limit: usize) -> Result<Vec<Record>, StoreError>;

    /// The last revision appended, 0 when empty.
    fn last_revision(&self) -> Result<Revision, StoreError>;

    /// The oldest revision still kept; `last_revision() + 1` when none is.
    fn first_revision(&self) -> Result<Revision, StoreError>;

    /// The snapshot with the highest revision saved.
    fn latest_snapshot(&self) -> Result<Option<StoredSnapshot>, StoreError>;

    /// The newest snapshot older than `revision`: where recovery falls back to when the one
    /// at `revision` does not decode.
    fn snapshot_before(&self, revision: Revision) -> Result<Option<StoredSnapshot>, StoreError>;

    /// Stores a snapshot, then drops what it makes unnecessary: every snapshot but the two
    /// newest (the one before the latest stays, with the events after it, so that a latest
    /// snapshot that does not decode can be replaced by it), events beyond those and beyond
    /// what `retention` keeps, and requests and closed tasks older than `retention` says.
    fn save_snapshot(
        &self,
        snapshot: &StoredSnapshot,
        retention: Retention,
    ) -> Result<(), StoreError>;

    /// Requests remembered at or after `since`, oldest first: the engine's ledger forgets them
    /// in the order it is given them.
    fn remembered_requests(&self, since: Millis) -> Result<Vec<RememberedRequest>, StoreError>;

    /// A tiny write transaction: whether the journal can be written again after a failure.
    fn probe(&self) -> Result<(), StoreError>;

    /// Called once, after the last append: leaves the journal tidy for the next start.
    fn close(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// A journal shared by several owners (the nodes of a cluster in one process, in tests).
impl<J: Journal + ?Sized> Journal for std::sync::Arc<J> {
    fn append(
        &self,
        records: &[&Record],
        requests: &[&RememberedRequest],
        closed: &[&ClosedTask],
    ) -> Result<Appended, StoreError> {
        (**self).append(records, requests, closed)
    }

    fn closed_task(&self, task_id: &str) -> Result<Option<ClosedTask>, StoreError> {
        (**self).closed_task(task_id)
    }

    fn closed_tasks(&self, query: HistoryQuery) -> Result<Vec<ClosedTask>, StoreError> {
        (**self).closed_tasks(query)
    }

    fn read_from(&self, from: Revision, limit: usize) -> Result<Vec<Record>, StoreError> {
        (**self).read_from(from, limit)
    }

    fn last_revision(&self) -> Result<Revision, StoreError> {
        (**self).last_revision()
    }

    fn first_revision(&self) -> Result<Revision, StoreError> {
        (**self).first_revision()
    }

    fn latest_snapshot(&self) -> Result<Option<StoredSnapshot>, StoreError> {
        (**self).latest_snapshot()
    }

    fn snapshot_before(&self, revision: Revision) -> Result<Option<StoredSnapshot>, StoreError> {
        (**self).snapshot_before(revision)
    }

    fn save_snapshot(
        &self,
        snapshot: &StoredSnapshot,
        retention: Retention,
    ) -> Result<(), StoreError> {
        (**self).save_snapshot(snapshot, retention)
    }

    fn remembered_requests(&self, since: Millis) -> Result<Vec<RememberedRequest>, StoreError> {
        (**self).remembered_requests(since)
    }

    fn probe(&self) -> Result<(), StoreError> {
        (**self).probe()
    }

    fn close(&self) -> Result<(), StoreError> {
        (**self).close()
    }
}
