//! Everything that changes state is one of these events. State = fold(events): replaying the
//! journal through `State::apply` rebuilds the server's state exactly.

use serde::{Deserialize, Serialize};

use super::agents::PasswordHashString;
use super::ids::ClientId;
use super::services::ServiceKind;

/// A gapless, increasing position in the journal of one engine.
pub type Revision = u64;

/// Milliseconds since the Unix epoch: the engine's clock, passed into the rules.
pub type Millis = u64;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    ClientRegistered {
        client_id: ClientId,
        client_name: String,
    },
    /// The client and every binding it held are gone.
    ClientUnregistered {
        client_id: ClientId,
    },
    ServiceBound {
        client_id: ClientId,
        service: ServiceKind,
    },
    /// The service binding and the client's resource bindings of that service are gone.
    ServiceUnbound {
        client_id: ClientId,
        service: ServiceKind,
    },
    ResourceBound {
        client_id: ClientId,
        service: ServiceKind,
        resource_id: String,
    },
    ResourceUnbound {
        client_id: ClientId,
        service: ServiceKind,
        resource_id: String,
    },
    AgentUpserted {
        agent_id: String,
        display_name: String,
        password_hash: PasswordHashString,
    },
    AgentDeleted {
        agent_id: String,
    },
    SessionPrepared {
        resource_id: String,
        agent_id: String,
        model: String,
        cti: String,
        view_state: String,
    },
    /// Another desktop took the session over: clients bound to it are told, then unbound.
    SessionTakenOver {
        resource_id: String,
        model: String,
        cti: String,
        view_state: String,
    },
    /// The session is gone: clients bound to it are told, then unbound.
    SessionEnded {
        resource_id: String,
    },
    /// A session's view, announced when a client binds it or changed by an action. Carries the
    /// actions so the journal says what desktops were shown, whatever models load later.
    SessionStateUpdated {
        resource_id: String,
        view_state: String,
        actions: Vec<(String, bool)>,
    },
}

impl Event {
    /// The workflow session this event is about, if any: what session watches filter on.
    pub fn session_target(&self) -> Option<&str> {
        match self {
            Event::SessionPrepared { resource_id, .. }
            | Event::SessionTakenOver { resource_id, .. }
            | Event::SessionEnded { resource_id }
            | Event::SessionStateUpdated { resource_id, .. } => Some(resource_id),
            _ => None,
        }
    }
}

/// An event as journaled: its revision and when it happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub revision: Revision,
    pub time_ms: Millis,
    pub event: Event,
}
