//! Bad input gets the right status, a message that names what to fix, and changes nothing.

mod common;

use common::Channel;
use common::{DEFAULT_PROCESSOR_ID, TestServer, WORKFLOW, assert_status, prepare_request};
use switchboard::pb;
use switchboard::pb::routing_service_client::RoutingServiceClient;
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
    // An empty password is no longer malformed: the agent itself, signed in, may leave it out.
    // Anyone else must prove the agent with its password, so the admin is refused.
    assert_status(
        c.processor
            .prepare_session(prepare_request("rajat1", "", false))
            .await,
        Code::PermissionDenied,
        "account:admin may not act as agent 'rajat1'",
    );
    assert_status(
        c.processor
            .prepare_session(prepare_request("rajat1", &"p".repeat(1025), false))
            .await,
        Code::InvalidArgument,
        "agent.password: must be at most 1024 bytes",
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

    // The empty password refused to the admin above is fine from the agent itself.
    let mut rajat1 = server.agent_clients("rajat1", PASSWORD).await;
    let prepared = rajat1.prepare("rajat1", "", false).await;
    assert_eq!(prepared.resource_id, "Switchboard-rajat1");
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

// ----- bounds: every field a request carries has a maximum -------------------------------------

type Routing = RoutingServiceClient<Channel>;

async fn routing(server: &TestServer) -> Routing {
    RoutingServiceClient::new(server.channel().await)
}

/// The characters no id or name may hold, with the code point a refusal names.
const CONTROLS: [(&str, &str); 5] = [
    ("\0", "U+0000"),
    ("\u{1b}", "U+001B"),
    ("\r", "U+000D"),
    ("\n", "U+000A"),
    ("\u{202E}", "U+202E"),
];

/// An agent `ana` that would be created, edited by `edit`.
fn upsert_ana(edit: impl FnOnce(&mut pb::Agent)) -> pb::UpsertAgentRequest {
    let mut agent = pb::Agent {
        agent_id: "ana".into(),
        display_name: "Ana".into(),
        password: PASSWORD.into(),
        ..Default::default()
    };
    edit(&mut agent);
    pb::UpsertAgentRequest {
        agent: Some(agent),
        ..Default::default()
    }
}

/// Asserts a call was refused with INVALID_ARGUMENT, its message naming `field` first and
/// mentioning `reason`.
#[track_caller]
fn assert_refused<T: std::fmt::Debug>(
    result: Result<tonic::Response<T>, tonic::Status>,
    field: &str,
    reason: &str,
) {
    match result {
        Ok(answer) => panic!("expected {field} to be refused, got {answer:?}"),
        Err(status) => {
            let message = status.message();
            assert_eq!(status.code(), Code::InvalidArgument, "{message}");
            assert!(
                message.starts_with(&format!("{field}: ")),
                "{message:?} does not name {field}"
            );
            assert!(message.contains(reason), "{message:?} lacks {reason:?}");
        }
    }
}

async fn assert_no_agent(c: &mut common::Clients, agent_id: &str) {
    let r = c
        .admin
        .get_agent(pb::GetAgentRequest {
            agent_id: agent_id.into(),
        })
        .await;
    assert_status(r, Code::NotFound, &format!("agent '{agent_id}' not found"));
}

fn chat_mrd() -> pb::Mrd {
    pb::Mrd {
        name: "chat".into(),
        max_tasks: 2,
        offer_timeout_seconds: 20,
        ..Default::default()
    }
}

async fn configure_chat(c: &mut common::Clients) {
    c.admin
        .upsert_mrd(pb::UpsertMrdRequest {
            mrd: Some(chat_mrd()),
            ..Default::default()
        })
        .await
        .expect("the MRD is created");
}

fn chat_task(edit: impl FnOnce(&mut pb::NewTaskRequest)) -> pb::NewTaskRequest {
    let mut task = pb::NewTaskRequest {
        mrd: "chat".into(),
        ..Default::default()
    };
    edit(&mut task);
    task
}

async fn task_ids(r: &mut Routing) -> Vec<String> {
    r.list_tasks(pb::ListTasksRequest::default())
        .await
        .expect("tasks are listed")
        .into_inner()
        .tasks
        .into_iter()
        .map(|t| t.task_id)
        .collect()
}

#[tokio::test]
async fn agent_attributes_need_a_proficiency_and_an_ascii_name_of_at_most_64() {
    let server = TestServer::start().await;
    let mut c = server.clients().await;
    let attributes =
        |name: &str, value: u32| upsert_ana(|a| a.attributes = [(name.to_owned(), value)].into());

    let r = c.admin.upsert_agent(attributes("sales", 0)).await;
    assert_refused(
        r,
        "agent.attributes",
        "'sales' is 0; a proficiency is 1 to 10",
    );
    for name in ["sälj", "販売", "ﬁnance"] {
        let r = c.admin.upsert_agent(attributes(name, 5)).await;
        assert_refused(r, "agent.attributes", "is not allowed in an attribute name");
    }
    let r = c.admin.upsert_agent(attributes(&"a".repeat(128), 5)).await;
    assert_refused(r, "agent.attributes", "longer than 64 characters");

    assert_no_agent(&mut c, "ana").await;
    // The longest name that is allowed is stored.
    let ok = c
        .admin
        .upsert_agent(attributes(&"a".repeat(64), 10))
        .await
        .expect("a 64-character attribute name is fine")
        .into_inner();
    assert_eq!(ok.agent.unwrap().attributes.len(), 1);
    server.stop().await;
}

#[tokio::test]
async fn durations_of_u32_max_seconds_are_refused_naming_the_field() {
    let server = TestServer::start().await;
    let mut c = server.clients().await;
    configure_chat(&mut c).await;
    let max = u32::MAX;

    let mrd = |edit: fn(&mut pb::Mrd)| {
        let mut mrd = pb::Mrd {
            name: "voice".into(),
            ..chat_mrd()
        };
        edit(&mut mrd);
        pb::UpsertMrdRequest {
            mrd: Some(mrd),
            ..Default::default()
        }
    };
    let r = c
        .admin
        .upsert_mrd(mrd(|m| m.offer_timeout_seconds = u32::MAX))
        .await;
    assert_status(
        r,
        Code::InvalidArgument,
        &format!("mrd.offer_timeout_seconds: must be 1 to 3600 seconds (1 hour), not {max}"),
    );
    let r = c
        .admin
        .upsert_mrd(mrd(|m| m.wrap_up_timeout_seconds = u32::MAX))
        .await;
    assert_status(
        r,
        Code::InvalidArgument,
        &format!("mrd.wrap_up_timeout_seconds: must be 0 to 86400 seconds (1 day), not {max}"),
    );

    let queue = |step_timeout: u32, ttl: u32| pb::UpsertQueueRequest {
        queue: Some(pb::Queue {
            name: "sales".into(),
            mrd: "chat".into(),
            steps: vec![pb::QueueStep {
                expression: "TRUE".into(),
                timeout_seconds: step_timeout,
            }],
            task_ttl_seconds: ttl,
            ..pb::Queue::default()
        }),
        ..Default::default()
    };
    let r = c.admin.upsert_queue(queue(max, 0)).await;
    assert_status(
        r,
        Code::InvalidArgument,
        &format!(
            "queue.steps.timeout_seconds: step 0: must be 0 to 86400 seconds (1 day), not {max}"
        ),
    );
    let r = c.admin.upsert_queue(queue(0, max)).await;
    assert_status(
        r,
        Code::InvalidArgument,
        &format!("queue.task_ttl_seconds: must be 0 to 604800 seconds (7 days), not {max}"),
    );

    // Only the MRD configured first exists, with its built-in default queue.
    let mrds = c.admin.list_mrds(pb::ListMrdsRequest {}).await.unwrap();
    let names: Vec<String> = mrds.into_inner().mrds.into_iter().map(|m| m.name).collect();
    assert_eq!(names, ["chat"]);
    let queues = c.admin.list_queues(pb::ListQueuesRequest {}).await.unwrap();
    let names: Vec<String> = queues
        .into_inner()
        .queues
        .into_iter()
        .map(|q| q.name)
        .collect();
    assert_eq!(names, ["default"]);
    server.stop().await;
}

#[tokio::test]
async fn malformed_page_tokens_are_refused_on_every_listing() {
    let server = TestServer::start().await;
    let mut c = server.clients().await;
    let mut r = routing(&server).await;
    let long = format!("p1.{}", "61".repeat(1000));
    for token in ["agent-7", "p1.", "p1.zz", "p1.abc", "p1.ff", long.as_str()] {
        let page_token = token.to_owned();
        let agents = c
            .admin
            .list_agents(pb::ListAgentsRequest {
                page_size: 0,
                page_token: page_token.clone(),
            })
            .await;
        assert_refused(agents, "page_token", "");
        let states = r
            .list_agent_states(pb::ListAgentStatesRequest {
                page_size: 0,
                page_token: page_token.clone(),
            })
            .await;
        assert_refused(states, "page_token", "");
        let tasks = r
            .list_tasks(pb::ListTasksRequest {
                page_size: 0,
                page_token,
                ..Default::default()
            })
            .await;
        assert_refused(tasks, "page_token", "");
    }
    server.stop().await;
}

#[tokio::test]
async fn mrd_max_tasks_must_name_an_existing_mrd() {
    let server = TestServer::start().await;
    let mut c = server.clients().await;
    configure_chat(&mut c).await;

    let r = c
        .admin
        .upsert_agent(upsert_ana(|a| {
            a.mrd_max_tasks = [("chat".to_owned(), 1), ("emial".to_owned(), 2)].into();
        }))
        .await;
    assert_status(
        r,
        Code::InvalidArgument,
        "agent.mrd_max_tasks: MRD 'emial' does not exist; create it first (UpsertMrd)",
    );
    assert_no_agent(&mut c, "ana").await;
    server.stop().await;
}

#[tokio::test]
async fn oversized_labels_and_maps_are_refused_within_the_message_limit() {
    let server = TestServer::start().await;
    let mut c = server.clients().await;
    configure_chat(&mut c).await;
    let mut r = routing(&server).await;

    // 64 labels of 60 KB: 3.75 MiB, under gRPC's 4 MiB message limit, each far over 256.
    let labels = chat_task(|t| t.labels = vec!["l".repeat(60 * 1024); 64]);
    assert!(prost::Message::encoded_len(&labels) < 4 * 1024 * 1024);
    let refused = r.new_task(labels).await;
    assert_status(
        refused,
        Code::InvalidArgument,
        "labels: label 0: must be at most 256 characters",
    );
    let r65 = r
        .new_task(chat_task(|t| t.labels = vec!["l".into(); 65]))
        .await;
    assert_status(
        r65,
        Code::InvalidArgument,
        "labels: must have at most 64 labels, not 65",
    );
    let attrs = r
        .new_task(chat_task(|t| {
            t.attributes = (0..100_000)
                .map(|i| (format!("a{i}"), "v".into()))
                .collect();
        }))
        .await;
    assert_status(
        attrs,
        Code::InvalidArgument,
        "attributes: must have at most 64 attributes, not 100000",
    );
    assert!(task_ids(&mut r).await.is_empty(), "no task was queued");

    // An agent's maps of 100,000 entries (about 1.5 MiB each).
    let attributes = upsert_ana(|a| {
        a.attributes = (0..100_000).map(|i| (format!("skill{i}"), 1)).collect();
    });
    assert!(prost::Message::encoded_len(&attributes) < 4 * 1024 * 1024);
    assert_status(
        c.admin.upsert_agent(attributes).await,
        Code::InvalidArgument,
        "agent.attributes: must have at most 256 attributes, not 100000",
    );
    let overrides = upsert_ana(|a| {
        a.mrd_max_tasks = (0..100_000).map(|i| (format!("mrd{i}"), 1)).collect();
    });
    assert!(prost::Message::encoded_len(&overrides) < 4 * 1024 * 1024);
    assert_status(
        c.admin.upsert_agent(overrides).await,
        Code::InvalidArgument,
        "agent.mrd_max_tasks: must have at most 64 entries, not 100000",
    );
    assert_no_agent(&mut c, "ana").await;
    server.stop().await;
}

#[tokio::test]
async fn control_characters_are_refused_in_names_labels_attributes_and_ids() {
    let server = TestServer::start().await;
    let mut c = server.clients().await;
    configure_chat(&mut c).await;
    let mut r = routing(&server).await;

    for (control, code) in CONTROLS {
        let bad = format!("ok{control}ok");
        let reason = format!(
            "must not contain {}",
            if control == "\u{202E}" {
                format!("bidirectional control {code}")
            } else {
                format!("control character {code}")
            }
        );

        let r1 = c
            .admin
            .upsert_agent(upsert_ana(|a| a.display_name = bad.clone()))
            .await;
        assert_refused(r1, "agent.display_name", &reason);
        let label = r
            .new_task(chat_task(|t| t.labels = vec![bad.clone()]))
            .await;
        assert_refused(label, "labels", &format!("label 0: {reason}"));
        let name = r
            .new_task(chat_task(|t| {
                t.attributes = [(bad.clone(), "v".into())].into()
            }))
            .await;
        assert_refused(name, "attributes", &reason);
        let conversation = r
            .new_task(chat_task(|t| t.conversation_id = bad.clone()))
            .await;
        assert_refused(conversation, "conversation_id", &reason);
        let request_id = r.new_task(chat_task(|t| t.request_id = bad.clone())).await;
        assert_refused(request_id, "request_id", &reason);
        let request_id = c
            .admin
            .upsert_agent(pb::UpsertAgentRequest {
                request_id: bad.clone(),
                ..upsert_ana(|_| {})
            })
            .await;
        assert_refused(request_id, "request_id", &reason);

        // A value may span lines; no other control character may be in it.
        if !matches!(control, "\r" | "\n") {
            let value = r
                .new_task(chat_task(|t| {
                    t.attributes = [("subject".to_owned(), bad.clone())].into();
                }))
                .await;
            assert_refused(
                value,
                "attributes",
                &format!("attribute \"subject\": {reason}"),
            );
        }
    }
    // Ids refuse them as well, naming the code point.
    let r1 = c
        .admin
        .upsert_agent(upsert_ana(|a| a.agent_id = "ana\u{202E}".into()))
        .await;
    assert_status(
        r1,
        Code::InvalidArgument,
        "agent.agent_id: must not contain bidirectional control U+202E",
    );

    assert_no_agent(&mut c, "ana").await;
    assert!(task_ids(&mut r).await.is_empty(), "no task was queued");

    // What may be there is kept as given: line breaks in a value, any script in a label.
    let task = r
        .new_task(chat_task(|t| {
            t.labels = vec!["étiquette — 标签".into()];
            t.attributes = [("subject".to_owned(), "line one\r\nline\ttwo".into())].into();
        }))
        .await
        .expect("a clean task is queued")
        .into_inner()
        .task
        .unwrap();
    assert_eq!(task.attributes["subject"], "line one\r\nline\ttwo");
    assert_eq!(task_ids(&mut r).await, vec![task.task_id]);
    server.stop().await;
}

#[tokio::test]
async fn request_ids_refuse_control_characters_on_connect_frames_too() {
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

    for (control, code) in CONTROLS {
        let request_id = format!("r{control}1");
        let frame = pb::ConnectRequest {
            request_id: request_id.clone(),
            request: Some(Req::ListServices(pb::ListServicesRequest {})),
        };
        tx.send(frame).await.unwrap();
        let answer = rx.next().await.unwrap().unwrap();
        assert_eq!(
            answer.request_id, request_id,
            "the answer carries the id back"
        );
        match answer.frame {
            Some(Frame::Error(e)) => {
                assert_eq!(e.code, Code::InvalidArgument as i32, "{}", e.message);
                assert!(
                    e.message.starts_with("request_id: must not contain"),
                    "{}",
                    e.message
                );
                assert!(e.message.contains(code), "{}", e.message);
            }
            other => panic!("expected an error frame, got {other:?}"),
        }
    }
    // Over 128 characters is refused too; 128 is answered.
    for (length, refused) in [(129, true), (128, false)] {
        let frame = pb::ConnectRequest {
            request_id: "r".repeat(length),
            request: Some(Req::ListServices(pb::ListServicesRequest {})),
        };
        tx.send(frame).await.unwrap();
        let answer = rx.next().await.unwrap().unwrap();
        match answer.frame {
            Some(Frame::Error(e)) if refused => {
                assert_eq!(e.message, "request_id: must be at most 128 characters");
            }
            Some(Frame::ListServices(_)) if !refused => {}
            other => panic!("{length} characters: unexpected {other:?}"),
        }
    }
    server.stop().await;
}

#[tokio::test]
async fn client_names_are_refused_not_cut_in_the_field_and_the_connect_metadata() {
    use tonic::metadata::{Ascii, MetadataValue};

    let server = TestServer::start().await;
    let mut c = server.clients().await;
    let before = c.client_count().await;

    let register = |name: String| pb::RegisterClientRequest {
        client_name: name,
        ..Default::default()
    };
    for (control, code) in CONTROLS {
        let r = c
            .core
            .register_client(register(format!("desk{control}1")))
            .await;
        assert_refused(r, "client_name", code);
    }
    let r = c.core.register_client(register("n".repeat(257))).await;
    assert_status(
        r,
        Code::InvalidArgument,
        "client_name: must be at most 256 characters",
    );

    // Metadata carries no NUL, ESC, CR or LF at all: the client library refuses to send them.
    for (control, _) in &CONTROLS[..4] {
        let raw = format!("desk{control}1");
        assert!(
            MetadataValue::<Ascii>::try_from(raw.as_bytes()).is_err(),
            "{raw:?}"
        );
    }
    // What it can carry is checked as the field is: a bidirectional override (as UTF-8 bytes),
    // a tab, a name too long, bytes that are not UTF-8.
    let open = |name: &[u8]| {
        let mut request = tonic::Request::new(tokio_stream::iter(Vec::<pb::ConnectRequest>::new()));
        let value = MetadataValue::<Ascii>::try_from(name).expect("a header value");
        request
            .metadata_mut()
            .insert("switchboard-client-name", value);
        let mut core = c.core.clone();
        async move { core.connect(request).await.map(|_| ()) }
    };
    let header = "switchboard-client-name: ";
    let refusals: [(&[u8], String); 4] = [
        (
            "desk\u{202E}1".as_bytes(),
            format!("{header}must not contain bidirectional control U+202E"),
        ),
        (
            b"desk\t1",
            format!("{header}must not contain control character U+0009"),
        ),
        (
            &[b'n'; 257],
            format!("{header}must be at most 256 characters"),
        ),
        (&[b'd', 0xff, 0xfe], format!("{header}must be UTF-8")),
    ];
    for (name, message) in refusals {
        assert_status(open(name).await, Code::InvalidArgument, &message);
    }
    assert_eq!(c.client_count().await, before, "no client was registered");

    // A name in any script is fine, as UTF-8 bytes.
    let mut desk = c.core.clone();
    let mut request = tonic::Request::new(tokio_stream::pending::<pb::ConnectRequest>());
    request.metadata_mut().insert(
        "switchboard-client-name",
        MetadataValue::<Ascii>::try_from("bureau é 1".as_bytes()).unwrap(),
    );
    let mut stream = desk
        .connect(request)
        .await
        .expect("the stream opens")
        .into_inner();
    stream.next().await.unwrap().expect("the greeting");
    assert_eq!(c.client_count().await, before + 1);
    server.stop().await;
}
