//! The directory's commands (AdminService): agents with their credentials and routing profile,
//! and the routing configuration: media routing domains, queues and reason codes.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::{Command, Page, Turn};
use crate::domain::agents::{AgentRecord, PasswordHashString, validate_routing_profile};
use crate::domain::error::{DomainError, DomainResult};
use crate::domain::events::Event;
use crate::domain::principals::{Role, default_agent_roles};
use crate::domain::routing::config::{MrdConfig, QueueConfig, ReasonCode};
use crate::domain::state::State;

#[derive(Debug, Clone)]
pub struct GetAgent {
    pub agent_id: String,
}

impl Command for GetAgent {
    type Answer = AgentRecord;
    const READS_ONLY: bool = true;
    fn run(self, state: &mut State, turn: &mut Turn) -> DomainResult<AgentRecord> {
        crate::domain::access::see_agent(&turn.principal, &self.agent_id)?;
        state.agent(&self.agent_id).cloned()
    }
}

#[derive(Debug, Clone)]
pub struct ListAgents {
    pub after: Option<String>,
    pub limit: usize,
}

impl Command for ListAgents {
    type Answer = Page<AgentRecord>;
    const READS_ONLY: bool = true;
    fn run(self, state: &mut State, _: &mut Turn) -> DomainResult<Self::Answer> {
        Ok(Page::of_map(
            &state.agents,
            self.after.as_deref(),
            self.limit,
            AgentRecord::clone,
        ))
    }
}

#[derive(Debug, Clone)]
pub struct UpsertAgent {
    pub agent_id: String,
    pub display_name: String,
    /// `None` keeps the stored password; creating an agent needs one.
    pub password_hash: Option<PasswordHashString>,
    pub attributes: BTreeMap<String, u32>,
    pub mrd_max_tasks: BTreeMap<String, u32>,
    /// `None` keeps the stored roles; a new agent is an agent only.
    pub roles: Option<BTreeSet<Role>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentWritten {
    pub agent: AgentRecord,
    pub created: bool,
}

impl Command for UpsertAgent {
    type Answer = AgentWritten;
    fn run(self, state: &mut State, turn: &mut Turn) -> DomainResult<AgentWritten> {
        let Self {
            agent_id,
            display_name,
            password_hash,
            attributes,
            mrd_max_tasks,
            roles,
        } = self;
        validate_routing_profile(&attributes, &mrd_max_tasks)?;
        // An override for an MRD that does not exist is a typo that would silently do nothing.
        if let Some(unknown) = mrd_max_tasks
            .keys()
            .find(|name| !state.routing.mrds().any(|m| &m.name == *name))
        {
            return Err(DomainError::invalid(
                "agent.mrd_max_tasks",
                format!("MRD '{unknown}' does not exist; create it first (UpsertMrd)"),
            ));
        }
        let existing = state.agents.get(&agent_id);
        let password_hash = match (password_hash, existing) {
            (Some(hash), _) => hash,
            (None, Some(agent)) => agent.password_hash.clone(),
            (None, None) => {
                return Err(DomainError::invalid(
                    "agent.password",
                    "must not be empty when creating an agent",
                ));
            }
        };
        let created = existing.is_none();
        let roles = roles
            .or_else(|| existing.map(|a| a.roles.clone()))
            .unwrap_or_else(default_agent_roles);
        check_agent_roles(&roles)?;
        if existing.is_some_and(|a| a.roles.contains(&Role::Admin)) && !roles.contains(&Role::Admin)
        {
            state.keep_an_admin(&format!("agent '{agent_id}'"))?;
        }
        // A new password or other roles void the tokens issued before.
        let credential_version = match existing {
            None => 1,
            Some(agent) if agent.password_hash != password_hash || agent.roles != roles => {
                agent.credential_version + 1
            }
            Some(agent) => agent.credential_version,
        };
        let agent = AgentRecord {
            agent_id: agent_id.clone(),
            display_name: display_name.clone(),
            password_hash: password_hash.clone(),
            attributes: attributes.clone(),
            mrd_max_tasks: mrd_max_tasks.clone(),
            roles: roles.clone(),
            credential_version,
        };
        state.record(
            turn,
            Event::AgentUpserted {
                agent_id,
                display_name,
                password_hash,
                attributes,
                mrd_max_tasks,
                roles,
                credential_version,
            },
        );
        Ok(AgentWritten { agent, created })
    }
}

/// Only an agent that is logged out of routing and has no session can go.
#[derive(Debug, Clone)]
pub struct DeleteAgent {
    pub agent_id: String,
}

impl Command for DeleteAgent {
    type Answer = ();
    fn run(self, state: &mut State, turn: &mut Turn) -> DomainResult<()> {
        let agent_id = self.agent_id;
        if state.agent(&agent_id)?.roles.contains(&Role::Admin) {
            state.keep_an_admin(&format!("agent '{agent_id}'"))?;
        }
        if state.routing.is_logged_in_anywhere(&agent_id) {
            return Err(DomainError::FailedPrecondition(format!(
                "agent '{agent_id}' is logged in for routing; log it out first"
            )));
        }
        if let Some((resource_id, _)) = state.sessions.iter().find(|(_, s)| s.agent_id == agent_id)
        {
            return Err(DomainError::FailedPrecondition(format!(
                "agent '{agent_id}' has session '{resource_id}'; end it first"
            )));
        }
        state.record(turn, Event::AgentDeleted { agent_id });
        Ok(())
    }
}

#[derive(Debug, Clone)]
pub struct UpsertMrd(pub MrdConfig);

impl Command for UpsertMrd {
    type Answer = ();
    fn run(self, state: &mut State, turn: &mut Turn) -> DomainResult<()> {
        state.routing.upsert_mrd(self.0, &mut turn.sink)
    }
}

#[derive(Debug, Clone)]
pub struct DeleteMrd {
    pub name: String,
}

impl Command for DeleteMrd {
    type Answer = ();
    fn run(self, state: &mut State, turn: &mut Turn) -> DomainResult<()> {
        state.routing.delete_mrd(&self.name, &mut turn.sink)
    }
}

#[derive(Debug, Clone)]
pub struct ListMrds;

impl Command for ListMrds {
    type Answer = Vec<MrdConfig>;
    const READS_ONLY: bool = true;
    fn run(self, state: &mut State, _: &mut Turn) -> DomainResult<Self::Answer> {
        Ok(state.routing.mrds().cloned().collect())
    }
}

#[derive(Debug, Clone)]
pub struct UpsertQueue(pub QueueConfig);

impl Command for UpsertQueue {
    type Answer = ();
    fn run(self, state: &mut State, turn: &mut Turn) -> DomainResult<()> {
        state.routing.upsert_queue(self.0, &mut turn.sink)
    }
}

#[derive(Debug, Clone)]
pub struct DeleteQueue {
    pub mrd: String,
    pub name: String,
}

impl Command for DeleteQueue {
    type Answer = ();
    fn run(self, state: &mut State, turn: &mut Turn) -> DomainResult<()> {
        state
            .routing
            .delete_queue(&self.mrd, &self.name, &mut turn.sink)
    }
}

#[derive(Debug, Clone)]
pub struct ListQueues;

impl Command for ListQueues {
    type Answer = Vec<QueueConfig>;
    const READS_ONLY: bool = true;
    fn run(self, state: &mut State, _: &mut Turn) -> DomainResult<Self::Answer> {
        Ok(state.routing.queues().cloned().collect())
    }
}

#[derive(Debug, Clone)]
pub struct UpsertReasonCode(pub ReasonCode);

impl Command for UpsertReasonCode {
    type Answer = ();
    fn run(self, state: &mut State, turn: &mut Turn) -> DomainResult<()> {
        state.routing.upsert_reason_code(self.0, &mut turn.sink)
    }
}

#[derive(Debug, Clone)]
pub struct ListReasonCodes;

impl Command for ListReasonCodes {
    type Answer = Vec<ReasonCode>;
    const READS_ONLY: bool = true;
    fn run(self, state: &mut State, _: &mut Turn) -> DomainResult<Self::Answer> {
        Ok(state.routing.reason_codes().cloned().collect())
    }
}

/// An agent is always an agent, and may also supervise or administer; integrations are
/// accounts of their own.
fn check_agent_roles(roles: &BTreeSet<Role>) -> DomainResult<()> {
    if !roles.contains(&Role::Agent) {
        return Err(DomainError::invalid(
            "agent.roles",
            "must include ROLE_AGENT (an account is for principals that are not agents)",
        ));
    }
    if roles.contains(&Role::Integration) {
        return Err(DomainError::invalid(
            "agent.roles",
            "ROLE_INTEGRATION belongs to accounts, not agents",
        ));
    }
    Ok(())
}
