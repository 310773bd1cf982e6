//! What the engine is asked to do, already validated and resolved from the wire form, and what
//! it answers. Secrets arrive here only as hashes.

use std::collections::BTreeMap;

use super::agents::{AgentRecord, PasswordHashString};
use super::ids::ClientId;
use super::services::ServiceKind;

#[derive(Debug, Clone)]
pub enum Command {
    // Reads: answered from the state as of the batch they are in.
    ServerLoad,
    GetCapabilities,
    GetSessionState {
        resource_id: String,
    },
    GetAgent {
        agent_id: String,
    },
    ListAgents {
        after: Option<String>,
        limit: usize,
    },
    /// The stored hash to check a login against, off the engine task.
    AgentCredential {
        agent_id: String,
    },

    // Writes.
    RegisterClient {
        client_id: ClientId,
        client_name: String,
    },
    UnregisterClient {
        client_id: ClientId,
    },
    BindService {
        client_id: ClientId,
        service: ServiceKind,
    },
    UnbindService {
        client_id: ClientId,
        service: ServiceKind,
    },
    BindResource {
        client_id: ClientId,
        service: ServiceKind,
        resource_id: String,
    },
    UnbindResource {
        client_id: ClientId,
        service: ServiceKind,
        resource_id: String,
    },
    UpsertAgent {
        agent_id: String,
        display_name: String,
        /// `None` keeps the stored password; creating an agent needs one.
        password_hash: Option<PasswordHashString>,
    },
    DeleteAgent {
        agent_id: String,
    },
    PrepareSession {
        agent_id: String,
        /// The hash the password was verified against; if it changed meanwhile, the login fails.
        verified_hash: PasswordHashString,
        model: String,
        take_over: bool,
        cti: String,
    },
    EndSession {
        resource_id: String,
    },
    InvokeAction {
        resource_id: String,
        action: String,
    },
}

/// A session's view as desktops see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionView {
    pub resource_id: String,
    pub model: String,
    pub view_state: String,
    pub actions: Vec<(String, bool)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrepareResult {
    Success,
    Confirm,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Done,
    Load {
        client_count: usize,
        per_service: BTreeMap<ServiceKind, usize>,
    },
    Capabilities(BTreeMap<String, String>),
    Session(SessionView),
    Agent(AgentRecord),
    AgentWritten {
        agent: AgentRecord,
        created: bool,
    },
    Agents {
        agents: Vec<AgentRecord>,
        next_after: Option<String>,
    },
    Credential(Option<PasswordHashString>),
    Prepared {
        result: PrepareResult,
        resource_id: String,
        message: String,
    },
}
