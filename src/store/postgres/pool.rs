//! The journal's connections and the runtime that drives them. The `Journal` trait is
//! synchronous and called from plain threads (the committer, `spawn_blocking`), so each call
//! is a task spawned on the journal's own runtime that the caller waits for: it works from any
//! thread, and a call never outlives its time limit. One connection writes; a few read, so
//! that watches, followers and history pages do not queue behind appends. A connection that
//! failed or timed out is dropped, and the next call on its slot connects afresh: the journal
//! recovers by itself when the database comes back.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::runtime::{Handle, Runtime};
use tokio_postgres::Config;

use super::conn::{Live, error_text, no_answer};
use crate::store::StoreError;

/// What a call does with its connection.
pub(super) type Call<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

type Slot = Mutex<Option<Live>>;

pub(super) struct Pool {
    /// `Some` until dropped; shut down without waiting, so that dropping the journal from
    /// anywhere (an async task included) cannot block or panic.
    runtime: Option<Runtime>,
    handle: Handle,
    config: Arc<Config>,
    timeout: Duration,
    writer: Slot,
    readers: Vec<Slot>,
    next_reader: AtomicUsize,
}

impl Pool {
    pub fn new(config: Config, timeout: Duration, readers: usize) -> std::io::Result<Self> {
        // One worker drives every connection: the work is waiting on the network.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("switchboard-postgres")
            .enable_all()
            .build()?;
        Ok(Self {
            handle: runtime.handle().clone(),
            runtime: Some(runtime),
            config: Arc::new(config),
            timeout,
            writer: Mutex::new(None),
            readers: (0..readers.max(1)).map(|_| Mutex::new(None)).collect(),
            next_reader: AtomicUsize::new(0),
        })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Runs `call` on the writing connection; a failure is a `StoreError::Write`.
    pub fn write<T, F>(&self, call: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: for<'a> FnOnce(&'a mut Live) -> Call<'a, T> + Send + 'static,
    {
        self.run(&mut lock(&self.writer), call, StoreError::Write).0
    }

    /// Runs `call` on a reading connection, a free one if there is one. A read that failed
    /// because the connection it reused had died meanwhile (the database restarted) is run
    /// once more on a new one: reads can be repeated, writes are not.
    pub fn read<T, F>(&self, call: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: for<'a> FnOnce(&'a mut Live) -> Call<'a, T> + Clone + Send + 'static,
    {
        let start = self.next_reader.fetch_add(1, Ordering::Relaxed);
        let n = self.readers.len();
        let free = (0..n).find_map(|i| match self.readers[(start + i) % n].try_lock() {
            Ok(guard) => Some(guard),
            Err(std::sync::TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => None,
        });
        let mut slot = free.unwrap_or_else(|| lock(&self.readers[start % n]));
        match self.run(&mut slot, call.clone(), StoreError::Read) {
            (Err(_), Ran::ReusedAndDied) => self.run(&mut slot, call, StoreError::Read).0,
            (done, _) => done,
        }
    }

    fn run<T, F>(
        &self,
        slot: &mut MutexGuard<'_, Option<Live>>,
        call: F,
        failed: fn(String) -> StoreError,
    ) -> (Result<T, StoreError>, Ran)
    where
        T: Send + 'static,
        F: for<'a> FnOnce(&'a mut Live) -> Call<'a, T> + Send + 'static,
    {
        // One whose connection is known to have ended is not tried.
        let live = slot.take().filter(|live| !live.is_closed());
        let reused = live.is_some();
        let config = Arc::clone(&self.config);
        let timeout = self.timeout;
        let (done, outcome) = std::sync::mpsc::sync_channel(1);
        self.handle.spawn(async move {
            // On timeout the connection is dropped with the future: it may be mid-transaction
            // on a silent network, and the server rolls back what it had.
            let ran = tokio::time::timeout(timeout, async move {
                let mut live = match live {
                    Some(live) => live,
                    None => Live::connect(&config)
                        .await
                        .map_err(|e| failed(format!("connecting: {}", error_text(&e))))?,
                };
                let result = call(&mut live).await;
                Ok((live, result))
            })
            .await;
            let _ = done.send(ran);
        });
        match outcome.recv() {
            Ok(Ok(Ok((live, result)))) => {
                if !live.is_closed() {
                    **slot = Some(live);
                    (result, Ran::Kept)
                } else if reused && live.client.is_closed() {
                    (result, Ran::ReusedAndDied)
                } else {
                    (result, Ran::Dropped)
                }
            }
            Ok(Ok(Err(connect_failed))) => (Err(connect_failed), Ran::Dropped),
            Ok(Err(_elapsed)) => (Err(failed(no_answer(timeout))), Ran::Dropped),
            Err(_) => (
                Err(failed("the call to PostgreSQL was abandoned".to_owned())),
                Ran::Dropped,
            ),
        }
    }
}

/// What became of the connection a call ran on.
enum Ran {
    Kept,
    Dropped,
    /// A connection kept from an earlier call turned out to have ended: the call may be run
    /// again on a new one, without waiting for a time limit.
    ReusedAndDied,
}

impl Drop for Pool {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

fn lock(slot: &Slot) -> MutexGuard<'_, Option<Live>> {
    // A connection stays usable after a panic elsewhere: the next call checks it anyway.
    slot.lock().unwrap_or_else(PoisonError::into_inner)
}
