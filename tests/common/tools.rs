//! Locates the external clients (grpcurl, Python with generated stubs) that
//! `scripts/test-tools.sh` installs under `target/test-tools`, and runs them with a time limit.
//! `SWITCHBOARD_TEST_VENV` points at another venv, `SWITCHBOARD_PYPROTO` at other stubs.

// Each test binary uses only some of these helpers.
#![allow(dead_code)]

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

const HINT: &str = "run scripts/test-tools.sh (the README's test command does)";

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The venv holding the test clients.
pub fn venv_dir() -> PathBuf {
    match std::env::var_os("SWITCHBOARD_TEST_VENV") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => repo_root().join("target/test-tools/venv"),
    }
}

/// `<venv>/bin/<name>`; panics with how to install it when it is missing.
pub fn venv_bin(name: &str) -> PathBuf {
    let path = venv_dir().join("bin").join(name);
    assert!(path.exists(), "{} missing: {HINT}", path.display());
    path
}

/// The venv's Python, which has grpcio.
pub fn python() -> PathBuf {
    venv_bin("python")
}

/// The venv's grpcurl.
pub fn grpcurl() -> PathBuf {
    venv_bin("grpcurl")
}

/// The Python stubs generated from `proto/`.
pub fn pyproto_dir() -> PathBuf {
    let dir = match std::env::var_os("SWITCHBOARD_PYPROTO") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => repo_root().join("target/test-tools/pyproto"),
    };
    let marker = dir.join("switchboard/v1/core_pb2.py");
    assert!(marker.is_file(), "{} missing: {HINT}", marker.display());
    dir
}

/// Runs `command` to completion with no stdin and captured output, killing it after `limit`.
/// Blocking: call it from `spawn_blocking` when a server runs on the same runtime.
pub fn run_with_timeout(mut command: Command, limit: Duration) -> Output {
    let program = command.get_program().to_string_lossy().into_owned();
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {program}: {e}"));
    // Drained on their own threads so a chatty child cannot block on a full pipe.
    let stdout = drain(child.stdout.take().expect("piped stdout"));
    let stderr = drain(child.stderr.take().expect("piped stderr"));
    let deadline = Instant::now() + limit;
    let status = loop {
        match child.try_wait().expect("waiting for child") {
            Some(status) => break status,
            None if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "{program} still running after {limit:?}; killed\nstdout:\n{}\nstderr:\n{}",
                    String::from_utf8_lossy(&stdout.join().unwrap_or_default()),
                    String::from_utf8_lossy(&stderr.join().unwrap_or_default()),
                );
            }
            None => thread::sleep(Duration::from_millis(20)),
        }
    };
    Output {
        status,
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
    }
}

fn drain(mut pipe: impl Read + Send + 'static) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        buf
    })
}

/// Shows a finished command's outcome for assertion messages.
pub fn describe_output(what: &str, output: &Output) -> String {
    format!(
        "{what}: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    )
}
