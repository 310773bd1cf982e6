//! Tasks (RoutingService): what a channel submits, what agents and channels do to a task, the
//! task's wire status with its states and reasons, and a queue's statistics.

use uuid::Uuid;

use super::{ms_to_seconds, saturating_u32, seconds_to_ms, timestamp, wire_enum};
use crate::domain::bounds::{
    DEFAULT_PRIORITY, MAX_PRIORITY, MIN_PRIORITY, check_id, check_optional_id,
};
use crate::domain::commands as cmd;
use crate::domain::routing::QueueStats;
use crate::domain::routing::model::{CloseReason, RequeueReason, Task, TaskSpec, TaskState};
use crate::domain::{DomainError, DomainResult};
use crate::pb;

// ----- states and reasons ----------------------------------------------------------------------

impl From<TaskState> for pb::TaskState {
    fn from(state: TaskState) -> Self {
        match state {
            TaskState::Queued => Self::Queued,
            TaskState::Offered => Self::Offered,
            TaskState::Active => Self::Active,
            TaskState::Paused => Self::Paused,
            TaskState::WrappingUp => Self::WrappingUp,
            TaskState::Closed => Self::Closed,
        }
    }
}

/// Why a task closed; unspecified while it is open.
impl From<Option<CloseReason>> for pb::CloseReason {
    fn from(reason: Option<CloseReason>) -> Self {
        match reason {
            None => Self::Unspecified,
            Some(CloseReason::Done) => Self::Done,
            Some(CloseReason::NoAgentAvailable) => Self::NoAgentAvailable,
            Some(CloseReason::Cancelled) => Self::Cancelled,
            Some(CloseReason::AgentLogout) => Self::AgentLogout,
            Some(CloseReason::ForceClosed) => Self::ForceClosed,
            Some(CloseReason::MaxAttempts) => Self::MaxAttempts,
        }
    }
}

impl From<RequeueReason> for pb::RequeueReason {
    fn from(reason: RequeueReason) -> Self {
        match reason {
            RequeueReason::Rona => Self::Rona,
            RequeueReason::Rejected => Self::Rejected,
            RequeueReason::AgentLogout => Self::AgentLogout,
            RequeueReason::Transferred => Self::Transferred,
            RequeueReason::Supervisor => Self::Supervisor,
        }
    }
}

/// A state a channel or an agent may set on a task (`state`): the others are the engine's.
fn requested_state(raw: i32) -> DomainResult<TaskState> {
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

// ----- a task's status -------------------------------------------------------------------------

impl From<&Task> for pb::TaskStatus {
    fn from(task: &Task) -> Self {
        Self {
            task_id: task.spec.task_id.clone(),
            request_id: task.spec.request_id.clone(),
            mrd: task.spec.mrd.clone(),
            queue: task.spec.queue.clone(),
            priority: u32::from(task.priority),
            state: pb::TaskState::from(task.state).into(),
            close_reason: pb::CloseReason::from(task.close_reason).into(),
            owner_agent_id: task.owner.clone().unwrap_or_default(),
            participant_agent_ids: task.participants.iter().cloned().collect(),
            offered_agent_id: task.offer.as_ref().map(|o| o.0.clone()).unwrap_or_default(),
            offer_deadline_time: task.offer.as_ref().and_then(|o| timestamp(o.1)),
            conversation_id: task.spec.conversation_id.clone(),
            last_agent_id: task.spec.last_agent_id.clone(),
            step: saturating_u32(task.step),
            created_time: timestamp(task.created_at),
            queued_time: timestamp(task.queued_at),
            updated_time: timestamp(task.updated_at),
            labels: task.spec.labels.clone(),
            attributes: task.spec.attributes.clone(),
            declined_agent_ids: task.declined_by.iter().cloned().collect(),
            wrap_up_deadline_time: task.wrap_deadline.and_then(timestamp),
            attempts: task.attempts,
            // Set by GetTaskState, which knows where the task waits.
            position: 0,
            estimated_wait_ms: 0,
            callback_for_task_id: task.spec.callback_for.clone(),
            callback_task_id: task.callback_task_id.clone().unwrap_or_default(),
            preferred_agent_ids: task.spec.preferred_agents.clone(),
            preferred_deadline_time: task.preferred_deadline.and_then(timestamp),
            disposition_code: task.disposition.code.clone(),
            disposition_missing: task.disposition.missing,
        }
    }
}

impl From<Task> for pb::TaskStatus {
    fn from(task: Task) -> Self {
        Self::from(&task)
    }
}

// ----- requests --------------------------------------------------------------------------------

/// A new task: its id is made here, at the edge, so the rules stay deterministic. Everything
/// the channel gave is checked against `bounds` (`TaskSpec::validate`) before it goes further.
impl TryFrom<pb::NewTaskRequest> for cmd::NewTask {
    type Error = DomainError;

    fn try_from(req: pb::NewTaskRequest) -> DomainResult<Self> {
        let priority = match req.priority {
            0 => DEFAULT_PRIORITY,
            p => u8::try_from(p)
                .ok()
                .filter(|p| (MIN_PRIORITY..=MAX_PRIORITY).contains(p))
                .ok_or_else(|| {
                    DomainError::invalid(
                        "priority",
                        format!(
                            "must be {MIN_PRIORITY} to {MAX_PRIORITY} (0 means {DEFAULT_PRIORITY})"
                        ),
                    )
                })?,
        };
        let spec = TaskSpec {
            task_id: Uuid::new_v4().to_string(),
            request_id: req.request_id,
            mrd: req.mrd,
            queue: req.queue,
            priority,
            conversation_id: req.conversation_id,
            last_agent_id: req.last_agent_id,
            labels: req.labels,
            attributes: req.attributes,
            // The command names the principal that submits it.
            created_by: Default::default(),
            callback_for: req.callback_for_task_id,
            preferred_agents: req.preferred_agent_ids,
            preferred_timeout_ms: seconds_to_ms(req.preferred_timeout_seconds),
        };
        spec.validate()?;
        Ok(Self(spec))
    }
}

impl TryFrom<pb::AcceptTaskRequest> for cmd::AcceptTask {
    type Error = DomainError;

    fn try_from(req: pb::AcceptTaskRequest) -> DomainResult<Self> {
        check_id("task_id", &req.task_id)?;
        check_id("agent_id", &req.agent_id)?;
        Ok(Self {
            task_id: req.task_id,
            agent_id: req.agent_id,
        })
    }
}

impl TryFrom<pb::RejectTaskRequest> for cmd::RejectTask {
    type Error = DomainError;

    fn try_from(req: pb::RejectTaskRequest) -> DomainResult<Self> {
        check_id("task_id", &req.task_id)?;
        check_id("agent_id", &req.agent_id)?;
        Ok(Self {
            task_id: req.task_id,
            agent_id: req.agent_id,
        })
    }
}

impl TryFrom<pb::ChangeTaskStateRequest> for cmd::ChangeTaskState {
    type Error = DomainError;

    fn try_from(req: pb::ChangeTaskStateRequest) -> DomainResult<Self> {
        check_id("task_id", &req.task_id)?;
        let state = requested_state(req.state)?;
        check_optional_id("disposition_code", &req.disposition_code)?;
        Ok(Self {
            task_id: req.task_id,
            state,
            disposition_code: req.disposition_code,
        })
    }
}

impl TryFrom<pb::RequeueTaskRequest> for cmd::RequeueTask {
    type Error = DomainError;

    fn try_from(req: pb::RequeueTaskRequest) -> DomainResult<Self> {
        check_id("task_id", &req.task_id)?;
        check_optional_id("queue", &req.queue)?;
        let priority = match req.priority {
            0 => None,
            p => Some(
                u8::try_from(p)
                    .ok()
                    .filter(|p| (MIN_PRIORITY..=MAX_PRIORITY).contains(p))
                    .ok_or_else(|| {
                        DomainError::invalid(
                            "priority",
                            format!(
                                "must be {MIN_PRIORITY} to {MAX_PRIORITY} (0 keeps the rule's \
                                 default)"
                            ),
                        )
                    })?,
            ),
        };
        Ok(Self {
            task_id: req.task_id,
            queue: req.queue,
            priority,
        })
    }
}

impl TryFrom<pb::TransferTaskRequest> for cmd::TransferTask {
    type Error = DomainError;

    fn try_from(req: pb::TransferTaskRequest) -> DomainResult<Self> {
        check_id("task_id", &req.task_id)?;
        check_id("owner_agent_id", &req.owner_agent_id)?;
        let to = match (
            req.recipient_agent_id.is_empty(),
            req.recipient_queue.is_empty(),
        ) {
            (false, true) => {
                check_id("recipient_agent_id", &req.recipient_agent_id)?;
                if req.keep_arrival {
                    return Err(DomainError::invalid(
                        "keep_arrival",
                        "applies only to a transfer to recipient_queue",
                    ));
                }
                cmd::TransferTo::Agent {
                    agent_id: req.recipient_agent_id,
                    consult: req.consult,
                }
            }
            (true, false) => {
                check_id("recipient_queue", &req.recipient_queue)?;
                if req.consult {
                    return Err(DomainError::invalid(
                        "consult",
                        "applies only to a transfer to recipient_agent_id",
                    ));
                }
                cmd::TransferTo::Queue {
                    queue: req.recipient_queue,
                    keep_arrival: req.keep_arrival,
                }
            }
            _ => {
                return Err(DomainError::invalid(
                    "recipient_agent_id",
                    "name exactly one of recipient_agent_id and recipient_queue",
                ));
            }
        };
        Ok(Self {
            task_id: req.task_id,
            owner_agent_id: req.owner_agent_id,
            to,
        })
    }
}

impl TryFrom<pb::ConferenceTaskRequest> for cmd::ConferenceTask {
    type Error = DomainError;

    fn try_from(req: pb::ConferenceTaskRequest) -> DomainResult<Self> {
        check_id("task_id", &req.task_id)?;
        check_id("conference_owner", &req.conference_owner)?;
        check_id("conference_participant", &req.conference_participant)?;
        check_optional_id("mrd", &req.mrd)?;
        Ok(Self {
            task_id: req.task_id,
            owner_agent_id: req.conference_owner,
            participant_agent_id: req.conference_participant,
            mrd: req.mrd,
        })
    }
}

impl TryFrom<pb::GetTaskStateRequest> for cmd::GetTaskState {
    type Error = DomainError;

    fn try_from(req: pb::GetTaskStateRequest) -> DomainResult<Self> {
        check_id("task_id", &req.task_id)?;
        Ok(Self {
            task_id: req.task_id,
        })
    }
}

// ----- queue statistics ------------------------------------------------------------------------

impl TryFrom<pb::GetQueueStatsRequest> for cmd::GetQueueStats {
    type Error = DomainError;

    fn try_from(req: pb::GetQueueStatsRequest) -> DomainResult<Self> {
        check_id("mrd", &req.mrd)?;
        check_optional_id("queue", &req.queue)?;
        Ok(Self {
            mrd: req.mrd,
            queue: req.queue,
        })
    }
}

/// A queue's figures; the caller sets the revision they reflect.
impl From<QueueStats> for pb::GetQueueStatsResponse {
    fn from(stats: QueueStats) -> Self {
        Self {
            waiting: stats.waiting_by_priority.values().sum(),
            waiting_by_priority: stats
                .waiting_by_priority
                .into_iter()
                .map(|(p, n)| (u32::from(p), n))
                .collect(),
            mrd: stats.mrd,
            queue: stats.queue,
            longest_wait_ms: stats.longest_wait_ms,
            agents_ready: stats.agents_ready,
            agents_active: stats.agents_active,
            agents_busy: stats.agents_busy,
            agents_not_ready: stats.agents_not_ready,
            agents_reserved: stats.agents_reserved,
            revision: 0,
            service_level_target_percent: stats.service_level.target.percent,
            service_level_threshold_seconds: ms_to_seconds(stats.service_level.target.threshold_ms),
            service_level_window_seconds: ms_to_seconds(stats.service_level.window_ms),
            answered: stats.service_level.counts.answered,
            answered_within_threshold: stats.service_level.counts.answered_within,
            abandoned: stats.service_level.counts.abandoned,
            abandoned_after_threshold: stats.service_level.counts.abandoned_after,
            service_level_percent: stats.service_level.achieved_percent(),
            service_level_met: stats.service_level.met(),
            estimated_wait_ms: stats.estimated_wait_ms.unwrap_or(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_task(edit: impl FnOnce(&mut pb::NewTaskRequest)) -> DomainResult<cmd::NewTask> {
        let mut req = pb::NewTaskRequest {
            mrd: "chat".into(),
            ..Default::default()
        };
        edit(&mut req);
        cmd::NewTask::try_from(req)
    }

    #[test]
    fn new_tasks_get_an_id_and_the_default_priority() {
        let cmd::NewTask(spec) = new_task(|_| {}).unwrap();
        assert!(Uuid::try_parse(&spec.task_id).is_ok());
        assert_eq!(spec.priority, DEFAULT_PRIORITY);
        let cmd::NewTask(spec) = new_task(|r| r.priority = 10).unwrap();
        assert_eq!(spec.priority, 10);
    }

    #[test]
    fn new_tasks_are_checked_against_the_bounds() {
        for (edit, message) in [
            (
                (|r: &mut pb::NewTaskRequest| r.priority = 11) as fn(&mut _),
                "priority: must be 1 to 10 (0 means 5)",
            ),
            (
                |r| r.priority = u32::MAX,
                "priority: must be 1 to 10 (0 means 5)",
            ),
            (
                |r| r.labels = vec!["ok".into(); 65],
                "labels: must have at most 64 labels, not 65",
            ),
            (
                |r| r.labels = vec!["a\u{202E}b".into()],
                "labels: label 0: must not contain bidirectional control U+202E",
            ),
            (
                |r| r.conversation_id = "c\0".into(),
                "conversation_id: must not contain control character U+0000",
            ),
        ] {
            assert_eq!(new_task(edit).unwrap_err().to_string(), message);
        }
    }

    #[test]
    fn only_some_task_states_may_be_asked_for() {
        let ask = |state: pb::TaskState| {
            cmd::ChangeTaskState::try_from(pb::ChangeTaskStateRequest {
                task_id: "t-1".into(),
                state: state.into(),
                ..Default::default()
            })
        };
        assert_eq!(ask(pb::TaskState::Paused).unwrap().state, TaskState::Paused);
        assert_eq!(
            ask(pb::TaskState::Offered).unwrap_err().to_string(),
            "state: TASK_STATE_OFFERED is not one to set; use ACTIVE, PAUSED, WRAPPING_UP or CLOSED"
        );
    }
}
