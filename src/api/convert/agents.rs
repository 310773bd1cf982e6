//! Agents: the directory's records (AdminService) and their routing presence (RoutingService):
//! the agent, its status per MRD, the states it asks for, and the requests that carry its
//! password.

use std::collections::{BTreeMap, BTreeSet};

use super::{required, timestamp, wire_enum};
use crate::domain::agents::{
    AgentRecord, PasswordHashString, validate_agent_fields, validate_routing_profile,
};
use crate::domain::bounds::{
    MAX_DESTINATION_CHARS, MAX_EXTENSION_CHARS, check_id, check_optional_id,
    check_optional_password, check_password, check_text,
};
use crate::domain::commands as cmd;
use crate::domain::routing::AgentStatusView;
use crate::domain::routing::model::{AgentState, RequestedAgentState};
use crate::domain::{DomainError, DomainResult, Role};
use crate::engine::Password;
use crate::pb;

// ----- the directory ---------------------------------------------------------------------------

/// An agent to create or update, checked against `bounds` before its password is hashed:
/// its id, display name, password (if given) and routing profile. Whether the MRDs its
/// `mrd_max_tasks` names exist is the command's to say.
#[derive(Debug)]
pub struct AgentWrite {
    pub agent_id: String,
    pub display_name: String,
    /// `None` keeps the stored password.
    pub password: Option<Password>,
    pub attributes: BTreeMap<String, u32>,
    pub mrd_max_tasks: BTreeMap<String, u32>,
    /// `None` keeps the stored roles.
    pub roles: Option<BTreeSet<Role>>,
}

impl TryFrom<pb::Agent> for AgentWrite {
    type Error = DomainError;

    fn try_from(agent: pb::Agent) -> DomainResult<Self> {
        validate_agent_fields(&agent.agent_id, &agent.display_name)?;
        let password = if agent.password.is_empty() {
            None
        } else {
            check_password("agent.password", &agent.password)?;
            Some(Password::new(agent.password))
        };
        validate_routing_profile(&agent.attributes, &agent.mrd_max_tasks)?;
        let roles = super::principals::roles("agent.roles", &agent.roles)?;
        Ok(Self {
            agent_id: agent.agent_id,
            display_name: agent.display_name,
            password,
            attributes: agent.attributes,
            mrd_max_tasks: agent.mrd_max_tasks,
            roles,
        })
    }
}

impl TryFrom<pb::UpsertAgentRequest> for AgentWrite {
    type Error = DomainError;

    fn try_from(req: pb::UpsertAgentRequest) -> DomainResult<Self> {
        required("agent", req.agent)?.try_into()
    }
}

/// The directory's view of an agent; the password field stays empty.
impl From<AgentRecord> for pb::Agent {
    fn from(record: AgentRecord) -> Self {
        Self {
            agent_id: record.agent_id,
            display_name: record.display_name,
            password: String::new(),
            attributes: record.attributes,
            mrd_max_tasks: record.mrd_max_tasks,
            roles: super::principals::wire_roles(&record.roles),
        }
    }
}

impl TryFrom<pb::GetAgentRequest> for cmd::GetAgent {
    type Error = DomainError;

    fn try_from(req: pb::GetAgentRequest) -> DomainResult<Self> {
        check_id("agent_id", &req.agent_id)?;
        Ok(Self {
            agent_id: req.agent_id,
        })
    }
}

impl TryFrom<pb::DeleteAgentRequest> for cmd::DeleteAgent {
    type Error = DomainError;

    fn try_from(req: pb::DeleteAgentRequest) -> DomainResult<Self> {
        check_id("agent_id", &req.agent_id)?;
        Ok(Self {
            agent_id: req.agent_id,
        })
    }
}

// ----- requests that carry the agent's password -------------------------------------------------

/// A command that runs only once the agent's password is checked (off the engine task): the
/// agent, its password, and how to build the command from the hash the password matched, so
/// that a password changed in between fails the command. Without a password the command
/// carries no hash, and only the agent itself (signed in with a token) may run it.
pub struct WithPassword<C> {
    pub agent_id: String,
    pub password: Option<Password>,
    pub command: Box<dyn FnOnce(Option<PasswordHashString>) -> C + Send>,
}

impl<C> WithPassword<C> {
    /// `command` built from the agent's id and the hash its password matched. The caller has
    /// checked the id and the password.
    pub(super) fn new(
        agent_id: String,
        password: String,
        command: impl FnOnce(String, Option<PasswordHashString>) -> C + Send + 'static,
    ) -> Self {
        let id = agent_id.clone();
        Self {
            agent_id,
            password: (!password.is_empty()).then(|| Password::new(password)),
            command: Box::new(move |hash| command(id, hash)),
        }
    }
}

impl TryFrom<pb::ConnectAgentRequest> for WithPassword<cmd::ConnectAgent> {
    type Error = DomainError;

    fn try_from(req: pb::ConnectAgentRequest) -> DomainResult<Self> {
        check_id("agent_id", &req.agent_id)?;
        check_optional_password("password", &req.password)?;
        check_text("extension", &req.extension, MAX_EXTENSION_CHARS)?;
        check_text("destination", &req.destination, MAX_DESTINATION_CHARS)?;
        let (extension, destination) = (req.extension, req.destination);
        Ok(Self::new(
            req.agent_id,
            req.password,
            |agent_id, verified_hash| cmd::ConnectAgent {
                agent_id,
                verified_hash,
                extension,
                destination,
            },
        ))
    }
}

impl TryFrom<pb::LoginAgentRequest> for WithPassword<cmd::ChangeAgentState> {
    type Error = DomainError;

    fn try_from(req: pb::LoginAgentRequest) -> DomainResult<Self> {
        check_id("agent_id", &req.agent_id)?;
        check_optional_password("password", &req.password)?;
        check_optional_id("mrd", &req.mrd)?;
        let mrd = req.mrd;
        Ok(Self::new(
            req.agent_id,
            req.password,
            |agent_id, verified_hash| cmd::ChangeAgentState {
                agent_id,
                verified_hash,
                state: RequestedAgentState::Login,
                mrd,
                reason_code: String::new(),
            },
        ))
    }
}

// ----- routing presence ------------------------------------------------------------------------

impl From<AgentState> for pb::AgentState {
    fn from(state: AgentState) -> Self {
        match state {
            AgentState::Logout => Self::Logout,
            AgentState::NotReady => Self::NotReady,
            AgentState::Ready => Self::Ready,
            AgentState::Reserved => Self::Reserved,
            AgentState::Active => Self::Active,
            AgentState::Busy => Self::Busy,
            AgentState::WorkReady => Self::WorkReady,
            AgentState::PendingNotReady => Self::PendingNotReady,
        }
    }
}

/// What an agent may ask for (`state`); the derived states are refused with the reason.
impl TryFrom<pb::AgentState> for RequestedAgentState {
    type Error = DomainError;

    fn try_from(state: pb::AgentState) -> DomainResult<Self> {
        Ok(match state {
            pb::AgentState::Login => Self::Login,
            pb::AgentState::Ready => Self::Ready,
            pb::AgentState::NotReady => Self::NotReady,
            pb::AgentState::Logout => Self::Logout,
            pb::AgentState::Unspecified => {
                return Err(DomainError::invalid(
                    "state",
                    "must be LOGIN, READY, NOT_READY or LOGOUT",
                ));
            }
            derived => {
                return Err(DomainError::invalid(
                    "state",
                    format!(
                        "{} is set by the engine; agents ask for LOGIN, READY, NOT_READY or LOGOUT",
                        derived.as_str_name()
                    ),
                ));
            }
        })
    }
}

impl From<AgentStatusView> for pb::AgentStatus {
    fn from(view: AgentStatusView) -> Self {
        Self {
            agent_id: view.agent_id,
            routable: view.routable,
            pending_offer_task_id: view.pending_offer.unwrap_or_default(),
            extension: view.extension,
            destination: view.destination,
            mrds: view
                .mrds
                .into_iter()
                .map(|m| pb::AgentMrdStatus {
                    mrd: m.mrd,
                    state: pb::AgentState::from(m.state).into(),
                    reason_code: m.reason_code,
                    active_task_ids: m.active_tasks,
                    max_tasks: m.max_tasks,
                    available_since_time: timestamp(m.available_since),
                    logout_pending_by: m
                        .logout_pending_by
                        .map(|by| by.to_string())
                        .unwrap_or_default(),
                })
                .collect(),
        }
    }
}

impl TryFrom<pb::ChangeAgentStateRequest> for cmd::ChangeAgentState {
    type Error = DomainError;

    fn try_from(req: pb::ChangeAgentStateRequest) -> DomainResult<Self> {
        check_id("agent_id", &req.agent_id)?;
        let state = wire_enum::<pb::AgentState>("state", req.state)?.try_into()?;
        check_optional_id("mrd", &req.mrd)?;
        check_optional_id("reason_code", &req.reason_code)?;
        Ok(Self {
            agent_id: req.agent_id,
            verified_hash: None,
            state,
            mrd: req.mrd,
            reason_code: req.reason_code,
        })
    }
}

impl TryFrom<pb::SetAgentNextStateRequest> for cmd::SetAgentNextState {
    type Error = DomainError;

    fn try_from(req: pb::SetAgentNextStateRequest) -> DomainResult<Self> {
        check_id("agent_id", &req.agent_id)?;
        let state = match wire_enum::<pb::AgentState>("state", req.state)? {
            pb::AgentState::Ready => RequestedAgentState::Ready,
            pb::AgentState::NotReady => RequestedAgentState::NotReady,
            pb::AgentState::Logout => RequestedAgentState::Logout,
            other => {
                return Err(DomainError::invalid(
                    "state",
                    format!(
                        "{} is not a next state; set READY, NOT_READY or LOGOUT",
                        other.as_str_name()
                    ),
                ));
            }
        };
        check_optional_id("mrd", &req.mrd)?;
        check_optional_id("reason_code", &req.reason_code)?;
        Ok(Self {
            agent_id: req.agent_id,
            state,
            mrd: req.mrd,
            reason_code: req.reason_code,
        })
    }
}

impl TryFrom<pb::GetAgentStateRequest> for cmd::GetAgentState {
    type Error = DomainError;

    fn try_from(req: pb::GetAgentStateRequest) -> DomainResult<Self> {
        check_id("agent_id", &req.agent_id)?;
        Ok(Self {
            agent_id: req.agent_id,
        })
    }
}
