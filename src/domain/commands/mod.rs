//! What the engine is asked to do, already validated and resolved from the wire form. Each
//! command is a type of its own with its own answer type, so a command handled by the wrong
//! rules, or an answer of the wrong kind, does not compile. They come in four families:
//!
//! - `hub`: the session hub (clients, bindings, sessions, workflow actions);
//! - `directory`: the agent directory and the routing configuration (AdminService);
//! - `routing`: agents' routing presence and tasks;
//! - `presence`: streams and timers, which the engine issues itself.
//!
//! Secrets arrive here only as hashes; ids and time were fixed before the rules see them.

pub mod accounts;
pub mod directory;
pub mod hub;
pub mod presence;
pub mod routing;
pub mod signins;

use std::fmt;

use serde::Serialize;
use serde::de::DeserializeOwned;

pub use accounts::*;
pub use directory::*;
pub use hub::*;
pub use presence::*;
pub use routing::*;
pub use signins::*;

use super::error::DomainResult;
use super::events::Millis;
use super::ids::ClientId;
pub use super::paging::Page;
use super::principals::Principal;
use super::routing::Sink;
use super::state::{Decided, State};

/// A command the rules can run, and what it answers.
pub trait Command: fmt::Debug + Send + 'static {
    /// What the caller gets back, alongside the revision that includes the command's effects.
    /// Serialisable, so that a retried request can get the first answer after a restart.
    type Answer: fmt::Debug + Clone + Serialize + DeserializeOwned + Send + 'static;

    /// Whether the command only reads: it records no event, so it may be answered while
    /// writes are refused (a full inbox, a journal that cannot be written).
    const READS_ONLY: bool = false;

    /// Decides and applies the command's events through `turn`. On error nothing changed.
    fn run(self, state: &mut State, turn: &mut Turn) -> DomainResult<Self::Answer>;

    /// The answer as it stands once routing has settled after the command (a READY agent may
    /// already hold an offer). Most answers do not change.
    fn settled(answer: Self::Answer, _state: &State) -> Self::Answer {
        answer
    }

    /// The client the command names, whose presence lease the call renews.
    fn acting_client(&self) -> Option<ClientId> {
        None
    }
}

/// One command's work in progress: the time it runs at, the session hub's events (already
/// applied, with their audiences) and routing's events (applied as emitted; their audiences
/// are found when the command ends).
pub struct Turn {
    pub now: Millis,
    /// Who the command acts for; the rules check its ownership of what the command names.
    pub principal: Principal,
    pub(in crate::domain) decided: Vec<Decided>,
    pub(in crate::domain) sink: Sink,
}

impl Turn {
    pub(in crate::domain) fn new(now: Millis, principal: Principal) -> Self {
        Self {
            now,
            principal,
            decided: Vec::new(),
            sink: Sink::new(),
        }
    }
}
