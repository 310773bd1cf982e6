//! Principals: roles, accounts, and the requests that name an agent or an account.

use std::collections::BTreeSet;

use super::{required, wire_enum};
use crate::domain::agents::AccountRecord;
use crate::domain::bounds::{check_id, check_name, check_password};
use crate::domain::commands as cmd;
use crate::domain::{Actor, DomainError, DomainResult, Role};
use crate::engine::Password;
use crate::pb;

impl From<Role> for pb::Role {
    fn from(role: Role) -> Self {
        match role {
            Role::Agent => Self::Agent,
            Role::Supervisor => Self::Supervisor,
            Role::Admin => Self::Admin,
            Role::Integration => Self::Integration,
        }
    }
}

/// The roles a request lists; an empty list is `None` (keep what is stored). Duplicates are
/// one role; ROLE_UNSPECIFIED and unknown numbers are refused.
pub fn roles(field: &'static str, raw: &[i32]) -> DomainResult<Option<BTreeSet<Role>>> {
    if raw.is_empty() {
        return Ok(None);
    }
    raw.iter()
        .map(|&r| match wire_enum::<pb::Role>(field, r)? {
            pb::Role::Unspecified => Err(DomainError::invalid(
                field,
                "ROLE_UNSPECIFIED is not a role",
            )),
            pb::Role::Agent => Ok(Role::Agent),
            pb::Role::Supervisor => Ok(Role::Supervisor),
            pb::Role::Admin => Ok(Role::Admin),
            pb::Role::Integration => Ok(Role::Integration),
        })
        .collect::<DomainResult<_>>()
        .map(Some)
}

/// Roles on the wire, in role order.
pub fn wire_roles(roles: &BTreeSet<Role>) -> Vec<i32> {
    roles.iter().map(|&r| pb::Role::from(r) as i32).collect()
}

/// An account to create or update, checked before its secret is hashed.
#[derive(Debug)]
pub struct AccountWrite {
    pub account_id: String,
    pub display_name: String,
    pub secret: Option<Password>,
    pub roles: BTreeSet<Role>,
    pub client_certificate: Option<String>,
}

impl TryFrom<pb::UpsertAccountRequest> for AccountWrite {
    type Error = DomainError;

    fn try_from(req: pb::UpsertAccountRequest) -> DomainResult<Self> {
        let account = required("account", req.account)?;
        check_id("account.account_id", &account.account_id)?;
        check_name("account.display_name", &account.display_name)?;
        let secret = if account.secret.is_empty() {
            None
        } else {
            check_password("account.secret", &account.secret)?;
            Some(Password::new(account.secret))
        };
        let roles = roles("account.roles", &account.roles)?
            .ok_or_else(|| DomainError::invalid("account.roles", "must name at least one role"))?;
        let client_certificate = certificate_fingerprint(&account.client_certificate_sha256)?;
        Ok(Self {
            account_id: account.account_id,
            display_name: account.display_name,
            secret,
            roles,
            client_certificate,
        })
    }
}

/// The directory's view of an account; the secret field stays empty.
impl From<AccountRecord> for pb::Account {
    fn from(record: AccountRecord) -> Self {
        Self {
            account_id: record.account_id,
            display_name: record.display_name,
            secret: String::new(),
            roles: wire_roles(&record.roles),
            client_certificate_sha256: record.client_certificate.unwrap_or_default(),
        }
    }
}

impl TryFrom<pb::GetAccountRequest> for cmd::GetAccount {
    type Error = DomainError;

    fn try_from(req: pb::GetAccountRequest) -> DomainResult<Self> {
        check_id("account_id", &req.account_id)?;
        Ok(Self {
            account_id: req.account_id,
        })
    }
}

impl TryFrom<pb::DeleteAccountRequest> for cmd::DeleteAccount {
    type Error = DomainError;

    fn try_from(req: pb::DeleteAccountRequest) -> DomainResult<Self> {
        check_id("account_id", &req.account_id)?;
        Ok(Self {
            account_id: req.account_id,
        })
    }
}

impl TryFrom<pb::RevokeCredentialsRequest> for cmd::RevokeCredentials {
    type Error = DomainError;

    fn try_from(req: pb::RevokeCredentialsRequest) -> DomainResult<Self> {
        use pb::revoke_credentials_request::Principal as Named;
        let principal = match required("principal", req.principal)? {
            Named::AgentId(id) => agent_or_account(true, id)?,
            Named::AccountId(id) => agent_or_account(false, id)?,
        };
        Ok(Self { principal })
    }
}

/// The principal a request's `agent_id` or `account_id` (a oneof) names, its id checked.
fn agent_or_account(agent: bool, id: String) -> DomainResult<Actor> {
    if agent {
        check_id("agent_id", &id)?;
        Ok(Actor::Agent(id))
    } else {
        check_id("account_id", &id)?;
        Ok(Actor::Account(id))
    }
}

/// A certificate fingerprint as an account stores it: 64 lowercase hex digits; `None` for
/// none. Accepts the `sha256:` prefix the server logs and upper case digits.
fn certificate_fingerprint(raw: &str) -> DomainResult<Option<String>> {
    let hex = raw.strip_prefix("sha256:").unwrap_or(raw);
    if hex.is_empty() {
        return Ok(None);
    }
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(DomainError::invalid(
            "account.client_certificate_sha256",
            "must be 64 hex digits (the certificate's SHA-256), optionally after `sha256:`",
        ));
    }
    Ok(Some(hex.to_ascii_lowercase()))
}

/// Who a login names, checked: the principal and the password to verify.
pub struct LoginWrite {
    pub principal: Actor,
    pub password: Password,
}

impl TryFrom<pb::LoginRequest> for LoginWrite {
    type Error = DomainError;

    fn try_from(req: pb::LoginRequest) -> DomainResult<Self> {
        use pb::login_request::Principal as Named;
        let principal = match required("principal", req.principal)? {
            Named::AgentId(id) => agent_or_account(true, id)?,
            Named::AccountId(id) => agent_or_account(false, id)?,
        };
        check_password("password", &req.password)?;
        Ok(Self {
            principal,
            password: Password::new(req.password),
        })
    }
}
