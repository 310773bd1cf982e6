//! The tests' one desktop: a `Connect` stream on a connection of its own (as a real desktop
//! has), which can sign in, call, keep the events that arrive ahead of answers, say goodbye,
//! vanish (the call is cancelled without a goodbye) and come back.

use std::time::Duration;

use switchboard::pb;
use switchboard::pb::client_event::Event as ClientEvent;
use switchboard::pb::connect_request::Request as Req;
use switchboard::pb::connect_response::Frame;
use switchboard::pb::core_service_client::CoreServiceClient;
use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;
use tonic::metadata::MetadataValue;
use tonic::transport::Endpoint;

use super::{DEFAULT_PROCESSOR_ID, TestServer, WORKFLOW, prepare_request};

/// Bounds every wait, so that a broken server fails the test instead of hanging it.
const WAIT: Duration = Duration::from_secs(20);

pub struct ConnectedDesktop {
    tx: mpsc::Sender<pb::ConnectRequest>,
    rx: Streaming<pb::ConnectResponse>,
    pub greeting: pb::Connected,
    next_id: u32,
    /// Events that arrived while waiting for answers.
    pub events: Vec<pb::ClientEvent>,
}

impl ConnectedDesktop {
    /// Opens a `Connect` stream on a connection of its own, signed in as `server`'s first
    /// admin; `resume` names a client to resume.
    pub async fn open(server: &TestServer, resume: Option<&str>) -> Self {
        Self::try_open(server, resume)
            .await
            .expect("the stream opens")
    }

    pub async fn try_open(
        server: &TestServer,
        resume: Option<&str>,
    ) -> Result<Self, tonic::Status> {
        Self::try_open_as(server.addr, &server.admin_token().await, resume).await
    }

    /// As `open`, on the server at `addr`, with the access token `token`.
    pub async fn open_as(addr: std::net::SocketAddr, token: &str, resume: Option<&str>) -> Self {
        Self::try_open_as(addr, token, resume)
            .await
            .expect("the stream opens")
    }

    pub async fn try_open_as(
        addr: std::net::SocketAddr,
        token: &str,
        resume: Option<&str>,
    ) -> Result<Self, tonic::Status> {
        let channel = Endpoint::from_shared(format!("http://{addr}"))
            .expect("a valid endpoint")
            .connect()
            .await
            .expect("the server accepts connections");
        let (tx, requests) = mpsc::channel(16);
        let mut request = tonic::Request::new(ReceiverStream::new(requests));
        request.metadata_mut().insert(
            "authorization",
            MetadataValue::try_from(format!("Bearer {token}")).expect("an ASCII token"),
        );
        if let Some(client_id) = resume {
            request.metadata_mut().insert(
                "switchboard-client-id",
                MetadataValue::try_from(client_id).expect("an ASCII id"),
            );
        }
        let mut rx = CoreServiceClient::new(channel)
            .connect(request)
            .await?
            .into_inner();
        let first = tokio::time::timeout(WAIT, rx.next())
            .await
            .expect("the greeting arrives")
            .expect("the stream is open")?;
        let Some(Frame::Connected(greeting)) = first.frame else {
            panic!("the first frame is the greeting, not {first:?}");
        };
        Ok(Self {
            tx,
            rx,
            greeting,
            next_id: 0,
            events: Vec::new(),
        })
    }

    pub fn client_id(&self) -> &str {
        &self.greeting.client_id
    }

    /// Sends a request without waiting; returns its request id.
    pub async fn send(&mut self, request: Req) -> String {
        self.next_id += 1;
        let request_id = format!("d{}", self.next_id);
        self.tx
            .send(pb::ConnectRequest {
                request_id: request_id.clone(),
                request: Some(request),
            })
            .await
            .expect("the stream takes requests");
        request_id
    }

    /// The next frame on the stream, whatever it is.
    pub async fn next_frame(&mut self) -> pb::ConnectResponse {
        tokio::time::timeout(WAIT, self.rx.next())
            .await
            .expect("a frame arrives")
            .expect("the stream is open")
            .expect("the stream is healthy")
    }

    /// Sends a request and returns its answer, an error frame included; events that came
    /// first are kept in `events`.
    pub async fn answer(&mut self, request: Req) -> Frame {
        let request_id = self.send(request).await;
        loop {
            let response = self.next_frame().await;
            match response.frame.expect("frames have content") {
                Frame::Event(event) => self.events.push(event),
                answer => {
                    assert_eq!(response.request_id, request_id, "answers come in order");
                    return answer;
                }
            }
        }
    }

    /// Sends a request that must succeed and returns its answer.
    pub async fn call(&mut self, request: Req) -> Frame {
        match self.answer(request).await {
            Frame::Error(error) => panic!("the request failed: {error:?}"),
            answer => answer,
        }
    }

    /// Takes the session view events kept so far, oldest first; other events stay kept.
    pub fn take_session_events(&mut self) -> Vec<pb::SessionStateEvent> {
        let (session, other): (Vec<_>, Vec<_>) = std::mem::take(&mut self.events)
            .into_iter()
            .partition(|e| matches!(e.event, Some(ClientEvent::SessionState(_))));
        self.events = other;
        session
            .into_iter()
            .filter_map(|e| match e.event {
                Some(ClientEvent::SessionState(event)) => Some(event),
                _ => None,
            })
            .collect()
    }

    /// The next session view event: the oldest one kept, or the next to arrive.
    pub async fn next_session_event(&mut self) -> pb::SessionStateEvent {
        let kept = self
            .events
            .iter()
            .position(|e| matches!(e.event, Some(ClientEvent::SessionState(_))));
        let event = match kept {
            Some(i) => self.events.remove(i).event,
            None => match self.next_frame().await.frame {
                Some(Frame::Event(event)) => event.event,
                other => panic!("expected an event, got {other:?}"),
            },
        };
        match event {
            Some(ClientEvent::SessionState(event)) => event,
            other => panic!("expected a session event, got {other:?}"),
        }
    }

    /// The first routing event that `matches`: one already kept (taken from `events`), or
    /// the first such to arrive.
    pub async fn routing_event(
        &mut self,
        what: &str,
        mut matches: impl FnMut(&pb::routing_event::Event) -> bool,
    ) -> pb::RoutingEvent {
        let mut is_wanted = |event: &pb::ClientEvent| match &event.event {
            Some(ClientEvent::Routing(routing)) => routing.event.as_ref().is_some_and(&mut matches),
            _ => false,
        };
        if let Some(i) = self.events.iter().position(&mut is_wanted) {
            let Some(ClientEvent::Routing(routing)) = self.events.remove(i).event else {
                unreachable!("the position found a routing event");
            };
            return routing;
        }
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let response = tokio::time::timeout_at(deadline, self.rx.next())
                .await
                .unwrap_or_else(|_| panic!("no {what} on the desktop's stream"))
                .expect("the stream is open")
                .expect("the stream is healthy");
            if let Some(Frame::Event(event)) = response.frame
                && is_wanted(&event)
                && let Some(ClientEvent::Routing(routing)) = event.event
            {
                return routing;
            }
        }
    }

    /// How the stream ends, once the server ends it: `None` for a clean end.
    pub async fn ending(&mut self) -> Option<tonic::Status> {
        ending_of(&mut self.rx).await
    }

    /// Binds both services, prepares the agent's session (taking it over) and binds it.
    pub async fn sign_in(&mut self, agent_id: &str, password: &str) -> String {
        for service_id in [DEFAULT_PROCESSOR_ID, WORKFLOW] {
            self.call(Req::BindService(pb::BindServiceRequest {
                service_id: service_id.into(),
                ..Default::default()
            }))
            .await;
        }
        let Frame::PrepareSession(prepared) = self
            .call(Req::PrepareSession(prepare_request(
                agent_id, password, true,
            )))
            .await
        else {
            panic!("PrepareSession answers with its own frame");
        };
        for service_id in [DEFAULT_PROCESSOR_ID, WORKFLOW] {
            self.call(Req::BindResource(pb::BindResourceRequest {
                service_id: service_id.into(),
                resource_id: prepared.resource_id.clone(),
                ..Default::default()
            }))
            .await;
        }
        prepared.resource_id
    }

    /// Invokes a workflow action on the session.
    pub async fn invoke(&mut self, resource_id: &str, action: &str) -> pb::InvokeActionResponse {
        match self
            .call(Req::InvokeAction(pb::InvokeActionRequest {
                resource_id: resource_id.into(),
                action: action.into(),
                ..Default::default()
            }))
            .await
        {
            Frame::InvokeAction(answer) => answer,
            other => panic!("InvokeAction answered {other:?}"),
        }
    }

    /// The desktop goes as a crashed desktop, a lost network or a reloaded page would: the
    /// call is cancelled (RST_STREAM with CANCEL) without a goodbye. Its client keeps its grace
    /// period.
    pub fn vanish(self) {
        let Self { tx, rx, .. } = self;
        drop(rx);
        drop(tx);
    }

    /// The desktop closes its side without a goodbye frame; returns how the server ended the
    /// stream (CANCELLED: the client keeps its grace period).
    pub async fn end_requests(self) -> Option<tonic::Status> {
        let Self { tx, mut rx, .. } = self;
        drop(tx);
        ending_of(&mut rx).await
    }

    /// The desktop says goodbye (a deliberate end): its client is unregistered, and only then
    /// the server ends the stream with OK.
    pub async fn close(self) {
        let Self { tx, mut rx, .. } = self;
        tx.send(pb::ConnectRequest {
            request_id: String::new(),
            request: Some(Req::Goodbye(pb::Goodbye {})),
        })
        .await
        .expect("the stream takes the goodbye");
        drop(tx);
        if let Some(status) = ending_of(&mut rx).await {
            panic!("the stream ended with {status:?} after the desktop said goodbye");
        }
    }
}

async fn ending_of(rx: &mut Streaming<pb::ConnectResponse>) -> Option<tonic::Status> {
    loop {
        match tokio::time::timeout(WAIT, rx.next())
            .await
            .expect("the stream ends")
        {
            Some(Ok(_)) => {}
            Some(Err(status)) => return Some(status),
            None => return None,
        }
    }
}
