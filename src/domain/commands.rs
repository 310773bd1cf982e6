//! What the engine is asked to do, already validated and resolved from the wire form, and what
//! it answers. Secrets arrive here only as hashes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::agents::{AgentRecord, PasswordHashString};
use super::ids::ClientId;
use super::presence::StreamId;
use super::routing::config::{MrdConfig, QueueConfig, ReasonCode};
use super::routing::model::{RequestedAgentState, Task, TaskSpec, TaskState};
use super::routing::{AgentStatusView, QueueStats};
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
        attributes: BTreeMap<String, u32>,
        mrd_max_tasks: BTreeMap<String, u32>,
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

    // Routing configuration.
    UpsertMrd(MrdConfig),
    DeleteMrd {
        name: String,
    },
    ListMrds,
    UpsertQueue(QueueConfig),
    DeleteQueue {
        mrd: String,
        name: String,
    },
    ListQueues,
    UpsertReasonCode(ReasonCode),
    ListReasonCodes,

    // Routing.
    ConnectAgent {
        agent_id: String,
        verified_hash: PasswordHashString,
        extension: String,
        destination: String,
    },
    ChangeAgentState {
        agent_id: String,
        /// Set for `LoginAgent`: the hash its password was verified against.
        verified_hash: Option<PasswordHashString>,
        state: RequestedAgentState,
        mrd: String,
        reason_code: String,
    },
    NewTask(TaskSpec),
    AcceptTask {
        task_id: String,
        agent_id: String,
    },
    RejectTask {
        task_id: String,
        agent_id: String,
    },
    ChangeTaskState {
        task_id: String,
        state: TaskState,
    },
    TransferTask {
        task_id: String,
        owner_agent_id: String,
        recipient_agent_id: String,
    },
    ConferenceTask {
        task_id: String,
        owner_agent_id: String,
        participant_agent_id: String,
        mrd: String,
    },
    GetAgentState {
        agent_id: String,
    },
    GetTaskState {
        task_id: String,
    },
    ListAgentStates {
        after: Option<String>,
        limit: usize,
    },
    ListTasks {
        after: Option<String>,
        limit: usize,
    },
    GetQueueStats {
        mrd: String,
        queue: String,
    },
    /// Fires the timers that are due and lets clients whose lease ran out go.
    Tick,

    // Presence: not journaled.
    /// A stream of the client opened; it holds the client's lease while open.
    AttachStream {
        client_id: ClientId,
        stream: StreamId,
    },
    /// A stream of the client closed or broke; with none left, the grace period starts.
    DetachStream {
        client_id: ClientId,
        stream: StreamId,
    },
}

impl Command {
    /// The client a command names, whose lease the call renews.
    pub fn acting_client(&self) -> Option<ClientId> {
        match self {
            Self::RegisterClient { client_id, .. }
            | Self::BindService { client_id, .. }
            | Self::UnbindService { client_id, .. }
            | Self::BindResource { client_id, .. }
            | Self::UnbindResource { client_id, .. }
            | Self::AttachStream { client_id, .. }
            | Self::DetachStream { client_id, .. } => Some(*client_id),
            _ => None,
        }
    }
}

/// A session's view as desktops see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionView {
    pub resource_id: String,
    pub model: String,
    pub view_state: String,
    pub actions: Vec<(String, bool)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PrepareResult {
    Success,
    Confirm,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    Done,
    Registered {
        client_id: ClientId,
    },
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
    Mrds(Vec<MrdConfig>),
    Queues(Vec<QueueConfig>),
    ReasonCodes(Vec<ReasonCode>),
    AgentStatus(AgentStatusView),
    AgentStatuses {
        agents: Vec<AgentStatusView>,
        next_after: Option<String>,
    },
    TaskStatus(Box<Task>),
    Tasks {
        tasks: Vec<Task>,
        next_after: Option<String>,
    },
    QueueStats(QueueStats),
}
