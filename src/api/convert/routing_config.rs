//! The routing configuration (AdminService): media routing domains, queues with their steps,
//! and reason codes. What converts from the wire is validated as the domain validates it, so
//! an invalid MRD, queue or reason code never exists past this point.

use super::{ms_to_seconds, required, seconds_to_ms, wire_enum};
use crate::domain::bounds::check_id;
use crate::domain::commands as cmd;
use crate::domain::routing::ServiceLevelTarget;
use crate::domain::routing::attempts::AttemptPolicy;
use crate::domain::routing::classify::Classifier;
use crate::domain::routing::config::{
    LogoutAction, MrdConfig, QueueConfig, ReasonCategory, ReasonCode, RonaAction, Step,
};
use crate::domain::routing::disposition::{DispositionCode, Dispositions};
use crate::domain::routing::expr::{Expr, TaskExpr};
use crate::domain::{DomainError, DomainResult};
use crate::pb;

// ----- MRDs ------------------------------------------------------------------------------------

impl From<pb::RonaAction> for RonaAction {
    fn from(action: pb::RonaAction) -> Self {
        match action {
            pb::RonaAction::Unspecified | pb::RonaAction::NotReady => Self::NotReady,
            pb::RonaAction::NotRoutable => Self::NotRoutable,
        }
    }
}

impl From<RonaAction> for pb::RonaAction {
    fn from(action: RonaAction) -> Self {
        match action {
            RonaAction::NotReady => Self::NotReady,
            RonaAction::NotRoutable => Self::NotRoutable,
        }
    }
}

impl From<pb::LogoutAction> for LogoutAction {
    fn from(action: pb::LogoutAction) -> Self {
        match action {
            pb::LogoutAction::Unspecified | pb::LogoutAction::Close => Self::Close,
            pb::LogoutAction::Requeue => Self::Requeue,
        }
    }
}

impl From<LogoutAction> for pb::LogoutAction {
    fn from(action: LogoutAction) -> Self {
        match action {
            LogoutAction::Close => Self::Close,
            LogoutAction::Requeue => Self::Requeue,
        }
    }
}

impl TryFrom<pb::Mrd> for MrdConfig {
    type Error = DomainError;

    fn try_from(mrd: pb::Mrd) -> DomainResult<Self> {
        let rona_action = wire_enum::<pb::RonaAction>("mrd.rona_action", mrd.rona_action)?;
        let logout_action = wire_enum::<pb::LogoutAction>("mrd.logout_action", mrd.logout_action)?;
        let classifiers = mrd
            .classifiers
            .into_iter()
            .enumerate()
            .map(|(i, c)| {
                Ok(Classifier {
                    expression: TaskExpr::parse(&c.expression).map_err(|e| {
                        DomainError::invalid(
                            "mrd.classifiers.expression",
                            format!("classifier {i}: {e}"),
                        )
                    })?,
                    priority: wire_priority("mrd.classifiers.priority", i, c.priority)?,
                    name: c.name,
                    queue: c.queue,
                })
            })
            .collect::<DomainResult<Vec<_>>>()?;
        let config = Self {
            name: mrd.name,
            max_tasks: mrd.max_tasks,
            interruptible: mrd.interruptible,
            offer_timeout_ms: seconds_to_ms(mrd.offer_timeout_seconds),
            wrap_up_timeout_ms: seconds_to_ms(mrd.wrap_up_timeout_seconds),
            rona_action: rona_action.into(),
            logout_action: logout_action.into(),
            blocks: mrd.blocks,
            classifiers,
            unclassified_queue: mrd.unclassified_queue,
            unclassified_priority: u8::try_from(mrd.unclassified_priority).map_err(|_| {
                DomainError::invalid(
                    "mrd.unclassified_priority",
                    format!("must be 0 to 10, not {}", mrd.unclassified_priority),
                )
            })?,
        };
        config.validate()?;
        Ok(config)
    }
}

impl From<MrdConfig> for pb::Mrd {
    fn from(mrd: MrdConfig) -> Self {
        Self {
            name: mrd.name,
            max_tasks: mrd.max_tasks,
            interruptible: mrd.interruptible,
            offer_timeout_seconds: ms_to_seconds(mrd.offer_timeout_ms),
            wrap_up_timeout_seconds: ms_to_seconds(mrd.wrap_up_timeout_ms),
            rona_action: pb::RonaAction::from(mrd.rona_action).into(),
            logout_action: pb::LogoutAction::from(mrd.logout_action).into(),
            blocks: mrd.blocks,
            classifiers: mrd
                .classifiers
                .into_iter()
                .map(|c| pb::Classifier {
                    name: c.name,
                    expression: c.expression.source().to_owned(),
                    queue: c.queue,
                    priority: u32::from(c.priority),
                })
                .collect(),
            unclassified_queue: mrd.unclassified_queue,
            unclassified_priority: u32::from(mrd.unclassified_priority),
        }
    }
}

/// A classifier's priority from the wire: one that does not fit is out of bounds like 11.
fn wire_priority(field: &'static str, index: usize, priority: u32) -> DomainResult<u8> {
    u8::try_from(priority).map_err(|_| {
        DomainError::invalid(
            field,
            format!("classifier {index}: must be 0 to 10, not {priority}"),
        )
    })
}

impl TryFrom<pb::UpsertMrdRequest> for cmd::UpsertMrd {
    type Error = DomainError;

    fn try_from(req: pb::UpsertMrdRequest) -> DomainResult<Self> {
        Ok(Self(required("mrd", req.mrd)?.try_into()?))
    }
}

impl TryFrom<pb::DeleteMrdRequest> for cmd::DeleteMrd {
    type Error = DomainError;

    fn try_from(req: pb::DeleteMrdRequest) -> DomainResult<Self> {
        check_id("name", &req.name)?;
        Ok(Self { name: req.name })
    }
}

// ----- queues ----------------------------------------------------------------------------------

impl TryFrom<pb::Queue> for QueueConfig {
    type Error = DomainError;

    fn try_from(queue: pb::Queue) -> DomainResult<Self> {
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
        let config = Self {
            name: queue.name,
            mrd: queue.mrd,
            steps,
            task_ttl_ms: seconds_to_ms(queue.task_ttl_seconds),
            attempts: AttemptPolicy {
                max_attempts: queue.max_attempts,
                overflow_queue: queue.overflow_queue,
            },
            service_level: ServiceLevelTarget {
                percent: queue.service_level_percent,
                threshold_ms: seconds_to_ms(queue.service_level_threshold_seconds),
                window_ms: seconds_to_ms(queue.service_level_window_seconds),
            },
            dispositions: Dispositions {
                codes: queue
                    .disposition_codes
                    .into_iter()
                    .map(|c| DispositionCode {
                        code: c.code,
                        label: c.label,
                    })
                    .collect(),
                required: queue.disposition_required,
            },
        };
        config.validate()?;
        Ok(config)
    }
}

impl From<QueueConfig> for pb::Queue {
    fn from(queue: QueueConfig) -> Self {
        Self {
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
            max_attempts: queue.attempts.max_attempts,
            overflow_queue: queue.attempts.overflow_queue,
            service_level_percent: queue.service_level.percent,
            service_level_threshold_seconds: ms_to_seconds(queue.service_level.threshold_ms),
            service_level_window_seconds: ms_to_seconds(queue.service_level.window_ms),
            disposition_codes: queue
                .dispositions
                .codes
                .into_iter()
                .map(|c| pb::DispositionCode {
                    code: c.code,
                    label: c.label,
                })
                .collect(),
            disposition_required: queue.dispositions.required,
        }
    }
}

impl TryFrom<pb::UpsertQueueRequest> for cmd::UpsertQueue {
    type Error = DomainError;

    fn try_from(req: pb::UpsertQueueRequest) -> DomainResult<Self> {
        Ok(Self(required("queue", req.queue)?.try_into()?))
    }
}

impl TryFrom<pb::DeleteQueueRequest> for cmd::DeleteQueue {
    type Error = DomainError;

    fn try_from(req: pb::DeleteQueueRequest) -> DomainResult<Self> {
        check_id("mrd", &req.mrd)?;
        check_id("name", &req.name)?;
        Ok(Self {
            mrd: req.mrd,
            name: req.name,
        })
    }
}

// ----- reason codes ----------------------------------------------------------------------------

impl TryFrom<pb::ReasonCategory> for ReasonCategory {
    type Error = DomainError;

    fn try_from(category: pb::ReasonCategory) -> DomainResult<Self> {
        match category {
            pb::ReasonCategory::NotReady => Ok(Self::NotReady),
            pb::ReasonCategory::Logout => Ok(Self::Logout),
            pb::ReasonCategory::Unspecified => Err(DomainError::invalid(
                "reason_code.category",
                "must be NOT_READY or LOGOUT",
            )),
        }
    }
}

impl From<ReasonCategory> for pb::ReasonCategory {
    fn from(category: ReasonCategory) -> Self {
        match category {
            ReasonCategory::NotReady => Self::NotReady,
            ReasonCategory::Logout => Self::Logout,
        }
    }
}

impl TryFrom<pb::ReasonCode> for ReasonCode {
    type Error = DomainError;

    fn try_from(reason: pb::ReasonCode) -> DomainResult<Self> {
        let category = wire_enum::<pb::ReasonCategory>("reason_code.category", reason.category)?;
        let code = Self {
            code: reason.code,
            label: reason.label,
            category: category.try_into()?,
        };
        code.validate()?;
        Ok(code)
    }
}

impl From<ReasonCode> for pb::ReasonCode {
    fn from(reason: ReasonCode) -> Self {
        Self {
            code: reason.code,
            label: reason.label,
            category: pb::ReasonCategory::from(reason.category).into(),
        }
    }
}

impl TryFrom<pb::UpsertReasonCodeRequest> for cmd::UpsertReasonCode {
    type Error = DomainError;

    fn try_from(req: pb::UpsertReasonCodeRequest) -> DomainResult<Self> {
        Ok(Self(required("reason_code", req.reason_code)?.try_into()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configuration_round_trips_through_the_wire() {
        let mrd = pb::Mrd {
            name: "chat".into(),
            max_tasks: 3,
            interruptible: true,
            offer_timeout_seconds: 20,
            wrap_up_timeout_seconds: 60,
            rona_action: pb::RonaAction::NotRoutable.into(),
            logout_action: pb::LogoutAction::Requeue.into(),
            blocks: vec!["email".into()],
            classifiers: vec![pb::Classifier {
                name: "web vip".into(),
                expression: "channel = web AND vip".into(),
                queue: "sales".into(),
                priority: 8,
            }],
            unclassified_queue: "triage".into(),
            unclassified_priority: 0,
        };
        assert_eq!(
            pb::Mrd::from(MrdConfig::try_from(mrd.clone()).unwrap()),
            mrd
        );
        let queue = pb::Queue {
            name: "sales".into(),
            mrd: "chat".into(),
            steps: vec![pb::QueueStep {
                expression: "sales >= 5".into(),
                timeout_seconds: 30,
            }],
            task_ttl_seconds: 600,
            max_attempts: 3,
            overflow_queue: "sales-overflow".into(),
            service_level_percent: 80,
            service_level_threshold_seconds: 20,
            service_level_window_seconds: 900,
            disposition_codes: vec![pb::DispositionCode {
                code: "sale".into(),
                label: "Sale made".into(),
            }],
            disposition_required: true,
        };
        assert_eq!(
            pb::Queue::from(QueueConfig::try_from(queue.clone()).unwrap()),
            queue
        );
        let reason = pb::ReasonCode {
            code: "lunch".into(),
            label: "Lunch break".into(),
            category: pb::ReasonCategory::NotReady.into(),
        };
        assert_eq!(
            pb::ReasonCode::from(ReasonCode::try_from(reason.clone()).unwrap()),
            reason
        );
    }

    #[test]
    fn refusals_name_the_field() {
        let err = cmd::UpsertMrd::try_from(pb::UpsertMrdRequest::default()).unwrap_err();
        assert_eq!(err.to_string(), "mrd: must be set");
        let err = MrdConfig::try_from(pb::Mrd {
            name: "chat".into(),
            max_tasks: 1,
            offer_timeout_seconds: u32::MAX,
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "mrd.offer_timeout_seconds: must be 1 to 3600 seconds (1 hour), not 4294967295"
        );
        let err = ReasonCode::try_from(pb::ReasonCode {
            code: "lunch".into(),
            label: "Lunch\u{1b}[2J".into(),
            category: pb::ReasonCategory::NotReady.into(),
        })
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "reason_code.label: must not contain control character U+001B"
        );
    }
}
