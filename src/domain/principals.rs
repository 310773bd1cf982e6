//! Who acts: principals (agents and accounts), their roles, and the actor every command and
//! every journaled event names. Roles are data in the directory, changed by an admin.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::error::{DomainError, DomainResult};

/// What a principal may do; the policy table at the edge maps each RPC to the roles that may
/// call it, and the rules check ownership inside each command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Acts only as itself: its client, session, routing state, offers and tasks.
    Agent,
    /// Every read and watch; sets other agents' state; requeues or transfers any task.
    Supervisor,
    /// The AdminService, and everything a supervisor may do.
    Admin,
    /// A channel server: submits tasks, and reads, changes and closes the tasks it created.
    Integration,
}

impl Role {
    pub const ALL: [Role; 4] = [
        Self::Agent,
        Self::Supervisor,
        Self::Admin,
        Self::Integration,
    ];

    /// The name on the wire (`ROLE_AGENT`), in messages too.
    pub fn wire_name(self) -> &'static str {
        match self {
            Self::Agent => "ROLE_AGENT",
            Self::Supervisor => "ROLE_SUPERVISOR",
            Self::Admin => "ROLE_ADMIN",
            Self::Integration => "ROLE_INTEGRATION",
        }
    }

    /// The name in tokens (`agent`).
    pub fn claim(self) -> &'static str {
        match self {
            Self::Agent => "agent",
            Self::Supervisor => "supervisor",
            Self::Admin => "admin",
            Self::Integration => "integration",
        }
    }

    pub fn from_claim(claim: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.claim() == claim)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.wire_name())
    }
}

/// Who a command acts for: a principal, or the engine itself (timers, presence).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum Actor {
    /// The engine's own moves: timers, expired leases, cleanup.
    Engine,
    /// An agent, signed in with its own credentials.
    Agent(String),
    /// An account of the directory that is not an agent (an admin, a supervisor, a channel).
    Account(String),
}

/// Records journaled before actors were recorded name the engine.
impl Default for Actor {
    fn default() -> Self {
        Self::Engine
    }
}

impl Actor {
    /// The agent this actor is, if it is one.
    pub fn agent_id(&self) -> Option<&str> {
        match self {
            Self::Agent(id) => Some(id),
            _ => None,
        }
    }

    /// Parses the form `Display` writes: `engine`, `agent:<id>`, `account:<id>`.
    pub fn parse(raw: &str) -> DomainResult<Self> {
        if raw == "engine" {
            return Ok(Self::Engine);
        }
        match raw.split_once(':') {
            Some(("agent", id)) if !id.is_empty() => Ok(Self::Agent(id.to_owned())),
            Some(("account", id)) if !id.is_empty() => Ok(Self::Account(id.to_owned())),
            _ => Err(DomainError::invalid(
                "principal",
                "must be agent:<id> or account:<id>",
            )),
        }
    }
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Engine => f.write_str("engine"),
            Self::Agent(id) => write!(f, "agent:{id}"),
            Self::Account(id) => write!(f, "account:{id}"),
        }
    }
}

impl From<Actor> for String {
    fn from(actor: Actor) -> Self {
        actor.to_string()
    }
}

impl TryFrom<String> for Actor {
    type Error = DomainError;
    fn try_from(raw: String) -> DomainResult<Self> {
        Self::parse(&raw)
    }
}

/// An authenticated caller: who it is and what its roles allow, as its token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub actor: Actor,
    pub roles: BTreeSet<Role>,
}

impl Principal {
    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    /// Supervisors and admins see and steer every agent and task.
    pub fn oversees(&self) -> bool {
        self.has(Role::Supervisor) || self.has(Role::Admin)
    }

    /// The engine acting on its own, with every power.
    pub fn engine() -> Self {
        Self {
            actor: Actor::Engine,
            roles: Role::ALL.into_iter().collect(),
        }
    }
}

/// The roles an agent has when none are given.
pub fn default_agent_roles() -> BTreeSet<Role> {
    [Role::Agent].into()
}
