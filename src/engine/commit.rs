//! The committer: a thread of its own that makes the engine's batches durable, then visible.
//! It takes every batch waiting for it, writes them in one transaction (group commit: the more
//! arrive while a commit is in flight, the more the next one carries), and only after the
//! commit publishes their events, delivers them to desktops and sends the replies.
//!
//! When an append fails, nothing of its group is seen: every reply fails with `UNAVAILABLE`,
//! and so does every later batch the engine built on the lost state (it carries the old
//! epoch). The desktops' streams end (their clients reconnect and resume from their revision)
//! and the engine is told, so that it rebuilds its state from the journal.

use std::collections::HashMap;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use tokio::sync::{mpsc, watch};
use tracing::{debug, error, warn};

use super::handle::{Committed, Outbox};
use super::job::{Held, HeldAnswer, Reply};
use crate::domain::commands::DetachStream;
use crate::domain::presence::StreamId;
use crate::domain::{
    ClientId, DomainError, DomainResult, Event, Millis, Record, Revision, Snapshot,
};
use crate::store::{
    Appended, ClosedTask, Journal, RememberedRequest, Retention, StoreError, StoredSnapshot,
};
use crate::watch::{Commit, WatchHub};

/// Batches written in one transaction at most: bounds how long one commit holds replies.
const MAX_GROUP: usize = 64;

/// What the committer tells the engine.
pub(super) enum Notice {
    /// A stream too slow to keep up was cut off: detach it.
    Detach(DetachStream),
    /// An append failed: the engine's state holds changes the journal does not.
    JournalFailed,
}

/// One engine batch on its way to the journal.
#[derive(Default)]
pub(super) struct Pending {
    /// The engine's epoch when it built the batch: a failed append starts a new one, and
    /// batches of an older epoch build on lost changes.
    pub epoch: u64,
    pub records: Vec<Arc<Record>>,
    pub requests: Vec<RememberedRequest>,
    /// Tasks this batch closes, for the history.
    pub closed: Vec<ClosedTask>,
    /// Streams that start receiving their client's events, before this batch's deliveries.
    pub attach: Vec<(ClientId, StreamId, Outbox)>,
    /// Streams that stop, after this batch's deliveries.
    pub detach: Vec<(ClientId, StreamId)>,
    /// Which clients must see which record (by index in `records`).
    pub deliveries: Vec<(usize, Vec<ClientId>)>,
    /// Answers sent once the batch is durable and visible.
    pub replies: Vec<Box<dyn HeldAnswer>>,
    /// A snapshot of the state as of this batch's last record, and what to compact after it.
    pub snapshot: Option<SnapshotTaken>,
    /// Ends every desktop stream after this batch: the node stopped leading, and its
    /// desktops reconnect to whichever node leads now.
    pub end_streams: bool,
}

impl Pending {
    /// Holds a command's answer until the batch is durable.
    pub fn answer<A: Send + 'static>(
        &mut self,
        reply: Reply<A>,
        result: DomainResult<Committed<A>>,
    ) {
        self.replies.push(Box::new(Held { reply, result }));
    }

    /// Whether the batch only answers: nothing to write, publish, attach or detach.
    pub fn only_answers(&self) -> bool {
        self.records.is_empty()
            && self.requests.is_empty()
            && self.closed.is_empty()
            && self.attach.is_empty()
            && self.detach.is_empty()
            && self.snapshot.is_none()
            && !self.end_streams
    }
}

/// The last revision that is both durable and visible (published, delivered, answered). The
/// engine may answer a batch that changes nothing itself, without the committer, when its
/// state is no newer than this: the answers then reveal only what is already durable.
/// Watchable, so that a read that asks for a revision can wait for it.
#[derive(Clone, Debug)]
pub(super) struct VisibleRevision(Arc<watch::Sender<Revision>>);

impl VisibleRevision {
    pub fn new(revision: Revision) -> Self {
        Self(Arc::new(watch::Sender::new(revision)))
    }

    pub fn get(&self) -> Revision {
        *self.0.borrow()
    }

    pub fn set(&self, revision: Revision) {
        self.0.send_replace(revision);
    }

    pub fn subscribe(&self) -> watch::Receiver<Revision> {
        self.0.subscribe()
    }
}

/// The state's records at one revision, to be serialised and saved off the engine task.
pub(super) struct SnapshotTaken {
    pub revision: Revision,
    pub time_ms: Millis,
    pub state: Snapshot,
    pub retention: Retention,
}

pub(super) struct Committer {
    journal: Arc<dyn Journal>,
    watch: WatchHub,
    /// Each streaming client's current stream and where its events go.
    outboxes: HashMap<ClientId, (StreamId, Outbox)>,
    /// Notices for the engine: a stream to detach, a failed append.
    to_engine: mpsc::UnboundedSender<Notice>,
    visible: VisibleRevision,
    /// Batches of an older epoch are refused: they build on a state the journal lost.
    epoch: u64,
    /// Why the last group was refused: what the callers of those older batches are told.
    lost_because: String,
}

impl Committer {
    pub fn spawn(
        journal: Arc<dyn Journal>,
        watch: WatchHub,
        to_engine: mpsc::UnboundedSender<Notice>,
        batches: mpsc::Receiver<Pending>,
        visible: VisibleRevision,
    ) -> std::io::Result<JoinHandle<()>> {
        let committer = Committer {
            journal,
            watch,
            outboxes: HashMap::new(),
            to_engine,
            visible,
            epoch: 0,
            lost_because: String::new(),
        };
        std::thread::Builder::new()
            .name("switchboard-committer".into())
            .spawn(move || committer.run(batches))
    }

    fn run(mut self, mut batches: mpsc::Receiver<Pending>) {
        while let Some(first) = batches.blocking_recv() {
            let mut group = vec![first];
            while group.len() < MAX_GROUP {
                match batches.try_recv() {
                    Ok(next) => group.push(next),
                    Err(_) => break,
                }
            }
            let (current, stale): (Vec<Pending>, Vec<Pending>) =
                group.into_iter().partition(|p| p.epoch == self.epoch);
            fail(stale, &self.lost_because);
            if current.is_empty() {
                continue;
            }
            let records: Vec<&Record> = current
                .iter()
                .flat_map(|p| p.records.iter().map(AsRef::as_ref))
                .collect();
            let requests: Vec<&RememberedRequest> =
                current.iter().flat_map(|p| p.requests.iter()).collect();
            let closed: Vec<&ClosedTask> = current.iter().flat_map(|p| p.closed.iter()).collect();
            // Durable before visible: nothing of the group is seen unless this succeeds. A
            // group with nothing to write (answers held behind earlier batches) needs no
            // transaction.
            let nothing = records.is_empty() && requests.is_empty() && closed.is_empty();
            let started = Instant::now();
            let appended = self.append_unless(nothing, &records, &requests, &closed);
            if let Ok(Some(appended)) = &appended {
                self.watch.tap().committed(Commit {
                    records: records.len(),
                    took: started.elapsed(),
                    sync: appended.sync,
                });
            }
            if let Err(e) = appended {
                error!(
                    error = %e,
                    "journal append failed: its callers get UNAVAILABLE, and writes are \
                     refused until the journal can be written again"
                );
                self.lost_because = refusal(&e);
                fail(current, &self.lost_because);
                self.epoch += 1;
                // Ends every desktop stream: what they were sent may rest on the lost state.
                self.outboxes.clear();
                let _ = self.to_engine.send(Notice::JournalFailed);
                continue;
            }
            for pending in current {
                self.make_visible(pending);
            }
        }
        match self.journal.close() {
            Ok(()) => debug!("committer stopped: the journal is closed"),
            Err(e) => warn!(error = %e, "closing the journal failed"),
        }
    }

    fn append_unless(
        &self,
        nothing: bool,
        records: &[&Record],
        requests: &[&RememberedRequest],
        closed: &[&ClosedTask],
    ) -> Result<Option<Appended>, StoreError> {
        if nothing {
            return Ok(None);
        }
        self.journal.append(records, requests, closed).map(Some)
    }

    fn make_visible(&mut self, pending: Pending) {
        if let Some(taken) = &pending.snapshot {
            self.save_snapshot(taken);
        }
        for record in &pending.records {
            debug!(revision = record.revision, event = ?record.event, "committed");
        }
        self.watch.publish(&pending.records);
        for (client_id, stream, outbox) in pending.attach {
            self.outboxes.insert(client_id, (stream, outbox));
        }
        for (index, audience) in &pending.deliveries {
            self.deliver(&pending.records[*index], audience);
        }
        for record in &pending.records {
            if let Event::ClientUnregistered { client_id } = record.event {
                self.outboxes.remove(&client_id);
            }
        }
        for (client_id, stream) in pending.detach {
            if self
                .outboxes
                .get(&client_id)
                .is_some_and(|(s, _)| *s == stream)
            {
                self.outboxes.remove(&client_id);
            }
        }
        if pending.end_streams {
            self.outboxes.clear();
        }
        for held in pending.replies {
            held.send();
        }
        if let Some(last) = pending.records.last() {
            self.visible.set(last.revision);
        }
    }

    /// Serialises and saves a snapshot; a failure loses nothing, as the events it would have
    /// replaced stay in the journal.
    fn save_snapshot(&self, taken: &SnapshotTaken) {
        let body = match serde_json::to_string(&taken.state) {
            Ok(body) => body,
            Err(e) => {
                error!(error = %e, "serialising a snapshot failed; the journal keeps growing");
                return;
            }
        };
        let stored = StoredSnapshot {
            revision: taken.revision,
            time_ms: taken.time_ms,
            body,
        };
        match self.journal.save_snapshot(&stored, taken.retention) {
            Ok(()) => debug!(revision = taken.revision, "snapshot saved"),
            Err(e) => warn!(error = %e, "saving a snapshot failed; the journal keeps growing"),
        }
    }

    /// Hands an event to each listening client's stream without ever waiting: a stream too
    /// slow to keep its buffer drained is cut off, and its client's grace period starts.
    fn deliver(&mut self, record: &Arc<Record>, audience: &[ClientId]) {
        for client_id in audience {
            let Some((stream, outbox)) = self.outboxes.get(client_id) else {
                continue;
            };
            match outbox.try_send(Arc::clone(record)) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => {
                    warn!(%client_id, "client's event stream is full; disconnecting it");
                    let stream = *stream;
                    self.outboxes.remove(client_id);
                    let _ = self.to_engine.send(Notice::Detach(DetachStream {
                        client_id: *client_id,
                        stream,
                    }));
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    self.outboxes.remove(client_id);
                }
            }
        }
    }
}

/// No caller of these batches is told its change happened; streams they attach end at once.
fn fail(batches: Vec<Pending>, why: &str) {
    for pending in batches {
        for held in pending.replies {
            held.fail(DomainError::Unavailable(why.to_owned()));
        }
    }
}

/// What the callers of a group the journal refused are told.
fn refusal(error: &StoreError) -> String {
    match error {
        StoreError::Fenced { .. } => "this node stopped leading the cluster before this change \
             was written, so it did not happen: retry it (with its request_id) on any node, \
             which forwards it to the new leader"
            .into(),
        _ => "the journal could not be written (disk full or failing), so this change did not \
              happen; the server answers reads only until it can write again: retry later or on \
              another server"
            .into(),
    }
}
