//! Shared by the integration tests: a real server on `127.0.0.1:0`, generated tonic clients
//! connected to it over a real socket, and small assertion helpers.

#![allow(dead_code)]

pub mod auth;
pub mod cluster;
pub mod desktop;
pub mod feed_desktop;
pub mod journals;
pub mod postgres;
pub mod process;
pub mod replay;
pub mod routing_setup;
pub mod routing_watch;
pub mod scrape;
pub mod tools;
pub mod world;

use std::net::SocketAddr;

use switchboard::config::ServerConfig;
use switchboard::pb;
use switchboard::pb::admin_service_client::AdminServiceClient;
use switchboard::pb::core_service_client::CoreServiceClient;
use switchboard::pb::processor_service_client::ProcessorServiceClient;
use switchboard::pb::workflow_service_client::WorkflowServiceClient;
use switchboard::server::Server;
use tonic::transport::Endpoint;
use tonic::{Code, Status};

// Each test crate uses some of these.
#[allow(unused_imports)]
pub use auth::{ADMIN, Channel, Who, sign_in, signed, unsigned};

/// The processor's id with the default instance domain and name.
pub const DEFAULT_PROCESSOR_ID: &str = "a5b75f35-d9e9-5aa6-a099-ad044a02a733";
pub const WORKFLOW: &str = "WorkflowManager";

pub struct TestServer {
    pub addr: SocketAddr,
    /// Where `/metrics` is served, with `--metrics-listen`.
    pub metrics_addr: Option<SocketAddr>,
    server: Option<Server>,
    /// The first admin's one-time secret.
    admin_secret: String,
    /// Holds the bootstrap secret's file while the server runs.
    _secrets: tempfile::TempDir,
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(ServerConfig::in_memory()).await
    }

    /// Starts with `config`, always on a free loopback port. Unless `config` says where, the
    /// first admin's secret goes to a file of the test's own.
    pub async fn start_with(config: ServerConfig) -> Self {
        let secrets = tempfile::tempdir().expect("a temporary directory");
        // A durable server keeps it in its data directory, where a restart finds it.
        let secret_file = match (&config.bootstrap_secret_file, config.in_memory) {
            (Some(file), _) => file.clone(),
            (None, false) => config.bootstrap_secret_path(),
            (None, true) => secrets.path().join("bootstrap-admin.secret"),
        };
        let config = ServerConfig {
            listen: "127.0.0.1:0".parse().expect("a valid address"),
            bootstrap_secret_file: Some(secret_file.clone()),
            ..config
        };
        let server = Server::start(config).await.expect("the server starts");
        Self {
            addr: server.local_addr(),
            metrics_addr: server.metrics_addr(),
            server: Some(server),
            admin_secret: auth::read_bootstrap_secret(&secret_file),
            _secrets: secrets,
        }
    }

    /// A new connection without any token.
    pub async fn raw_channel(&self) -> tonic::transport::Channel {
        Endpoint::from_shared(format!("http://{}", self.addr))
            .expect("a valid endpoint")
            .connect()
            .await
            .expect("the server accepts connections")
    }

    /// The first admin's one-time secret.
    pub fn admin_secret(&self) -> &str {
        &self.admin_secret
    }

    /// A fresh access token of the first admin.
    pub async fn admin_token(&self) -> String {
        let raw = self.raw_channel().await;
        sign_in(&raw, Who::Account(ADMIN), &self.admin_secret).await
    }

    /// A new connection signed in as the first admin.
    pub async fn channel(&self) -> Channel {
        let token = self.admin_token().await;
        signed(self.raw_channel().await, &token)
    }

    /// A new connection signed in as `who`.
    pub async fn channel_as(&self, who: Who<'_>, password: &str) -> Channel {
        let raw = self.raw_channel().await;
        let token = sign_in(&raw, who, password).await;
        signed(raw, &token)
    }

    /// Every client, signed in as the first admin.
    pub async fn clients(&self) -> Clients {
        Clients::new(self.channel().await)
    }

    /// Every client, signed in as agent `agent_id`.
    pub async fn agent_clients(&self, agent_id: &str, password: &str) -> Clients {
        Clients::new(self.channel_as(Who::Agent(agent_id), password).await)
    }

    /// Stops the server gracefully and waits for it.
    pub async fn stop(mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown().await.expect("the server stops cleanly");
        }
    }
}

#[derive(Clone)]
pub struct Clients {
    pub core: CoreServiceClient<Channel>,
    pub processor: ProcessorServiceClient<Channel>,
    pub workflow: WorkflowServiceClient<Channel>,
    pub admin: AdminServiceClient<Channel>,
}

impl Clients {
    /// Every client on `channel`'s connection.
    pub fn new(channel: Channel) -> Self {
        Self {
            core: CoreServiceClient::new(channel.clone()),
            processor: ProcessorServiceClient::new(channel.clone()),
            workflow: WorkflowServiceClient::new(channel.clone()),
            admin: AdminServiceClient::new(channel),
        }
    }

    pub async fn create_agent(&mut self, agent_id: &str, password: &str) {
        self.admin
            .upsert_agent(pb::UpsertAgentRequest {
                agent: Some(pb::Agent {
                    agent_id: agent_id.into(),
                    display_name: format!("Agent {agent_id}"),
                    password: password.into(),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await
            .expect("the agent is created");
    }

    pub async fn register(&mut self, name: &str) -> String {
        self.core
            .register_client(pb::RegisterClientRequest {
                client_name: name.into(),
                ..Default::default()
            })
            .await
            .expect("the client registers")
            .into_inner()
            .client_id
    }

    pub async fn bind_service(&mut self, client_id: &str, service_id: &str) {
        self.core
            .bind_service(pb::BindServiceRequest {
                client_id: client_id.into(),
                service_id: service_id.into(),
                ..Default::default()
            })
            .await
            .expect("the service binds");
    }

    pub async fn prepare(
        &mut self,
        agent_id: &str,
        password: &str,
        take_over: bool,
    ) -> pb::PrepareSessionResponse {
        self.processor
            .prepare_session(prepare_request(agent_id, password, take_over))
            .await
            .expect("the session is prepared")
            .into_inner()
    }

    pub async fn client_count(&mut self) -> u32 {
        self.core
            .get_server_status(pb::GetServerStatusRequest {})
            .await
            .expect("status answers")
            .into_inner()
            .client_count
    }

    /// Clients bound to each service, processor first.
    pub async fn service_counts(&mut self) -> Vec<u32> {
        self.core
            .list_services(pb::ListServicesRequest {})
            .await
            .expect("services are listed")
            .into_inner()
            .services
            .iter()
            .map(|s| s.client_count)
            .collect()
    }
}

pub fn prepare_request(
    agent_id: &str,
    password: &str,
    take_over: bool,
) -> pb::PrepareSessionRequest {
    pb::PrepareSessionRequest {
        service_id: DEFAULT_PROCESSOR_ID.into(),
        agent: Some(pb::AgentCredentials {
            id: agent_id.into(),
            password: password.into(),
        }),
        model: String::new(),
        r#override: take_over,
        cti: "cti-1".into(),
        ..Default::default()
    }
}

/// Asserts a call failed with `code` and a message that mentions `needle` (a field name, say).
#[track_caller]
pub fn assert_status<T: std::fmt::Debug>(result: Result<T, Status>, code: Code, needle: &str) {
    match result {
        Ok(value) => panic!("expected {code:?} mentioning {needle:?}, got Ok({value:?})"),
        Err(status) => {
            assert_eq!(
                status.code(),
                code,
                "wrong code; message: {}",
                status.message()
            );
            assert!(
                status.message().contains(needle),
                "message {:?} does not mention {needle:?}",
                status.message()
            );
        }
    }
}

/// `(name, enabled)` pairs of a session event's actions.
pub fn action_changes(event: &pb::SessionStateEvent) -> Vec<(String, bool)> {
    event
        .actions
        .iter()
        .map(|a| {
            (
                a.name.clone(),
                a.r#type == pb::ActionChangeType::Enable as i32,
            )
        })
        .collect()
}

/// The routing actions every session shows after its model's, all off for an agent that is
/// not logged in for routing.
pub fn routing_actions_off() -> Vec<(String, bool)> {
    [
        "routing.ready",
        "routing.not_ready",
        "routing.accept",
        "routing.reject",
    ]
    .into_iter()
    .map(|a| (a.to_owned(), false))
    .collect()
}

pub fn login_enabled() -> Vec<(String, bool)> {
    let mut actions = vec![
        ("session.login".into(), true),
        ("session.logout".into(), false),
    ];
    actions.extend(routing_actions_off());
    actions
}

pub fn logout_enabled() -> Vec<(String, bool)> {
    let mut actions = vec![
        ("session.login".into(), false),
        ("session.logout".into(), true),
    ];
    actions.extend(routing_actions_off());
    actions
}
