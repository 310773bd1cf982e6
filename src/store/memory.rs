use std::collections::{BTreeMap, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::{
    Appended, ClosedTask, HistoryQuery, Journal, RememberedRequest, Retention, StoreError,
    StoredSnapshot,
};
use crate::domain::{Millis, Record, Revision};

/// Keeps everything in memory; gone with the process.
#[derive(Debug, Default)]
pub struct MemoryJournal {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    records: VecDeque<Record>,
    /// The revision the first record would have if none were dropped: last dropped + 1.
    first: Revision,
    snapshot: Option<StoredSnapshot>,
    /// The newest snapshot older than `snapshot`, kept as the fallback.
    previous: Option<StoredSnapshot>,
    requests: BTreeMap<String, RememberedRequest>,
    /// The history by task id, and its order: closing revision to task id.
    history: BTreeMap<String, ClosedTask>,
    history_order: BTreeMap<Revision, String>,
}

impl Inner {
    fn last(&self) -> Revision {
        self.records
            .back()
            .map_or(self.first.saturating_sub(1), |r| r.revision)
    }
}

impl MemoryJournal {
    pub fn new() -> Self {
        Self {
            inner: Mutex::new(Inner {
                first: 1,
                ..Inner::default()
            }),
        }
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the data half-written; keep going.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Journal for MemoryJournal {
    fn append(
        &self,
        batch: &[&Record],
        requests: &[&RememberedRequest],
        closed: &[&ClosedTask],
    ) -> Result<Appended, StoreError> {
        let mut inner = self.inner();
        for (expected, record) in (inner.last() + 1..).zip(batch) {
            if record.revision != expected {
                return Err(StoreError::Gap {
                    expected,
                    got: record.revision,
                });
            }
        }
        inner.records.extend(batch.iter().map(|r| (*r).clone()));
        for request in requests {
            inner
                .requests
                .insert(request.request_id.clone(), (*request).clone());
        }
        for c in closed {
            let task_id = c.task.spec.task_id.clone();
            if let Some(old) = inner.history.insert(task_id.clone(), (*c).clone()) {
                inner.history_order.remove(&old.revision);
            }
            inner.history_order.insert(c.revision, task_id);
        }
        Ok(Appended::default())
    }

    fn closed_task(&self, task_id: &str) -> Result<Option<ClosedTask>, StoreError> {
        Ok(self.inner().history.get(task_id).cloned())
    }

    fn closed_tasks(&self, query: HistoryQuery) -> Result<Vec<ClosedTask>, StoreError> {
        let inner = self.inner();
        Ok(inner
            .history_order
            .range(query.after.saturating_add(1)..)
            .map(|(_, task_id)| &inner.history[task_id])
            .filter(|c| c.closed_at >= query.closed_from && c.closed_at < query.closed_until)
            .take(query.limit)
            .cloned()
            .collect())
    }

    fn read_from(&self, from: Revision, limit: usize) -> Result<Vec<Record>, StoreError> {
        let inner = self.inner();
        // Revisions have no gaps, so a revision's index is its distance from the first kept.
        let start = usize::try_from(from.max(inner.first) - inner.first).unwrap_or(usize::MAX);
        Ok(inner
            .records
            .iter()
            .skip(start)
            .take(limit)
            .cloned()
            .collect())
    }

    fn last_revision(&self) -> Result<Revision, StoreError> {
        Ok(self.inner().last())
    }

    fn first_revision(&self) -> Result<Revision, StoreError> {
        Ok(self.inner().first)
    }

    fn latest_snapshot(&self) -> Result<Option<StoredSnapshot>, StoreError> {
        Ok(self.inner().snapshot.clone())
    }

    fn snapshot_before(&self, revision: Revision) -> Result<Option<StoredSnapshot>, StoreError> {
        let inner = self.inner();
        Ok([inner.snapshot.as_ref(), inner.previous.as_ref()]
            .into_iter()
            .flatten()
            .find(|kept| kept.revision < revision)
            .cloned())
    }

    fn save_snapshot(
        &self,
        snapshot: &StoredSnapshot,
        retention: Retention,
    ) -> Result<(), StoreError> {
        let mut inner = self.inner();
        // The two newest snapshots are kept, as in the SQLite journal.
        let mut kept: Vec<StoredSnapshot> = [inner.snapshot.take(), inner.previous.take()]
            .into_iter()
            .flatten()
            .filter(|kept| kept.revision != snapshot.revision)
            .chain([snapshot.clone()])
            .collect();
        kept.sort_by_key(|kept| std::cmp::Reverse(kept.revision));
        let mut kept = kept.into_iter();
        inner.snapshot = kept.next();
        inner.previous = kept.next();
        let oldest_kept = inner
            .previous
            .as_ref()
            .or(inner.snapshot.as_ref())
            .map_or(snapshot.revision, |kept| kept.revision);
        let keep_from = inner
            .last()
            .saturating_sub(retention.events)
            .saturating_add(1)
            .min(snapshot.revision + 1)
            .min(oldest_kept + 1);
        while inner.first < keep_from && inner.records.pop_front().is_some() {
            inner.first += 1;
        }
        inner
            .requests
            .retain(|_, r| r.time_ms >= retention.requests_since);
        let Inner {
            history,
            history_order,
            ..
        } = &mut *inner;
        history.retain(|_, c| {
            let keep = c.closed_at >= retention.history_since;
            if !keep {
                history_order.remove(&c.revision);
            }
            keep
        });
        Ok(())
    }

    fn probe(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn remembered_requests(&self, since: Millis) -> Result<Vec<RememberedRequest>, StoreError> {
        let mut requests: Vec<RememberedRequest> = self
            .inner()
            .requests
            .values()
            .filter(|r| r.time_ms >= since)
            .cloned()
            .collect();
        // Kept by id; answered oldest first, as the trait says.
        requests.sort_by_key(|r| r.time_ms);
        Ok(requests)
    }
}
