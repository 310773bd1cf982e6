//! Bad input gets the right status, a message that names what to fix, and changes nothing.

mod common;

use common::{DEFAULT_PROCESSOR_ID, TestServer, WORKFLOW, assert_status, prepare_request};
use switchboard::pb;
use tokio_stream::StreamExt;
use tonic::Code;

const PASSWORD: &str = "bad-input-Pw1";

fn bind_service(client_id: &str, service_id: &str) -> pb::BindServiceRequest {
    pb::BindServiceRequest {
        client_id: client_id.into(),
        service_id: service_id.into(),
        ..Default::default()
    }
}

fn bind_resource(client_id: &str, service_id: &str, resource_id: &str) -> pb::BindResourceRequest {
    pb::BindResourceRequest {
        client_id: client_id.into(),
        service_id: service_id.into(),
        resource_id: resource_id.into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn malformed_and_unknown_ids_in_core_calls() {
    let server = TestServer::start().await;
    let mut c = server.clients().await;
    let client_id = c.register("desk").await;
    let unknown_client = uuid::Uuid::new_v4().to_string();

    let r = c
        .core
        .bind_service(bind_service("", DEFAULT_PROCESSOR_ID))
        .await;
    assert_status(r, Code::InvalidArgument, "client_id: must not be empty");
    let r = c
        .core
        .bind_service(bind_service("not-a-uuid", DEFAULT_PROCESSOR_ID))
        .await;
    assert_status(
        r,
        Code::InvalidArgument,
        "client_id: 'not-a-uuid' is not a UUID",
    );
    let r = c
        .core
        .bind_service(bind_service(&unknown_client, DEFAULT_PROCESSOR_ID))
        .await;
    assert_status(r, Code::NotFound, &unknown_client);
    let r = c.core.bind_service(bind_service(&client_id, "")).await;
    assert_status(r, Code::InvalidArgument, "service_id: must not be empty");
    let r = c
        .core
        .bind_service(bind_service(&client_id, "NoSuchService"))
        .await;
    assert_status(r, Code::NotFound, "service 'NoSuchService' not found");
    let r = c
        .core
        .unbind_service(pb::UnbindServiceRequest {
            client_id: client_id.clone(),
            service_id: WORKFLOW.into(),
            ..Default::default()
        })
        .await;
    assert_status(
        r,
        Code::FailedPrecondition,
        "has not bound service 'WorkflowManager'",
    );
    let r = c
        .core
        .unregister_client(pb::UnregisterClientRequest {
            client_id: "x".into(),
            ..Default::default()
        })
        .await;
    assert_status(r, Code::InvalidArgument, "client_id");

    // None of that changed anything.
    assert_eq!(c.client_count().await, 1);
    assert_eq!(c.service_counts().await, vec![0, 0]);
    server.stop().await;
}

#[tokio::test]
async fn resources_need_a_bound_service_and_an_existing_session() {
    let server = TestServer::start().await;
    let mut c = server.clients().await;
    c.create_agent("rajat1", PASSWORD).await;
    let client_id = c.register("desk").await;
    let resource_id = c.prepare("rajat1", PASSWORD, false).await.resource_id;

    let r = c
        .core
        .bind_resource(bind_resource(&client_id, WORKFLOW, &resource_id))
        .await;
    assert_status(r, Code::FailedPrecondition, "call BindService first");

    c.bind_service(&client_id, WORKFLOW).await;
    let r = c
        .core
        .bind_resource(bind_resource(&client_id, WORKFLOW, ""))
        .await;
    assert_status(r, Code::InvalidArgument, "resource_id: must not be empty");
    let r = c
        .core
        .bind_resource(bind_resource(&client_id, WORKFLOW, "Switchboard-nobody"))
        .await;
    assert_status(r, Code::NotFound, "resource 'Switchboard-nobody' not found");
    let r = c
        .core
        .unbind_resource(pb::UnbindResourceRequest {
            client_id: client_id.clone(),
            service_id: WORKFLOW.into(),
            resource_id: resource_id.clone(),
            ..Default::default()
        })
        .await;
    assert_status(r, Code::FailedPrecondition, "has not bound resource");

    // The failed binds left the session alone and bound nothing.
    let state = c
        .workflow
        .get_session_state(pb::GetSessionStateRequest {
            resource_id: resource_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(state.view_state, "initial");
    let r = c
        .core
        .bind_resource(bind_resource(&client_id, WORKFLOW, &resource_id))
        .await;
    assert!(r.is_ok(), "{r:?}");
    server.stop().await;
}

#[tokio::test]
async fn prepare_session_checks_its_fields_and_the_password() {
    let server = TestServer::start().await;
    let mut c = server.clients().await;
    c.create_agent("rajat1", PASSWORD).await;

    let mut no_agent = prepare_request("rajat1", PASSWORD, false);
    no_agent.agent = None;
    assert_status(
        c.processor.prepare_session(no_agent).await,
        Code::InvalidArgument,
        "agent: must be set",
    );
    assert_status(
        c.processor
            .prepare_session(prepare_request("bad id", PASSWORD, false))
            .await,
        Code::InvalidArgument,
        "agent.id",
    );
    assert_status(
        c.processor
            .prepare_session(prepare_request("rajat1", "", false))
            .await,
        Code::InvalidArgument,
        "agent.password: must not be empty",
    );
    let mut wrong_service = prepare_request("rajat1", PASSWORD, false);
    wrong_service.service_id = WORKFLOW.into();
    assert_status(
        c.processor.prepare_session(wrong_service).await,
        Code::InvalidArgument,
        "service_id: 'WorkflowManager' is not the processor service",
    );
    let mut unknown_service = prepare_request("rajat1", PASSWORD, false);
    unknown_service.service_id = uuid::Uuid::new_v4().to_string();
    assert_status(
        c.processor.prepare_session(unknown_service).await,
        Code::NotFound,
        "service",
    );
    let mut unknown_model = prepare_request("rajat1", PASSWORD, false);
    unknown_model.model = "RNA-Nowhere".into();
    assert_status(
        c.processor.prepare_session(unknown_model).await,
        Code::NotFound,
        "model 'RNA-Nowhere' not found",
    );

    // A wrong password and an unknown agent get the same answer.
    for (agent, password) in [("rajat1", "wrong-Pw"), ("nobody", PASSWORD)] {
        let r = c
            .processor
            .prepare_session(prepare_request(agent, password, false))
            .await;
        assert_status(r, Code::Unauthenticated, "agent id or password is wrong");
    }

    // Nothing was created along the way.
    let r = c
        .workflow
        .get_session_state(pb::GetSessionStateRequest {
            resource_id: "Switchboard-rajat1".into(),
        })
        .await;
    assert_status(r, Code::NotFound, "Switchboard-rajat1");
    assert_status(
        c.processor
            .get_capabilities(pb::GetCapabilitiesRequest {
                service_id: String::new(),
            })
            .await,
        Code::InvalidArgument,
        "service_id",
    );
    server.stop().await;
}

#[tokio::test]
async fn workflow_calls_refuse_unknown_sessions_and_actions() {
    let server = TestServer::start().await;
    let mut c = server.clients().await;
    c.create_agent("rajat1", PASSWORD).await;
    let resource_id = c.prepare("rajat1", PASSWORD, false).await.resource_id;
    let invoke = |action: &str| pb::InvokeActionRequest {
        resource_id: resource_id.clone(),
        action: action.into(),
        ..Default::default()
    };

    assert_status(
        c.workflow.invoke_action(invoke("")).await,
        Code::InvalidArgument,
        "action: must not be empty",
    );
    assert_status(
        c.workflow.invoke_action(invoke("session.fly")).await,
        Code::NotFound,
        "action 'session.fly'",
    );
    assert_status(
        c.workflow.invoke_action(invoke("session.logout")).await,
        Code::FailedPrecondition,
        "'session.logout' is not enabled in view state 'initial'",
    );
    let r = c
        .workflow
        .invoke_action(pb::InvokeActionRequest {
            resource_id: "Switchboard-ghost".into(),
            action: "session.login".into(),
            ..Default::default()
        })
        .await;
    assert_status(r, Code::NotFound, "Switchboard-ghost");
    let r = c
        .workflow
        .watch_session_state(pb::WatchSessionStateRequest {
            resource_id: "Switchboard-ghost".into(),
            start_revision: 0,
        })
        .await;
    assert_status(r.map(|_| ()), Code::NotFound, "Switchboard-ghost");
    let r = c
        .workflow
        .get_session_state(pb::GetSessionStateRequest {
            resource_id: String::new(),
        })
        .await;
    assert_status(r, Code::InvalidArgument, "resource_id");

    let state = c
        .workflow
        .get_session_state(pb::GetSessionStateRequest {
            resource_id: resource_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        state.view_state, "initial",
        "refused actions changed nothing"
    );
    server.stop().await;
}

#[tokio::test]
async fn connect_frames_are_validated_too() {
    use switchboard::pb::connect_request::Request as Req;
    use switchboard::pb::connect_response::Frame;

    let server = TestServer::start().await;
    let mut core = server.clients().await.core;
    let (tx, requests) = tokio::sync::mpsc::channel(8);
    let mut rx = core
        .connect(tokio_stream::wrappers::ReceiverStream::new(requests))
        .await
        .unwrap()
        .into_inner();
    rx.next().await.unwrap().unwrap(); // greeting

    let frames = [
        pb::ConnectRequest {
            request_id: String::new(),
            request: Some(Req::ListServices(pb::ListServicesRequest {})),
        },
        pb::ConnectRequest {
            request_id: "r2".into(),
            request: None,
        },
        pb::ConnectRequest {
            request_id: "r3".into(),
            request: Some(Req::BindService(bind_service(
                &uuid::Uuid::new_v4().to_string(),
                WORKFLOW,
            ))),
        },
    ];
    let expected = [
        (Code::InvalidArgument, "request_id: must not be empty"),
        (Code::InvalidArgument, "request: must be set"),
        (
            Code::InvalidArgument,
            "client_id: must be empty or this stream's own client id",
        ),
    ];
    for (frame, (code, needle)) in frames.into_iter().zip(expected) {
        tx.send(frame).await.unwrap();
        let answer = rx.next().await.unwrap().unwrap();
        match answer.frame {
            Some(Frame::Error(e)) => {
                assert_eq!(e.code, code as i32, "{}", e.message);
                assert!(e.message.contains(needle), "{} lacks {needle}", e.message);
            }
            other => panic!("expected an error frame, got {other:?}"),
        }
    }
    server.stop().await;
}

#[tokio::test]
async fn admin_calls_validate_agents_and_pages() {
    let server = TestServer::start().await;
    let mut c = server.clients().await;
    let upsert = |agent_id: &str, password: &str| pb::UpsertAgentRequest {
        agent: Some(pb::Agent {
            agent_id: agent_id.into(),
            display_name: "A".into(),
            password: password.into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    assert_status(
        c.admin
            .upsert_agent(pb::UpsertAgentRequest {
                agent: None,
                ..Default::default()
            })
            .await,
        Code::InvalidArgument,
        "agent: must be set",
    );
    assert_status(
        c.admin.upsert_agent(upsert("", "pw")).await,
        Code::InvalidArgument,
        "agent.agent_id: must not be empty",
    );
    assert_status(
        c.admin.upsert_agent(upsert("a/b", "pw")).await,
        Code::InvalidArgument,
        "agent.agent_id: character '/'",
    );
    assert_status(
        c.admin.upsert_agent(upsert("new-agent", "")).await,
        Code::InvalidArgument,
        "agent.password: must not be empty when creating an agent",
    );
    assert_status(
        c.admin
            .list_agents(pb::ListAgentsRequest {
                page_size: 5000,
                page_token: String::new(),
            })
            .await,
        Code::InvalidArgument,
        "page_size: must be at most 1000",
    );
    assert_status(
        c.admin
            .get_agent(pb::GetAgentRequest {
                agent_id: "ghost".into(),
            })
            .await,
        Code::NotFound,
        "agent 'ghost' not found",
    );
    assert_status(
        c.admin
            .delete_agent(pb::DeleteAgentRequest {
                agent_id: "ghost".into(),
                ..Default::default()
            })
            .await,
        Code::NotFound,
        "agent 'ghost' not found",
    );

    // An agent with a session cannot be deleted.
    c.create_agent("rajat1", PASSWORD).await;
    c.prepare("rajat1", PASSWORD, false).await;
    assert_status(
        c.admin
            .delete_agent(pb::DeleteAgentRequest {
                agent_id: "rajat1".into(),
                ..Default::default()
            })
            .await,
        Code::FailedPrecondition,
        "has session 'Switchboard-rajat1'; end it first",
    );
    let listed = c
        .admin
        .list_agents(pb::ListAgentsRequest {
            page_size: 0,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.agents.len(), 1, "only the valid agent exists");
    server.stop().await;
}
