//! A browser desktop as its page drives it, for tests in Rust: one `CoreService.Feed` stream
//! (its lease and events) and unary calls naming its client.

use std::time::Duration;

use switchboard::pb;
use switchboard::pb::feed_response::Frame;
use tokio_stream::StreamExt;
use tonic::Streaming;

use super::{Clients, DEFAULT_PROCESSOR_ID, WORKFLOW};

/// Bounds every wait, so that a broken server fails the test instead of hanging it.
const WAIT: Duration = Duration::from_secs(20);

/// A browser desktop as its page drives it: one feed, and unary calls naming its client.
pub struct FeedDesktop {
    feed: Streaming<pb::FeedResponse>,
    pub greeting: pb::Connected,
    pub calls: Clients,
    /// Every event received, in order.
    pub events: Vec<pb::ClientEvent>,
}

impl FeedDesktop {
    pub async fn open(
        calls: &Clients,
        client_id: &str,
        start_revision: u64,
    ) -> Result<Self, tonic::Status> {
        let mut feed = calls
            .core
            .clone()
            .feed(pb::FeedRequest {
                client_id: client_id.into(),
                client_name: "media bar".into(),
                start_revision,
            })
            .await?
            .into_inner();
        let first = tokio::time::timeout(WAIT, feed.next())
            .await
            .expect("the greeting arrives")
            .expect("the feed is open")?;
        let Some(Frame::Connected(greeting)) = first.frame else {
            panic!("the first frame is the greeting: {first:?}");
        };
        Ok(Self {
            feed,
            greeting,
            calls: calls.clone(),
            events: Vec::new(),
        })
    }

    pub fn client_id(&self) -> String {
        self.greeting.client_id.clone()
    }

    /// Binds both services, prepares the agent's session and binds it, all as unary calls.
    pub async fn sign_in(&mut self, agent_id: &str, password: &str) -> String {
        let client_id = self.client_id();
        for service_id in [DEFAULT_PROCESSOR_ID, WORKFLOW] {
            self.calls.bind_service(&client_id, service_id).await;
        }
        let resource_id = self
            .calls
            .prepare(agent_id, password, true)
            .await
            .resource_id;
        for service_id in [DEFAULT_PROCESSOR_ID, WORKFLOW] {
            self.calls
                .core
                .bind_resource(pb::BindResourceRequest {
                    client_id: client_id.clone(),
                    service_id: service_id.into(),
                    resource_id: resource_id.clone(),
                    ..Default::default()
                })
                .await
                .expect("the session binds");
        }
        resource_id
    }

    pub async fn invoke(&mut self, resource_id: &str, action: &str) {
        self.calls
            .workflow
            .invoke_action(pb::InvokeActionRequest {
                resource_id: resource_id.into(),
                action: action.into(),
                ..Default::default()
            })
            .await
            .unwrap_or_else(|e| panic!("{action} is invoked: {e:?}"));
    }

    /// The next frame, which must come.
    pub async fn next_frame(&mut self) -> Frame {
        tokio::time::timeout(WAIT, self.feed.next())
            .await
            .expect("a frame arrives")
            .expect("the feed is open")
            .expect("the feed is healthy")
            .frame
            .expect("frames have content")
    }

    /// Reads events until one matches; every event read is kept in `events`.
    pub async fn wait_for(&mut self, what: &str, matches: impl Fn(&pb::ClientEvent) -> bool) {
        if self.events.iter().any(&matches) {
            return;
        }
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let frame = tokio::time::timeout_at(deadline, self.next_frame())
                .await
                .unwrap_or_else(|_| panic!("no {what} on the feed"));
            if let Frame::Event(event) = frame {
                let found = matches(&event);
                self.events.push(event);
                if found {
                    return;
                }
            }
        }
    }

    /// How the feed ends, once the server ends it.
    pub async fn ending(&mut self) -> tonic::Status {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match tokio::time::timeout_at(deadline, self.feed.next())
                .await
                .expect("the feed ends")
            {
                Some(Ok(_)) => {}
                Some(Err(status)) => return status,
                None => panic!("the feed ended without a status"),
            }
        }
    }
}
