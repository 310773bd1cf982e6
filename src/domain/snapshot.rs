//! A snapshot: the state at one revision, so that start-up replays only the journal after it.
//! It holds the records the rules keep; the indexes and timers are rebuilt from them.

use serde::{Deserialize, Serialize};

use super::agents::{AccountRecord, AgentRecord};
use super::ids::ClientId;
use super::routing::RoutingSnapshot;
use super::signins::{RefreshChain, SignIns};
use super::state::{Client, Session, State};

/// Bumped whenever the layout changes; a server refuses a snapshot of another format.
pub const SNAPSHOT_FORMAT: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Snapshot {
    format: u32,
    clients: Vec<(ClientId, Client)>,
    agents: Vec<AgentRecord>,
    #[serde(default)]
    accounts: Vec<AccountRecord>,
    sessions: Vec<(String, Session)>,
    routing: RoutingSnapshot,
    #[serde(default)]
    refresh_chains: Vec<(String, RefreshChain)>,
}

impl Snapshot {
    /// Whether this server can read the snapshot as it was written.
    pub fn is_current_format(&self) -> bool {
        self.format == SNAPSHOT_FORMAT
    }
}

impl State {
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            format: SNAPSHOT_FORMAT,
            clients: self.clients.iter().map(|(k, v)| (*k, v.clone())).collect(),
            agents: self.agents.values().cloned().collect(),
            accounts: self.accounts.values().cloned().collect(),
            sessions: self
                .sessions
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            routing: self.routing.snapshot(),
            refresh_chains: self.signins.snapshot(),
        }
    }

    /// Replaces the records with the snapshot's; configuration (directory, models, grace
    /// period) stays as this state was built.
    pub fn restore(&mut self, snapshot: Snapshot) {
        self.clients = snapshot.clients.into_iter().collect();
        self.agents = snapshot
            .agents
            .into_iter()
            .map(|a| (a.agent_id.clone(), a))
            .collect();
        self.accounts = snapshot
            .accounts
            .into_iter()
            .map(|a| (a.account_id.clone(), a))
            .collect();
        self.sessions = snapshot.sessions.into_iter().collect();
        self.routing = super::routing::Routing::restore(snapshot.routing);
        self.signins = SignIns::restore(snapshot.refresh_chains);
    }
}
