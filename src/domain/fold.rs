//! The session hub's fold: `apply` is how an event changes the state, live and in replay
//! alike.

use super::agents::{AccountRecord, AgentRecord};
use super::events::Event;
use super::principals::Actor;
use super::state::{Client, Session, State};

impl State {
    /// The fold: applies an event that `decide` produced (or the journal holds).
    pub fn apply(&mut self, event: &Event) {
        self.routing.apply(event);
        self.signins.apply(event);
        match event {
            Event::ClientRegistered {
                client_id, owner, ..
            } => {
                let client = Client {
                    owner: owner.clone(),
                    ..Client::default()
                };
                self.clients.insert(*client_id, client);
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
                roles,
                credential_version,
            } => {
                self.agents.insert(
                    agent_id.clone(),
                    AgentRecord {
                        agent_id: agent_id.clone(),
                        display_name: display_name.clone(),
                        password_hash: password_hash.clone(),
                        attributes: attributes.clone(),
                        mrd_max_tasks: mrd_max_tasks.clone(),
                        roles: roles.clone(),
                        credential_version: *credential_version,
                    },
                );
            }
            Event::AgentDeleted { agent_id } => {
                self.agents.remove(agent_id);
            }
            Event::AccountUpserted {
                account_id,
                display_name,
                roles,
                secret_hash,
                credential_version,
                client_certificate,
            } => {
                self.accounts.insert(
                    account_id.clone(),
                    AccountRecord {
                        account_id: account_id.clone(),
                        display_name: display_name.clone(),
                        roles: roles.clone(),
                        secret_hash: secret_hash.clone(),
                        credential_version: *credential_version,
                        client_certificate: client_certificate.clone(),
                    },
                );
            }
            Event::AccountDeleted { account_id } => {
                self.accounts.remove(account_id);
            }
            Event::CredentialsRevoked {
                principal,
                credential_version,
            } => match principal {
                Actor::Agent(id) => {
                    if let Some(agent) = self.agents.get_mut(id) {
                        agent.credential_version = *credential_version;
                    }
                }
                Actor::Account(id) => {
                    if let Some(account) = self.accounts.get_mut(id) {
                        account.credential_version = *credential_version;
                    }
                }
                Actor::Engine => {}
            },
            Event::SessionPrepared {
                resource_id,
                agent_id,
                model,
                cti,
                view_state,
                prepared_by,
            } => {
                self.sessions.insert(
                    resource_id.clone(),
                    Session {
                        agent_id: agent_id.clone(),
                        model: model.clone(),
                        cti: cti.clone(),
                        view_state: view_state.clone(),
                        shown: Vec::new(),
                        prepared_by: prepared_by.clone(),
                    },
                );
            }
            Event::SessionTakenOver {
                resource_id,
                model,
                cti,
                view_state,
                prepared_by,
            } => {
                self.unbind_everyone_from(resource_id);
                if let Some(s) = self.sessions.get_mut(resource_id) {
                    s.prepared_by.clone_from(prepared_by);
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
