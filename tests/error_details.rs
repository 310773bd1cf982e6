//! Typed error details, read by a real tonic client with `tonic_types::StatusExt`:
//!
//! - every `INVALID_ARGUMENT` carries a `google.rpc.BadRequest` with one field violation whose
//!   `field` is the field the message names and whose `description` is the rest of the
//!   message, on unary calls and on server streams refused before they start alike;
//! - statuses that are not about a field carry no details.
//!
//! The watch details (`google.rpc.ErrorInfo`) are read in `tests/watch_resume.rs`, where the
//! watches end.

mod common;

use common::{DEFAULT_PROCESSOR_ID, TestServer};
use switchboard::pb;
use switchboard::pb::routing_service_client::RoutingServiceClient;
use tonic::{Code, Status};
use tonic_types::StatusExt;

/// The one field violation of an `INVALID_ARGUMENT`, checked against its message.
#[track_caller]
fn violation<T: std::fmt::Debug>(result: Result<T, Status>) -> (String, String) {
    let status = result.expect_err("the request is refused");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let bad_request = status
        .get_details_bad_request()
        .unwrap_or_else(|| panic!("no BadRequest detail in {status:?}"));
    let [violation] = bad_request.field_violations.as_slice() else {
        panic!("one field violation expected: {bad_request:?}");
    };
    assert_eq!(
        status.message(),
        format!("{}: {}", violation.field, violation.description),
        "the message names the field the detail names"
    );
    (violation.field.clone(), violation.description.clone())
}

#[track_caller]
fn assert_violation<T: std::fmt::Debug>(result: Result<T, Status>, field: &str, starts: &str) {
    let (got_field, description) = violation(result);
    assert_eq!(got_field, field);
    assert!(
        description.starts_with(starts),
        "{field}: {description:?} does not start with {starts:?}"
    );
}

#[tokio::test]
async fn field_violations_carry_a_bad_request_naming_the_field() {
    let server = TestServer::start().await;
    let mut c = server.clients().await;
    let mut routing = RoutingServiceClient::new(server.channel().await);

    let bind = |client_id: &str| pb::BindServiceRequest {
        client_id: client_id.into(),
        service_id: DEFAULT_PROCESSOR_ID.into(),
        ..Default::default()
    };
    assert_violation(
        c.core.bind_service(bind("")).await,
        "client_id",
        "must not be empty",
    );
    assert_violation(
        c.core.bind_service(bind("not-a-uuid")).await,
        "client_id",
        "'not-a-uuid' is not a UUID",
    );

    // A missing message, and a field inside one: the path from the request.
    assert_violation(
        c.admin
            .upsert_agent(pb::UpsertAgentRequest {
                agent: None,
                ..Default::default()
            })
            .await,
        "agent",
        "must be set",
    );
    assert_violation(
        c.admin
            .upsert_agent(pb::UpsertAgentRequest {
                agent: Some(pb::Agent {
                    agent_id: "a/b".into(),
                    display_name: "A".into(),
                    password: "pw-pw-pw-1".into(),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await,
        "agent.agent_id",
        "character '/'",
    );
    assert_violation(
        c.admin
            .list_agents(pb::ListAgentsRequest {
                page_size: 5000,
                page_token: String::new(),
            })
            .await,
        "page_size",
        "must be at most 1000",
    );

    // Server streams refused before they start.
    assert_violation(
        routing
            .watch_routing_events(pb::WatchRoutingEventsRequest {
                kinds: vec![999],
                ..Default::default()
            })
            .await,
        "kinds",
        "999 is not an event kind",
    );
    assert_violation(
        c.workflow
            .watch_session_state(pb::WatchSessionStateRequest {
                resource_id: String::new(),
                start_revision: 0,
            })
            .await,
        "resource_id",
        "must not be empty",
    );

    server.stop().await;
}

#[tokio::test]
async fn other_refusals_carry_no_details() {
    let server = TestServer::start().await;
    let mut c = server.clients().await;

    let not_found = c
        .admin
        .get_agent(pb::GetAgentRequest {
            agent_id: "ghost".into(),
        })
        .await
        .expect_err("no such agent");
    assert_eq!(not_found.code(), Code::NotFound, "{not_found:?}");
    assert!(not_found.details().is_empty(), "{not_found:?}");
    assert!(not_found.get_details_bad_request().is_none());

    c.create_agent("rajat1", "details-Pw-1").await;
    let wrong_password = c
        .processor
        .prepare_session(common::prepare_request("rajat1", "not-it", false))
        .await
        .expect_err("the password is wrong");
    assert_eq!(
        wrong_password.code(),
        Code::Unauthenticated,
        "{wrong_password:?}"
    );
    assert!(
        wrong_password.get_error_details_vec().is_empty(),
        "{wrong_password:?}"
    );

    server.stop().await;
}
