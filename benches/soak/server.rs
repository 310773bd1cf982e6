//! The server under soak: the release binary as a child process on a durable data directory,
//! started, killed with SIGKILL and started again; what its log and the operating system say
//! about it.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tonic::transport::{Channel, Endpoint};

use crate::auth::{self, ADMIN, Who};

/// A failure guard for start-up only.
const START_WAIT: Duration = Duration::from_secs(300);
/// Warnings and errors of the log kept word for word; the rest are only counted.
const KEPT_WARNINGS: usize = 10;

pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    data_dir: PathBuf,
    /// From spawning the process until it logged that it serves.
    pub start_to_serving: Duration,
    /// The `state recovered` line's fields: elapsed_ms and replayed events.
    pub recovered_ms: Option<u64>,
    pub replayed: Option<u64>,
    warnings: Arc<Mutex<Warnings>>,
}

#[derive(Default)]
pub struct Warnings {
    pub count: u64,
    pub first: Vec<String>,
}

impl Server {
    /// Starts `switchboard serve` on a free loopback port and waits until it serves.
    pub fn start(data_dir: &Path, flags: &[String]) -> Self {
        let spawned = Instant::now();
        let mut child = Command::new(env!("CARGO_BIN_EXE_switchboard"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .args(flags)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the release binary starts");
        let stderr = child.stderr.take().expect("stderr is piped");
        let warnings = Arc::new(Mutex::new(Warnings::default()));
        let (lines_tx, lines) = mpsc::channel();
        let kept = Arc::clone(&warnings);
        // Drains stderr for the process's whole life (a full pipe would block the server);
        // hands the start-up lines over and counts warnings and errors from then on.
        std::thread::spawn(move || {
            let mut serving = false;
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains(" WARN ") || line.contains(" ERROR ") || line.contains("panicked")
                {
                    let mut w = kept.lock().expect("not poisoned");
                    w.count += 1;
                    if w.first.len() < KEPT_WARNINGS {
                        w.first.push(line.clone());
                    }
                }
                if !serving {
                    serving = line.contains("switchboard serving");
                    let _ = lines_tx.send(line);
                }
            }
        });
        let mut server = Self {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir: data_dir.to_path_buf(),
            start_to_serving: Duration::ZERO,
            recovered_ms: None,
            replayed: None,
            warnings,
        };
        let mut seen = Vec::new();
        loop {
            let left = START_WAIT.saturating_sub(spawned.elapsed());
            let line = lines.recv_timeout(left).unwrap_or_else(|e| {
                panic!(
                    "the server did not start serving ({e}):\n{}",
                    seen.join("\n")
                )
            });
            if line.contains("state recovered") {
                server.recovered_ms = field(&line, "elapsed_ms");
                server.replayed = field(&line, "replayed");
            }
            if line.contains("switchboard serving") {
                server.start_to_serving = spawned.elapsed();
                server.addr = field(&line, "addr").expect("a socket address after addr=");
                return server;
            }
            seen.push(line);
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL, as a crash or an OOM killer would: no snapshot, no checkpoint.
    pub fn kill(mut self) {
        self.child.kill().expect("SIGKILL reaches the server");
        self.child.wait().expect("the server is reaped");
    }

    pub fn warnings(&self) -> Arc<Mutex<Warnings>> {
        Arc::clone(&self.warnings)
    }

    pub async fn connect(&self) -> Channel {
        Endpoint::from_shared(format!("http://{}", self.addr))
            .expect("a valid endpoint")
            .connect()
            .await
            .expect("the server accepts connections")
    }

    /// A new connection signed in as the first admin.
    pub async fn connect_admin(&self) -> auth::Channel {
        let channel = self.connect().await;
        let secret = auth::admin_secret(&self.data_dir);
        let token = auth::sign_in(&channel, Who::Account(ADMIN), &secret).await;
        auth::signed(channel, &token)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `key=value` from a log line.
fn field<T: std::str::FromStr>(line: &str, key: &str) -> Option<T> {
    line.split_whitespace()
        .find_map(|word| word.strip_prefix(key)?.strip_prefix('='))
        .and_then(|v| v.parse().ok())
}

/// The journal's size on disk: the SQLite file, its write-ahead log and its shared memory.
pub fn journal_bytes(data_dir: &Path) -> u64 {
    [
        "journal.sqlite3",
        "journal.sqlite3-wal",
        "journal.sqlite3-shm",
    ]
    .iter()
    .filter_map(|name| std::fs::metadata(data_dir.join(name)).ok())
    .map(|m| m.len())
    .sum()
}
