//! One entry point from an RPC's name and its body's bytes to "decoded and validated, or the
//! status the handler answers", through the same conversions and checks the handlers call, in
//! their order. What needs the engine (a password to verify, the records a command reads) is
//! not reached. For the fuzz targets (`fuzz/`) and tests that feed the decoders bad input.

use prost::Message;
use tonic::Status;

use super::convert::agents::{AgentWrite, WithPassword};
use super::convert::clients::{FeedOpening, new_client_id};
use super::convert::events::RoutingFilter;
use super::convert::principals::{AccountWrite, LoginWrite};
use super::convert::refresh_tokens::RefreshToken;
use super::convert::sessions::resource_id;
use super::core::hosted_service;
use super::paging::PageRequest;
use super::processor::processor_service;
use super::routing::TaskListing;
use super::{acting_client, client_request_key, request_key};
use crate::domain::bounds::{MAX_REQUEST_ID_CHARS, check_required_text};
use crate::domain::commands as cmd;
use crate::domain::{ClientId, DomainError, DomainResult, ServiceDirectory};
use crate::pb;

/// Every RPC `check_request` knows, as the policy table names them.
pub const METHODS: &[&str] = &[
    "/switchboard.v1.AdminService/UpsertAgent",
    "/switchboard.v1.AdminService/GetAgent",
    "/switchboard.v1.AdminService/ListAgents",
    "/switchboard.v1.AdminService/DeleteAgent",
    "/switchboard.v1.AdminService/UpsertMrd",
    "/switchboard.v1.AdminService/ListMrds",
    "/switchboard.v1.AdminService/DeleteMrd",
    "/switchboard.v1.AdminService/UpsertQueue",
    "/switchboard.v1.AdminService/ListQueues",
    "/switchboard.v1.AdminService/DeleteQueue",
    "/switchboard.v1.AdminService/UpsertReasonCode",
    "/switchboard.v1.AdminService/ListReasonCodes",
    "/switchboard.v1.AdminService/UpsertAccount",
    "/switchboard.v1.AdminService/GetAccount",
    "/switchboard.v1.AdminService/ListAccounts",
    "/switchboard.v1.AdminService/DeleteAccount",
    "/switchboard.v1.AdminService/RevokeCredentials",
    "/switchboard.v1.AuthService/Login",
    "/switchboard.v1.AuthService/Refresh",
    "/switchboard.v1.AuthService/Logout",
    "/switchboard.v1.AuthService/WhoAmI",
    "/switchboard.v1.CoreService/GetServerStatus",
    "/switchboard.v1.CoreService/ListServices",
    "/switchboard.v1.CoreService/RegisterClient",
    "/switchboard.v1.CoreService/UnregisterClient",
    "/switchboard.v1.CoreService/BindService",
    "/switchboard.v1.CoreService/UnbindService",
    "/switchboard.v1.CoreService/BindResource",
    "/switchboard.v1.CoreService/UnbindResource",
    "/switchboard.v1.CoreService/Connect",
    "/switchboard.v1.ProcessorService/GetCapabilities",
    "/switchboard.v1.ProcessorService/PrepareSession",
    "/switchboard.v1.ProcessorService/EndSession",
    "/switchboard.v1.RoutingService/ConnectAgent",
    "/switchboard.v1.RoutingService/LoginAgent",
    "/switchboard.v1.RoutingService/ChangeAgentState",
    "/switchboard.v1.RoutingService/ConferenceTask",
    "/switchboard.v1.RoutingService/TransferTask",
    "/switchboard.v1.RoutingService/ChangeTaskState",
    "/switchboard.v1.RoutingService/NewTask",
    "/switchboard.v1.RoutingService/AcceptTask",
    "/switchboard.v1.RoutingService/RejectTask",
    "/switchboard.v1.RoutingService/GetAgentState",
    "/switchboard.v1.RoutingService/GetTaskState",
    "/switchboard.v1.RoutingService/ListAgentStates",
    "/switchboard.v1.RoutingService/ListTasks",
    "/switchboard.v1.RoutingService/GetQueueStats",
    "/switchboard.v1.RoutingService/WatchRoutingEvents",
    "/switchboard.v1.WorkflowService/GetSessionState",
    "/switchboard.v1.WorkflowService/WatchSessionState",
    "/switchboard.v1.WorkflowService/InvokeAction",
    // New methods go last: the fuzz seeds name a method by its place in this list.
    "/switchboard.v1.CoreService/Feed",
    "/switchboard.v1.RoutingService/RequeueTask",
    "/switchboard.v1.RoutingService/SetAgentNextState",
];

/// Decodes `body` as the request of `method` and validates it as its handler does for an
/// administrator (who may act for any agent) of a server with `directory`. A body that does not
/// decode gets INTERNAL, as tonic answers it; an unknown method UNIMPLEMENTED.
pub fn check_request(
    directory: &ServiceDirectory,
    method: &str,
    body: &[u8],
) -> Result<(), Status> {
    let Some(name) = method.strip_prefix("/switchboard.v1.") else {
        return Err(Status::unimplemented(format!("unknown method {method}")));
    };
    let unary = |checked: DomainResult<()>| checked.map_err(Status::from);
    match name {
        "CoreService/Connect" => {
            let frame: pb::ConnectRequest = decode(body)?;
            check_required_text("request_id", &frame.request_id, MAX_REQUEST_ID_CHARS)
                .map_err(Status::from)?;
            unary(connect_frame(directory, new_client_id(), frame.request))
        }
        _ => unary(check_unary(directory, None, name, body)?),
    }
}

/// The decoded body, or the status tonic answers for one that does not decode.
fn decode<M: Message + Default>(body: &[u8]) -> Result<M, Status> {
    M::decode(body).map_err(|e| Status::internal(e.to_string()))
}

/// A unary request (or the same request on a `Connect` stream, where `caller` is the stream's
/// own client): the decode failure as a status, else the validation's result.
fn check_unary(
    directory: &ServiceDirectory,
    caller: Option<ClientId>,
    name: &str,
    body: &[u8],
) -> Result<DomainResult<()>, Status> {
    Ok(match name {
        "AdminService/UpsertAgent" => upsert_agent(decode(body)?),
        "AdminService/GetAgent" => {
            cmd::GetAgent::try_from(decode::<pb::GetAgentRequest>(body)?).map(drop)
        }
        "AdminService/ListAgents" => {
            paged(&decode::<pb::ListAgentsRequest>(body)?.page_size_token())
        }
        "AdminService/DeleteAgent" => delete_agent(decode(body)?),
        "AdminService/UpsertMrd" => {
            let req: pb::UpsertMrdRequest = decode(body)?;
            keyed("UpsertMrd", &req.request_id.clone(), &req)
                .and_then(|()| cmd::UpsertMrd::try_from(req).map(drop))
        }
        "AdminService/ListMrds" => decode::<pb::ListMrdsRequest>(body).map(drop).map(Ok)?,
        "AdminService/DeleteMrd" => {
            let req: pb::DeleteMrdRequest = decode(body)?;
            keyed("DeleteMrd", &req.request_id.clone(), &req)
                .and_then(|()| cmd::DeleteMrd::try_from(req).map(drop))
        }
        "AdminService/UpsertQueue" => {
            let req: pb::UpsertQueueRequest = decode(body)?;
            keyed("UpsertQueue", &req.request_id.clone(), &req)
                .and_then(|()| cmd::UpsertQueue::try_from(req).map(drop))
        }
        "AdminService/ListQueues" => decode::<pb::ListQueuesRequest>(body).map(drop).map(Ok)?,
        "AdminService/DeleteQueue" => {
            let req: pb::DeleteQueueRequest = decode(body)?;
            keyed("DeleteQueue", &req.request_id.clone(), &req)
                .and_then(|()| cmd::DeleteQueue::try_from(req).map(drop))
        }
        "AdminService/UpsertReasonCode" => {
            let req: pb::UpsertReasonCodeRequest = decode(body)?;
            keyed("UpsertReasonCode", &req.request_id.clone(), &req)
                .and_then(|()| cmd::UpsertReasonCode::try_from(req).map(drop))
        }
        "AdminService/ListReasonCodes" => decode::<pb::ListReasonCodesRequest>(body)
            .map(drop)
            .map(Ok)?,
        "AdminService/UpsertAccount" => {
            let req: pb::UpsertAccountRequest = decode(body)?;
            keyed("UpsertAccount", &req.request_id.clone(), &req)
                .and_then(|()| AccountWrite::try_from(req).map(drop))
        }
        "AdminService/GetAccount" => {
            cmd::GetAccount::try_from(decode::<pb::GetAccountRequest>(body)?).map(drop)
        }
        "AdminService/ListAccounts" => {
            paged(&decode::<pb::ListAccountsRequest>(body)?.page_size_token())
        }
        "AdminService/DeleteAccount" => {
            let req: pb::DeleteAccountRequest = decode(body)?;
            keyed("DeleteAccount", &req.request_id.clone(), &req)
                .and_then(|()| cmd::DeleteAccount::try_from(req).map(drop))
        }
        "AdminService/RevokeCredentials" => {
            let req: pb::RevokeCredentialsRequest = decode(body)?;
            keyed("RevokeCredentials", &req.request_id.clone(), &req)
                .and_then(|()| cmd::RevokeCredentials::try_from(req).map(drop))
        }
        "AuthService/Login" => LoginWrite::try_from(decode::<pb::LoginRequest>(body)?).map(drop),
        "AuthService/Refresh" => {
            RefreshToken::parse(&decode::<pb::RefreshRequest>(body)?.refresh_token).map(drop)
        }
        "AuthService/Logout" => {
            RefreshToken::parse(&decode::<pb::LogoutRequest>(body)?.refresh_token).map(drop)
        }
        "AuthService/WhoAmI" => decode::<pb::WhoAmIRequest>(body).map(drop).map(Ok)?,
        "CoreService/GetServerStatus" => decode::<pb::GetServerStatusRequest>(body)
            .map(drop)
            .map(Ok)?,
        "CoreService/ListServices" => decode::<pb::ListServicesRequest>(body).map(drop).map(Ok)?,
        "CoreService/Feed" => {
            FeedOpening::parse(&decode::<pb::FeedRequest>(body)?, "browser feed").map(drop)
        }
        "CoreService/RegisterClient" => {
            let req: pb::RegisterClientRequest = decode(body)?;
            keyed("RegisterClient", &req.request_id.clone(), &req)
                .and_then(|()| cmd::RegisterClient::try_from(req).map(drop))
        }
        "CoreService/UnregisterClient" => {
            let req: pb::UnregisterClientRequest = decode(body)?;
            keyed("UnregisterClient", &req.request_id, &req)
                .and_then(|()| ClientId::parse("client_id", &req.client_id).map(drop))
        }
        "CoreService/BindService" => bind_service(directory, caller, decode(body)?),
        "CoreService/UnbindService" => unbind_service(directory, caller, decode(body)?),
        "CoreService/BindResource" => bind_resource(directory, caller, decode(body)?),
        "CoreService/UnbindResource" => unbind_resource(directory, caller, decode(body)?),
        "ProcessorService/GetCapabilities" => processor_service(
            directory,
            &decode::<pb::GetCapabilitiesRequest>(body)?.service_id,
        ),
        "ProcessorService/PrepareSession" => prepare_session(directory, decode(body)?),
        "ProcessorService/EndSession" => {
            let req: pb::EndSessionRequest = decode(body)?;
            keyed("EndSession", &req.request_id.clone(), &req)
                .and_then(|()| cmd::EndSession::try_from(req).map(drop))
        }
        "RoutingService/ConnectAgent" => connect_agent(decode(body)?),
        "RoutingService/LoginAgent" => login_agent(decode(body)?),
        "RoutingService/ChangeAgentState" => change_agent_state(decode(body)?),
        "RoutingService/ConferenceTask" => conference_task(decode(body)?),
        "RoutingService/TransferTask" => transfer_task(decode(body)?),
        "RoutingService/ChangeTaskState" => change_task_state(decode(body)?),
        "RoutingService/NewTask" => new_task(decode(body)?),
        "RoutingService/AcceptTask" => accept_task(decode(body)?),
        "RoutingService/RejectTask" => reject_task(decode(body)?),
        "RoutingService/GetAgentState" => get_agent_state(decode(body)?),
        "RoutingService/GetTaskState" => get_task_state(decode(body)?),
        "RoutingService/RequeueTask" => {
            let req: pb::RequeueTaskRequest = decode(body)?;
            keyed("RequeueTask", &req.request_id.clone(), &req)
                .and_then(|()| cmd::RequeueTask::try_from(req).map(drop))
        }
        "RoutingService/SetAgentNextState" => {
            let req: pb::SetAgentNextStateRequest = decode(body)?;
            keyed("SetAgentNextState", &req.request_id.clone(), &req)
                .and_then(|()| cmd::SetAgentNextState::try_from(req).map(drop))
        }
        "RoutingService/ListAgentStates" => {
            paged(&decode::<pb::ListAgentStatesRequest>(body)?.page_size_token())
        }
        "RoutingService/ListTasks" => {
            TaskListing::parse(&decode::<pb::ListTasksRequest>(body)?).map(drop)
        }
        "RoutingService/GetQueueStats" => {
            cmd::GetQueueStats::try_from(decode::<pb::GetQueueStatsRequest>(body)?).map(drop)
        }
        "RoutingService/WatchRoutingEvents" => {
            RoutingFilter::try_from(&decode::<pb::WatchRoutingEventsRequest>(body)?).map(drop)
        }
        "WorkflowService/GetSessionState" => get_session_state(decode(body)?),
        "WorkflowService/WatchSessionState" => {
            cmd::GetSessionState::try_from(&decode::<pb::WatchSessionStateRequest>(body)?).map(drop)
        }
        "WorkflowService/InvokeAction" => invoke_action(decode(body)?),
        _ => return Err(Status::unimplemented(format!("unknown method {name}"))),
    })
}

/// A `Connect` frame's request, as `connect.rs` dispatches it for the stream's own client.
fn connect_frame(
    directory: &ServiceDirectory,
    own: ClientId,
    request: Option<pb::connect_request::Request>,
) -> DomainResult<()> {
    use pb::connect_request::Request as Req;
    let me = Some(own);
    match request.ok_or_else(|| DomainError::invalid("request", "must be set"))? {
        Req::Goodbye(_) => Err(DomainError::invalid("request", "goodbye ends the stream")),
        Req::GetServerStatus(_) | Req::ListServices(_) => Ok(()),
        Req::BindService(r) => bind_service(directory, me, r),
        Req::UnbindService(r) => unbind_service(directory, me, r),
        Req::BindResource(r) => bind_resource(directory, me, r),
        Req::UnbindResource(r) => unbind_resource(directory, me, r),
        Req::GetCapabilities(r) => processor_service(directory, &r.service_id),
        Req::PrepareSession(r) => prepare_session(directory, r),
        Req::EndSession(r) => keyed("EndSession", &r.request_id.clone(), &r)
            .and_then(|()| cmd::EndSession::try_from(r).map(drop)),
        Req::GetSessionState(r) => get_session_state(r),
        Req::InvokeAction(r) => invoke_action(r),
        Req::UpsertAgent(r) => upsert_agent(r),
        Req::GetAgent(r) => cmd::GetAgent::try_from(r).map(drop),
        Req::ListAgents(r) => paged(&r.page_size_token()),
        Req::DeleteAgent(r) => delete_agent(r),
        Req::ConnectAgent(r) => connect_agent(r),
        Req::LoginAgent(r) => login_agent(r),
        Req::ChangeAgentState(r) => change_agent_state(r),
        Req::ConferenceTask(r) => conference_task(r),
        Req::TransferTask(r) => transfer_task(r),
        Req::ChangeTaskState(r) => change_task_state(r),
        Req::NewTask(r) => new_task(r),
        Req::AcceptTask(r) => accept_task(r),
        Req::RejectTask(r) => reject_task(r),
        Req::GetAgentState(r) => get_agent_state(r),
        Req::GetTaskState(r) => get_task_state(r),
    }
}

/// The idempotency key's checks (`request_key`); the fingerprint itself cannot fail.
fn keyed<M: Message>(method: &'static str, request_id: &str, request: &M) -> DomainResult<()> {
    request_key(method, request_id, request).map(drop)
}

fn paged((page_size, page_token): &(u32, String)) -> DomainResult<()> {
    PageRequest::parse(*page_size, page_token).map(drop)
}

/// A listing request's `page_size` and `page_token`.
trait Paged {
    fn page_size_token(&self) -> (u32, String);
}

macro_rules! paged {
    ($($request:ty),*) => {$(
        impl Paged for $request {
            fn page_size_token(&self) -> (u32, String) {
                (self.page_size, self.page_token.clone())
            }
        }
    )*};
}

paged!(
    pb::ListAgentsRequest,
    pb::ListAccountsRequest,
    pb::ListAgentStatesRequest
);

fn upsert_agent(req: pb::UpsertAgentRequest) -> DomainResult<()> {
    keyed("UpsertAgent", &req.request_id.clone(), &req)?;
    AgentWrite::try_from(req).map(drop)
}

fn delete_agent(req: pb::DeleteAgentRequest) -> DomainResult<()> {
    keyed("DeleteAgent", &req.request_id.clone(), &req)?;
    cmd::DeleteAgent::try_from(req).map(drop)
}

fn bind_service(
    directory: &ServiceDirectory,
    caller: Option<ClientId>,
    req: pb::BindServiceRequest,
) -> DomainResult<()> {
    let client_id = acting_client(caller, &req.client_id)?;
    client_request_key(client_id, "BindService", &req.request_id, &req)?;
    hosted_service(directory, &req.service_id).map(drop)
}

fn unbind_service(
    directory: &ServiceDirectory,
    caller: Option<ClientId>,
    req: pb::UnbindServiceRequest,
) -> DomainResult<()> {
    let client_id = acting_client(caller, &req.client_id)?;
    client_request_key(client_id, "UnbindService", &req.request_id, &req)?;
    hosted_service(directory, &req.service_id).map(drop)
}

fn bind_resource(
    directory: &ServiceDirectory,
    caller: Option<ClientId>,
    req: pb::BindResourceRequest,
) -> DomainResult<()> {
    let client_id = acting_client(caller, &req.client_id)?;
    client_request_key(client_id, "BindResource", &req.request_id, &req)?;
    hosted_service(directory, &req.service_id)?;
    resource_id("resource_id", req.resource_id).map(drop)
}

fn unbind_resource(
    directory: &ServiceDirectory,
    caller: Option<ClientId>,
    req: pb::UnbindResourceRequest,
) -> DomainResult<()> {
    let client_id = acting_client(caller, &req.client_id)?;
    client_request_key(client_id, "UnbindResource", &req.request_id, &req)?;
    hosted_service(directory, &req.service_id)?;
    resource_id("resource_id", req.resource_id).map(drop)
}

fn prepare_session(
    directory: &ServiceDirectory,
    req: pb::PrepareSessionRequest,
) -> DomainResult<()> {
    processor_service(directory, &req.service_id)?;
    let request_id = req.request_id.clone();
    let fingerprinted = req.clone();
    WithPassword::<cmd::PrepareSession>::try_from(req)?;
    keyed("PrepareSession", &request_id, &fingerprinted)
}

fn connect_agent(req: pb::ConnectAgentRequest) -> DomainResult<()> {
    keyed("ConnectAgent", &req.request_id.clone(), &req)?;
    WithPassword::<cmd::ConnectAgent>::try_from(req).map(drop)
}

fn login_agent(req: pb::LoginAgentRequest) -> DomainResult<()> {
    keyed("LoginAgent", &req.request_id.clone(), &req)?;
    WithPassword::<cmd::ChangeAgentState>::try_from(req).map(drop)
}

fn change_agent_state(req: pb::ChangeAgentStateRequest) -> DomainResult<()> {
    keyed("ChangeAgentState", &req.request_id.clone(), &req)?;
    cmd::ChangeAgentState::try_from(req).map(drop)
}

fn conference_task(req: pb::ConferenceTaskRequest) -> DomainResult<()> {
    keyed("ConferenceTask", &req.request_id.clone(), &req)?;
    cmd::ConferenceTask::try_from(req).map(drop)
}

fn transfer_task(req: pb::TransferTaskRequest) -> DomainResult<()> {
    keyed("TransferTask", &req.request_id.clone(), &req)?;
    cmd::TransferTask::try_from(req).map(drop)
}

fn change_task_state(req: pb::ChangeTaskStateRequest) -> DomainResult<()> {
    keyed("ChangeTaskState", &req.request_id.clone(), &req)?;
    cmd::ChangeTaskState::try_from(req).map(drop)
}

fn new_task(req: pb::NewTaskRequest) -> DomainResult<()> {
    keyed("NewTask", &req.request_id.clone(), &req)?;
    cmd::NewTask::try_from(req).map(drop)
}

fn accept_task(req: pb::AcceptTaskRequest) -> DomainResult<()> {
    keyed("AcceptTask", &req.request_id.clone(), &req)?;
    cmd::AcceptTask::try_from(req).map(drop)
}

fn reject_task(req: pb::RejectTaskRequest) -> DomainResult<()> {
    keyed("RejectTask", &req.request_id.clone(), &req)?;
    cmd::RejectTask::try_from(req).map(drop)
}

fn get_agent_state(req: pb::GetAgentStateRequest) -> DomainResult<()> {
    cmd::GetAgentState::try_from(req).map(drop)
}

fn get_task_state(req: pb::GetTaskStateRequest) -> DomainResult<()> {
    cmd::GetTaskState::try_from(req).map(drop)
}

fn get_session_state(req: pb::GetSessionStateRequest) -> DomainResult<()> {
    cmd::GetSessionState::try_from(req).map(drop)
}

fn invoke_action(req: pb::InvokeActionRequest) -> DomainResult<()> {
    keyed("InvokeAction", &req.request_id.clone(), &req)?;
    cmd::InvokeAction::try_from(req).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn directory() -> ServiceDirectory {
        ServiceDirectory::new(uuid::Uuid::nil(), "processor")
    }

    #[test]
    fn methods_are_the_descriptor_sets_rpcs() {
        let set = prost_types::FileDescriptorSet::decode(pb::FILE_DESCRIPTOR_SET).unwrap();
        let mut served: Vec<String> = set
            .file
            .iter()
            .flat_map(|file| {
                let package = file.package().to_owned();
                file.service.iter().flat_map(move |service| {
                    let prefix = format!("/{package}.{}/", service.name());
                    service
                        .method
                        .iter()
                        .map(move |m| format!("{prefix}{}", m.name()))
                })
            })
            .collect();
        served.sort();
        let mut known: Vec<String> = METHODS.iter().map(|m| (*m).to_owned()).collect();
        known.sort();
        assert_eq!(served, known);
    }

    #[test]
    fn every_method_is_known_and_an_empty_body_decodes() {
        for method in METHODS {
            let status = check_request(&directory(), method, &[]).err();
            assert_ne!(
                status.map(|s| s.code()),
                Some(tonic::Code::Unimplemented),
                "{method}"
            );
        }
    }

    #[test]
    fn a_body_that_does_not_decode_is_internal_and_bad_fields_are_named() {
        let status = check_request(&directory(), METHODS[0], &[0xff]).unwrap_err();
        assert_eq!(status.code(), tonic::Code::Internal);
        let body = pb::NewTaskRequest {
            request_id: "r".repeat(10_000),
            ..Default::default()
        }
        .encode_to_vec();
        let status = check_request(
            &directory(),
            "/switchboard.v1.RoutingService/NewTask",
            &body,
        )
        .unwrap_err();
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert!(status.message().contains("request_id"), "{status:?}");
    }
}
