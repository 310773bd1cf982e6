use tonic::{Request, Response};

use super::{Api, ApiResult, reply, request_key};
use crate::domain::agents::validate_password;
use crate::domain::commands as cmd;
use crate::domain::ids::{require, validate_name};
use crate::domain::{DomainError, DomainResult, PrepareResult};
use crate::engine::Password;
use crate::pb;
use crate::pb::processor_service_server::ProcessorService;

impl Api {
    pub(super) async fn get_capabilities(
        &self,
        req: pb::GetCapabilitiesRequest,
    ) -> DomainResult<pb::GetCapabilitiesResponse> {
        self.directory()
            .resolve_processor("service_id", &req.service_id)?;
        let capabilities = self.engine().execute(cmd::GetCapabilities).await?.answer;
        Ok(pb::GetCapabilitiesResponse {
            capabilities: capabilities.into_iter().collect(),
        })
    }

    pub(super) async fn prepare_session(
        &self,
        req: pb::PrepareSessionRequest,
    ) -> DomainResult<pb::PrepareSessionResponse> {
        self.directory()
            .resolve_processor("service_id", &req.service_id)?;
        let agent = req
            .agent
            .clone()
            .ok_or_else(|| DomainError::invalid("agent", "must be set"))?;
        validate_name("agent.id", &agent.id)?;
        validate_password("agent.password", &agent.password)?;
        if !req.model.is_empty() {
            validate_name("model", &req.model)?;
        }
        let (model, take_over) = (req.model.clone(), req.r#override);
        let cti = if req.cti.is_empty() {
            String::new()
        } else {
            require("cti", &req.cti)?.to_owned()
        };
        // The password is checked on every call, and left out of the request's fingerprint.
        let mut fingerprinted = req.clone();
        if let Some(a) = fingerprinted.agent.as_mut() {
            a.password.clear();
        }
        let key = request_key("PrepareSession", &req.request_id, &fingerprinted)?;
        let committed = self
            .engine()
            .prepare_session(
                key,
                agent.id,
                Password::new(agent.password),
                model,
                take_over,
                cti,
            )
            .await?;
        let cmd::Prepared {
            result,
            resource_id,
            message,
        } = committed.answer;
        Ok(pb::PrepareSessionResponse {
            result: match result {
                PrepareResult::Success => pb::PrepareSessionResult::Success,
                PrepareResult::Confirm => pb::PrepareSessionResult::Confirm,
            }
            .into(),
            resource_id,
            message,
            revision: committed.revision,
        })
    }

    pub(super) async fn end_session(
        &self,
        req: pb::EndSessionRequest,
    ) -> DomainResult<pb::EndSessionResponse> {
        let key = request_key("EndSession", &req.request_id, &req)?;
        let resource_id = require("resource_id", &req.resource_id)?.to_owned();
        let committed = self
            .execute_keyed(key, cmd::EndSession { resource_id })
            .await?;
        Ok(pb::EndSessionResponse {
            revision: committed.revision,
        })
    }
}

#[tonic::async_trait]
impl ProcessorService for Api {
    async fn get_capabilities(
        &self,
        request: Request<pb::GetCapabilitiesRequest>,
    ) -> ApiResult<Response<pb::GetCapabilitiesResponse>> {
        reply(Api::get_capabilities(self, request.into_inner()).await)
    }

    async fn prepare_session(
        &self,
        request: Request<pb::PrepareSessionRequest>,
    ) -> ApiResult<Response<pb::PrepareSessionResponse>> {
        reply(Api::prepare_session(self, request.into_inner()).await)
    }

    async fn end_session(
        &self,
        request: Request<pb::EndSessionRequest>,
    ) -> ApiResult<Response<pb::EndSessionResponse>> {
        reply(Api::end_session(self, request.into_inner()).await)
    }
}
