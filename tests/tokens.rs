//! Access and refresh tokens over the wire: every kind of bad access token is refused, a
//! password change or deletion voids the tokens issued before, a reused refresh token ends its
//! whole chain, and a revoked principal's open streams end with UNAUTHENTICATED.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use switchboard::auth::{SigningKey, TokenConfig, TokenIssuer};
use switchboard::config::ServerConfig;
use switchboard::domain::{Actor, Role};
use switchboard::pb;
use switchboard::pb::admin_service_client::AdminServiceClient;
use switchboard::pb::auth_service_client::AuthServiceClient;
use switchboard::pb::routing_service_client::RoutingServiceClient;
use tokio_stream::StreamExt;
use tonic::Code;

use common::desktop::ConnectedDesktop;
use common::{Channel, TestServer, Who, signed};

const PASSWORD: &str = "correct horse battery staple";
/// A failure guard for waits on the server, never what a pass depends on.
const WAIT: Duration = Duration::from_secs(10);

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}

fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

/// A durable server (its signing key is in its data directory, for the test to forge with)
/// with agent `ana`.
struct Setup {
    server: TestServer,
    key: SigningKey,
    _dir: tempfile::TempDir,
}

async fn setup() -> Setup {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let server = TestServer::start_with(ServerConfig {
        data_dir: dir.path().to_owned(),
        in_memory: false,
        ..ServerConfig::in_memory()
    })
    .await;
    let der = std::fs::read(dir.path().join(switchboard::auth::tokens::KEY_FILE))
        .expect("the signing key is in the data directory");
    let key = SigningKey::from_pkcs8(&der).expect("a PKCS#8 key");
    server.clients().await.create_agent("ana", PASSWORD).await;
    Setup {
        server,
        key,
        _dir: dir,
    }
}

fn issuer(key: SigningKey, issuer: &str, audience: &str) -> TokenIssuer {
    TokenIssuer::new(
        TokenConfig {
            issuer: issuer.into(),
            audience: audience.into(),
            ttl_secs: 300,
        },
        key,
    )
}

fn token(issuer: &TokenIssuer, version: u64, now: u64) -> String {
    let roles: BTreeSet<Role> = [Role::Agent].into();
    issuer
        .issue(&Actor::Agent("ana".into()), &roles, version, now)
        .expect("a token is signed")
        .token
}

async fn who_am_i(server: &TestServer, token: &str) -> Result<String, tonic::Status> {
    AuthServiceClient::new(signed(server.raw_channel().await, token))
        .who_am_i(pb::WhoAmIRequest {})
        .await
        .map(|r| r.into_inner().principal)
}

#[track_caller]
fn assert_refused(result: Result<String, tonic::Status>, what: &str) {
    match result {
        Ok(principal) => panic!("{what}: accepted as {principal}"),
        Err(status) => assert_eq!(status.code(), Code::Unauthenticated, "{what}: {status:?}"),
    }
}

#[tokio::test]
async fn every_kind_of_bad_access_token_is_refused() {
    let Setup { server, key, _dir } = setup().await;
    let now = now_secs();
    let genuine = issuer(key.clone(), "switchboard", "switchboard:default");
    // The forging works: a token made like the server's is accepted.
    assert_eq!(
        who_am_i(&server, &token(&genuine, 1, now)).await.unwrap(),
        "agent:ana"
    );

    let expired = token(&genuine, 1, now - 3_600);
    assert_refused(who_am_i(&server, &expired).await, "expired");

    let valid = token(&genuine, 1, now);
    let mut parts: Vec<String> = valid.split('.').map(str::to_owned).collect();
    // The claims' first character changed: `eyJ...` (`{"...`) no longer matches the signature.
    assert!(parts[1].starts_with('e'), "claims are a JSON object");
    parts[1].replace_range(0..1, "f");
    assert_refused(who_am_i(&server, &parts.join(".")).await, "tampered");

    let header = format!(r#"{{"alg":"none","typ":"JWT","kid":"{}"}}"#, key.kid());
    let payload = valid.split('.').nth(1).unwrap();
    let unsigned = format!("{}.{payload}.", base64url(header.as_bytes()));
    assert_refused(who_am_i(&server, &unsigned).await, "alg none");

    let other_issuer = issuer(key.clone(), "someone-else", "switchboard:default");
    assert_refused(
        who_am_i(&server, &token(&other_issuer, 1, now)).await,
        "wrong issuer",
    );
    let other_audience = issuer(key, "switchboard", "switchboard:elsewhere");
    assert_refused(
        who_am_i(&server, &token(&other_audience, 1, now)).await,
        "wrong audience",
    );
    let unknown_key = issuer(
        SigningKey::generate().unwrap(),
        "switchboard",
        "switchboard:default",
    );
    assert_refused(
        who_am_i(&server, &token(&unknown_key, 1, now)).await,
        "unknown kid",
    );
    assert_refused(
        who_am_i(&server, &token(&genuine, 0, now)).await,
        "an older credential version",
    );
    server.stop().await;
}

#[tokio::test]
async fn a_password_change_or_a_deletion_voids_the_tokens_issued_before() {
    let Setup { server, _dir, .. } = setup().await;
    let raw = server.raw_channel().await;
    let before = common::sign_in(&raw, Who::Agent("ana"), PASSWORD).await;
    assert_eq!(who_am_i(&server, &before).await.unwrap(), "agent:ana");

    let mut admin = AdminServiceClient::new(server.channel().await);
    let mut agent = pb::Agent {
        agent_id: "ana".into(),
        display_name: "Ana".into(),
        password: "a new password".into(),
        ..Default::default()
    };
    admin
        .upsert_agent(pb::UpsertAgentRequest {
            agent: Some(agent.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_refused(who_am_i(&server, &before).await, "older than the password");
    let after = common::sign_in(&raw, Who::Agent("ana"), "a new password").await;
    assert_eq!(who_am_i(&server, &after).await.unwrap(), "agent:ana");

    // Same password, same roles: nothing to void.
    agent.password.clear();
    admin
        .upsert_agent(pb::UpsertAgentRequest {
            agent: Some(agent),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(who_am_i(&server, &after).await.unwrap(), "agent:ana");

    admin
        .delete_agent(pb::DeleteAgentRequest {
            agent_id: "ana".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_refused(who_am_i(&server, &after).await, "a deleted principal's");
    server.stop().await;
}

#[tokio::test]
async fn a_reused_refresh_token_revokes_its_whole_chain() {
    let Setup { server, _dir, .. } = setup().await;
    let raw = server.raw_channel().await;
    let mut auth = AuthServiceClient::new(raw.clone());
    let login = common::auth::try_sign_in(&raw, Who::Agent("ana"), PASSWORD)
        .await
        .unwrap();
    let refresh = |token: &str| pb::RefreshRequest {
        refresh_token: token.into(),
    };
    let second = auth
        .refresh(refresh(&login.refresh_token))
        .await
        .expect("the first refresh token is live")
        .into_inner();
    assert_ne!(second.refresh_token, login.refresh_token, "tokens rotate");
    assert_eq!(
        who_am_i(&server, &second.access_token).await.unwrap(),
        "agent:ana"
    );

    let reused = auth.refresh(refresh(&login.refresh_token)).await;
    assert_eq!(reused.unwrap_err().code(), Code::Unauthenticated, "reuse");
    let after_reuse = auth.refresh(refresh(&second.refresh_token)).await;
    assert_eq!(
        after_reuse.unwrap_err().code(),
        Code::Unauthenticated,
        "the chain ended with the reuse"
    );

    // Logout ends a chain; a refresh token of another login is untouched.
    let a = common::auth::try_sign_in(&raw, Who::Agent("ana"), PASSWORD)
        .await
        .unwrap();
    let b = common::auth::try_sign_in(&raw, Who::Agent("ana"), PASSWORD)
        .await
        .unwrap();
    auth.logout(pb::LogoutRequest {
        refresh_token: a.refresh_token.clone(),
    })
    .await
    .unwrap();
    assert_eq!(
        auth.refresh(refresh(&a.refresh_token))
            .await
            .unwrap_err()
            .code(),
        Code::Unauthenticated
    );
    auth.refresh(refresh(&b.refresh_token))
        .await
        .expect("another login's chain goes on");
    let garbage = auth.refresh(refresh("rt1.not-a-token")).await;
    assert_eq!(garbage.unwrap_err().code(), Code::Unauthenticated);
    server.stop().await;
}

#[tokio::test]
async fn a_revoked_principal_s_open_streams_end_unauthenticated() {
    let Setup { server, _dir, .. } = setup().await;
    let raw = server.raw_channel().await;
    let token = common::sign_in(&raw, Who::Agent("ana"), PASSWORD).await;
    let agent: Channel = signed(raw, &token);
    let mut watch = RoutingServiceClient::new(agent)
        .watch_routing_events(pb::WatchRoutingEventsRequest::default())
        .await
        .expect("the agent watches its own events")
        .into_inner();
    let mut desktop = ConnectedDesktop::open_as(server.addr, &token, None).await;

    AdminServiceClient::new(server.channel().await)
        .revoke_credentials(pb::RevokeCredentialsRequest {
            principal: Some(pb::revoke_credentials_request::Principal::AgentId(
                "ana".into(),
            )),
            ..Default::default()
        })
        .await
        .expect("the admin forces ana out");

    let ended = tokio::time::timeout(WAIT, async {
        loop {
            match watch.next().await {
                Some(Ok(_)) => continue,
                Some(Err(status)) => break status,
                None => panic!("the watch ended without a status"),
            }
        }
    })
    .await
    .expect("the watch ends");
    assert_eq!(ended.code(), Code::Unauthenticated, "{ended:?}");
    let ended = tokio::time::timeout(WAIT, desktop.ending())
        .await
        .expect("the desktop's stream ends")
        .expect("the server ends it with a status");
    assert_eq!(ended.code(), Code::Unauthenticated, "{ended:?}");
    assert_refused(who_am_i(&server, &token).await, "a revoked principal's");
    server.stop().await;
}
