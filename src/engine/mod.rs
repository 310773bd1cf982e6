//! The one writer. A single task owns the `State`, takes commands in order, appends their
//! events to the journal in batches (group commit), and only then publishes the events and
//! answers. Everything that changes state goes through here.

mod clock;
mod handle;

pub use clock::{Clock, SystemClock};
pub use handle::{Committed, EngineHandle, Outbox, Password, unexpected};

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use tracing::{debug, error, warn};

use crate::domain::{ClientId, Command, DomainError, Event, Record, Revision, State};
use crate::store::{Journal, StoreError};
use crate::watch::WatchHub;

/// Commands taken per journal append: large enough to amortise a commit, small enough that one
/// batch's replies are not held back long.
const MAX_BATCH: usize = 256;
/// Commands waiting for the engine before callers are slowed down.
const QUEUE_DEPTH: usize = 4096;

struct Envelope {
    command: Command,
    /// A `Connect` stream's event sink, attached when its client registers.
    outbox: Option<Outbox>,
    reply: oneshot::Sender<Result<Committed, DomainError>>,
}

pub struct Engine {
    state: State,
    journal: Arc<dyn Journal>,
    watch: WatchHub,
    clock: Arc<dyn Clock>,
    revision: Revision,
    outboxes: HashMap<ClientId, Outbox>,
    /// Commands the engine gives itself (timers, cleanup), run before the next batch.
    internal: VecDeque<Command>,
}

impl Engine {
    /// Rebuilds state from the journal and starts the engine task.
    pub fn start(
        mut state: State,
        journal: Arc<dyn Journal>,
        clock: Arc<dyn Clock>,
    ) -> Result<EngineHandle, StoreError> {
        let mut revision = 0;
        loop {
            let page = journal.read_from(revision + 1, 4096)?;
            let Some(last) = page.last() else { break };
            revision = last.revision;
            for record in &page {
                state.apply(&record.event);
            }
        }
        state.finish_replay();
        let watch = WatchHub::new(Arc::clone(&journal), revision);
        let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
        let engine = Engine {
            state,
            journal,
            watch: watch.clone(),
            clock,
            revision,
            outboxes: HashMap::new(),
            internal: VecDeque::new(),
        };
        tokio::spawn(engine.run(rx));
        Ok(EngineHandle::new(tx, watch))
    }

    async fn run(mut self, mut rx: mpsc::Receiver<Envelope>) {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        loop {
            // Timers are commands: sleep until the next one is due unless a command comes first.
            let wake = self.state.next_deadline().map(|at| {
                let wait = at.saturating_sub(self.clock.now());
                tokio::time::Instant::now() + std::time::Duration::from_millis(wait)
            });
            tokio::select! {
                received = rx.recv_many(&mut batch, MAX_BATCH) => {
                    if received == 0 {
                        break;
                    }
                }
                () = sleep_until(wake) => {}
            }
            let mut result = self.process(&mut batch);
            // Commands the engine gave itself run now, not when the next caller comes.
            while result.is_ok() && !self.internal.is_empty() {
                result = self.process(&mut batch);
            }
            if let Err(e) = result {
                // State now holds events the journal lost: stop rather than serve a lie.
                error!(error = %e, "journal append failed; the engine stops");
                return;
            }
        }
        debug!("engine stopped: no more handles");
    }

    fn process(&mut self, batch: &mut Vec<Envelope>) -> Result<(), StoreError> {
        let now = self.clock.now();
        if self.state.next_deadline().is_some_and(|at| at <= now) {
            self.internal.push_front(Command::Tick);
        }
        let mut records = Vec::new();
        let mut deliveries: Vec<(usize, Vec<ClientId>)> = Vec::new();
        let mut replies = Vec::with_capacity(batch.len());

        let internal: Vec<Command> = self.internal.drain(..).collect();
        let commands = internal
            .into_iter()
            .map(|command| (command, None, None))
            .chain(
                batch
                    .drain(..)
                    .map(|e| (e.command, e.outbox, Some(e.reply))),
            );
        for (command, outbox, reply) in commands {
            let registering = match (&command, outbox) {
                (Command::RegisterClient { client_id, .. }, Some(outbox)) => {
                    Some((*client_id, outbox))
                }
                _ => None,
            };
            let result = self.state.execute(command, now).map(|(outcome, decided)| {
                for d in decided {
                    self.revision += 1;
                    if !d.audience.is_empty() {
                        deliveries.push((records.len(), d.audience));
                    }
                    records.push(Record {
                        revision: self.revision,
                        time_ms: now,
                        event: d.event,
                    });
                }
                Committed {
                    outcome,
                    revision: self.revision,
                }
            });
            if let (Ok(_), Some((client_id, outbox))) = (&result, registering) {
                self.outboxes.insert(client_id, outbox);
            }
            if let Some(reply) = reply {
                replies.push((reply, result));
            } else if let Err(e) = result {
                debug!(error = %e, "internal command refused");
            }
        }

        // Durable before visible: nothing below runs unless the append succeeded.
        if let Err(e) = self.journal.append(&records) {
            for (reply, _) in replies {
                let _ = reply.send(Err(DomainError::Unavailable(
                    "the journal could not be written; retry on another server".into(),
                )));
            }
            return Err(e);
        }
        for record in &records {
            debug!(revision = record.revision, event = ?record.event, "committed");
        }
        let records: Vec<Arc<Record>> = records.into_iter().map(Arc::new).collect();
        self.watch.publish(&records);
        for (index, audience) in deliveries {
            self.deliver(&records[index], &audience);
        }
        for record in &records {
            if let Event::ClientUnregistered { client_id } = record.event {
                self.outboxes.remove(&client_id);
            }
        }
        for (reply, result) in replies {
            // The caller may have gone; its change is committed all the same.
            let _ = reply.send(result);
        }
        Ok(())
    }

    /// Hands an event to each listening client's stream without ever waiting: a client too
    /// slow to keep its buffer drained is cut off and unregistered.
    fn deliver(&mut self, record: &Arc<Record>, audience: &[ClientId]) {
        for client_id in audience {
            let Some(outbox) = self.outboxes.get(client_id) else {
                continue;
            };
            match outbox.try_send(Arc::clone(record)) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => {
                    warn!(%client_id, "client's event stream is full; disconnecting it");
                    self.outboxes.remove(client_id);
                    self.internal.push_back(Command::UnregisterClient {
                        client_id: *client_id,
                    });
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    self.outboxes.remove(client_id);
                }
            }
        }
    }
}

/// Sleeps until `at`, or forever when there is no timer.
async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
