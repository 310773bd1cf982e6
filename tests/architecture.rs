//! Guards for the shape of the code: the rules stay pure, and no hand-written source file
//! grows into one that does several jobs. Both read the source tree, so they fail the moment
//! a change breaks them.

use std::fs;
use std::path::{Path, PathBuf};

/// The longest a hand-written file under `src/` may be.
const MAX_LINES: usize = 600;

/// What the rules must not touch: randomness, the clock, password hashing, the runtime, the
/// network, the metrics registry. Ids, time and hashes are fixed at the edge and enter the
/// rules as data; metrics are derived from the rules' events and read models outside them.
const IMPURE: [&str; 11] = [
    "new_v4",
    "rand::",
    "OsRng",
    "argon2",
    "SystemTime",
    "Instant::now",
    "tokio",
    "tonic",
    "std::fs",
    "std::net",
    "metrics",
];

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).expect("the source tree is readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

fn source_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

#[test]
fn the_domain_is_pure() {
    let mut found = Vec::new();
    for file in rust_files(&source_root().join("domain")) {
        let text = fs::read_to_string(&file).unwrap();
        for (number, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            for word in IMPURE.iter().filter(|w| code.contains(*w)) {
                found.push(format!("{}:{}: {word}", file.display(), number + 1));
            }
        }
    }
    assert!(
        found.is_empty(),
        "src/domain must stay pure:\n{}",
        found.join("\n")
    );
}

#[test]
fn no_source_file_is_over_the_limit() {
    let long: Vec<String> = rust_files(&source_root())
        .into_iter()
        .filter_map(|file| {
            let lines = fs::read_to_string(&file).unwrap().lines().count();
            (lines > MAX_LINES).then(|| format!("{}: {lines} lines", file.display()))
        })
        .collect();
    assert!(
        long.is_empty(),
        "split these along their seams (at most {MAX_LINES} lines):\n{}",
        long.join("\n")
    );
}
