//! The seed's media-bar login, step for step, through the generated tonic clients against a
//! real server: once with unary calls, once over a single `Connect` stream.

mod common;

use std::time::Duration;

use common::desktop::ConnectedDesktop;
use common::{
    DEFAULT_PROCESSOR_ID, TestServer, WORKFLOW, action_changes, login_enabled, logout_enabled,
};
use switchboard::config::ServerConfig;
use switchboard::pb;
use switchboard::pb::connect_request::Request as Req;
use switchboard::pb::connect_response::Frame;
use tokio_stream::StreamExt;
use tonic::Streaming;

const PASSWORD: &str = "flow-Secret-42";
/// Bounds every wait so a broken server fails the test instead of hanging it.
const WAIT: Duration = Duration::from_secs(10);

/// The next event on a session watch, skipping progress notices.
async fn next_event(watch: &mut Streaming<pb::WatchSessionStateResponse>) -> pb::SessionStateEvent {
    use pb::watch_session_state_response::Frame;
    loop {
        let frame = tokio::time::timeout(WAIT, watch.next())
            .await
            .expect("an event arrives")
            .expect("the watch is open")
            .expect("the watch is healthy");
        match frame.frame.expect("the frame has content") {
            Frame::Event(event) => return event,
            Frame::Progress(_) => {}
        }
    }
}

#[tokio::test]
async fn seed_login_flow_over_unary_calls() {
    let server = TestServer::start().await;
    let mut c = server.clients().await;
    c.create_agent("rajat1", PASSWORD).await;

    // 1. Status: in service, accepting, and which server this is.
    let status = c
        .core
        .get_server_status(pb::GetServerStatusRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.status(), pb::ServiceStatus::InService);
    assert!(status.accepting_clients);
    assert_eq!(status.client_count, 0);
    assert_eq!(status.instance_domain, "default");
    assert_eq!(status.server_id, DEFAULT_PROCESSOR_ID);

    // 2. Register and bind the processor, then the workflow manager.
    let client_id = c.register("media-bar rajat1").await;
    let bound = c
        .core
        .bind_service(pb::BindServiceRequest {
            client_id: client_id.clone(),
            service_id: DEFAULT_PROCESSOR_ID.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (bound.service_name.as_str(), bound.service_type.as_str()),
        ("Switchboard", "switchboard.processor")
    );
    let bound = c
        .core
        .bind_service(pb::BindServiceRequest {
            client_id: client_id.clone(),
            service_id: WORKFLOW.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (bound.service_name.as_str(), bound.service_type.as_str()),
        (WORKFLOW, "switchboard.workflow.manager")
    );

    // 3. Capabilities: the six keys of the seed.
    let capabilities = c
        .processor
        .get_capabilities(pb::GetCapabilitiesRequest {
            service_id: DEFAULT_PROCESSOR_ID.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .capabilities;
    let mut keys: Vec<&str> = capabilities.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "channel-actions",
            "channel-groups-max-per-agent",
            "channel-groups-media-types",
            "channel-groups-supported",
            "single-channels-media-types",
            "single-channels-supported"
        ]
    );

    // 4. Prepare the session.
    let prepared = c.prepare("rajat1", PASSWORD, false).await;
    assert_eq!(prepared.result(), pb::PrepareSessionResult::Success);
    assert_eq!(prepared.resource_id, "Switchboard-rajat1");
    let resource_id = prepared.resource_id;

    // 5. Bind the processor session, then watch and bind the workflow session.
    let bound = c
        .core
        .bind_resource(pb::BindResourceRequest {
            client_id: client_id.clone(),
            service_id: DEFAULT_PROCESSOR_ID.into(),
            resource_id: resource_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(bound.resource_type, "switchboard.processor.session");
    assert_eq!(bound.resource_name, resource_id);

    let before = c
        .workflow
        .get_session_state(pb::GetSessionStateRequest {
            resource_id: resource_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let mut watch = c
        .workflow
        .watch_session_state(pb::WatchSessionStateRequest {
            resource_id: resource_id.clone(),
            start_revision: before.revision + 1,
        })
        .await
        .unwrap()
        .into_inner();
    let bound = c
        .core
        .bind_resource(pb::BindResourceRequest {
            client_id: client_id.clone(),
            service_id: WORKFLOW.into(),
            resource_id: resource_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(bound.resource_type, "switchboard.workflow.session");

    // The `state.updated` event: session.login enabled, session.logout disabled.
    let event = next_event(&mut watch).await;
    assert_eq!(event.name, "state.updated");
    assert_eq!(event.target, resource_id);
    assert_eq!(event.view_state, "initial");
    assert_eq!(action_changes(&event), login_enabled());
    assert_eq!(event.revision, bound.revision);

    // 6. Log in: the view moves on and the flipped event follows.
    let after = c
        .workflow
        .invoke_action(pb::InvokeActionRequest {
            resource_id: resource_id.clone(),
            action: "session.login".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(after.view_state, "logged_in");
    let event = next_event(&mut watch).await;
    assert_eq!(event.name, "state.updated");
    assert_eq!(event.view_state, "logged_in");
    assert_eq!(action_changes(&event), logout_enabled());
    assert_eq!(event.revision, after.revision);

    // And back out.
    let after = c
        .workflow
        .invoke_action(pb::InvokeActionRequest {
            resource_id: resource_id.clone(),
            action: "session.logout".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(after.view_state, "initial");
    assert_eq!(
        action_changes(&next_event(&mut watch).await),
        login_enabled()
    );

    server.stop().await;
}

#[tokio::test]
async fn seed_login_flow_over_one_connect_stream() {
    let server = TestServer::start().await;
    let mut admin = server.clients().await;
    admin.create_agent("rajat1", PASSWORD).await;

    let mut desktop = ConnectedDesktop::open(&server, None).await;
    uuid::Uuid::parse_str(desktop.client_id()).expect("the greeting names a UUID client id");

    let answer = desktop
        .call(Req::GetServerStatus(pb::GetServerStatusRequest {}))
        .await;
    let Frame::GetServerStatus(status) = answer else {
        panic!("{answer:?}")
    };
    assert!(status.accepting_clients);
    assert_eq!(status.client_count, 1, "the stream is a client");

    for service_id in [DEFAULT_PROCESSOR_ID, WORKFLOW] {
        let answer = desktop
            .call(Req::BindService(pb::BindServiceRequest {
                client_id: String::new(),
                service_id: service_id.into(),
                ..Default::default()
            }))
            .await;
        let Frame::BindService(bound) = answer else {
            panic!("{answer:?}")
        };
        assert_eq!(bound.service_id, service_id);
    }

    let answer = desktop
        .call(Req::GetCapabilities(pb::GetCapabilitiesRequest {
            service_id: DEFAULT_PROCESSOR_ID.into(),
        }))
        .await;
    let Frame::GetCapabilities(capabilities) = answer else {
        panic!("{answer:?}")
    };
    assert_eq!(capabilities.capabilities.len(), 6);

    let answer = desktop
        .call(Req::PrepareSession(common::prepare_request(
            "rajat1", PASSWORD, false,
        )))
        .await;
    let Frame::PrepareSession(prepared) = answer else {
        panic!("{answer:?}")
    };
    assert_eq!(prepared.resource_id, "Switchboard-rajat1");

    let answer = desktop
        .call(Req::BindResource(pb::BindResourceRequest {
            client_id: desktop.client_id().to_owned(),
            service_id: DEFAULT_PROCESSOR_ID.into(),
            resource_id: prepared.resource_id.clone(),
            ..Default::default()
        }))
        .await;
    let events = desktop.take_session_events();
    let Frame::BindResource(bound) = answer else {
        panic!("{answer:?}")
    };
    assert_eq!(bound.resource_type, "switchboard.processor.session");
    assert!(
        events.is_empty(),
        "the processor session has no view events"
    );

    // Binding the workflow session brings its state.updated event, ahead of the answer.
    let answer = desktop
        .call(Req::BindResource(pb::BindResourceRequest {
            client_id: String::new(),
            service_id: WORKFLOW.into(),
            resource_id: prepared.resource_id.clone(),
            ..Default::default()
        }))
        .await;
    let events = desktop.take_session_events();
    let Frame::BindResource(bound) = answer else {
        panic!("{answer:?}")
    };
    assert_eq!(bound.resource_type, "switchboard.workflow.session");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].name, "state.updated");
    assert_eq!(events[0].view_state, "initial");
    assert_eq!(action_changes(&events[0]), login_enabled());

    let answer = desktop
        .call(Req::InvokeAction(pb::InvokeActionRequest {
            resource_id: prepared.resource_id.clone(),
            action: "session.login".into(),
            ..Default::default()
        }))
        .await;
    let events = desktop.take_session_events();
    let Frame::InvokeAction(after) = answer else {
        panic!("{answer:?}")
    };
    assert_eq!(after.view_state, "logged_in");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].view_state, "logged_in");
    assert_eq!(action_changes(&events[0]), logout_enabled());
    assert_eq!(events[0].revision, after.revision);

    // Saying goodbye unregisters the desktop: once the stream ends, the server no longer counts
    // it.
    desktop.close().await;
    assert_eq!(admin.client_count().await, 0);
    assert_eq!(admin.service_counts().await, vec![0, 0]);
    // The session stays, logged out: no desktop is left to take its work.
    let state = admin
        .workflow
        .get_session_state(pb::GetSessionStateRequest {
            resource_id: prepared.resource_id,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(state.view_state, "initial");

    server.stop().await;
}

#[tokio::test]
async fn requests_on_a_stream_are_answered_in_order_with_their_ids() {
    let server = TestServer::start().await;
    let mut desktop = ConnectedDesktop::open(&server, None).await;
    let ids = [
        desktop
            .send(Req::ListServices(pb::ListServicesRequest {}))
            .await,
        desktop
            .send(Req::BindService(pb::BindServiceRequest {
                client_id: String::new(),
                service_id: "no-such-service".into(),
                ..Default::default()
            }))
            .await,
        desktop
            .send(Req::GetServerStatus(pb::GetServerStatusRequest {}))
            .await,
    ];
    let mut answers = Vec::new();
    for _ in 0..3 {
        answers.push(desktop.next_frame().await);
    }
    let got: Vec<&str> = answers.iter().map(|a| a.request_id.as_str()).collect();
    assert_eq!(got, ids.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(matches!(answers[0].frame, Some(Frame::ListServices(_))));
    match &answers[1].frame {
        Some(Frame::Error(e)) => {
            assert_eq!(e.code, tonic::Code::NotFound as i32);
            assert!(e.message.contains("no-such-service"), "{}", e.message);
        }
        other => panic!("expected an error frame, got {other:?}"),
    }
    assert!(matches!(answers[2].frame, Some(Frame::GetServerStatus(_))));
    server.stop().await;
}

#[tokio::test]
async fn client_count_follows_registrations_bindings_and_streams() {
    let server = TestServer::start().await;
    let mut c = server.clients().await;
    assert_eq!(c.client_count().await, 0);

    let unary = c.register("unary desktop").await;
    c.bind_service(&unary, DEFAULT_PROCESSOR_ID).await;
    let mut desktop = ConnectedDesktop::open(&server, None).await;
    desktop
        .call(Req::BindService(pb::BindServiceRequest {
            client_id: String::new(),
            service_id: WORKFLOW.into(),
            ..Default::default()
        }))
        .await;
    desktop
        .call(Req::BindService(pb::BindServiceRequest {
            client_id: String::new(),
            service_id: DEFAULT_PROCESSOR_ID.into(),
            ..Default::default()
        }))
        .await;
    assert_eq!(c.client_count().await, 2);
    assert_eq!(c.service_counts().await, vec![2, 1]);

    c.core
        .unregister_client(pb::UnregisterClientRequest {
            client_id: unary,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(c.client_count().await, 1);
    assert_eq!(c.service_counts().await, vec![1, 1]);

    desktop.close().await;
    assert_eq!(c.client_count().await, 0);
    assert_eq!(c.service_counts().await, vec![0, 0]);
    server.stop().await;
}

#[tokio::test]
async fn a_vanished_desktop_is_unregistered_after_its_grace_period() {
    let server = TestServer::start_with(ServerConfig {
        presence_grace_ms: 300,
        ..ServerConfig::in_memory()
    })
    .await;
    let mut c = server.clients().await;
    let desktop = ConnectedDesktop::open(&server, None).await;
    assert_eq!(c.client_count().await, 1);
    // The desktop's connection goes away without closing its side cleanly.
    desktop.vanish();
    let mut polls = 0;
    while c.client_count().await != 0 {
        polls += 1;
        assert!(polls < 500, "the vanished desktop is still counted");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server.stop().await;
}

#[tokio::test]
async fn taking_a_session_over_tells_the_desktop_that_had_it() {
    let server = TestServer::start().await;
    let mut c = server.clients().await;
    c.create_agent("vishal", PASSWORD).await;

    let mut first = ConnectedDesktop::open(&server, None).await;
    first
        .call(Req::BindService(pb::BindServiceRequest {
            client_id: String::new(),
            service_id: WORKFLOW.into(),
            ..Default::default()
        }))
        .await;
    let answer = first
        .call(Req::PrepareSession(common::prepare_request(
            "vishal", PASSWORD, false,
        )))
        .await;
    let Frame::PrepareSession(prepared) = answer else {
        panic!("{answer:?}")
    };
    first
        .call(Req::BindResource(pb::BindResourceRequest {
            client_id: String::new(),
            service_id: WORKFLOW.into(),
            resource_id: prepared.resource_id.clone(),
            ..Default::default()
        }))
        .await;
    first
        .call(Req::InvokeAction(pb::InvokeActionRequest {
            resource_id: prepared.resource_id.clone(),
            action: "session.login".into(),
            ..Default::default()
        }))
        .await;

    // Without override: confirm, and nothing changes.
    let confirm = c.prepare("vishal", PASSWORD, false).await;
    assert_eq!(confirm.result(), pb::PrepareSessionResult::Confirm);
    assert_eq!(confirm.resource_id, prepared.resource_id);
    assert!(confirm.message.contains("override"), "{}", confirm.message);

    // With override: taken over; the first desktop is told and loses its binding.
    first.take_session_events(); // the login's own events are not under test here
    let taken = c.prepare("vishal", PASSWORD, true).await;
    assert_eq!(taken.result(), pb::PrepareSessionResult::Success);
    let event = first.next_session_event().await;
    assert_eq!(event.name, "session.taken_over");
    assert_eq!(event.target, prepared.resource_id);
    assert_eq!(event.view_state, "logged_in", "the view stays where it was");
    assert_eq!(event.revision, taken.revision);

    // The session's later changes no longer reach the first desktop.
    let second = c.register("second desktop").await;
    c.bind_service(&second, WORKFLOW).await;
    c.core
        .bind_resource(pb::BindResourceRequest {
            client_id: second,
            service_id: WORKFLOW.into(),
            resource_id: prepared.resource_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    first
        .call(Req::ListServices(pb::ListServicesRequest {}))
        .await;
    let events = first.take_session_events();
    assert!(events.is_empty(), "unexpected events {events:?}");

    // Ending the session: gone for everyone.
    c.processor
        .end_session(pb::EndSessionRequest {
            resource_id: prepared.resource_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    let state = c
        .workflow
        .get_session_state(pb::GetSessionStateRequest {
            resource_id: prepared.resource_id,
        })
        .await;
    common::assert_status(state, tonic::Code::NotFound, "Switchboard-vishal");
    server.stop().await;
}

#[tokio::test]
async fn shutdown_ends_open_streams_with_unavailable() {
    let server = TestServer::start().await;
    let mut desktop = ConnectedDesktop::open(&server, None).await;
    let stop = tokio::spawn(server.stop());
    let status = desktop
        .ending()
        .await
        .expect("the stream ends with an error status");
    assert_eq!(status.code(), tonic::Code::Unavailable);
    assert!(
        status.message().contains("reconnect"),
        "{}",
        status.message()
    );
    stop.await.unwrap();
}
