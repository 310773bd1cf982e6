//! `ProcessorService`: capabilities, and preparing and ending agent sessions.

use std::net::SocketAddr;

use tonic::{Request, Response};

use super::convert::agents::WithPassword;
use super::{Api, ApiResult, caller, reply, request_key};
use crate::domain::Principal;
use crate::domain::bounds::check_id;
use crate::domain::commands as cmd;
use crate::domain::{DomainResult, ServiceDirectory};
use crate::pb;
use crate::pb::processor_service_server::ProcessorService;

/// Checks that a request's `service_id`, `raw`, names the processor of `directory`.
pub(super) fn processor_service(directory: &ServiceDirectory, raw: &str) -> DomainResult<()> {
    check_id("service_id", raw)?;
    directory.resolve_processor("service_id", raw)?;
    Ok(())
}

impl Api {
    /// Checks that a request's `service_id` names this server's processor.
    fn processor_service(&self, raw: &str) -> DomainResult<()> {
        processor_service(self.directory(), raw)
    }

    pub(super) async fn get_capabilities(
        &self,
        who: &Principal,
        req: pb::GetCapabilitiesRequest,
    ) -> DomainResult<pb::GetCapabilitiesResponse> {
        self.processor_service(&req.service_id)?;
        let (capabilities, _) = self.run(who, None, cmd::GetCapabilities).await?;
        Ok(pb::GetCapabilitiesResponse {
            capabilities: capabilities.into_iter().collect(),
        })
    }

    pub(super) async fn prepare_session(
        &self,
        who: &Principal,
        req: pb::PrepareSessionRequest,
        peer: Option<SocketAddr>,
    ) -> DomainResult<pb::PrepareSessionResponse> {
        self.processor_service(&req.service_id)?;
        // The password is checked on every call, and left out of the request's fingerprint.
        let mut fingerprinted = req.clone();
        if let Some(a) = fingerprinted.agent.as_mut() {
            a.password.clear();
        }
        let request_id = req.request_id.clone();
        let unverified = WithPassword::<cmd::PrepareSession>::try_from(req)?;
        let key = request_key("PrepareSession", &request_id, &fingerprinted)?;
        let command = self.verified(unverified, peer).await?;
        let (prepared, revision) = self.run(who, key, command).await?;
        Ok(pb::PrepareSessionResponse {
            result: pb::PrepareSessionResult::from(prepared.result).into(),
            resource_id: prepared.resource_id,
            message: prepared.message,
            revision,
        })
    }

    pub(super) async fn end_session(
        &self,
        who: &Principal,
        req: pb::EndSessionRequest,
    ) -> DomainResult<pb::EndSessionResponse> {
        let key = request_key("EndSession", &req.request_id, &req)?;
        let (_, revision) = self.run(who, key, cmd::EndSession::try_from(req)?).await?;
        Ok(pb::EndSessionResponse { revision })
    }
}

#[tonic::async_trait]
impl ProcessorService for Api {
    async fn get_capabilities(
        &self,
        request: Request<pb::GetCapabilitiesRequest>,
    ) -> ApiResult<Response<pb::GetCapabilitiesResponse>> {
        reply(Api::get_capabilities(self, &caller(&request)?, request.into_inner()).await)
    }

    async fn prepare_session(
        &self,
        request: Request<pb::PrepareSessionRequest>,
    ) -> ApiResult<Response<pb::PrepareSessionResponse>> {
        let peer = request.remote_addr();
        reply(Api::prepare_session(self, &caller(&request)?, request.into_inner(), peer).await)
    }

    async fn end_session(
        &self,
        request: Request<pb::EndSessionRequest>,
    ) -> ApiResult<Response<pb::EndSessionResponse>> {
        reply(Api::end_session(self, &caller(&request)?, request.into_inner()).await)
    }
}
