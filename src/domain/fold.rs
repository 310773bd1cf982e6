//! The session hub's fold: `apply` is how an event changes the state, live and in replay
//! alike, and `audience` which desktops hear of a hub event.

use super::agents::AgentRecord;
use super::events::Event;
use super::ids::ClientId;
use super::services::ServiceKind;
use super::state::{Client, Session, State};

impl State {
    /// Who must hear of an event on their `Connect` stream, in client id order.
    pub(super) fn audience(&self, event: &Event) -> Vec<ClientId> {
        let bound_to = |resource: &str, services: &[ServiceKind]| -> Vec<ClientId> {
            self.clients
                .iter()
                .filter(|(_, c)| {
                    services
                        .iter()
                        .any(|s| c.resources.contains(&(*s, resource.to_owned())))
                })
                .map(|(id, _)| *id)
                .collect()
        };
        match event {
            Event::SessionStateUpdated { resource_id, .. } => {
                bound_to(resource_id, &[ServiceKind::WorkflowManager])
            }
            Event::SessionTakenOver { resource_id, .. } | Event::SessionEnded { resource_id } => {
                bound_to(resource_id, &ServiceKind::ALL)
            }
            _ => Vec::new(),
        }
    }

    /// The fold: applies an event that `decide` produced (or the journal holds).
    pub fn apply(&mut self, event: &Event) {
        self.routing.apply(event);
        match event {
            Event::ClientRegistered { client_id, .. } => {
                self.clients.insert(*client_id, Client::default());
            }
            Event::ClientUnregistered { client_id } => {
                self.clients.remove(client_id);
                self.presence.forget(*client_id);
            }
            Event::ServiceBound { client_id, service } => {
                if let Some(c) = self.clients.get_mut(client_id) {
                    c.services.insert(*service);
                }
            }
            Event::ServiceUnbound { client_id, service } => {
                if let Some(c) = self.clients.get_mut(client_id) {
                    c.services.remove(service);
                    c.resources.retain(|(s, _)| s != service);
                }
            }
            Event::ResourceBound {
                client_id,
                service,
                resource_id,
            } => {
                if let Some(c) = self.clients.get_mut(client_id) {
                    c.resources.insert((*service, resource_id.clone()));
                }
            }
            Event::ResourceUnbound {
                client_id,
                service,
                resource_id,
            } => {
                if let Some(c) = self.clients.get_mut(client_id) {
                    c.resources.remove(&(*service, resource_id.clone()));
                }
            }
            Event::AgentUpserted {
                agent_id,
                display_name,
                password_hash,
                attributes,
                mrd_max_tasks,
            } => {
                self.agents.insert(
                    agent_id.clone(),
                    AgentRecord {
                        agent_id: agent_id.clone(),
                        display_name: display_name.clone(),
                        password_hash: password_hash.clone(),
                        attributes: attributes.clone(),
                        mrd_max_tasks: mrd_max_tasks.clone(),
                    },
                );
            }
            Event::AgentDeleted { agent_id } => {
                self.agents.remove(agent_id);
            }
            Event::SessionPrepared {
                resource_id,
                agent_id,
                model,
                cti,
                view_state,
            } => {
                self.sessions.insert(
                    resource_id.clone(),
                    Session {
                        agent_id: agent_id.clone(),
                        model: model.clone(),
                        cti: cti.clone(),
                        view_state: view_state.clone(),
                        shown: Vec::new(),
                    },
                );
            }
            Event::SessionTakenOver {
                resource_id,
                model,
                cti,
                view_state,
            } => {
                self.unbind_everyone_from(resource_id);
                if let Some(s) = self.sessions.get_mut(resource_id) {
                    s.model.clone_from(model);
                    s.cti.clone_from(cti);
                    s.view_state.clone_from(view_state);
                }
            }
            Event::SessionEnded { resource_id } => {
                self.unbind_everyone_from(resource_id);
                self.sessions.remove(resource_id);
            }
            Event::SessionStateUpdated {
                resource_id,
                view_state,
                actions,
            } => {
                if let Some(s) = self.sessions.get_mut(resource_id) {
                    s.view_state.clone_from(view_state);
                    s.shown.clone_from(actions);
                }
            }
            // The rest are routing's; `self.routing.apply` above took them.
            _ => {}
        }
    }

    fn unbind_everyone_from(&mut self, resource_id: &str) {
        for client in self.clients.values_mut() {
            client.resources.retain(|(_, r)| r != resource_id);
        }
    }
}
