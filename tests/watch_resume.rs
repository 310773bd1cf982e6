//! Resuming routing watches (`RoutingService.WatchRoutingEvents`) against real servers:
//!
//! - a watcher that notes the last revision it saw and watches again from the next one, across
//!   a graceful restart on the same data directory, gets exactly the events a full replay
//!   gives: no gap, no duplicate, the same content;
//! - a `start_revision` older than the journal keeps (small `snapshot_every` and
//!   `retain_events`) is OUT_OF_RANGE naming the oldest revision kept, and a watch from that
//!   revision works, before and after a restart;
//! - a `start_revision` past the next revision (head + 1) is OUT_OF_RANGE naming the head,
//!   before any frame, on routing and session watches; head + 1 itself waits for the next
//!   event, and its progress notices name the head, never a revision that does not exist;
//! - an idle watch, or one whose filter matches nothing that happens, gets progress notices
//!   whose revision covers what was committed, and resuming from a notice loses nothing;
//! - a watcher that stops reading is ended with ABORTED naming the revision to resume from,
//!   without slowing another watcher, and resuming from that revision loses nothing.
//!
//! Every such ending carries the revisions in a `google.rpc.ErrorInfo` detail too (domain
//! `switchboard.v1`, reasons `WATCH_COMPACTED`, `WATCH_BEYOND_HEAD`, `WATCH_LAGGED`), read
//! here with `tonic_types::StatusExt` and checked against the message.
//!
//! Events come from toggling agents between READY and NOT_READY: each toggle commits one
//! routing event (`AgentStateChanged`, at the revision its response names) and one event a
//! routing watch does not show, so routing event revisions are compared with the revisions
//! the toggles' responses named, never assumed to be consecutive integers.
//!
//! Every wait is bounded by `WAIT` and only guards against a hang; no result depends on timing.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use common::Channel;
use common::routing_setup::RoutingSetup;
use common::{Clients, TestServer, Who};
use switchboard::config::ServerConfig;
use switchboard::pb;
use switchboard::pb::routing_service_client::RoutingServiceClient;
use switchboard::pb::watch_routing_events_response::Frame;
use tokio_stream::StreamExt;
use tonic::transport::Endpoint;
use tonic::{Code, Status, Streaming};
use tonic_types::StatusExt;

const PASSWORD: &str = "resume-Pw-1";
/// Bounds every wait so a broken server fails the test instead of hanging it.
const WAIT: Duration = Duration::from_secs(20);

type Watch = Streaming<pb::WatchRoutingEventsResponse>;
type Routing = RoutingServiceClient<Channel>;

/// A durable server configuration on `dir`, otherwise `ServerConfig::in_memory()`'s. The
/// first start writes the first admin's secret into `dir` too, where a restart finds it.
fn durable(dir: &Path) -> ServerConfig {
    ServerConfig {
        data_dir: dir.into(),
        in_memory: false,
        bootstrap_secret_file: Some(dir.join("bootstrap-admin.secret")),
        ..ServerConfig::in_memory()
    }
}

/// A routing client signed in as the first admin: it watches and reads.
async fn routing(server: &TestServer) -> Routing {
    RoutingServiceClient::new(server.channel().await)
}

/// A routing client on a connection of its own whose HTTP/2 stream window is small, so that
/// a watch on it that is not read stops the server's sending after about a hundred events.
/// With the default 2 MiB window the client's HTTP/2 layer would buffer tens of thousands of
/// events (one small DATA frame each), and after about 12 000 unread ones it would end the
/// whole connection with GOAWAY ENHANCE_YOUR_CALM ("too_many_data_frames", h2's guard against
/// floods of small frames) instead of the watch ending with ABORTED.
async fn routing_with_small_window(server: &TestServer) -> Routing {
    let channel = Endpoint::from_shared(format!("http://{}", server.addr))
        .expect("a valid endpoint")
        .initial_stream_window_size(Some(4 * 1024))
        .connect()
        .await
        .expect("the server accepts connections");
    RoutingServiceClient::new(common::signed(channel, &server.admin_token().await))
}

/// MRD `chat` and one agent per id, each logged in on `chat` (NOT_READY) by itself. Returns
/// the revision of the last login.
async fn configure(server: &TestServer, c: &mut Clients, agents: &[&str]) -> u64 {
    RoutingSetup::chat()
        .agents(agents, PASSWORD)
        .display_names(str::to_owned)
        .log_in(&server.raw_channel().await)
        .apply(c)
        .await
}

/// Flips one agent between READY and NOT_READY, signed in as that agent (an agent changes
/// only its own state); it starts NOT_READY, as after login.
struct Toggler {
    agent: &'static str,
    ready: bool,
    routing: Routing,
}

impl Toggler {
    /// Signs `agent` in on `server`. Signing in commits an event, but no routing event.
    async fn new(server: &TestServer, agent: &'static str) -> Self {
        Self {
            agent,
            ready: false,
            routing: Self::signed_in(server, agent).await,
        }
    }

    async fn signed_in(server: &TestServer, agent: &str) -> Routing {
        RoutingServiceClient::new(server.channel_as(Who::Agent(agent), PASSWORD).await)
    }

    /// Signs in again on `server` (a restarted one), keeping what the agent's state is.
    async fn sign_in_again(&mut self, server: &TestServer) {
        self.routing = Self::signed_in(server, self.agent).await;
    }

    /// Toggles `n` times, one call after the other; returns each response's revision.
    async fn toggle(&mut self, n: usize) -> Vec<u64> {
        let r = &mut self.routing;
        let mut revisions = Vec::with_capacity(n);
        for _ in 0..n {
            let state = if self.ready {
                pb::AgentState::NotReady
            } else {
                pb::AgentState::Ready
            };
            let changed = r
                .change_agent_state(pb::ChangeAgentStateRequest {
                    agent_id: self.agent.into(),
                    state: state.into(),
                    mrd: "chat".into(),
                    ..Default::default()
                })
                .await
                .expect("the agent changes state")
                .into_inner();
            self.ready = !self.ready;
            revisions.push(changed.revision);
        }
        revisions
    }
}

fn watch_request(start_revision: u64, agent_id: &str) -> pb::WatchRoutingEventsRequest {
    pb::WatchRoutingEventsRequest {
        start_revision,
        agent_id: agent_id.into(),
        ..Default::default()
    }
}

async fn open(r: &mut Routing, start_revision: u64, agent_id: &str) -> Watch {
    r.watch_routing_events(watch_request(start_revision, agent_id))
        .await
        .expect("the watch opens")
        .into_inner()
}

/// The next frame, or the status the watch ended with. Fails on a timeout or a watch that
/// ends without a status.
async fn next_frame(watch: &mut Watch) -> Result<Frame, Status> {
    let item = tokio::time::timeout(WAIT, watch.next())
        .await
        .expect("a frame arrives in time")
        .expect("the watch ends with a status, not silently");
    Ok(item?.frame.expect("frames have content"))
}

/// Reads events (skipping progress notices) up to and including revision `last`.
async fn events_through(watch: &mut Watch, last: u64) -> Vec<pb::RoutingEvent> {
    let mut events = Vec::new();
    loop {
        match next_frame(watch).await {
            Ok(Frame::Event(event)) => {
                let revision = event.revision;
                events.push(event);
                if revision >= last {
                    return events;
                }
            }
            Ok(Frame::Progress(_)) => {}
            Err(status) => panic!("the watch failed before revision {last}: {status:?}"),
        }
    }
}

/// The status a watch that should fail at once fails with, whether the call itself fails or
/// its stream ends with the status before any frame: not even a progress notice, which would
/// claim a revision.
async fn refusal(r: &mut Routing, start_revision: u64) -> Status {
    let mut watch = match r
        .watch_routing_events(watch_request(start_revision, ""))
        .await
    {
        Err(status) => return status,
        Ok(watch) => watch.into_inner(),
    };
    match next_frame(&mut watch).await {
        Err(status) => status,
        Ok(frame) => panic!("watch from {start_revision} sent {frame:?} instead of failing"),
    }
}

/// The same for a session watch.
async fn session_refusal(c: &mut Clients, resource_id: &str, start_revision: u64) -> Status {
    let request = pb::WatchSessionStateRequest {
        resource_id: resource_id.into(),
        start_revision,
    };
    let mut watch = match c.workflow.watch_session_state(request).await {
        Err(status) => return status,
        Ok(watch) => watch.into_inner(),
    };
    match tokio::time::timeout(WAIT, watch.next())
        .await
        .expect("the watch answers in time")
        .expect("the watch ends with a status, not silently")
    {
        Err(status) => status,
        Ok(frame) => {
            panic!("session watch from {start_revision} sent {frame:?} instead of failing")
        }
    }
}

/// The metadata of a status's `ErrorInfo` detail, which must have `reason` in the
/// `switchboard.v1` domain, each value parsed as a revision.
#[track_caller]
fn error_info(status: &Status, reason: &str) -> HashMap<String, u64> {
    let info = status
        .get_details_error_info()
        .unwrap_or_else(|| panic!("no ErrorInfo detail in {status:?}"));
    assert_eq!(info.reason, reason, "{status:?}");
    assert_eq!(info.domain, "switchboard.v1", "{status:?}");
    info.metadata
        .iter()
        .map(|(key, value)| {
            let revision = value
                .parse()
                .unwrap_or_else(|_| panic!("{key}: {value:?} is not a revision"));
            (key.clone(), revision)
        })
        .collect()
}

/// The OUT_OF_RANGE refusal of a start past the next revision, and the head it names (in the
/// message and in the detail alike).
#[track_caller]
fn beyond_head(status: &Status, start_revision: u64) -> u64 {
    assert_eq!(
        status.code(),
        Code::OutOfRange,
        "watch from {start_revision}: {status:?}"
    );
    let head = revision_after(status, "is beyond the head revision ");
    assert!(
        status
            .message()
            .starts_with(&format!("start_revision {start_revision} is beyond")),
        "{:?}",
        status.message()
    );
    assert!(
        status
            .message()
            .ends_with(&format!("watch from revision {} or earlier", head + 1)),
        "{:?}",
        status.message()
    );
    assert_eq!(
        error_info(status, "WATCH_BEYOND_HEAD"),
        HashMap::from([
            ("requested_revision".to_owned(), start_revision),
            ("head_revision".to_owned(), head),
        ])
    );
    head
}

fn revisions(events: &[pb::RoutingEvent]) -> Vec<u64> {
    events.iter().map(|e| e.revision).collect()
}

/// The revision in a status message, right after `marker`.
#[track_caller]
fn revision_after(status: &Status, marker: &str) -> u64 {
    let message = status.message();
    let at = message
        .find(marker)
        .unwrap_or_else(|| panic!("{message:?} does not contain {marker:?}"));
    let digits: String = message[at + marker.len()..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits
        .parse()
        .unwrap_or_else(|_| panic!("no revision after {marker:?} in {message:?}"))
}

/// The OUT_OF_RANGE refusal of an old start, and the oldest revision it names.
#[track_caller]
fn oldest_kept(status: &Status, start_revision: u64) -> u64 {
    assert_eq!(
        status.code(),
        Code::OutOfRange,
        "watch from {start_revision}: {status:?}"
    );
    assert!(
        status.message().contains(&format!(
            "start_revision {start_revision} is older than the journal keeps"
        )),
        "{:?}",
        status.message()
    );
    let oldest = revision_after(status, "watch from revision ");
    assert_eq!(
        error_info(status, "WATCH_COMPACTED"),
        HashMap::from([
            ("requested_revision".to_owned(), start_revision),
            ("oldest_revision".to_owned(), oldest),
        ])
    );
    oldest
}

/// Reads a watch the server is stopping until it ends: the events still in flight, then
/// UNAVAILABLE telling the client to reconnect.
async fn drain_until_stopped(watch: &mut Watch) -> Vec<pb::RoutingEvent> {
    let mut events = Vec::new();
    loop {
        match tokio::time::timeout(WAIT, watch.next())
            .await
            .expect("the watch ends in time")
        {
            Some(Ok(pb::WatchRoutingEventsResponse {
                frame: Some(Frame::Event(event)),
            })) => events.push(event),
            Some(Ok(_)) => {}
            Some(Err(status)) => {
                assert_eq!(status.code(), Code::Unavailable, "{status:?}");
                assert!(status.message().contains("reconnect"), "{status:?}");
                return events;
            }
            None => panic!("the watch ended without a status while the server stopped"),
        }
    }
}

#[tokio::test]
async fn a_watch_resumed_after_a_restart_has_no_gap_and_no_duplicate() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_with(durable(dir.path())).await;
    let mut c = server.clients().await;
    let mut r = routing(&server).await;
    let login = configure(&server, &mut c, &["ana"]).await;

    // Two watchers from the start. Each first reads the history up to the login (the latest
    // revision when it subscribed), so each part of the comparison is easy to tell apart.
    let mut partial = open(&mut r, 1, "").await;
    let mut kept_open = open(&mut r, 1, "").await;
    let mut seen_partial = events_through(&mut partial, login).await;
    let mut seen_kept_open = events_through(&mut kept_open, login).await;
    assert_eq!(
        revisions(&seen_partial).last(),
        Some(&login),
        "the login is a routing event"
    );

    let mut ana = Toggler::new(&server, "ana").await;
    let before = ana.toggle(10).await;

    // One watcher reads only some of them and goes away.
    seen_partial.extend(events_through(&mut partial, before[4]).await);
    drop(partial);
    // The other reads everything the server sends until the graceful stop ends its stream.
    seen_kept_open.extend(events_through(&mut kept_open, before[2]).await);
    let stopping = tokio::spawn(server.stop());
    seen_kept_open.extend(drain_until_stopped(&mut kept_open).await);
    stopping.await.expect("the server stops");
    drop((kept_open, r, c));
    let last_partial = seen_partial.last().unwrap().revision;
    let last_kept_open = seen_kept_open.last().unwrap().revision;
    assert_eq!(last_partial, before[4]);

    // Nothing happens while the server is down. It comes back on the same directory.
    let server = TestServer::start_with(durable(dir.path())).await;
    let mut r = routing(&server).await;
    ana.sign_in_again(&server).await;
    let after = ana.toggle(10).await;
    let latest = *after.last().unwrap();

    let reference = events_through(&mut open(&mut r, 1, "").await, latest).await;
    let mut expected_toggles = before.clone();
    expected_toggles.extend(&after);
    let reference_revisions = revisions(&reference);
    assert!(
        reference_revisions.windows(2).all(|w| w[0] < w[1]),
        "{reference_revisions:?}"
    );
    assert!(
        reference_revisions.ends_with(&expected_toggles),
        "every toggle is a routing event in the journal: {reference_revisions:?} vs \
         {expected_toggles:?}"
    );

    for (name, mut seen, last) in [
        ("partial", seen_partial, last_partial),
        ("kept open", seen_kept_open, last_kept_open),
    ] {
        let resumed = events_through(&mut open(&mut r, last + 1, "").await, latest).await;
        assert!(
            resumed.first().is_some_and(|e| e.revision > last),
            "{name}: the resumed watch starts after {last}"
        );
        seen.extend(resumed);
        assert_eq!(
            revisions(&seen),
            reference_revisions,
            "{name}: seen before the restart ++ resumed after it == a full replay"
        );
        assert_eq!(
            seen, reference,
            "{name}: the same events, not just revisions"
        );
    }

    server.stop().await;
}

#[tokio::test]
async fn a_start_older_than_the_journal_keeps_is_out_of_range_naming_the_oldest() {
    let dir = tempfile::tempdir().unwrap();
    let config = ServerConfig {
        snapshot_every: 20,
        retain_events: 10,
        ..durable(dir.path())
    };
    let server = TestServer::start_with(config.clone()).await;
    let mut c = server.clients().await;
    let mut r = routing(&server).await;
    configure(&server, &mut c, &["ana"]).await;
    let mut ana = Toggler::new(&server, "ana").await;
    // Two events per toggle: well over 100 events, several snapshots and compactions.
    let toggles = ana.toggle(60).await;
    let latest = *toggles.last().unwrap();
    assert!(latest > 120, "{latest}");

    let oldest = oldest_kept(&refusal(&mut r, 1).await, 1);
    assert!(
        oldest > 1 && oldest + 9 <= latest,
        "the journal was compacted but keeps the retained events: oldest {oldest}, latest \
         {latest}"
    );
    assert!(
        oldest + 30 > latest,
        "the journal keeps about retain_events behind the latest snapshot: oldest {oldest}, \
         latest {latest}"
    );
    // One before the oldest is refused too, naming the same revision.
    assert_eq!(
        oldest_kept(&refusal(&mut r, oldest - 1).await, oldest - 1),
        oldest
    );
    // The oldest kept works: every routing event from there on.
    let from_oldest = events_through(&mut open(&mut r, oldest, "").await, latest).await;
    let expected: Vec<u64> = toggles.iter().copied().filter(|&t| t >= oldest).collect();
    assert!(!expected.is_empty());
    assert_eq!(revisions(&from_oldest), expected);

    // A clean stop snapshots and compacts once more; the same holds after the restart.
    server.stop().await;
    let server = TestServer::start_with(config).await;
    let mut r = routing(&server).await;
    let oldest_after = oldest_kept(&refusal(&mut r, 1).await, 1);
    assert!(oldest_after >= oldest, "{oldest_after} < {oldest}");
    assert_eq!(
        oldest_after,
        latest - 10 + 1,
        "the last snapshot is at {latest}; retain_events keeps 10 events behind it"
    );
    if oldest_after > oldest {
        assert_eq!(
            oldest_kept(&refusal(&mut r, oldest).await, oldest),
            oldest_after
        );
    }
    let mut watch = open(&mut r, oldest_after, "").await;
    let replayed = events_through(&mut watch, latest).await;
    let expected: Vec<u64> = toggles
        .iter()
        .copied()
        .filter(|&t| t >= oldest_after)
        .collect();
    assert!(!expected.is_empty());
    assert_eq!(revisions(&replayed), expected);
    // The same watch goes on with what happens after the restart.
    ana.sign_in_again(&server).await;
    let more = ana.toggle(3).await;
    let live = events_through(&mut watch, *more.last().unwrap()).await;
    assert_eq!(revisions(&live), more);

    drop(watch);
    server.stop().await;
}

#[tokio::test]
async fn idle_and_filtered_watches_get_progress_notices_covering_what_committed() {
    let server = TestServer::start_with(ServerConfig {
        watch_progress_ms: 100,
        ..ServerConfig::in_memory()
    })
    .await;
    let mut c = server.clients().await;
    let mut r = routing(&server).await;
    let configured = configure(&server, &mut c, &["ana", "bob"]).await;

    // An idle watch with no traffic at all gets a notice naming the current revision.
    let mut idle = open(&mut r, 0, "").await;
    let Frame::Progress(notice) = next_frame(&mut idle).await.expect("the watch is healthy") else {
        panic!("nothing happened, so the first frame is a progress notice");
    };
    let now = r
        .get_agent_state(pb::GetAgentStateRequest {
            agent_id: "ana".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .revision;
    assert!(
        configured <= notice.revision && notice.revision <= now,
        "notice {} between the last change {configured} and the current revision {now}",
        notice.revision
    );
    drop(idle);

    // A watch on bob, who stays idle, while ana's state changes.
    let mut bobs = open(&mut r, 0, "bob").await;
    let anas = Toggler::new(&server, "ana").await.toggle(5).await;
    let last = *anas.last().unwrap();
    let mut previous = 0;
    let covered = loop {
        match next_frame(&mut bobs).await.expect("the watch is healthy") {
            Frame::Event(event) => panic!("bob's watch got an event not about bob: {event:?}"),
            Frame::Progress(p) => {
                assert!(p.revision >= previous, "notices never go back");
                previous = p.revision;
                if p.revision >= last {
                    break p.revision;
                }
            }
        }
    };

    // A notice is a resume point: watching from the next revision loses nothing of bob's.
    let bob = Toggler::new(&server, "bob").await.toggle(1).await[0];
    assert!(bob > covered);
    let resumed = events_through(&mut open(&mut r, covered + 1, "bob").await, bob).await;
    assert_eq!(revisions(&resumed), [bob]);
    let live = events_through(&mut bobs, bob).await;
    assert_eq!(revisions(&live), [bob]);

    drop(bobs);
    server.stop().await;
}

#[tokio::test]
async fn a_stalled_watcher_is_cut_off_with_a_resume_point_and_loses_nothing() {
    // A stalled watch holds a few hundred events (its queue and its HTTP/2 window); the
    // rest overflow the 16-event live buffer.
    const TOGGLES: usize = 2000;
    let server = TestServer::start_with(ServerConfig {
        watch_buffer: 16,
        ..ServerConfig::in_memory()
    })
    .await;
    let mut c = server.clients().await;
    let mut r = routing(&server).await;
    configure(&server, &mut c, &["ana"]).await;
    let mut ana = Toggler::new(&server, "ana").await;

    // The slow watcher never reads until the end; the fast one reads all along, in a task.
    let mut slow = open(&mut routing_with_small_window(&server).await, 0, "").await;
    let mut fast = open(&mut routing(&server).await, 0, "").await;
    let (last_tx, last_rx) = tokio::sync::oneshot::channel::<u64>();
    let fast_reader = tokio::spawn(async move {
        let mut seen = Vec::new();
        let mut last_rx = last_rx;
        let mut last = None;
        loop {
            tokio::select! {
                known = &mut last_rx, if last.is_none() => {
                    last = Some(known.expect("the last revision is sent"));
                }
                frame = next_frame(&mut fast) => match frame {
                    Ok(Frame::Event(event)) => seen.push(event.revision),
                    Ok(Frame::Progress(_)) => {}
                    Err(status) => panic!("the fast watcher failed: {status:?}"),
                },
            }
            if last.is_some_and(|l| seen.last().is_some_and(|s| *s >= l)) {
                return seen;
            }
        }
    });

    // One call after the other: each commit publishes two events, far below the buffer.
    let toggles = ana.toggle(TOGGLES).await;
    let latest = *toggles.last().unwrap();
    last_tx.send(latest).unwrap();
    let fast_seen = fast_reader.await.expect("the fast watcher saw everything");
    assert_eq!(fast_seen.len(), TOGGLES);
    assert_eq!(
        fast_seen, toggles,
        "the fast watcher saw every event, in order"
    );

    // The slow watcher gets what was buffered for it, then ABORTED with a resume point.
    let mut slow_seen = Vec::new();
    let status = loop {
        match next_frame(&mut slow).await {
            Ok(Frame::Event(event)) => {
                slow_seen.push(event.revision);
                assert!(
                    slow_seen.len() < TOGGLES,
                    "the slow watcher got all {TOGGLES} events: the buffers absorbed them, so \
                     the test needs more toggles"
                );
            }
            Ok(Frame::Progress(_)) => {}
            Err(status) => break status,
        }
    };
    assert_eq!(status.code(), Code::Aborted, "{status:?}");
    assert!(
        status.message().contains("watcher fell behind"),
        "{status:?}"
    );
    let resume_from = revision_after(&status, "resume from revision ");
    assert_eq!(
        error_info(&status, "WATCH_LAGGED"),
        HashMap::from([("resume_revision".to_owned(), resume_from)])
    );
    assert!(!slow_seen.is_empty(), "the slow watcher got events first");
    assert_eq!(
        slow_seen,
        toggles[..slow_seen.len()],
        "what the slow watcher got has no gap"
    );
    let last_slow = *slow_seen.last().unwrap();
    assert!(resume_from > last_slow, "{resume_from} <= {last_slow}");

    // Resuming there continues exactly where the slow watcher stopped.
    let resumed = events_through(&mut open(&mut r, resume_from, "").await, latest).await;
    assert_eq!(
        resumed.first().map(|e| e.revision),
        toggles.iter().copied().find(|&t| t >= resume_from),
        "the first resumed event is the first one at or after {resume_from}"
    );
    slow_seen.extend(revisions(&resumed));
    assert_eq!(slow_seen, toggles, "cut off ++ resumed == every event");

    drop(slow);
    server.stop().await;
}

/// A watch catching up from history (here, slowly: its client reads nothing for a while)
/// while the server keeps committing still delivers every event, those committed after it
/// subscribed included: the replay stops at the revision committed when the watch subscribed,
/// and the live part takes over from exactly there. Its client's small HTTP/2 window stalls
/// the replay part-way, so later commits land while it is still replaying.
#[tokio::test]
async fn a_watch_catching_up_while_events_commit_misses_none() {
    let server = TestServer::start_with(ServerConfig {
        watch_progress_ms: 100,
        ..ServerConfig::in_memory()
    })
    .await;
    let mut c = server.clients().await;
    let login = configure(&server, &mut c, &["ana"]).await;
    let mut ana = Toggler::new(&server, "ana").await;
    // Far more history than the replay can push out before the client's window is full.
    let mut expected = ana.toggle(2000).await;

    let mut watch = open(&mut routing_with_small_window(&server).await, 1, "").await;
    let more = ana.toggle(5).await;
    let latest = *more.last().unwrap();
    expected.extend(&more);

    // Read until a progress notice says the watch has considered everything through `latest`.
    let mut seen = Vec::new();
    loop {
        match next_frame(&mut watch).await.expect("the watch is healthy") {
            Frame::Event(event) if event.revision > login => seen.push(event.revision),
            Frame::Event(_) => {}
            Frame::Progress(p) if p.revision >= latest => break,
            Frame::Progress(_) => {}
        }
    }
    let missing: Vec<u64> = expected
        .iter()
        .copied()
        .filter(|r| !seen.contains(r))
        .collect();
    assert!(
        missing.is_empty(),
        "the watch from 1 skipped {missing:?} (committed after it subscribed) yet reported \
         progress through {latest}"
    );
    assert_eq!(seen, expected);

    drop(watch);
    server.stop().await;
}

/// The current head: the first progress notice of an idle watch from now. Nothing commits
/// by itself in these tests (no clients, offers or timers), so it stays the head until the
/// test changes something.
async fn head(r: &mut Routing) -> u64 {
    let mut idle = open(r, 0, "").await;
    match next_frame(&mut idle).await.expect("the watch is healthy") {
        Frame::Progress(notice) => notice.revision,
        Frame::Event(event) => panic!("nothing happened, yet the watch sent {event:?}"),
    }
}

#[tokio::test]
async fn a_start_beyond_the_head_is_out_of_range_naming_the_head() {
    let server = TestServer::start_with(ServerConfig {
        watch_progress_ms: 100,
        ..ServerConfig::in_memory()
    })
    .await;
    let mut c = server.clients().await;
    let mut r = routing(&server).await;
    let login = configure(&server, &mut c, &["ana"]).await;
    // Signed in before the head is read: signing in commits.
    let mut ana = Toggler::new(&server, "ana").await;
    let head = head(&mut r).await;
    assert!(head >= login, "{head} < {login}");

    // The largest revision used to be accepted, its notices claiming u64::MAX - 1.
    for start in [u64::MAX, head + 5, head + 2] {
        assert_eq!(beyond_head(&refusal(&mut r, start).await, start), head);
    }
    // A filtered watch alike.
    let mut filtered = open(&mut r, u64::MAX, "ana").await;
    let status = next_frame(&mut filtered)
        .await
        .expect_err("the watch is refused");
    assert_eq!(beyond_head(&status, u64::MAX), head);

    // head + 1 is the next revision: the watch waits for it, claiming only the head meanwhile.
    let mut next = open(&mut r, head + 1, "").await;
    let Frame::Progress(notice) = next_frame(&mut next).await.expect("the watch is healthy") else {
        panic!("nothing happened, so the first frame is a progress notice");
    };
    assert_eq!(notice.revision, head);
    let toggled = ana.toggle(1).await[0];
    assert!(toggled > head);
    assert_eq!(
        revisions(&events_through(&mut next, toggled).await),
        [toggled]
    );

    // A refusal names the head as it is when the watch subscribes.
    let moved = beyond_head(&refusal(&mut r, u64::MAX).await, u64::MAX);
    assert!(moved >= toggled, "{moved} < {toggled}");
    assert_eq!(
        beyond_head(&refusal(&mut r, moved + 2).await, moved + 2),
        moved
    );

    drop(next);
    server.stop().await;
}

#[tokio::test]
async fn a_session_watch_beyond_the_head_is_out_of_range_naming_the_head() {
    let server = TestServer::start_with(ServerConfig {
        watch_progress_ms: 100,
        ..ServerConfig::in_memory()
    })
    .await;
    let mut c = server.clients().await;
    let mut r = routing(&server).await;
    c.create_agent("ana", PASSWORD).await;
    let resource_id = c.prepare("ana", PASSWORD, false).await.resource_id;
    let head = head(&mut r).await;

    for start in [u64::MAX, head + 5] {
        let status = session_refusal(&mut c, &resource_id, start).await;
        assert_eq!(beyond_head(&status, start), head);
    }

    // From head + 1 the session watch is accepted and its notices name the head.
    let mut watch = c
        .workflow
        .watch_session_state(pb::WatchSessionStateRequest {
            resource_id,
            start_revision: head + 1,
        })
        .await
        .expect("the watch opens")
        .into_inner();
    let frame = tokio::time::timeout(WAIT, watch.next())
        .await
        .expect("a frame arrives in time")
        .expect("the watch goes on")
        .expect("the watch is healthy")
        .frame
        .expect("frames have content");
    use pb::watch_session_state_response::Frame as SessionFrame;
    let SessionFrame::Progress(notice) = frame else {
        panic!("nothing happened, so the first frame is a progress notice: {frame:?}");
    };
    assert_eq!(notice.revision, head);

    drop(watch);
    server.stop().await;
}
