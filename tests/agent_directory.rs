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
