//! Workflow models are data: a models directory adds models that `PrepareSession` can pick.

mod common;

use common::{TestServer, prepare_request};
use switchboard::config::{ConfigError, ServerConfig};
use switchboard::pb;
use switchboard::server::{Server, ServerError};

fn models_dir() -> std::path::PathBuf {
    common::tools::repo_root().join("tests/models")
}

#[tokio::test]
async fn a_model_from_the_models_directory_drives_the_session() {
    let server = TestServer::start_with(ServerConfig {
        models_dir: Some(models_dir()),
        ..ServerConfig::in_memory()
    })
    .await;
    let mut c = server.clients().await;
    c.create_agent("rajat1", "pw-Model1").await;
    let mut request = prepare_request("rajat1", "pw-Model1", false);
    request.model = "RNA-PureCloud".into();
    let prepared = c
        .processor
        .prepare_session(request)
        .await
        .unwrap()
        .into_inner();

    let state = |resource_id: &str| pb::GetSessionStateRequest {
        resource_id: resource_id.into(),
    };
    let before = c
        .workflow
        .get_session_state(state(&prepared.resource_id))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(before.model, "RNA-PureCloud");
    let enabled: Vec<&str> = before
        .actions
        .iter()
        .filter(|a| a.enabled)
        .map(|a| a.name.as_str())
        .collect();
    assert_eq!(enabled, ["session.login"]);
    assert_eq!(
        before.actions.len(),
        4 + 4,
        "every action of the model, then the four routing actions"
    );

    for (action, view) in [
        ("session.login", "not_ready"),
        ("agent.ready", "ready"),
        ("agent.not_ready", "not_ready"),
    ] {
        let after = c
            .workflow
            .invoke_action(pb::InvokeActionRequest {
                resource_id: prepared.resource_id.clone(),
                action: action.into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(after.view_state, view);
    }
    // The built-in default is still there.
    c.create_agent("vishal", "pw-Model2").await;
    let prepared = c.prepare("vishal", "pw-Model2", false).await;
    let state = c
        .workflow
        .get_session_state(state(&prepared.resource_id))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(state.model, "default");
    server.stop().await;
}

#[tokio::test]
async fn an_invalid_model_file_stops_start_up_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("broken.json"),
        r#"{"name":"broken","initial":"a","states":{"a":{"on":{"go":"nowhere"}}}}"#,
    )
    .unwrap();
    let result = Server::start(ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        models_dir: Some(dir.path().to_owned()),
        ..ServerConfig::in_memory()
    })
    .await;
    match result {
        Err(ServerError::Config(ConfigError::Model { path, source })) => {
            assert!(path.ends_with("broken.json"));
            assert!(
                source
                    .to_string()
                    .contains("target 'nowhere' is not defined"),
                "{source}"
            );
        }
        Err(other) => panic!("unexpected error {other}"),
        Ok(_) => panic!("a broken model must stop start-up"),
    }
}
