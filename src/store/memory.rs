use std::sync::{Mutex, MutexGuard, PoisonError};

use super::{Journal, StoreError};
use crate::domain::{Record, Revision};

/// Keeps every record in memory; gone with the process.
#[derive(Debug, Default)]
pub struct MemoryJournal {
    records: Mutex<Vec<Record>>,
}

impl MemoryJournal {
    pub fn new() -> Self {
        Self::default()
    }

    fn records(&self) -> MutexGuard<'_, Vec<Record>> {
        // A panic while holding the lock cannot leave the Vec half-written; keep going.
        self.records.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Journal for MemoryJournal {
    fn append(&self, batch: &[Record]) -> Result<(), StoreError> {
        let mut records = self.records();
        let first = records.last().map_or(1, |r| r.revision + 1);
        for (expected, record) in (first..).zip(batch) {
            if record.revision != expected {
                return Err(StoreError::Gap {
                    expected,
                    got: record.revision,
                });
            }
        }
        records.extend_from_slice(batch);
        Ok(())
    }

    fn read_from(&self, from: Revision, limit: usize) -> Result<Vec<Record>, StoreError> {
        let records = self.records();
        // Revisions start at 1 and have no gaps, so a revision's index is revision - 1.
        let start = usize::try_from(from.max(1) - 1).unwrap_or(usize::MAX);
        Ok(records.iter().skip(start).take(limit).cloned().collect())
    }

    fn last_revision(&self) -> Result<Revision, StoreError> {
        Ok(self.records().last().map_or(0, |r| r.revision))
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

    #[test]
    fn appends_in_order_and_reads_from_a_revision() {
        let journal = MemoryJournal::new();
        journal.append(&[record(1), record(2), record(3)]).unwrap();
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
        journal.append(&[record(1)]).unwrap();
        assert!(matches!(
            journal.append(&[record(3)]),
            Err(StoreError::Gap {
                expected: 2,
                got: 3
            })
        ));
    }
}
