//! Reading a routing watch in the tests that drive a real server.

// Shared by the routing tests over gRPC; not every one uses it.
#![allow(dead_code)]

use std::time::Duration;

use switchboard::pb;
use switchboard::pb::routing_event::Event as Ev;
use tokio_stream::StreamExt;
use tonic::Streaming;

/// How long a routing event is waited for.
const WAIT: Duration = Duration::from_secs(10);

/// Reads a routing watch until an event matches; fails after `WAIT`.
pub async fn wait_for(
    watch: &mut Streaming<pb::WatchRoutingEventsResponse>,
    what: &str,
    mut matches: impl FnMut(&Ev) -> bool,
) -> pb::RoutingEvent {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let frame = tokio::time::timeout_at(deadline, watch.next())
            .await
            .unwrap_or_else(|_| panic!("no {what} on the watch"))
            .expect("the watch is open")
            .expect("the watch is healthy");
        let Some(pb::watch_routing_events_response::Frame::Event(event)) = frame.frame else {
            continue;
        };
        if event.event.as_ref().is_some_and(&mut matches) {
            return event;
        }
    }
}
