//! The journal: where events become durable. The engine appends each batch of events and
//! replies only after `append` returns; watches replay from it; start-up folds it into state.
//! Implementations: `MemoryJournal` (throwaway runs and tests). A SQLite file (the durable
//! default) and PostgreSQL (clusters) implement the same trait.

mod memory;

pub use memory::MemoryJournal;

use thiserror::Error;

use crate::domain::{Record, Revision};

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("journal write failed: {0}")]
    Write(String),
    #[error("journal read failed: {0}")]
    Read(String),
    #[error("journal is not contiguous: expected revision {expected}, got {got}")]
    Gap { expected: Revision, got: Revision },
}

pub trait Journal: Send + Sync + 'static {
    /// Appends records whose revisions follow the last one without a gap. Durable on return.
    fn append(&self, records: &[Record]) -> Result<(), StoreError>;

    /// Up to `limit` records with revision >= `from`, in revision order.
    fn read_from(&self, from: Revision, limit: usize) -> Result<Vec<Record>, StoreError>;

    /// The last revision appended, 0 when empty.
    fn last_revision(&self) -> Result<Revision, StoreError>;
}
