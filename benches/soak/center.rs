//! The contact center the soak runs, written over gRPC by the first admin: MRD `chat`, a
//! channel server's integration account, and the agents, each signed in with its own password
//! (hashed by the server at its own cost, as for any agent an admin creates).

use futures_util::StreamExt;
use futures_util::stream;
use switchboard::pb;
use switchboard::pb::admin_service_client::AdminServiceClient;
use switchboard::pb::routing_service_client::RoutingServiceClient;
use tonic::transport::Channel;

use crate::auth::{self, Who};
use crate::server::Server;

pub const MRD: &str = "chat";
const PASSWORD: &str = "soak-Password-1";
const CHANNEL_ACCOUNT: &str = "channel-server";
/// Password hashes and checks in flight at once while the center is built: below the
/// server's login queue, so none is refused.
const HASHING_AT_ONCE: usize = 8;
/// HTTP/2 connections the agents share, each agent with its own token on its calls.
const AGENT_CONNECTIONS: usize = 8;

/// How the MRD treats offers and wrap-up.
pub struct MrdSettings {
    pub max_tasks: u32,
    pub offer_timeout_seconds: u32,
    pub wrap_up_timeout_seconds: u32,
}

/// One agent of the center, acting as itself.
pub struct Agent {
    pub id: String,
    pub routing: RoutingServiceClient<auth::Channel>,
}

/// Writes the MRD and the channel server's account; returns the channel server's client.
pub async fn configure(
    server: &Server,
    admin: &auth::Channel,
    mrd: &MrdSettings,
) -> RoutingServiceClient<auth::Channel> {
    let mut admin = AdminServiceClient::new(admin.clone());
    admin
        .upsert_mrd(pb::UpsertMrdRequest {
            mrd: Some(pb::Mrd {
                name: MRD.into(),
                max_tasks: mrd.max_tasks,
                interruptible: false,
                offer_timeout_seconds: mrd.offer_timeout_seconds,
                wrap_up_timeout_seconds: mrd.wrap_up_timeout_seconds,
                rona_action: pb::RonaAction::NotReady.into(),
                // A logout in the middle of the day sends its tasks to the others.
                logout_action: pb::LogoutAction::Requeue.into(),
                blocks: Vec::new(),
                ..Default::default()
            }),
            request_id: "soak-mrd".into(),
        })
        .await
        .expect("the MRD is written");
    admin
        .upsert_account(pb::UpsertAccountRequest {
            account: Some(pb::Account {
                account_id: CHANNEL_ACCOUNT.into(),
                display_name: "Chat channel server".into(),
                secret: PASSWORD.into(),
                roles: vec![pb::Role::Integration.into()],
                client_certificate_sha256: String::new(),
            }),
            request_id: "soak-channel-account".into(),
        })
        .await
        .expect("the channel server's account is written");
    let channel = server.connect().await;
    let token = auth::sign_in(&channel, Who::Account(CHANNEL_ACCOUNT), PASSWORD).await;
    RoutingServiceClient::new(auth::signed(channel, &token))
}

/// Creates `n` agents and signs each in with its own password.
pub async fn agents(server: &Server, admin: &auth::Channel, n: usize) -> Vec<Agent> {
    let ids: Vec<String> = (0..n).map(|i| format!("agent-{i:04}")).collect();
    stream::iter(&ids)
        .map(|id| {
            let mut admin = AdminServiceClient::new(admin.clone());
            async move {
                admin
                    .upsert_agent(pb::UpsertAgentRequest {
                        agent: Some(pb::Agent {
                            agent_id: id.clone(),
                            display_name: format!("Agent {id}"),
                            password: PASSWORD.into(),
                            ..Default::default()
                        }),
                        request_id: format!("soak-agent-{id}"),
                    })
                    .await
                    .unwrap_or_else(|e| panic!("{id} is created: {e:?}"));
            }
        })
        .buffer_unordered(HASHING_AT_ONCE)
        .collect::<()>()
        .await;
    let mut connections: Vec<Channel> = Vec::with_capacity(AGENT_CONNECTIONS);
    for _ in 0..AGENT_CONNECTIONS {
        connections.push(server.connect().await);
    }
    stream::iter(ids.into_iter().enumerate())
        .map(|(i, id)| {
            let connection = connections[i % AGENT_CONNECTIONS].clone();
            async move {
                let token = auth::sign_in(&connection, Who::Agent(&id), PASSWORD).await;
                Agent {
                    routing: RoutingServiceClient::new(auth::signed(connection, &token)),
                    id,
                }
            }
        })
        .buffered(HASHING_AT_ONCE)
        .collect()
        .await
}

/// Logs an agent in on the MRD as itself (its token stands for its password), then READY.
pub async fn log_in_ready(agent: &Agent) -> Result<(), tonic::Status> {
    let mut routing = agent.routing.clone();
    routing
        .login_agent(pb::LoginAgentRequest {
            agent_id: agent.id.clone(),
            mrd: MRD.into(),
            ..Default::default()
        })
        .await?;
    ready(agent).await
}

pub async fn ready(agent: &Agent) -> Result<(), tonic::Status> {
    agent
        .routing
        .clone()
        .change_agent_state(pb::ChangeAgentStateRequest {
            agent_id: agent.id.clone(),
            state: pb::AgentState::Ready.into(),
            mrd: MRD.into(),
            ..Default::default()
        })
        .await
        .map(drop)
}

pub async fn log_out(agent: &Agent) -> Result<(), tonic::Status> {
    agent
        .routing
        .clone()
        .change_agent_state(pb::ChangeAgentStateRequest {
            agent_id: agent.id.clone(),
            state: pb::AgentState::Logout.into(),
            mrd: MRD.into(),
            ..Default::default()
        })
        .await
        .map(drop)
}
