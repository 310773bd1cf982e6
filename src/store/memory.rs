use std::collections::{BTreeMap, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::{Journal, RememberedRequest, Retention, StoreError, StoredSnapshot};
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
    requests: BTreeMap<String, RememberedRequest>,
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
    fn append(&self, batch: &[&Record], requests: &[&RememberedRequest]) -> Result<(), StoreError> {
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
        Ok(())
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

    fn save_snapshot(
        &self,
        snapshot: &StoredSnapshot,
        retention: Retention,
    ) -> Result<(), StoreError> {
        let mut inner = self.inner();
        inner.snapshot = Some(snapshot.clone());
        let keep_from = inner
            .last()
            .saturating_sub(retention.events)
            .saturating_add(1)
            .min(snapshot.revision + 1);
        while inner.first < keep_from && inner.records.pop_front().is_some() {
            inner.first += 1;
        }
        inner
            .requests
            .retain(|_, r| r.time_ms >= retention.requests_since);
        Ok(())
    }

    fn remembered_requests(&self, since: Millis) -> Result<Vec<RememberedRequest>, StoreError> {
        Ok(self
            .inner()
            .requests
            .values()
            .filter(|r| r.time_ms >= since)
            .cloned()
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Event;

    fn record(revision: Revision) -> Record {
        Record {
            revision,
            time_ms: 0,
            event: Event::AgentDeleted {
                agent_id: format!("a{revision}"),
            },
        }
    }

    fn append(journal: &MemoryJournal, revisions: std::ops::RangeInclusive<Revision>) {
        let records: Vec<Record> = revisions.map(record).collect();
        let refs: Vec<&Record> = records.iter().collect();
        journal.append(&refs, &[]).unwrap();
    }

    #[test]
    fn appends_in_order_and_reads_from_a_revision() {
        let journal = MemoryJournal::new();
        append(&journal, 1..=3);
        assert_eq!(journal.last_revision().unwrap(), 3);
        let read = journal.read_from(2, 10).unwrap();
        assert_eq!(
            read.iter().map(|r| r.revision).collect::<Vec<_>>(),
            vec![2, 3]
        );
        assert_eq!(journal.read_from(0, 1).unwrap()[0].revision, 1);
        assert!(journal.read_from(4, 10).unwrap().is_empty());
    }

    #[test]
    fn refuses_a_gap() {
        let journal = MemoryJournal::new();
        append(&journal, 1..=1);
        let third = record(3);
        assert!(matches!(
            journal.append(&[&third], &[]),
            Err(StoreError::Gap {
                expected: 2,
                got: 3
            })
        ));
    }

    #[test]
    fn a_snapshot_compacts_what_retention_does_not_keep() {
        let journal = MemoryJournal::new();
        append(&journal, 1..=10);
        let snapshot = StoredSnapshot {
            revision: 8,
            time_ms: 0,
            body: "{}".into(),
        };
        let retention = Retention {
            events: 4,
            requests_since: 0,
        };
        journal.save_snapshot(&snapshot, retention).unwrap();
        assert_eq!(journal.first_revision().unwrap(), 7);
        assert_eq!(journal.read_from(1, 1).unwrap()[0].revision, 7);
        assert_eq!(journal.last_revision().unwrap(), 10);
        append(&journal, 11..=11);
        assert_eq!(journal.last_revision().unwrap(), 11);
    }
}
