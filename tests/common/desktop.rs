//! A desktop on its own `Connect` stream and its own connection, so that a test can make it
//! vanish (the connection drops without the desktop closing its side) and come back.

use std::time::Duration;

use switchboard::pb;
use switchboard::pb::connect_request::Request as Req;
use switchboard::pb::connect_response::Frame;
use switchboard::pb::core_service_client::CoreServiceClient;
use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;
use tonic::metadata::MetadataValue;
use tonic::transport::Endpoint;

use super::{DEFAULT_PROCESSOR_ID, WORKFLOW, prepare_request};

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
    /// Opens a `Connect` stream on a connection of its own; `resume` names a client to resume.
    pub async fn open(addr: std::net::SocketAddr, resume: Option<&str>) -> Self {
        Self::try_open(addr, resume)
            .await
            .expect("the stream opens")
    }

    pub async fn try_open(
        addr: std::net::SocketAddr,
        resume: Option<&str>,
    ) -> Result<Self, tonic::Status> {
        let channel = Endpoint::from_shared(format!("http://{addr}"))
            .expect("a valid endpoint")
            .connect()
            .await
            .expect("the server accepts connections");
        let (tx, requests) = mpsc::channel(16);
        let mut request = tonic::Request::new(ReceiverStream::new(requests));
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

    /// Sends a request and returns its answer; events that came first are kept in `events`.
    pub async fn call(&mut self, request: Req) -> Frame {
        self.next_id += 1;
        let request_id = format!("d{}", self.next_id);
        self.tx
            .send(pb::ConnectRequest {
                request_id: request_id.clone(),
                request: Some(request),
            })
            .await
            .expect("the stream takes requests");
        loop {
            let response = tokio::time::timeout(WAIT, self.rx.next())
                .await
                .expect("an answer arrives")
                .expect("the stream is open")
                .expect("the stream is healthy");
            match response.frame.expect("frames have content") {
                Frame::Event(event) => self.events.push(event),
                Frame::Error(error) => panic!("{request_id} failed: {error:?}"),
                answer => {
                    assert_eq!(response.request_id, request_id, "answers come in order");
                    return answer;
                }
            }
        }
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

    /// The connection drops as a crashed desktop's or a lost network's would: the stream is
    /// cancelled without the desktop closing its side first.
    pub fn vanish(self) {
        let Self { tx, rx, .. } = self;
        drop(rx);
        // The request side is dropped only after the cancellation went out.
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(5)).await;
            drop(tx);
        });
    }

    /// The desktop closes its side: a deliberate goodbye.
    pub async fn close(self) {
        let Self { tx, mut rx, .. } = self;
        drop(tx);
        while let Ok(Some(Ok(_))) = tokio::time::timeout(WAIT, rx.next()).await {}
    }
}
