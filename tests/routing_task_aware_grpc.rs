//! Task-aware steps end to end over gRPC: a queue step `lang = task.lang` written with
//! `UpsertQueue` offers each `NewTask` to an agent with the flag of the task's language, holds
//! a task whose language nobody speaks, and a malformed task reference is INVALID_ARGUMENT.

mod common;

use common::routing_setup::RoutingSetup;
use common::{TestServer, Who, assert_status};
use switchboard::pb;
use switchboard::pb::routing_service_client::RoutingServiceClient;
use tonic::Code;

const PASSWORD: &str = "task-aware-Pa55";

fn lang_task(lang: &str) -> pb::NewTaskRequest {
    pb::NewTaskRequest {
        mrd: "chat".into(),
        queue: "lang".into(),
        attributes: [("lang".to_owned(), lang.to_owned())].into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_step_over_the_tasks_language_offers_to_an_agent_who_speaks_it() {
    let server = TestServer::start().await;
    let mut c = server.clients().await;
    let raw = server.raw_channel().await;
    for (agent, flag) in [("ana", "lang_fr"), ("ben", "lang_en")] {
        RoutingSetup::chat()
            .queue("lang", "lang = task.lang")
            .agents(&[agent], PASSWORD)
            .attribute(flag, 1)
            .log_in(&raw)
            .apply(&mut c)
            .await;
        let mut own =
            RoutingServiceClient::new(server.channel_as(Who::Agent(agent), PASSWORD).await);
        own.change_agent_state(pb::ChangeAgentStateRequest {
            agent_id: agent.into(),
            state: pb::AgentState::Ready.into(),
            mrd: "chat".into(),
            ..Default::default()
        })
        .await
        .expect("the agent goes READY");
    }
    let mut r = RoutingServiceClient::new(server.channel().await);
    for (lang, expected) in [("fr", "ana"), ("en", "ben"), ("de", "")] {
        let task = r
            .new_task(lang_task(lang))
            .await
            .unwrap()
            .into_inner()
            .task
            .unwrap();
        assert_eq!(task.offered_agent_id, expected, "a task in {lang}");
    }
    // A reference to a task attribute needs its name.
    let refused = c
        .admin
        .upsert_queue(pb::UpsertQueueRequest {
            queue: Some(pb::Queue {
                name: "lang".into(),
                mrd: "chat".into(),
                steps: vec![pb::QueueStep {
                    expression: "lang = task.".into(),
                    timeout_seconds: 0,
                }],
                task_ttl_seconds: 0,
                ..Default::default()
            }),
            ..Default::default()
        })
        .await;
    assert_status(refused, Code::InvalidArgument, "expression");
    server.stop().await;
}
