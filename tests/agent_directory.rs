//! The agent directory: upsert, get, paginated list, delete; passwords are write-only.

mod common;

use common::{TestServer, assert_status, prepare_request};
use switchboard::pb;
use tonic::Code;

fn agent(agent_id: &str, display_name: &str, password: &str) -> pb::UpsertAgentRequest {
    pb::UpsertAgentRequest {
        agent: Some(pb::Agent {
            agent_id: agent_id.into(),
            display_name: display_name.into(),
            password: password.into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[tokio::test]
async fn agents_are_created_updated_listed_and_deleted() {
    let server = TestServer::start().await;
    let mut c = server.clients().await;

    let created = c
        .admin
        .upsert_agent(agent("ana", "Ana", "first-Pw"))
        .await
        .unwrap()
        .into_inner();
    assert!(created.created);
    assert_eq!(
        created.agent.as_ref().unwrap().password,
        "",
        "passwords are never returned"
    );

    // An update without a password keeps the old one.
    let updated = c
        .admin
        .upsert_agent(agent("ana", "Ana Lima", ""))
        .await
        .unwrap()
        .into_inner();
    assert!(!updated.created);
    assert!(updated.revision > created.revision);
    let fetched = c
        .admin
        .get_agent(pb::GetAgentRequest {
            agent_id: "ana".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .agent
        .unwrap();
    assert_eq!(
        (fetched.display_name.as_str(), fetched.password.as_str()),
        ("Ana Lima", "")
    );
    assert_eq!(
        c.prepare("ana", "first-Pw", false).await.result(),
        pb::PrepareSessionResult::Success
    );

    // A new password replaces it.
    c.admin
        .upsert_agent(agent("ana", "Ana Lima", "second-Pw"))
        .await
        .unwrap();
    let r = c
        .processor
        .prepare_session(prepare_request("ana", "first-Pw", true))
        .await;
    assert_status(r, Code::Unauthenticated, "password");
    c.prepare("ana", "second-Pw", true).await;

    c.processor
        .end_session(pb::EndSessionRequest {
            resource_id: "Switchboard-ana".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    c.admin
        .delete_agent(pb::DeleteAgentRequest {
            agent_id: "ana".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_status(
        c.admin
            .get_agent(pb::GetAgentRequest {
                agent_id: "ana".into(),
            })
            .await,
        Code::NotFound,
        "ana",
    );
    server.stop().await;
}

#[tokio::test]
async fn listing_pages_through_every_agent_once_in_id_order() {
    let server = TestServer::start().await;
    let mut c = server.clients().await;
    let ids: Vec<String> = (0..7).map(|i| format!("agent-{i:02}")).collect();
    for id in ids.iter().rev() {
        c.admin.upsert_agent(agent(id, id, "pw-x")).await.unwrap();
    }
    let mut seen = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let page = c
            .admin
            .list_agents(pb::ListAgentsRequest {
                page_size: 3,
                page_token: token.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        pages += 1;
        assert!(page.agents.len() <= 3);
        assert!(page.agents.iter().all(|a| a.password.is_empty()));
        seen.extend(page.agents.into_iter().map(|a| a.agent_id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, ids);
    server.stop().await;
}

/// Each call's codec buffers start small (1 KiB) and must grow for larger messages: requests
/// over 1 KiB in, and an answer over tonic's 32 KiB yield threshold out, on one stream.
#[tokio::test]
async fn messages_larger_than_the_codec_buffers_cross_a_connect_stream() {
    use common::desktop::ConnectedDesktop;
    use pb::connect_request::Request as Req;
    use pb::connect_response::Frame;

    let server = TestServer::start().await;
    let mut desktop = ConnectedDesktop::open(&server, None).await;
    let ids: Vec<String> = (0..100)
        .map(|i| format!("{i:03}{}", "a".repeat(125)))
        .collect();
    let display_name = "D".repeat(256);
    for id in &ids {
        let request = agent(id, &display_name, &"p".repeat(1024));
        assert!(prost::Message::encoded_len(&request) > 1024);
        let Frame::UpsertAgent(answer) = desktop.call(Req::UpsertAgent(request)).await else {
            panic!("UpsertAgent answers with its own frame");
        };
        assert_eq!(answer.agent.unwrap().display_name, display_name);
    }
    let Frame::ListAgents(page) = desktop
        .call(Req::ListAgents(pb::ListAgentsRequest {
            page_size: 1000,
            page_token: String::new(),
        }))
        .await
    else {
        panic!("ListAgents answers with its own frame");
    };
    assert!(prost::Message::encoded_len(&page) > 32 * 1024);
    let listed: Vec<&str> = page.agents.iter().map(|a| a.agent_id.as_str()).collect();
    assert_eq!(listed, ids);
    assert!(page.agents.iter().all(|a| a.display_name == display_name));
    desktop.close().await;
    server.stop().await;
}
