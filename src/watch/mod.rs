//! Revisioned fan-out: every committed record is published once; each watcher replays what it
//! missed from the journal, then follows live records, in revision order with no gaps or
//! duplicates. A watcher that falls too far behind is ended with the revision to resume from;
//! it never slows the engine or other watchers.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use thiserror::Error;
use tokio::sync::{broadcast, mpsc};

use crate::domain::{Record, Revision};
use crate::store::Journal;

/// Live records kept for slow watchers before they are cut off.
const LIVE_BUFFER: usize = 4096;
/// Records read from the journal per page while replaying.
const REPLAY_PAGE: usize = 512;
/// Records queued towards one watcher's stream.
const WATCHER_BUFFER: usize = 256;

#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum WatchError {
    #[error("watcher fell behind; resume from revision {resume_from}")]
    Lagged { resume_from: Revision },
    #[error("journal read failed: {0}")]
    Journal(String),
}

#[derive(Clone)]
pub struct WatchHub {
    inner: Arc<Inner>,
}

struct Inner {
    journal: Arc<dyn Journal>,
    committed: AtomicU64,
    live: broadcast::Sender<Arc<Record>>,
}

impl WatchHub {
    pub fn new(journal: Arc<dyn Journal>, committed: Revision) -> Self {
        let (live, _) = broadcast::channel(LIVE_BUFFER);
        Self {
            inner: Arc::new(Inner {
                journal,
                committed: AtomicU64::new(committed),
                live,
            }),
        }
    }

    /// The last revision that is durable and visible.
    pub fn committed(&self) -> Revision {
        self.inner.committed.load(Ordering::Acquire)
    }

    /// Makes a durable batch visible. Called by the engine only, in revision order.
    pub fn publish(&self, records: &[Arc<Record>]) {
        if let Some(last) = records.last() {
            self.inner.committed.store(last.revision, Ordering::Release);
        }
        for record in records {
            // No receivers is fine: nobody is watching.
            let _ = self.inner.live.send(Arc::clone(record));
        }
    }

    /// Streams the records with revision >= `start` that `filter` keeps. `start` 0 means
    /// "from the next revision".
    pub fn subscribe<F>(
        &self,
        start: Revision,
        filter: F,
    ) -> mpsc::Receiver<Result<Arc<Record>, WatchError>>
    where
        F: Fn(&Record) -> bool + Send + 'static,
    {
        // Subscribe before reading the committed revision: anything published after that read
        // arrives live, anything before it is in the journal.
        let live = self.inner.live.subscribe();
        let committed = self.committed();
        let start = if start == 0 { committed + 1 } else { start };
        let (tx, rx) = mpsc::channel(WATCHER_BUFFER);
        let hub = self.clone();
        tokio::spawn(async move {
            if let Err(error) = hub.pump(start, committed, live, &tx, filter).await {
                let _ = tx.send(Err(error)).await;
            }
        });
        rx
    }

    async fn pump<F>(
        &self,
        start: Revision,
        committed: Revision,
        mut live: broadcast::Receiver<Arc<Record>>,
        tx: &mpsc::Sender<Result<Arc<Record>, WatchError>>,
        filter: F,
    ) -> Result<(), WatchError>
    where
        F: Fn(&Record) -> bool,
    {
        // `next` is the first revision not yet considered.
        let mut next = start;
        while next <= committed {
            let page = self
                .inner
                .journal
                .read_from(next, REPLAY_PAGE)
                .map_err(|e| WatchError::Journal(e.to_string()))?;
            let Some(last) = page.last() else { break };
            next = last.revision + 1;
            for record in page.into_iter().filter(|r| r.revision <= committed) {
                if filter(&record) && tx.send(Ok(Arc::new(record))).await.is_err() {
                    return Ok(());
                }
            }
        }
        next = next.max(committed + 1);
        loop {
            let received = tokio::select! {
                received = live.recv() => received,
                // The watcher went away while nothing was happening.
                () = tx.closed() => return Ok(()),
            };
            match received {
                Ok(record) if record.revision < next => {}
                Ok(record) => {
                    next = record.revision + 1;
                    if filter(&record) && tx.send(Ok(record)).await.is_err() {
                        return Ok(());
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    return Err(WatchError::Lagged { resume_from: next });
                }
                Err(broadcast::error::RecvError::Closed) => return Ok(()),
            }
        }
    }
}
