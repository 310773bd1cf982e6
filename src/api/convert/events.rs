//! Events on the wire: routing events with their kinds and the filter a routing watch applies,
//! and the events of workflow sessions. Not every journaled event is sent: each conversion
//! answers `None` for the events its watch does not carry.

use super::{saturating_u32, timestamp};
use crate::domain::bounds::{MAX_WATCH_KINDS, check_count, check_optional_id};
use crate::domain::events::{Event, Record};
use crate::domain::routing::classify::QueueChoice;
use crate::domain::routing::model::{RequestedAgentState, Selection, TaskState};
use crate::domain::{DomainError, DomainResult};
use crate::pb;

// ----- routing events --------------------------------------------------------------------------

impl pb::RoutingEventKind {
    /// The kind a routing watch filters on; `None` for events routing watches do not send.
    pub fn of(event: &Event) -> Option<Self> {
        use pb::RoutingEventKind as K;
        Some(match event {
            Event::AgentStateChanged { .. } => K::AgentStateChanged,
            Event::TaskQueued { .. } => K::TaskQueued,
            Event::TaskAgentSelected { .. } => K::TaskAgentSelected,
            Event::TaskAccepted { .. }
            | Event::TaskRequeued { .. }
            | Event::TaskParticipantLeft { .. }
            | Event::TaskStepWidened { .. }
            | Event::TaskPreferenceEnded { .. }
            | Event::TaskTransferDeclined { .. }
            | Event::TaskTransferredToQueue { .. }
            | Event::TaskStateChanged { .. } => K::TaskStateChanged,
            Event::TaskTransferOffered { .. } => K::TaskAgentSelected,
            Event::TaskAgentTransferred { .. } => K::TaskAgentTransferred,
            Event::TaskConferenced { .. } => K::TaskConferenced,
            Event::TaskOverflowed { .. } => K::TaskStateChanged,
            Event::TaskPositionChanged { .. } => K::TaskPositionChanged,
            Event::AgentNextStateSet { .. } => K::AgentNextStateSet,
            _ => return None,
        })
    }
}

impl pb::RoutingEvent {
    /// The wire form of a routing event; `None` for events that are not routing events.
    pub fn from_record(record: &Record) -> Option<Self> {
        use pb::routing_event::Event as E;
        let state_changed = |task_id: &str, state, agent_id: &str| pb::TaskStateChanged {
            task_id: task_id.to_owned(),
            state: pb::TaskState::from(state).into(),
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
                state: pb::AgentState::from(*state).into(),
                reason_code: reason_code.clone(),
                routable: *routable,
                active_tasks: *active_tasks,
            }),
            Event::TaskQueued {
                spec,
                priority,
                position,
                estimated_wait_ms,
                preferred_deadline,
                choice,
                ..
            } => {
                let (queue_choice, classifier_index, classifier_name) = match choice {
                    QueueChoice::Channel => (pb::QueueChoice::Channel, 0, String::new()),
                    QueueChoice::Classifier { index, name } => (
                        pb::QueueChoice::Classifier,
                        saturating_u32(*index),
                        name.clone(),
                    ),
                    QueueChoice::Unclassified => (pb::QueueChoice::Unclassified, 0, String::new()),
                };
                E::TaskQueued(pb::TaskQueued {
                    task_id: spec.task_id.clone(),
                    request_id: spec.request_id.clone(),
                    mrd: spec.mrd.clone(),
                    queue: spec.queue.clone(),
                    priority: u32::from(*priority),
                    conversation_id: spec.conversation_id.clone(),
                    last_agent_id: spec.last_agent_id.clone(),
                    position: *position,
                    estimated_wait_ms: estimated_wait_ms.unwrap_or(0),
                    callback_for_task_id: spec.callback_for.clone(),
                    preferred_agent_ids: spec.preferred_agents.clone(),
                    preferred_deadline_time: preferred_deadline.and_then(timestamp),
                    queue_choice: queue_choice.into(),
                    classifier_index,
                    classifier_name,
                })
            }
            Event::TaskPositionChanged {
                task_id,
                mrd,
                queue,
                position,
                estimated_wait_ms,
                ..
            } => E::TaskPositionChanged(pb::TaskPositionChanged {
                task_id: task_id.clone(),
                mrd: mrd.clone(),
                queue: queue.clone(),
                position: *position,
                estimated_wait_ms: estimated_wait_ms.unwrap_or(0),
            }),
            Event::TaskOverflowed {
                task_id,
                from_queue,
                queue,
                attempts,
                ..
            } => E::TaskStateChanged(pb::TaskStateChanged {
                queue: queue.clone(),
                attempts: *attempts,
                detail: format!(
                    "moved from queue '{from_queue}' to overflow queue '{queue}' after {attempts} attempts"
                ),
                ..state_changed(task_id, TaskState::Queued, "")
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
                let (selection, step_index, preferred_index) = match selection {
                    Selection::Sticky => ("sticky", 0, 0),
                    Selection::Step { index } => ("step", saturating_u32(*index), 0),
                    Selection::Preferred { index } => ("preferred", 0, saturating_u32(*index)),
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
                    preferred_index,
                    transfer_from_agent_id: String::new(),
                })
            }
            Event::TaskTransferOffered {
                task_id,
                mrd,
                owner_agent_id,
                recipient_agent_id,
                offer_deadline,
                ..
            } => E::TaskAgentSelected(pb::TaskAgentSelected {
                task_id: task_id.clone(),
                agent_id: recipient_agent_id.clone(),
                mrd: mrd.clone(),
                offer_deadline_time: timestamp(*offer_deadline),
                selection: "transfer".to_owned(),
                transfer_from_agent_id: owner_agent_id.clone(),
                ..pb::TaskAgentSelected::default()
            }),
            Event::TaskTransferDeclined {
                task_id,
                owner_agent_id,
                recipient_agent_id,
                reason,
                ..
            } => E::TaskStateChanged(pb::TaskStateChanged {
                requeue_reason: pb::RequeueReason::from(*reason).into(),
                transfer_declined_agent_id: recipient_agent_id.clone(),
                detail: format!(
                    "the transfer to '{recipient_agent_id}' was not taken ({reason}); the task \
                     stays with '{owner_agent_id}'"
                ),
                ..state_changed(task_id, TaskState::Active, owner_agent_id)
            }),
            Event::TaskTransferredToQueue {
                task_id,
                agent_id,
                from_queue,
                queue,
                priority,
                ..
            } => E::TaskStateChanged(pb::TaskStateChanged {
                requeue_reason: pb::RequeueReason::Transferred.into(),
                priority: u32::from(*priority),
                queue: queue.clone(),
                detail: format!("transferred from queue '{from_queue}' to '{queue}'"),
                ..state_changed(task_id, TaskState::Queued, agent_id)
            }),
            Event::TaskPreferenceEnded { task_id, .. } => {
                E::TaskStateChanged(pb::TaskStateChanged {
                    detail: "the preferred agents' time ended; the queue's steps apply".into(),
                    ..state_changed(task_id, TaskState::Queued, "")
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
                moved_to,
                ..
            } => E::TaskStateChanged(pb::TaskStateChanged {
                requeue_reason: pb::RequeueReason::from(*reason).into(),
                priority: u32::from(*priority),
                queue: moved_to
                    .as_ref()
                    .map(|m| m.queue.clone())
                    .unwrap_or_default(),
                ..state_changed(task_id, TaskState::Queued, agent_id)
            }),
            Event::TaskStepWidened { task_id, step, .. } => {
                E::TaskStateChanged(pb::TaskStateChanged {
                    step: saturating_u32(*step),
                    detail: format!("the search widened to step {step}"),
                    ..state_changed(task_id, TaskState::Queued, "")
                })
            }
            Event::TaskStateChanged {
                task_id,
                state,
                close_reason,
                detail,
                agents,
                disposition,
                ..
            } => E::TaskStateChanged(pb::TaskStateChanged {
                close_reason: pb::CloseReason::from(*close_reason).into(),
                detail: detail.clone(),
                disposition_code: disposition.code.clone(),
                disposition_missing: disposition.missing,
                // The owner, when the task had one.
                ..state_changed(task_id, *state, agents.first().map_or("", String::as_str))
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
                consult,
                ..
            } => E::TaskAgentTransferred(pb::TaskAgentTransferred {
                task_id: task_id.clone(),
                owner_agent_id: owner_agent_id.clone(),
                recipient_agent_id: recipient_agent_id.clone(),
                consult: *consult,
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
            Event::AgentNextStateSet {
                agent_id,
                mrd,
                state,
                reason_code,
                by,
                ..
            } => E::AgentNextStateSet(pb::AgentNextStateSet {
                agent_id: agent_id.clone(),
                mrd: mrd.clone(),
                state: match state {
                    RequestedAgentState::Login => pb::AgentState::Login,
                    RequestedAgentState::Ready => pb::AgentState::Ready,
                    RequestedAgentState::NotReady => pb::AgentState::NotReady,
                    RequestedAgentState::Logout => pb::AgentState::Logout,
                }
                .into(),
                reason_code: reason_code.clone(),
                by: by.to_string(),
            }),
            _ => return None,
        };
        Some(pb::RoutingEvent {
            revision: record.revision,
            time: timestamp(record.time_ms),
            event: Some(event),
            actor: record.actor.to_string(),
        })
    }
}

/// What a routing watch asked for: events about one agent, task or MRD (empty: any), of
/// the given kinds (none: every kind).
#[derive(Debug, Clone)]
pub struct RoutingFilter {
    agent_id: String,
    task_id: String,
    mrd: String,
    kinds: Vec<pb::RoutingEventKind>,
}

impl TryFrom<&pb::WatchRoutingEventsRequest> for RoutingFilter {
    type Error = DomainError;

    fn try_from(req: &pb::WatchRoutingEventsRequest) -> DomainResult<Self> {
        check_optional_id("agent_id", &req.agent_id)?;
        check_optional_id("mrd", &req.mrd)?;
        check_optional_id("task_id", &req.task_id)?;
        check_count("kinds", req.kinds.len(), MAX_WATCH_KINDS, "kinds")?;
        let kinds = req
            .kinds
            .iter()
            .map(|k| match pb::RoutingEventKind::try_from(*k) {
                Ok(pb::RoutingEventKind::Unspecified) | Err(_) => Err(DomainError::invalid(
                    "kinds",
                    format!("{k} is not an event kind"),
                )),
                Ok(kind) => Ok(kind),
            })
            .collect::<DomainResult<_>>()?;
        Ok(Self {
            agent_id: req.agent_id.clone(),
            task_id: req.task_id.clone(),
            mrd: req.mrd.clone(),
            kinds,
        })
    }
}

impl RoutingFilter {
    /// Whether the watch sends `event`.
    pub fn matches(&self, event: &Event) -> bool {
        let (Some(kind), Some(s)) = (pb::RoutingEventKind::of(event), event.subjects()) else {
            return false;
        };
        (self.kinds.is_empty() || self.kinds.contains(&kind))
            && (self.agent_id.is_empty() || s.agents.contains(&self.agent_id.as_str()))
            && (self.task_id.is_empty() || s.task == Some(self.task_id.as_str()))
            && (self.mrd.is_empty() || s.mrd == self.mrd)
    }
}

// ----- session events --------------------------------------------------------------------------

impl pb::SessionStateEvent {
    /// The desktop-facing form of a session event; `None` for events that are not about a
    /// session view (such as the preparation itself).
    pub fn from_record(record: &Record) -> Option<Self> {
        let (target, name, view_state, actions): (&str, &str, &str, &[(String, bool)]) =
            match &record.event {
                Event::SessionStateUpdated {
                    resource_id,
                    view_state,
                    actions,
                } => (resource_id, "state.updated", view_state, actions),
                Event::SessionTakenOver {
                    resource_id,
                    view_state,
                    ..
                } => (resource_id, "session.taken_over", view_state, &[]),
                Event::SessionEnded { resource_id } => (resource_id, "session.ended", "", &[]),
                _ => return None,
            };
        Some(Self {
            revision: record.revision,
            target: target.to_owned(),
            name: name.to_owned(),
            view_state: view_state.to_owned(),
            actions: actions
                .iter()
                .map(|(name, enabled)| pb::ActionChange {
                    name: name.clone(),
                    r#type: if *enabled {
                        pb::ActionChangeType::Enable
                    } else {
                        pb::ActionChangeType::Disable
                    }
                    .into(),
                })
                .collect(),
        })
    }
}
