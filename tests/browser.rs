//! The browser tests, run with every other test: each `web/tests/*.test.ts` file drives the
//! pages this server binary serves in Debian's headless Chromium (through playwright-core)
//! while a channel and the checks talk real gRPC to the same server. The files start and stop
//! their own servers; here they are built (after checking that the committed `web/dist` is
//! what `web/` builds, since that is what the binary serves) and run one at a time, so that
//! two browsers never share the machine's two cores.
//!
//! Needs what `scripts/test-tools.sh` installs: `web/node_modules` and `/usr/bin/chromium`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

fn web() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("web")
}

/// Checks `web/dist` and bundles the tests, once per run; the outcome, for every test.
fn built() -> &'static Result<(), String> {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    BUILT.get_or_init(|| {
        if !web().join("node_modules").is_dir() {
            return Err("web/node_modules is missing: run scripts/test-tools.sh first".into());
        }
        let output = Command::new("node")
            .args(["build.mjs", "--check", "--tests"])
            .current_dir(web())
            .output()
            .map_err(|e| format!("running node: {e} (is Node.js on PATH?)"))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(format!(
                "web/build.mjs --check --tests failed:\n{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ))
        }
    })
}

/// The test files of one page (`web/tests/<page>*.test.ts`), as bundled.
fn test_files(page: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(web().join(".test-build"))
        .expect("the bundled tests")
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| {
            path.file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.starts_with(page) && name.ends_with(".test.js"))
        })
        .collect();
    files.sort();
    files
}

/// Runs a page's test files with node's test runner; its report goes to the test's output.
fn run_browser_tests(page: &str) {
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    if let Err(why) = built() {
        panic!("{why}");
    }
    assert!(
        Path::new("/usr/bin/chromium").exists(),
        "/usr/bin/chromium is missing: run scripts/test-tools.sh first"
    );
    let files = test_files(page);
    assert!(!files.is_empty(), "no web/tests/{page}*.test.ts");
    let mut node = Command::new("node");
    node.arg("--test")
        .arg("--test-concurrency=1")
        .arg("--test-reporter=spec")
        .args(&files)
        .current_dir(web())
        .env("SWITCHBOARD_BIN", env!("CARGO_BIN_EXE_switchboard"));
    // `SWITCHBOARD_SCREENSHOTS=docs cargo test --test browser` renews the README's pictures.
    if let Some(dir) = std::env::var_os("SWITCHBOARD_SCREENSHOTS") {
        node.env("SWITCHBOARD_SCREENSHOTS", web().join("..").join(dir));
    }
    let output = node.output().expect("node runs");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    println!("{report}");
    assert!(
        output.status.success(),
        "{page} browser tests failed:\n{report}"
    );
    // A file whose tests never ran must not pass.
    let passed = report
        .lines()
        .find_map(|line| {
            line.trim_start_matches('\u{2139}')
                .trim()
                .strip_prefix("pass ")
        })
        .and_then(|count| count.trim().parse::<u32>().ok());
    assert!(
        passed.is_some_and(|n| n > 0),
        "no browser test ran:\n{report}"
    );
}

#[test]
fn the_agent_desktop_in_chromium() {
    run_browser_tests("desktop");
}

#[test]
fn the_supervisor_wallboard_in_chromium() {
    run_browser_tests("wallboard");
}

/// Every test file belongs to a page, so none is left unrun.
#[test]
fn every_web_test_file_is_run() {
    for entry in std::fs::read_dir(web().join("tests")).expect("web/tests") {
        let name = entry.expect("a directory entry").file_name();
        let name = name.to_string_lossy();
        if name.ends_with(".test.ts") {
            assert!(
                name.starts_with("desktop") || name.starts_with("wallboard"),
                "web/tests/{name} is run by no test in tests/browser.rs: name it after its page"
            );
        }
    }
}
