//! Ownership: what a principal may do to the clients, sessions, agents and tasks a command
//! names. The edge's policy table (`auth::policy`) decides which roles may call an RPC at all;
//! these checks depend on state, so the engine runs them inside the command that changes it,
//! and nothing can change between the check and the change. The engine's own moves pass.

use super::error::{DomainError, DomainResult};
use super::ids::ClientId;
use super::principals::{Actor, Principal, Role};
use super::routing::model::{RequestedAgentState, Task, TaskState};
use super::state::{Client, Session};

/// Acting as an agent (its offers, its routing presence, its session): the agent itself.
pub(super) fn act_as_agent(who: &Principal, agent_id: &str) -> DomainResult<()> {
    if is_engine(who) || who.actor.agent_id() == Some(agent_id) {
        return Ok(());
    }
    Err(DomainError::denied(format!(
        "{} may not act as agent '{agent_id}': an agent acts only as itself",
        who.actor
    )))
}

/// Reading an agent's record or state: the agent itself, supervisors and admins.
pub(super) fn see_agent(who: &Principal, agent_id: &str) -> DomainResult<()> {
    if who.oversees() {
        return Ok(());
    }
    act_as_agent(who, agent_id)
}

/// Changing an agent's routing state: the agent itself any way; a supervisor or admin may set
/// another agent NOT_READY (pending while its offer and tasks last) or LOGOUT (at once: its
/// offer goes to another agent, its tasks close or requeue per the MRD's logout action).
pub(super) fn steer_agent(
    who: &Principal,
    agent_id: &str,
    requested: RequestedAgentState,
) -> DomainResult<()> {
    let steerable = matches!(
        requested,
        RequestedAgentState::NotReady | RequestedAgentState::Logout
    );
    if steerable && who.oversees() {
        return Ok(());
    }
    act_as_agent(who, agent_id).map_err(|_| {
        DomainError::denied(format!(
            "{} may not set agent '{agent_id}' {}: others' agents may only be set NOT_READY \
             or LOGOUT, by a supervisor or an admin",
            who.actor,
            requested.wire_name()
        ))
    })
}

/// Setting another agent's next state (`SetAgentNextState`): supervisors and admins only.
pub(super) fn oversee_agent(who: &Principal, agent_id: &str) -> DomainResult<()> {
    if is_engine(who) || who.oversees() {
        return Ok(());
    }
    Err(DomainError::denied(format!(
        "{} may not set agent '{agent_id}''s next state: only a supervisor or an admin may",
        who.actor
    )))
}

/// Using a client (binding, resuming, unregistering): the principal that registered it.
pub(super) fn own_client(
    who: &Principal,
    client: &Client,
    client_id: ClientId,
) -> DomainResult<()> {
    if is_engine(who) || client.owner == who.actor {
        return Ok(());
    }
    Err(DomainError::denied(format!(
        "client {client_id} belongs to another principal"
    )))
}

/// Acting on a session (its actions, ending it): its agent, or the principal that prepared
/// it (a desktop that proved the agent's password).
pub(super) fn act_on_session(
    who: &Principal,
    resource_id: &str,
    session: &Session,
) -> DomainResult<()> {
    if is_engine(who)
        || who.actor.agent_id() == Some(session.agent_id.as_str())
        || session.prepared_by == who.actor
    {
        return Ok(());
    }
    Err(DomainError::denied(format!(
        "{} may not act on session '{resource_id}': it is agent '{}''s",
        who.actor, session.agent_id
    )))
}

/// Reading, watching or binding a session: as acting on it, and supervisors and admins.
pub(super) fn see_session(
    who: &Principal,
    resource_id: &str,
    session: &Session,
) -> DomainResult<()> {
    if who.oversees() {
        return Ok(());
    }
    act_on_session(who, resource_id, session)
}

/// What a command does to a task, for `act_on_task`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TaskAct {
    Read,
    Transfer,
    Conference,
    Change(TaskState),
    /// Putting it back in line (`RequeueTask`): supervisors and admins only.
    Requeue,
}

/// Whether `who` may read `task`: the rule `GetTaskState` applies, for a task the history
/// answers as for one in memory.
pub fn read_task(who: &Principal, task: &Task) -> DomainResult<()> {
    act_on_task(who, task, TaskAct::Read)
}

/// A task may be read and changed by the agents on it, by the integration that created it,
/// and by supervisors and admins to read, requeue or transfer it.
pub(super) fn act_on_task(who: &Principal, task: &Task, act: TaskAct) -> DomainResult<()> {
    if is_engine(who) {
        return Ok(());
    }
    let on_it = act != TaskAct::Requeue
        && who
            .actor
            .agent_id()
            .is_some_and(|me| task.agents().any(|a| a == me));
    let created_it =
        act != TaskAct::Requeue && who.has(Role::Integration) && task.spec.created_by == who.actor;
    let overseen =
        who.oversees() && matches!(act, TaskAct::Read | TaskAct::Transfer | TaskAct::Requeue);
    if on_it || created_it || overseen {
        return Ok(());
    }
    if act == TaskAct::Requeue {
        return Err(DomainError::denied(format!(
            "{} may not requeue task '{}': only a supervisor or an admin may",
            who.actor, task.spec.task_id
        )));
    }
    Err(DomainError::denied(format!(
        "{} may not {} task '{}': it is neither on the task nor the integration that created \
         it{}",
        who.actor,
        match act {
            TaskAct::Read => "read",
            TaskAct::Transfer => "transfer",
            TaskAct::Conference => "conference on",
            TaskAct::Change(_) | TaskAct::Requeue => "change",
        },
        task.spec.task_id,
        if who.oversees() {
            " (supervisors and admins may read, requeue and transfer any task)"
        } else {
            ""
        }
    )))
}

/// An agent transfers only the tasks it owns itself: it may not name another agent as the
/// owner (a conference participant may not pass its owner's task on). Integrations and
/// supervisors name the owner they act for.
pub(super) fn transfer_as(who: &Principal, owner_agent_id: &str) -> DomainResult<()> {
    match who.actor.agent_id() {
        Some(me) if me != owner_agent_id && !who.oversees() => Err(DomainError::denied(format!(
            "agent '{me}' may transfer only the tasks it owns, not as agent '{owner_agent_id}' \
             (supervisors may transfer any task)"
        ))),
        _ => Ok(()),
    }
}

/// A routing watch: an agent sees only its own events; others may filter as they like.
pub fn watched_agent(who: &Principal, requested: &str) -> DomainResult<String> {
    if who.oversees() || who.has(Role::Integration) || is_engine(who) {
        return Ok(requested.to_owned());
    }
    let Some(me) = who.actor.agent_id() else {
        return Err(DomainError::denied(format!(
            "{} may not watch routing events",
            who.actor
        )));
    };
    if requested.is_empty() || requested == me {
        Ok(me.to_owned())
    } else {
        Err(DomainError::denied(format!(
            "agent '{me}' may watch only its own routing events, not agent '{requested}''s"
        )))
    }
}

fn is_engine(who: &Principal) -> bool {
    who.actor == Actor::Engine
}
