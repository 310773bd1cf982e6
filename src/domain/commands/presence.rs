//! Presence and time: the commands the engine and the `Connect` streams issue, never a caller.
//! Streams are not journaled; they only hold or release a client's lease.

use super::{Command, Turn};
use crate::domain::error::{DomainError, DomainResult};
use crate::domain::hearing::Hearing;
use crate::domain::ids::ClientId;
use crate::domain::presence::StreamId;
use crate::domain::state::State;

use super::hub::UnregisterClient;

/// Fires what is due: clients whose lease ran out go as if they had unregistered, and routing's
/// timers fire as every command ends (see `State::execute`).
#[derive(Debug, Clone)]
pub struct Tick;

impl Command for Tick {
    type Answer = ();
    fn run(self, state: &mut State, turn: &mut Turn) -> DomainResult<()> {
        for client_id in state.presence.take_expired(turn.now) {
            // Each goes in a turn of its own, so one's refusal cannot undo another's departure.
            if let Ok(((), gone)) = state.execute(UnregisterClient { client_id }, turn.now) {
                turn.decided.extend(gone);
            }
        }
        Ok(())
    }
}

/// A stream of the client opened; it holds the client's lease while open.
#[derive(Debug, Clone)]
pub struct AttachStream {
    pub client_id: ClientId,
    pub stream: StreamId,
}

/// Answers what the client hears as bound now, which a resumed browser feed replays by.
impl Command for AttachStream {
    type Answer = Hearing;
    fn run(self, state: &mut State, turn: &mut Turn) -> DomainResult<Hearing> {
        state.owned_client(self.client_id, &turn.principal)?;
        state.presence.attach(self.client_id, self.stream);
        state
            .hearing(self.client_id)
            .ok_or_else(|| DomainError::not_found("client", self.client_id.to_string()))
    }
}

/// A stream of the client closed or broke; with none left, the grace period starts.
#[derive(Debug, Clone)]
pub struct DetachStream {
    pub client_id: ClientId,
    pub stream: StreamId,
}

impl Command for DetachStream {
    type Answer = ();
    fn run(self, state: &mut State, turn: &mut Turn) -> DomainResult<()> {
        state.presence.detach(self.client_id, self.stream, turn.now);
        Ok(())
    }
}
