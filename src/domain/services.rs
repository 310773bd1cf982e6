//! The two services a server hosts and the resources they own.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::error::{DomainError, DomainResult};

pub const PROCESSOR_SERVICE_TYPE: &str = "switchboard.processor";
pub const WORKFLOW_SERVICE_TYPE: &str = "switchboard.workflow.manager";
pub const PROCESSOR_SESSION_TYPE: &str = "switchboard.processor.session";
pub const WORKFLOW_SESSION_TYPE: &str = "switchboard.workflow.session";
/// The workflow manager's fixed id and name, as desktops expect it.
pub const WORKFLOW_MANAGER_ID: &str = "WorkflowManager";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ServiceKind {
    Processor,
    WorkflowManager,
}

impl ServiceKind {
    pub const ALL: [ServiceKind; 2] = [ServiceKind::Processor, ServiceKind::WorkflowManager];

    pub fn service_type(self) -> &'static str {
        match self {
            Self::Processor => PROCESSOR_SERVICE_TYPE,
            Self::WorkflowManager => WORKFLOW_SERVICE_TYPE,
        }
    }

    pub fn resource_type(self) -> &'static str {
        match self {
            Self::Processor => PROCESSOR_SESSION_TYPE,
            Self::WorkflowManager => WORKFLOW_SESSION_TYPE,
        }
    }
}

/// How this server names its services; fixed for the life of the process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceDirectory {
    pub processor_id: String,
    pub processor_name: String,
}

impl ServiceDirectory {
    pub fn new(processor_id: Uuid, processor_name: impl Into<String>) -> Self {
        Self {
            processor_id: processor_id.to_string(),
            processor_name: processor_name.into(),
        }
    }

    /// A processor id that stays the same across restarts: derived from the instance domain
    /// and the processor's name, unless the operator sets one.
    pub fn derived_processor_id(instance_domain: &str, processor_name: &str) -> Uuid {
        Uuid::new_v5(
            &Uuid::NAMESPACE_URL,
            format!("switchboard:{instance_domain}:{processor_name}").as_bytes(),
        )
    }

    pub fn id(&self, kind: ServiceKind) -> &str {
        match kind {
            ServiceKind::Processor => &self.processor_id,
            ServiceKind::WorkflowManager => WORKFLOW_MANAGER_ID,
        }
    }

    pub fn name(&self, kind: ServiceKind) -> &str {
        match kind {
            ServiceKind::Processor => &self.processor_name,
            ServiceKind::WorkflowManager => WORKFLOW_MANAGER_ID,
        }
    }

    /// Resolves a `service_id` from the wire.
    pub fn resolve(&self, field: &'static str, raw: &str) -> DomainResult<ServiceKind> {
        if raw.is_empty() {
            return Err(DomainError::invalid(field, "must not be empty"));
        }
        ServiceKind::ALL
            .into_iter()
            .find(|kind| self.id(*kind) == raw)
            .ok_or_else(|| DomainError::not_found("service", super::ids::shorten(raw)))
    }

    /// Resolves a `service_id` that must name the processor.
    pub fn resolve_processor(&self, field: &'static str, raw: &str) -> DomainResult<()> {
        match self.resolve(field, raw)? {
            ServiceKind::Processor => Ok(()),
            ServiceKind::WorkflowManager => Err(DomainError::invalid(
                field,
                format!("'{raw}' is not the processor service"),
            )),
        }
    }

    /// A session's resource id: `<processor name>-<agent id>`.
    pub fn session_resource_id(&self, agent_id: &str) -> String {
        format!("{}-{agent_id}", self.processor_name)
    }
}
