//! The principals' credential versions, as the edge checks tokens against them. The engine
//! updates it as it applies each event, before the event is durable, so that a revocation
//! takes effect at once: a token naming an older version (or a principal that is gone) is
//! refused on its next call, and streams opened with it end.

use std::collections::HashMap;
use std::sync::{PoisonError, RwLock};

use tokio::sync::watch;

use crate::domain::{Actor, Event, Principal, State};

pub struct Standings {
    versions: RwLock<HashMap<Actor, u64>>,
    /// Integrations that sign in with a client certificate, by its SHA-256 (lowercase hex).
    certificates: RwLock<HashMap<String, Principal>>,
    /// Bumped on every change, so streams can wait for one that concerns them.
    changes: watch::Sender<u64>,
}

impl Standings {
    pub(super) fn of(state: &State) -> Self {
        Self {
            versions: RwLock::new(state.credential_versions().collect()),
            certificates: RwLock::new(state.certificate_principals().collect()),
            changes: watch::Sender::new(0),
        }
    }

    /// Back to what `state` says, after the engine rebuilt it from the journal: changes it
    /// applied that never became durable are forgotten.
    pub(super) fn reset(&self, state: &State) {
        *self
            .versions
            .write()
            .unwrap_or_else(PoisonError::into_inner) = state.credential_versions().collect();
        *self
            .certificates
            .write()
            .unwrap_or_else(PoisonError::into_inner) = state.certificate_principals().collect();
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// The principal's credential version now; `None` once it is gone.
    pub fn current_version(&self, actor: &Actor) -> Option<u64> {
        let versions = self.versions.read().unwrap_or_else(PoisonError::into_inner);
        versions.get(actor).copied()
    }

    /// Resolves once a token of `actor` at `version` is no longer valid.
    pub async fn revoked(&self, actor: &Actor, version: u64) {
        let mut changes = self.changes.subscribe();
        while self.current_version(actor) == Some(version) {
            if changes.changed().await.is_err() {
                // The engine is gone: the server is stopping, and ends streams itself.
                std::future::pending::<()>().await;
            }
        }
    }

    /// The integration whose client certificate has this fingerprint, with its credential
    /// version now.
    pub fn certificate_principal(&self, sha256_hex: &str) -> Option<(Principal, u64)> {
        let certificates = self
            .certificates
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let principal = certificates.get(sha256_hex)?.clone();
        let version = self.current_version(&principal.actor)?;
        Some((principal, version))
    }

    /// Keeps the certificate map in step with the accounts.
    fn observe_certificates(&self, event: &Event) {
        let (account, now) = match event {
            Event::AccountUpserted {
                account_id,
                roles,
                client_certificate,
                ..
            } => {
                let principal = Principal {
                    actor: Actor::Account(account_id.clone()),
                    roles: roles.clone(),
                };
                (
                    account_id,
                    client_certificate.clone().map(|f| (f, principal)),
                )
            }
            Event::AccountDeleted { account_id } => (account_id, None),
            _ => return,
        };
        let actor = Actor::Account(account.clone());
        let mut certificates = self
            .certificates
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        certificates.retain(|_, p| p.actor != actor);
        if let Some((fingerprint, principal)) = now {
            certificates.insert(fingerprint, principal);
        }
    }

    pub(super) fn observe(&self, event: &Event) {
        self.observe_certificates(event);
        let (actor, version) = match event {
            Event::AgentUpserted {
                agent_id,
                credential_version,
                ..
            } => (Actor::Agent(agent_id.clone()), Some(*credential_version)),
            Event::AccountUpserted {
                account_id,
                credential_version,
                ..
            } => (
                Actor::Account(account_id.clone()),
                Some(*credential_version),
            ),
            Event::CredentialsRevoked {
                principal,
                credential_version,
            } => (principal.clone(), Some(*credential_version)),
            Event::AgentDeleted { agent_id } => (Actor::Agent(agent_id.clone()), None),
            Event::AccountDeleted { account_id } => (Actor::Account(account_id.clone()), None),
            _ => return,
        };
        {
            let mut versions = self
                .versions
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            match version {
                Some(v) => versions.insert(actor, v),
                None => versions.remove(&actor),
            };
        }
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }
}

impl crate::auth::CredentialStanding for Standings {
    fn current_version(&self, actor: &Actor) -> Option<u64> {
        Standings::current_version(self, actor)
    }

    fn certificate_principal(&self, sha256_hex: &str) -> Option<(Principal, u64)> {
        Standings::certificate_principal(self, sha256_hex)
    }
}
