//! The one writer. A single task owns the `State`, takes commands in order, and hands each
//! batch's events, replies and deliveries to the committer, which makes them durable before
//! anyone sees them. Everything that changes state goes through here.
//!
//! When the journal cannot be written the engine rebuilds its state from the journal, as
//! start-up does, and runs degraded: reads are answered from that durable state, every other
//! command is refused with `UNAVAILABLE`, timers wait, and the journal is probed every second
//! until it takes a write again. `EngineHandle::status` tells the server, which reports it in
//! health.
//!
//! On a cluster node (`Engine::start_following`) the engine starts as a follower: it folds what
//! the leader writes to the shared journal (`follow`), answers reads from that, refuses writes
//! (the edge forwards them to the leader) and runs no timers. Told to lead, it catches up with
//! the journal and takes commands; told to follow again, or when an append fails (the lease
//! moved on), it stops writing and follows.

mod clock;
mod commit;
mod follow;
mod handle;
mod history;
mod inbox;
mod job;
mod recovery;
mod requests;
mod standing;

pub use clock::{Clock, SystemClock};
pub use handle::{Committed, EngineHandle, Outbox, Password, RequestKey};
pub use history::History;
pub use inbox::DEFAULT_INBOX_DEPTH;
pub use recovery::RecoveryError;
pub use standing::Standings;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tracing::{debug, error, info, warn};

use self::commit::{Committer, Notice, Pending, SnapshotTaken, VisibleRevision};
use self::job::{Detach, Job};
use self::recovery::{Recovered, recover};
use self::requests::RequestLedger;
use crate::domain::commands::Command;
use crate::domain::{DomainError, Millis, Principal, Record, Revision, State};
use crate::store::{ClosedTask, Fence, Journal, Retention};
use crate::watch::{WatchConfig, WatchHub};

/// Commands taken per batch: large enough to amortise a commit, small enough that one
/// batch's replies are not held back long.
const MAX_BATCH: usize = 256;
/// Batches on their way to the journal before the engine waits for the committer.
const COMMIT_DEPTH: usize = 64;
/// How often a journal that failed is tried again.
const PROBE_EVERY: Duration = Duration::from_secs(1);

/// Whether the engine takes writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineStatus {
    /// Commands are run and made durable.
    Writable,
    /// The journal cannot be written: reads are answered from the durable state, every other
    /// command gets `UNAVAILABLE`.
    Degraded,
    /// A cluster follower: reads are answered from the journal as far as it has folded it,
    /// every other command gets `UNAVAILABLE` (the edge forwards them to the leader).
    Following,
    /// A cluster node whose state held changes the journal lost: it answers nothing until it
    /// has rebuilt it from the journal.
    Recovering,
}

impl EngineStatus {
    /// Whether the engine answers reads.
    pub fn serves_reads(self) -> bool {
        !matches!(self, EngineStatus::Recovering)
    }
}

/// What the engine does with commands, timers and the journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Runs commands and timers, and writes the journal.
    Writing,
    /// A single node whose journal failed: the journal is probed at `next_probe`.
    Degraded { next_probe: tokio::time::Instant },
    /// A cluster follower: the journal is read again at `next_look` (or when woken). `stale`:
    /// the state holds changes the journal lost and is rebuilt before anything else.
    Following {
        next_look: tokio::time::Instant,
        stale: bool,
    },
}

/// How the engine keeps its journal in shape (defaults: `ServerConfig`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineConfig {
    /// A snapshot is taken after this many events, so start-up replays at most about that many.
    pub snapshot_every: u64,
    /// Events kept behind the latest snapshot, for watches to resume from.
    pub retain_events: u64,
    /// How long a request id is remembered.
    pub request_window_ms: Millis,
    /// How many request ids are remembered at most.
    pub max_remembered_requests: usize,
    /// How long the journal keeps a closed task in its history.
    pub task_history_ms: Millis,
    /// Writes (and, apart, reads) that may wait for the engine; one more is refused at once
    /// (see `inbox`).
    pub inbox_depth: usize,
}

/// What makes an engine a cluster node's (`Engine::start_following`).
pub struct Membership {
    /// Bumped when the journal has grown.
    pub wakeups: watch::Receiver<Revision>,
    /// Set by the node's lease keeper: the epoch the journal's appends are fenced with.
    pub fence: Fence,
}

enum Message {
    Job(Box<dyn Job>),
    /// This node holds the lease: catch up with the journal, then take commands. Answered
    /// with the revision writing starts after.
    Lead(oneshot::Sender<Result<Revision, RecoveryError>>),
    /// This node no longer holds the lease: stop writing and follow the journal.
    Follow,
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
    /// Read again when the engine rebuilds its state, and probed while degraded.
    journal: Arc<dyn Journal>,
    /// The state before any event, which a rebuild starts from.
    initial: State,
    /// Bumped by every rebuild; batches carry it so the committer refuses stale ones.
    epoch: u64,
    mode: Mode,
    /// A cluster node's wake-ups: the journal has grown (a hint; it is read on a timer too).
    wakeups: Option<watch::Receiver<Revision>>,
    /// A cluster node's hold on the lease, as its keeper sets it: the engine writes only while
    /// it holds an epoch. `None` on a single node.
    fence: Option<Fence>,
    /// Where followed records are published for watches.
    watch: WatchHub,
    status: watch::Sender<EngineStatus>,
}

/// What a degraded engine answers to every command that would write.
fn journal_unwritable() -> DomainError {
    DomainError::Unavailable(
        "the journal cannot be written (disk full or failing): this server answers reads \
         only until it can write again; retry later or on another server"
            .into(),
    )
}

impl Engine {
    /// Rebuilds state from the latest snapshot and the journal after it, then starts the
    /// engine task and its committer thread.
    pub fn start(
        state: State,
        journal: Arc<dyn Journal>,
        clock: Arc<dyn Clock>,
        config: EngineConfig,
        watch: WatchConfig,
    ) -> Result<EngineHandle, RecoveryError> {
        Self::start_with(state, journal, clock, config, watch, None)
    }

    /// As `start`, for a node of a cluster sharing `journal`: it starts as a follower, woken
    /// by `wakeups` when the journal grows, until told to lead (`EngineHandle::lead`) while
    /// `fence` holds the lease's epoch.
    pub fn start_following(
        state: State,
        journal: Arc<dyn Journal>,
        clock: Arc<dyn Clock>,
        config: EngineConfig,
        watch: WatchConfig,
        membership: Membership,
    ) -> Result<EngineHandle, RecoveryError> {
        Self::start_with(state, journal, clock, config, watch, Some(membership))
    }

    fn start_with(
        state: State,
        journal: Arc<dyn Journal>,
        clock: Arc<dyn Clock>,
        config: EngineConfig,
        watch: WatchConfig,
        membership: Option<Membership>,
    ) -> Result<EngineHandle, RecoveryError> {
        let initial = state.clone();
        let Recovered {
            state,
            revision,
            snapshot_revision,
            requests,
            retired,
        } = recover(state, journal.as_ref(), clock.now(), &config)?;
        history::backfill(journal.as_ref(), &state, retired)?;

        let watch = WatchHub::new(Arc::clone(&journal), revision, watch);
        let history = History::new(Arc::clone(&journal));
        let (to_engine, from_committer) = mpsc::unbounded_channel();
        let (to_committer, batches) = mpsc::channel(COMMIT_DEPTH);
        let visible = VisibleRevision::new(revision);
        let committer = Committer::spawn(
            Arc::clone(&journal),
            watch.clone(),
            to_engine,
            batches,
            visible.clone(),
        )?;
        let (tx, rx) = inbox::channel(config.inbox_depth);
        let standings = Arc::new(Standings::of(&state));
        let (wakeups, fence) = membership.map(|m| (m.wakeups, m.fence)).unzip();
        let (mode, first_status) = if fence.is_some() {
            (follow::following_now(), EngineStatus::Following)
        } else {
            (Mode::Writing, EngineStatus::Writable)
        };
        let (status, status_rx) = watch::channel(first_status);
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
            journal,
            initial,
            epoch: 0,
            mode,
            wakeups,
            fence,
            watch: watch.clone(),
            status,
        };
        let applied = engine.visible.subscribe();
        tokio::spawn(engine.run(rx, from_committer, committer));
        Ok(EngineHandle::new(
            tx, watch, standings, history, status_rx, applied,
        ))
    }

    async fn run(
        mut self,
        mut rx: inbox::InboxReceiver,
        mut from_committer: mpsc::UnboundedReceiver<Notice>,
        committer: std::thread::JoinHandle<()>,
    ) {
        let mut messages = Vec::with_capacity(MAX_BATCH);
        let mut closing = None;
        let mut wakeups = self.wakeups.take();
        loop {
            // Timers are commands: sleep until the next one is due unless a command comes
            // first. While degraded they wait, and the journal's probe is due instead; a
            // follower runs none, and reads the journal again instead.
            let wake = match self.mode {
                Mode::Degraded { next_probe } => Some(next_probe),
                Mode::Following { next_look, .. } => Some(next_look),
                Mode::Writing => self.state.next_deadline().map(|at| {
                    let wait = at.saturating_sub(self.clock.now());
                    tokio::time::Instant::now() + Duration::from_millis(wait)
                }),
            };
            let mut roles = Vec::new();
            tokio::select! {
                received = rx.recv_many(&mut messages, MAX_BATCH) => {
                    if received == 0 {
                        break;
                    }
                }
                Some(notice) = from_committer.recv() => match notice {
                    Notice::Detach(command) => {
                        self.internal.push_back(Box::new(Detach { command, reply: None }));
                    }
                    Notice::JournalFailed if self.fence.is_some() => self.lost_appends(),
                    Notice::JournalFailed => {
                        if let Err(e) = self.rebuild().await {
                            // Its state holds what the journal lost: stop rather than serve it.
                            error!(error = %e, "rebuilding from the journal failed; the engine stops");
                            break;
                        }
                    }
                },
                () = sleep_until(wake) => {
                    let now = tokio::time::Instant::now();
                    match self.mode {
                        Mode::Degraded { next_probe } if next_probe <= now => self.probe().await,
                        Mode::Following { next_look, .. } if next_look <= now => self.look().await,
                        _ => {}
                    }
                }
                () = woken(&mut wakeups) => {
                    if matches!(self.mode, Mode::Following { .. }) {
                        self.look().await;
                    }
                }
            }
            let mut batch = Vec::with_capacity(messages.len());
            for message in messages.drain(..) {
                match message {
                    Message::Job(job) => batch.push(job),
                    Message::Lead(done) => roles.push(Some(done)),
                    Message::Follow => roles.push(None),
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
            if closing.is_some() && self.writing() && self.revision > self.snapshot_revision {
                // A clean stop leaves a snapshot, so the next start replays nothing.
                pending.snapshot = Some(self.snapshot());
            }
            pending.epoch = self.epoch;
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
            // Role changes after the batch they came with: its reads saw the old role.
            for role in roles {
                match role {
                    Some(done) => {
                        let _ = done.send(self.lead().await);
                    }
                    None => self.follow().await,
                }
            }
            if self.writing() && self.fence.as_ref().is_some_and(|f| f.held().is_none()) {
                // The lease was let go of without a word to the engine: stop writing anyway.
                self.follow().await;
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

    fn writing(&self) -> bool {
        self.mode == Mode::Writing
    }

    /// Why a command is refused without being run, if it is: a write while the engine does
    /// not write, anything while its state must be rebuilt first.
    fn refusal(&self, reads_only: bool) -> Option<DomainError> {
        match self.mode {
            Mode::Writing => None,
            Mode::Degraded { .. } => (!reads_only).then(journal_unwritable),
            Mode::Following { stale: true, .. } => Some(follow::rebuilding()),
            Mode::Following { stale: false, .. } => (!reads_only).then(follow::not_leader),
        }
    }

    /// After a failed append: forgets every change the journal does not hold by rebuilding
    /// from it as start-up does, and turns degraded until a probe of the journal succeeds.
    async fn rebuild(&mut self) -> Result<(), RecoveryError> {
        self.recover_from_journal().await?;
        // All of it is durable: reads of it may be answered at once.
        self.visible.set(self.revision);
        self.epoch += 1;
        self.mode = Mode::Degraded {
            next_probe: tokio::time::Instant::now() + PROBE_EVERY,
        };
        self.status.send_replace(EngineStatus::Degraded);
        warn!(
            revision = self.revision,
            "the journal cannot be written: state rebuilt from it; reads are answered, writes \
             refused with UNAVAILABLE, until it can be written again"
        );
        Ok(())
    }

    /// Replaces the state with the journal's, rebuilt as start-up does: every change the
    /// journal does not hold is forgotten.
    async fn recover_from_journal(&mut self) -> Result<(), RecoveryError> {
        let journal = Arc::clone(&self.journal);
        let initial = self.initial.clone();
        let now = self.clock.now();
        let config = self.config;
        let recovered =
            tokio::task::spawn_blocking(move || recover(initial, journal.as_ref(), now, &config))
                .await??;
        self.state = recovered.state;
        self.revision = recovered.revision;
        self.snapshot_revision = recovered.snapshot_revision;
        self.requests = recovered.requests;
        self.standings.reset(&self.state);
        // Streams the committer cut off are gone with the state that knew them.
        self.internal.clear();
        Ok(())
    }

    /// Tries a write; on success writes resume, else the next try is a second away.
    async fn probe(&mut self) {
        let journal = Arc::clone(&self.journal);
        match tokio::task::spawn_blocking(move || journal.probe()).await {
            Ok(Ok(())) => {
                self.mode = Mode::Writing;
                self.status.send_replace(EngineStatus::Writable);
                info!(
                    revision = self.revision,
                    "the journal can be written again: writes resume"
                );
            }
            Ok(Err(e)) => {
                debug!(error = %e, "the journal still cannot be written");
                self.mode = Mode::Degraded {
                    next_probe: tokio::time::Instant::now() + PROBE_EVERY,
                };
            }
            Err(e) => {
                warn!(error = %e, "probing the journal failed");
                self.mode = Mode::Degraded {
                    next_probe: tokio::time::Instant::now() + PROBE_EVERY,
                };
            }
        }
    }

    fn process(&mut self, batch: Vec<Box<dyn Job>>) -> Pending {
        let now = self.clock.now();
        self.requests
            .forget_before(now.saturating_sub(self.config.request_window_ms));
        if self.writing() && self.state.next_deadline().is_some_and(|at| at <= now) {
            self.internal.push_front(Box::new(job::Tick));
        }
        let mut pending = Pending::default();
        let internal: Vec<Box<dyn Job>> = self.internal.drain(..).collect();
        for job in internal.into_iter().chain(batch) {
            job.run(self, now, &mut pending);
        }
        if self.writing() && self.revision - self.snapshot_revision >= self.config.snapshot_every {
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
            if let Some(task) = history::closed_by(&d.event, &self.state) {
                pending.closed.push(ClosedTask {
                    revision: self.revision,
                    closed_at: now,
                    task,
                });
            }
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
                history_since: now.saturating_sub(self.config.task_history_ms),
            },
        }
    }
}

/// Appends a later batch of the same engine turn to an earlier one.
fn merge(into: &mut Pending, more: Pending) {
    let offset = into.records.len();
    into.records.extend(more.records);
    into.requests.extend(more.requests);
    into.closed.extend(more.closed);
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
    into.end_streams |= more.end_streams;
}

/// Returns when the journal is said to have grown; never without wake-ups, or once they end.
async fn woken(wakeups: &mut Option<watch::Receiver<Revision>>) {
    if let Some(rx) = wakeups {
        if rx.changed().await.is_ok() {
            return;
        }
        // The journal is still read on a timer.
        *wakeups = None;
    }
    std::future::pending().await
}

/// Sleeps until `at`, or forever when there is no timer.
async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
