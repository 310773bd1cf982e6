//! The agent directory's records. Passwords exist only as salted Argon2id hashes (PHC
//! strings), made and checked at the edge (`crate::credentials`); the clear text is never
//! stored, logged or echoed.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use super::principals::{Role, default_agent_roles};

use super::bounds::{
    MAX_AGENT_ATTRIBUTES, MAX_AGENT_MRD_OVERRIDES, MAX_TASKS_PER_MRD, check_attribute_name,
    check_count, check_id, check_name, check_proficiency,
};
use super::error::{DomainError, DomainResult};

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentRecord {
    pub agent_id: String,
    pub display_name: String,
    pub password_hash: PasswordHashString,
    /// Skills and flags queue steps select on: proficiency 1-10, or 1 for a flag.
    pub attributes: BTreeMap<String, u32>,
    /// Per-MRD overrides of the MRD's max tasks; 0 keeps the agent off that MRD.
    pub mrd_max_tasks: BTreeMap<String, u32>,
    /// What the agent may do besides acting as itself (a supervisor, an admin).
    #[serde(default = "default_agent_roles")]
    pub roles: BTreeSet<Role>,
    /// Bumped when its password or roles change or it is forced out: tokens issued before
    /// carry an older version and are refused.
    #[serde(default)]
    pub credential_version: u64,
}

/// A principal of the directory that is not an agent: an admin, a supervisor, a channel
/// server's integration account. It signs in with its id and secret.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountRecord {
    pub account_id: String,
    pub display_name: String,
    pub roles: BTreeSet<Role>,
    pub secret_hash: PasswordHashString,
    pub credential_version: u64,
    /// The SHA-256 fingerprint (lowercase hex) of the client certificate an integration may
    /// present over mTLS instead of a token.
    #[serde(default)]
    pub client_certificate: Option<String>,
}

impl fmt::Debug for AccountRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccountRecord")
            .field("account_id", &self.account_id)
            .field("roles", &self.roles)
            .finish_non_exhaustive()
    }
}

/// What a sign-in is checked against: the stored hash, the roles a token will carry, and the
/// credential version it will name.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credential {
    pub secret_hash: PasswordHashString,
    pub roles: BTreeSet<Role>,
    pub credential_version: u64,
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("roles", &self.roles)
            .field("credential_version", &self.credential_version)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for AgentRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentRecord")
            .field("agent_id", &self.agent_id)
            .field("display_name", &self.display_name)
            .finish_non_exhaustive()
    }
}

/// A PHC-format hash. Its Debug hides it, so a stray `{:?}` cannot leak even the hash.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PasswordHashString(String);

impl PasswordHashString {
    /// Wraps a PHC string made by `crate::credentials`.
    pub fn from_phc(phc: String) -> Self {
        Self(phc)
    }

    pub fn as_phc(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PasswordHashString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordHash(..)")
    }
}

/// Checks an agent's id and display name against `bounds`: an id, and a one-line name of at
/// most `MAX_NAME_CHARS` (it may be empty). The password is checked by `bounds::check_password`.
pub fn validate_agent_fields(agent_id: &str, display_name: &str) -> DomainResult<()> {
    check_id("agent.agent_id", agent_id)?;
    check_name("agent.display_name", display_name)
}

/// Checks an agent's routing profile against `bounds`: at most `MAX_AGENT_ATTRIBUTES`
/// attributes, each a valid attribute name holding a proficiency 1-10 (a flag is 1; an
/// attribute the agent lacks is left out, not set to 0), and at most `MAX_AGENT_MRD_OVERRIDES`
/// per-MRD max tasks, each 0 (off that MRD) to `MAX_TASKS_PER_MRD`.
pub fn validate_routing_profile(
    attributes: &BTreeMap<String, u32>,
    mrd_max_tasks: &BTreeMap<String, u32>,
) -> DomainResult<()> {
    check_count(
        "agent.attributes",
        attributes.len(),
        MAX_AGENT_ATTRIBUTES,
        "attributes",
    )?;
    for (name, value) in attributes {
        check_attribute_name("agent.attributes", name)?;
        check_proficiency("agent.attributes", name, *value)?;
    }
    check_count(
        "agent.mrd_max_tasks",
        mrd_max_tasks.len(),
        MAX_AGENT_MRD_OVERRIDES,
        "entries",
    )?;
    for (mrd, max) in mrd_max_tasks {
        check_id("agent.mrd_max_tasks", mrd)?;
        if *max > MAX_TASKS_PER_MRD {
            return Err(DomainError::invalid(
                "agent.mrd_max_tasks",
                format!("'{mrd}' is {max}; must be 0 to {MAX_TASKS_PER_MRD}"),
            ));
        }
    }
    Ok(())
}
