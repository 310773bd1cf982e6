//! The session hub's commands: clients, their bindings, agents' sessions and workflow actions.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Command, Turn};
use crate::domain::access;
use crate::domain::agents::PasswordHashString;
use crate::domain::bounds::MAX_CLIENTS_PER_PRINCIPAL;
use crate::domain::desktop::DesktopAction;
use crate::domain::error::{DomainError, DomainResult};
use crate::domain::events::Event;
use crate::domain::ids::ClientId;
use crate::domain::principals::Actor;
use crate::domain::routing::model::RequestedAgentState;
use crate::domain::services::ServiceKind;
use crate::domain::state::State;
use crate::domain::workflow::WorkflowModel;

/// A session's view as desktops see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionView {
    pub resource_id: String,
    pub model: String,
    pub view_state: String,
    pub actions: Vec<(String, bool)>,
}

/// How many clients the server has, in all and bound to each service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Load {
    pub client_count: usize,
    pub per_service: BTreeMap<ServiceKind, usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PrepareResult {
    Success,
    /// The agent has a session already; the desktop must confirm taking it over.
    Confirm,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prepared {
    pub result: PrepareResult,
    pub resource_id: String,
    pub message: String,
}

/// Reads the server's load.
#[derive(Debug, Clone)]
pub struct ServerLoad;

impl Command for ServerLoad {
    type Answer = Load;
    const READS_ONLY: bool = true;
    fn run(self, state: &mut State, _: &mut Turn) -> DomainResult<Load> {
        Ok(state.load())
    }
}

/// Reads what this processor supports.
#[derive(Debug, Clone)]
pub struct GetCapabilities;

impl Command for GetCapabilities {
    type Answer = BTreeMap<String, String>;
    const READS_ONLY: bool = true;
    fn run(self, state: &mut State, _: &mut Turn) -> DomainResult<Self::Answer> {
        Ok(state.capabilities())
    }
}

#[derive(Debug, Clone)]
pub struct GetSessionState {
    pub resource_id: String,
}

impl Command for GetSessionState {
    type Answer = SessionView;
    const READS_ONLY: bool = true;
    fn run(self, state: &mut State, turn: &mut Turn) -> DomainResult<SessionView> {
        let session = state.session(&self.resource_id)?;
        access::see_session(&turn.principal, &self.resource_id, session)?;
        state.session_view(&self.resource_id)
    }
}

#[derive(Debug, Clone)]
pub struct RegisterClient {
    pub client_id: ClientId,
    pub client_name: String,
}

impl Command for RegisterClient {
    type Answer = ClientId;
    fn run(self, state: &mut State, turn: &mut Turn) -> DomainResult<ClientId> {
        let Self {
            client_id,
            client_name,
        } = self;
        if state.clients.contains_key(&client_id) {
            return Err(DomainError::FailedPrecondition(format!(
                "client {client_id} is already registered"
            )));
        }
        let owner = turn.principal.actor.clone();
        if owner != Actor::Engine && state.clients_of(&owner) >= MAX_CLIENTS_PER_PRINCIPAL {
            return Err(DomainError::ResourceExhausted(format!(
                "{owner} has {MAX_CLIENTS_PER_PRINCIPAL} clients registered, the most one \
                 principal may hold; unregister one first"
            )));
        }
        state.record(
            turn,
            Event::ClientRegistered {
                client_id,
                client_name,
                owner,
            },
        );
        Ok(client_id)
    }
    fn acting_client(&self) -> Option<ClientId> {
        Some(self.client_id)
    }
}

/// The client goes with its bindings; a session it alone had bound logs out.
#[derive(Debug, Clone)]
pub struct UnregisterClient {
    pub client_id: ClientId,
}

impl Command for UnregisterClient {
    type Answer = ();
    fn run(self, state: &mut State, turn: &mut Turn) -> DomainResult<()> {
        let client_id = self.client_id;
        state.owned_client(client_id, &turn.principal)?;
        let orphaned = state.orphaned_by(client_id);
        state.record(turn, Event::ClientUnregistered { client_id });
        for resource_id in orphaned {
            state.log_out_abandoned(&resource_id, turn);
        }
        Ok(())
    }
}

#[derive(Debug, Clone)]
pub struct BindService {
    pub client_id: ClientId,
    pub service: ServiceKind,
}

impl Command for BindService {
    type Answer = ();
    fn run(self, state: &mut State, turn: &mut Turn) -> DomainResult<()> {
        let Self { client_id, service } = self;
        let client = state.owned_client(client_id, &turn.principal)?;
        if !client.services.contains(&service) {
            state.record(turn, Event::ServiceBound { client_id, service });
        }
        Ok(())
    }
    fn acting_client(&self) -> Option<ClientId> {
        Some(self.client_id)
    }
}

#[derive(Debug, Clone)]
pub struct UnbindService {
    pub client_id: ClientId,
    pub service: ServiceKind,
}

impl Command for UnbindService {
    type Answer = ();
    fn run(self, state: &mut State, turn: &mut Turn) -> DomainResult<()> {
        let Self { client_id, service } = self;
        let client = state.owned_client(client_id, &turn.principal)?;
        if !client.services.contains(&service) {
            return Err(state.not_bound_to_service(client_id, service));
        }
        state.record(turn, Event::ServiceUnbound { client_id, service });
        Ok(())
    }
    fn acting_client(&self) -> Option<ClientId> {
        Some(self.client_id)
    }
}

/// Binding a workflow session also shows the binder where the view stands, as `state.updated`.
#[derive(Debug, Clone)]
pub struct BindResource {
    pub client_id: ClientId,
    pub service: ServiceKind,
    pub resource_id: String,
}

impl Command for BindResource {
    type Answer = ();
    fn run(self, state: &mut State, turn: &mut Turn) -> DomainResult<()> {
        let Self {
            client_id,
            service,
            resource_id,
        } = self;
        let client = state.owned_client(client_id, &turn.principal)?;
        if !client.services.contains(&service) {
            return Err(state.not_bound_to_service(client_id, service));
        }
        access::see_session(&turn.principal, &resource_id, state.session(&resource_id)?)?;
        let view = state.session_view(&resource_id)?;
        if !client.resources.contains(&(service, resource_id.clone())) {
            state.record(
                turn,
                Event::ResourceBound {
                    client_id,
                    service,
                    resource_id: resource_id.clone(),
                },
            );
        }
        if service == ServiceKind::WorkflowManager {
            state.record(
                turn,
                Event::SessionStateUpdated {
                    resource_id,
                    view_state: view.view_state,
                    actions: view.actions,
                },
            );
        }
        Ok(())
    }
    fn acting_client(&self) -> Option<ClientId> {
        Some(self.client_id)
    }
}

#[derive(Debug, Clone)]
pub struct UnbindResource {
    pub client_id: ClientId,
    pub service: ServiceKind,
    pub resource_id: String,
}

impl Command for UnbindResource {
    type Answer = ();
    fn run(self, state: &mut State, turn: &mut Turn) -> DomainResult<()> {
        let Self {
            client_id,
            service,
            resource_id,
        } = self;
        let client = state.owned_client(client_id, &turn.principal)?;
        if !client.resources.contains(&(service, resource_id.clone())) {
            return Err(DomainError::FailedPrecondition(format!(
                "client {client_id} has not bound resource '{resource_id}' of service '{}'",
                state.directory.id(service)
            )));
        }
        state.record(
            turn,
            Event::ResourceUnbound {
                client_id,
                service,
                resource_id,
            },
        );
        Ok(())
    }
    fn acting_client(&self) -> Option<ClientId> {
        Some(self.client_id)
    }
}

/// Opens the agent's session, or takes it over when `take_over` confirms it.
#[derive(Debug, Clone)]
pub struct PrepareSession {
    pub agent_id: String,
    /// The hash the password was verified against; if it changed meanwhile, the login fails.
    /// `None` when the caller is the agent itself, signed in with a token.
    pub verified_hash: Option<PasswordHashString>,
    pub model: String,
    pub take_over: bool,
    pub cti: String,
}

impl Command for PrepareSession {
    type Answer = Prepared;
    fn run(self, state: &mut State, turn: &mut Turn) -> DomainResult<Prepared> {
        let model = state.models.get(&self.model)?.clone();
        match &self.verified_hash {
            Some(hash) => state.check_hash(&self.agent_id, hash)?,
            None => {
                access::act_as_agent(&turn.principal, &self.agent_id)?;
                state.agent(&self.agent_id)?;
            }
        }
        let prepared_by = turn.principal.actor.clone();
        let (prepared, event) = decide_prepare(state, self, &model, prepared_by);
        if let Some(event) = event {
            state.record(turn, event);
        }
        Ok(prepared)
    }
}

fn decide_prepare(
    state: &State,
    command: PrepareSession,
    model: &WorkflowModel,
    prepared_by: Actor,
) -> (Prepared, Option<Event>) {
    let PrepareSession {
        agent_id,
        take_over,
        cti,
        ..
    } = command;
    let resource_id = state.directory.session_resource_id(&agent_id);
    let prepared = |result, message: String| Prepared {
        result,
        resource_id: resource_id.clone(),
        message,
    };
    let Some(existing) = state.sessions.get(&resource_id) else {
        return (
            prepared(PrepareResult::Success, String::new()),
            Some(Event::SessionPrepared {
                resource_id: resource_id.clone(),
                agent_id,
                model: model.name.clone(),
                cti,
                view_state: model.initial.clone(),
                prepared_by,
            }),
        );
    };
    if !take_over {
        let message = format!(
            "agent '{agent_id}' already has session '{resource_id}'; \
             repeat with override set to take it over"
        );
        return (prepared(PrepareResult::Confirm, message), None);
    }
    // Taking over keeps where the view stands unless the desktop asks for another model.
    let view_state = if existing.model == model.name {
        existing.view_state.clone()
    } else {
        model.initial.clone()
    };
    let message = format!("session '{resource_id}' taken over; its previous clients were unbound");
    (
        prepared(PrepareResult::Success, message),
        Some(Event::SessionTakenOver {
            resource_id: resource_id.clone(),
            model: model.name.clone(),
            cti,
            view_state,
            prepared_by,
        }),
    )
}

#[derive(Debug, Clone)]
pub struct EndSession {
    pub resource_id: String,
}

impl Command for EndSession {
    type Answer = ();
    fn run(self, state: &mut State, turn: &mut Turn) -> DomainResult<()> {
        let session = state.session(&self.resource_id)?;
        access::act_on_session(&turn.principal, &self.resource_id, session)?;
        state.record(
            turn,
            Event::SessionEnded {
                resource_id: self.resource_id,
            },
        );
        Ok(())
    }
}

/// A workflow action of the session's model, or one of the routing actions shown beside them.
#[derive(Debug, Clone)]
pub struct InvokeAction {
    pub resource_id: String,
    pub action: String,
}

/// The workflow actions that also log the session's agent in and out of routing.
pub const SESSION_LOGIN: &str = "session.login";
pub const SESSION_LOGOUT: &str = "session.logout";

impl Command for InvokeAction {
    type Answer = SessionView;
    fn run(self, state: &mut State, turn: &mut Turn) -> DomainResult<SessionView> {
        let Self {
            resource_id,
            action,
        } = self;
        access::act_on_session(&turn.principal, &resource_id, state.session(&resource_id)?)?;
        if let Some(routing_action) = DesktopAction::parse(&action) {
            state.invoke_desktop_action(&resource_id, routing_action, turn)?;
            return state.session_view(&resource_id);
        }
        let session = state.session(&resource_id)?;
        let agent_id = session.agent_id.clone();
        let model = state.model_of(session)?;
        let next = model.next_state(&session.view_state, &action)?.to_owned();
        let view = state.view_in(&resource_id, session, &next)?;
        state.record(
            turn,
            Event::SessionStateUpdated {
                resource_id,
                view_state: view.view_state.clone(),
                actions: view.actions.clone(),
            },
        );
        // A desktop's session login is its agent's routing login on every MRD it may work
        // on. A refusal (no MRD to log in on) leaves the view as it is and emits nothing.
        let presence = match action.as_str() {
            SESSION_LOGIN => Some(RequestedAgentState::Login),
            SESSION_LOGOUT => Some(RequestedAgentState::Logout),
            _ => None,
        };
        if let Some(requested) = presence {
            let _ = state.routing.change_agent_state(
                &agent_id,
                requested,
                "",
                "",
                turn.now,
                &mut turn.sink,
            );
        }
        Ok(view)
    }
    fn settled(view: SessionView, state: &State) -> SessionView {
        state.session_view(&view.resource_id).unwrap_or(view)
    }
}
