//! The servers under test as child processes, and what the operating system says about them.
//!
//! Switchboard (its release binary) and the echo baseline (this suite's own binary, run as
//! `suite serve-echo`) start the same way: a child process on a free loopback port, on the
//! default multi-threaded tokio runtime, pinned to the same core when the machine has two,
//! announcing `addr=` on stderr once it serves.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tonic::transport::{Channel, Endpoint};

use crate::auth::{self, ADMIN, Who};

/// A failure guard for start-up only: a million-event recovery takes seconds, not minutes.
const START_WAIT: Duration = Duration::from_secs(120);

/// The core servers run on, and the one the load (this process, h2load) runs on, when the
/// machine has at least two: the two then never compete, and each one's CPU use says which
/// of them limits the run.
#[derive(Clone, Copy, Debug)]
pub struct Cores {
    pub server: usize,
    pub load: usize,
}

/// Pins this process (every thread it has and will have) to the load core; `None` when the
/// machine has one core or no `taskset`.
pub fn pin_this_process() -> Option<Cores> {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    if cores < 2 {
        return None;
    }
    let chosen = Cores { server: 1, load: 0 };
    let pinned = Command::new("taskset")
        .args(["-a", "-p", "-c", &chosen.load.to_string()])
        .arg(std::process::id().to_string())
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    pinned.then_some(chosen)
}

/// Which server a child process runs.
#[derive(Clone, Copy)]
pub enum ServerKind<'a> {
    /// The bare tonic baseline.
    Echo,
    /// Switchboard, journaling into `data_dir`, with extra `serve` flags.
    Switchboard {
        data_dir: &'a Path,
        flags: &'a [&'a str],
    },
}

pub struct ServerChild {
    child: Child,
    pub addr: SocketAddr,
    /// Switchboard's data directory, where its first start wrote the first admin's secret.
    data_dir: Option<PathBuf>,
    /// From spawning the process until it announced that it serves.
    pub start_to_serving: Duration,
}

impl ServerChild {
    /// Starts a server on `core` (any core when `None`) and waits until it serves.
    pub fn start(kind: &ServerKind<'_>, core: Option<usize>) -> Self {
        Self::start_under(kind, core, &[])
    }

    /// As `start`, with the server run by the command `under` (a program and its
    /// arguments, such as valgrind's), or directly when `under` is empty.
    pub fn start_under(kind: &ServerKind<'_>, core: Option<usize>, under: &[String]) -> Self {
        let (program, args): (std::path::PathBuf, Vec<String>) = match kind {
            ServerKind::Echo => (
                std::env::current_exe().expect("the suite knows its own path"),
                vec!["serve-echo".into()],
            ),
            ServerKind::Switchboard { data_dir, flags } => {
                let mut args: Vec<String> = vec![
                    "serve".into(),
                    "--listen".into(),
                    "127.0.0.1:0".into(),
                    "--data-dir".into(),
                    data_dir.to_str().expect("a UTF-8 data directory").into(),
                ];
                args.extend(flags.iter().map(|f| (*f).to_owned()));
                (env!("CARGO_BIN_EXE_switchboard").into(), args)
            }
        };
        let mut command = match core {
            Some(core) => {
                let mut c = Command::new("taskset");
                c.args(["-c", &core.to_string()]).args(under).arg(&program);
                c
            }
            None => match under.split_first() {
                Some((wrapper, its_args)) => {
                    let mut c = Command::new(wrapper);
                    c.args(its_args).arg(&program);
                    c
                }
                None => Command::new(&program),
            },
        };
        let spawned = Instant::now();
        let mut child = command
            .args(&args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{} starts: {e}", program.display()));
        let stderr = child.stderr.take().expect("stderr is piped");
        let (lines_tx, lines) = mpsc::channel();
        // Drains stderr for the process's whole life, so a full pipe never blocks it.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = lines_tx.send(line);
            }
        });
        let mut server = Self {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir: match kind {
                ServerKind::Echo => None,
                ServerKind::Switchboard { data_dir, .. } => Some(data_dir.to_path_buf()),
            },
            start_to_serving: Duration::ZERO,
        };
        let mut seen = Vec::new();
        loop {
            let left = START_WAIT.saturating_sub(spawned.elapsed());
            let line = lines.recv_timeout(left).unwrap_or_else(|e| {
                panic!(
                    "the server did not announce its address ({e}):\n{}",
                    seen.join("\n")
                )
            });
            if line.contains("serving")
                && let Some(at) = line.find("addr=")
            {
                let addr = line[at + "addr=".len()..].split_whitespace().next();
                server.addr = addr
                    .and_then(|a| a.parse().ok())
                    .expect("a socket address after addr=");
                server.start_to_serving = spawned.elapsed();
                return server;
            }
            seen.push(line);
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A new HTTP/2 connection to the server.
    pub async fn connect(&self) -> Channel {
        connect(self.addr).await
    }

    /// A fresh access token of `who` (Switchboard only).
    pub async fn token_as(&self, who: Who<'_>, password: &str) -> String {
        auth::sign_in(&self.connect().await, who, password).await
    }

    /// A fresh access token of the first admin (Switchboard only).
    pub async fn admin_token(&self) -> String {
        let data_dir = self
            .data_dir
            .as_deref()
            .expect("only Switchboard has a first admin");
        self.token_as(Who::Account(ADMIN), &auth::admin_secret(data_dir))
            .await
    }

    /// A new connection signed in as `who` (Switchboard only).
    pub async fn connect_as(&self, who: Who<'_>, password: &str) -> auth::Channel {
        let channel = self.connect().await;
        let token = auth::sign_in(&channel, who, password).await;
        auth::signed(channel, &token)
    }

    /// A new connection signed in as the first admin (Switchboard only).
    pub async fn connect_admin(&self) -> auth::Channel {
        let token = self.admin_token().await;
        auth::signed(self.connect().await, &token)
    }

    /// Resident memory, KiB (`VmRSS` in `/proc/<pid>/status`).
    pub fn rss_kib(&self) -> u64 {
        rss_kib(self.pid())
    }
}

impl ServerChild {
    /// A graceful stop: SIGTERM, then waits for the process to exit.
    pub fn terminate(mut self) {
        let sent = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(sent, "`kill -TERM` failed");
        let status = self.child.wait().expect("the server exits");
        assert!(status.success(), "the server stopped with {status}");
    }
}

impl Drop for ServerChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub async fn connect(addr: SocketAddr) -> Channel {
    Endpoint::from_shared(format!("http://{addr}"))
        .expect("a valid endpoint")
        .connect()
        .await
        .expect("the server accepts connections")
}

pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// User plus system CPU time of a live process, seconds; `None` once it is gone.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; the fields after its ')' are fixed.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after the name.
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / clock_ticks_per_second())
}

fn clock_ticks_per_second() -> f64 {
    static TICKS: OnceLock<f64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}
