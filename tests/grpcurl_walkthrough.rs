//! Keeps the README's grpcurl walkthrough true: every ```sh block between the walkthrough
//! markers is run, as written, with the venv's grpcurl against a real server, and its key
//! output is checked.

mod common;

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use common::tools;

const DEFAULT_ADDR: &str = "127.0.0.1:50051";
const BEGIN: &str = "<!-- walkthrough:begin -->";
const END: &str = "<!-- walkthrough:end -->";
const RESOURCE_ID: &str = "Switchboard-rajat1";

/// The steps the walkthrough must show, in this order (others may sit between them).
const REQUIRED_STEPS: &[&str] = &[
    "list",
    "describe",
    "AdminService/UpsertAgent",
    "CoreService/GetServerStatus",
    "CoreService/ListServices",
    "CoreService/RegisterClient",
    "CoreService/BindService",
    "CoreService/BindService",
    "ProcessorService/GetCapabilities",
    "ProcessorService/PrepareSession",
    "CoreService/BindResource",
    "CoreService/BindResource",
    "WorkflowService/GetSessionState",
    "WorkflowService/InvokeAction",
    "WorkflowService/GetSessionState",
];

const CAPABILITY_KEYS: &[&str] = &[
    "channel-actions",
    "channel-groups-max-per-agent",
    "channel-groups-media-types",
    "channel-groups-supported",
    "single-channels-media-types",
    "single-channels-supported",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readme_grpcurl_walkthrough_runs_against_a_real_server() {
    let readme = std::fs::read_to_string(tools::repo_root().join("README.md")).expect("README.md");
    let commands = walkthrough_commands(&readme);
    let steps: Vec<String> = commands.iter().map(|c| step_of(c)).collect();
    assert!(
        is_subsequence(REQUIRED_STEPS, &steps),
        "the walkthrough must show {REQUIRED_STEPS:?} in order; it shows {steps:?}"
    );
    let grpcurl = tools::grpcurl();

    let server = common::TestServer::start().await;
    let addr = server.addr.to_string();
    let run = tokio::task::spawn_blocking(move || run_walkthrough(&grpcurl, &commands, &addr));
    if let Err(error) = run.await {
        match error.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(error) => panic!("walkthrough task failed: {error}"),
        }
    }
    drop(server);
}

/// What the walkthrough has learned so far, and what it has done.
#[derive(Default)]
struct State {
    processor_id: Option<String>,
    client_id: Option<String>,
    logged_in: bool,
}

fn run_walkthrough(grpcurl: &std::path::Path, commands: &[Vec<String>], addr: &str) {
    let password = walkthrough_password(commands);
    let mut state = State::default();
    for (index, words) in commands.iter().enumerate() {
        let shown = words.join(" ");
        assert_eq!(
            words[0], "grpcurl",
            "walkthrough command {index} is not grpcurl: {shown}"
        );
        assert!(
            words.iter().any(|w| w == "-plaintext") && words.iter().any(|w| w == DEFAULT_ADDR),
            "walkthrough command {index} must use -plaintext against {DEFAULT_ADDR}: {shown}"
        );
        let args: Vec<String> = words[1..]
            .iter()
            .map(|w| substitute(w, addr, &state, &shown))
            .collect();

        let mut command = Command::new(grpcurl);
        command.args(&args);
        let output = tools::run_with_timeout(command, Duration::from_secs(30));
        let report = tools::describe_output(&format!("grpcurl {}", args.join(" ")), &output);
        println!("{report}\n");
        assert!(
            output.status.success(),
            "walkthrough command {index} failed\n{report}"
        );
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            !stdout.contains(&password) && !stderr.contains(&password),
            "the password appears in the output of walkthrough command {index}\n{report}"
        );
        check_output(&step_of(words), &args, &stdout, &mut state, &report);
    }
    assert!(state.logged_in, "the walkthrough never logged the agent in");
}

/// Checks one command's output and records the ids later commands need.
fn check_output(step: &str, args: &[String], stdout: &str, state: &mut State, report: &str) {
    let lines: BTreeSet<&str> = stdout.lines().map(str::trim).collect();
    match step {
        "list" => {
            for service in [
                "switchboard.v1.CoreService",
                "switchboard.v1.ProcessorService",
                "switchboard.v1.WorkflowService",
                "switchboard.v1.AdminService",
                "grpc.health.v1.Health",
            ] {
                assert!(
                    lines.contains(service),
                    "`list` does not name {service}\n{report}"
                );
            }
            assert!(
                lines.contains("grpc.reflection.v1alpha.ServerReflection")
                    || lines.contains("grpc.reflection.v1.ServerReflection"),
                "`list` does not name the reflection service\n{report}"
            );
        }
        "describe" => {
            assert!(
                stdout.contains("is a service:"),
                "`describe` shows no service\n{report}"
            );
            assert!(
                lines.iter().any(|line| line.starts_with("//")),
                "`describe` shows no documentation comment\n{report}"
            );
        }
        _ => {
            let json: Value = serde_json::from_str(stdout)
                .unwrap_or_else(|e| panic!("output is not one JSON object ({e})\n{report}"));
            check_answer(step, args, &json, state, report);
        }
    }
}

fn check_answer(step: &str, args: &[String], json: &Value, state: &mut State, report: &str) {
    let request = request_body(args);
    match step {
        "AdminService/UpsertAgent" => {
            let agent = field(json, "agent");
            assert_eq!(
                field(agent, "agentId"),
                field(field(&request, "agent"), "agentId"),
                "{report}"
            );
        }
        "CoreService/GetServerStatus" => {
            assert_eq!(
                field(json, "status"),
                "SERVICE_STATUS_IN_SERVICE",
                "{report}"
            );
            assert_eq!(field(json, "acceptingClients"), true, "{report}");
        }
        "CoreService/ListServices" => {
            let services = field(json, "services")
                .as_array()
                .cloned()
                .unwrap_or_default();
            let id_of = |kind: &str| {
                services
                    .iter()
                    .find(|s| field(s, "serviceType") == kind)
                    .and_then(|s| field(s, "serviceId").as_str())
                    .map(str::to_owned)
            };
            let processor = id_of("switchboard.processor");
            assert!(
                processor.is_some(),
                "no switchboard.processor service\n{report}"
            );
            let manager = id_of("switchboard.workflow.manager");
            assert_eq!(manager.as_deref(), Some("WorkflowManager"), "{report}");
            state.processor_id = processor;
        }
        "CoreService/RegisterClient" => {
            let client_id = field(json, "clientId").as_str().unwrap_or_default();
            assert!(!client_id.is_empty(), "no clientId\n{report}");
            state.client_id = Some(client_id.to_owned());
        }
        "CoreService/BindService" => {
            assert_eq!(
                field(json, "serviceId"),
                field(&request, "serviceId"),
                "{report}"
            );
        }
        "ProcessorService/GetCapabilities" => {
            let keys: Vec<&str> = field(json, "capabilities")
                .as_object()
                .map(|caps| caps.keys().map(String::as_str).collect())
                .unwrap_or_default();
            // serde_json's map is ordered by key, as is CAPABILITY_KEYS.
            assert_eq!(keys, CAPABILITY_KEYS, "{report}");
        }
        "ProcessorService/PrepareSession" => {
            assert_eq!(
                field(json, "result"),
                "PREPARE_SESSION_RESULT_SUCCESS",
                "{report}"
            );
            assert_eq!(field(json, "resourceId"), RESOURCE_ID, "{report}");
        }
        "CoreService/BindResource" => {
            let expected = if field(&request, "serviceId") == "WorkflowManager" {
                "switchboard.workflow.session"
            } else {
                "switchboard.processor.session"
            };
            assert_eq!(field(json, "resourceId"), RESOURCE_ID, "{report}");
            assert_eq!(field(json, "resourceType"), expected, "{report}");
        }
        "WorkflowService/GetSessionState" => {
            let (view, login, logout) = if state.logged_in {
                ("logged_in", false, true)
            } else {
                ("initial", true, false)
            };
            assert_eq!(field(json, "viewState"), view, "{report}");
            assert_eq!(
                action_enabled(json, "session.login"),
                Some(login),
                "{report}"
            );
            assert_eq!(
                action_enabled(json, "session.logout"),
                Some(logout),
                "{report}"
            );
        }
        "WorkflowService/InvokeAction" => {
            assert_eq!(field(&request, "action"), "session.login", "{report}");
            assert_eq!(field(json, "viewState"), "logged_in", "{report}");
            assert_eq!(
                action_enabled(json, "session.login"),
                Some(false),
                "{report}"
            );
            assert_eq!(
                action_enabled(json, "session.logout"),
                Some(true),
                "{report}"
            );
            state.logged_in = true;
        }
        _ => {}
    }
}

/// A field of grpcurl's JSON, which uses lowerCamelCase names; proto names are accepted too.
fn field<'a>(json: &'a Value, camel: &str) -> &'a Value {
    static MISSING: Value = Value::Null;
    let snake: String = camel
        .chars()
        .flat_map(|c| {
            let lower = c.to_ascii_lowercase();
            if c.is_ascii_uppercase() {
                vec!['_', lower]
            } else {
                vec![c]
            }
        })
        .collect();
    json.get(camel)
        .or_else(|| json.get(&snake))
        .unwrap_or(&MISSING)
}

/// Whether the named action is enabled; grpcurl leaves `enabled: false` out.
fn action_enabled(json: &Value, name: &str) -> Option<bool> {
    field(json, "actions")
        .as_array()?
        .iter()
        .find(|a| field(a, "name") == name)
        .map(|a| field(a, "enabled").as_bool().unwrap_or(false))
}

/// The `-d` JSON body of a command, or null.
fn request_body(args: &[String]) -> Value {
    args.iter()
        .position(|a| a == "-d")
        .and_then(|i| args.get(i + 1))
        .map(|body| serde_json::from_str::<Value>(body).expect("-d body is JSON"))
        .unwrap_or(Value::Null)
}

/// The password the walkthrough sets, so that no output may contain it.
fn walkthrough_password(commands: &[Vec<String>]) -> String {
    let upsert = commands
        .iter()
        .find(|c| step_of(c) == "AdminService/UpsertAgent")
        .expect("the walkthrough creates an agent");
    let body = request_body(&upsert[1..]);
    let password = field(field(&body, "agent"), "password")
        .as_str()
        .unwrap_or_default();
    assert!(
        !password.is_empty(),
        "UpsertAgent in the walkthrough sets no password"
    );
    password.to_owned()
}

/// Points a README word at the test server and fills in the ids printed earlier.
fn substitute(word: &str, addr: &str, state: &State, shown: &str) -> String {
    let mut word = word.replace(DEFAULT_ADDR, addr);
    for (placeholder, value, source) in [
        ("PROCESSOR_ID", &state.processor_id, "ListServices"),
        ("CLIENT_ID", &state.client_id, "RegisterClient"),
    ] {
        if word.contains(placeholder) {
            let value = value.as_deref().unwrap_or_else(|| {
                panic!("`{shown}` uses {placeholder} before {source} printed it")
            });
            word = word.replace(placeholder, value);
        }
    }
    word
}

/// `list`, `describe`, or the `Service/Method` a command calls (without the package).
fn step_of(words: &[String]) -> String {
    let args = &words[1..];
    if let Some(method) = args
        .iter()
        .find(|w| w.starts_with("switchboard.v1.") && w.contains('/'))
    {
        return method.trim_start_matches("switchboard.v1.").to_owned();
    }
    for verb in ["list", "describe"] {
        if args.iter().any(|w| w == verb) {
            return verb.to_owned();
        }
    }
    "other".to_owned()
}

fn is_subsequence(wanted: &[&str], steps: &[String]) -> bool {
    let mut steps = steps.iter();
    wanted.iter().all(|w| steps.any(|s| s == w))
}

/// The commands of the ```sh blocks between the walkthrough markers, one per block.
fn walkthrough_commands(readme: &str) -> Vec<Vec<String>> {
    let start = readme
        .find(BEGIN)
        .expect("README.md has no walkthrough:begin marker")
        + BEGIN.len();
    let len = readme[start..]
        .find(END)
        .expect("README.md has no walkthrough:end marker");
    let mut commands = Vec::new();
    let mut block: Option<String> = None; // inside a ```sh block
    let mut in_other_fence = false;
    for line in readme[start..start + len].lines() {
        let trimmed = line.trim();
        if let Some(text) = block.as_mut() {
            if trimmed == "```" {
                let mut parsed = shell_commands(text);
                assert_eq!(
                    parsed.len(),
                    1,
                    "each ```sh block holds one command: {text}"
                );
                commands.push(parsed.remove(0));
                block = None;
            } else if !trimmed.starts_with('#') {
                text.push_str(line);
                text.push('\n');
            }
        } else if in_other_fence {
            in_other_fence = trimmed != "```";
        } else if trimmed == "```sh" || trimmed == "```bash" || trimmed == "```shell" {
            block = Some(String::new());
        } else if trimmed.starts_with("```") {
            in_other_fence = true;
        }
    }
    assert!(
        block.is_none(),
        "unterminated ```sh block in the walkthrough"
    );
    assert!(!commands.is_empty(), "the walkthrough has no ```sh blocks");
    commands
}

/// Splits shell text into commands of words: enough of the shell for README commands
/// (single and double quotes, backslash escapes and line continuations). Anything that would
/// need a real shell is refused rather than misread.
fn shell_commands(text: &str) -> Vec<Vec<String>> {
    fn end_word(word: &mut Option<String>, words: &mut Vec<String>) {
        if let Some(w) = word.take() {
            words.push(w);
        }
    }
    let mut commands = Vec::new();
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(ch) => w.push(ch),
                        None => panic!("unterminated single quote in: {text}"),
                    }
                }
            }
            '"' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some('\n') => {}
                            Some(ch @ ('"' | '\\' | '$' | '`')) => w.push(ch),
                            Some(ch) => {
                                w.push('\\');
                                w.push(ch);
                            }
                            None => panic!("unterminated double quote in: {text}"),
                        },
                        Some(ch @ ('$' | '`')) => panic!("unsupported {ch:?} in: {text}"),
                        Some(ch) => w.push(ch),
                        None => panic!("unterminated double quote in: {text}"),
                    }
                }
            }
            '\\' => match chars.next() {
                Some('\n') => {}
                Some(ch) => word.get_or_insert_with(String::new).push(ch),
                None => panic!("trailing backslash in: {text}"),
            },
            '\n' | ';' => {
                end_word(&mut word, &mut words);
                if !words.is_empty() {
                    commands.push(std::mem::take(&mut words));
                }
            }
            '$' | '`' | '|' | '&' | '<' | '>' | '(' | ')' | '*' | '?' | '~' => {
                panic!("unsupported shell syntax {c:?} in: {text}")
            }
            c if c.is_whitespace() => end_word(&mut word, &mut words),
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    end_word(&mut word, &mut words);
    if !words.is_empty() {
        commands.push(words);
    }
    commands
}

#[test]
fn shell_commands_handle_quotes_and_continuations() {
    let text = "grpcurl -plaintext \\\n  -d '{\"a\": \"b c\"}' \"x\\\"y\" 127.0.0.1:50051 s/M\n";
    assert_eq!(
        shell_commands(text),
        vec![vec![
            "grpcurl",
            "-plaintext",
            "-d",
            r#"{"a": "b c"}"#,
            "x\"y",
            "127.0.0.1:50051",
            "s/M"
        ]]
    );
    assert_eq!(shell_commands("a ''\nb").len(), 2);
    assert_eq!(shell_commands("a ''")[0], vec!["a", ""]);
}

#[test]
fn readme_walkthrough_parses() {
    let readme = std::fs::read_to_string(tools::repo_root().join("README.md")).expect("README.md");
    let commands = walkthrough_commands(&readme);
    let steps: Vec<String> = commands.iter().map(|c| step_of(c)).collect();
    assert!(is_subsequence(REQUIRED_STEPS, &steps), "{steps:?}");
    assert!(!walkthrough_password(&commands).is_empty());
}
