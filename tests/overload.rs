//! Overload and hostile callers: a full inbox refuses writes at once while reads go on, an
//! oversized request is RESOURCE_EXHAUSTED naming the limit, and the stream limits refuse the
//! extra stream with a clear status.

mod common;

use std::sync::{Arc, Condvar, Mutex};

use common::journals::HookedJournal;
use futures_util::FutureExt;
use switchboard::domain::commands::{GetAgent, UpsertMrd};
use switchboard::domain::routing::config::{LogoutAction, MrdConfig, RonaAction};
use switchboard::domain::{DomainError, ModelCatalog, Principal, ServiceDirectory, State};
use switchboard::engine::{Engine, EngineConfig, SystemClock};
use switchboard::store::{Journal, MemoryJournal};
use switchboard::watch::WatchConfig;
use tonic::Code;

/// A gate the journal's writes wait at while it is shut: the engine's pipeline backs up
/// behind it exactly as behind a slow disk, with no timing involved.
#[derive(Default)]
struct Gate {
    open: Mutex<bool>,
    opened: Condvar,
}

impl Gate {
    fn pass(&self) {
        let mut open = self.open.lock().expect("the gate's lock");
        while !*open {
            open = self.opened.wait(open).expect("the gate's lock");
        }
    }

    fn open(&self) {
        *self.open.lock().expect("the gate's lock") = true;
        self.opened.notify_all();
    }
}

fn mrd(n: usize) -> UpsertMrd {
    UpsertMrd(MrdConfig {
        name: format!("mrd{n}"),
        max_tasks: 1,
        interruptible: false,
        offer_timeout_ms: 20_000,
        wrap_up_timeout_ms: 0,
        rona_action: RonaAction::NotReady,
        logout_action: LogoutAction::Close,
        blocks: Vec::new(),
        classifiers: Vec::new(),
        unclassified_queue: String::new(),
        unclassified_priority: 0,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_inbox_refuses_writes_at_once_and_still_takes_reads() {
    const DEPTH: usize = 4;
    let gate = Arc::new(Gate::default());
    let waiting = Arc::clone(&gate);
    let journal = Arc::new(HookedJournal {
        inner: MemoryJournal::new(),
        hook: Box::new(move || {
            waiting.pass();
            Ok(())
        }),
    });
    let state = State::new(
        ServiceDirectory::new(uuid::Uuid::nil(), "Switchboard"),
        Arc::new(ModelCatalog::default()),
    );
    let engine = Engine::start(
        state,
        Arc::clone(&journal) as Arc<dyn Journal>,
        Arc::new(SystemClock),
        EngineConfig {
            snapshot_every: 1_000_000,
            retain_events: 1_000_000,
            request_window_ms: 60_000,
            max_remembered_requests: 1_000,
            task_history_ms: 60_000,
            inbox_depth: DEPTH,
        },
        WatchConfig {
            progress_every: std::time::Duration::from_secs(60),
            live_buffer: 64,
            max_per_principal: 16,
        },
    )
    .expect("the engine starts");
    let admin = Principal::engine();

    // Writes pile up behind the shut journal: the commit pipeline fills, then the inbox. Each
    // write is queued (or refused) on its first poll; a refusal is the first poll's answer.
    let mut accepted = Vec::new();
    let mut refusal = None;
    for n in 0..100_000 {
        let engine = engine.clone();
        let admin = admin.clone();
        let mut write = Box::pin(async move { engine.execute(&admin, mrd(n)).await });
        match (&mut write).now_or_never() {
            Some(Err(error)) => {
                refusal = Some(error);
                break;
            }
            Some(Ok(_)) => panic!("a write was answered while the journal could not take it"),
            None => accepted.push(tokio::spawn(write)),
        }
        // Lets the engine take what waits, so the pipeline behind the journal fills.
        tokio::task::yield_now().await;
    }
    let refusal = refusal.expect("a write is refused once the inbox is full");
    assert!(
        matches!(&refusal, DomainError::Unavailable(message) if message.contains("overloaded")),
        "{refusal:?}"
    );
    let status = tonic::Status::from(refusal);
    assert_eq!(status.code(), Code::Unavailable);
    assert!(
        status.message().contains("the server is overloaded"),
        "{}",
        status.message()
    );

    // A read is still taken, in its own lane, and answered once the state it sees is durable.
    let read = {
        let engine = engine.clone();
        let admin = admin.clone();
        let mut read = Box::pin(async move {
            engine
                .execute(
                    &admin,
                    GetAgent {
                        agent_id: "nobody".into(),
                    },
                )
                .await
        });
        assert!(
            (&mut read).now_or_never().is_none(),
            "a read is queued, not refused, while writes are"
        );
        tokio::spawn(read)
    };

    gate.open();
    let read = read.await.expect("the read's task");
    assert!(
        matches!(read, Err(DomainError::NotFound { .. })),
        "the read is answered: {read:?}"
    );
    // Every write taken is answered and durable; the refused one changed nothing.
    let taken = accepted.len();
    for write in accepted {
        write
            .await
            .expect("the write's task")
            .expect("an accepted write is answered");
    }
    assert_eq!(
        journal
            .last_revision()
            .expect("the journal's last revision"),
        taken as u64,
        "every accepted write is in the journal, and nothing else"
    );
    // With room again, writes go through.
    engine
        .execute(&admin, mrd(1_000_000))
        .await
        .expect("a write after the overload is taken");
    engine.close().await;
}

use common::TestServer;
use switchboard::config::ServerConfig;
use switchboard::pb;
use switchboard::pb::routing_service_client::RoutingServiceClient;

#[tokio::test]
async fn an_oversized_request_is_resource_exhausted_naming_the_limit() {
    const LIMIT: usize = 64 * 1024;
    let server = TestServer::start_with(ServerConfig {
        max_message_bytes: LIMIT,
        ..ServerConfig::in_memory()
    })
    .await;
    let channel = server.channel().await;
    let mut admin = pb::admin_service_client::AdminServiceClient::new(channel.clone());
    let oversized = pb::UpsertAgentRequest {
        agent: Some(pb::Agent {
            agent_id: "big".into(),
            display_name: "x".repeat(LIMIT + 1),
            ..Default::default()
        }),
        ..Default::default()
    };
    let status = admin
        .upsert_agent(oversized)
        .await
        .expect_err("a request over the limit is refused");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(
        status
            .message()
            .contains(&format!("maximum message size of {LIMIT} bytes")),
        "{}",
        status.message()
    );

    // A server stream's request too: not OUT_OF_RANGE, which a watch reads as "relist".
    let mut routing = RoutingServiceClient::new(channel);
    let status = routing
        .watch_routing_events(pb::WatchRoutingEventsRequest {
            agent_id: "a".repeat(LIMIT + 1),
            ..Default::default()
        })
        .await
        .expect_err("a watch request over the limit is refused");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(
        status.message().contains("--max-message-bytes"),
        "{}",
        status.message()
    );

    // A frame of a Connect stream over the limit ends the stream the same way.
    let mut desktop = common::desktop::ConnectedDesktop::open(&server, None).await;
    desktop
        .send(pb::connect_request::Request::BindService(
            pb::BindServiceRequest {
                service_id: "s".repeat(LIMIT + 1),
                ..Default::default()
            },
        ))
        .await;
    let status = desktop
        .ending()
        .await
        .expect("the stream ends with a status");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(
        status.message().contains("--max-message-bytes"),
        "{}",
        status.message()
    );

    // Just under the limit is read and judged on its content.
    let fits = pb::UpsertAgentRequest {
        agent: Some(pb::Agent {
            agent_id: "big".into(),
            display_name: "x".repeat(LIMIT / 2),
            ..Default::default()
        }),
        ..Default::default()
    };
    let status = admin.upsert_agent(fits).await.expect_err("too long a name");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    server.stop().await;
}

#[tokio::test]
async fn a_principal_over_its_watch_limit_is_refused_until_one_ends() {
    const LIMIT: usize = 2;
    let server = TestServer::start_with(ServerConfig {
        max_watches_per_principal: LIMIT,
        ..ServerConfig::in_memory()
    })
    .await;
    let mut routing = RoutingServiceClient::new(server.channel().await);
    let watch = || pb::WatchRoutingEventsRequest::default();
    let mut open = Vec::new();
    for _ in 0..LIMIT {
        open.push(
            routing
                .watch_routing_events(watch())
                .await
                .expect("a watch within the limit")
                .into_inner(),
        );
    }
    let status = routing
        .watch_routing_events(watch())
        .await
        .expect_err("one watch too many is refused");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(
        status.message().contains(&format!("{LIMIT} watches open"))
            && status.message().contains("--max-watches-per-principal"),
        "{}",
        status.message()
    );

    // Another principal is counted apart.
    server
        .clients()
        .await
        .create_agent("ana", "ana-Pa55word")
        .await;
    let mut agents = RoutingServiceClient::new(
        server
            .channel_as(common::Who::Agent("ana"), "ana-Pa55word")
            .await,
    );
    let _agents_watch = agents
        .watch_routing_events(watch())
        .await
        .expect("another principal's watch is counted apart");

    // Once one ends, a new one is taken (its end is noticed shortly after the client drops it).
    drop(open.pop());
    let mut reopened = None;
    for _ in 0..200 {
        match routing.watch_routing_events(watch()).await {
            Ok(stream) => {
                reopened = Some(stream);
                break;
            }
            Err(status) => {
                assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
                tokio::time::sleep(std::time::Duration::from_millis(25)).await;
            }
        }
    }
    assert!(reopened.is_some(), "a watch is taken again once one ended");
    server.stop().await;
}

#[tokio::test]
async fn a_connection_is_told_how_many_streams_it_may_open() {
    const LIMIT: u32 = 3;
    let server = TestServer::start_with(ServerConfig {
        max_streams_per_connection: LIMIT,
        ..ServerConfig::in_memory()
    })
    .await;
    let tcp = tokio::net::TcpStream::connect(server.addr)
        .await
        .expect("the server accepts");
    let (sender, connection) = h2::client::handshake(tcp)
        .await
        .expect("an HTTP/2 handshake");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    // The server's SETTINGS arrive right after the handshake.
    let mut advertised = sender.current_max_send_streams();
    for _ in 0..200 {
        if advertised == LIMIT as usize {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        advertised = sender.current_max_send_streams();
    }
    assert_eq!(
        advertised, LIMIT as usize,
        "SETTINGS_MAX_CONCURRENT_STREAMS"
    );
    server.stop().await;
}
