//! `CoreService.Connect`: a desktop's one two-way stream. The stream is its client's lease:
//! it registers a client on open (or resumes one named in its metadata), and when it ends the
//! client is unregistered (the desktop sent a `Goodbye` frame) or starts its grace period
//! (every other end: the request side closed without a goodbye, the call was cancelled or
//! reset, the connection broke, a frame did not decode, or the server is stopping). Only a
//! goodbye frame unregisters: a half-close and a cancel look alike on the server (tonic reads
//! an RST_STREAM with CANCEL or NO_ERROR as the end of the requests), so neither can mean a
//! desktop is done. Requests are answered in the order sent; the events of everything the
//! client has bound are forwarded as they commit, always ahead of the answer of the request
//! that caused them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use tracing::debug;

use super::convert::clients::{client_name_header, new_client_id};
use super::{Api, ApiResult, stopping_status};
use crate::domain::bounds::{MAX_REQUEST_ID_CHARS, check_required_text};
use crate::domain::commands as cmd;
use crate::domain::presence::StreamId;
use crate::domain::{ClientId, DomainError, DomainResult, Principal, Record};
use crate::pb::connect_request::Request as Req;
use crate::pb::connect_response::Frame;
use crate::pb::core_service_server::CoreService;
use crate::pb::{self, ClientEvent, ConnectResponse};

/// Events queued for one desktop before it counts as too slow and is disconnected.
const EVENT_BUFFER: usize = 1024;
/// Frames queued towards the network for one desktop.
const OUT_BUFFER: usize = 64;
/// Request metadata a desktop may use to name itself in logs.
const CLIENT_NAME_HEADER: &str = "switchboard-client-name";
/// Request metadata naming a client to resume after a broken connection.
const CLIENT_ID_HEADER: &str = "switchboard-client-id";

/// Tells one stream of a client from the next, so a late close of an old stream does not end
/// the lease of its replacement.
static NEXT_STREAM: AtomicU64 = AtomicU64::new(1);

/// A new desktop stream's id (`Connect` and `Feed` streams alike).
pub(super) fn next_stream_id() -> StreamId {
    NEXT_STREAM.fetch_add(1, Ordering::Relaxed)
}

/// Frames are boxed in the channel: a channel allocates its slots 32 at a time, and an
/// unboxed frame (the largest answer of any request) made every idle desktop's buffer kilobytes.
type Out = mpsc::Sender<Box<Result<ConnectResponse, Status>>>;

/// Who holds a stream: its principal (with its token's credential version, to end the stream
/// when they are revoked), its client, the caller's address and the stream's id.
struct Holder {
    who: Principal,
    token: Option<(crate::domain::Actor, u64)>,
    client_id: ClientId,
    peer: Option<SocketAddr>,
    stream: StreamId,
}

/// Why a `Connect` stream ended, which decides what happens to its client.
enum Ending {
    /// The desktop sent a goodbye frame: it is done, and its client goes now.
    Goodbye,
    /// The call was cancelled or reset, the connection broke, or the desktop stopped
    /// reading: the grace period starts.
    Vanished,
    /// The server ends the stream with this status (and the grace period starts): the
    /// requests ended without a goodbye, a frame did not decode, or the server is stopping.
    Ended(Status),
}

impl Ending {
    /// What became of the client, for the log.
    fn outcome(&self) -> &'static str {
        match self {
            Ending::Goodbye => "unregistered",
            Ending::Vanished | Ending::Ended(_) => "grace period",
        }
    }
}

impl Api {
    pub(super) async fn open_connect_stream(
        &self,
        request: Request<Streaming<pb::ConnectRequest>>,
    ) -> ApiResult<Response<<Api as CoreService>::ConnectStream>> {
        self.ensure_accepting()?;
        let who = &super::caller(&request)?;
        let token = super::token_of(&request);
        let metadata = request.metadata();
        // Logins on the stream are throttled per this address too.
        let peer = request.remote_addr();
        let fallback = peer.map_or_else(|| "connect stream".to_owned(), |a| format!("connect {a}"));
        let name = client_name_header(
            CLIENT_NAME_HEADER,
            metadata.get(CLIENT_NAME_HEADER),
            &fallback,
        )?;
        let resume = match metadata.get(CLIENT_ID_HEADER) {
            None => None,
            Some(raw) => Some(ClientId::parse(
                CLIENT_ID_HEADER,
                raw.to_str().unwrap_or_default(),
            )?),
        };

        let client_id = match resume {
            Some(client_id) => client_id,
            None => {
                let command = cmd::RegisterClient {
                    client_id: new_client_id(),
                    client_name: name,
                };
                self.engine().execute(who, command).await?.answer
            }
        };
        let stream = next_stream_id();
        let (event_tx, event_rx) = mpsc::channel(EVENT_BUFFER);
        let attached = self
            .engine()
            .attach_stream(who, client_id, stream, event_tx)
            .await
            .map_err(|e| match e {
                DomainError::NotFound { .. } => Status::not_found(format!(
                    "client {client_id} is not registered (its grace period may have passed); \
                     connect without {CLIENT_ID_HEADER} to register a new one"
                )),
                other => other.into(),
            })?;
        let (out, out_rx) = mpsc::channel(OUT_BUFFER);
        let greeting = frame(
            String::new(),
            Frame::Connected(pb::Connected {
                client_id: client_id.to_string(),
                revision: attached.revision,
                resumed: resume.is_some(),
            }),
        );
        // The channel is new and empty, so the greeting always fits.
        let _ = out.try_send(Box::new(Ok(greeting)));
        debug!(%client_id, stream, resumed = resume.is_some(), "connect stream opened");
        let holder = Holder {
            who: who.clone(),
            token,
            client_id,
            peer,
            stream,
        };
        tokio::spawn(
            self.clone()
                .serve_connection(holder, request.into_inner(), event_rx, out),
        );
        Ok(Response::new(Box::pin(
            ReceiverStream::new(out_rx).map(|frame| *frame),
        )))
    }

    async fn serve_connection(
        self,
        holder: Holder,
        mut inbound: Streaming<pb::ConnectRequest>,
        mut events: mpsc::Receiver<Arc<Record>>,
        out: Out,
    ) {
        let Holder {
            who,
            token,
            client_id,
            peer,
            stream,
        } = holder;
        let lifecycle = self.lifecycle().clone();
        let stopping = lifecycle.stopping();
        tokio::pin!(stopping);
        let revoked = super::revoked(self.engine().standings().clone(), token);
        tokio::pin!(revoked);
        let ending = loop {
            tokio::select! {
                biased;
                () = &mut stopping => break Ending::Ended(stopping_status()),
                () = &mut revoked => break Ending::Ended(super::revoked_status()),
                () = out.closed() => break Ending::Vanished,
                event = events.recv() => match event {
                    Some(record) => {
                        if !send_event(&out, &record).await {
                            break Ending::Vanished;
                        }
                    }
                    None => break Ending::Ended(Status::aborted(
                        "the server disconnected this client: it was unregistered, read its \
                         events too slowly, or another stream of its principal took it over; \
                         reconnect",
                    )),
                },
                inbound = next_request(&mut inbound) => match inbound {
                    Inbound::Request(request) => {
                        // Boxed: answering can await any request's handler, and inline that
                        // state would size every idle desktop's task for the largest one.
                        let answered =
                            Box::pin(self.answer_in_order(&who, client_id, peer, *request, &mut events, &out));
                        if !answered.await {
                            break Ending::Vanished;
                        }
                    }
                    Inbound::Goodbye => break Ending::Goodbye,
                    Inbound::Ended => break Ending::Ended(Status::cancelled(format!(
                        "the request side ended without a Goodbye frame: client {client_id} \
                         stays registered for its grace period; resume it with \
                         {CLIENT_ID_HEADER}, or end with Goodbye to unregister it"
                    ))),
                    Inbound::Malformed(detail) => {
                        break Ending::Ended(Status::invalid_argument(format!(
                            "a frame could not be decoded as a ConnectRequest ({detail}); \
                             client {client_id} stays registered for its grace period"
                        )));
                    }
                    Inbound::TooLarge(status) => break Ending::Ended(status),
                    Inbound::Broken => break Ending::Vanished,
                },
            }
        };
        // A desktop that said goodbye is gone now; one that vanished (or whose server is
        // stopping) may come back within its grace period.
        let engine = self.engine();
        // Boxed like answering: a command's future is large, and is needed only at the end.
        let closed = match ending {
            Ending::Goodbye => {
                Box::pin(engine.execute(&who, cmd::UnregisterClient { client_id })).await
            }
            Ending::Vanished | Ending::Ended(_) => {
                Box::pin(engine.detach_stream(client_id, stream)).await
            }
        };
        let failed = match closed {
            Ok(_) | Err(DomainError::NotFound { .. }) => None,
            Err(e) => {
                debug!(%client_id, error = %e, "closing a connect stream failed");
                Some(e)
            }
        };
        debug!(%client_id, stream, client = ending.outcome(), "connect stream closed");
        let status = match ending {
            Ending::Ended(status) => Some(status),
            // The stream ends OK only once the goodbye took: a failed one must not look done.
            Ending::Goodbye => failed.map(Status::from),
            Ending::Vanished => None,
        };
        if let Some(status) = status {
            let _ = out.send(Box::new(Err(status))).await;
        }
    }

    /// Answers one request after the events committed with or before its answer; false when
    /// the desktop is gone.
    async fn answer_in_order(
        &self,
        who: &Principal,
        client_id: ClientId,
        peer: Option<SocketAddr>,
        request: pb::ConnectRequest,
        events: &mut mpsc::Receiver<Arc<Record>>,
        out: &Out,
    ) -> bool {
        let answer = self.answer(who, client_id, peer, request).await;
        while let Ok(record) = events.try_recv() {
            if !send_event(out, &record).await {
                return false;
            }
        }
        out.send(Box::new(Ok(answer))).await.is_ok()
    }

    /// Answers one frame; every failure becomes an error frame with the request's id.
    async fn answer(
        &self,
        who: &Principal,
        client_id: ClientId,
        peer: Option<SocketAddr>,
        request: pb::ConnectRequest,
    ) -> ConnectResponse {
        let request_id = request.request_id;
        // A frame is the RPC it carries: the same policy row decides whether the caller may.
        let allowed = match &request.request {
            Some(inner) => crate::auth::authorize(frame_method(inner), who),
            None => Ok(()),
        };
        let result = match (
            allowed,
            check_required_text("request_id", &request_id, MAX_REQUEST_ID_CHARS),
        ) {
            (Err(denied), _) => Err(denied),
            (Ok(()), Ok(_)) => self
                .dispatch(who, client_id, peer, request.request)
                .await
                .map_err(Status::from),
            (Ok(()), Err(e)) => Err(Status::from(e)),
        };
        let content = result.unwrap_or_else(|status| {
            Frame::Error(pb::RequestError {
                code: status.code() as i32,
                message: status.message().to_owned(),
            })
        });
        frame(request_id, content)
    }

    async fn dispatch(
        &self,
        who: &Principal,
        client_id: ClientId,
        peer: Option<SocketAddr>,
        request: Option<Req>,
    ) -> DomainResult<Frame> {
        let me = Some(client_id);
        let request = request.ok_or_else(|| DomainError::invalid("request", "must be set"))?;
        Ok(match request {
            // Taken by `next_request`, which ends the stream; never answered.
            Req::Goodbye(_) => {
                return Err(DomainError::invalid("request", "goodbye ends the stream"));
            }
            Req::GetServerStatus(_) => Frame::GetServerStatus(self.get_server_status().await?),
            Req::ListServices(_) => Frame::ListServices(self.list_services().await?),
            Req::BindService(r) => Frame::BindService(self.bind_service(who, r, me).await?),
            Req::UnbindService(r) => Frame::UnbindService(self.unbind_service(who, r, me).await?),
            Req::BindResource(r) => Frame::BindResource(self.bind_resource(who, r, me).await?),
            Req::UnbindResource(r) => {
                Frame::UnbindResource(self.unbind_resource(who, r, me).await?)
            }
            Req::GetCapabilities(r) => Frame::GetCapabilities(self.get_capabilities(who, r).await?),
            Req::PrepareSession(r) => {
                Frame::PrepareSession(self.prepare_session(who, r, peer).await?)
            }
            Req::EndSession(r) => Frame::EndSession(self.end_session(who, r).await?),
            Req::GetSessionState(r) => {
                Frame::GetSessionState(self.get_session_state(who, r).await?)
            }
            Req::InvokeAction(r) => Frame::InvokeAction(self.invoke_action(who, r).await?),
            Req::UpsertAgent(r) => Frame::UpsertAgent(self.upsert_agent(who, r).await?),
            Req::GetAgent(r) => Frame::GetAgent(self.get_agent(who, r).await?),
            Req::ListAgents(r) => Frame::ListAgents(self.list_agents(who, r).await?),
            Req::DeleteAgent(r) => Frame::DeleteAgent(self.delete_agent(who, r).await?),
            Req::ConnectAgent(r) => Frame::ConnectAgent(self.connect_agent(who, r, peer).await?),
            Req::LoginAgent(r) => Frame::LoginAgent(self.login_agent(who, r, peer).await?),
            Req::ChangeAgentState(r) => {
                Frame::ChangeAgentState(self.change_agent_state(who, r).await?)
            }
            Req::ConferenceTask(r) => Frame::ConferenceTask(self.conference_task(who, r).await?),
            Req::TransferTask(r) => Frame::TransferTask(self.transfer_task(who, r).await?),
            Req::ChangeTaskState(r) => {
                Frame::ChangeTaskState(self.change_task_state(who, r).await?)
            }
            Req::NewTask(r) => Frame::NewTask(self.new_task(who, r).await?),
            Req::AcceptTask(r) => Frame::AcceptTask(self.accept_task(who, r).await?),
            Req::RejectTask(r) => Frame::RejectTask(self.reject_task(who, r).await?),
            Req::GetAgentState(r) => Frame::GetAgentState(self.get_agent_state(who, r).await?),
            Req::GetTaskState(r) => Frame::GetTaskState(self.get_task_state(who, r).await?),
        })
    }
}

/// The RPC a `Connect` frame stands for, as the policy table names it.
fn frame_method(request: &Req) -> &'static str {
    match request {
        Req::Goodbye(_) => "/switchboard.v1.CoreService/Connect",
        Req::GetServerStatus(_) => "/switchboard.v1.CoreService/GetServerStatus",
        Req::ListServices(_) => "/switchboard.v1.CoreService/ListServices",
        Req::BindService(_) => "/switchboard.v1.CoreService/BindService",
        Req::UnbindService(_) => "/switchboard.v1.CoreService/UnbindService",
        Req::BindResource(_) => "/switchboard.v1.CoreService/BindResource",
        Req::UnbindResource(_) => "/switchboard.v1.CoreService/UnbindResource",
        Req::GetCapabilities(_) => "/switchboard.v1.ProcessorService/GetCapabilities",
        Req::PrepareSession(_) => "/switchboard.v1.ProcessorService/PrepareSession",
        Req::EndSession(_) => "/switchboard.v1.ProcessorService/EndSession",
        Req::GetSessionState(_) => "/switchboard.v1.WorkflowService/GetSessionState",
        Req::InvokeAction(_) => "/switchboard.v1.WorkflowService/InvokeAction",
        Req::UpsertAgent(_) => "/switchboard.v1.AdminService/UpsertAgent",
        Req::GetAgent(_) => "/switchboard.v1.AdminService/GetAgent",
        Req::ListAgents(_) => "/switchboard.v1.AdminService/ListAgents",
        Req::DeleteAgent(_) => "/switchboard.v1.AdminService/DeleteAgent",
        Req::ConnectAgent(_) => "/switchboard.v1.RoutingService/ConnectAgent",
        Req::LoginAgent(_) => "/switchboard.v1.RoutingService/LoginAgent",
        Req::ChangeAgentState(_) => "/switchboard.v1.RoutingService/ChangeAgentState",
        Req::ConferenceTask(_) => "/switchboard.v1.RoutingService/ConferenceTask",
        Req::TransferTask(_) => "/switchboard.v1.RoutingService/TransferTask",
        Req::ChangeTaskState(_) => "/switchboard.v1.RoutingService/ChangeTaskState",
        Req::NewTask(_) => "/switchboard.v1.RoutingService/NewTask",
        Req::AcceptTask(_) => "/switchboard.v1.RoutingService/AcceptTask",
        Req::RejectTask(_) => "/switchboard.v1.RoutingService/RejectTask",
        Req::GetAgentState(_) => "/switchboard.v1.RoutingService/GetAgentState",
        Req::GetTaskState(_) => "/switchboard.v1.RoutingService/GetTaskState",
    }
}

fn frame(request_id: String, content: Frame) -> ConnectResponse {
    ConnectResponse {
        request_id,
        frame: Some(content),
    }
}

/// What a desktop's side of the stream brought. A request is boxed so that an idle desktop's
/// task does not hold room for the largest one.
enum Inbound {
    Request(Box<pb::ConnectRequest>),
    /// A goodbye frame: the desktop is done.
    Goodbye,
    /// The requests ended without a goodbye: a half-close, or the call cancelled (tonic and
    /// hyper read an RST_STREAM with CANCEL or NO_ERROR as the end of the requests, so the two
    /// cannot be told apart).
    Ended,
    /// Bytes that are not a `ConnectRequest` frame; what the decoder said.
    Malformed(String),
    /// A frame over the maximum message size: how it was refused.
    TooLarge(Status),
    /// The transport failed: a reset with any other code, or the connection broke.
    Broken,
}

async fn next_request(inbound: &mut Streaming<pb::ConnectRequest>) -> Inbound {
    match inbound.message().await {
        Ok(Some(pb::ConnectRequest {
            request: Some(Req::Goodbye(_)),
            ..
        })) => Inbound::Goodbye,
        Ok(Some(request)) => Inbound::Request(Box::new(request)),
        Ok(None) => Inbound::Ended,
        // tonic reports both with a Status (a prost decode error is INTERNAL, like most
        // transport errors); a transport error carries the hyper or h2 error as its source,
        // while the decoder's own errors (undecodable bytes, a bad compression flag, a frame
        // too large or cut off by the end of the stream) have none.
        Err(status) if std::error::Error::source(&status).is_some() => Inbound::Broken,
        Err(status) => match super::oversize::relabel(&status) {
            Some(too_large) => Inbound::TooLarge(too_large),
            None => Inbound::Malformed(status.message().to_owned()),
        },
    }
}

/// Sends an event's frame, if desktops see that event; false when the desktop is gone.
async fn send_event(out: &Out, record: &Record) -> bool {
    match event_frame(record) {
        Some(frame) => out.send(frame).await.is_ok(),
        None => true,
    }
}

/// The frame of an event that desktops see, built (and boxed) before any await so that a
/// task waiting to send holds only the box.
fn event_frame(record: &Record) -> Option<Box<Result<ConnectResponse, Status>>> {
    let content = Frame::Event(client_event(record)?);
    Some(Box::new(Ok(frame(String::new(), content))))
}

/// An event as desktops see it (on `Connect` and `Feed`), if they see that event.
pub(super) fn client_event(record: &Record) -> Option<ClientEvent> {
    use pb::client_event::Event;
    let event = match pb::SessionStateEvent::from_record(record) {
        Some(session) => Event::SessionState(session),
        None => Event::Routing(pb::RoutingEvent::from_record(record)?),
    };
    Some(ClientEvent {
        revision: record.revision,
        event: Some(event),
    })
}
