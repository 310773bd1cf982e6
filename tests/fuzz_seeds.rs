//! The fuzz targets' seed corpus (`fuzz/corpus/<target>/`): every committed seed is an input
//! its target accepts, so the fuzzers start from the valid forms and not from noise.
//! `FUZZ_SEEDS_WRITE=1 cargo test --test fuzz_seeds` writes the generated seeds again: valid
//! requests of many RPCs, and the events and snapshot the rules produce for a day's routing.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::world::World;
use prost::Message;
use switchboard::api::decode::{METHODS, check_request};
use switchboard::domain::commands as cmd;
use switchboard::domain::routing::expr::Expr;
use switchboard::domain::routing::model::TaskState;
use switchboard::domain::{
    Actor, ClientId, Event, ServiceDirectory, ServiceKind, Snapshot, WorkflowModel,
};
use switchboard::pb;

/// The directory the `requests` target validates against.
fn directory() -> ServiceDirectory {
    ServiceDirectory::new(uuid::Uuid::nil(), "processor")
}

fn corpus(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target)
}

fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
    let mut found: Vec<(String, Vec<u8>)> = fs::read_dir(corpus(target))
        .unwrap_or_else(|e| panic!("fuzz/corpus/{target}: {e}"))
        .map(|entry| {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, fs::read(&path).unwrap())
        })
        .collect();
    found.sort();
    found
}

/// A seed of the `requests` target: the method's index, then the body.
fn request_seed(method: &str, body: &impl Message) -> (String, Vec<u8>) {
    let index = METHODS
        .iter()
        .position(|m| *m == method)
        .unwrap_or_else(|| panic!("{method} is not in METHODS"));
    let mut bytes = vec![u8::try_from(index).unwrap()];
    bytes.extend(body.encode_to_vec());
    let short = method.rsplit('/').next().unwrap();
    (short.to_owned(), bytes)
}

fn request_seeds() -> Vec<(String, Vec<u8>)> {
    use pb::connect_request::Request as Req;
    let services = directory();
    let workflow_service = services.id(ServiceKind::WorkflowManager).to_owned();
    let processor = services.id(ServiceKind::Processor).to_owned();
    let prepare = pb::PrepareSessionRequest {
        service_id: processor.clone(),
        agent: Some(pb::AgentCredentials {
            id: "ann".into(),
            password: "secret-password".into(),
        }),
        request_id: "prepare-1".into(),
        ..Default::default()
    };
    let rpc = |name: &str| format!("/switchboard.v1.{name}");
    vec![
        request_seed(
            &rpc("AdminService/UpsertAgent"),
            &pb::UpsertAgentRequest {
                agent: Some(pb::Agent {
                    agent_id: "ann".into(),
                    display_name: "Ann".into(),
                    password: "secret-password".into(),
                    attributes: [("sales".to_owned(), 5)].into(),
                    mrd_max_tasks: [("chat".to_owned(), 2)].into(),
                    roles: Vec::new(),
                }),
                request_id: "agent-ann".into(),
            },
        ),
        request_seed(
            &rpc("AdminService/UpsertMrd"),
            &pb::UpsertMrdRequest {
                mrd: Some(pb::Mrd {
                    name: "chat".into(),
                    max_tasks: 2,
                    offer_timeout_seconds: 30,
                    ..Default::default()
                }),
                request_id: "mrd-chat".into(),
            },
        ),
        request_seed(
            &rpc("AdminService/UpsertQueue"),
            &pb::UpsertQueueRequest {
                queue: Some(pb::Queue {
                    name: "sales".into(),
                    mrd: "chat".into(),
                    steps: vec![
                        pb::QueueStep {
                            expression: "sales >= 8 AND (english OR french)".into(),
                            timeout_seconds: 10,
                        },
                        pb::QueueStep {
                            expression: "TRUE".into(),
                            timeout_seconds: 0,
                        },
                    ],
                    task_ttl_seconds: 600,
                    ..pb::Queue::default()
                }),
                request_id: "queue-sales".into(),
            },
        ),
        request_seed(
            &rpc("AdminService/ListAgents"),
            &pb::ListAgentsRequest {
                page_size: 10,
                page_token: String::new(),
            },
        ),
        request_seed(
            &rpc("AuthService/Login"),
            &pb::LoginRequest {
                principal: Some(pb::login_request::Principal::AgentId("ann".into())),
                password: "secret-password".into(),
            },
        ),
        request_seed(
            &rpc("CoreService/RegisterClient"),
            &pb::RegisterClientRequest {
                client_name: "desktop".into(),
                request_id: "register-1".into(),
            },
        ),
        request_seed(
            &rpc("CoreService/BindService"),
            &pb::BindServiceRequest {
                client_id: uuid::Uuid::from_u128(7).to_string(),
                service_id: workflow_service.clone(),
                request_id: "bind-1".into(),
            },
        ),
        request_seed(
            &rpc("CoreService/Connect"),
            &pb::ConnectRequest {
                request_id: "frame-1".into(),
                request: Some(Req::BindResource(pb::BindResourceRequest {
                    service_id: workflow_service,
                    resource_id: "session-ann".into(),
                    ..Default::default()
                })),
            },
        ),
        request_seed(
            &rpc("CoreService/Connect"),
            &pb::ConnectRequest {
                request_id: "frame-2".into(),
                request: Some(Req::PrepareSession(prepare.clone())),
            },
        ),
        request_seed(&rpc("ProcessorService/PrepareSession"), &prepare),
        request_seed(
            &rpc("RoutingService/LoginAgent"),
            &pb::LoginAgentRequest {
                agent_id: "ann".into(),
                password: "secret-password".into(),
                mrd: "chat".into(),
                request_id: "login-ann".into(),
            },
        ),
        request_seed(
            &rpc("RoutingService/ChangeAgentState"),
            &pb::ChangeAgentStateRequest {
                agent_id: "ann".into(),
                state: pb::AgentState::Ready.into(),
                mrd: "chat".into(),
                reason_code: String::new(),
                request_id: "ready-ann".into(),
            },
        ),
        request_seed(
            &rpc("RoutingService/NewTask"),
            &pb::NewTaskRequest {
                request_id: "task-1".into(),
                mrd: "chat".into(),
                queue: "sales".into(),
                priority: 5,
                conversation_id: "conversation-1".into(),
                last_agent_id: "ann".into(),
                labels: vec!["vip".into()],
                attributes: [("language".to_owned(), "en".to_owned())].into(),
                ..Default::default()
            },
        ),
        request_seed(
            &rpc("RoutingService/AcceptTask"),
            &pb::AcceptTaskRequest {
                task_id: "task-1".into(),
                agent_id: "ann".into(),
                request_id: "accept-1".into(),
            },
        ),
        request_seed(
            &rpc("RoutingService/ChangeTaskState"),
            &pb::ChangeTaskStateRequest {
                disposition_code: String::new(),
                task_id: "task-1".into(),
                state: pb::TaskState::WrappingUp.into(),
                request_id: "wrap-1".into(),
            },
        ),
        request_seed(
            &rpc("RoutingService/WatchRoutingEvents"),
            &pb::WatchRoutingEventsRequest {
                start_revision: 1,
                agent_id: "ann".into(),
                mrd: "chat".into(),
                ..Default::default()
            },
        ),
    ]
}

/// The events of a short day's routing and session work, and the snapshot after it, as the
/// rules produce them.
fn journal_seeds() -> Vec<(String, Vec<u8>)> {
    let mut w = World::new();
    w.mrd("chat", 2);
    w.queue(
        "chat",
        "sales",
        &[("sales >= 8", 10_000), ("sales >= 3 OR english", 0)],
        600_000,
    );
    w.agent("ann", &[("sales", 5)]);
    w.agent("bob", &[("sales", 9), ("english", 1)]);
    let client_id = ClientId::parse("client_id", &uuid::Uuid::from_u128(7).to_string()).unwrap();
    w.ok(cmd::RegisterClient {
        client_id,
        client_name: "desktop".into(),
    });
    w.ok(cmd::BindService {
        client_id,
        service: ServiceKind::Processor,
    });
    w.ok(cmd::PrepareSession {
        agent_id: "ann".into(),
        verified_hash: Some(w.password_hash.clone()),
        model: String::new(),
        take_over: false,
        cti: String::new(),
    });
    w.login_ready("ann", "chat");
    w.login_ready("bob", "chat");
    w.task("t1", "chat", "sales", 5);
    w.accept("t1", "bob");
    w.task_state("t1", TaskState::WrappingUp).unwrap();
    let before_snapshot = w.events.len();
    let snapshot = serde_json::to_vec(&w.state.snapshot()).unwrap();
    w.task("t2", "chat", "sales", 3);
    w.advance(60_000);

    let mut seeds: Vec<(String, Vec<u8>)> = w
        .events
        .iter()
        .enumerate()
        .map(|(i, event)| {
            let mut bytes = vec![0];
            bytes.extend(serde_json::to_vec(event).unwrap());
            (format!("event-{i:03}"), bytes)
        })
        .collect();
    for (i, actor) in [
        Actor::Engine,
        Actor::Agent("ann".into()),
        Actor::Account("ops".into()),
    ]
    .iter()
    .enumerate()
    {
        let mut bytes = vec![1];
        bytes.extend(actor.to_string().into_bytes());
        seeds.push((format!("actor-{i}"), bytes));
    }
    // A snapshot, then the events after it, one a line: what start-up reads.
    let mut bytes = vec![2];
    bytes.extend(snapshot);
    for event in &w.events[before_snapshot..] {
        bytes.push(b'\n');
        bytes.extend(serde_json::to_vec(event).unwrap());
    }
    seeds.push(("snapshot-and-events".into(), bytes));
    seeds
}

fn write(target: &str, seeds: &[(String, Vec<u8>)]) {
    let dir = corpus(target);
    fs::create_dir_all(&dir).unwrap();
    for (name, bytes) in seeds {
        fs::write(dir.join(name), bytes).unwrap();
    }
}

#[test]
fn the_seed_corpus_holds_valid_inputs_of_each_target() {
    if std::env::var_os("FUZZ_SEEDS_WRITE").is_some() {
        let requests = request_seeds();
        // Two seeds of one method get numbered names.
        let numbered: Vec<(String, Vec<u8>)> = requests
            .into_iter()
            .enumerate()
            .map(|(i, (name, bytes))| (format!("{name}-{i:02}"), bytes))
            .collect();
        write("requests", &numbered);
        write("journal", &journal_seeds());
    }

    let requests = seeds("requests");
    assert!(requests.len() >= 10, "request seeds: {}", requests.len());
    for (name, bytes) in &requests {
        let method = METHODS[usize::from(bytes[0]) % METHODS.len()];
        check_request(&directory(), method, &bytes[1..])
            .unwrap_or_else(|status| panic!("requests/{name}: {method} refused: {status:?}"));
    }

    let journal = seeds("journal");
    assert!(journal.len() >= 10, "journal seeds: {}", journal.len());
    for (name, bytes) in &journal {
        let body = &bytes[1..];
        match bytes[0] {
            0 => drop(serde_json::from_slice::<Event>(body).expect(name)),
            1 => drop(Actor::parse(std::str::from_utf8(body).unwrap()).expect(name)),
            _ => {
                let mut lines = body.split(|b| *b == b'\n');
                let snapshot: Snapshot = serde_json::from_slice(lines.next().unwrap()).expect(name);
                assert!(snapshot.is_current_format(), "{name}");
                for line in lines {
                    serde_json::from_slice::<Event>(line).expect(name);
                }
            }
        }
    }

    for (name, bytes) in seeds("workflow_model") {
        WorkflowModel::parse(std::str::from_utf8(&bytes).unwrap())
            .unwrap_or_else(|e| panic!("workflow_model/{name}: {e}"));
    }
    let expressions = seeds("step_expr");
    assert!(
        expressions.len() >= 10,
        "step_expr seeds: {}",
        expressions.len()
    );
    for (name, bytes) in expressions {
        Expr::parse(std::str::from_utf8(&bytes).unwrap())
            .unwrap_or_else(|e| panic!("step_expr/{name}: {e}"));
    }
}
