//! Fan-out: one event to N desktop streams, the time until the last stream has it, and a
//! count that proves every stream got every event.
//!
//! Switchboard: N `WatchRoutingEvents` streams following one agent; the event is that agent's
//! state change (`ChangeAgentState`, toggling NOT_READY and READY: one `AgentStateChanged`
//! each, committed durably first). Baseline: N `Subscribe` streams of the echo service; the
//! event is an `Echo` with `broadcast`. Both with one connection per stream, and with many
//! streams sharing each connection.

use std::time::{Duration, Instant};

use switchboard::pb;
use switchboard::pb::routing_service_client::RoutingServiceClient;
use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tonic::transport::Channel;

use crate::auth::{self, Who};
use crate::echo::pb::echo_service_client::EchoServiceClient;
use crate::echo::pb::{EchoRequest, SubscribeRequest};
use crate::procs::{Cores, ServerChild, ServerKind};
use crate::stats::{Latency, heading, ms, ratio};
use crate::unary::{AGENT, PASSWORD, start_with_agent};

pub struct Settings {
    pub streams: Vec<usize>,
    /// Streams per shared connection, for the "many streams per connection" runs.
    pub shared: usize,
    /// Events sent per run, one at a time.
    pub events: usize,
}

/// Bounds each wait for the last stream: a failure guard, never a measurement.
const DELIVERY_WAIT: Duration = Duration::from_secs(30);
/// Quiet time between events, so that each one is measured on an idle server.
const BETWEEN_EVENTS: Duration = Duration::from_millis(20);

struct Figures {
    until_last: Latency,
    delivered: u64,
}

pub async fn run(settings: &Settings, cores: Option<Cores>) {
    heading("Fan-out: one event to N streams, time until the last stream has it");
    println!(
        "{} events per run, one at a time ({} ms apart); shared connections carry {} streams each.",
        settings.events,
        BETWEEN_EVENTS.as_millis(),
        settings.shared
    );
    println!();
    println!(
        "| streams | connections | echo p50 | echo p99 | Switchboard p50 | Switchboard p99 | p50 / echo | delivered (expected) |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for &n in &settings.streams {
        for per_connection in [1, settings.shared] {
            let connections = n.div_ceil(per_connection);
            let echo = echo_run(n, per_connection, settings.events, cores).await;
            let switchboard = switchboard_run(n, per_connection, settings.events, cores).await;
            let expected = (n * settings.events) as u64;
            assert_eq!(echo.delivered, expected, "the echo streams missed events");
            assert_eq!(
                switchboard.delivered, expected,
                "Switchboard's streams missed events"
            );
            println!(
                "| {n} | {connections} | {} | {} | {} | {} | {:.2} | {} ({expected}) |",
                ms(echo.until_last.p50),
                ms(echo.until_last.p99),
                ms(switchboard.until_last.p50),
                ms(switchboard.until_last.p99),
                ratio(switchboard.until_last.p50, echo.until_last.p50),
                switchboard.delivered,
            );
        }
    }
    println!("\nTarget: 1,000 streams, the last has the event within 20 ms at p50, none missed.");
}

async fn channels(server: &ServerChild, count: usize) -> Vec<Channel> {
    let mut channels = Vec::with_capacity(count);
    for _ in 0..count {
        channels.push(server.connect().await);
    }
    channels
}

async fn echo_run(n: usize, per_connection: usize, events: usize, cores: Option<Cores>) -> Figures {
    let server = ServerChild::start(&ServerKind::Echo, cores.map(|c| c.server));
    let connections = channels(&server, n.div_ceil(per_connection)).await;
    let (arrivals_tx, arrivals) = mpsc::unbounded_channel();
    for i in 0..n {
        let mut stream = EchoServiceClient::new(connections[i / per_connection].clone())
            .subscribe(SubscribeRequest {})
            .await
            .expect("the stream opens")
            .into_inner();
        let arrivals_tx = arrivals_tx.clone();
        tokio::spawn(async move {
            while let Some(Ok(_)) = stream.next().await {
                if arrivals_tx.send((i, Instant::now())).is_err() {
                    return;
                }
            }
        });
    }
    let publisher = EchoServiceClient::new(server.connect().await);
    measure(n, events, arrivals, || {
        let mut publisher = publisher.clone();
        async move {
            publisher
                .echo(EchoRequest {
                    payload: b"event".to_vec(),
                    broadcast: true,
                })
                .await
                .expect("the event is sent");
        }
    })
    .await
}

async fn switchboard_run(
    n: usize,
    per_connection: usize,
    events: usize,
    cores: Option<Cores>,
) -> Figures {
    let data = tempfile::tempdir().expect("a temporary directory");
    // One agent holds every stream here: lift the per-principal bound on watches.
    let server = start_with_agent(
        data.path(),
        &["--max-watches-per-principal", "1000000"],
        cores,
    )
    .await;
    // Every stream is the agent's desktop following its own state, signed in as the agent.
    let token = server.token_as(Who::Agent(AGENT), PASSWORD).await;
    let connections = channels(&server, n.div_ceil(per_connection)).await;
    let (arrivals_tx, arrivals) = mpsc::unbounded_channel();
    for i in 0..n {
        let signed = auth::signed(connections[i / per_connection].clone(), &token);
        let mut stream = RoutingServiceClient::new(signed)
            .watch_routing_events(pb::WatchRoutingEventsRequest {
                agent_id: AGENT.into(),
                kinds: vec![pb::RoutingEventKind::AgentStateChanged.into()],
                ..Default::default()
            })
            .await
            .expect("the watch opens")
            .into_inner();
        let arrivals_tx = arrivals_tx.clone();
        tokio::spawn(async move {
            while let Some(Ok(frame)) = stream.next().await {
                // Progress notices on an idle watch are not events.
                if matches!(
                    frame.frame,
                    Some(pb::watch_routing_events_response::Frame::Event(_))
                ) && arrivals_tx.send((i, Instant::now())).is_err()
                {
                    return;
                }
            }
        });
    }
    let routing = RoutingServiceClient::new(auth::signed(server.connect().await, &token));
    let mut ready = true;
    measure(n, events, arrivals, || {
        let mut routing = routing.clone();
        ready = !ready;
        let state = if ready {
            pb::AgentState::Ready
        } else {
            pb::AgentState::NotReady
        };
        async move {
            routing
                .change_agent_state(pb::ChangeAgentStateRequest {
                    agent_id: AGENT.into(),
                    state: state.into(),
                    mrd: "chat".into(),
                    ..Default::default()
                })
                .await
                .expect("the state changes");
        }
    })
    .await
}

/// Sends `events` events one at a time with `send`, and times each until all `n` streams
/// reported it on `arrivals` (stream index, arrival time).
async fn measure<F, Fut>(
    n: usize,
    events: usize,
    mut arrivals: mpsc::UnboundedReceiver<(usize, Instant)>,
    mut send: F,
) -> Figures
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    // Every stream is open once the server has answered its call; give the server a moment
    // to register the last ones before the first event.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut per_stream = vec![0u64; n];
    let mut samples = Vec::with_capacity(events);
    for event in 0..events {
        let started = Instant::now();
        send().await;
        let mut last = started;
        for _ in 0..n {
            let (stream, at) = tokio::time::timeout(DELIVERY_WAIT, arrivals.recv())
                .await
                .unwrap_or_else(|_| panic!("event {event} did not reach every stream"))
                .expect("the streams are open");
            per_stream[stream] += 1;
            assert_eq!(
                per_stream[stream],
                event as u64 + 1,
                "stream {stream} got event {event} twice or missed one"
            );
            last = last.max(at);
        }
        samples.push(last - started);
        tokio::time::sleep(BETWEEN_EVENTS).await;
    }
    Figures {
        until_last: Latency::of(samples),
        delivered: per_stream.iter().sum(),
    }
}
