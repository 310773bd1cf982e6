//! `WorkflowService`: a session's view, its watch, and its actions.

use std::pin::Pin;

use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use super::convert::sessions::actions;
use super::{
    Api, ApiResult, caller, end_on_revocation, end_on_shutdown, reply, request_key, token_of,
    watch_frames,
};
use crate::domain::DomainResult;
use crate::domain::Principal;
use crate::domain::commands as cmd;
use crate::pb;
use crate::pb::workflow_service_server::WorkflowService;

impl Api {
    pub(super) async fn get_session_state(
        &self,
        who: &Principal,
        req: pb::GetSessionStateRequest,
    ) -> DomainResult<pb::GetSessionStateResponse> {
        let (view, revision) = self
            .run(who, None, cmd::GetSessionState::try_from(req)?)
            .await?;
        Ok(pb::GetSessionStateResponse {
            actions: actions(&view),
            view_state: view.view_state,
            revision,
            model: view.model,
        })
    }

    pub(super) async fn invoke_action(
        &self,
        who: &Principal,
        req: pb::InvokeActionRequest,
    ) -> DomainResult<pb::InvokeActionResponse> {
        let key = request_key("InvokeAction", &req.request_id, &req)?;
        let (view, revision) = self
            .run(who, key, cmd::InvokeAction::try_from(req)?)
            .await?;
        Ok(pb::InvokeActionResponse {
            actions: actions(&view),
            view_state: view.view_state,
            revision,
        })
    }
}

type WatchStream =
    Pin<Box<dyn Stream<Item = Result<pb::WatchSessionStateResponse, Status>> + Send>>;

#[tonic::async_trait]
impl WorkflowService for Api {
    async fn get_session_state(
        &self,
        request: Request<pb::GetSessionStateRequest>,
    ) -> ApiResult<Response<pb::GetSessionStateResponse>> {
        reply(Api::get_session_state(self, &caller(&request)?, request.into_inner()).await)
    }

    type WatchSessionStateStream = WatchStream;

    async fn watch_session_state(
        &self,
        request: Request<pb::WatchSessionStateRequest>,
    ) -> ApiResult<Response<WatchStream>> {
        let who = caller(&request)?;
        let token = token_of(&request);
        let req = request.into_inner();
        // The session must exist now, and be the caller's to watch; its past events replay
        // from the journal.
        let session = cmd::GetSessionState::try_from(&req).map_err(Status::from)?;
        let resource_id = session.resource_id.clone();
        self.engine().execute(&who, session).await?;
        let records = self
            .engine()
            .watch()
            .subscribe(&who.actor, req.start_revision, move |record| {
                record.event.session_target() == Some(resource_id.as_str())
            })
            .map_err(Status::from)?;
        use pb::watch_session_state_response::Frame;
        let stream = watch_frames(
            records,
            |record| {
                pb::SessionStateEvent::from_record(record).map(|event| {
                    pb::WatchSessionStateResponse {
                        frame: Some(Frame::Event(event)),
                    }
                })
            },
            |progress| pb::WatchSessionStateResponse {
                frame: Some(Frame::Progress(progress)),
            },
        );
        let stream = end_on_revocation(stream, self.engine().standings().clone(), token);
        Ok(Response::new(Box::pin(end_on_shutdown(
            stream,
            self.lifecycle().clone(),
        ))))
    }

    async fn invoke_action(
        &self,
        request: Request<pb::InvokeActionRequest>,
    ) -> ApiResult<Response<pb::InvokeActionResponse>> {
        reply(Api::invoke_action(self, &caller(&request)?, request.into_inner()).await)
    }
}
