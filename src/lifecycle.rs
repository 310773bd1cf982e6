//! The server's own lifecycle (starting, in service, stopping), which desktops read through
//! `GetServerStatus` to pick a server, and the signal that ends open streams on shutdown.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use tokio::sync::watch;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Phase {
    Starting = 0,
    InService = 1,
    Stopping = 2,
}

#[derive(Clone)]
pub struct Lifecycle {
    inner: Arc<Inner>,
}

struct Inner {
    phase: AtomicU8,
    stopping: watch::Sender<bool>,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Self {
            inner: Arc::new(Inner {
                phase: AtomicU8::new(Phase::Starting as u8),
                stopping: watch::Sender::new(false),
            }),
        }
    }
}

impl Lifecycle {
    pub fn phase(&self) -> Phase {
        match self.inner.phase.load(Ordering::Acquire) {
            0 => Phase::Starting,
            1 => Phase::InService,
            _ => Phase::Stopping,
        }
    }

    /// New clients are taken only while in service.
    pub fn accepting_clients(&self) -> bool {
        self.phase() == Phase::InService
    }

    pub fn mark_in_service(&self) {
        self.inner
            .phase
            .store(Phase::InService as u8, Ordering::Release);
    }

    /// Stops taking clients at once and tells every open stream to end.
    pub fn begin_stopping(&self) {
        self.inner
            .phase
            .store(Phase::Stopping as u8, Ordering::Release);
        self.inner.stopping.send_replace(true);
    }

    /// Resolves once shutdown has begun.
    pub async fn stopping(&self) {
        let mut rx = self.inner.stopping.subscribe();
        // The sender lives as long as `self`, so this only ends by the flag turning true.
        let _ = rx.wait_for(|stopping| *stopping).await;
    }
}
