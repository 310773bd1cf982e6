//! Memory per connected, logged-in, idle desktop, from the server's resident set size
//! (`VmRSS` in `/proc/<pid>/status`) before and after the desktops arrive.
//!
//! A desktop is what a real one holds: a connection of its own, signed in as its agent
//! (`AuthService.Login`, the access token on every call), with a `Connect` stream open,
//! both services bound, its agent's session prepared (the password checked) and both of the
//! session's resources bound. Baseline: the echo server with as many connections, each with a
//! `Subscribe` stream open.

use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream;
use switchboard::domain::services::PROCESSOR_SERVICE_TYPE;
use switchboard::pb;
use switchboard::pb::connect_request::Request as Req;
use switchboard::pb::connect_response::Frame;
use switchboard::pb::core_service_client::CoreServiceClient;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;

use crate::auth::{self, Who};
use crate::echo::pb::SubscribeRequest;
use crate::echo::pb::echo_service_client::EchoServiceClient;
use crate::procs::{Cores, ServerChild, ServerKind};
use crate::seed::Seeder;
use crate::stats::heading;
use crate::unary::PASSWORD;

pub struct Settings {
    pub desktops: usize,
}

/// Desktops signing in at once while the population is built.
const SIGNING_IN_AT_ONCE: usize = 64;
/// Time for the server to settle (buffers released, lazy work done) before each reading.
const SETTLE: Duration = Duration::from_secs(1);

pub async fn run(settings: &Settings, cores: Option<Cores>) {
    heading("Memory per connected, logged-in, idle desktop");
    let n = settings.desktops;
    let echo = echo_per_connection(n, cores).await;
    let switchboard = switchboard_per_desktop(n, cores).await;
    println!();
    println!("| server | before (KiB) | with {n} (KiB) | per desktop (KiB) | / echo |");
    println!("|---|---|---|---|---|");
    for (name, (before, after)) in [
        ("echo, one Subscribe stream each (baseline)", echo),
        ("Switchboard, signed-in desktop", switchboard),
    ] {
        println!(
            "| {name} | {before} | {after} | {:.1} | {:.2} |",
            per(before, after, n),
            per(before, after, n) / per(echo.0, echo.1, n)
        );
    }
    println!(
        "\nTarget: at most 16 KiB per idle desktop (here {:.1}).",
        per(switchboard.0, switchboard.1, n)
    );
}

fn per(before: u64, after: u64, n: usize) -> f64 {
    after.saturating_sub(before) as f64 / n as f64
}

/// RSS before and after `n` connections each holding a `Subscribe` stream.
async fn echo_per_connection(n: usize, cores: Option<Cores>) -> (u64, u64) {
    let server = ServerChild::start(&ServerKind::Echo, cores.map(|c| c.server));
    tokio::time::sleep(SETTLE).await;
    let before = server.rss_kib();
    let streams: Vec<Streaming<crate::echo::pb::EchoReply>> = stream::iter(0..n)
        .map(|_| async {
            EchoServiceClient::new(server.connect().await)
                .subscribe(SubscribeRequest {})
                .await
                .expect("the stream opens")
                .into_inner()
        })
        .buffer_unordered(SIGNING_IN_AT_ONCE)
        .collect()
        .await;
    tokio::time::sleep(SETTLE).await;
    let after = server.rss_kib();
    println!(
        "echo: {} KiB -> {} KiB with {} streams open",
        before,
        after,
        streams.len()
    );
    (before, after)
}

/// RSS before and after `n` desktops sign in, over a journal already holding their agents.
async fn switchboard_per_desktop(n: usize, cores: Option<Cores>) -> (u64, u64) {
    let data = tempfile::tempdir().expect("a temporary directory");
    let mut seeder = Seeder::new(data.path(), PASSWORD);
    seeder.world.mrd("chat", 1);
    for i in 0..n {
        seeder.world.agent(&agent_id(i), &[]);
        seeder.flush_some();
    }
    seeder.finish();
    let server = ServerChild::start(
        &ServerKind::Switchboard {
            data_dir: data.path(),
            flags: &[],
        },
        cores.map(|c| c.server),
    );
    let services = CoreServiceClient::new(server.connect().await)
        .list_services(pb::ListServicesRequest {})
        .await
        .expect("the services")
        .into_inner()
        .services;
    tokio::time::sleep(SETTLE).await;
    let before = server.rss_kib();

    let desktops: Vec<Desktop> = stream::iter(0..n)
        .map(|i| {
            let services = &services;
            let server = &server;
            async move { Desktop::sign_in(server, services, &agent_id(i)).await }
        })
        .buffer_unordered(SIGNING_IN_AT_ONCE)
        .collect()
        .await;
    tokio::time::sleep(SETTLE).await;
    let after = server.rss_kib();
    let status = CoreServiceClient::new(server.connect().await)
        .get_server_status(pb::GetServerStatusRequest {})
        .await
        .expect("the server's status")
        .into_inner();
    assert_eq!(
        status.client_count as usize,
        desktops.len(),
        "every desktop is a registered client"
    );
    println!(
        "Switchboard: {} KiB -> {} KiB with {} desktops signed in ({} clients registered)",
        before,
        after,
        desktops.len(),
        status.client_count
    );
    (before, after)
}

fn agent_id(i: usize) -> String {
    format!("agent-{i:06}")
}

/// A signed-in desktop; dropping it closes its stream.
struct Desktop {
    _requests: mpsc::Sender<pb::ConnectRequest>,
    _responses: Streaming<pb::ConnectResponse>,
}

impl Desktop {
    async fn sign_in(server: &ServerChild, services: &[pb::ServiceInfo], agent_id: &str) -> Self {
        let (requests, rx) = mpsc::channel(4);
        let channel = server.connect().await;
        let token = auth::sign_in(&channel, Who::Agent(agent_id), PASSWORD).await;
        let mut responses = CoreServiceClient::new(auth::signed(channel, &token))
            .connect(ReceiverStream::new(rx))
            .await
            .expect("the stream opens")
            .into_inner();
        let mut call = async |request: Req| -> Frame {
            requests
                .send(pb::ConnectRequest {
                    request_id: "r".into(),
                    request: Some(request),
                })
                .await
                .expect("the stream takes requests");
            loop {
                let frame = responses
                    .next()
                    .await
                    .expect("the stream is open")
                    .expect("the stream is healthy")
                    .frame
                    .expect("frames have content");
                match frame {
                    Frame::Connected(_) | Frame::Event(_) => {}
                    Frame::Error(e) => panic!("{agent_id}: {e:?}"),
                    answer => return answer,
                }
            }
        };
        for service in services {
            call(Req::BindService(pb::BindServiceRequest {
                service_id: service.service_id.clone(),
                ..Default::default()
            }))
            .await;
        }
        let processor = services
            .iter()
            .find(|s| s.service_type == PROCESSOR_SERVICE_TYPE)
            .expect("a processor service");
        let Frame::PrepareSession(prepared) =
            call(Req::PrepareSession(pb::PrepareSessionRequest {
                service_id: processor.service_id.clone(),
                agent: Some(pb::AgentCredentials {
                    id: agent_id.into(),
                    password: PASSWORD.into(),
                }),
                cti: "cti-1".into(),
                ..Default::default()
            }))
            .await
        else {
            panic!("PrepareSession answers with its own frame");
        };
        for service in services {
            call(Req::BindResource(pb::BindResourceRequest {
                service_id: service.service_id.clone(),
                resource_id: prepared.resource_id.clone(),
                ..Default::default()
            }))
            .await;
        }
        Self {
            _requests: requests,
            _responses: responses,
        }
    }
}
