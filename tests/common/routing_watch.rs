//! Reading a routing watch in the tests that drive a real server.

// Shared by the routing tests over gRPC; not every one uses it.
#![allow(dead_code)]

use std::time::Duration;

use switchboard::pb;
use switchboard::pb::routing_event::Event as Ev;
use tokio_stream::StreamExt;
use tonic::Streaming;

/// How long a routing event is waited for: only a guard against a test hanging, so the
/// longest any reader needs (presence's tests had their own at 20 s).
const WAIT: Duration = Duration::from_secs(20);

/// Reads a routing watch until `found` picks something out of an event; fails after `WAIT`.
/// The other readers below are this one with a picker of their own.
pub async fn wait_for_value<T>(
    watch: &mut Streaming<pb::WatchRoutingEventsResponse>,
    what: &str,
    mut found: impl FnMut(pb::RoutingEvent) -> Option<T>,
) -> T {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let frame = tokio::time::timeout_at(deadline, watch.next())
            .await
            .unwrap_or_else(|_| panic!("no {what} on the watch"))
            .expect("the watch is open")
            .expect("the watch is healthy");
        if let Some(pb::watch_routing_events_response::Frame::Event(event)) = frame.frame
            && let Some(value) = found(event)
        {
            return value;
        }
    }
}

/// Reads a routing watch until an event matches; answers it with its revision.
pub async fn wait_for(
    watch: &mut Streaming<pb::WatchRoutingEventsResponse>,
    what: &str,
    mut matches: impl FnMut(&Ev) -> bool,
) -> pb::RoutingEvent {
    wait_for_value(watch, what, |event| {
        event
            .event
            .as_ref()
            .is_some_and(&mut matches)
            .then_some(event)
    })
    .await
}

/// Reads a routing watch until an event matches; answers the event alone.
pub async fn wait_for_event(
    watch: &mut Streaming<pb::WatchRoutingEventsResponse>,
    what: &str,
    mut matches: impl FnMut(&Ev) -> bool,
) -> Ev {
    wait_for_value(watch, what, |event| event.event.filter(&mut matches)).await
}
