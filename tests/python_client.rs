//! A real external client: the Python stubs generated from `proto/` run the seed's login flow
//! (`tests/python/login_flow.py`) against a real server, signing in as a real client does:
//! the first admin with the one-time secret from its file, then the agent with its password.

mod common;

use std::process::Command;
use std::time::Duration;

use common::tools;

// Distinctive, so finding it in any answer can only mean it was echoed.
const PASSWORD: &str = "py-client-Secr3t-7d1f";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_client_runs_the_seed_login_flow() {
    let server = common::TestServer::start().await;
    let target = server.addr.to_string();
    // The script reads the first admin's secret from a file, as an operator would.
    let secrets = tempfile::tempdir().expect("a temporary directory");
    let secret_file = secrets.path().join("bootstrap-admin.secret");
    std::fs::write(&secret_file, server.admin_secret()).expect("the secret is written");

    let mut command = Command::new(tools::python());
    command
        .arg(tools::repo_root().join("tests/python/login_flow.py"))
        .args([
            "--target",
            target.as_str(),
            "--agent-id",
            "rajat1",
            "--password",
            PASSWORD,
        ])
        .arg("--admin-secret-file")
        .arg(&secret_file)
        .env("SWITCHBOARD_PYPROTO", tools::pyproto_dir())
        .env("PYTHONUNBUFFERED", "1");
    // The script bounds each of its waits at 10 s; this only guards against a wedged interpreter.
    let output = tokio::task::spawn_blocking(move || {
        tools::run_with_timeout(command, Duration::from_secs(120))
    })
    .await
    .expect("python runner panicked");

    let report = tools::describe_output("login_flow.py", &output);
    assert!(output.status.success(), "{report}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.lines().any(|line| line.trim() == "login flow: OK"),
        "no `login flow: OK` line\n{report}"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !stdout.contains(server.admin_secret()) && !stderr.contains(server.admin_secret()),
        "the first admin's secret appears in the script's output\n{report}"
    );
    drop(server);
}
