//! The cluster under test: Switchboard nodes on one PostgreSQL journal, each the release binary
//! as a child process (the suite's process helpers), and what `GetServerStatus` says of them.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use switchboard::pb;
use switchboard::pb::core_service_client::CoreServiceClient;
use tempfile::TempDir;
use tonic::transport::Endpoint;

use crate::procs::{ServerChild, ServerKind};

/// A failure guard on waiting for a node's state; never part of a figure.
pub const WAIT: Duration = Duration::from_secs(60);
/// How long one status call may take before the node counts as not answering.
const STATUS_TIMEOUT: Duration = Duration::from_secs(1);

/// How the nodes keep the lease (`--lease-ttl-ms`, `--lease-renew-ms`).
#[derive(Clone, Copy, Debug)]
pub struct Lease {
    pub ttl_ms: u64,
    pub renew_ms: u64,
}

/// A node as it is across restarts: its name, data directory (where the first leader writes
/// the first admin's secret) and flags. Each start listens on a free port of its own.
pub struct NodeSpec {
    pub name: String,
    dir: TempDir,
    flags: Vec<String>,
}

impl NodeSpec {
    pub fn new(name: &str, journal_url: &str, lease: Lease) -> Self {
        let flags = [
            "--journal",
            journal_url,
            "--node-id",
            name,
            "--lease-ttl-ms",
            &lease.ttl_ms.to_string(),
            "--lease-renew-ms",
            &lease.renew_ms.to_string(),
            // Tokens signed at the start stay good for the whole run.
            "--access-token-ttl-secs",
            "86400",
        ]
        .map(str::to_owned)
        .to_vec();
        Self {
            name: name.to_owned(),
            dir: tempfile::tempdir().expect("a temporary directory"),
            flags,
        }
    }

    /// Starts the node and waits until it serves (as a follower, at first).
    pub fn start(&self) -> ServerChild {
        let flags: Vec<&str> = self.flags.iter().map(String::as_str).collect();
        let kind = ServerKind::Switchboard {
            data_dir: self.dir.path(),
            flags: &flags,
        };
        ServerChild::start(&kind, None)
    }
}

/// The node's status, or `None` when it does not answer.
pub async fn status(addr: SocketAddr) -> Option<pb::GetServerStatusResponse> {
    let channel = Endpoint::from_shared(format!("http://{addr}"))
        .expect("a valid endpoint")
        .connect_timeout(STATUS_TIMEOUT)
        .timeout(STATUS_TIMEOUT)
        .connect_lazy();
    CoreServiceClient::new(channel)
        .get_server_status(pb::GetServerStatusRequest {})
        .await
        .ok()
        .map(tonic::Response::into_inner)
}

/// Polls the node's status until `ready` holds, and returns it; panics after `WAIT`.
pub async fn wait_for(
    addr: SocketAddr,
    what: &str,
    mut ready: impl FnMut(&pb::GetServerStatusResponse) -> bool,
) -> pb::GetServerStatusResponse {
    let deadline = Instant::now() + WAIT;
    loop {
        let now = status(addr).await;
        if let Some(now) = now.filter(|s| ready(s)) {
            return now;
        }
        assert!(Instant::now() < deadline, "{addr} never {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until the node leads and takes writes.
pub async fn wait_leading(addr: SocketAddr) -> pb::GetServerStatusResponse {
    wait_for(addr, "led", |s| {
        s.role() == pb::NodeRole::Leader && s.leader_address == addr.to_string()
    })
    .await
}

/// Waits until the node follows the leader at `leader` with its state at `revision` or
/// later.
pub async fn wait_following(addr: SocketAddr, leader: SocketAddr, revision: u64) {
    wait_for(addr, "followed the leader", |s| {
        s.role() == pb::NodeRole::Follower
            && s.leader_address == leader.to_string()
            && s.applied_revision >= revision
    })
    .await;
}

/// The processes of the PostgreSQL server on `port`: the postmaster (the `postgres` whose
/// command line says `-p PORT`) and its children, the sessions among them.
pub fn postgres_pids(port: u16) -> Vec<u32> {
    let processes: Vec<(u32, u32, Vec<String>)> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            let args = cmdline
                .split(|b| *b == 0)
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            // The fields after the command name's ')': state, then the parent's pid.
            let ppid = stat
                .rsplit_once(')')?
                .1
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()?;
            Some((pid, ppid, args))
        })
        .collect();
    let port = port.to_string();
    let Some(postmaster) = processes.iter().find_map(|(pid, _, args)| {
        let is_postgres = args.first().is_some_and(|a| a.ends_with("/postgres"));
        let on_port = args.windows(2).any(|w| w[0] == "-p" && w[1] == port);
        (is_postgres && on_port).then_some(*pid)
    }) else {
        return Vec::new();
    };
    let mut pids = vec![postmaster];
    pids.extend(
        processes
            .iter()
            .filter(|(_, ppid, _)| *ppid == postmaster)
            .map(|(pid, _, _)| *pid),
    );
    pids
}
