//! Revisioned fan-out: every committed record is published once; each watcher replays what it
//! missed from the journal, then follows live records, in revision order with no gaps or
//! duplicates. A start older than the journal keeps is refused with the oldest revision kept;
//! a start past the next revision (the committed one + 1) is refused with the committed one.
//! An idle watcher gets a progress notice with the current revision now and then. A watcher
//! that falls too far behind is ended with the revision to resume from; it never slows the
//! engine or other watchers.
//!
//! What one watch may hold is bounded, so that a watcher that stops reading (a client that
//! grants no flow-control window) costs little: a replay reads its next page only once the
//! watcher has room for it, pages start small and grow only while the watcher keeps up, and at
//! most `WATCHER_BUFFER` records wait for it. A principal has at most `max_per_principal`
//! watches open at once.
//!
//! Besides the watchers, one tap (`tap`) sees every record as it is published, without ever
//! lagging: what the server's metrics count.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use thiserror::Error;
use tokio::sync::{broadcast, mpsc};

use crate::domain::{Actor, Record, Revision};
use crate::store::Journal;

mod tap;
pub use tap::{Commit, Tap, TapSlot};

/// Records read from the journal per page while replaying: a replay starts with the
/// smallest page and doubles it each time the watcher has taken everything sent.
const REPLAY_PAGE_MIN: usize = 16;
const REPLAY_PAGE_MAX: usize = 512;
/// Records queued towards one watcher's stream.
const WATCHER_BUFFER: usize = 64;

/// How watches behave (defaults: `ServerConfig`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchConfig {
    /// How long a watcher may go without a frame before it gets a progress notice.
    pub progress_every: Duration,
    /// Live records kept for slow watchers before they are cut off.
    pub live_buffer: usize,
    /// Watches one principal may have open at once; one more is refused.
    pub max_per_principal: usize,
}

#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum WatchError {
    #[error("watcher fell behind; resume from revision {resume_from}")]
    Lagged { resume_from: Revision },
    #[error(
        "start_revision {requested} is older than the journal keeps; relist, then watch from \
         revision {oldest} or later"
    )]
    Compacted {
        requested: Revision,
        oldest: Revision,
    },
    /// A start past the next revision: nothing there exists yet, and a watch from it could
    /// only claim revisions that do not exist. The next revision (`head + 1`) is fine.
    #[error(
        "start_revision {requested} is beyond the head revision {head}; watch from revision \
         {next} or earlier",
        next = .head + 1
    )]
    BeyondHead { requested: Revision, head: Revision },
    #[error("journal read failed: {0}")]
    Journal(String),
    #[error(
        "this principal already has {limit} watches open, the most allowed \
         (--max-watches-per-principal); end one first"
    )]
    TooMany { limit: usize },
}

/// What a watcher receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchItem {
    Record(Arc<Record>),
    /// Nothing the watcher asked for happened up to this revision.
    Progress(Revision),
}

#[derive(Clone)]
pub struct WatchHub {
    inner: Arc<Inner>,
}

struct Inner {
    journal: Arc<dyn Journal>,
    committed: AtomicU64,
    live: broadcast::Sender<Arc<Record>>,
    progress_every: Duration,
    max_per_principal: usize,
    /// Open watches per principal; no zero counts.
    open: Mutex<HashMap<Actor, usize>>,
    /// Watches ended for falling too far behind, since start.
    lagged: AtomicU64,
    tap: TapSlot,
}

/// One open watch of a principal, counted until dropped.
struct WatchPermit {
    inner: Arc<Inner>,
    who: Actor,
}

impl Drop for WatchPermit {
    fn drop(&mut self) {
        let mut open = self.inner.open();
        if let Some(count) = open.get_mut(&self.who) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.who);
            }
        }
    }
}

impl Inner {
    fn open(&self) -> std::sync::MutexGuard<'_, HashMap<Actor, usize>> {
        // Counting cannot be left half-done by a panic; keep going.
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

type Sink = mpsc::Sender<Result<WatchItem, WatchError>>;

impl WatchHub {
    pub fn new(journal: Arc<dyn Journal>, committed: Revision, config: WatchConfig) -> Self {
        let (live, _) = broadcast::channel(config.live_buffer.max(1));
        Self {
            inner: Arc::new(Inner {
                journal,
                committed: AtomicU64::new(committed),
                live,
                progress_every: config.progress_every,
                max_per_principal: config.max_per_principal,
                open: Mutex::new(HashMap::new()),
                lagged: AtomicU64::new(0),
                tap: TapSlot::default(),
            }),
        }
    }

    /// The last revision that is durable and visible.
    /// How long a watch may be idle before it gets a progress notice.
    pub fn progress_every(&self) -> Duration {
        self.inner.progress_every
    }

    pub fn committed(&self) -> Revision {
        self.inner.committed.load(Ordering::Acquire)
    }

    /// Makes a durable batch visible. Called by the committer only, in revision order.
    pub fn publish(&self, records: &[Arc<Record>]) {
        if let Some(last) = records.last() {
            self.inner.committed.store(last.revision, Ordering::Release);
        }
        self.inner.tap.visible(records);
        for record in records {
            // No receivers is fine: nobody is watching.
            let _ = self.inner.live.send(Arc::clone(record));
        }
    }

    /// The one tap on published records (see `Tap`).
    pub fn tap(&self) -> &TapSlot {
        &self.inner.tap
    }

    /// Streams the records with revision >= `start` that `filter` keeps, for `who`. `start` 0
    /// means "from the next revision", as does the committed revision + 1. A later `start`
    /// ends the stream at once with [`WatchError::BeyondHead`]. Refused with
    /// [`WatchError::TooMany`] when `who` has as many watches open as allowed.
    pub fn subscribe<F>(
        &self,
        who: &Actor,
        start: Revision,
        filter: F,
    ) -> Result<mpsc::Receiver<Result<WatchItem, WatchError>>, WatchError>
    where
        F: Fn(&Record) -> bool + Send + Sync + 'static,
    {
        let permit = self.admit(who)?;
        // Subscribe before reading the committed revision: anything published after that read
        // arrives live, anything before it is in the journal.
        let live = self.inner.live.subscribe();
        let committed = self.committed();
        let start = if start == 0 { committed + 1 } else { start };
        let (tx, rx) = mpsc::channel(WATCHER_BUFFER);
        if start > committed + 1 {
            // The channel is new and empty: the one error fits.
            let _ = tx.try_send(Err(WatchError::BeyondHead {
                requested: start,
                head: committed,
            }));
            return Ok(rx);
        }
        let hub = self.clone();
        tokio::spawn(async move {
            // The watch counts as open for as long as this task serves it.
            let _permit = permit;
            if let Err(error) = hub.pump(start, committed, live, &tx, filter).await {
                let _ = tx.send(Err(error)).await;
            }
        });
        Ok(rx)
    }

    /// Counts one more open watch of `who`, unless it has as many as allowed.
    fn admit(&self, who: &Actor) -> Result<WatchPermit, WatchError> {
        let limit = self.inner.max_per_principal;
        let mut open = self.inner.open();
        let count = open.entry(who.clone()).or_default();
        if *count >= limit {
            if *count == 0 {
                open.remove(who);
            }
            return Err(WatchError::TooMany { limit });
        }
        *count += 1;
        Ok(WatchPermit {
            inner: Arc::clone(&self.inner),
            who: who.clone(),
        })
    }

    /// Watches open now, over every principal.
    pub fn open_watches(&self) -> usize {
        self.inner.open().values().sum()
    }

    /// Watches ended for falling too far behind, since start.
    pub fn lagged_watches(&self) -> u64 {
        self.inner.lagged.load(Ordering::Relaxed)
    }

    async fn pump<F>(
        &self,
        start: Revision,
        committed: Revision,
        mut live: broadcast::Receiver<Arc<Record>>,
        tx: &Sink,
        filter: F,
    ) -> Result<(), WatchError>
    where
        F: Fn(&Record) -> bool + Sync,
    {
        // `replay` starts at or before `committed + 1` (`subscribe` refuses a later start),
        // so every progress notice names a committed revision.
        let Some(mut next) = self.replay_range(start, committed, tx, &filter).await? else {
            return Ok(());
        };
        let mut progress = tokio::time::interval(self.inner.progress_every);
        progress.reset();
        loop {
            let received = tokio::select! {
                received = live.recv() => received,
                _ = progress.tick() => {
                    debug_assert!(next - 1 <= self.committed(), "progress past the head");
                    if !send(tx, WatchItem::Progress(next - 1)).await {
                        return Ok(());
                    }
                    continue;
                }
                // The watcher went away while nothing was happening.
                () = tx.closed() => return Ok(()),
            };
            match received {
                Ok(record) if record.revision < next => {}
                Ok(record) => {
                    next = record.revision + 1;
                    if filter(&record) {
                        if !send(tx, WatchItem::Record(record)).await {
                            return Ok(());
                        }
                        progress.reset();
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    self.inner.lagged.fetch_add(1, Ordering::Relaxed);
                    return Err(WatchError::Lagged { resume_from: next });
                }
                Err(broadcast::error::RecvError::Closed) => return Ok(()),
            }
        }
    }

    /// Streams the records from `start` to `end` (both included) that `filter` keeps, from the
    /// journal, for `who`; the stream ends after `end`. `end` must be committed. Refused as
    /// `subscribe` is; a start before the journal's oldest revision ends the stream with
    /// [`WatchError::Compacted`].
    pub fn replay<F>(
        &self,
        who: &Actor,
        start: Revision,
        end: Revision,
        filter: F,
    ) -> Result<mpsc::Receiver<Result<WatchItem, WatchError>>, WatchError>
    where
        F: Fn(&Record) -> bool + Send + Sync + 'static,
    {
        let permit = self.admit(who)?;
        let (tx, rx) = mpsc::channel(WATCHER_BUFFER);
        let hub = self.clone();
        tokio::spawn(async move {
            let _permit = permit;
            if let Err(error) = hub.replay_range(start, end, &tx, &filter).await {
                let _ = tx.send(Err(error)).await;
            }
        });
        Ok(rx)
    }

    /// Sends the journal's records from `start` to `last` that `filter` keeps; the first
    /// revision not yet considered (at least `last + 1`), or `None` once the watcher is gone.
    async fn replay_range<F>(
        &self,
        start: Revision,
        last: Revision,
        tx: &Sink,
        filter: &F,
    ) -> Result<Option<Revision>, WatchError>
    where
        F: Fn(&Record) -> bool + Sync,
    {
        let mut next = start;
        if next <= last {
            let oldest = self.read(|journal| journal.first_revision()).await?;
            if next < oldest {
                return Err(WatchError::Compacted {
                    requested: start,
                    oldest,
                });
            }
        }
        let mut page_size = REPLAY_PAGE_MIN;
        while next <= last {
            // The next page is read only once the watcher has room, so a watcher that stops
            // reading holds at most its buffer and one small page.
            match tx.reserve().await {
                Ok(room) => drop(room),
                Err(_) => return Ok(None),
            }
            page_size = if tx.capacity() == tx.max_capacity() {
                (page_size * 2).min(REPLAY_PAGE_MAX)
            } else {
                REPLAY_PAGE_MIN
            };
            let from = next;
            let page = self
                .read(move |journal| journal.read_from(from, page_size))
                .await?;
            let Some(read_up_to) = page.last().map(|r| r.revision) else {
                break;
            };
            // Records past `last` are not this replay's: a live loop sends them.
            for record in page.into_iter().take_while(|r| r.revision <= last) {
                if filter(&record) && !send(tx, WatchItem::Record(Arc::new(record))).await {
                    return Ok(None);
                }
            }
            next = read_up_to.min(last) + 1;
        }
        Ok(Some(next.max(last + 1)))
    }

    /// Runs a journal read off the async workers: a read may touch the disk.
    async fn read<T, R>(&self, read: R) -> Result<T, WatchError>
    where
        T: Send + 'static,
        R: FnOnce(&dyn Journal) -> Result<T, crate::store::StoreError> + Send + 'static,
    {
        let journal = Arc::clone(&self.inner.journal);
        tokio::task::spawn_blocking(move || read(journal.as_ref()))
            .await
            .map_err(|e| WatchError::Journal(e.to_string()))?
            .map_err(|e| WatchError::Journal(e.to_string()))
    }
}

async fn send(tx: &Sink, item: WatchItem) -> bool {
    tx.send(Ok(item)).await.is_ok()
}
