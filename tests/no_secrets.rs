//! Agent passwords are never logged and never echoed: a real server process logs at debug
//! level through a whole login (unary and over `Connect`, right and wrong passwords), and
//! neither its logs nor any response contain the password.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc as std_mpsc;
use std::time::Duration;

use common::{DEFAULT_PROCESSOR_ID, WORKFLOW};
use prost::Message;
use switchboard::pb;
use switchboard::pb::admin_service_client::AdminServiceClient;
use switchboard::pb::connect_request::Request as Req;
use switchboard::pb::core_service_client::CoreServiceClient;
use switchboard::pb::processor_service_client::ProcessorServiceClient;
use switchboard::pb::workflow_service_client::WorkflowServiceClient;
use tokio_stream::StreamExt;
use tonic::transport::Endpoint;

const PASSWORD: &str = "Zq7-unlikely-Secret-81f3";
const WRONG_PASSWORD: &str = "Wr0ng-unlikely-Guess-55c2";

/// Starts the real binary with debug logs on stderr; returns it, its address and its log lines.
fn spawn_server() -> (Child, String, std_mpsc::Receiver<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(["serve", "--listen", "127.0.0.1:0", "--in-memory"])
        .env("RUST_LOG", "debug")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the server binary starts");
    let stderr = child.stderr.take().expect("stderr is piped");
    let (tx, rx) = std_mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let addr = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the server logs that it serves");
        if line.contains("switchboard serving") {
            let at = line.find("addr=").expect("the line names the address") + "addr=".len();
            break line[at..].split_whitespace().next().unwrap().to_owned();
        }
    };
    (child, addr, rx)
}

#[tokio::test]
async fn no_password_in_debug_logs_or_responses() {
    let (mut child, addr, logs) = spawn_server();
    let channel = Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .expect("the server accepts connections");
    let mut core = CoreServiceClient::new(channel.clone());
    let mut processor = ProcessorServiceClient::new(channel.clone());
    let mut workflow = WorkflowServiceClient::new(channel.clone());
    let mut admin = AdminServiceClient::new(channel);
    let mut responses: Vec<Vec<u8>> = Vec::new();
    let mut errors: Vec<String> = Vec::new();

    let created = admin
        .upsert_agent(pb::UpsertAgentRequest {
            agent: Some(pb::Agent {
                agent_id: "rajat1".into(),
                display_name: "Rajat".into(),
                password: PASSWORD.into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    responses.push(created.encode_to_vec());
    responses.push(
        admin
            .list_agents(pb::ListAgentsRequest::default())
            .await
            .unwrap()
            .into_inner()
            .encode_to_vec(),
    );

    // The unary login.
    let client_id = core
        .register_client(pb::RegisterClientRequest {
            client_name: "media-bar".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .client_id;
    for service_id in [DEFAULT_PROCESSOR_ID, WORKFLOW] {
        let r = core
            .bind_service(pb::BindServiceRequest {
                client_id: client_id.clone(),
                service_id: service_id.into(),
                ..Default::default()
            })
            .await
            .unwrap();
        responses.push(r.into_inner().encode_to_vec());
    }
    let wrong = processor
        .prepare_session(common::prepare_request("rajat1", WRONG_PASSWORD, false))
        .await
        .expect_err("a wrong password is refused");
    errors.push(format!("{wrong:?}"));
    let prepared = processor
        .prepare_session(common::prepare_request("rajat1", PASSWORD, false))
        .await
        .unwrap()
        .into_inner();
    responses.push(prepared.encode_to_vec());
    for service_id in [DEFAULT_PROCESSOR_ID, WORKFLOW] {
        let r = core
            .bind_resource(pb::BindResourceRequest {
                client_id: client_id.clone(),
                service_id: service_id.into(),
                resource_id: prepared.resource_id.clone(),
                ..Default::default()
            })
            .await
            .unwrap();
        responses.push(r.into_inner().encode_to_vec());
    }
    let r = workflow
        .invoke_action(pb::InvokeActionRequest {
            resource_id: prepared.resource_id.clone(),
            action: "session.login".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    responses.push(r.into_inner().encode_to_vec());

    // The same over a Connect stream, taking the session over.
    let (tx, requests) = tokio::sync::mpsc::channel(8);
    let mut stream = core
        .connect(tokio_stream::wrappers::ReceiverStream::new(requests))
        .await
        .unwrap()
        .into_inner();
    let frames = [
        Req::BindService(pb::BindServiceRequest {
            client_id: String::new(),
            service_id: DEFAULT_PROCESSOR_ID.into(),
            ..Default::default()
        }),
        Req::PrepareSession(common::prepare_request("rajat1", WRONG_PASSWORD, true)),
        Req::PrepareSession(common::prepare_request("rajat1", PASSWORD, true)),
        Req::UpsertAgent(pb::UpsertAgentRequest {
            agent: Some(pb::Agent {
                agent_id: "rajat2".into(),
                display_name: String::new(),
                password: PASSWORD.into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
    ];
    let sent = frames.len();
    for (i, request) in frames.into_iter().enumerate() {
        tx.send(pb::ConnectRequest {
            request_id: format!("r{i}"),
            request: Some(request),
        })
        .await
        .unwrap();
    }
    let mut answered = 0;
    while answered < sent {
        let frame = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect("a frame arrives")
            .unwrap()
            .unwrap();
        if !frame.request_id.is_empty() {
            answered += 1;
        }
        responses.push(frame.encode_to_vec());
    }
    drop(tx);

    // Stop the server and read everything it logged.
    child.kill().expect("the server stops");
    child.wait().unwrap();
    let log: Vec<String> = logs.iter().collect();
    let log = log.join("\n");

    // The logs really are at debug level and cover the login: this test can fail.
    assert!(log.contains("DEBUG"), "no debug lines were captured");
    assert!(
        log.contains("SessionPrepared"),
        "the login is not in the logs"
    );
    assert!(
        log.contains("SessionTakenOver"),
        "the takeover is not in the logs"
    );
    for secret in [PASSWORD, WRONG_PASSWORD] {
        assert!(!log.contains(secret), "a password was logged");
        for (i, bytes) in responses.iter().enumerate() {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "response {i} echoes a password"
            );
        }
        assert!(
            errors.iter().all(|e| !e.contains(secret)),
            "an error echoes a password"
        );
    }
}
