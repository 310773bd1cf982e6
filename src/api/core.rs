use std::pin::Pin;

use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};

use super::convert::saturating_u32;
use super::convert::sessions::resource_id;
use super::{Api, ApiResult, acting_client, caller, client_request_key, reply, request_key};
use crate::domain::Principal;
use crate::domain::bounds::check_id;
use crate::domain::commands as cmd;
use crate::domain::{ClientId, DomainResult, ServiceDirectory, ServiceKind};
use std::sync::atomic::Ordering;

use crate::cluster::{NodeRole, Route};
use crate::engine::EngineStatus;
use crate::lifecycle::Phase;
use crate::pb;
use crate::pb::core_service_server::CoreService;

/// The service `raw` names, as `service_id` of a request: one that `directory` hosts.
pub(super) fn hosted_service(directory: &ServiceDirectory, raw: &str) -> DomainResult<ServiceKind> {
    check_id("service_id", raw)?;
    directory.resolve("service_id", raw)
}

impl Api {
    /// The service a request names in `service_id`: an id this server hosts.
    fn service(&self, raw: &str) -> DomainResult<ServiceKind> {
        hosted_service(self.directory(), raw)
    }

    /// The server's status and whether it takes clients: out of service, taking none, while
    /// its journal cannot be written (it answers reads only) or it rebuilds its state; a
    /// follower takes clients while it knows a leader to forward them to.
    fn serving(&self) -> (pb::ServiceStatus, bool) {
        let lifecycle = self.lifecycle();
        let status = *self.engine().status().borrow();
        let phase = lifecycle.phase();
        let view = self.inner.node.view.borrow();
        match status {
            _ if phase != Phase::InService => (phase.into(), false),
            EngineStatus::Degraded | EngineStatus::Recovering => {
                (pb::ServiceStatus::OutOfService, false)
            }
            EngineStatus::Writable | EngineStatus::Following => (
                phase.into(),
                lifecycle.accepting_clients() && view.route() != Route::NoLeader,
            ),
        }
    }

    pub(super) async fn get_server_status(&self) -> DomainResult<pb::GetServerStatusResponse> {
        let view = self.inner.node.view.borrow().clone();
        let client_count = match view.role {
            NodeRole::Standalone => {
                self.engine()
                    .execute(&Principal::engine(), cmd::ServerLoad)
                    .await?
                    .answer
                    .client_count
            }
            // Clients are the cluster's; what this node carries is its streams.
            _ => self.inner.node.desktop_streams.load(Ordering::Relaxed),
        };
        let (status, accepting_clients) = self.serving();
        let role = match view.role {
            NodeRole::Standalone => pb::NodeRole::Standalone,
            NodeRole::Leader { ready: true } => pb::NodeRole::Leader,
            NodeRole::Leader { ready: false } => pb::NodeRole::TakingOver,
            NodeRole::Follower => pb::NodeRole::Follower,
        };
        Ok(pb::GetServerStatusResponse {
            status: status.into(),
            accepting_clients,
            client_count: saturating_u32(client_count),
            instance_domain: self.inner.instance_domain.clone(),
            server_id: self.directory().processor_id.clone(),
            role: role.into(),
            applied_revision: *self.engine().applied().borrow(),
            leader_address: view.leader_address.unwrap_or_default(),
            lease_epoch: view.epoch,
            node_id: view.node_id,
        })
    }

    pub(super) async fn list_services(&self) -> DomainResult<pb::ListServicesResponse> {
        let per_service = self
            .engine()
            .execute(&Principal::engine(), cmd::ServerLoad)
            .await?
            .answer
            .per_service;
        let (status, accepting_clients) = self.serving();
        let directory = self.directory();
        let services = ServiceKind::ALL
            .into_iter()
            .map(|kind| pb::ServiceInfo {
                service_id: directory.id(kind).to_owned(),
                service_name: directory.name(kind).to_owned(),
                service_type: kind.service_type().to_owned(),
                status: status.into(),
                accepting_clients,
                client_count: saturating_u32(per_service.get(&kind).copied().unwrap_or(0)),
            })
            .collect();
        Ok(pb::ListServicesResponse { services })
    }

    async fn register_client(
        &self,
        who: &Principal,
        req: pb::RegisterClientRequest,
    ) -> DomainResult<pb::RegisterClientResponse> {
        let key = request_key("RegisterClient", &req.request_id, &req)?;
        self.ensure_accepting()?;
        let command = cmd::RegisterClient::try_from(req)?;
        let committed = self.execute_keyed(who, key, command).await?;
        // A retry gets the client the first call registered.
        Ok(pb::RegisterClientResponse {
            client_id: committed.answer.to_string(),
            revision: committed.revision,
        })
    }

    async fn unregister_client(
        &self,
        who: &Principal,
        req: pb::UnregisterClientRequest,
    ) -> DomainResult<pb::UnregisterClientResponse> {
        let key = request_key("UnregisterClient", &req.request_id, &req)?;
        let client_id = ClientId::parse("client_id", &req.client_id)?;
        let committed = self
            .execute_keyed(who, key, cmd::UnregisterClient { client_id })
            .await?;
        Ok(pb::UnregisterClientResponse {
            revision: committed.revision,
        })
    }

    pub(super) async fn bind_service(
        &self,
        who: &Principal,
        req: pb::BindServiceRequest,
        caller: Option<ClientId>,
    ) -> DomainResult<pb::BindServiceResponse> {
        let client_id = acting_client(caller, &req.client_id)?;
        let key = client_request_key(client_id, "BindService", &req.request_id, &req)?;
        let service = self.service(&req.service_id)?;
        let committed = self
            .execute_keyed(who, key, cmd::BindService { client_id, service })
            .await?;
        let directory = self.directory();
        Ok(pb::BindServiceResponse {
            service_id: directory.id(service).to_owned(),
            service_name: directory.name(service).to_owned(),
            service_type: service.service_type().to_owned(),
            revision: committed.revision,
        })
    }

    pub(super) async fn unbind_service(
        &self,
        who: &Principal,
        req: pb::UnbindServiceRequest,
        caller: Option<ClientId>,
    ) -> DomainResult<pb::UnbindServiceResponse> {
        let client_id = acting_client(caller, &req.client_id)?;
        let key = client_request_key(client_id, "UnbindService", &req.request_id, &req)?;
        let service = self.service(&req.service_id)?;
        let committed = self
            .execute_keyed(who, key, cmd::UnbindService { client_id, service })
            .await?;
        Ok(pb::UnbindServiceResponse {
            revision: committed.revision,
        })
    }

    pub(super) async fn bind_resource(
        &self,
        who: &Principal,
        req: pb::BindResourceRequest,
        caller: Option<ClientId>,
    ) -> DomainResult<pb::BindResourceResponse> {
        let client_id = acting_client(caller, &req.client_id)?;
        let key = client_request_key(client_id, "BindResource", &req.request_id, &req)?;
        let service = self.service(&req.service_id)?;
        let resource_id = resource_id("resource_id", req.resource_id)?;
        let committed = self
            .execute_keyed(
                who,
                key,
                cmd::BindResource {
                    client_id,
                    service,
                    resource_id: resource_id.clone(),
                },
            )
            .await?;
        Ok(pb::BindResourceResponse {
            service_id: self.directory().id(service).to_owned(),
            resource_name: resource_id.clone(),
            resource_id,
            resource_type: service.resource_type().to_owned(),
            revision: committed.revision,
        })
    }

    pub(super) async fn unbind_resource(
        &self,
        who: &Principal,
        req: pb::UnbindResourceRequest,
        caller: Option<ClientId>,
    ) -> DomainResult<pb::UnbindResourceResponse> {
        let client_id = acting_client(caller, &req.client_id)?;
        let key = client_request_key(client_id, "UnbindResource", &req.request_id, &req)?;
        let service = self.service(&req.service_id)?;
        let resource_id = resource_id("resource_id", req.resource_id)?;
        let committed = self
            .execute_keyed(
                who,
                key,
                cmd::UnbindResource {
                    client_id,
                    service,
                    resource_id,
                },
            )
            .await?;
        Ok(pb::UnbindResourceResponse {
            revision: committed.revision,
        })
    }
}

#[tonic::async_trait]
impl CoreService for Api {
    async fn get_server_status(
        &self,
        _: Request<pb::GetServerStatusRequest>,
    ) -> ApiResult<Response<pb::GetServerStatusResponse>> {
        reply(Api::get_server_status(self).await)
    }

    async fn list_services(
        &self,
        _: Request<pb::ListServicesRequest>,
    ) -> ApiResult<Response<pb::ListServicesResponse>> {
        reply(Api::list_services(self).await)
    }

    async fn register_client(
        &self,
        request: Request<pb::RegisterClientRequest>,
    ) -> ApiResult<Response<pb::RegisterClientResponse>> {
        reply(Api::register_client(self, &caller(&request)?, request.into_inner()).await)
    }

    async fn unregister_client(
        &self,
        request: Request<pb::UnregisterClientRequest>,
    ) -> ApiResult<Response<pb::UnregisterClientResponse>> {
        reply(Api::unregister_client(self, &caller(&request)?, request.into_inner()).await)
    }

    async fn bind_service(
        &self,
        request: Request<pb::BindServiceRequest>,
    ) -> ApiResult<Response<pb::BindServiceResponse>> {
        reply(Api::bind_service(self, &caller(&request)?, request.into_inner(), None).await)
    }

    async fn unbind_service(
        &self,
        request: Request<pb::UnbindServiceRequest>,
    ) -> ApiResult<Response<pb::UnbindServiceResponse>> {
        reply(Api::unbind_service(self, &caller(&request)?, request.into_inner(), None).await)
    }

    async fn bind_resource(
        &self,
        request: Request<pb::BindResourceRequest>,
    ) -> ApiResult<Response<pb::BindResourceResponse>> {
        reply(Api::bind_resource(self, &caller(&request)?, request.into_inner(), None).await)
    }

    async fn unbind_resource(
        &self,
        request: Request<pb::UnbindResourceRequest>,
    ) -> ApiResult<Response<pb::UnbindResourceResponse>> {
        reply(Api::unbind_resource(self, &caller(&request)?, request.into_inner(), None).await)
    }

    type ConnectStream = Pin<Box<dyn Stream<Item = Result<pb::ConnectResponse, Status>> + Send>>;

    async fn connect(
        &self,
        request: Request<Streaming<pb::ConnectRequest>>,
    ) -> ApiResult<Response<Self::ConnectStream>> {
        self.open_connect_stream(request).await
    }

    type FeedStream = super::feed::FeedStream;

    async fn feed(
        &self,
        request: Request<pb::FeedRequest>,
    ) -> ApiResult<Response<Self::FeedStream>> {
        self.open_feed(request).await
    }
}
