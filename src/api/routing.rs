//! `RoutingService` and the routing half of `AdminService`.

use std::pin::Pin;

use tokio_stream::Stream;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::paging::{PageRequest, next_page_token};
use super::routing_convert::{
    agent_status_pb, mrd_from_pb, mrd_pb, queue_from_pb, queue_pb, reason_from_pb, reason_pb,
    requested_state, requested_task_state, routing_event_kind, routing_event_pb, task_pb,
};
use super::{Api, ApiResult, end_on_shutdown, reply, request_key, watch_frames};
use crate::domain::agents::validate_password;
use crate::domain::commands as cmd;
use crate::domain::commands::Command;
use crate::domain::ids::{require, validate_name};
use crate::domain::routing::model::{
    DEFAULT_PRIORITY, MAX_PRIORITY, RequestedAgentState, TaskSpec,
};
use crate::domain::{DomainError, DomainResult, Revision};
use crate::engine::{Password, RequestKey};
use crate::pb;
use crate::pb::routing_service_server::RoutingService;

const MAX_LABELS: usize = 64;

fn optional_name(field: &'static str, raw: &str) -> DomainResult<()> {
    if raw.is_empty() {
        Ok(())
    } else {
        validate_name(field, raw)
    }
}

impl Api {
    /// Runs a command; with a key, once per request id.
    async fn run<C: Command>(
        &self,
        key: Option<RequestKey>,
        command: C,
    ) -> DomainResult<(C::Answer, Revision)> {
        let committed = self.engine().execute_once(command, key).await?;
        Ok((committed.answer, committed.revision))
    }

    // ----- routing configuration (AdminService) ---------------------------------------------

    pub(super) async fn upsert_mrd(
        &self,
        req: pb::UpsertMrdRequest,
    ) -> DomainResult<pb::UpsertMrdResponse> {
        let key = request_key("UpsertMrd", &req.request_id, &req)?;
        let mrd = mrd_from_pb(req.mrd)?;
        let (_, revision) = self.run(key, cmd::UpsertMrd(mrd.clone())).await?;
        Ok(pb::UpsertMrdResponse {
            mrd: Some(mrd_pb(mrd)),
            revision,
        })
    }

    pub(super) async fn list_mrds(&self) -> DomainResult<pb::ListMrdsResponse> {
        let (mrds, revision) = self.run(None, cmd::ListMrds).await?;
        Ok(pb::ListMrdsResponse {
            mrds: mrds.into_iter().map(mrd_pb).collect(),
            revision,
        })
    }

    pub(super) async fn delete_mrd(
        &self,
        req: pb::DeleteMrdRequest,
    ) -> DomainResult<pb::DeleteMrdResponse> {
        let key = request_key("DeleteMrd", &req.request_id, &req)?;
        validate_name("name", &req.name)?;
        let (_, revision) = self.run(key, cmd::DeleteMrd { name: req.name }).await?;
        Ok(pb::DeleteMrdResponse { revision })
    }

    pub(super) async fn upsert_queue(
        &self,
        req: pb::UpsertQueueRequest,
    ) -> DomainResult<pb::UpsertQueueResponse> {
        let key = request_key("UpsertQueue", &req.request_id, &req)?;
        let queue = queue_from_pb(req.queue)?;
        let (_, revision) = self.run(key, cmd::UpsertQueue(queue.clone())).await?;
        Ok(pb::UpsertQueueResponse {
            queue: Some(queue_pb(queue)),
            revision,
        })
    }

    pub(super) async fn list_queues(&self) -> DomainResult<pb::ListQueuesResponse> {
        let (queues, revision) = self.run(None, cmd::ListQueues).await?;
        Ok(pb::ListQueuesResponse {
            queues: queues.into_iter().map(queue_pb).collect(),
            revision,
        })
    }

    pub(super) async fn delete_queue(
        &self,
        req: pb::DeleteQueueRequest,
    ) -> DomainResult<pb::DeleteQueueResponse> {
        let key = request_key("DeleteQueue", &req.request_id, &req)?;
        validate_name("mrd", &req.mrd)?;
        validate_name("name", &req.name)?;
        let (_, revision) = self
            .run(
                key,
                cmd::DeleteQueue {
                    mrd: req.mrd,
                    name: req.name,
                },
            )
            .await?;
        Ok(pb::DeleteQueueResponse { revision })
    }

    pub(super) async fn upsert_reason_code(
        &self,
        req: pb::UpsertReasonCodeRequest,
    ) -> DomainResult<pb::UpsertReasonCodeResponse> {
        let key = request_key("UpsertReasonCode", &req.request_id, &req)?;
        let reason = reason_from_pb(req.reason_code)?;
        let (_, revision) = self.run(key, cmd::UpsertReasonCode(reason.clone())).await?;
        Ok(pb::UpsertReasonCodeResponse {
            reason_code: Some(reason_pb(reason)),
            revision,
        })
    }

    pub(super) async fn list_reason_codes(&self) -> DomainResult<pb::ListReasonCodesResponse> {
        let (codes, revision) = self.run(None, cmd::ListReasonCodes).await?;
        Ok(pb::ListReasonCodesResponse {
            reason_codes: codes.into_iter().map(reason_pb).collect(),
            revision,
        })
    }

    // ----- routing ------------------------------------------------------------------------------

    pub(super) async fn connect_agent(
        &self,
        req: pb::ConnectAgentRequest,
    ) -> DomainResult<pb::ConnectAgentResponse> {
        // The password is checked on every call, and left out of the request's fingerprint.
        let key = request_key(
            "ConnectAgent",
            &req.request_id,
            &pb::ConnectAgentRequest {
                password: String::new(),
                ..req.clone()
            },
        )?;
        validate_name("agent_id", &req.agent_id)?;
        validate_password("password", &req.password)?;
        if req.extension.chars().count() > 128 {
            return Err(DomainError::invalid(
                "extension",
                "must be at most 128 characters",
            ));
        }
        if req.destination.chars().count() > 256 {
            return Err(DomainError::invalid(
                "destination",
                "must be at most 256 characters",
            ));
        }
        let verified_hash = self
            .engine()
            .verify_agent(&req.agent_id, Password::new(req.password))
            .await?;
        let (_, revision) = self
            .run(
                key,
                cmd::ConnectAgent {
                    agent_id: req.agent_id,
                    verified_hash,
                    extension: req.extension,
                    destination: req.destination,
                },
            )
            .await?;
        Ok(pb::ConnectAgentResponse { revision })
    }

    pub(super) async fn login_agent(
        &self,
        req: pb::LoginAgentRequest,
    ) -> DomainResult<pb::LoginAgentResponse> {
        // The password is checked on every call, and left out of the request's fingerprint.
        let key = request_key(
            "LoginAgent",
            &req.request_id,
            &pb::LoginAgentRequest {
                password: String::new(),
                ..req.clone()
            },
        )?;
        validate_name("agent_id", &req.agent_id)?;
        validate_password("password", &req.password)?;
        optional_name("mrd", &req.mrd)?;
        let verified_hash = self
            .engine()
            .verify_agent(&req.agent_id, Password::new(req.password))
            .await?;
        let (outcome, revision) = self
            .run(
                key,
                cmd::ChangeAgentState {
                    agent_id: req.agent_id,
                    verified_hash: Some(verified_hash),
                    state: RequestedAgentState::Login,
                    mrd: req.mrd,
                    reason_code: String::new(),
                },
            )
            .await?;
        Ok(pb::LoginAgentResponse {
            agent: Some(agent_status_pb(outcome)),
            revision,
        })
    }

    pub(super) async fn change_agent_state(
        &self,
        req: pb::ChangeAgentStateRequest,
    ) -> DomainResult<pb::ChangeAgentStateResponse> {
        let key = request_key("ChangeAgentState", &req.request_id, &req)?;
        validate_name("agent_id", &req.agent_id)?;
        let state = requested_state(req.state)?;
        optional_name("mrd", &req.mrd)?;
        optional_name("reason_code", &req.reason_code)?;
        let (outcome, revision) = self
            .run(
                key,
                cmd::ChangeAgentState {
                    agent_id: req.agent_id,
                    verified_hash: None,
                    state,
                    mrd: req.mrd,
                    reason_code: req.reason_code,
                },
            )
            .await?;
        Ok(pb::ChangeAgentStateResponse {
            agent: Some(agent_status_pb(outcome)),
            revision,
        })
    }

    pub(super) async fn conference_task(
        &self,
        req: pb::ConferenceTaskRequest,
    ) -> DomainResult<pb::ConferenceTaskResponse> {
        let key = request_key("ConferenceTask", &req.request_id, &req)?;
        require("task_id", &req.task_id)?;
        validate_name("conference_owner", &req.conference_owner)?;
        validate_name("conference_participant", &req.conference_participant)?;
        optional_name("mrd", &req.mrd)?;
        let (outcome, revision) = self
            .run(
                key,
                cmd::ConferenceTask {
                    task_id: req.task_id,
                    owner_agent_id: req.conference_owner,
                    participant_agent_id: req.conference_participant,
                    mrd: req.mrd,
                },
            )
            .await?;
        Ok(pb::ConferenceTaskResponse {
            task: Some(task_pb(&outcome)),
            revision,
        })
    }

    pub(super) async fn transfer_task(
        &self,
        req: pb::TransferTaskRequest,
    ) -> DomainResult<pb::TransferTaskResponse> {
        let key = request_key("TransferTask", &req.request_id, &req)?;
        require("task_id", &req.task_id)?;
        validate_name("owner_agent_id", &req.owner_agent_id)?;
        validate_name("recipient_agent_id", &req.recipient_agent_id)?;
        let (outcome, revision) = self
            .run(
                key,
                cmd::TransferTask {
                    task_id: req.task_id,
                    owner_agent_id: req.owner_agent_id,
                    recipient_agent_id: req.recipient_agent_id,
                },
            )
            .await?;
        Ok(pb::TransferTaskResponse {
            task: Some(task_pb(&outcome)),
            revision,
        })
    }

    pub(super) async fn change_task_state(
        &self,
        req: pb::ChangeTaskStateRequest,
    ) -> DomainResult<pb::ChangeTaskStateResponse> {
        let key = request_key("ChangeTaskState", &req.request_id, &req)?;
        require("task_id", &req.task_id)?;
        let state = requested_task_state(req.state)?;
        let (outcome, revision) = self
            .run(
                key,
                cmd::ChangeTaskState {
                    task_id: req.task_id,
                    state,
                },
            )
            .await?;
        Ok(pb::ChangeTaskStateResponse {
            task: Some(task_pb(&outcome)),
            revision,
        })
    }

    pub(super) async fn new_task(
        &self,
        req: pb::NewTaskRequest,
    ) -> DomainResult<pb::NewTaskResponse> {
        let key = request_key("NewTask", &req.request_id, &req)?;
        validate_name("mrd", &req.mrd)?;
        optional_name("queue", &req.queue)?;
        optional_name("last_agent_id", &req.last_agent_id)?;
        let priority = match req.priority {
            0 => DEFAULT_PRIORITY,
            p if p <= u32::from(MAX_PRIORITY) => u8::try_from(p).unwrap_or(DEFAULT_PRIORITY),
            _ => {
                return Err(DomainError::invalid(
                    "priority",
                    "must be 1 to 10 (0 means 5)",
                ));
            }
        };
        if !req.conversation_id.is_empty() {
            require("conversation_id", &req.conversation_id)?;
        }
        if req.labels.len() > MAX_LABELS || req.attributes.len() > MAX_LABELS {
            return Err(DomainError::invalid(
                "labels",
                format!("at most {MAX_LABELS} labels and {MAX_LABELS} attributes"),
            ));
        }
        let (outcome, revision) = self
            .run(
                key,
                cmd::NewTask(TaskSpec {
                    task_id: Uuid::new_v4().to_string(),
                    request_id: req.request_id,
                    mrd: req.mrd,
                    queue: req.queue,
                    priority,
                    conversation_id: req.conversation_id,
                    last_agent_id: req.last_agent_id,
                    labels: req.labels,
                    attributes: req.attributes.into_iter().collect(),
                }),
            )
            .await?;
        // A retry gets the task the first call queued, so the id comes from the answer.
        let task = task_pb(&outcome);
        Ok(pb::NewTaskResponse {
            task_id: task.task_id.clone(),
            task: Some(task),
            revision,
        })
    }

    pub(super) async fn accept_task(
        &self,
        req: pb::AcceptTaskRequest,
    ) -> DomainResult<pb::AcceptTaskResponse> {
        let key = request_key("AcceptTask", &req.request_id, &req)?;
        require("task_id", &req.task_id)?;
        validate_name("agent_id", &req.agent_id)?;
        let (outcome, revision) = self
            .run(
                key,
                cmd::AcceptTask {
                    task_id: req.task_id,
                    agent_id: req.agent_id,
                },
            )
            .await?;
        Ok(pb::AcceptTaskResponse {
            task: Some(task_pb(&outcome)),
            revision,
        })
    }

    pub(super) async fn reject_task(
        &self,
        req: pb::RejectTaskRequest,
    ) -> DomainResult<pb::RejectTaskResponse> {
        let key = request_key("RejectTask", &req.request_id, &req)?;
        require("task_id", &req.task_id)?;
        validate_name("agent_id", &req.agent_id)?;
        let (outcome, revision) = self
            .run(
                key,
                cmd::RejectTask {
                    task_id: req.task_id,
                    agent_id: req.agent_id,
                },
            )
            .await?;
        Ok(pb::RejectTaskResponse {
            task: Some(task_pb(&outcome)),
            revision,
        })
    }

    pub(super) async fn get_agent_state(
        &self,
        req: pb::GetAgentStateRequest,
    ) -> DomainResult<pb::GetAgentStateResponse> {
        validate_name("agent_id", &req.agent_id)?;
        let (outcome, revision) = self
            .run(
                None,
                cmd::GetAgentState {
                    agent_id: req.agent_id,
                },
            )
            .await?;
        Ok(pb::GetAgentStateResponse {
            agent: Some(agent_status_pb(outcome)),
            revision,
        })
    }

    pub(super) async fn get_task_state(
        &self,
        req: pb::GetTaskStateRequest,
    ) -> DomainResult<pb::GetTaskStateResponse> {
        require("task_id", &req.task_id)?;
        let (outcome, revision) = self
            .run(
                None,
                cmd::GetTaskState {
                    task_id: req.task_id,
                },
            )
            .await?;
        Ok(pb::GetTaskStateResponse {
            task: Some(task_pb(&outcome)),
            revision,
        })
    }

    async fn list_agent_states(
        &self,
        req: pb::ListAgentStatesRequest,
    ) -> DomainResult<pb::ListAgentStatesResponse> {
        let PageRequest { after, limit } = PageRequest::parse(req.page_size, &req.page_token)?;
        let (page, revision) = self
            .run(None, cmd::ListAgentStates { after, limit })
            .await?;
        Ok(pb::ListAgentStatesResponse {
            next_page_token: next_page_token(&page),
            agents: page.items.into_iter().map(agent_status_pb).collect(),
            revision,
        })
    }

    async fn list_tasks(&self, req: pb::ListTasksRequest) -> DomainResult<pb::ListTasksResponse> {
        let PageRequest { after, limit } = PageRequest::parse(req.page_size, &req.page_token)?;
        let (page, revision) = self.run(None, cmd::ListTasks { after, limit }).await?;
        Ok(pb::ListTasksResponse {
            next_page_token: next_page_token(&page),
            tasks: page.items.iter().map(task_pb).collect(),
            revision,
        })
    }

    async fn get_queue_stats(
        &self,
        req: pb::GetQueueStatsRequest,
    ) -> DomainResult<pb::GetQueueStatsResponse> {
        validate_name("mrd", &req.mrd)?;
        optional_name("queue", &req.queue)?;
        let (stats, revision) = self
            .run(
                None,
                cmd::GetQueueStats {
                    mrd: req.mrd,
                    queue: req.queue,
                },
            )
            .await?;
        Ok(pb::GetQueueStatsResponse {
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
            revision,
        })
    }
}

type RoutingWatch =
    Pin<Box<dyn Stream<Item = Result<pb::WatchRoutingEventsResponse, Status>> + Send>>;

#[tonic::async_trait]
impl RoutingService for Api {
    async fn connect_agent(
        &self,
        r: Request<pb::ConnectAgentRequest>,
    ) -> ApiResult<Response<pb::ConnectAgentResponse>> {
        reply(Api::connect_agent(self, r.into_inner()).await)
    }
    async fn login_agent(
        &self,
        r: Request<pb::LoginAgentRequest>,
    ) -> ApiResult<Response<pb::LoginAgentResponse>> {
        reply(Api::login_agent(self, r.into_inner()).await)
    }
    async fn change_agent_state(
        &self,
        r: Request<pb::ChangeAgentStateRequest>,
    ) -> ApiResult<Response<pb::ChangeAgentStateResponse>> {
        reply(Api::change_agent_state(self, r.into_inner()).await)
    }
    async fn conference_task(
        &self,
        r: Request<pb::ConferenceTaskRequest>,
    ) -> ApiResult<Response<pb::ConferenceTaskResponse>> {
        reply(Api::conference_task(self, r.into_inner()).await)
    }
    async fn transfer_task(
        &self,
        r: Request<pb::TransferTaskRequest>,
    ) -> ApiResult<Response<pb::TransferTaskResponse>> {
        reply(Api::transfer_task(self, r.into_inner()).await)
    }
    async fn change_task_state(
        &self,
        r: Request<pb::ChangeTaskStateRequest>,
    ) -> ApiResult<Response<pb::ChangeTaskStateResponse>> {
        reply(Api::change_task_state(self, r.into_inner()).await)
    }
    async fn new_task(
        &self,
        r: Request<pb::NewTaskRequest>,
    ) -> ApiResult<Response<pb::NewTaskResponse>> {
        reply(Api::new_task(self, r.into_inner()).await)
    }
    async fn accept_task(
        &self,
        r: Request<pb::AcceptTaskRequest>,
    ) -> ApiResult<Response<pb::AcceptTaskResponse>> {
        reply(Api::accept_task(self, r.into_inner()).await)
    }
    async fn reject_task(
        &self,
        r: Request<pb::RejectTaskRequest>,
    ) -> ApiResult<Response<pb::RejectTaskResponse>> {
        reply(Api::reject_task(self, r.into_inner()).await)
    }
    async fn get_agent_state(
        &self,
        r: Request<pb::GetAgentStateRequest>,
    ) -> ApiResult<Response<pb::GetAgentStateResponse>> {
        reply(Api::get_agent_state(self, r.into_inner()).await)
    }
    async fn get_task_state(
        &self,
        r: Request<pb::GetTaskStateRequest>,
    ) -> ApiResult<Response<pb::GetTaskStateResponse>> {
        reply(Api::get_task_state(self, r.into_inner()).await)
    }
    async fn list_agent_states(
        &self,
        r: Request<pb::ListAgentStatesRequest>,
    ) -> ApiResult<Response<pb::ListAgentStatesResponse>> {
        reply(Api::list_agent_states(self, r.into_inner()).await)
    }
    async fn list_tasks(
        &self,
        r: Request<pb::ListTasksRequest>,
    ) -> ApiResult<Response<pb::ListTasksResponse>> {
        reply(Api::list_tasks(self, r.into_inner()).await)
    }
    async fn get_queue_stats(
        &self,
        r: Request<pb::GetQueueStatsRequest>,
    ) -> ApiResult<Response<pb::GetQueueStatsResponse>> {
        reply(Api::get_queue_stats(self, r.into_inner()).await)
    }

    type WatchRoutingEventsStream = RoutingWatch;

    async fn watch_routing_events(
        &self,
        r: Request<pb::WatchRoutingEventsRequest>,
    ) -> ApiResult<Response<RoutingWatch>> {
        let req = r.into_inner();
        let check = || -> DomainResult<Vec<pb::RoutingEventKind>> {
            optional_name("agent_id", &req.agent_id)?;
            optional_name("mrd", &req.mrd)?;
            if !req.task_id.is_empty() {
                require("task_id", &req.task_id)?;
            }
            req.kinds
                .iter()
                .map(|k| match pb::RoutingEventKind::try_from(*k) {
                    Ok(pb::RoutingEventKind::Unspecified) | Err(_) => Err(DomainError::invalid(
                        "kinds",
                        format!("{k} is not an event kind"),
                    )),
                    Ok(kind) => Ok(kind),
                })
                .collect()
        };
        let kinds = check().map_err(Status::from)?;
        let (agent, task, mrd) = (req.agent_id, req.task_id, req.mrd);
        let records = self
            .engine()
            .watch()
            .subscribe(req.start_revision, move |record| {
                let (Some(kind), Some(s)) =
                    (routing_event_kind(&record.event), record.event.subjects())
                else {
                    return false;
                };
                (kinds.is_empty() || kinds.contains(&kind))
                    && (agent.is_empty() || s.agents.contains(&agent.as_str()))
                    && (task.is_empty() || s.task == Some(task.as_str()))
                    && (mrd.is_empty() || s.mrd == mrd)
            });
        use pb::watch_routing_events_response::Frame;
        let stream = watch_frames(
            records,
            |record| {
                routing_event_pb(record).map(|event| pb::WatchRoutingEventsResponse {
                    frame: Some(Frame::Event(event)),
                })
            },
            |progress| pb::WatchRoutingEventsResponse {
                frame: Some(Frame::Progress(progress)),
            },
        );
        Ok(Response::new(Box::pin(end_on_shutdown(
            stream,
            self.lifecycle().clone(),
        ))))
    }
}
