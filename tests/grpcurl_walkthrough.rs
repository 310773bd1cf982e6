//! Keeps the README's grpcurl walkthrough true: every ```sh block between the walkthrough
//! markers is run, as written, with the venv's grpcurl against a real server, and its key
//! output is checked.
//!
//! The walkthrough signs in as a reader would: the first admin with the one-time secret from
//! its file (`BOOTSTRAP_SECRET` in the README), then the agent with its password; each
//! `AuthService/Login` answer's access token stands in for `ADMIN_TOKEN` or `AGENT_TOKEN`
//! in the `-H 'authorization: Bearer ...'` of the calls that need one.

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
    "AuthService/Login",
    "AdminService/UpsertAgent",
    "CoreService/GetServerStatus",
    "CoreService/ListServices",
    "AuthService/Login",
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

/// The steps that need no token; every other one must send the header.
const PUBLIC_STEPS: &[&str] = &[
    "list",
    "describe",
    "CoreService/GetServerStatus",
    "CoreService/ListServices",
    "AuthService/Login",
    "AuthService/Refresh",
    "AuthService/Logout",
];

/// How a command sends its token: `-H 'authorization: Bearer <placeholder>'`.
const BEARER: &str = "authorization: Bearer ";
/// The placeholders the README uses for the first admin's secret and the tokens.
const BOOTSTRAP_SECRET: &str = "BOOTSTRAP_SECRET";
const ADMIN_TOKEN: &str = "ADMIN_TOKEN";
const AGENT_TOKEN: &str = "AGENT_TOKEN";

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
    let secret = server.admin_secret().to_owned();
    let run =
        tokio::task::spawn_blocking(move || run_walkthrough(&grpcurl, &commands, &addr, &secret));
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
    /// The first admin's one-time secret, as the server wrote it to its file.
    bootstrap_secret: Option<String>,
    admin_token: Option<String>,
    agent_token: Option<String>,
    processor_id: Option<String>,
    client_id: Option<String>,
    logged_in: bool,
}

fn run_walkthrough(
    grpcurl: &std::path::Path,
    commands: &[Vec<String>],
    addr: &str,
    bootstrap_secret: &str,
) {
    let password = walkthrough_password(commands);
    let mut state = State {
        bootstrap_secret: Some(bootstrap_secret.to_owned()),
        ..State::default()
    };
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
        check_token_header(words);
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
        for secret in [password.as_str(), bootstrap_secret] {
            assert!(
                !stdout.contains(secret) && !stderr.contains(secret),
                "a password or secret appears in the output of walkthrough command \
                 {index}\n{report}"
            );
        }
        check_output(&step_of(words), &args, &stdout, &mut state, &report);
    }
    assert!(state.logged_in, "the walkthrough never logged the agent in");
    assert!(
        state.admin_token.is_some() && state.agent_token.is_some(),
        "the walkthrough must sign in as the first admin and as the agent"
    );
}

/// The token placeholder a command sends in its `-H 'authorization: Bearer ...'`, if any.
fn bearer_of(words: &[String]) -> Option<&str> {
    words
        .windows(2)
        .filter(|pair| pair[0] == "-H" || pair[0] == "-rpc-header")
        .find_map(|pair| pair[1].strip_prefix(BEARER))
}

/// A command that calls anything but a public RPC sends a token the walkthrough got from a
/// `Login` before.
fn check_token_header(words: &[String]) {
    let step = step_of(words);
    let shown = words.join(" ");
    if PUBLIC_STEPS.contains(&step.as_str()) {
        return;
    }
    let token = bearer_of(words).unwrap_or_else(|| {
        panic!(
            "`{shown}` needs -H '{BEARER}{ADMIN_TOKEN}' (or {AGENT_TOKEN}): {step} is not public"
        )
    });
    assert!(
        [ADMIN_TOKEN, AGENT_TOKEN].contains(&token),
        "`{shown}` sends {token:?}, not {ADMIN_TOKEN} or {AGENT_TOKEN}"
    );
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
        "AuthService/Login" => {
            let access = field(json, "accessToken").as_str().unwrap_or_default();
            let refresh = field(json, "refreshToken").as_str().unwrap_or_default();
            assert!(
                !access.is_empty() && !refresh.is_empty(),
                "no tokens\n{report}"
            );
            let expires: u64 = match field(json, "expiresInSecs") {
                // grpcurl shows 64-bit integers as strings.
                Value::String(s) => s.parse().unwrap_or_default(),
                other => other.as_u64().unwrap_or_default(),
            };
            assert!(expires > 0, "the token expires at once\n{report}");
            let principal = field(json, "principal").as_str().unwrap_or_default();
            if let Some(account) = field(&request, "accountId").as_str() {
                assert_eq!(principal, format!("account:{account}"), "{report}");
                assert!(
                    field(json, "roles")
                        .as_array()
                        .is_some_and(|roles| roles.iter().any(|r| r == "ROLE_ADMIN")),
                    "the first admin signs in as an admin\n{report}"
                );
                state.admin_token = Some(access.to_owned());
            } else {
                let agent = field(&request, "agentId").as_str().unwrap_or_default();
                assert!(!agent.is_empty(), "Login names no principal\n{report}");
                assert_eq!(principal, format!("agent:{agent}"), "{report}");
                state.agent_token = Some(access.to_owned());
            }
        }
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
        (
            BOOTSTRAP_SECRET,
            &state.bootstrap_secret,
            "the server's first start",
        ),
        (ADMIN_TOKEN, &state.admin_token, "the first admin's Login"),
        (AGENT_TOKEN, &state.agent_token, "the agent's Login"),
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
    for words in &commands {
        check_token_header(words);
    }
    // The first admin signs in with the placeholder for its secret, never a real one.
    let admin_login = commands
        .iter()
        .find(|c| step_of(c) == "AuthService/Login")
        .expect("the walkthrough signs in");
    let body = request_body(&admin_login[1..]);
    assert_eq!(field(&body, "accountId"), "admin", "{admin_login:?}");
    assert_eq!(
        field(&body, "password"),
        BOOTSTRAP_SECRET,
        "{admin_login:?}"
    );
}

#[test]
fn token_headers_are_found_and_required() {
    let words = |text: &str| shell_commands(text).remove(0);
    let signed = words(
        "grpcurl -plaintext -H 'authorization: Bearer AGENT_TOKEN' -d '{}' 127.0.0.1:50051 \
         switchboard.v1.CoreService/RegisterClient",
    );
    assert_eq!(bearer_of(&signed), Some(AGENT_TOKEN));
    check_token_header(&signed);
    check_token_header(&words(
        "grpcurl -plaintext 127.0.0.1:50051 switchboard.v1.CoreService/GetServerStatus",
    ));
    let unsigned = words(
        "grpcurl -plaintext -d '{}' 127.0.0.1:50051 switchboard.v1.CoreService/RegisterClient",
    );
    assert!(std::panic::catch_unwind(|| check_token_header(&unsigned)).is_err());
}
