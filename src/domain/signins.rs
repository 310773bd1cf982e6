//! Sign-ins: each login starts a chain of refresh tokens, one live token at a time. A refresh
//! spends the live token and names the next; presenting a spent one ends the whole chain (the
//! token was stolen, or a client is confused: either way nobody should hold the chain now).
//! Only hashes of the tokens are kept. Chains are bounded per principal, and go with the
//! principal's credentials: a new password, a role change, a forced logout or deletion.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::events::{Event, Millis};
use super::principals::Actor;

/// Refresh chains one principal may hold at once (its desktops, browsers, channel servers);
/// signing in once more ends the chain that expires first.
pub const MAX_CHAINS_PER_PRINCIPAL: usize = 16;

/// One login's chain of refresh tokens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshChain {
    pub principal: Actor,
    /// Hash of the one refresh token that may be spent next.
    pub token_hash: String,
    /// The principal's credential version when the chain started; a newer one ends it.
    pub credential_version: u64,
    pub expires_ms: Millis,
}

/// Why a chain ended, as the journal tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChainEnd {
    /// The principal signed out.
    Logout,
    /// A spent token was presented again.
    Reused,
    /// Its time ran out, or its principal's credentials changed.
    Expired,
    /// The principal started more chains than it may hold.
    Displaced,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignIns {
    chains: BTreeMap<String, RefreshChain>,
}

impl SignIns {
    pub fn chain(&self, chain_id: &str) -> Option<&RefreshChain> {
        self.chains.get(chain_id)
    }

    /// The principal's chains, oldest expiry first.
    pub fn chains_of<'a>(
        &'a self,
        principal: &'a Actor,
    ) -> impl Iterator<Item = (&'a String, &'a RefreshChain)> + 'a {
        let mut mine: Vec<_> = self
            .chains
            .iter()
            .filter(|(_, c)| &c.principal == principal)
            .collect();
        mine.sort_by_key(|(id, c)| (c.expires_ms, *id));
        mine.into_iter()
    }

    /// The fold's part for sign-ins; a principal's chains go with its credentials.
    pub fn apply(&mut self, event: &Event) {
        match event {
            Event::RefreshIssued {
                chain_id,
                principal,
                token_hash,
                credential_version,
                expires_ms,
            } => {
                self.chains.insert(
                    chain_id.clone(),
                    RefreshChain {
                        principal: principal.clone(),
                        token_hash: token_hash.clone(),
                        credential_version: *credential_version,
                        expires_ms: *expires_ms,
                    },
                );
            }
            Event::RefreshChainEnded { chain_id, .. } => {
                self.chains.remove(chain_id);
            }
            Event::AgentDeleted { agent_id } => {
                self.end_all(&Actor::Agent(agent_id.clone()), u64::MAX);
            }
            Event::AccountDeleted { account_id } => {
                self.end_all(&Actor::Account(account_id.clone()), u64::MAX);
            }
            Event::AgentUpserted {
                agent_id,
                credential_version,
                ..
            } => self.end_all(&Actor::Agent(agent_id.clone()), *credential_version),
            Event::AccountUpserted {
                account_id,
                credential_version,
                ..
            } => self.end_all(&Actor::Account(account_id.clone()), *credential_version),
            Event::CredentialsRevoked {
                principal,
                credential_version,
            } => self.end_all(principal, *credential_version),
            _ => {}
        }
    }

    /// Ends the principal's chains started before credential version `current`.
    fn end_all(&mut self, principal: &Actor, current: u64) {
        self.chains
            .retain(|_, c| &c.principal != principal || c.credential_version >= current);
    }

    pub fn snapshot(&self) -> Vec<(String, RefreshChain)> {
        self.chains
            .iter()
            .map(|(id, c)| (id.clone(), c.clone()))
            .collect()
    }

    pub fn restore(chains: Vec<(String, RefreshChain)>) -> Self {
        Self {
            chains: chains.into_iter().collect(),
        }
    }
}
