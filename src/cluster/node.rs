//! Joining a cluster: the shared PostgreSQL journal, the cluster's signing key, the engine as
//! a follower woken by the journal's notifications, and the lease keeper that makes it lead
//! when the lease is free.

use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;
use tracing::info;

use super::keeper::Keeper;
use super::keys::{shared_forwarding_key, shared_signing_key};
use super::lease::LeaseTable;
use super::peer::PeerSeal;
use super::wakeup;
use crate::auth::SigningKey;
use crate::config::{ClusterSettings, ServerConfig};
use crate::credentials::Logins;
use crate::domain::State;
use crate::engine::{Engine, EngineHandle, Membership, RecoveryError, SystemClock};
use crate::store::{Fence, Journal, PostgresJournal, StoreError};

/// How long one call to the database may take before it counts as failed.
const DATABASE_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Error)]
pub enum ClusterError {
    #[error("the shared journal: {0}")]
    Store(#[from] StoreError),
    #[error("recovering from the shared journal: {0}")]
    Recovery(#[from] RecoveryError),
    #[error("the cluster's shared keys: {0}")]
    SigningKey(String),
    #[error("the start-up task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// A node that has joined its cluster: it follows until its keeper takes the lease.
pub struct ClusterNode {
    pub engine: EngineHandle,
    pub signing_key: SigningKey,
    /// Seals forwarded callers, and opens what other nodes sealed.
    pub peer_seal: PeerSeal,
    pub keeper: Keeper,
}

impl ClusterNode {
    pub async fn join(
        config: &ServerConfig,
        cluster: &ClusterSettings,
        state: State,
    ) -> Result<Self, ClusterError> {
        let fence = Fence::default();
        let url = cluster.journal_url.clone();
        let journal_fence = fence.clone();
        let journal: Arc<dyn Journal> = Arc::new(
            tokio::task::spawn_blocking(move || PostgresJournal::connect(&url, journal_fence))
                .await??,
        );
        let signing_key = shared_signing_key(&cluster.journal_url, DATABASE_TIMEOUT)
            .await
            .map_err(|e| ClusterError::SigningKey(e.to_string()))?;
        let peer_seal = PeerSeal::new(
            shared_forwarding_key(&cluster.journal_url, DATABASE_TIMEOUT)
                .await
                .map_err(|e| ClusterError::SigningKey(e.to_string()))?,
        );
        // Listening before the state is read: a change appended meanwhile still wakes it.
        let wakeups = wakeup::listen(&cluster.journal_url);
        let recovery = config.clone();
        let engine_fence = fence.clone();
        let engine = tokio::task::spawn_blocking(move || {
            let clock = Arc::new(SystemClock);
            Engine::start_following(
                state,
                journal,
                clock.clone(),
                recovery.engine(),
                recovery.watch(),
                Membership {
                    wakeups,
                    fence: engine_fence,
                },
            )
            .map(|engine| engine.with_logins(Logins::new(&recovery.logins(), clock)))
        })
        .await??;
        let lease = LeaseTable::connect(&cluster.journal_url, DATABASE_TIMEOUT).await?;
        info!(
            node_id = %cluster.lease.node_id,
            advertise = %cluster.lease.advertise,
            "joined the cluster as a follower"
        );
        let keeper = Keeper::spawn(lease, engine.clone(), fence, cluster.lease.clone());
        Ok(Self {
            engine,
            signing_key,
            peer_seal,
            keeper,
        })
    }
}
