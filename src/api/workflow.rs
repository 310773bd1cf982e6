use std::pin::Pin;

use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use super::{Api, ApiResult, end_on_shutdown, reply, request_key, watch_frames};
use crate::domain::commands as cmd;
use crate::domain::ids::require;
use crate::domain::{DomainResult, Event, Record};
use crate::pb;
use crate::pb::workflow_service_server::WorkflowService;

fn actions_pb(actions: &[(String, bool)]) -> Vec<pb::SessionAction> {
    actions
        .iter()
        .map(|(name, enabled)| pb::SessionAction {
            name: name.clone(),
            enabled: *enabled,
        })
        .collect()
}

/// The desktop-facing form of a session event; `None` for events that are not about a session
/// view (such as the preparation itself).
pub(super) fn session_event_pb(record: &Record) -> Option<pb::SessionStateEvent> {
    let (target, name, view_state, actions): (&str, &str, &str, &[(String, bool)]) =
        match &record.event {
            Event::SessionStateUpdated {
                resource_id,
                view_state,
                actions,
            } => (resource_id, "state.updated", view_state, actions),
            Event::SessionTakenOver {
                resource_id,
                view_state,
                ..
            } => (resource_id, "session.taken_over", view_state, &[]),
            Event::SessionEnded { resource_id } => (resource_id, "session.ended", "", &[]),
            _ => return None,
        };
    Some(pb::SessionStateEvent {
        revision: record.revision,
        target: target.to_owned(),
        name: name.to_owned(),
        view_state: view_state.to_owned(),
        actions: actions
            .iter()
            .map(|(name, enabled)| pb::ActionChange {
                name: name.clone(),
                r#type: if *enabled {
                    pb::ActionChangeType::Enable
                } else {
                    pb::ActionChangeType::Disable
                }
                .into(),
            })
            .collect(),
    })
}

impl Api {
    pub(super) async fn get_session_state(
        &self,
        req: pb::GetSessionStateRequest,
    ) -> DomainResult<pb::GetSessionStateResponse> {
        let resource_id = require("resource_id", &req.resource_id)?.to_owned();
        let committed = self
            .engine()
            .execute(cmd::GetSessionState { resource_id })
            .await?;
        let view = committed.answer;
        Ok(pb::GetSessionStateResponse {
            actions: actions_pb(&view.actions),
            view_state: view.view_state,
            revision: committed.revision,
            model: view.model,
        })
    }

    pub(super) async fn invoke_action(
        &self,
        req: pb::InvokeActionRequest,
    ) -> DomainResult<pb::InvokeActionResponse> {
        let key = request_key("InvokeAction", &req.request_id, &req)?;
        let resource_id = require("resource_id", &req.resource_id)?.to_owned();
        let action = require("action", &req.action)?.to_owned();
        let committed = self
            .execute_keyed(
                key,
                cmd::InvokeAction {
                    resource_id,
                    action,
                },
            )
            .await?;
        let view = committed.answer;
        Ok(pb::InvokeActionResponse {
            actions: actions_pb(&view.actions),
            view_state: view.view_state,
            revision: committed.revision,
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
        reply(Api::get_session_state(self, request.into_inner()).await)
    }

    type WatchSessionStateStream = WatchStream;

    async fn watch_session_state(
        &self,
        request: Request<pb::WatchSessionStateRequest>,
    ) -> ApiResult<Response<WatchStream>> {
        let req = request.into_inner();
        let resource_id = require("resource_id", &req.resource_id)
            .map_err(Status::from)?
            .to_owned();
        // The session must exist now; its past events replay from the journal.
        self.engine()
            .execute(cmd::GetSessionState {
                resource_id: resource_id.clone(),
            })
            .await?;
        let records = self
            .engine()
            .watch()
            .subscribe(req.start_revision, move |record| {
                record.event.session_target() == Some(resource_id.as_str())
            });
        use pb::watch_session_state_response::Frame;
        let stream = watch_frames(
            records,
            |record| {
                session_event_pb(record).map(|event| pb::WatchSessionStateResponse {
                    frame: Some(Frame::Event(event)),
                })
            },
            |progress| pb::WatchSessionStateResponse {
                frame: Some(Frame::Progress(progress)),
            },
        );
        Ok(Response::new(Box::pin(end_on_shutdown(
            stream,
            self.lifecycle().clone(),
        ))))
    }

    async fn invoke_action(
        &self,
        request: Request<pb::InvokeActionRequest>,
    ) -> ApiResult<Response<pb::InvokeActionResponse>> {
        reply(Api::invoke_action(self, request.into_inner()).await)
    }
}
