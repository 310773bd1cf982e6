//! A forwarded call keeps its caller. A follower forwards a sign-in to the leader over its own
//! connection; the leader must still count failed sign-ins per caller, not per follower (or
//! one caller guessing through a follower would lock out everyone behind it), and a caller
//! must not be able to claim another address by sending the forwarding header itself. Callers
//! here connect from addresses of their own on the loopback network (127.0.0.2, 127.0.0.3).

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use common::auth::{Who, login_request};
use common::cluster::Cluster;
use switchboard::credentials::{ACCOUNT_BACKOFF_AFTER, PEER_FACTOR};
use switchboard::pb;
use switchboard::pb::admin_service_client::AdminServiceClient;
use switchboard::pb::auth_service_client::AuthServiceClient;
use tonic::transport::Endpoint;
use tonic::{Code, Status};

/// Failures from one address before its sign-ins must wait.
const PEER_BACKOFF_AFTER: u32 = ACCOUNT_BACKOFF_AFTER * PEER_FACTOR;
const THROTTLED: &str = "too many failed login attempts";
/// The colleague's address, under a seal of the guesser's making.
const FORGED: &str = "127.0.0.3;;00000000000000000000000000000000000000000000000000000000000000";

/// How a caller forges the forwarded caller's header.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Forged {
    /// Only the header naming the caller.
    Caller,
    /// That, and the header naming a forwarding node, as a node's call would carry.
    AsANode,
}

/// A connection to `server` from the loopback address `local`.
async fn from(local: [u8; 4], server: SocketAddr) -> tonic::transport::Channel {
    Endpoint::from_shared(format!("http://{server}"))
        .expect("a valid endpoint")
        .local_address(Some(IpAddr::V4(Ipv4Addr::from(local))))
        .connect()
        .await
        .expect("the node accepts connections")
}

async fn sign_in(
    channel: &tonic::transport::Channel,
    who: Who<'_>,
    password: &str,
    forged: Option<Forged>,
) -> Result<pb::LoginResponse, Status> {
    let mut request = tonic::Request::new(login_request(who, password));
    if let Some(forged) = forged {
        let metadata = request.metadata_mut();
        metadata.insert(
            "x-switchboard-forwarded-for",
            FORGED.parse().expect("ASCII"),
        );
        if forged == Forged::AsANode {
            // A follower does not forward a call that says a node forwarded it already.
            metadata.insert(
                "x-switchboard-forwarded-by",
                "node9".parse().expect("ASCII"),
            );
        }
    }
    AuthServiceClient::new(channel.clone())
        .login(request)
        .await
        .map(tonic::Response::into_inner)
}

fn assert_throttled(result: Result<pb::LoginResponse, Status>) {
    let status = result.expect_err("refused");
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    assert!(status.message().contains(THROTTLED), "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_ins_through_a_follower_are_throttled_per_caller_and_the_header_cannot_be_forged() {
    // A backoff far longer than the test: the throttled address stays throttled throughout.
    let cluster = Cluster::start(2, &["--login-backoff-ms", "600000"]).await;
    let (leader, _) = cluster.leader().await;
    let follower = 1 - leader;
    AdminServiceClient::new(cluster.channel(follower))
        .upsert_agent(pb::UpsertAgentRequest {
            agent: Some(pb::Agent {
                agent_id: "a1".into(),
                display_name: "Agent a1".into(),
                password: "password-a1".into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .expect("the agent is created through the follower");

    // 127.0.0.2 guesses through the follower, each guess for an agent id of its own (so that
    // only its address's count grows), until its address must wait.
    let guesser = from([127, 0, 0, 2], cluster.addr(follower)).await;
    for n in 0..PEER_BACKOFF_AFTER {
        let refused = sign_in(&guesser, Who::Agent(&format!("ghost-{n}")), "wrong", None).await;
        let status = refused.expect_err("a wrong password is refused");
        assert!(
            !status.message().contains(THROTTLED),
            "guess {n}: {status:?}"
        );
    }
    assert_throttled(sign_in(&guesser, Who::Agent("a1"), "password-a1", None).await);

    // Another caller behind the same follower signs in: the leader saw two callers, not one.
    let colleague = from([127, 0, 0, 3], cluster.addr(follower)).await;
    sign_in(&colleague, Who::Agent("a1"), "password-a1", None)
        .await
        .expect("a caller at another address signs in through the same follower");

    // The guesser claims the colleague's address with a header of its own making, through the
    // follower and straight to the leader: the header is replaced or stripped, never trusted.
    let forged = Some(Forged::Caller);
    assert_throttled(sign_in(&guesser, Who::Agent("a1"), "password-a1", forged).await);
    let straight = from([127, 0, 0, 2], cluster.addr(leader)).await;
    for forged in [Forged::Caller, Forged::AsANode] {
        assert_throttled(sign_in(&straight, Who::Agent("a1"), "password-a1", Some(forged)).await);
    }
}
