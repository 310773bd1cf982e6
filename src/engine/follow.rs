//! A cluster node's engine between leading and following. A follower folds the records the
//! leader appends to the shared journal, in revision order, publishes them to its watches and
//! answers reads at the revision it has folded. Told to lead (its node took the lease, so
//! nobody else can append), it reads the journal to its end, takes over the request ledger
//! and the timers (their deadlines are in the state) and runs commands. Told to follow, it
//! stops writing; whatever it had on its way to the journal fails there (the lease fences it),
//! and then its state is rebuilt from the journal before it answers anything.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;
use tracing::{info, warn};

use super::commit::Pending;
use super::handle::Committed;
use super::recovery::RecoveryError;
use super::requests::RequestLedger;
use super::{Engine, EngineStatus, Mode};
use crate::domain::{DomainError, Record, Revision};
use crate::store::{Fence, StoreError};

/// Records read per page while following.
const FOLLOW_PAGE: usize = 1024;
/// How often a follower reads the journal without a wake-up: the most a lost notification
/// delays it.
const LOOK_EVERY: Duration = Duration::from_millis(500);
/// How soon a follower tries again after a failed read, or while its last batches as leader
/// are still on their way to the journal.
const RETRY_AFTER: Duration = Duration::from_millis(100);

pub(super) fn following_now() -> Mode {
    Mode::Following {
        next_look: tokio::time::Instant::now(),
        stale: false,
    }
}

/// What a follower answers to a write that reached it (the edge forwards writes to the
/// leader, so this is a hand-over's answer).
pub(super) fn not_leader() -> DomainError {
    DomainError::Unavailable(
        "this node does not lead the cluster at the moment (a hand-over is in progress): \
         retry in a moment"
            .into(),
    )
}

/// What a node rebuilding its state answers.
pub(super) fn rebuilding() -> DomainError {
    DomainError::Unavailable(
        "this node is rebuilding its state from the journal: retry in a moment or on \
         another node"
            .into(),
    )
}

impl Engine {
    /// A follower's turn: rebuilds its state if it must, else folds what the journal has
    /// after it. Failures are retried shortly; they leave the state as durable as it was.
    pub(super) async fn look(&mut self) {
        let Mode::Following { stale, .. } = self.mode else {
            return;
        };
        let result = if stale {
            self.rebuild_following().await
        } else {
            self.fold_new().await
        };
        let wait = match result {
            Ok(()) => LOOK_EVERY,
            Err(e) => {
                warn!(error = %e, "following the journal failed; trying again");
                if matches!(e, RecoveryError::Store(StoreError::Gap { .. })) {
                    // What this node had not folded yet was compacted away: start over
                    // from the latest snapshot.
                    self.mark_stale();
                }
                RETRY_AFTER
            }
        };
        if let Mode::Following { next_look, .. } = &mut self.mode {
            *next_look = tokio::time::Instant::now() + wait;
        }
    }

    /// Folds every record the journal has after this node's revision, publishing each.
    async fn fold_new(&mut self) -> Result<(), RecoveryError> {
        loop {
            let journal = Arc::clone(&self.journal);
            let from = self.revision + 1;
            let page =
                tokio::task::spawn_blocking(move || journal.read_from(from, FOLLOW_PAGE)).await??;
            let full = page.len() == FOLLOW_PAGE;
            self.fold(page)?;
            if !full {
                break;
            }
        }
        self.state.finish_following(self.clock.now());
        Ok(())
    }

    /// Applies records that follow this node's revision without a gap, then shows them.
    fn fold(&mut self, page: Vec<Record>) -> Result<(), RecoveryError> {
        let mut records = Vec::with_capacity(page.len());
        for record in page {
            if record.revision != self.revision + 1 {
                return Err(StoreError::Gap {
                    expected: self.revision + 1,
                    got: record.revision,
                }
                .into());
            }
            self.state.apply(&record.event);
            self.standings.observe(&record.event);
            self.revision = record.revision;
            records.push(Arc::new(record));
        }
        self.watch.publish(&records);
        self.visible.set(self.revision);
        Ok(())
    }

    /// Rebuilds the state from the journal, as start-up does, then publishes what watches
    /// have not seen of it yet.
    async fn rebuild_following(&mut self) -> Result<(), RecoveryError> {
        self.recover_from_journal().await?;
        self.publish_since_watched().await?;
        self.visible.set(self.revision);
        self.mode = Mode::Following {
            next_look: tokio::time::Instant::now(),
            stale: false,
        };
        self.status.send_replace(EngineStatus::Following);
        info!(
            revision = self.revision,
            "state rebuilt from the journal; following it"
        );
        Ok(())
    }

    /// Publishes the journal's records from the last one watches saw up to this node's.
    async fn publish_since_watched(&mut self) -> Result<(), RecoveryError> {
        let mut from = self.watch.committed() + 1;
        while from <= self.revision {
            let journal = Arc::clone(&self.journal);
            let page =
                tokio::task::spawn_blocking(move || journal.read_from(from, FOLLOW_PAGE)).await??;
            let records: Vec<Arc<Record>> = page
                .into_iter()
                .take_while(|r| r.revision <= self.revision)
                .map(Arc::new)
                .collect();
            let Some(last) = records.last() else {
                warn!(
                    from,
                    "records watches have not seen were compacted away; watches resume after them"
                );
                break;
            };
            if records[0].revision != from {
                warn!(
                    from,
                    "records watches have not seen were compacted away; watches resume after them"
                );
            }
            from = last.revision + 1;
            self.watch.publish(&records);
        }
        Ok(())
    }

    /// The journal lost changes this node made: nothing of its state is served until it
    /// has been rebuilt.
    pub(super) fn lost_appends(&mut self) {
        // The committer refuses batches of the old epoch from here on.
        self.epoch += 1;
        self.mark_stale();
        warn!(
            revision = self.revision,
            "the journal refused this node's changes (it no longer leads, or the database \
             failed): rebuilding from the journal and following it"
        );
    }

    fn mark_stale(&mut self) {
        self.internal.clear();
        self.mode = Mode::Following {
            next_look: tokio::time::Instant::now(),
            stale: true,
        };
        self.status.send_replace(EngineStatus::Recovering);
    }

    /// Takes over: called once this node holds the lease, so the journal grows no more but
    /// by this engine. Reads it to its end, takes over the remembered requests, gives every
    /// client a grace period to reconnect in, and runs commands and timers from here on.
    pub(super) async fn lead(&mut self) -> Result<Revision, RecoveryError> {
        if self.writing() {
            return Ok(self.revision);
        }
        self.check_lease()?;
        let stale = matches!(self.mode, Mode::Following { stale: true, .. });
        if stale || self.visible.get() < self.revision {
            self.rebuild_following().await?;
        }
        self.fold_new().await?;
        let journal = Arc::clone(&self.journal);
        let now = self.clock.now();
        let since = now.saturating_sub(self.config.request_window_ms);
        let remembered =
            tokio::task::spawn_blocking(move || journal.remembered_requests(since)).await??;
        self.requests = RequestLedger::recover(remembered, self.config.max_remembered_requests);
        // The lease may have been let go of while the journal was read.
        self.check_lease()?;
        self.state.finish_replay(now);
        self.snapshot_revision = self.revision;
        self.mode = Mode::Writing;
        self.status.send_replace(EngineStatus::Writable);
        info!(
            revision = self.revision,
            "leading: commands and timers run here"
        );
        Ok(self.revision)
    }

    /// Whether this node holds the lease (its keeper lets go of it before telling the engine
    /// to follow, so an order to lead that comes too late is refused here).
    fn check_lease(&self) -> Result<(), RecoveryError> {
        match self.fence.as_ref().map(Fence::held) {
            Some(Some(_)) | None => Ok(()),
            Some(None) => Err(RecoveryError::LeaseLost),
        }
    }

    /// Stops writing: this node no longer holds the lease. Its desktop streams end (their
    /// desktops reconnect to the leader through any node), and it follows the journal.
    pub(super) async fn follow(&mut self) {
        if !self.writing() {
            return;
        }
        self.internal.clear();
        self.mode = following_now();
        self.status.send_replace(EngineStatus::Following);
        // Waits for what is on its way to the journal: it lands (the state is the journal's)
        // or fails (the state is rebuilt from the journal).
        let (reply, landed) = oneshot::channel();
        let mut goodbye = Pending {
            epoch: self.epoch,
            end_streams: true,
            ..Default::default()
        };
        let revision = self.revision;
        goodbye.answer(
            reply,
            Ok(Committed {
                answer: (),
                revision,
            }),
        );
        if self.to_committer.send(goodbye).await.is_err() || !matches!(landed.await, Ok(Ok(_))) {
            self.mark_stale();
        }
        info!(revision, "no longer leading: following the journal");
    }
}
