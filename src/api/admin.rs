//! `AdminService`: the agent directory here, the routing configuration in `routing_admin`.

use tonic::{Request, Response};

use super::convert::agents::AgentWrite;
use super::paging::{PageRequest, next_page_token};
use super::{Api, ApiResult, caller, reply, request_key};
use crate::domain::DomainResult;
use crate::domain::Principal;
use crate::domain::commands as cmd;
use crate::pb;
use crate::pb::admin_service_server::AdminService;

impl Api {
    pub(super) async fn upsert_agent(
        &self,
        who: &Principal,
        req: pb::UpsertAgentRequest,
    ) -> DomainResult<pb::UpsertAgentResponse> {
        // The password is left out of the request's fingerprint.
        let mut fingerprinted = req.clone();
        if let Some(a) = fingerprinted.agent.as_mut() {
            a.password.clear();
        }
        let key = request_key("UpsertAgent", &req.request_id, &fingerprinted)?;
        let agent = AgentWrite::try_from(req)?;
        let password_hash = match agent.password {
            Some(password) => Some(self.engine().hash_secret(password).await?),
            None => None,
        };
        let command = cmd::UpsertAgent {
            agent_id: agent.agent_id,
            display_name: agent.display_name,
            password_hash,
            attributes: agent.attributes,
            mrd_max_tasks: agent.mrd_max_tasks,
            roles: agent.roles,
        };
        let committed = self.execute_keyed(who, key, command).await?;
        let cmd::AgentWritten { agent, created } = committed.answer;
        Ok(pb::UpsertAgentResponse {
            agent: Some(agent.into()),
            created,
            revision: committed.revision,
        })
    }

    pub(super) async fn get_agent(
        &self,
        who: &Principal,
        req: pb::GetAgentRequest,
    ) -> DomainResult<pb::GetAgentResponse> {
        let (agent, revision) = self.run(who, None, cmd::GetAgent::try_from(req)?).await?;
        Ok(pb::GetAgentResponse {
            agent: Some(agent.into()),
            revision,
        })
    }

    pub(super) async fn list_agents(
        &self,
        who: &Principal,
        req: pb::ListAgentsRequest,
    ) -> DomainResult<pb::ListAgentsResponse> {
        let PageRequest { after, limit } = PageRequest::parse(req.page_size, &req.page_token)?;
        let (page, revision) = self
            .run(who, None, cmd::ListAgents { after, limit })
            .await?;
        Ok(pb::ListAgentsResponse {
            next_page_token: next_page_token(&page),
            agents: page.items.into_iter().map(pb::Agent::from).collect(),
            revision,
        })
    }

    pub(super) async fn delete_agent(
        &self,
        who: &Principal,
        req: pb::DeleteAgentRequest,
    ) -> DomainResult<pb::DeleteAgentResponse> {
        let key = request_key("DeleteAgent", &req.request_id, &req)?;
        let (_, revision) = self.run(who, key, cmd::DeleteAgent::try_from(req)?).await?;
        Ok(pb::DeleteAgentResponse { revision })
    }
}

#[tonic::async_trait]
impl AdminService for Api {
    async fn upsert_agent(
        &self,
        request: Request<pb::UpsertAgentRequest>,
    ) -> ApiResult<Response<pb::UpsertAgentResponse>> {
        reply(Api::upsert_agent(self, &caller(&request)?, request.into_inner()).await)
    }

    async fn get_agent(
        &self,
        request: Request<pb::GetAgentRequest>,
    ) -> ApiResult<Response<pb::GetAgentResponse>> {
        reply(Api::get_agent(self, &caller(&request)?, request.into_inner()).await)
    }

    async fn list_agents(
        &self,
        request: Request<pb::ListAgentsRequest>,
    ) -> ApiResult<Response<pb::ListAgentsResponse>> {
        reply(Api::list_agents(self, &caller(&request)?, request.into_inner()).await)
    }

    async fn delete_agent(
        &self,
        request: Request<pb::DeleteAgentRequest>,
    ) -> ApiResult<Response<pb::DeleteAgentResponse>> {
        reply(Api::delete_agent(self, &caller(&request)?, request.into_inner()).await)
    }

    async fn upsert_mrd(
        &self,
        request: Request<pb::UpsertMrdRequest>,
    ) -> ApiResult<Response<pb::UpsertMrdResponse>> {
        reply(Api::upsert_mrd(self, &caller(&request)?, request.into_inner()).await)
    }

    async fn list_mrds(
        &self,
        request: Request<pb::ListMrdsRequest>,
    ) -> ApiResult<Response<pb::ListMrdsResponse>> {
        reply(Api::list_mrds(self, &caller(&request)?).await)
    }

    async fn delete_mrd(
        &self,
        request: Request<pb::DeleteMrdRequest>,
    ) -> ApiResult<Response<pb::DeleteMrdResponse>> {
        reply(Api::delete_mrd(self, &caller(&request)?, request.into_inner()).await)
    }

    async fn upsert_queue(
        &self,
        request: Request<pb::UpsertQueueRequest>,
    ) -> ApiResult<Response<pb::UpsertQueueResponse>> {
        reply(Api::upsert_queue(self, &caller(&request)?, request.into_inner()).await)
    }

    async fn list_queues(
        &self,
        request: Request<pb::ListQueuesRequest>,
    ) -> ApiResult<Response<pb::ListQueuesResponse>> {
        reply(Api::list_queues(self, &caller(&request)?).await)
    }

    async fn delete_queue(
        &self,
        request: Request<pb::DeleteQueueRequest>,
    ) -> ApiResult<Response<pb::DeleteQueueResponse>> {
        reply(Api::delete_queue(self, &caller(&request)?, request.into_inner()).await)
    }

    async fn upsert_reason_code(
        &self,
        request: Request<pb::UpsertReasonCodeRequest>,
    ) -> ApiResult<Response<pb::UpsertReasonCodeResponse>> {
        reply(Api::upsert_reason_code(self, &caller(&request)?, request.into_inner()).await)
    }

    async fn list_reason_codes(
        &self,
        request: Request<pb::ListReasonCodesRequest>,
    ) -> ApiResult<Response<pb::ListReasonCodesResponse>> {
        reply(Api::list_reason_codes(self, &caller(&request)?).await)
    }

    async fn upsert_account(
        &self,
        request: Request<pb::UpsertAccountRequest>,
    ) -> ApiResult<Response<pb::UpsertAccountResponse>> {
        reply(Api::upsert_account(self, &caller(&request)?, request.into_inner()).await)
    }

    async fn get_account(
        &self,
        request: Request<pb::GetAccountRequest>,
    ) -> ApiResult<Response<pb::GetAccountResponse>> {
        reply(Api::get_account(self, &caller(&request)?, request.into_inner()).await)
    }

    async fn list_accounts(
        &self,
        request: Request<pb::ListAccountsRequest>,
    ) -> ApiResult<Response<pb::ListAccountsResponse>> {
        reply(Api::list_accounts(self, &caller(&request)?, request.into_inner()).await)
    }

    async fn delete_account(
        &self,
        request: Request<pb::DeleteAccountRequest>,
    ) -> ApiResult<Response<pb::DeleteAccountResponse>> {
        reply(Api::delete_account(self, &caller(&request)?, request.into_inner()).await)
    }

    async fn revoke_credentials(
        &self,
        request: Request<pb::RevokeCredentialsRequest>,
    ) -> ApiResult<Response<pb::RevokeCredentialsResponse>> {
        reply(Api::revoke_credentials(self, &caller(&request)?, request.into_inner()).await)
    }
}
