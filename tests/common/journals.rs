//! A real journal whose writes go through a hook first: a test makes them fail (a full disk)
//! or wait (a slow disk) without touching what the journal does once they go ahead.

use switchboard::domain::{Millis, Record, Revision};
use switchboard::store::{
    Appended, ClosedTask, HistoryQuery, Journal, RememberedRequest, Retention, StoreError,
    StoredSnapshot,
};

/// Runs before each write (append, snapshot, probe): an error is that write's error.
pub type WriteHook = Box<dyn Fn() -> Result<(), StoreError> + Send + Sync>;

/// `inner`, with every write first through `hook`; reads go straight to `inner`.
pub struct HookedJournal<J> {
    pub inner: J,
    pub hook: WriteHook,
}

impl<J: Journal> Journal for HookedJournal<J> {
    fn append(
        &self,
        records: &[&Record],
        requests: &[&RememberedRequest],
        closed: &[&ClosedTask],
    ) -> Result<Appended, StoreError> {
        (self.hook)()?;
        self.inner.append(records, requests, closed)
    }

    fn save_snapshot(
        &self,
        snapshot: &StoredSnapshot,
        retention: Retention,
    ) -> Result<(), StoreError> {
        (self.hook)()?;
        self.inner.save_snapshot(snapshot, retention)
    }

    fn probe(&self) -> Result<(), StoreError> {
        (self.hook)()?;
        self.inner.probe()
    }

    fn closed_task(&self, task_id: &str) -> Result<Option<ClosedTask>, StoreError> {
        self.inner.closed_task(task_id)
    }

    fn closed_tasks(&self, query: HistoryQuery) -> Result<Vec<ClosedTask>, StoreError> {
        self.inner.closed_tasks(query)
    }

    fn read_from(&self, from: Revision, limit: usize) -> Result<Vec<Record>, StoreError> {
        self.inner.read_from(from, limit)
    }

    fn last_revision(&self) -> Result<Revision, StoreError> {
        self.inner.last_revision()
    }

    fn first_revision(&self) -> Result<Revision, StoreError> {
        self.inner.first_revision()
    }

    fn latest_snapshot(&self) -> Result<Option<StoredSnapshot>, StoreError> {
        self.inner.latest_snapshot()
    }

    fn snapshot_before(&self, revision: Revision) -> Result<Option<StoredSnapshot>, StoreError> {
        self.inner.snapshot_before(revision)
    }

    fn remembered_requests(&self, since: Millis) -> Result<Vec<RememberedRequest>, StoreError> {
        self.inner.remembered_requests(since)
    }

    fn close(&self) -> Result<(), StoreError> {
        self.inner.close()
    }
}
