//! A fixed set of hashing threads behind a bounded queue. Password work is slow and takes
//! about 19 MiB while it runs, so it never runs on more threads than the pool has, and an
//! attempt that finds the queue full is refused at once instead of waiting.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::oneshot;
use tracing::{debug, error};

use super::hashing::Scratch;
use crate::domain::{DomainError, DomainResult};

/// The refusal of an attempt that finds every thread busy and the queue full.
pub const POOL_FULL: &str = "too many logins in progress; retry shortly";

type Job = Box<dyn FnOnce(&mut Scratch) + Send>;

/// `workers` threads, started on first use, each with its own `Scratch` for as long as the
/// pool lives; at most `queue` jobs wait for them. Dropping the pool stops the threads once
/// the jobs already queued are done.
pub struct HashingPool {
    workers: usize,
    queue: usize,
    sender: Mutex<Option<SyncSender<Job>>>,
}

impl HashingPool {
    pub fn new(workers: usize, queue: usize) -> Self {
        Self {
            workers: workers.max(1),
            queue,
            sender: Mutex::new(None),
        }
    }

    pub fn workers(&self) -> usize {
        self.workers
    }

    pub fn queue(&self) -> usize {
        self.queue
    }

    /// Runs `work` on a pool thread and awaits its result; `ResourceExhausted` at once when
    /// the queue is full.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Scratch) -> T + Send + 'static,
    ) -> DomainResult<T> {
        self.submit(work)?
            .await
            .map_err(|_| DomainError::Internal("a password hashing thread failed".into()))
    }

    /// Queues `work`, or refuses it with `ResourceExhausted` when the queue is full. Work
    /// whose receiver is gone by its turn (the caller gave up) is skipped.
    pub fn submit<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Scratch) -> T + Send + 'static,
    ) -> DomainResult<oneshot::Receiver<T>> {
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move |scratch| {
            if !reply.is_closed() {
                let _ = reply.send(work(scratch));
            }
        });
        let mut sender = self.sender.lock().unwrap_or_else(PoisonError::into_inner);
        let sender = match &mut *sender {
            Some(sender) => sender,
            empty => empty.insert(self.start()?),
        };
        match sender.try_send(job) {
            Ok(()) => Ok(answer),
            Err(TrySendError::Full(_)) => Err(DomainError::ResourceExhausted(POOL_FULL.into())),
            Err(TrySendError::Disconnected(_)) => Err(DomainError::Internal(
                "the password hashing threads have stopped".into(),
            )),
        }
    }

    fn start(&self) -> DomainResult<SyncSender<Job>> {
        let (sender, jobs) = sync_channel::<Job>(self.queue);
        let jobs = Arc::new(Mutex::new(jobs));
        for n in 0..self.workers {
            let jobs = Arc::clone(&jobs);
            std::thread::Builder::new()
                .name(format!("password-{n}"))
                .spawn(move || work(&jobs, n == 0))
                .map_err(|e| {
                    DomainError::Internal(format!("starting a password hashing thread: {e}"))
                })?;
        }
        debug!(
            workers = self.workers,
            queue = self.queue,
            "password hashing threads started"
        );
        Ok(sender)
    }
}

/// A pool thread: takes jobs until the pool is gone. A job that panics loses its answer
/// (its caller sees an internal error), not the thread. The first thread computes the dummy
/// hash first, so that no unknown account's check pays for it.
fn work(jobs: &Mutex<Receiver<Job>>, first: bool) {
    let mut scratch = Scratch::default();
    if first {
        scratch.dummy();
    }
    loop {
        let next = jobs.lock().unwrap_or_else(PoisonError::into_inner).recv();
        let Ok(job) = next else { return };
        if catch_unwind(AssertUnwindSafe(|| job(&mut scratch))).is_err() {
            error!("a password hashing job panicked");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use super::*;

    #[tokio::test]
    async fn refuses_at_once_beyond_the_queue_and_recovers() {
        let pool = HashingPool::new(1, 1);
        let (started_tx, started) = mpsc::channel();
        let (release, released) = mpsc::channel::<()>();
        let busy = pool
            .submit(move |_| {
                started_tx.send(()).unwrap();
                released.recv().unwrap();
                1
            })
            .unwrap();
        started.recv().unwrap();
        let waiting = pool.submit(|_| 2).unwrap();
        let refused = pool.submit(|_| 3).unwrap_err();
        assert_eq!(refused, DomainError::ResourceExhausted(POOL_FULL.into()));

        release.send(()).unwrap();
        assert_eq!(busy.await.unwrap(), 1);
        assert_eq!(waiting.await.unwrap(), 2);
        assert_eq!(pool.run(|_| 4).await.unwrap(), 4);
    }

    #[tokio::test]
    async fn a_panicking_job_fails_alone() {
        let pool = HashingPool::new(1, 4);
        let failed = pool.run(|_| -> u8 { panic!("boom") }).await;
        assert!(matches!(failed, Err(DomainError::Internal(_))));
        assert_eq!(pool.run(|_| 5).await.unwrap(), 5);
    }

    #[tokio::test]
    async fn hashes_and_checks_on_the_threads() {
        let pool = HashingPool::new(2, 4);
        let hash = pool.run(|s| s.hash("pw-1")).await.unwrap().unwrap();
        let checked = hash.clone();
        assert!(
            pool.run(move |s| s.verify("pw-1", Some(&checked)))
                .await
                .unwrap()
        );
        assert!(
            !pool
                .run(move |s| s.verify("pw-2", Some(&hash)))
                .await
                .unwrap()
        );
    }
}
