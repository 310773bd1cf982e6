//! A real PostgreSQL server for the tests: `initdb` and `pg_ctl` from the newest
//! `/usr/lib/postgresql/*/bin` (`scripts/test-tools.sh` installs Debian's `postgresql` where it
//! is missing), in a temporary directory, on a free loopback port, with trust authentication
//! and `fsync=off` (these tests are not about the disk; `start_durable` keeps PostgreSQL's
//! durable defaults, for the benchmarks). As root it runs as `postgres` through
//! `runuser`. Each test takes a fresh database of its own; the tests of one binary share one
//! server while any of them holds it (`PgServer::shared`), and it is stopped (`pg_ctl stop -m
//! immediate`) when the last lets go.

use std::fs;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::thread;
use std::time::{Duration, Instant};

use switchboard::cluster::lease::LeaseTable;
use switchboard::store::Fence;
use tempfile::TempDir;

const HINT: &str = "run scripts/test-tools.sh, which installs Debian's postgresql";

pub struct PgServer {
    bin: PathBuf,
    /// Owned by `postgres` when run as root: the data directory, the socket and the log.
    dir: TempDir,
    port: u16,
    /// `Some(("postgres", uid, gid))` when commands run through `runuser`.
    run_as: Option<(u32, u32)>,
    stopped: AtomicBool,
}

/// A database of the server's, made for one test.
#[derive(Debug, Clone)]
pub struct PgDatabase {
    pub name: String,
    pub url: String,
}

static SHARED: Mutex<Weak<PgServer>> = Mutex::new(Weak::new());
static DATABASES: AtomicU64 = AtomicU64::new(0);

impl PgServer {
    /// The server of this test binary, started by the first test that asks for it.
    pub fn shared() -> Arc<PgServer> {
        let mut shared = SHARED.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(server) = shared.upgrade() {
            return server;
        }
        let server = Arc::new(PgServer::start());
        *shared = Arc::downgrade(&server);
        server
    }

    /// A server of its own, started and accepting connections.
    pub fn start() -> PgServer {
        Self::start_with("-c fsync=off -c full_page_writes=off")
    }

    /// A server of its own with every commit flushed to disk (PostgreSQL's defaults, said
    /// out loud): what a figure about durable writes needs.
    pub fn start_durable() -> PgServer {
        Self::start_with("-c fsync=on -c synchronous_commit=on -c full_page_writes=on")
    }

    /// `durability`: the `postgres -c` options that say how commits reach the disk.
    fn start_with(durability: &str) -> PgServer {
        let bin = pg_bin();
        let run_as = is_root().then(postgres_ids);
        let dir = tempfile::Builder::new()
            .prefix("switchboard-pg-")
            .tempdir()
            .expect("a temporary directory");
        if let Some((uid, gid)) = run_as {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))
                .expect("hand the temporary directory to postgres");
        }
        let mut server = PgServer {
            bin,
            dir,
            port: 0,
            run_as,
            stopped: AtomicBool::new(true),
        };
        server.run(
            "initdb",
            &[
                "-D",
                &server.data_dir(),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-locale",
                "--no-sync",
            ],
        );
        // A free port can be taken by another process before the server binds it: a few tries.
        for attempt in 1..=5 {
            server.port = free_port();
            let options = format!(
                "-p {} -c listen_addresses=127.0.0.1 -k {} {durability} -c max_connections=400",
                server.port,
                server.dir.path().display()
            );
            let log = server.dir.path().join("server.log");
            let started = server.try_run(
                "pg_ctl",
                &[
                    "-D",
                    &server.data_dir(),
                    "-l",
                    &log.display().to_string(),
                    "-w",
                    "-t",
                    "120",
                    "-o",
                    &options,
                    "start",
                ],
            );
            match started {
                Ok(()) => {
                    server.stopped.store(false, Ordering::SeqCst);
                    return server;
                }
                Err(e) if attempt < 5 => eprintln!("PostgreSQL did not start, again: {e}"),
                Err(e) => panic!(
                    "PostgreSQL did not start: {e}\n{}",
                    fs::read_to_string(&log).unwrap_or_default()
                ),
            }
        }
        unreachable!("the loop returns or panics")
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The `postgres` database, as the superuser.
    pub fn url(&self) -> String {
        self.database_url("postgres")
    }

    pub fn database_url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// Creates the database `name` (letters, digits and `_`) and returns its URL.
    pub fn create_database(&self, name: &str) -> String {
        assert!(
            name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "{name}: not a plain database name"
        );
        self.psql("postgres", &format!("CREATE DATABASE {name}"));
        self.database_url(name)
    }

    /// A new, empty database with a name of its own.
    pub fn fresh_database(&self) -> PgDatabase {
        let n = DATABASES.fetch_add(1, Ordering::Relaxed);
        let name = format!("t{}_{n}", std::process::id());
        let url = self.create_database(&name);
        PgDatabase { name, url }
    }

    /// Runs `sql` in `database` through psql and returns what it printed (unaligned, no
    /// headers): for a test's checks, with no client of its own.
    pub fn psql(&self, database: &str, sql: &str) -> String {
        let psql = self.bin.join("psql");
        let out = Command::new(psql)
            .args([
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
            ])
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                database,
            ])
            .args(["-c", sql])
            .stdin(Stdio::null())
            .output()
            .expect("run psql");
        assert!(
            out.status.success(),
            "psql {sql:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Stops the server at once (`-m immediate`); idempotent.
    pub fn stop(&self) {
        if self.stopped.swap(true, Ordering::SeqCst) {
            return;
        }
        let data = self.data_dir();
        if let Err(e) = self.try_run("pg_ctl", &["-D", &data, "-m", "immediate", "-w", "stop"]) {
            eprintln!("stopping PostgreSQL: {e}");
        }
    }

    fn data_dir(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn run(&self, tool: &str, args: &[&str]) {
        if let Err(e) = self.try_run(tool, args) {
            panic!("{tool}: {e}");
        }
    }

    /// Runs a server tool as the server's user. Its output goes to a file, never a pipe: the
    /// server `pg_ctl` starts could hold a pipe open and hang the wait for it.
    fn try_run(&self, tool: &str, args: &[&str]) -> Result<(), String> {
        let program = self.bin.join(tool);
        let mut command = match self.run_as {
            Some(_) => {
                let mut c = Command::new("runuser");
                c.args(["-u", "postgres", "--"]).arg(&program);
                c
            }
            None => Command::new(&program),
        };
        let out_path = self.dir.path().join(format!("{tool}.out"));
        let out = fs::File::create(&out_path).map_err(|e| e.to_string())?;
        let status = command
            .args(args)
            .stdin(Stdio::null())
            .stdout(out.try_clone().map_err(|e| e.to_string())?)
            .stderr(out)
            .status()
            .map_err(|e| format!("{}: {e}", program.display()))?;
        if status.success() {
            Ok(())
        } else {
            Err(format!(
                "{status}: {}",
                fs::read_to_string(&out_path).unwrap_or_default()
            ))
        }
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The newest `/usr/lib/postgresql/<version>/bin` with `initdb`.
fn pg_bin() -> PathBuf {
    let root = Path::new("/usr/lib/postgresql");
    let newest = fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version: u32 = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .max_by_key(|(version, _)| *version);
    match newest {
        Some((_, bin)) => bin,
        None => panic!("no {}/*/bin/initdb: {HINT}", root.display()),
    }
}

fn is_root() -> bool {
    fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// The `postgres` user's uid and gid, from `/etc/passwd`.
fn postgres_ids() -> (u32, u32) {
    let passwd = fs::read_to_string("/etc/passwd").expect("read /etc/passwd");
    passwd
        .lines()
        .find_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            (fields.first() == Some(&"postgres") && fields.len() > 3)
                .then(|| Some((fields[2].parse().ok()?, fields[3].parse().ok()?)))
                .flatten()
        })
        .unwrap_or_else(|| panic!("no postgres user: {HINT}"))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// Runs `future` to completion on a runtime of its own, on a thread of its own: callable from
/// a plain test and from inside an async one alike.
pub fn block_on<T: Send + 'static>(
    future: impl std::future::Future<Output = T> + Send + 'static,
) -> T {
    thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
            .block_on(future)
    })
    .join()
    .expect("the future ran to completion")
}

/// A session of a test's own, held open between calls (a transaction can span them). Its
/// runtime is its own: call it from plain tests, not from inside an async one.
pub struct SqlSession {
    runtime: tokio::runtime::Runtime,
    client: tokio_postgres::Client,
}

impl SqlSession {
    pub fn connect(url: &str) -> SqlSession {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let client = runtime.block_on(async {
            let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                .await
                .expect("connect to PostgreSQL");
            tokio::spawn(connection);
            client
        });
        SqlSession { runtime, client }
    }

    /// Runs `sql` (one statement or several), panicking on an error.
    pub fn execute(&self, sql: &str) {
        self.runtime
            .block_on(self.client.batch_execute(sql))
            .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
    }
}

/// Takes the (expired) lease of the database at `url` for an hour, as `holder`, and returns a
/// fence holding its epoch: what a journal under test writes with.
pub fn leased_fence(url: &str, holder: &str) -> Fence {
    let (url, holder) = (url.to_owned(), holder.to_owned());
    let epoch = block_on(async move {
        let lease = LeaseTable::connect(&url, Duration::from_secs(30))
            .await
            .expect("connect to the lease");
        lease
            .try_take(&holder, "127.0.0.1:0", Duration::from_secs(3600))
            .await
            .expect("take the lease")
            .expect("the lease of a fresh database is free")
    });
    let fence = Fence::default();
    fence.hold(epoch);
    fence
}

/// Polls `condition` every few milliseconds until it holds, panicking with `what` after
/// `limit`: for waiting on the database's state, never a fixed sleep.
pub fn wait_for(what: &str, limit: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(10));
    }
}

/// A TCP proxy in front of the server that a test controls. `blackhole` cuts the network
/// without a reset: every connection, old or new, is held open and nothing goes through either
/// way, so only time limits notice. `restore` closes the connections held so far and forwards
/// again for new ones.
pub struct TcpProxy {
    addr: SocketAddr,
    state: Arc<ProxyState>,
}

struct ProxyState {
    cut: AtomicBool,
    /// Bumped by `restore`: a connection lives only in the generation it was made in.
    generation: AtomicU64,
    closed: AtomicBool,
}

impl TcpProxy {
    pub fn start(target: SocketAddr) -> TcpProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let addr = listener.local_addr().expect("the proxy's address");
        listener
            .set_nonblocking(true)
            .expect("a non-blocking listener");
        let state = Arc::new(ProxyState {
            cut: AtomicBool::new(false),
            generation: AtomicU64::new(0),
            closed: AtomicBool::new(false),
        });
        let accepting = Arc::clone(&state);
        thread::spawn(move || {
            while !accepting.closed.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let state = Arc::clone(&accepting);
                        let born = state.generation.load(Ordering::SeqCst);
                        thread::spawn(move || serve(&state, born, client, target));
                    }
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        TcpProxy { addr, state }
    }

    /// A database URL through the proxy.
    pub fn database_url(&self, database: &str) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/{database}",
            self.addr.port()
        )
    }

    pub fn blackhole(&self) {
        self.state.cut.store(true, Ordering::SeqCst);
    }

    pub fn restore(&self) {
        self.state.generation.fetch_add(1, Ordering::SeqCst);
        self.state.cut.store(false, Ordering::SeqCst);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.state.closed.store(true, Ordering::SeqCst);
    }
}

impl ProxyState {
    /// Whether a connection made in generation `born` is to be closed.
    fn ended(&self, born: u64) -> bool {
        self.closed.load(Ordering::SeqCst) || self.generation.load(Ordering::SeqCst) != born
    }

    fn cut(&self) -> bool {
        self.cut.load(Ordering::SeqCst)
    }
}

fn serve(state: &Arc<ProxyState>, born: u64, client: TcpStream, target: SocketAddr) {
    // Made while cut off, it reaches nothing: held until the cut ends.
    let server = if state.cut() {
        None
    } else {
        TcpStream::connect(target).ok()
    };
    let Some(server) = server else {
        while !state.ended(born) {
            thread::sleep(Duration::from_millis(10));
        }
        return;
    };
    let pumps = [
        (client.try_clone(), server.try_clone()),
        (server.try_clone(), client.try_clone()),
    ];
    let mut handles = Vec::new();
    for (from, to) in pumps {
        let (Ok(from), Ok(to)) = (from, to) else {
            break;
        };
        let state = Arc::clone(state);
        handles.push(thread::spawn(move || pump(&state, born, from, to)));
    }
    for handle in handles {
        let _ = handle.join();
    }
    let _ = client.shutdown(std::net::Shutdown::Both);
    let _ = server.shutdown(std::net::Shutdown::Both);
}

fn pump(state: &ProxyState, born: u64, mut from: TcpStream, mut to: TcpStream) {
    use std::io::{ErrorKind, Read, Write};
    if from
        .set_read_timeout(Some(Duration::from_millis(20)))
        .is_err()
    {
        return;
    }
    let mut buf = [0u8; 16 * 1024];
    while !state.ended(born) {
        if state.cut() {
            // Nothing is read: what is sent waits in the kernel, unanswered.
            thread::sleep(Duration::from_millis(10));
            continue;
        }
        match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => break,
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Both);
}
