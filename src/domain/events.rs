//! Everything that changes state is one of these events. State = fold(events): replaying the
//! journal through `State::apply` rebuilds the server's state exactly.

use serde::{Deserialize, Serialize};

use std::collections::{BTreeMap, BTreeSet};

use super::agents::PasswordHashString;
use super::ids::ClientId;
use super::principals::{Actor, Role, default_agent_roles};
use super::routing::classify::QueueChoice;
use super::routing::config::{MrdConfig, QueueConfig, ReasonCode};
use super::routing::disposition::TaskDisposition;
use super::routing::model::{
    AgentState, CloseReason, RequestedAgentState, RequeueReason, Selection, TaskSpec, TaskState,
};
use super::routing::supervise::QueueMove;
use super::services::ServiceKind;
use super::signins::ChainEnd;

/// A gapless, increasing position in the journal of one engine.
pub type Revision = u64;

/// Milliseconds since the Unix epoch: the engine's clock, passed into the rules.
pub type Millis = u64;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    ClientRegistered {
        client_id: ClientId,
        client_name: String,
        /// The principal that registered it: the only one that may act for it or resume it.
        #[serde(default)]
        owner: Actor,
    },
    /// The client and every binding it held are gone.
    ClientUnregistered {
        client_id: ClientId,
    },
    ServiceBound {
        client_id: ClientId,
        service: ServiceKind,
    },
    /// The service binding and the client's resource bindings of that service are gone.
    ServiceUnbound {
        client_id: ClientId,
        service: ServiceKind,
    },
    ResourceBound {
        client_id: ClientId,
        service: ServiceKind,
        resource_id: String,
    },
    ResourceUnbound {
        client_id: ClientId,
        service: ServiceKind,
        resource_id: String,
    },
    AgentUpserted {
        agent_id: String,
        display_name: String,
        password_hash: PasswordHashString,
        #[serde(default)]
        attributes: BTreeMap<String, u32>,
        #[serde(default)]
        mrd_max_tasks: BTreeMap<String, u32>,
        #[serde(default = "default_agent_roles")]
        roles: BTreeSet<Role>,
        #[serde(default)]
        credential_version: u64,
    },
    AgentDeleted {
        agent_id: String,
    },
    AccountUpserted {
        account_id: String,
        display_name: String,
        roles: BTreeSet<Role>,
        secret_hash: PasswordHashString,
        credential_version: u64,
        #[serde(default)]
        client_certificate: Option<String>,
    },
    AccountDeleted {
        account_id: String,
    },
    /// The principal's tokens issued before are void from now on, and its streams end.
    CredentialsRevoked {
        principal: Actor,
        credential_version: u64,
    },
    /// A refresh chain started (a login) or moved on (a refresh): `token_hash` is live now.
    RefreshIssued {
        chain_id: String,
        principal: Actor,
        token_hash: String,
        credential_version: u64,
        expires_ms: Millis,
    },
    RefreshChainEnded {
        chain_id: String,
        reason: ChainEnd,
    },
    SessionPrepared {
        resource_id: String,
        agent_id: String,
        model: String,
        cti: String,
        view_state: String,
        /// The principal that prepared it (the agent, or a desktop holding its password).
        #[serde(default)]
        prepared_by: Actor,
    },
    /// Another desktop took the session over: clients bound to it are told, then unbound.
    SessionTakenOver {
        resource_id: String,
        model: String,
        cti: String,
        view_state: String,
        #[serde(default)]
        prepared_by: Actor,
    },
    /// The session is gone: clients bound to it are told, then unbound.
    SessionEnded {
        resource_id: String,
    },
    /// A session's view, announced when a client binds it or changed by an action. Carries the
    /// actions so the journal says what desktops were shown, whatever models load later.
    SessionStateUpdated {
        resource_id: String,
        view_state: String,
        actions: Vec<(String, bool)>,
    },

    // Routing configuration.
    MrdUpserted {
        mrd: MrdConfig,
    },
    MrdDeleted {
        name: String,
    },
    QueueUpserted {
        queue: QueueConfig,
    },
    /// The queue is gone; a deleted `default` queue goes back to the built-in one.
    QueueDeleted {
        mrd: String,
        name: String,
    },
    ReasonCodeUpserted {
        reason: ReasonCode,
    },

    // Agents' routing presence.
    AgentConnected {
        agent_id: String,
        extension: String,
        destination: String,
    },
    AgentLoggedIn {
        agent_id: String,
        mrd: String,
        at: Millis,
    },
    AgentReady {
        agent_id: String,
        mrd: String,
        at: Millis,
    },
    /// NOT_READY at once, or PENDING_NOT_READY while the agent still has tasks on the MRD.
    AgentNotReady {
        agent_id: String,
        mrd: String,
        reason_code: String,
        at: Millis,
    },
    AgentLoggedOut {
        agent_id: String,
        mrd: String,
        reason_code: String,
    },
    AgentRoutable {
        agent_id: String,
        routable: bool,
    },
    /// A supervisor (`by`) set the agent's next state on an MRD: READY and NOT_READY follow
    /// as their own events; a LOGOUT waits until the agent has no task or ringing offer there.
    AgentNextStateSet {
        agent_id: String,
        mrd: String,
        state: RequestedAgentState,
        reason_code: String,
        by: Actor,
        at: Millis,
    },
    /// A notice of an agent's derived state on an MRD, emitted whenever it changes.
    AgentStateChanged {
        agent_id: String,
        mrd: String,
        state: AgentState,
        reason_code: String,
        routable: bool,
        active_tasks: u32,
    },

    // Tasks.
    TaskQueued {
        /// Boxed: the largest part of any event, kept out of the enum's size.
        spec: Box<TaskSpec>,
        priority: u8,
        seq: u64,
        at: Millis,
        step_deadline: Option<Millis>,
        ttl_deadline: Option<Millis>,
        /// For a callback, the time in queue it takes over from the earlier task; else `at`.
        #[serde(default)]
        queued_at: Option<Millis>,
        /// Its position in its queue on arrival (0 in events journaled before it was recorded).
        #[serde(default)]
        position: u32,
        /// Its estimated wait on arrival, when its queue has a recent pace.
        #[serde(default)]
        estimated_wait_ms: Option<Millis>,
        /// Until when only its preferred agents may be offered it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        preferred_deadline: Option<Millis>,
        /// How the queue and priority were chosen.
        #[serde(default)]
        choice: QueueChoice,
    },
    /// The task's preferred agents had their time: its queue's steps may offer it too.
    TaskPreferenceEnded {
        task_id: String,
        mrd: String,
        at: Millis,
    },
    TaskAgentSelected {
        task_id: String,
        agent_id: String,
        mrd: String,
        queue: String,
        offer_deadline: Millis,
        selection: Selection,
        /// The chosen agent's tasks on the MRD when chosen.
        agent_load: u32,
        at: Millis,
    },
    TaskAccepted {
        task_id: String,
        mrd: String,
        agent_id: String,
        at: Millis,
    },
    /// Back into its queue ahead of all: after RONA, a rejection, or its agent's logout.
    TaskRequeued {
        task_id: String,
        mrd: String,
        agent_id: String,
        reason: RequeueReason,
        priority: u8,
        seq: u64,
        at: Millis,
        step_deadline: Option<Millis>,
        /// Set when a supervisor moved it to another queue of its MRD.
        #[serde(default)]
        moved_to: Option<QueueMove>,
    },
    /// A waiting task's position moved materially (see `routing::position`): a notice.
    TaskPositionChanged {
        task_id: String,
        mrd: String,
        queue: String,
        position: u32,
        estimated_wait_ms: Option<Millis>,
        at: Millis,
    },
    /// The task let go its queue's `max_attempts` offers and moved to the overflow queue.
    TaskOverflowed {
        task_id: String,
        mrd: String,
        from_queue: String,
        queue: String,
        attempts: u32,
        step_deadline: Option<Millis>,
        ttl_deadline: Option<Millis>,
        at: Millis,
    },
    TaskStepWidened {
        task_id: String,
        mrd: String,
        step: usize,
        step_deadline: Option<Millis>,
        at: Millis,
    },
    /// Pause, resume, wrap-up and close; `detail` explains a close.
    TaskStateChanged {
        task_id: String,
        mrd: String,
        state: TaskState,
        close_reason: Option<CloseReason>,
        wrap_deadline: Option<Millis>,
        detail: String,
        at: Millis,
        /// The agents on the task when it changed (owner, then participants), so that the
        /// event alone says whose desktops and agent-filtered watches it concerns. Empty in
        /// events journaled before it was recorded.
        #[serde(default)]
        agents: Vec<String>,
        /// On a close: the disposition code given, or that a required one is missing.
        #[serde(default)]
        disposition: TaskDisposition,
    },
    TaskAgentTransferred {
        task_id: String,
        mrd: String,
        owner_agent_id: String,
        recipient_agent_id: String,
        at: Millis,
        /// The recipient accepted an offered (consultative) transfer.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        consult: bool,
    },
    /// The owner offered the task to another agent, who rings until it accepts (the task
    /// moves, `TaskAgentTransferred`), rejects or lets it time out (`TaskTransferDeclined`).
    TaskTransferOffered {
        task_id: String,
        mrd: String,
        owner_agent_id: String,
        recipient_agent_id: String,
        offer_deadline: Millis,
        at: Millis,
    },
    /// An offered transfer was rejected, timed out (RONA) or its recipient logged out: the
    /// task stays with its owner.
    TaskTransferDeclined {
        task_id: String,
        mrd: String,
        owner_agent_id: String,
        recipient_agent_id: String,
        reason: RequeueReason,
        at: Millis,
    },
    /// The owner sent the task to a queue: its agents are released and it waits under that
    /// queue's steps, at the channel's priority, in line by its first arrival (`keep_arrival`)
    /// or from now.
    TaskTransferredToQueue {
        task_id: String,
        mrd: String,
        agent_id: String,
        from_queue: String,
        queue: String,
        keep_arrival: bool,
        priority: u8,
        seq: u64,
        queued_at: Millis,
        step_deadline: Option<Millis>,
        ttl_deadline: Option<Millis>,
        at: Millis,
    },
    TaskConferenced {
        task_id: String,
        mrd: String,
        owner_agent_id: String,
        participant_agent_id: String,
        at: Millis,
    },
    /// A conference participant left the task (it logged out of the MRD).
    TaskParticipantLeft {
        task_id: String,
        mrd: String,
        agent_id: String,
        at: Millis,
    },
}

/// Who and what a routing event concerns. The one answer to both "which desktops hear of it"
/// and "which filtered routing watches send it".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subjects<'a> {
    pub agents: Vec<&'a str>,
    pub task: Option<&'a str>,
    pub mrd: &'a str,
}

impl Event {
    /// The agents, task and MRD a routing event concerns; `None` for other events (session
    /// hub events, routing configuration, and routing's internal bookkeeping).
    pub fn subjects(&self) -> Option<Subjects<'_>> {
        let s = |agents, task, mrd| Some(Subjects { agents, task, mrd });
        match self {
            Event::AgentStateChanged { agent_id, mrd, .. }
            | Event::AgentNextStateSet { agent_id, mrd, .. } => s(vec![agent_id], None, mrd),
            Event::TaskQueued { spec, .. } => s(vec![], Some(&spec.task_id), &spec.mrd),
            Event::TaskAgentSelected {
                task_id,
                agent_id,
                mrd,
                ..
            }
            | Event::TaskAccepted {
                task_id,
                mrd,
                agent_id,
                ..
            }
            | Event::TaskRequeued {
                task_id,
                mrd,
                agent_id,
                ..
            }
            | Event::TaskParticipantLeft {
                task_id,
                mrd,
                agent_id,
                ..
            } => s(vec![agent_id], Some(task_id), mrd),
            Event::TaskStepWidened { task_id, mrd, .. }
            | Event::TaskPositionChanged { task_id, mrd, .. }
            | Event::TaskOverflowed { task_id, mrd, .. }
            | Event::TaskPreferenceEnded { task_id, mrd, .. } => s(vec![], Some(task_id), mrd),
            Event::TaskTransferredToQueue {
                task_id,
                mrd,
                agent_id,
                ..
            } => s(vec![agent_id], Some(task_id), mrd),
            Event::TaskStateChanged {
                task_id,
                mrd,
                agents,
                ..
            } => s(
                agents.iter().map(String::as_str).collect(),
                Some(task_id),
                mrd,
            ),
            Event::TaskAgentTransferred {
                task_id,
                mrd,
                owner_agent_id: a,
                recipient_agent_id: b,
                ..
            }
            | Event::TaskConferenced {
                task_id,
                mrd,
                owner_agent_id: a,
                participant_agent_id: b,
                ..
            }
            | Event::TaskTransferOffered {
                task_id,
                mrd,
                owner_agent_id: a,
                recipient_agent_id: b,
                ..
            }
            | Event::TaskTransferDeclined {
                task_id,
                mrd,
                owner_agent_id: a,
                recipient_agent_id: b,
                ..
            } => s(vec![a, b], Some(task_id), mrd),
            _ => None,
        }
    }

    /// The workflow session this event is about, if any: what session watches filter on.
    pub fn session_target(&self) -> Option<&str> {
        match self {
            Event::SessionPrepared { resource_id, .. }
            | Event::SessionTakenOver { resource_id, .. }
            | Event::SessionEnded { resource_id }
            | Event::SessionStateUpdated { resource_id, .. } => Some(resource_id),
            _ => None,
        }
    }
}

/// An event as journaled: its revision, when it happened, and who caused it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub revision: Revision,
    pub time_ms: Millis,
    /// The principal whose command caused the event, or the engine for timers.
    pub actor: Actor,
    pub event: Event,
}
