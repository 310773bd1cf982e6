//! `RoutingService`: agents' presence per MRD, tasks, and the routing watch. (The routing
//! configuration, on `AdminService`, is in `routing_admin`.)

use std::net::SocketAddr;
use std::pin::Pin;

use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use super::convert;
use super::convert::agents::WithPassword;
use super::convert::events::RoutingFilter;
use super::paging::{PageRequest, next_page_token};
use super::{
    Api, ApiResult, caller, end_on_revocation, end_on_shutdown, reply, request_key, token_of,
    watch_frames,
};
use crate::domain::commands as cmd;
use crate::domain::{DomainError, DomainResult, Millis, Page, Principal, Revision, access};
use crate::pb;
use crate::pb::routing_service_server::RoutingService;
use crate::store::HistoryQuery;

impl Api {
    pub(super) async fn connect_agent(
        &self,
        who: &Principal,
        req: pb::ConnectAgentRequest,
        peer: Option<SocketAddr>,
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
        let command = self
            .verified(WithPassword::<cmd::ConnectAgent>::try_from(req)?, peer)
            .await?;
        let (_, revision) = self.run(who, key, command).await?;
        Ok(pb::ConnectAgentResponse { revision })
    }

    pub(super) async fn login_agent(
        &self,
        who: &Principal,
        req: pb::LoginAgentRequest,
        peer: Option<SocketAddr>,
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
        let command = self
            .verified(WithPassword::<cmd::ChangeAgentState>::try_from(req)?, peer)
            .await?;
        let (agent, revision) = self.run(who, key, command).await?;
        Ok(pb::LoginAgentResponse {
            agent: Some(agent.into()),
            revision,
        })
    }

    pub(super) async fn change_agent_state(
        &self,
        who: &Principal,
        req: pb::ChangeAgentStateRequest,
    ) -> DomainResult<pb::ChangeAgentStateResponse> {
        let key = request_key("ChangeAgentState", &req.request_id, &req)?;
        let (agent, revision) = self
            .run(who, key, cmd::ChangeAgentState::try_from(req)?)
            .await?;
        Ok(pb::ChangeAgentStateResponse {
            agent: Some(agent.into()),
            revision,
        })
    }

    async fn requeue_task(
        &self,
        who: &Principal,
        req: pb::RequeueTaskRequest,
    ) -> DomainResult<pb::RequeueTaskResponse> {
        let key = request_key("RequeueTask", &req.request_id, &req)?;
        let (task, revision) = self.run(who, key, cmd::RequeueTask::try_from(req)?).await?;
        Ok(pb::RequeueTaskResponse {
            task: Some(task.into()),
            revision,
        })
    }

    async fn set_agent_next_state(
        &self,
        who: &Principal,
        req: pb::SetAgentNextStateRequest,
    ) -> DomainResult<pb::SetAgentNextStateResponse> {
        let key = request_key("SetAgentNextState", &req.request_id, &req)?;
        let (agent, revision) = self
            .run(who, key, cmd::SetAgentNextState::try_from(req)?)
            .await?;
        Ok(pb::SetAgentNextStateResponse {
            agent: Some(agent.into()),
            revision,
        })
    }

    pub(super) async fn conference_task(
        &self,
        who: &Principal,
        req: pb::ConferenceTaskRequest,
    ) -> DomainResult<pb::ConferenceTaskResponse> {
        let key = request_key("ConferenceTask", &req.request_id, &req)?;
        let (task, revision) = self
            .run(who, key, cmd::ConferenceTask::try_from(req)?)
            .await?;
        Ok(pb::ConferenceTaskResponse {
            task: Some(task.into()),
            revision,
        })
    }

    pub(super) async fn transfer_task(
        &self,
        who: &Principal,
        req: pb::TransferTaskRequest,
    ) -> DomainResult<pb::TransferTaskResponse> {
        let key = request_key("TransferTask", &req.request_id, &req)?;
        let (task, revision) = self
            .run(who, key, cmd::TransferTask::try_from(req)?)
            .await?;
        Ok(pb::TransferTaskResponse {
            task: Some(task.into()),
            revision,
        })
    }

    pub(super) async fn change_task_state(
        &self,
        who: &Principal,
        req: pb::ChangeTaskStateRequest,
    ) -> DomainResult<pb::ChangeTaskStateResponse> {
        let key = request_key("ChangeTaskState", &req.request_id, &req)?;
        let (task, revision) = self
            .run(who, key, cmd::ChangeTaskState::try_from(req)?)
            .await?;
        Ok(pb::ChangeTaskStateResponse {
            task: Some(task.into()),
            revision,
        })
    }

    pub(super) async fn new_task(
        &self,
        who: &Principal,
        req: pb::NewTaskRequest,
    ) -> DomainResult<pb::NewTaskResponse> {
        let key = request_key("NewTask", &req.request_id, &req)?;
        let (task, revision) = self.run(who, key, cmd::NewTask::try_from(req)?).await?;
        // A retry gets the task the first call queued, so the id comes from the answer.
        Ok(pb::NewTaskResponse {
            task_id: task.spec.task_id.clone(),
            task: Some(task.into()),
            revision,
        })
    }

    pub(super) async fn accept_task(
        &self,
        who: &Principal,
        req: pb::AcceptTaskRequest,
    ) -> DomainResult<pb::AcceptTaskResponse> {
        let key = request_key("AcceptTask", &req.request_id, &req)?;
        let (task, revision) = self.run(who, key, cmd::AcceptTask::try_from(req)?).await?;
        Ok(pb::AcceptTaskResponse {
            task: Some(task.into()),
            revision,
        })
    }

    pub(super) async fn reject_task(
        &self,
        who: &Principal,
        req: pb::RejectTaskRequest,
    ) -> DomainResult<pb::RejectTaskResponse> {
        let key = request_key("RejectTask", &req.request_id, &req)?;
        let (task, revision) = self.run(who, key, cmd::RejectTask::try_from(req)?).await?;
        Ok(pb::RejectTaskResponse {
            task: Some(task.into()),
            revision,
        })
    }

    pub(super) async fn get_agent_state(
        &self,
        who: &Principal,
        req: pb::GetAgentStateRequest,
    ) -> DomainResult<pb::GetAgentStateResponse> {
        let (agent, revision) = self
            .run(who, None, cmd::GetAgentState::try_from(req)?)
            .await?;
        Ok(pb::GetAgentStateResponse {
            agent: Some(agent.into()),
            revision,
        })
    }

    pub(super) async fn get_task_state(
        &self,
        who: &Principal,
        req: pb::GetTaskStateRequest,
    ) -> DomainResult<pb::GetTaskStateResponse> {
        let command = cmd::GetTaskState::try_from(req)?;
        let task_id = command.task_id.clone();
        let ((task, place), revision) = match self.run(who, None, command).await {
            Err(DomainError::NotFound { kind: "task", .. }) => {
                // Closed past the retention: the history has it, under the same rule.
                let Some(closed) = self.engine().history().task(task_id.clone()).await? else {
                    return Err(DomainError::not_found("task", &task_id));
                };
                access::read_task(who, &closed.task)?;
                ((closed.task, None), closed.revision)
            }
            answered => answered?,
        };
        let mut task = pb::TaskStatus::from(task);
        if let Some(place) = place {
            task.position = place.position;
            task.estimated_wait_ms = place.estimated_wait_ms.unwrap_or(0);
        }
        Ok(pb::GetTaskStateResponse {
            task: Some(task),
            revision,
        })
    }

    async fn list_agent_states(
        &self,
        who: &Principal,
        req: pb::ListAgentStatesRequest,
    ) -> DomainResult<pb::ListAgentStatesResponse> {
        let PageRequest { after, limit } = PageRequest::parse(req.page_size, &req.page_token)?;
        let (page, revision) = self
            .run(who, None, cmd::ListAgentStates { after, limit })
            .await?;
        Ok(pb::ListAgentStatesResponse {
            next_page_token: next_page_token(&page),
            agents: page.items.into_iter().map(pb::AgentStatus::from).collect(),
            revision,
        })
    }

    async fn list_tasks(
        &self,
        who: &Principal,
        req: pb::ListTasksRequest,
    ) -> DomainResult<pb::ListTasksResponse> {
        let (after, limit) = match TaskListing::parse(&req)? {
            TaskListing::Live { after, limit } => (after, limit),
            TaskListing::Closed(query) => return self.list_closed_tasks(query).await,
        };
        let (page, revision) = self.run(who, None, cmd::ListTasks { after, limit }).await?;
        Ok(pb::ListTasksResponse {
            next_page_token: next_page_token(&page),
            tasks: page.items.iter().map(pb::TaskStatus::from).collect(),
            revision,
        })
    }

    /// A page of the history: tasks closed in the request's range, in closing order. The page
    /// key is the closing revision; the answer's revision is the last one committed.
    async fn list_closed_tasks(&self, query: HistoryQuery) -> DomainResult<pb::ListTasksResponse> {
        let limit = query.limit;
        let mut closed = self
            .engine()
            .history()
            .page(HistoryQuery {
                limit: limit + 1,
                ..query
            })
            .await?;
        // One row past the page says there is a next one, which starts after this page's last.
        let more = closed.len() > limit;
        closed.truncate(limit);
        let page = Page {
            next_after: more
                .then(|| closed.last().map(|c| c.revision.to_string()))
                .flatten(),
            items: closed,
        };
        Ok(pb::ListTasksResponse {
            next_page_token: next_page_token(&page),
            tasks: page
                .items
                .iter()
                .map(|c| pb::TaskStatus::from(&c.task))
                .collect(),
            revision: self.engine().watch().committed(),
        })
    }

    async fn get_queue_stats(
        &self,
        who: &Principal,
        req: pb::GetQueueStatsRequest,
    ) -> DomainResult<pb::GetQueueStatsResponse> {
        let (stats, revision) = self
            .run(who, None, cmd::GetQueueStats::try_from(req)?)
            .await?;
        Ok(pb::GetQueueStatsResponse {
            revision,
            ..stats.into()
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
        let peer = r.remote_addr();
        reply(Api::connect_agent(self, &caller(&r)?, r.into_inner(), peer).await)
    }
    async fn login_agent(
        &self,
        r: Request<pb::LoginAgentRequest>,
    ) -> ApiResult<Response<pb::LoginAgentResponse>> {
        let peer = r.remote_addr();
        reply(Api::login_agent(self, &caller(&r)?, r.into_inner(), peer).await)
    }
    async fn change_agent_state(
        &self,
        r: Request<pb::ChangeAgentStateRequest>,
    ) -> ApiResult<Response<pb::ChangeAgentStateResponse>> {
        reply(Api::change_agent_state(self, &caller(&r)?, r.into_inner()).await)
    }
    async fn conference_task(
        &self,
        r: Request<pb::ConferenceTaskRequest>,
    ) -> ApiResult<Response<pb::ConferenceTaskResponse>> {
        reply(Api::conference_task(self, &caller(&r)?, r.into_inner()).await)
    }
    async fn transfer_task(
        &self,
        r: Request<pb::TransferTaskRequest>,
    ) -> ApiResult<Response<pb::TransferTaskResponse>> {
        reply(Api::transfer_task(self, &caller(&r)?, r.into_inner()).await)
    }
    async fn change_task_state(
        &self,
        r: Request<pb::ChangeTaskStateRequest>,
    ) -> ApiResult<Response<pb::ChangeTaskStateResponse>> {
        reply(Api::change_task_state(self, &caller(&r)?, r.into_inner()).await)
    }
    async fn new_task(
        &self,
        r: Request<pb::NewTaskRequest>,
    ) -> ApiResult<Response<pb::NewTaskResponse>> {
        reply(Api::new_task(self, &caller(&r)?, r.into_inner()).await)
    }
    async fn accept_task(
        &self,
        r: Request<pb::AcceptTaskRequest>,
    ) -> ApiResult<Response<pb::AcceptTaskResponse>> {
        reply(Api::accept_task(self, &caller(&r)?, r.into_inner()).await)
    }
    async fn reject_task(
        &self,
        r: Request<pb::RejectTaskRequest>,
    ) -> ApiResult<Response<pb::RejectTaskResponse>> {
        reply(Api::reject_task(self, &caller(&r)?, r.into_inner()).await)
    }
    async fn get_agent_state(
        &self,
        r: Request<pb::GetAgentStateRequest>,
    ) -> ApiResult<Response<pb::GetAgentStateResponse>> {
        reply(Api::get_agent_state(self, &caller(&r)?, r.into_inner()).await)
    }
    async fn get_task_state(
        &self,
        r: Request<pb::GetTaskStateRequest>,
    ) -> ApiResult<Response<pb::GetTaskStateResponse>> {
        reply(Api::get_task_state(self, &caller(&r)?, r.into_inner()).await)
    }
    async fn list_agent_states(
        &self,
        r: Request<pb::ListAgentStatesRequest>,
    ) -> ApiResult<Response<pb::ListAgentStatesResponse>> {
        reply(Api::list_agent_states(self, &caller(&r)?, r.into_inner()).await)
    }
    async fn list_tasks(
        &self,
        r: Request<pb::ListTasksRequest>,
    ) -> ApiResult<Response<pb::ListTasksResponse>> {
        reply(Api::list_tasks(self, &caller(&r)?, r.into_inner()).await)
    }
    async fn get_queue_stats(
        &self,
        r: Request<pb::GetQueueStatsRequest>,
    ) -> ApiResult<Response<pb::GetQueueStatsResponse>> {
        reply(Api::get_queue_stats(self, &caller(&r)?, r.into_inner()).await)
    }

    async fn requeue_task(
        &self,
        r: Request<pb::RequeueTaskRequest>,
    ) -> ApiResult<Response<pb::RequeueTaskResponse>> {
        reply(Api::requeue_task(self, &caller(&r)?, r.into_inner()).await)
    }
    async fn set_agent_next_state(
        &self,
        r: Request<pb::SetAgentNextStateRequest>,
    ) -> ApiResult<Response<pb::SetAgentNextStateResponse>> {
        reply(Api::set_agent_next_state(self, &caller(&r)?, r.into_inner()).await)
    }

    type WatchRoutingEventsStream = RoutingWatch;

    async fn watch_routing_events(
        &self,
        r: Request<pb::WatchRoutingEventsRequest>,
    ) -> ApiResult<Response<RoutingWatch>> {
        let who = caller(&r)?;
        let token = token_of(&r);
        let mut req = r.into_inner();
        // An agent's watch is narrowed to its own events.
        req.agent_id = access::watched_agent(&who, &req.agent_id).map_err(Status::from)?;
        let filter = RoutingFilter::try_from(&req).map_err(Status::from)?;
        let records = self
            .engine()
            .watch()
            .subscribe(&who.actor, req.start_revision, move |record| {
                filter.matches(&record.event)
            })
            .map_err(Status::from)?;
        use pb::watch_routing_events_response::Frame;
        let stream = watch_frames(
            records,
            |record| {
                pb::RoutingEvent::from_record(record).map(|event| pb::WatchRoutingEventsResponse {
                    frame: Some(Frame::Event(event)),
                })
            },
            |progress| pb::WatchRoutingEventsResponse {
                frame: Some(Frame::Progress(progress)),
            },
        );
        let stream = end_on_revocation(stream, self.engine().standings().clone(), token);
        Ok(Response::new(Box::pin(end_on_shutdown(
            stream,
            self.lifecycle().clone(),
        ))))
    }
}

/// What a `ListTasks` asks for: a page of the tasks in memory, or, with a close-time bound
/// set, a page of the history.
pub(super) enum TaskListing {
    Live { after: Option<String>, limit: usize },
    Closed(HistoryQuery),
}

impl TaskListing {
    pub(super) fn parse(req: &pb::ListTasksRequest) -> DomainResult<Self> {
        let PageRequest { after, limit } = PageRequest::parse(req.page_size, &req.page_token)?;
        if req.closed_from.is_none() && req.closed_until.is_none() {
            return Ok(Self::Live { after, limit });
        }
        let bound = |field, at: &Option<prost_types::Timestamp>, unset| {
            at.as_ref()
                .map_or(Ok(unset), |at| convert::millis(field, at))
        };
        let closed_from = bound("closed_from", &req.closed_from, 0)?;
        let closed_until = bound("closed_until", &req.closed_until, Millis::MAX)?;
        if closed_until <= closed_from {
            return Err(DomainError::invalid(
                "closed_until",
                "must be after closed_from",
            ));
        }
        let after = match after {
            None => 0,
            Some(key) => key.parse::<Revision>().map_err(|_| {
                DomainError::invalid(
                    "page_token",
                    "is not a token of a history listing; pass the next_page_token of the \
                     previous page with the same closed_from and closed_until",
                )
            })?,
        };
        Ok(Self::Closed(HistoryQuery {
            closed_from,
            closed_until,
            after,
            limit,
        }))
    }
}
