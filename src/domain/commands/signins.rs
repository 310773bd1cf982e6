//! Signing in and out: a login starts a refresh chain, a refresh spends its live token for
//! the next, a logout ends it. Tokens arrive here only as hashes, made at the edge with their
//! random parts; the rules decide whether the principal may go on.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::{Command, Turn};
use crate::domain::agents::PasswordHashString;
use crate::domain::error::{DomainError, DomainResult};
use crate::domain::events::{Event, Millis};
use crate::domain::principals::{Actor, Role};
use crate::domain::signins::{ChainEnd, MAX_CHAINS_PER_PRINCIPAL};
use crate::domain::state::State;

/// Who a token will name: the principal's roles and credential version as they stand when the
/// command commits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Standing {
    pub principal: Actor,
    pub roles: BTreeSet<Role>,
    pub credential_version: u64,
}

/// A verified login: starts a refresh chain for the principal.
#[derive(Debug, Clone)]
pub struct SignIn {
    pub principal: Actor,
    /// The hash the secret was checked against: a secret changed since fails the login.
    pub verified_hash: PasswordHashString,
    pub chain_id: String,
    pub token_hash: String,
    pub expires_ms: Millis,
}

impl Command for SignIn {
    type Answer = Standing;
    fn run(self, state: &mut State, turn: &mut Turn) -> DomainResult<Standing> {
        let credential = state
            .credential(&self.principal)
            .filter(|c| c.secret_hash == self.verified_hash)
            .ok_or(DomainError::Unauthenticated)?;
        // Expired chains go first, then the oldest while the principal holds too many.
        let mine: Vec<(String, Millis)> = state
            .signins
            .chains_of(&self.principal)
            .map(|(id, c)| (id.clone(), c.expires_ms))
            .collect();
        let over = (mine.len() + 1).saturating_sub(MAX_CHAINS_PER_PRINCIPAL);
        for (i, (chain_id, expires_ms)) in mine.into_iter().enumerate() {
            let reason = if expires_ms <= turn.now {
                ChainEnd::Expired
            } else if i < over {
                ChainEnd::Displaced
            } else {
                continue;
            };
            state.record(turn, Event::RefreshChainEnded { chain_id, reason });
        }
        state.record(
            turn,
            Event::RefreshIssued {
                chain_id: self.chain_id,
                principal: self.principal.clone(),
                token_hash: self.token_hash,
                credential_version: credential.credential_version,
                expires_ms: self.expires_ms,
            },
        );
        Ok(Standing {
            principal: self.principal,
            roles: credential.roles,
            credential_version: credential.credential_version,
        })
    }
}

/// What became of a refresh.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Refreshed {
    /// The live token was spent; the next one is live.
    Rotated(Standing),
    /// No such chain, or it ended (a spent token ends it now): sign in again.
    Refused,
}

/// Spends the live refresh token of a chain for the next.
#[derive(Debug, Clone)]
pub struct Refresh {
    pub chain_id: String,
    pub presented_hash: String,
    pub next_hash: String,
    pub expires_ms: Millis,
}

impl Command for Refresh {
    type Answer = Refreshed;
    fn run(self, state: &mut State, turn: &mut Turn) -> DomainResult<Refreshed> {
        let Some(chain) = state.signins.chain(&self.chain_id).cloned() else {
            return Ok(Refreshed::Refused);
        };
        let credential = state
            .credential(&chain.principal)
            .filter(|c| c.credential_version == chain.credential_version);
        let end = if chain.token_hash != self.presented_hash {
            Some(ChainEnd::Reused)
        } else if chain.expires_ms <= turn.now || credential.is_none() {
            Some(ChainEnd::Expired)
        } else {
            None
        };
        let (None, Some(credential)) = (end, credential) else {
            let reason = end.unwrap_or(ChainEnd::Expired);
            let chain_id = self.chain_id;
            state.record(turn, Event::RefreshChainEnded { chain_id, reason });
            return Ok(Refreshed::Refused);
        };
        state.record(
            turn,
            Event::RefreshIssued {
                chain_id: self.chain_id,
                principal: chain.principal.clone(),
                token_hash: self.next_hash,
                credential_version: chain.credential_version,
                expires_ms: self.expires_ms,
            },
        );
        Ok(Refreshed::Rotated(Standing {
            principal: chain.principal,
            roles: credential.roles,
            credential_version: credential.credential_version,
        }))
    }
}

/// Ends a chain by its live token; a spent token ends it too, as a reuse.
#[derive(Debug, Clone)]
pub struct SignOut {
    pub chain_id: String,
    pub presented_hash: String,
}

impl Command for SignOut {
    type Answer = ();
    fn run(self, state: &mut State, turn: &mut Turn) -> DomainResult<()> {
        let Some(chain) = state.signins.chain(&self.chain_id) else {
            return Ok(());
        };
        let reason = if chain.token_hash == self.presented_hash {
            ChainEnd::Logout
        } else {
            ChainEnd::Reused
        };
        let chain_id = self.chain_id;
        state.record(turn, Event::RefreshChainEnded { chain_id, reason });
        Ok(())
    }
}

/// Whose chain this is, so that a refresh or a logout is recorded as that principal's.
#[derive(Debug, Clone)]
pub struct ChainPrincipal {
    pub chain_id: String,
}

impl Command for ChainPrincipal {
    type Answer = Option<Actor>;
    const READS_ONLY: bool = true;
    fn run(self, state: &mut State, _: &mut Turn) -> DomainResult<Option<Actor>> {
        Ok(state
            .signins
            .chain(&self.chain_id)
            .map(|c| c.principal.clone()))
    }
}
