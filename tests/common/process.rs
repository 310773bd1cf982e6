//! The real `switchboard` binary as a child process, for tests that must stop a server the
//! way production does: gracefully (SIGTERM) or by crashing it (SIGKILL). A `ServerProcess`
//! serves on a free port (loopback unless `start_on` says otherwise), keeps every line it logs,
//! and is killed when dropped, so a failing test never leaves a server behind.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tonic::transport::Endpoint;

use super::auth::{self, ADMIN, Channel, Who};

/// Bounds every wait for the process (start-up, a graceful stop): a failure guard only.
const PROCESS_WAIT: Duration = Duration::from_secs(30);

/// A running server process; killed (SIGKILL) and reaped on drop.
pub struct ServerProcess {
    child: Child,
    addr: SocketAddr,
    /// Where the first start wrote the first admin's secret.
    secret_file: std::path::PathBuf,
    /// Holds that file for a server without a data directory.
    _secrets: Option<tempfile::TempDir>,
    /// Every line the server wrote to stderr so far, in order.
    logs: Arc<Mutex<Vec<String>>>,
}

impl ServerProcess {
    /// Runs `switchboard serve --listen 127.0.0.1:0 <args>` at log level info and waits until
    /// it logs the address it serves on.
    pub async fn start(args: &[&str]) -> Self {
        Self::start_on("127.0.0.1:0", args).await
    }

    /// `start` listening on `listen` instead of `127.0.0.1:0`.
    ///
    /// The first admin's secret goes to the data directory's file when `args` name one (so a
    /// restart finds it), else to a file of the test's own.
    pub async fn start_on(listen: &str, args: &[&str]) -> Self {
        let mut all = vec!["--listen".to_owned(), listen.to_owned()];
        all.extend(args.iter().map(|a| (*a).to_owned()));
        let data_dir = args
            .iter()
            .position(|a| *a == "--data-dir")
            .and_then(|i| args.get(i + 1));
        let (secret_file, secrets) = match data_dir {
            Some(dir) => (Path::new(dir).join("bootstrap-admin.secret"), None),
            None => {
                let dir = tempfile::tempdir().expect("a temporary directory");
                let file = dir.path().join("bootstrap-admin.secret");
                all.push("--bootstrap-secret-file".into());
                all.push(file.display().to_string());
                (file, Some(dir))
            }
        };
        match tokio::task::spawn_blocking(move || Self::start_blocking(&all)).await {
            Ok(mut server) => {
                server.secret_file = secret_file;
                server._secrets = secrets;
                server
            }
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }

    /// `start` with a durable journal in `data_dir`, plus `args`.
    pub async fn start_durable(data_dir: &Path, args: &[&str]) -> Self {
        let data_dir = data_dir.to_str().expect("a UTF-8 data directory");
        let mut all = vec!["--data-dir", data_dir];
        all.extend_from_slice(args);
        Self::start(&all).await
    }

    fn start_blocking(args: &[String]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_switchboard"))
            .arg("serve")
            .args(args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the server binary starts");
        let stderr = child.stderr.take().expect("stderr is piped");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (lines_tx, lines) = std_mpsc::channel();
        let kept = Arc::clone(&logs);
        // Reads until the process exits, so the pipe never fills and blocks the server.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                lock(&kept).push(line.clone());
                let _ = lines_tx.send(line);
            }
        });
        // Killed on drop from here on, whatever happens below.
        let mut server = Self {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            secret_file: std::path::PathBuf::new(),
            _secrets: None,
            logs,
        };
        let deadline = std::time::Instant::now() + PROCESS_WAIT;
        server.addr = loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let line = match lines.recv_timeout(left) {
                Ok(line) => line,
                Err(e) => panic!(
                    "the server did not log its address ({e}); its log:\n{}",
                    server.logs().join("\n")
                ),
            };
            if line.contains("switchboard serving") {
                // `addr=...` in a text line, `"addr":"..."` in a JSON one (--log-format json).
                let (at, end) = match line.find("addr=") {
                    Some(at) => (at + "addr=".len(), [' '].as_slice()),
                    None => {
                        let at = line
                            .find("\"addr\":\"")
                            .expect("the line names the address");
                        (at + "\"addr\":\"".len(), ['"'].as_slice())
                    }
                };
                let addr = line[at..].split(end).next().unwrap_or_default();
                break addr.parse().expect("a socket address");
            }
        };
        server
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A new connection to the server, without any token.
    pub async fn raw_channel(&self) -> tonic::transport::Channel {
        Endpoint::from_shared(format!("http://{}", self.addr))
            .expect("a valid endpoint")
            .connect()
            .await
            .expect("the server accepts connections")
    }

    /// The first admin's one-time secret.
    pub fn admin_secret(&self) -> String {
        auth::read_bootstrap_secret(&self.secret_file)
    }

    /// A new connection signed in as the first admin.
    pub async fn channel(&self) -> Channel {
        let raw = self.raw_channel().await;
        let token = auth::sign_in(&raw, Who::Account(ADMIN), &self.admin_secret()).await;
        auth::signed(raw, &token)
    }

    /// A new connection signed in as `who`.
    pub async fn channel_as(&self, who: Who<'_>, password: &str) -> Channel {
        let raw = self.raw_channel().await;
        let token = auth::sign_in(&raw, who, password).await;
        auth::signed(raw, &token)
    }

    /// Every line logged so far.
    pub fn logs(&self) -> Vec<String> {
        lock(&self.logs).clone()
    }

    /// The value of `field` (`field=value`) on the first log line containing `message`.
    pub fn log_field(&self, message: &str, field: &str) -> Option<String> {
        let logs = lock(&self.logs);
        let line = logs.iter().find(|l| l.contains(message))?;
        let prefix = format!("{field}=");
        line.split_whitespace()
            .find_map(|word| word.strip_prefix(&prefix))
            .map(str::to_owned)
    }

    /// The revision the server recovered to at start-up (its `state recovered` line): every
    /// event up to it came from the journal, every later one was decided by this process.
    pub fn recovered_revision(&self) -> u64 {
        self.log_field("state recovered", "revision")
            .and_then(|r| r.parse().ok())
            .unwrap_or_else(|| {
                panic!(
                    "no `state recovered` revision in the log:\n{}",
                    self.logs().join("\n")
                )
            })
    }

    /// A crash: SIGKILL, then reaps the process.
    pub fn kill(mut self) {
        self.child.kill().expect("SIGKILL is delivered");
        self.child.wait().expect("the killed server is reaped");
    }

    /// A graceful stop: SIGTERM, then waits for the process to exit; returns its status.
    pub async fn terminate(mut self) -> ExitStatus {
        let sent = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("`kill` runs");
        assert!(sent.success(), "`kill -TERM` failed: {sent}");
        let deadline = tokio::time::Instant::now() + PROCESS_WAIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("the server's status") {
                return status;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the server did not stop within {PROCESS_WAIT:?} of SIGTERM; its log:\n{}",
                self.logs().join("\n")
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        // A no-op for a process already reaped (std remembers its status).
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn lock(logs: &Mutex<Vec<String>>) -> std::sync::MutexGuard<'_, Vec<String>> {
    logs.lock().unwrap_or_else(PoisonError::into_inner)
}
