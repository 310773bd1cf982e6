//! Secrets are never logged and never echoed: a real server process logs at debug level
//! through signing in (the first admin with its bootstrap secret, an agent with its password,
//! an account with its secret; right and wrong ones), refreshing and signing out, and through
//! a whole login (unary and over `Connect`). Its logs contain no password, secret, access token
//! or refresh token; no response contains a password or secret, and only the sign-in answers
//! (`Login`, `Refresh`) contain tokens.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc as std_mpsc;
use std::time::Duration;

use common::auth::login_request;
use common::{ADMIN, Who, signed};
use common::{DEFAULT_PROCESSOR_ID, WORKFLOW};
use prost::Message;
use switchboard::pb;
use switchboard::pb::admin_service_client::AdminServiceClient;
use switchboard::pb::auth_service_client::AuthServiceClient;
use switchboard::pb::connect_request::Request as Req;
use switchboard::pb::core_service_client::CoreServiceClient;
use switchboard::pb::processor_service_client::ProcessorServiceClient;
use switchboard::pb::workflow_service_client::WorkflowServiceClient;
use tokio_stream::StreamExt;
use tonic::transport::Endpoint;

const PASSWORD: &str = "Zq7-unlikely-Secret-81f3";
const WRONG_PASSWORD: &str = "Wr0ng-unlikely-Guess-55c2";
/// An account's secret.
const ACCOUNT_SECRET: &str = "Acc0unt-unlikely-Secret-9d41";

/// Starts the real binary with debug logs on stderr, the first admin's secret going to
/// `secret_file`; returns it, its address and its log lines.
fn spawn_server(secret_file: &std::path::Path) -> (Child, String, std_mpsc::Receiver<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(["serve", "--listen", "127.0.0.1:0", "--in-memory"])
        .arg("--bootstrap-secret-file")
        .arg(secret_file)
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

/// The parts of a token that must never be logged: the whole token, and its last
/// `.`-separated part (an access token's signature, a refresh token's secret), which alone
/// would be a leak even where the rest is not.
fn token_parts(token: &str) -> Vec<String> {
    assert!(!token.is_empty(), "an empty token");
    let mut parts = vec![token.to_owned()];
    if let Some(last) = token.rsplit('.').next()
        && last.len() >= 16
        && last != token
    {
        parts.push(last.to_owned());
    }
    parts
}

fn contains(bytes: &[u8], needle: &str) -> bool {
    bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[tokio::test]
async fn no_password_in_debug_logs_or_responses() {
    let secrets_dir = tempfile::tempdir().expect("a temporary directory");
    let secret_file = secrets_dir.path().join("bootstrap-admin.secret");
    let (mut child, addr, logs) = spawn_server(&secret_file);
    let bootstrap_secret = common::auth::read_bootstrap_secret(&secret_file);
    let raw = Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .expect("the server accepts connections");
    let mut auth = AuthServiceClient::new(raw.clone());
    // Answers that may carry tokens (but no password or secret), and every other answer.
    let mut sign_ins: Vec<Vec<u8>> = Vec::new();
    let mut responses: Vec<Vec<u8>> = Vec::new();
    let mut errors: Vec<String> = Vec::new();
    // Every token handed out.
    let mut tokens: Vec<String> = Vec::new();

    // The first admin signs in with its bootstrap secret, after a wrong one.
    let wrong = auth
        .login(login_request(Who::Account(ADMIN), WRONG_PASSWORD))
        .await
        .expect_err("a wrong secret is refused");
    errors.push(format!("{wrong:?}"));
    let admin_login = auth
        .login(login_request(Who::Account(ADMIN), &bootstrap_secret))
        .await
        .expect("the first admin signs in")
        .into_inner();
    sign_ins.push(admin_login.encode_to_vec());
    tokens.extend([
        admin_login.access_token.clone(),
        admin_login.refresh_token.clone(),
    ]);
    let channel = signed(raw.clone(), &admin_login.access_token);
    let mut core = CoreServiceClient::new(channel.clone());
    let mut processor = ProcessorServiceClient::new(channel.clone());
    let mut workflow = WorkflowServiceClient::new(channel.clone());
    let mut admin = AdminServiceClient::new(channel);

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
    responses.push(
        admin
            .get_agent(pb::GetAgentRequest {
                agent_id: "rajat1".into(),
            })
            .await
            .unwrap()
            .into_inner()
            .encode_to_vec(),
    );

    // An account: written, read back and listed, never with its secret.
    let account = admin
        .upsert_account(pb::UpsertAccountRequest {
            account: Some(pb::Account {
                account_id: "ops".into(),
                display_name: "Operations".into(),
                secret: ACCOUNT_SECRET.into(),
                roles: vec![pb::Role::Supervisor as i32],
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        account.account.as_ref().map(|a| a.secret.as_str()),
        Some(""),
        "{account:?}"
    );
    responses.push(account.encode_to_vec());
    let got = admin
        .get_account(pb::GetAccountRequest {
            account_id: "ops".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        got.account.as_ref().map(|a| a.secret.as_str()),
        Some(""),
        "{got:?}"
    );
    responses.push(got.encode_to_vec());
    let listed = admin
        .list_accounts(pb::ListAccountsRequest::default())
        .await
        .unwrap()
        .into_inner();
    responses.push(listed.encode_to_vec());

    // The agent and the account sign in, each after a wrong password or secret.
    for (who, secret) in [
        (Who::Agent("rajat1"), PASSWORD),
        (Who::Account("ops"), ACCOUNT_SECRET),
    ] {
        let wrong = auth
            .login(login_request(who, WRONG_PASSWORD))
            .await
            .expect_err("a wrong password is refused");
        errors.push(format!("{wrong:?}"));
        let login = auth
            .login(login_request(who, secret))
            .await
            .unwrap_or_else(|e| panic!("{who:?} signs in: {e:?}"))
            .into_inner();
        sign_ins.push(login.encode_to_vec());
        tokens.extend([login.access_token.clone(), login.refresh_token.clone()]);
        // Each refreshes once, checks who it is with the new access token, and signs out.
        let refreshed = auth
            .refresh(pb::RefreshRequest {
                refresh_token: login.refresh_token.clone(),
            })
            .await
            .unwrap_or_else(|e| panic!("{who:?} refreshes: {e:?}"))
            .into_inner();
        sign_ins.push(refreshed.encode_to_vec());
        tokens.extend([
            refreshed.access_token.clone(),
            refreshed.refresh_token.clone(),
        ]);
        let me = AuthServiceClient::new(signed(raw.clone(), &refreshed.access_token))
            .who_am_i(pb::WhoAmIRequest {})
            .await
            .unwrap()
            .into_inner();
        assert_eq!(me.principal, login.principal);
        responses.push(me.encode_to_vec());
        // The latest refresh token signs out; neither it nor the spent one refreshes again.
        let out = auth
            .logout(pb::LogoutRequest {
                refresh_token: refreshed.refresh_token.clone(),
            })
            .await
            .unwrap_or_else(|e| panic!("{who:?} signs out: {e:?}"))
            .into_inner();
        responses.push(out.encode_to_vec());
        for refresh_token in [&refreshed.refresh_token, &login.refresh_token] {
            let ended = auth
                .refresh(pb::RefreshRequest {
                    refresh_token: refresh_token.clone(),
                })
                .await
                .expect_err("a signed-out chain is refused");
            errors.push(format!("{ended:?}"));
        }
    }

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

    // The first admin refreshes and signs out too.
    let refreshed = auth
        .refresh(pb::RefreshRequest {
            refresh_token: admin_login.refresh_token.clone(),
        })
        .await
        .expect("the first admin refreshes")
        .into_inner();
    sign_ins.push(refreshed.encode_to_vec());
    tokens.extend([
        refreshed.access_token.clone(),
        refreshed.refresh_token.clone(),
    ]);
    let out = auth
        .logout(pb::LogoutRequest {
            refresh_token: refreshed.refresh_token.clone(),
        })
        .await
        .expect("the first admin signs out")
        .into_inner();
    responses.push(out.encode_to_vec());

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
    assert!(
        log.contains("RefreshIssued") && log.contains("Account(\"ops\")"),
        "the sign-ins are not in the logs"
    );
    assert!(
        log.contains("RefreshChainEnded"),
        "the sign-outs are not in the logs"
    );
    for secret in [
        PASSWORD,
        WRONG_PASSWORD,
        ACCOUNT_SECRET,
        bootstrap_secret.as_str(),
    ] {
        assert!(!log.contains(secret), "a password or secret was logged");
        for (i, bytes) in responses.iter().enumerate() {
            assert!(
                !contains(bytes, secret),
                "response {i} echoes a password or secret"
            );
        }
        for (i, bytes) in sign_ins.iter().enumerate() {
            assert!(
                !contains(bytes, secret),
                "sign-in answer {i} echoes a password or secret"
            );
        }
        assert!(
            errors.iter().all(|e| !e.contains(secret)),
            "an error echoes a password or secret"
        );
    }
    assert_eq!(
        tokens.len(),
        12,
        "every sign-in and refresh handed out two tokens"
    );
    for token in &tokens {
        for part in token_parts(token) {
            assert!(
                !log.contains(&part),
                "a token (or its secret part) was logged"
            );
            for (i, bytes) in responses.iter().enumerate() {
                assert!(!contains(bytes, &part), "response {i} carries a token");
            }
            assert!(
                errors.iter().all(|e| !e.contains(&part)),
                "an error echoes a token"
            );
        }
    }
}
