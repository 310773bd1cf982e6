//! Start-up recovery, also run when the journal fails: the state rebuilt from the newest
//! snapshot that decodes (falling back to the one before it) and the events after it.

use thiserror::Error;
use tracing::{info, warn};

use super::EngineConfig;
use super::requests::RequestLedger;
use crate::domain::routing::model::Task;
use crate::domain::{Millis, Revision, Snapshot, State};
use crate::store::{Journal, StoreError};

/// Records read per page while replaying.
const REPLAY_PAGE: usize = 4096;

#[derive(Debug, Error)]
pub enum RecoveryError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the snapshot at revision {revision} is unreadable: {reason}")]
    Snapshot { revision: Revision, reason: String },
    #[error(
        "the journal starts at revision {first}, after the snapshot's {snapshot}: events are missing"
    )]
    Missing { first: Revision, snapshot: Revision },
    #[error("starting the committer thread: {0}")]
    Thread(#[from] std::io::Error),
    #[error("this node let go of the lease before it could take over")]
    LeaseLost,
    #[error("the recovery task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// What recovery rebuilt from the journal.
pub(super) struct Recovered {
    pub state: State,
    pub revision: Revision,
    pub snapshot_revision: Revision,
    pub requests: RequestLedger,
    /// Closed tasks past the retention that recovery dropped from memory.
    pub retired: Vec<Task>,
}

/// Rebuilds state from the newest snapshot that decodes and the journal after it, then the
/// remembered requests: what start-up does, and what a rebuild after a failed append does.
pub(super) fn recover(
    mut state: State,
    journal: &dyn Journal,
    now: Millis,
    config: &EngineConfig,
) -> Result<Recovered, RecoveryError> {
    let started = std::time::Instant::now();
    let mut revision = 0;
    let mut unreadable = None;
    let mut candidate = journal.latest_snapshot()?;
    while let Some(stored) = candidate {
        match decode_snapshot(&stored.body) {
            Ok(snapshot) => {
                state.restore(snapshot);
                revision = stored.revision;
                break;
            }
            Err(reason) => {
                warn!(
                    revision = stored.revision,
                    %reason,
                    "a snapshot does not decode: skipped for the one before it and the events after that"
                );
                candidate = journal.snapshot_before(stored.revision)?;
                unreadable = Some(RecoveryError::Snapshot {
                    revision: stored.revision,
                    reason,
                });
            }
        }
    }
    let snapshot_revision = revision;
    let first = journal.first_revision()?;
    if first > revision + 1 {
        // With no snapshot to start from, an unreadable one is the cause.
        return Err(unreadable.unwrap_or(RecoveryError::Missing {
            first,
            snapshot: revision,
        }));
    }
    loop {
        let page = journal.read_from(revision + 1, REPLAY_PAGE)?;
        let Some(last) = page.last() else { break };
        revision = last.revision;
        for record in &page {
            state.apply(&record.event);
        }
    }
    let retired = state.finish_replay(now);
    let since = now.saturating_sub(config.request_window_ms);
    let requests = RequestLedger::recover(
        journal.remembered_requests(since)?,
        config.max_remembered_requests,
    );
    info!(
        revision,
        snapshot_revision,
        replayed = revision - snapshot_revision,
        remembered_requests = requests.len(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "state recovered"
    );
    Ok(Recovered {
        state,
        revision,
        snapshot_revision,
        requests,
        retired,
    })
}

fn decode_snapshot(body: &str) -> Result<Snapshot, String> {
    let snapshot: Snapshot = serde_json::from_str(body).map_err(|e| e.to_string())?;
    if !snapshot.is_current_format() {
        return Err("written in a format this server does not know".into());
    }
    Ok(snapshot)
}
