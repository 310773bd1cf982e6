//! A tap on what the journal makes visible: one listener (the server's metrics) that must see
//! every record exactly once, in revision order, which a broadcast subscriber that may lag
//! cannot promise. It is also told how long each commit took and how much it carried.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::domain::{Record, Revision, State};

/// What a tap is told. Called on the committer's thread or the engine's task: it must be
/// quick and must never block.
pub trait Tap: Send + Sync + 'static {
    /// The state as of `revision`, once, before any record after it.
    fn seed(&self, state: &State, revision: Revision);
    /// Records made visible, in revision order, each after the seed's revision once.
    fn visible(&self, records: &[Arc<Record>]);
    /// A journal commit, with what it carried and how long it took.
    fn committed(&self, commit: Commit);
}

/// One journal commit's figures.
#[derive(Debug, Clone, Copy)]
pub struct Commit {
    /// Records written.
    pub records: usize,
    /// The whole append, from the committer's call to its return.
    pub took: Duration,
    /// The durable step alone, where the journal tells it apart (`store::Appended`).
    pub sync: Option<Duration>,
}

/// Where the tap, once set, is found; shared by everything that publishes.
#[derive(Clone, Default)]
pub struct TapSlot(Arc<OnceLock<(Arc<dyn Tap>, Revision)>>);

impl TapSlot {
    /// Seeds `tap` with `state` at `revision` and sets it; records up to `revision` are
    /// not passed on (the seed holds them). Only the first tap set is kept: `false` for
    /// a later one.
    pub fn set(&self, tap: Arc<dyn Tap>, state: &State, revision: Revision) -> bool {
        if self.0.get().is_some() {
            return false;
        }
        tap.seed(state, revision);
        self.0.set((tap, revision)).is_ok()
    }

    pub(super) fn visible(&self, records: &[Arc<Record>]) {
        let Some((tap, after)) = self.0.get() else {
            return;
        };
        let start = records.partition_point(|r| r.revision <= *after);
        if start < records.len() {
            tap.visible(&records[start..]);
        }
    }

    pub fn committed(&self, commit: Commit) {
        if let Some((tap, _)) = self.0.get() {
            tap.committed(commit);
        }
    }
}
