//! Who may call what, over the wire: every RPC the server serves has a row in the policy
//! table, and each one is tried with no token, a bad token and a token of every role. A
//! refusal has the right code, and changes nothing (the revision stays where it was).

mod common;

use std::collections::BTreeSet;

use prost::Message;
use switchboard::auth::{Access, access};
use switchboard::pb;
use switchboard::pb::admin_service_client::AdminServiceClient;
use tonic::Code;
use tonic::codegen::http::uri::PathAndQuery;

use common::{Channel, TestServer, Who, sign_in, signed, unsigned};

const PASSWORD: &str = "correct horse battery staple";
const SUPERVISOR: &str = "sup-1";
const INTEGRATION: &str = "channel-1";

/// Every method the server serves, as `/package.Service/Method`, with whether it streams
/// requests and responses.
fn served_methods() -> Vec<(String, bool, bool)> {
    let sets = [
        pb::FILE_DESCRIPTOR_SET,
        tonic_health::pb::FILE_DESCRIPTOR_SET,
        tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
        tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
    ];
    let mut methods = BTreeSet::new();
    for bytes in sets {
        let set = prost_types::FileDescriptorSet::decode(bytes).expect("a descriptor set");
        for file in set.file {
            for service in &file.service {
                for method in &service.method {
                    methods.insert((
                        format!("/{}.{}/{}", file.package(), service.name(), method.name()),
                        method.client_streaming(),
                        method.server_streaming(),
                    ));
                }
            }
        }
    }
    methods.into_iter().collect()
}

#[test]
fn every_served_rpc_has_a_policy_row() {
    let missing: Vec<String> = served_methods()
        .into_iter()
        .filter(|(path, ..)| access(path).is_none())
        .map(|(path, ..)| path)
        .collect();
    assert!(missing.is_empty(), "RPCs without a policy row: {missing:?}");
    assert!(served_methods().len() > 40, "the descriptor sets were read");
}

/// Calls `path` with an empty request (and, for a stream, an empty request stream); the
/// status it was refused with, or OK.
async fn call(
    channel: &Channel,
    path: &str,
    client_streaming: bool,
    server_streaming: bool,
) -> Code {
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    grpc.ready().await.expect("the connection is ready");
    let path = PathAndQuery::try_from(path.to_owned()).expect("a method path");
    let codec = tonic_prost::ProstCodec::<(), ()>::default();
    let result = match (client_streaming, server_streaming) {
        (false, false) => grpc
            .unary(tonic::Request::new(()), path, codec)
            .await
            .map(drop),
        (false, true) => grpc
            .server_streaming(tonic::Request::new(()), path, codec)
            .await
            .map(drop),
        (true, _) => {
            let requests = tokio_stream::iter(Vec::<()>::new());
            grpc.streaming(tonic::Request::new(requests), path, codec)
                .await
                .map(drop)
        }
    };
    match result {
        Ok(()) => Code::Ok,
        Err(status) => status.code(),
    }
}

/// The revision the directory reflects now.
async fn revision(admin: &mut AdminServiceClient<Channel>) -> u64 {
    admin
        .list_agents(pb::ListAgentsRequest::default())
        .await
        .expect("the admin lists agents")
        .into_inner()
        .revision
}

/// An agent (`ana`), a supervisor, an integration and the first admin, each signed in.
struct Principals {
    agent: Channel,
    supervisor: Channel,
    admin: Channel,
    integration: Channel,
}

async fn principals(server: &TestServer) -> Principals {
    let admin = server.channel().await;
    let mut directory = AdminServiceClient::new(admin.clone());
    directory
        .upsert_agent(pb::UpsertAgentRequest {
            agent: Some(pb::Agent {
                agent_id: "ana".into(),
                display_name: "Ana".into(),
                password: PASSWORD.into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .expect("the agent is created");
    for (id, role) in [
        (SUPERVISOR, pb::Role::Supervisor),
        (INTEGRATION, pb::Role::Integration),
    ] {
        directory
            .upsert_account(pb::UpsertAccountRequest {
                account: Some(pb::Account {
                    account_id: id.into(),
                    display_name: id.into(),
                    secret: PASSWORD.into(),
                    roles: vec![role as i32],
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await
            .expect("the account is created");
    }
    Principals {
        agent: server.channel_as(Who::Agent("ana"), PASSWORD).await,
        supervisor: server.channel_as(Who::Account(SUPERVISOR), PASSWORD).await,
        integration: server.channel_as(Who::Account(INTEGRATION), PASSWORD).await,
        admin,
    }
}

#[tokio::test]
async fn the_role_by_rpc_matrix_answers_the_right_code_and_refusals_change_nothing() {
    let server = TestServer::start().await;
    let p = principals(&server).await;
    let mut directory = AdminServiceClient::new(p.admin.clone());
    let raw = server.raw_channel().await;
    let nobody = unsigned(raw.clone());
    let forged = signed(raw, "eyJhbGciOiJFZERTQSJ9.e30.c2lnbmF0dXJl");
    let roles = [
        (pb::Role::Agent, &p.agent),
        (pb::Role::Supervisor, &p.supervisor),
        (pb::Role::Admin, &p.admin),
        (pb::Role::Integration, &p.integration),
    ];

    let mut checked = 0;
    for (path, client_streaming, server_streaming) in served_methods() {
        let rule = access(&path).expect("every RPC has a row");
        let Access::Roles(allowed) = rule else {
            // Public: callable without a token.
            let code = call(&nobody, &path, client_streaming, server_streaming).await;
            assert!(
                !matches!(code, Code::Unauthenticated | Code::PermissionDenied),
                "{path} is public, yet refused unsigned with {code:?}"
            );
            continue;
        };
        for (who, channel) in [("no token", &nobody), ("a forged token", &forged)] {
            let before = revision(&mut directory).await;
            let code = call(channel, &path, client_streaming, server_streaming).await;
            assert_eq!(code, Code::Unauthenticated, "{path} with {who}");
            assert_eq!(
                revision(&mut directory).await,
                before,
                "{path} with {who} changed state"
            );
        }
        for (role, channel) in roles {
            let before = revision(&mut directory).await;
            let code = call(channel, &path, client_streaming, server_streaming).await;
            let role_allowed = allowed.iter().any(|r| r.wire_name() == role.as_str_name());
            if role_allowed {
                assert!(
                    !matches!(code, Code::Unauthenticated | Code::PermissionDenied),
                    "{path} allows {role:?}, yet refused it with {code:?}"
                );
            } else {
                assert_eq!(code, Code::PermissionDenied, "{path} as {role:?}");
                assert_eq!(
                    revision(&mut directory).await,
                    before,
                    "{path} refused for {role:?} but changed state"
                );
            }
            checked += 1;
        }
    }
    assert!(checked > 150, "only {checked} role checks ran");
    server.stop().await;
}

#[tokio::test]
async fn a_refusal_names_what_is_missing() {
    let server = TestServer::start().await;
    let p = principals(&server).await;
    let refused = AdminServiceClient::new(p.agent.clone())
        .upsert_mrd(pb::UpsertMrdRequest::default())
        .await
        .expect_err("an agent may not configure routing");
    assert_eq!(refused.code(), Code::PermissionDenied);
    assert!(
        refused.message().contains("ROLE_ADMIN"),
        "{}",
        refused.message()
    );
    let unsigned_call = AdminServiceClient::new(unsigned(server.raw_channel().await))
        .list_agents(pb::ListAgentsRequest::default())
        .await
        .expect_err("no token, no call");
    assert_eq!(unsigned_call.code(), Code::Unauthenticated);
    assert!(unsigned_call.message().contains("Bearer"));
    // A token signs in nobody else: the password is still checked at login.
    let raw = server.raw_channel().await;
    let wrong = common::auth::try_sign_in(&raw, Who::Account(SUPERVISOR), "wrong").await;
    assert_eq!(
        wrong.expect_err("a wrong secret").code(),
        Code::Unauthenticated
    );
    let _ = sign_in(&raw, Who::Account(SUPERVISOR), PASSWORD).await;
    server.stop().await;
}
