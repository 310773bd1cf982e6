//! Which desktops hear of an event: the one rule behind the events a `Connect` stream or a
//! browser's feed is sent live, and those a resumed feed replays from the journal.

use serde::{Deserialize, Serialize};

use super::events::Event;
use super::ids::ClientId;
use super::services::{ServiceDirectory, ServiceKind};
use super::state::{Client, State};

/// The sessions an event is about, as desktops hear of it.
enum Concerns {
    /// A session's view changed: heard through the workflow manager.
    View(String),
    /// These sessions were taken over or ended, or their agents' routing changed: heard
    /// through either service.
    Sessions(Vec<String>),
}

/// What an event is about for desktops; `None` when no desktop hears of it.
fn concerns(event: &Event, directory: &ServiceDirectory) -> Option<Concerns> {
    match event {
        Event::SessionStateUpdated { resource_id, .. } => Some(Concerns::View(resource_id.clone())),
        Event::SessionTakenOver { resource_id, .. } | Event::SessionEnded { resource_id } => {
            Some(Concerns::Sessions(vec![resource_id.clone()]))
        }
        // Routing events reach the desktops of the agents they are about.
        _ => {
            let agents = event.subjects()?.agents;
            (!agents.is_empty()).then(|| {
                Concerns::Sessions(
                    agents
                        .into_iter()
                        .map(|agent| directory.session_resource_id(agent))
                        .collect(),
                )
            })
        }
    }
}

impl Client {
    fn hears(&self, concerns: &Concerns) -> bool {
        match concerns {
            Concerns::View(resource_id) => self
                .resources
                .contains(&(ServiceKind::WorkflowManager, resource_id.clone())),
            Concerns::Sessions(resources) => {
                self.resources.iter().any(|(_, r)| resources.contains(r))
            }
        }
    }
}

impl State {
    /// Who must hear of an event on their desktop stream, in client id order.
    pub(super) fn audience(&self, event: &Event) -> Vec<ClientId> {
        let Some(concerns) = concerns(event, &self.directory) else {
            return Vec::new();
        };
        self.clients
            .iter()
            .filter(|(_, client)| client.hears(&concerns))
            .map(|(id, _)| *id)
            .collect()
    }

    /// What `client_id` hears as it is bound now; `None` for a client that is not registered.
    pub(super) fn hearing(&self, client_id: ClientId) -> Option<Hearing> {
        Some(Hearing {
            client: self.clients.get(&client_id)?.clone(),
            directory: self.directory.clone(),
        })
    }
}

/// A client's bindings at one moment, to pick its events out of the journal: what a resumed
/// browser feed replays. Events of bindings made or dropped since are picked as if bound now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hearing {
    client: Client,
    directory: ServiceDirectory,
}

impl Hearing {
    /// Whether the client hears of `event`, as it would live.
    pub fn hears(&self, event: &Event) -> bool {
        concerns(event, &self.directory).is_some_and(|c| self.client.hears(&c))
    }
}
