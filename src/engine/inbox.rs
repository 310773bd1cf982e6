//! The engine's inbox, in three lanes, so that overload refuses writes at once instead of
//! queueing them without end, while reads and the engine's own upkeep still go through:
//!
//! - writes (every command that may record an event, `Attach` included): bounded; a full lane
//!   refuses the next write at once with `Unavailable`;
//! - reads (`Command::READS_ONLY`): bounded apart, so that writes never crowd them out, and
//!   taken before writes;
//! - control (detaching closed streams): never refused. It holds at most one message per open
//!   stream, so it needs no bound of its own.
//!
//! A close travels on the write lane, behind what was sent before it, and waits for room.

use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;

use super::Message;
use crate::domain::DomainError;

/// Commands that may wait in each of the read and write lanes by default.
pub const DEFAULT_INBOX_DEPTH: usize = 4096;

/// Why a command was refused at the door.
pub(super) enum Refused {
    /// The lane is full: the server is overloaded.
    Full,
    /// The engine has stopped.
    Stopped,
}

impl Refused {
    pub fn into_error(self, lane: &str) -> DomainError {
        match self {
            Refused::Full => DomainError::Unavailable(format!(
                "the server is overloaded ({lane} queue full); retry with backoff or on another server"
            )),
            Refused::Stopped => super::handle::engine_stopped(),
        }
    }
}

/// The sending side, held by every `EngineHandle`.
#[derive(Clone)]
pub(super) struct Inbox {
    writes: mpsc::Sender<Message>,
    reads: mpsc::Sender<Message>,
    control: mpsc::UnboundedSender<Message>,
}

impl Inbox {
    /// A write, refused at once when its lane is full.
    pub fn write(&self, message: Message) -> Result<(), Refused> {
        self.writes.try_send(message).map_err(refused)
    }

    /// A read, refused at once only when reads themselves fill their lane.
    pub fn read(&self, message: Message) -> Result<(), Refused> {
        self.reads.try_send(message).map_err(refused)
    }

    /// The engine's upkeep: never refused.
    pub fn control(&self, message: Message) -> Result<(), Refused> {
        self.control.send(message).map_err(|_| Refused::Stopped)
    }

    /// Commands waiting in the write and read lanes.
    pub fn depth(&self) -> (usize, usize) {
        let waiting = |lane: &mpsc::Sender<Message>| lane.max_capacity() - lane.capacity();
        (waiting(&self.writes), waiting(&self.reads))
    }

    /// A message that must follow every write sent before it, waiting for room if need be.
    pub async fn after_writes(&self, message: Message) -> Result<(), Refused> {
        self.writes
            .send(message)
            .await
            .map_err(|_| Refused::Stopped)
    }
}

fn refused(error: TrySendError<Message>) -> Refused {
    match error {
        TrySendError::Full(_) => Refused::Full,
        TrySendError::Closed(_) => Refused::Stopped,
    }
}

/// The engine's side.
pub(super) struct InboxReceiver {
    writes: mpsc::Receiver<Message>,
    reads: mpsc::Receiver<Message>,
    control: mpsc::UnboundedReceiver<Message>,
    open: [bool; 3],
}

/// Both bounded lanes hold up to `depth` commands each.
pub(super) fn channel(depth: usize) -> (Inbox, InboxReceiver) {
    let depth = depth.max(1);
    let (writes, writes_rx) = mpsc::channel(depth);
    let (reads, reads_rx) = mpsc::channel(depth);
    let (control, control_rx) = mpsc::unbounded_channel();
    (
        Inbox {
            writes,
            reads,
            control,
        },
        InboxReceiver {
            writes: writes_rx,
            reads: reads_rx,
            control: control_rx,
            open: [true; 3],
        },
    )
}

impl InboxReceiver {
    /// Waits for at least one message and takes up to `limit` into `buffer`: the engine's
    /// upkeep first, then reads, then writes. 0 once every lane is closed and empty.
    pub async fn recv_many(&mut self, buffer: &mut Vec<Message>, limit: usize) -> usize {
        let start = buffer.len();
        while buffer.len() == start && self.open.iter().any(|open| *open) {
            let [control_open, reads_open, writes_open] = self.open;
            let (lane, received) = tokio::select! {
                biased;
                m = self.control.recv(), if control_open => (0, m),
                m = self.reads.recv(), if reads_open => (1, m),
                m = self.writes.recv(), if writes_open => (2, m),
            };
            match received {
                Some(message) => buffer.push(message),
                None => self.open[lane] = false,
            }
        }
        // Fill the batch from the other lanes in the same order: more per commit.
        while buffer.len() - start < limit {
            let next = self
                .control
                .try_recv()
                .or_else(|_| self.reads.try_recv())
                .or_else(|_| self.writes.try_recv());
            match next {
                Ok(message) => buffer.push(message),
                Err(_) => break,
            }
        }
        buffer.len() - start
    }
}
