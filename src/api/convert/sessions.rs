//! Agent sessions (ProcessorService, WorkflowService): preparing and ending a session, its
//! view and the actions enabled in it.

use super::agents::WithPassword;
use super::required;
use crate::domain::bounds::{
    MAX_EXTERNAL_ID_CHARS, check_id, check_optional_id, check_optional_password,
    check_required_text, check_text,
};
use crate::domain::commands::{self as cmd, SessionView};
use crate::domain::{DomainError, DomainResult, PrepareResult};
use crate::pb;

/// A session's resource id as a request names it (`field`).
pub fn resource_id(field: &'static str, raw: String) -> DomainResult<String> {
    check_required_text(field, &raw, MAX_EXTERNAL_ID_CHARS)?;
    Ok(raw)
}

/// Every action of a session's model with whether it is enabled.
pub fn actions(view: &SessionView) -> Vec<pb::SessionAction> {
    view.actions
        .iter()
        .map(|(name, enabled)| pb::SessionAction {
            name: name.clone(),
            enabled: *enabled,
        })
        .collect()
}

impl From<PrepareResult> for pb::PrepareSessionResult {
    fn from(result: PrepareResult) -> Self {
        match result {
            PrepareResult::Success => Self::Success,
            PrepareResult::Confirm => Self::Confirm,
        }
    }
}

/// Everything but the service, which the handler resolves against this server's directory.
impl TryFrom<pb::PrepareSessionRequest> for WithPassword<cmd::PrepareSession> {
    type Error = DomainError;

    fn try_from(req: pb::PrepareSessionRequest) -> DomainResult<Self> {
        let agent = required("agent", req.agent)?;
        check_id("agent.id", &agent.id)?;
        check_optional_password("agent.password", &agent.password)?;
        check_optional_id("model", &req.model)?;
        check_text("cti", &req.cti, MAX_EXTERNAL_ID_CHARS)?;
        let (model, take_over, cti) = (req.model, req.r#override, req.cti);
        Ok(WithPassword::new(
            agent.id,
            agent.password,
            move |agent_id, verified_hash| cmd::PrepareSession {
                agent_id,
                verified_hash,
                model,
                take_over,
                cti,
            },
        ))
    }
}

impl TryFrom<pb::EndSessionRequest> for cmd::EndSession {
    type Error = DomainError;

    fn try_from(req: pb::EndSessionRequest) -> DomainResult<Self> {
        Ok(Self {
            resource_id: resource_id("resource_id", req.resource_id)?,
        })
    }
}

impl TryFrom<pb::GetSessionStateRequest> for cmd::GetSessionState {
    type Error = DomainError;

    fn try_from(req: pb::GetSessionStateRequest) -> DomainResult<Self> {
        Ok(Self {
            resource_id: resource_id("resource_id", req.resource_id)?,
        })
    }
}

/// The session a watch follows; it must exist when the watch starts.
impl TryFrom<&pb::WatchSessionStateRequest> for cmd::GetSessionState {
    type Error = DomainError;

    fn try_from(req: &pb::WatchSessionStateRequest) -> DomainResult<Self> {
        Ok(Self {
            resource_id: resource_id("resource_id", req.resource_id.clone())?,
        })
    }
}

impl TryFrom<pb::InvokeActionRequest> for cmd::InvokeAction {
    type Error = DomainError;

    fn try_from(req: pb::InvokeActionRequest) -> DomainResult<Self> {
        let resource_id = resource_id("resource_id", req.resource_id)?;
        check_required_text("action", &req.action, MAX_EXTERNAL_ID_CHARS)?;
        Ok(Self {
            resource_id,
            action: req.action,
        })
    }
}
