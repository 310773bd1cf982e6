//! The directory's principals that are not agents (admins, supervisors, channel servers'
//! integration accounts), forcing a principal out, and what a sign-in is checked against.
//! Part of the directory family.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::{Command, Page, Turn};
use crate::domain::agents::{AccountRecord, Credential, PasswordHashString};
use crate::domain::bounds::{check_id, check_name};
use crate::domain::error::{DomainError, DomainResult};
use crate::domain::events::Event;
use crate::domain::principals::{Actor, Role};
use crate::domain::state::State;

#[derive(Debug, Clone)]
pub struct UpsertAccount {
    pub account_id: String,
    pub display_name: String,
    pub roles: BTreeSet<Role>,
    /// `None` keeps the stored secret; creating an account needs one.
    pub secret_hash: Option<PasswordHashString>,
    /// The client certificate's SHA-256 fingerprint (lowercase hex) an integration may sign
    /// in with over mTLS; `None` for none.
    pub client_certificate: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountWritten {
    pub account: AccountRecord,
    pub created: bool,
}

impl Command for UpsertAccount {
    type Answer = AccountWritten;
    fn run(self, state: &mut State, turn: &mut Turn) -> DomainResult<AccountWritten> {
        let Self {
            account_id,
            display_name,
            roles,
            secret_hash,
            client_certificate,
        } = self;
        check_id("account.account_id", &account_id)?;
        if let Some(fingerprint) = &client_certificate {
            if !roles.contains(&Role::Integration) {
                return Err(DomainError::invalid(
                    "account.client_certificate_sha256",
                    "only an integration (ROLE_INTEGRATION) signs in with a client certificate",
                ));
            }
            if let Some(other) = state.accounts.values().find(|a| {
                a.account_id != account_id && a.client_certificate.as_ref() == Some(fingerprint)
            }) {
                return Err(DomainError::AlreadyExists(format!(
                    "account '{}' already signs in with this client certificate",
                    other.account_id
                )));
            }
        }
        check_name("account.display_name", &display_name)?;
        if roles.is_empty() {
            return Err(DomainError::invalid(
                "account.roles",
                "must name at least one role",
            ));
        }
        if roles.contains(&Role::Agent) {
            return Err(DomainError::invalid(
                "account.roles",
                "ROLE_AGENT belongs to agents; create an agent instead (UpsertAgent)",
            ));
        }
        let existing = state.accounts.get(&account_id);
        if existing.is_some_and(|a| a.roles.contains(&Role::Admin)) && !roles.contains(&Role::Admin)
        {
            state.keep_an_admin(&format!("account '{account_id}'"))?;
        }
        let secret_hash = match (secret_hash, existing) {
            (Some(hash), _) => hash,
            (None, Some(account)) => account.secret_hash.clone(),
            (None, None) => {
                return Err(DomainError::invalid(
                    "account.secret",
                    "must not be empty when creating an account",
                ));
            }
        };
        let created = existing.is_none();
        let credential_version = match existing {
            None => 1,
            Some(a)
                if a.secret_hash != secret_hash
                    || a.roles != roles
                    || a.client_certificate != client_certificate =>
            {
                a.credential_version + 1
            }
            Some(a) => a.credential_version,
        };
        state.record(
            turn,
            Event::AccountUpserted {
                account_id: account_id.clone(),
                display_name,
                roles,
                secret_hash,
                credential_version,
                client_certificate,
            },
        );
        // The record as the fold made it from the event: one place builds it.
        let account = state.accounts[&account_id].clone();
        Ok(AccountWritten { account, created })
    }
}

#[derive(Debug, Clone)]
pub struct GetAccount {
    pub account_id: String,
}

impl Command for GetAccount {
    type Answer = AccountRecord;
    const READS_ONLY: bool = true;
    fn run(self, state: &mut State, _: &mut Turn) -> DomainResult<AccountRecord> {
        state
            .accounts
            .get(&self.account_id)
            .cloned()
            .ok_or_else(|| DomainError::not_found("account", self.account_id))
    }
}

#[derive(Debug, Clone)]
pub struct ListAccounts {
    pub after: Option<String>,
    pub limit: usize,
}

impl Command for ListAccounts {
    type Answer = Page<AccountRecord>;
    const READS_ONLY: bool = true;
    fn run(self, state: &mut State, _: &mut Turn) -> DomainResult<Self::Answer> {
        Ok(Page::of_map(
            &state.accounts,
            self.after.as_deref(),
            self.limit,
            AccountRecord::clone,
        ))
    }
}

/// An account goes with its credentials; the last admin cannot, so the server never locks
/// its operators out.
#[derive(Debug, Clone)]
pub struct DeleteAccount {
    pub account_id: String,
}

impl Command for DeleteAccount {
    type Answer = ();
    fn run(self, state: &mut State, turn: &mut Turn) -> DomainResult<()> {
        let account = state
            .accounts
            .get(&self.account_id)
            .ok_or_else(|| DomainError::not_found("account", self.account_id.clone()))?;
        if account.roles.contains(&Role::Admin) {
            state.keep_an_admin(&format!("account '{}'", self.account_id))?;
        }
        state.record(
            turn,
            Event::AccountDeleted {
                account_id: self.account_id,
            },
        );
        Ok(())
    }
}

/// Forces a principal out: every token it holds is void at once and its streams end.
/// Answers the new credential version.
#[derive(Debug, Clone)]
pub struct RevokeCredentials {
    pub principal: Actor,
}

impl Command for RevokeCredentials {
    type Answer = u64;
    fn run(self, state: &mut State, turn: &mut Turn) -> DomainResult<u64> {
        let current = state
            .credential(&self.principal)
            .ok_or_else(|| DomainError::not_found("principal", self.principal.to_string()))?
            .credential_version;
        let credential_version = current + 1;
        state.record(
            turn,
            Event::CredentialsRevoked {
                principal: self.principal,
                credential_version,
            },
        );
        Ok(credential_version)
    }
}

/// What a sign-in is checked against, off the engine task; `None` for an unknown principal.
#[derive(Debug, Clone)]
pub struct PrincipalCredential {
    pub principal: Actor,
}

impl Command for PrincipalCredential {
    type Answer = Option<Credential>;
    const READS_ONLY: bool = true;
    fn run(self, state: &mut State, _: &mut Turn) -> DomainResult<Self::Answer> {
        Ok(state.credential(&self.principal))
    }
}

/// The first admin, created only while there is none: the server's first start.
#[derive(Debug, Clone)]
pub struct BootstrapAdmin {
    pub account_id: String,
    pub secret_hash: PasswordHashString,
}

impl Command for BootstrapAdmin {
    /// Whether it was created (false: an admin exists already).
    type Answer = bool;
    fn run(self, state: &mut State, turn: &mut Turn) -> DomainResult<bool> {
        if state.admin_count() > 0 {
            return Ok(false);
        }
        UpsertAccount {
            account_id: self.account_id,
            display_name: "First administrator".into(),
            roles: [Role::Admin].into(),
            secret_hash: Some(self.secret_hash),
            client_certificate: None,
        }
        .run(state, turn)?;
        Ok(true)
    }
}

/// Whether any principal is an admin.
#[derive(Debug, Clone)]
pub struct HasAdmin;

impl Command for HasAdmin {
    type Answer = bool;
    const READS_ONLY: bool = true;
    fn run(self, state: &mut State, _: &mut Turn) -> DomainResult<bool> {
        Ok(state.admin_count() > 0)
    }
}
