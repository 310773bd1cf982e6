//! An agent acts only as itself: agent `ana`, signed in with her own token, tries everything
//! that is `ben`'s, unary and on a `Connect` stream, and is refused each time with
//! PERMISSION_DENIED and nothing changed. Supervisors may set another agent NOT_READY, but
//! not READY; request ids are each principal's own.

mod common;

use switchboard::pb;
use switchboard::pb::admin_service_client::AdminServiceClient;
use switchboard::pb::connect_request::Request as Req;
use switchboard::pb::connect_response::Frame;
use switchboard::pb::core_service_client::CoreServiceClient;
use switchboard::pb::processor_service_client::ProcessorServiceClient;
use switchboard::pb::routing_service_client::RoutingServiceClient;
use tonic::Code;

use common::desktop::ConnectedDesktop;
use common::routing_setup::RoutingSetup;
use common::{Channel, DEFAULT_PROCESSOR_ID, TestServer, Who, sign_in};

const PASSWORD: &str = "correct horse battery staple";

type Routing = RoutingServiceClient<Channel>;

struct World {
    server: TestServer,
    admin: Channel,
    ana: Channel,
    ben: Channel,
    ana_token: String,
}

impl World {
    async fn revision(&self) -> u64 {
        AdminServiceClient::new(self.admin.clone())
            .list_agents(pb::ListAgentsRequest::default())
            .await
            .expect("the admin lists agents")
            .into_inner()
            .revision
    }
}

/// `ana` and `ben` logged in on `chat`; `ben` READY with a task offered to him.
async fn world() -> (World, String) {
    let server = TestServer::start().await;
    let admin = server.channel().await;
    RoutingSetup::chat()
        .queue("sales", "sales >= 1")
        .agents(&["ana", "ben"], PASSWORD)
        .attribute("sales", 5)
        .log_in(&server.raw_channel().await)
        .apply(&mut common::Clients::new(admin.clone()))
        .await;
    let raw = server.raw_channel().await;
    let ana_token = sign_in(&raw, Who::Agent("ana"), PASSWORD).await;
    let world = World {
        ana: common::signed(raw.clone(), &ana_token),
        ben: server.channel_as(Who::Agent("ben"), PASSWORD).await,
        admin,
        ana_token,
        server,
    };
    Routing::new(world.ben.clone())
        .change_agent_state(state("ben", pb::AgentState::Ready))
        .await
        .expect("ben makes himself ready");
    let task = Routing::new(world.admin.clone())
        .new_task(pb::NewTaskRequest {
            mrd: "chat".into(),
            queue: "sales".into(),
            ..Default::default()
        })
        .await
        .expect("a task arrives")
        .into_inner()
        .task_id;
    let offered = Routing::new(world.admin.clone())
        .get_task_state(pb::GetTaskStateRequest {
            task_id: task.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .task
        .unwrap();
    assert_eq!(
        offered.offered_agent_id, "ben",
        "the task is offered to ben"
    );
    (world, task)
}

fn state(agent: &str, state: pb::AgentState) -> pb::ChangeAgentStateRequest {
    pb::ChangeAgentStateRequest {
        agent_id: agent.into(),
        state: state.into(),
        mrd: "chat".into(),
        ..Default::default()
    }
}

#[track_caller]
fn assert_denied<T: std::fmt::Debug>(result: Result<T, tonic::Status>, what: &str) {
    let status = result.expect_err(what);
    assert_eq!(status.code(), Code::PermissionDenied, "{what}: {status:?}");
}

#[tokio::test]
async fn an_agent_cannot_act_for_another_over_unary_calls() {
    let (w, task) = world().await;
    let mut ana = Routing::new(w.ana.clone());
    let before = w.revision().await;

    assert_denied(
        ana.accept_task(pb::AcceptTaskRequest {
            task_id: task.clone(),
            agent_id: "ben".into(),
            ..Default::default()
        })
        .await,
        "ana accepts ben's offer",
    );
    assert_denied(
        ana.reject_task(pb::RejectTaskRequest {
            task_id: task.clone(),
            agent_id: "ben".into(),
            ..Default::default()
        })
        .await,
        "ana rejects ben's offer",
    );
    for s in [
        pb::AgentState::Ready,
        pb::AgentState::NotReady,
        pb::AgentState::Logout,
    ] {
        assert_denied(
            ana.change_agent_state(state("ben", s)).await,
            "ana changes ben's state",
        );
    }
    assert_denied(
        ana.get_agent_state(pb::GetAgentStateRequest {
            agent_id: "ben".into(),
        })
        .await,
        "ana reads ben's state",
    );
    assert_eq!(w.revision().await, before, "the refusals changed nothing");

    Routing::new(w.ben.clone())
        .accept_task(pb::AcceptTaskRequest {
            task_id: task.clone(),
            agent_id: "ben".into(),
            ..Default::default()
        })
        .await
        .expect("ben accepts his own offer");
    let before = w.revision().await;
    assert_denied(
        ana.transfer_task(pb::TransferTaskRequest {
            task_id: task.clone(),
            owner_agent_id: "ben".into(),
            recipient_agent_id: "ana".into(),
            ..Default::default()
        })
        .await,
        "ana takes ben's task",
    );
    assert_denied(
        ana.change_task_state(pb::ChangeTaskStateRequest {
            disposition_code: String::new(),
            task_id: task.clone(),
            state: pb::TaskState::Closed.into(),
            ..Default::default()
        })
        .await,
        "ana closes ben's task",
    );
    assert_denied(
        ana.get_task_state(pb::GetTaskStateRequest {
            task_id: task.clone(),
        })
        .await,
        "ana reads ben's task",
    );
    assert_denied(
        ana.watch_routing_events(pb::WatchRoutingEventsRequest {
            agent_id: "ben".into(),
            ..Default::default()
        })
        .await,
        "ana watches ben's events",
    );
    assert_eq!(w.revision().await, before, "the refusals changed nothing");
    w.server.stop().await;
}

#[tokio::test]
async fn an_agent_cannot_end_resume_or_replay_what_is_another_s() {
    let (w, _) = world().await;
    // Ben's desktop: his client and his session, prepared with his own token.
    let mut ben_core = CoreServiceClient::new(w.ben.clone());
    let ben_client = ben_core
        .register_client(pb::RegisterClientRequest {
            client_name: "ben's desktop".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .client_id;
    let session = ProcessorServiceClient::new(w.ben.clone())
        .prepare_session(pb::PrepareSessionRequest {
            service_id: DEFAULT_PROCESSOR_ID.into(),
            agent: Some(pb::AgentCredentials {
                id: "ben".into(),
                password: String::new(),
            }),
            ..Default::default()
        })
        .await
        .expect("ben prepares his session with his token alone")
        .into_inner()
        .resource_id;
    let before = w.revision().await;

    let mut ana_processor = ProcessorServiceClient::new(w.ana.clone());
    assert_denied(
        ana_processor
            .end_session(pb::EndSessionRequest {
                resource_id: session.clone(),
                ..Default::default()
            })
            .await,
        "ana ends ben's session",
    );
    assert_denied(
        ana_processor
            .prepare_session(pb::PrepareSessionRequest {
                service_id: DEFAULT_PROCESSOR_ID.into(),
                agent: Some(pb::AgentCredentials {
                    id: "ben".into(),
                    password: String::new(),
                }),
                r#override: true,
                ..Default::default()
            })
            .await,
        "ana takes ben's session over without his password",
    );
    assert_denied(
        CoreServiceClient::new(w.ana.clone())
            .unregister_client(pb::UnregisterClientRequest {
                client_id: ben_client.clone(),
                ..Default::default()
            })
            .await,
        "ana unregisters ben's client",
    );
    let resumed =
        ConnectedDesktop::try_open_as(w.server.addr, &w.ana_token, Some(&ben_client)).await;
    assert_eq!(
        resumed.err().map(|s| s.code()),
        Some(Code::PermissionDenied),
        "ana resumes ben's client"
    );
    assert_eq!(w.revision().await, before, "the refusals changed nothing");

    // Ben's remembered answer is his: ana's identical request with his request id runs as
    // hers (and is refused as hers), and her own request with that id is not blocked by his.
    let mut ben = Routing::new(w.ben.clone());
    let keyed = pb::ChangeAgentStateRequest {
        request_id: "shared-id".into(),
        ..state("ben", pb::AgentState::NotReady)
    };
    ben.change_agent_state(keyed.clone())
        .await
        .expect("ben goes NOT_READY");
    let mut ana = Routing::new(w.ana.clone());
    assert_denied(
        ana.change_agent_state(keyed).await,
        "ana replays ben's request id",
    );
    ana.change_agent_state(pb::ChangeAgentStateRequest {
        request_id: "shared-id".into(),
        ..state("ana", pb::AgentState::Ready)
    })
    .await
    .expect("ana's own request with the same id is hers");
    w.server.stop().await;
}

#[tokio::test]
async fn on_a_connect_stream_an_agent_cannot_act_for_another() {
    let (w, task) = world().await;
    let mut desktop = ConnectedDesktop::open_as(w.server.addr, &w.ana_token, None).await;
    let before = w.revision().await;
    let refusals = [
        Req::AcceptTask(pb::AcceptTaskRequest {
            task_id: task.clone(),
            agent_id: "ben".into(),
            ..Default::default()
        }),
        Req::ChangeAgentState(state("ben", pb::AgentState::Logout)),
        Req::NewTask(pb::NewTaskRequest {
            mrd: "chat".into(),
            ..Default::default()
        }),
        Req::UpsertAgent(pb::UpsertAgentRequest::default()),
    ];
    for request in refusals {
        let what = format!("{request:?}");
        match desktop.answer(request).await {
            Frame::Error(e) => assert_eq!(e.code, Code::PermissionDenied as i32, "{what}: {e:?}"),
            other => panic!("{what}: answered {other:?}"),
        }
    }
    assert_eq!(w.revision().await, before, "the refusals changed nothing");
    w.server.stop().await;
}

#[tokio::test]
async fn a_supervisor_may_set_an_agent_not_ready_but_not_ready() {
    let (w, _) = world().await;
    AdminServiceClient::new(w.admin.clone())
        .upsert_account(pb::UpsertAccountRequest {
            account: Some(pb::Account {
                account_id: "sue".into(),
                display_name: "Sue".into(),
                secret: PASSWORD.into(),
                roles: vec![pb::Role::Supervisor.into()],
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut sue = Routing::new(w.server.channel_as(Who::Account("sue"), PASSWORD).await);
    assert_denied(
        sue.change_agent_state(state("ana", pb::AgentState::Ready))
            .await,
        "a supervisor makes ana READY",
    );
    sue.change_agent_state(state("ben", pb::AgentState::NotReady))
        .await
        .expect("a supervisor sets ben NOT_READY");
    sue.get_agent_state(pb::GetAgentStateRequest {
        agent_id: "ana".into(),
    })
    .await
    .expect("a supervisor reads any agent");
    w.server.stop().await;
}

#[tokio::test]
async fn one_principal_cannot_inflate_the_client_count() {
    let (w, _) = world().await;
    let mut ana = CoreServiceClient::new(w.ana.clone());
    let mut registered = 0;
    let refused = loop {
        match ana
            .register_client(pb::RegisterClientRequest {
                client_name: format!("desktop {registered}"),
                ..Default::default()
            })
            .await
        {
            Ok(_) => registered += 1,
            Err(status) => break status,
        }
        assert!(registered <= 100, "registrations are never refused");
    };
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert_eq!(registered, 16, "the limit per principal");
    // Another principal is not affected.
    CoreServiceClient::new(w.ben.clone())
        .register_client(pb::RegisterClientRequest::default())
        .await
        .expect("ben registers his own desktop");
    w.server.stop().await;
}

#[tokio::test]
async fn routing_events_name_the_principal_that_caused_them() {
    use tokio_stream::StreamExt;
    let (w, task) = world().await;
    Routing::new(w.ben.clone())
        .accept_task(pb::AcceptTaskRequest {
            task_id: task.clone(),
            agent_id: "ben".into(),
            ..Default::default()
        })
        .await
        .expect("ben accepts");
    let mut watch = Routing::new(w.admin.clone())
        .watch_routing_events(pb::WatchRoutingEventsRequest {
            start_revision: 1,
            task_id: task.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut actors = Vec::new();
    while actors.len() < 3 {
        let frame = tokio::time::timeout(std::time::Duration::from_secs(10), watch.next())
            .await
            .expect("the task's history replays")
            .expect("the watch is open")
            .expect("the watch is healthy");
        if let Some(pb::watch_routing_events_response::Frame::Event(e)) = frame.frame {
            actors.push(e.actor);
        }
    }
    // Queued by the admin's NewTask, offered in the same step, accepted by ben.
    assert_eq!(actors, ["account:admin", "account:admin", "agent:ben"]);
    w.server.stop().await;
}
