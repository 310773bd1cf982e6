//! Routing's wire form: proto <-> domain, enums checked, times as timestamps.

use prost_types::Timestamp;

use crate::domain::events::{Event, Millis, Record};
use crate::domain::routing::AgentStatusView;
use crate::domain::routing::config::{
    LogoutAction, MrdConfig, QueueConfig, ReasonCategory, ReasonCode, RonaAction, Step,
};
use crate::domain::routing::expr::Expr;
use crate::domain::routing::model::{
    AgentState, CloseReason, RequestedAgentState, RequeueReason, Selection, Task, TaskState,
};
use crate::domain::{DomainError, DomainResult};
use crate::pb;

pub(super) fn timestamp(ms: Millis) -> Option<Timestamp> {
    Some(Timestamp {
        seconds: i64::try_from(ms / 1000).unwrap_or(i64::MAX),
        nanos: i32::try_from((ms % 1000) * 1_000_000).unwrap_or(0),
    })
}

fn seconds_to_ms(seconds: u32) -> Millis {
    Millis::from(seconds) * 1000
}

fn ms_to_seconds(ms: Millis) -> u32 {
    u32::try_from(ms / 1000).unwrap_or(u32::MAX)
}

/// Reads a wire enum, refusing numbers the contract does not define.
fn wire_enum<E: TryFrom<i32>>(field: &'static str, raw: i32) -> DomainResult<E> {
    E::try_from(raw).map_err(|_| DomainError::invalid(field, format!("{raw} is not a known value")))
}

pub(super) fn mrd_from_pb(mrd: Option<pb::Mrd>) -> DomainResult<MrdConfig> {
    let mrd = mrd.ok_or_else(|| DomainError::invalid("mrd", "must be set"))?;
    let rona_action = match wire_enum("mrd.rona_action", mrd.rona_action)? {
        pb::RonaAction::Unspecified | pb::RonaAction::NotReady => RonaAction::NotReady,
        pb::RonaAction::NotRoutable => RonaAction::NotRoutable,
    };
    let logout_action = match wire_enum("mrd.logout_action", mrd.logout_action)? {
        pb::LogoutAction::Unspecified | pb::LogoutAction::Close => LogoutAction::Close,
        pb::LogoutAction::Requeue => LogoutAction::Requeue,
    };
    Ok(MrdConfig {
        name: mrd.name,
        max_tasks: mrd.max_tasks,
        interruptible: mrd.interruptible,
        offer_timeout_ms: seconds_to_ms(mrd.offer_timeout_seconds),
        wrap_up_timeout_ms: seconds_to_ms(mrd.wrap_up_timeout_seconds),
        rona_action,
        logout_action,
    })
}

pub(super) fn mrd_pb(mrd: MrdConfig) -> pb::Mrd {
    pb::Mrd {
        name: mrd.name,
        max_tasks: mrd.max_tasks,
        interruptible: mrd.interruptible,
        offer_timeout_seconds: ms_to_seconds(mrd.offer_timeout_ms),
        wrap_up_timeout_seconds: ms_to_seconds(mrd.wrap_up_timeout_ms),
        rona_action: match mrd.rona_action {
            RonaAction::NotReady => pb::RonaAction::NotReady,
            RonaAction::NotRoutable => pb::RonaAction::NotRoutable,
        }
        .into(),
        logout_action: match mrd.logout_action {
            LogoutAction::Close => pb::LogoutAction::Close,
            LogoutAction::Requeue => pb::LogoutAction::Requeue,
        }
        .into(),
    }
}

pub(super) fn queue_from_pb(queue: Option<pb::Queue>) -> DomainResult<QueueConfig> {
    let queue = queue.ok_or_else(|| DomainError::invalid("queue", "must be set"))?;
    let steps = queue
        .steps
        .into_iter()
        .enumerate()
        .map(|(i, step)| {
            let expression = Expr::parse(&step.expression).map_err(|e| {
                DomainError::invalid("queue.steps", format!("step {i} expression: {e}"))
            })?;
            Ok(Step {
                expression,
                timeout_ms: seconds_to_ms(step.timeout_seconds),
            })
        })
        .collect::<DomainResult<Vec<_>>>()?;
    Ok(QueueConfig {
        name: queue.name,
        mrd: queue.mrd,
        steps,
        task_ttl_ms: seconds_to_ms(queue.task_ttl_seconds),
    })
}

pub(super) fn queue_pb(queue: QueueConfig) -> pb::Queue {
    pb::Queue {
        name: queue.name,
        mrd: queue.mrd,
        steps: queue
            .steps
            .into_iter()
            .map(|s| pb::QueueStep {
                expression: s.expression.source().to_owned(),
                timeout_seconds: ms_to_seconds(s.timeout_ms),
            })
            .collect(),
        task_ttl_seconds: ms_to_seconds(queue.task_ttl_ms),
    }
}

pub(super) fn reason_from_pb(reason: Option<pb::ReasonCode>) -> DomainResult<ReasonCode> {
    let reason = reason.ok_or_else(|| DomainError::invalid("reason_code", "must be set"))?;
    let category = match wire_enum("reason_code.category", reason.category)? {
        pb::ReasonCategory::NotReady => ReasonCategory::NotReady,
        pb::ReasonCategory::Logout => ReasonCategory::Logout,
        pb::ReasonCategory::Unspecified => {
            return Err(DomainError::invalid(
                "reason_code.category",
                "must be NOT_READY or LOGOUT",
            ));
        }
    };
    Ok(ReasonCode {
        code: reason.code,
        label: reason.label,
        category,
    })
}

pub(super) fn reason_pb(reason: ReasonCode) -> pb::ReasonCode {
    pb::ReasonCode {
        code: reason.code,
        label: reason.label,
        category: match reason.category {
            ReasonCategory::NotReady => pb::ReasonCategory::NotReady,
            ReasonCategory::Logout => pb::ReasonCategory::Logout,
        }
        .into(),
    }
}

/// What an agent may ask for; the derived states are refused with the reason.
pub(super) fn requested_state(raw: i32) -> DomainResult<RequestedAgentState> {
    Ok(match wire_enum("state", raw)? {
        pb::AgentState::Login => RequestedAgentState::Login,
        pb::AgentState::Ready => RequestedAgentState::Ready,
        pb::AgentState::NotReady => RequestedAgentState::NotReady,
        pb::AgentState::Logout => RequestedAgentState::Logout,
        pb::AgentState::Unspecified => {
            return Err(DomainError::invalid(
                "state",
                "must be LOGIN, READY, NOT_READY or LOGOUT",
            ));
        }
        derived => {
            return Err(DomainError::invalid(
                "state",
                format!(
                    "{} is set by the engine; agents ask for LOGIN, READY, NOT_READY or LOGOUT",
                    derived.as_str_name()
                ),
            ));
        }
    })
}

/// What a channel or agent may set on a task.
pub(super) fn requested_task_state(raw: i32) -> DomainResult<TaskState> {
    Ok(match wire_enum("state", raw)? {
        pb::TaskState::Active => TaskState::Active,
        pb::TaskState::Paused => TaskState::Paused,
        pb::TaskState::WrappingUp => TaskState::WrappingUp,
        pb::TaskState::Closed => TaskState::Closed,
        other => {
            return Err(DomainError::invalid(
                "state",
                format!(
                    "{} is not one to set; use ACTIVE, PAUSED, WRAPPING_UP or CLOSED",
                    other.as_str_name()
                ),
            ));
        }
    })
}

pub(super) fn agent_state_pb(state: AgentState) -> pb::AgentState {
    match state {
        AgentState::Logout => pb::AgentState::Logout,
        AgentState::NotReady => pb::AgentState::NotReady,
        AgentState::Ready => pb::AgentState::Ready,
        AgentState::Reserved => pb::AgentState::Reserved,
        AgentState::Active => pb::AgentState::Active,
        AgentState::Busy => pb::AgentState::Busy,
        AgentState::WorkReady => pb::AgentState::WorkReady,
        AgentState::PendingNotReady => pb::AgentState::PendingNotReady,
    }
}

fn task_state_pb(state: TaskState) -> pb::TaskState {
    match state {
        TaskState::Queued => pb::TaskState::Queued,
        TaskState::Offered => pb::TaskState::Offered,
        TaskState::Active => pb::TaskState::Active,
        TaskState::Paused => pb::TaskState::Paused,
        TaskState::WrappingUp => pb::TaskState::WrappingUp,
        TaskState::Closed => pb::TaskState::Closed,
    }
}

fn close_reason_pb(reason: Option<CloseReason>) -> pb::CloseReason {
    match reason {
        None => pb::CloseReason::Unspecified,
        Some(CloseReason::Done) => pb::CloseReason::Done,
        Some(CloseReason::NoAgentAvailable) => pb::CloseReason::NoAgentAvailable,
        Some(CloseReason::Cancelled) => pb::CloseReason::Cancelled,
        Some(CloseReason::AgentLogout) => pb::CloseReason::AgentLogout,
        Some(CloseReason::ForceClosed) => pb::CloseReason::ForceClosed,
    }
}

fn requeue_reason_pb(reason: RequeueReason) -> pb::RequeueReason {
    match reason {
        RequeueReason::Rona => pb::RequeueReason::Rona,
        RequeueReason::Rejected => pb::RequeueReason::Rejected,
        RequeueReason::AgentLogout => pb::RequeueReason::AgentLogout,
    }
}

pub(super) fn task_pb(task: &Task) -> pb::TaskStatus {
    pb::TaskStatus {
        task_id: task.spec.task_id.clone(),
        request_id: task.spec.request_id.clone(),
        mrd: task.spec.mrd.clone(),
        queue: task.spec.queue.clone(),
        priority: u32::from(task.priority),
        state: task_state_pb(task.state).into(),
        close_reason: close_reason_pb(task.close_reason).into(),
        owner_agent_id: task.owner.clone().unwrap_or_default(),
        participant_agent_ids: task.participants.iter().cloned().collect(),
        offered_agent_id: task.offer.as_ref().map(|o| o.0.clone()).unwrap_or_default(),
        offer_deadline_time: task.offer.as_ref().and_then(|o| timestamp(o.1)),
        conversation_id: task.spec.conversation_id.clone(),
        last_agent_id: task.spec.last_agent_id.clone(),
        step: u32::try_from(task.step).unwrap_or(u32::MAX),
        created_time: timestamp(task.created_at),
        queued_time: timestamp(task.queued_at),
        updated_time: timestamp(task.updated_at),
        labels: task.spec.labels.clone(),
        attributes: task.spec.attributes.clone().into_iter().collect(),
        declined_agent_ids: task.declined_by.iter().cloned().collect(),
        wrap_up_deadline_time: task.wrap_deadline.and_then(timestamp),
    }
}

pub(super) fn agent_status_pb(view: AgentStatusView) -> pb::AgentStatus {
    pb::AgentStatus {
        agent_id: view.agent_id,
        routable: view.routable,
        pending_offer_task_id: view.pending_offer.unwrap_or_default(),
        extension: view.extension,
        destination: view.destination,
        mrds: view
            .mrds
            .into_iter()
            .map(|m| pb::AgentMrdStatus {
                mrd: m.mrd,
                state: agent_state_pb(m.state).into(),
                reason_code: m.reason_code,
                active_task_ids: m.active_tasks,
                max_tasks: m.max_tasks,
                available_since_time: timestamp(m.available_since),
            })
            .collect(),
    }
}

/// The kind a routing watch filters on; `None` for events routing watches do not send.
pub(super) fn routing_event_kind(event: &Event) -> Option<pb::RoutingEventKind> {
    use pb::RoutingEventKind as K;
    Some(match event {
        Event::AgentStateChanged { .. } => K::AgentStateChanged,
        Event::TaskQueued { .. } => K::TaskQueued,
        Event::TaskAgentSelected { .. } => K::TaskAgentSelected,
        Event::TaskAccepted { .. }
        | Event::TaskRequeued { .. }
        | Event::TaskParticipantLeft { .. }
        | Event::TaskStepWidened { .. }
        | Event::TaskStateChanged { .. } => K::TaskStateChanged,
        Event::TaskAgentTransferred { .. } => K::TaskAgentTransferred,
        Event::TaskConferenced { .. } => K::TaskConferenced,
        _ => return None,
    })
}

/// The wire form of a routing event; `None` for events that are not routing events.
pub(super) fn routing_event_pb(record: &Record) -> Option<pb::RoutingEvent> {
    use pb::routing_event::Event as E;
    let state_changed = |task_id: &str, state, agent_id: &str| pb::TaskStateChanged {
        task_id: task_id.to_owned(),
        state: task_state_pb(state).into(),
        agent_id: agent_id.to_owned(),
        ..pb::TaskStateChanged::default()
    };
    let event = match &record.event {
        Event::AgentStateChanged {
            agent_id,
            mrd,
            state,
            reason_code,
            routable,
            active_tasks,
        } => E::AgentStateChanged(pb::AgentStateChanged {
            agent_id: agent_id.clone(),
            mrd: mrd.clone(),
            state: agent_state_pb(*state).into(),
            reason_code: reason_code.clone(),
            routable: *routable,
            active_tasks: *active_tasks,
        }),
        Event::TaskQueued { spec, priority, .. } => E::TaskQueued(pb::TaskQueued {
            task_id: spec.task_id.clone(),
            request_id: spec.request_id.clone(),
            mrd: spec.mrd.clone(),
            queue: spec.queue.clone(),
            priority: u32::from(*priority),
            conversation_id: spec.conversation_id.clone(),
            last_agent_id: spec.last_agent_id.clone(),
        }),
        Event::TaskAgentSelected {
            task_id,
            agent_id,
            mrd,
            queue,
            offer_deadline,
            selection,
            agent_load,
            ..
        } => {
            let (selection, step_index) = match selection {
                Selection::Sticky => ("sticky", 0),
                Selection::Step { index } => ("step", u32::try_from(*index).unwrap_or(u32::MAX)),
            };
            E::TaskAgentSelected(pb::TaskAgentSelected {
                task_id: task_id.clone(),
                agent_id: agent_id.clone(),
                mrd: mrd.clone(),
                queue: queue.clone(),
                offer_deadline_time: timestamp(*offer_deadline),
                selection: selection.to_owned(),
                step_index,
                agent_load: *agent_load,
            })
        }
        Event::TaskAccepted {
            task_id, agent_id, ..
        } => E::TaskStateChanged(state_changed(task_id, TaskState::Active, agent_id)),
        Event::TaskRequeued {
            task_id,
            agent_id,
            reason,
            priority,
            ..
        } => E::TaskStateChanged(pb::TaskStateChanged {
            requeue_reason: requeue_reason_pb(*reason).into(),
            priority: u32::from(*priority),
            ..state_changed(task_id, TaskState::Queued, agent_id)
        }),
        Event::TaskStepWidened { task_id, step, .. } => E::TaskStateChanged(pb::TaskStateChanged {
            step: u32::try_from(*step).unwrap_or(u32::MAX),
            detail: format!("the search widened to step {step}"),
            ..state_changed(task_id, TaskState::Queued, "")
        }),
        Event::TaskStateChanged {
            task_id,
            state,
            close_reason,
            detail,
            ..
        } => E::TaskStateChanged(pb::TaskStateChanged {
            close_reason: close_reason_pb(*close_reason).into(),
            detail: detail.clone(),
            ..state_changed(task_id, *state, "")
        }),
        Event::TaskParticipantLeft {
            task_id, agent_id, ..
        } => E::TaskStateChanged(pb::TaskStateChanged {
            participant_left_agent_id: agent_id.clone(),
            ..state_changed(task_id, TaskState::Active, "")
        }),
        Event::TaskAgentTransferred {
            task_id,
            owner_agent_id,
            recipient_agent_id,
            ..
        } => E::TaskAgentTransferred(pb::TaskAgentTransferred {
            task_id: task_id.clone(),
            owner_agent_id: owner_agent_id.clone(),
            recipient_agent_id: recipient_agent_id.clone(),
        }),
        Event::TaskConferenced {
            task_id,
            owner_agent_id,
            participant_agent_id,
            ..
        } => E::TaskConferenced(pb::TaskConferenced {
            task_id: task_id.clone(),
            owner_agent_id: owner_agent_id.clone(),
            participant_agent_id: participant_agent_id.clone(),
        }),
        _ => return None,
    };
    Some(pb::RoutingEvent {
        revision: record.revision,
        time: timestamp(record.time_ms),
        event: Some(event),
    })
}
