//! The one writer. A single task owns the `State`, takes commands in order, and hands each
//! batch's events, replies and deliveries to the committer, which makes them durable before
//! anyone sees them. Everything that changes state goes through here.

mod clock;
mod commit;
mod handle;
mod inbox;
mod job;
mod requests;
mod standing;

pub use clock::{Clock, SystemClock};
pub use handle::{Committed, EngineHandle, Outbox, Password, RequestKey};
pub use inbox::DEFAULT_INBOX_DEPTH;
pub use standing::Standings;

use std::collections::VecDeque;
use std::sync::Arc;

use thiserror::Error;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, error, info};

use self::commit::{Committer, Pending, SnapshotTaken, VisibleRevision};
use self::job::{Detach, Job};
use self::requests::RequestLedger;
use crate::domain::commands::{Command, DetachStream};
use crate::domain::{DomainError, Millis, Principal, Record, Revision, Snapshot, State};
use crate::store::{Journal, Retention, StoreError};
use crate::watch::{WatchConfig, WatchHub};

/// Commands taken per batch: large enough to amortise a commit, small enough that one
/// batch's replies are not held back long.
const MAX_BATCH: usize = 256;
/// Batches on their way to the journal before the engine waits for the committer.
const COMMIT_DEPTH: usize = 64;
/// Records read per page while replaying.
const REPLAY_PAGE: usize = 4096;

/// How the engine keeps its journal in shape (defaults: `ServerConfig`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineConfig {
    /// A snapshot is taken after this many events, so start-up replays at most about that many.
    pub snapshot_every: u64,
    /// Events kept behind the latest snapshot, for watches to resume from.
    pub retain_events: u64,
    /// How long a request id is remembered.
    pub request_window_ms: Millis,
    /// Writes (and, apart, reads) that may wait for the engine; one more is refused at once
    /// (see `inbox`).
    pub inbox_depth: usize,
}

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
}

enum Message {
    Job(Box<dyn Job>),
    /// Finish what was sent before, write a last snapshot, close the journal, then answer.
    Close(oneshot::Sender<()>),
}

pub struct Engine {
    state: State,
    config: EngineConfig,
    clock: Arc<dyn Clock>,
    revision: Revision,
    /// The revision of the latest snapshot taken.
    snapshot_revision: Revision,
    requests: RequestLedger,
    /// Commands the engine gives itself (timers, cleanup), run before the next batch.
    internal: VecDeque<Box<dyn Job>>,
    to_committer: mpsc::Sender<Pending>,
    visible: VisibleRevision,
    standings: Arc<Standings>,
}

impl Engine {
    /// Rebuilds state from the latest snapshot and the journal after it, then starts the
    /// engine task and its committer thread.
    pub fn start(
        mut state: State,
        journal: Arc<dyn Journal>,
        clock: Arc<dyn Clock>,
        config: EngineConfig,
        watch: WatchConfig,
    ) -> Result<EngineHandle, RecoveryError> {
        let started = std::time::Instant::now();
        let mut revision = 0;
        if let Some(stored) = journal.latest_snapshot()? {
            let snapshot: Snapshot =
                serde_json::from_str(&stored.body).map_err(|e| RecoveryError::Snapshot {
                    revision: stored.revision,
                    reason: e.to_string(),
                })?;
            if !snapshot.is_current_format() {
                return Err(RecoveryError::Snapshot {
                    revision: stored.revision,
                    reason: "written in a format this server does not know".into(),
                });
            }
            state.restore(snapshot);
            revision = stored.revision;
        }
        let snapshot_revision = revision;
        let first = journal.first_revision()?;
        if first > revision + 1 {
            return Err(RecoveryError::Missing {
                first,
                snapshot: revision,
            });
        }
        loop {
            let page = journal.read_from(revision + 1, REPLAY_PAGE)?;
            let Some(last) = page.last() else { break };
            revision = last.revision;
            for record in &page {
                state.apply(&record.event);
            }
        }
        let now = clock.now();
        state.finish_replay(now);
        let since = now.saturating_sub(config.request_window_ms);
        let requests = RequestLedger::recover(journal.remembered_requests(since)?);
        info!(
            revision,
            snapshot_revision,
            replayed = revision - snapshot_revision,
            remembered_requests = requests.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "state recovered"
        );

        let watch = WatchHub::new(Arc::clone(&journal), revision, watch);
        let (to_engine, from_committer) = mpsc::unbounded_channel();
        let (to_committer, batches) = mpsc::channel(COMMIT_DEPTH);
        let visible = VisibleRevision::new(revision);
        let committer =
            Committer::spawn(journal, watch.clone(), to_engine, batches, visible.clone())?;
        let (tx, rx) = inbox::channel(config.inbox_depth);
        let standings = Arc::new(Standings::of(&state));
        let engine = Engine {
            state,
            config,
            clock,
            revision,
            snapshot_revision,
            requests,
            internal: VecDeque::new(),
            to_committer,
            visible,
            standings: Arc::clone(&standings),
        };
        tokio::spawn(engine.run(rx, from_committer, committer));
        Ok(EngineHandle::new(tx, watch, standings))
    }

    async fn run(
        mut self,
        mut rx: inbox::InboxReceiver,
        mut from_committer: mpsc::UnboundedReceiver<DetachStream>,
        committer: std::thread::JoinHandle<()>,
    ) {
        let mut messages = Vec::with_capacity(MAX_BATCH);
        let mut closing = None;
        loop {
            // Timers are commands: sleep until the next one is due unless a command comes first.
            let wake = self.state.next_deadline().map(|at| {
                let wait = at.saturating_sub(self.clock.now());
                tokio::time::Instant::now() + std::time::Duration::from_millis(wait)
            });
            tokio::select! {
                received = rx.recv_many(&mut messages, MAX_BATCH) => {
                    if received == 0 {
                        break;
                    }
                }
                Some(command) = from_committer.recv() => {
                    self.internal.push_back(Box::new(Detach { command, reply: None }));
                }
                () = sleep_until(wake) => {}
            }
            let mut batch = Vec::with_capacity(messages.len());
            for message in messages.drain(..) {
                match message {
                    Message::Job(job) => batch.push(job),
                    // Commands after a close are dropped: their callers hear the engine stopped.
                    Message::Close(done) => {
                        closing = Some(done);
                        break;
                    }
                }
            }
            let mut pending = self.process(batch);
            // Commands the engine gave itself run now, not when the next caller comes.
            while !self.internal.is_empty() {
                let more = self.process(Vec::new());
                merge(&mut pending, more);
            }
            if closing.is_some() && self.revision > self.snapshot_revision {
                // A clean stop leaves a snapshot, so the next start replays nothing.
                pending.snapshot = Some(self.snapshot());
            }
            if pending.only_answers() && self.visible.get() == self.revision {
                // Reads (and refusals) of a state that is all durable and visible already:
                // answered here, without a round trip through the committer thread.
                for held in pending.replies {
                    held.send();
                }
            } else if self.to_committer.send(pending).await.is_err() {
                // State now holds events the journal lost: stop rather than serve a lie.
                error!("the committer stopped; the engine stops");
                return;
            }
            if closing.is_some() {
                break;
            }
        }
        // Closing the channel lets the committer finish what it holds and close the journal.
        drop(self.to_committer);
        let joined = tokio::task::spawn_blocking(move || committer.join()).await;
        if !matches!(joined, Ok(Ok(()))) {
            error!("the committer thread ended abnormally");
        }
        if let Some(done) = closing {
            let _ = done.send(());
        }
        debug!("engine stopped");
    }

    fn process(&mut self, batch: Vec<Box<dyn Job>>) -> Pending {
        let now = self.clock.now();
        self.requests
            .forget_before(now.saturating_sub(self.config.request_window_ms));
        if self.state.next_deadline().is_some_and(|at| at <= now) {
            self.internal.push_front(Box::new(job::Tick));
        }
        let mut pending = Pending::default();
        let internal: Vec<Box<dyn Job>> = self.internal.drain(..).collect();
        for job in internal.into_iter().chain(batch) {
            job.run(self, now, &mut pending);
        }
        if self.revision - self.snapshot_revision >= self.config.snapshot_every {
            pending.snapshot = Some(self.snapshot());
        }
        pending
    }

    /// Runs one command on the state and adds its events to the batch.
    fn apply<C: Command>(
        &mut self,
        command: C,
        principal: &Principal,
        now: Millis,
        pending: &mut Pending,
    ) -> Result<Committed<C::Answer>, DomainError> {
        let (answer, decided) = self.state.execute_as(command, principal, now)?;
        debug_assert!(
            !C::READS_ONLY || decided.is_empty(),
            "a command marked READS_ONLY recorded events"
        );
        for d in decided {
            self.standings.observe(&d.event);
            self.revision += 1;
            if !d.audience.is_empty() {
                pending.deliveries.push((pending.records.len(), d.audience));
            }
            pending.records.push(Arc::new(Record {
                revision: self.revision,
                time_ms: now,
                actor: principal.actor.clone(),
                event: d.event,
            }));
        }
        Ok(Committed {
            answer,
            revision: self.revision,
        })
    }

    /// The state's records as of the last record, and how much of the journal they let go.
    /// Only the copy happens here; the committer serialises and writes it.
    fn snapshot(&mut self) -> SnapshotTaken {
        let now = self.clock.now();
        self.snapshot_revision = self.revision;
        SnapshotTaken {
            revision: self.revision,
            time_ms: now,
            state: self.state.snapshot(),
            retention: Retention {
                events: self.config.retain_events,
                requests_since: now.saturating_sub(self.config.request_window_ms),
            },
        }
    }
}

/// Appends a later batch of the same engine turn to an earlier one.
fn merge(into: &mut Pending, more: Pending) {
    let offset = into.records.len();
    into.records.extend(more.records);
    into.requests.extend(more.requests);
    into.attach.extend(more.attach);
    into.detach.extend(more.detach);
    into.deliveries.extend(
        more.deliveries
            .into_iter()
            .map(|(index, audience)| (index + offset, audience)),
    );
    into.replies.extend(more.replies);
    if more.snapshot.is_some() {
        into.snapshot = more.snapshot;
    }
}

/// Sleeps until `at`, or forever when there is no timer.
async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
