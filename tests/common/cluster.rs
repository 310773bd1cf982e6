//! A cluster of real `switchboard` processes sharing one PostgreSQL journal, for the failover
//! tests. Each node is a `ServerProcess` (SIGKILL on drop) started with `--journal`, a data
//! directory of its own, the one first-admin secret file whichever node leads first writes,
//! and short leases (2 s, renewed every 400 ms) so that a hand-over takes seconds; nothing may
//! assert on those durations. Helpers find the leader from what the nodes themselves say
//! (`GetServerStatus`), crash a node (SIGKILL) or freeze it (SIGSTOP/SIGCONT), and read the
//! journal straight from PostgreSQL, as the nodes left it; the checks after them say what
//! that journal must show (every acknowledged change, gapless revisions, one owner per task,
//! how offers ringing at a take-over ended).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use switchboard::domain::routing::model::TaskState;
use switchboard::domain::{Actor, Event, Record};
use switchboard::pb;
use switchboard::pb::core_service_client::CoreServiceClient;
use tempfile::TempDir;
use tonic::transport::Endpoint;

use super::auth::{self, ADMIN, Channel, Who};
use super::postgres::{PgDatabase, PgServer};
use super::process::ServerProcess;

/// The lease's time to live and renew interval every node gets unless a test sets its own.
pub const LEASE_TTL_MS: u64 = 2000;
pub const LEASE_RENEW_MS: u64 = 400;

/// Bounds every wait for the cluster (a leader, a status, the journal): a failure guard only.
pub const WAIT: Duration = Duration::from_secs(30);
/// Bounds one call to a node, so that a frozen or dead node fails the call instead of hanging it.
pub const CALL: Duration = Duration::from_secs(5);

pub struct Cluster {
    pg: Arc<PgServer>,
    db: PgDatabase,
    /// Holds every node's data directory and the secret file.
    dir: TempDir,
    extra: Vec<String>,
    /// `--lease-ttl-ms` and `--lease-renew-ms` of every node.
    lease: (u64, u64),
    nodes: Vec<Node>,
    /// The first admin's access token, once signed in.
    admin: Option<String>,
}

struct Node {
    /// `None` once killed.
    process: Option<ServerProcess>,
    addr: SocketAddr,
    paused: bool,
    /// What a killed node had logged.
    last_words: Vec<String>,
}

impl Cluster {
    /// `nodes` nodes on a fresh database, started in order, each with `extra_args`; returns
    /// once the first admin can sign in.
    pub async fn start(nodes: usize, extra_args: &[&str]) -> Cluster {
        Cluster::empty(extra_args).await.with_nodes(nodes).await
    }

    /// Adds `nodes` nodes on the database itself, in order; returns once the first admin
    /// can sign in.
    pub async fn with_nodes(mut self, nodes: usize) -> Cluster {
        let url = self.db.url.clone();
        for _ in 0..nodes {
            self.add_node(&url).await;
        }
        self.await_admin().await;
        self
    }

    /// No node yet, on a fresh database of the shared server.
    pub async fn empty(extra_args: &[&str]) -> Cluster {
        let (pg, db) = tokio::task::spawn_blocking(|| {
            let pg = PgServer::shared();
            let db = pg.fresh_database();
            (pg, db)
        })
        .await
        .expect("PostgreSQL starts");
        Cluster {
            pg,
            db,
            dir: tempfile::Builder::new()
                .prefix("switchboard-cluster-")
                .tempdir()
                .expect("a temporary directory"),
            extra: extra_args.iter().map(|a| (*a).to_owned()).collect(),
            lease: (LEASE_TTL_MS, LEASE_RENEW_MS),
            nodes: Vec::new(),
            admin: None,
        }
    }

    /// The lease every node added from now on keeps: its time to live and renew interval.
    pub fn with_lease(mut self, ttl_ms: u64, renew_ms: u64) -> Cluster {
        self.lease = (ttl_ms, renew_ms);
        self
    }

    /// Starts one more node whose journal is at `journal_url` (the database's own URL, or a
    /// proxy's); returns its index.
    pub async fn add_node(&mut self, journal_url: &str) -> usize {
        let i = self.nodes.len();
        let data_dir = self.dir.path().join(format!("node{i}"));
        let (data_dir, secret, node_id) = (
            data_dir.display().to_string(),
            self.secret_file().display().to_string(),
            format!("node{i}"),
        );
        let (ttl, renew) = (self.lease.0.to_string(), self.lease.1.to_string());
        let mut args = vec![
            "--journal",
            journal_url,
            "--data-dir",
            &data_dir,
            "--bootstrap-secret-file",
            &secret,
            "--node-id",
            &node_id,
            "--lease-ttl-ms",
            &ttl,
            "--lease-renew-ms",
            &renew,
        ];
        args.extend(self.extra.iter().map(String::as_str));
        let process = ServerProcess::start(&args).await;
        self.nodes.push(Node {
            addr: process.addr(),
            process: Some(process),
            paused: false,
            last_words: Vec::new(),
        });
        i
    }

    /// Waits until the first admin's secret is written (by whichever node led first) and
    /// signing in with it works.
    pub async fn await_admin(&mut self) {
        let file = self.secret_file();
        let secret = eventually("the first admin's secret file", async || {
            std::fs::read_to_string(&file)
                .ok()
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
        })
        .await;
        let token = self.sign_in(Who::Account(ADMIN), &secret).await;
        self.admin = Some(token);
    }

    fn secret_file(&self) -> PathBuf {
        self.dir.path().join("admin.secret")
    }

    /// The database every node shares.
    pub fn database(&self) -> &PgDatabase {
        &self.db
    }

    pub fn pg(&self) -> &PgServer {
        &self.pg
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn addr(&self, i: usize) -> SocketAddr {
        self.nodes[i].addr
    }

    /// Node `i`'s address as it advertises it to the others (`leader_address`).
    pub fn address(&self, i: usize) -> String {
        self.nodes[i].addr.to_string()
    }

    /// Nodes neither killed nor paused.
    pub fn live(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].process.is_some() && !self.nodes[i].paused)
            .collect()
    }

    pub fn is_live(&self, i: usize) -> bool {
        self.nodes[i].process.is_some() && !self.nodes[i].paused
    }

    /// A connection to node `i` without any token; it connects on first use.
    pub fn raw_channel(&self, i: usize) -> tonic::transport::Channel {
        Endpoint::from_shared(format!("http://{}", self.nodes[i].addr))
            .expect("a valid endpoint")
            .connect_timeout(CALL)
            .tcp_nodelay(true)
            .connect_lazy()
    }

    /// The first admin's access token.
    pub fn admin_token(&self) -> String {
        self.admin
            .clone()
            .expect("the first admin has signed in (await_admin)")
    }

    /// A connection to node `i` signed in as the first admin.
    pub fn channel(&self, i: usize) -> Channel {
        auth::signed(self.raw_channel(i), &self.admin_token())
    }

    /// A connection to node `i` with `token` on every call.
    pub fn signed(&self, i: usize, token: &str) -> Channel {
        auth::signed(self.raw_channel(i), token)
    }

    /// Signs `who` in through any live node (the leader issues the token; every node
    /// verifies it), retrying while a hand-over refuses it; returns the access token.
    pub async fn sign_in(&self, who: Who<'_>, password: &str) -> String {
        let mut last = None;
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            for i in self.live() {
                let raw = self.raw_channel(i);
                match tokio::time::timeout(CALL, auth::try_sign_in(&raw, who, password)).await {
                    Ok(Ok(answer)) => return answer.access_token,
                    Ok(Err(status)) => last = Some(format!("{status:?}")),
                    Err(_) => last = Some("no answer in time".to_owned()),
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{who:?} could not sign in: {last:?}\n{}",
                self.all_logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A connection to node `i` signed in as `who`.
    pub async fn channel_as(&self, i: usize, who: Who<'_>, password: &str) -> Channel {
        let token = self.sign_in(who, password).await;
        self.signed(i, &token)
    }

    /// What node `i` says of itself, or why it did not say it in time.
    pub async fn try_status(&self, i: usize) -> Result<pb::GetServerStatusResponse, String> {
        let mut core = CoreServiceClient::new(self.raw_channel(i));
        match tokio::time::timeout(CALL, core.get_server_status(pb::GetServerStatusRequest {}))
            .await
        {
            Ok(Ok(answer)) => Ok(answer.into_inner()),
            Ok(Err(status)) => Err(format!("{status:?}")),
            Err(_) => Err("no answer in time".to_owned()),
        }
    }

    pub async fn status(&self, i: usize) -> pb::GetServerStatusResponse {
        self.try_status(i)
            .await
            .unwrap_or_else(|e| panic!("node{i}'s status: {e}"))
    }

    /// Waits until exactly one live node says it leads; its index and lease epoch.
    pub async fn leader(&self) -> (usize, u64) {
        self.leader_after(0).await
    }

    /// Waits until exactly one live node says it leads, under an epoch above `epoch`.
    pub async fn leader_after(&self, epoch: u64) -> (usize, u64) {
        let mut seen = Vec::new();
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            seen.clear();
            for i in self.live() {
                seen.push((i, self.try_status(i).await));
            }
            let leaders: Vec<(usize, u64)> = seen
                .iter()
                .filter_map(|(i, s)| match s {
                    Ok(s) if s.role() == pb::NodeRole::Leader => Some((*i, s.lease_epoch)),
                    _ => None,
                })
                .collect();
            if let [(i, e)] = leaders[..]
                && e > epoch
            {
                return (i, e);
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no single leader above epoch {epoch}; the nodes say {seen:?}\n{}",
                self.all_logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until node `i`'s status satisfies `good`; returns it.
    pub async fn status_until(
        &self,
        i: usize,
        what: &str,
        mut good: impl FnMut(&pb::GetServerStatusResponse) -> bool,
    ) -> pb::GetServerStatusResponse {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let last = match self.try_status(i).await {
                Ok(status) if good(&status) => return status,
                other => other,
            };
            assert!(
                tokio::time::Instant::now() < deadline,
                "node{i} never got to {what}; it last said {last:?}\n{}",
                self.all_logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A crash: SIGKILL, and the process is reaped; what it logged is kept.
    pub fn kill(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        let process = node.process.take().expect("the node runs");
        node.last_words = process.logs();
        process.kill();
    }

    /// Freezes node `i` (SIGSTOP): it holds its sockets and answers nothing.
    pub fn pause(&mut self, i: usize) {
        self.signal(i, "-STOP");
        self.nodes[i].paused = true;
    }

    /// Thaws node `i` (SIGCONT): it goes on from where it stood, its timers late.
    pub fn resume(&mut self, i: usize) {
        self.signal(i, "-CONT");
        self.nodes[i].paused = false;
    }

    fn signal(&self, i: usize, signal: &str) {
        let pid = self.nodes[i]
            .process
            .as_ref()
            .expect("the node runs")
            .pid()
            .to_string();
        let sent = Command::new("kill")
            .args([signal, &pid])
            .status()
            .expect("`kill` runs");
        assert!(sent.success(), "kill {signal} {pid}: {sent}");
    }

    /// Every line node `i` logged so far (up to its death, for a killed node).
    pub fn logs(&self, i: usize) -> Vec<String> {
        match &self.nodes[i].process {
            Some(process) => process.logs(),
            None => self.nodes[i].last_words.clone(),
        }
    }

    /// The value of `field` on the first line node `i` logged containing `message`.
    pub fn log_field(&self, i: usize, message: &str, field: &str) -> Option<String> {
        let prefix = format!("{field}=");
        self.logs(i)
            .iter()
            .find(|line| line.contains(message))?
            .split_whitespace()
            .find_map(|word| word.strip_prefix(&prefix))
            .map(|value| value.trim_matches('"').to_owned())
    }

    /// The revision node `i` read the journal to when it last took over (its engine's
    /// `leading` line): every event up to it was there before it led.
    pub fn took_over_at(&self, i: usize) -> u64 {
        let logs = self.logs(i);
        logs.iter()
            .rev()
            .find(|line| line.contains("leading: commands and timers run here"))
            .and_then(|line| {
                line.split_whitespace()
                    .find_map(|w| w.strip_prefix("revision="))
                    .and_then(|r| r.parse().ok())
            })
            .unwrap_or_else(|| panic!("node{i} never logged taking over:\n{}", logs.join("\n")))
    }

    /// Every node's log, for a failure message: the last lines of each, a run of lines that
    /// differ only in their time stamps shown once, with its count.
    pub fn all_logs(&self) -> String {
        let mut text = String::new();
        for i in 0..self.nodes.len() {
            let mut lines: Vec<(String, usize)> = Vec::new();
            for line in self.logs(i) {
                let message = line.split_once(' ').map_or(line.as_str(), |(_, m)| m);
                match lines.last_mut() {
                    Some((last, count))
                        if last.split_once(' ').map(|(_, m)| m) == Some(message) =>
                    {
                        *count += 1;
                    }
                    _ => lines.push((line.clone(), 1)),
                }
            }
            let from = lines.len().saturating_sub(150);
            text.push_str(&format!("---- node{i} ({}) ----\n", self.nodes[i].addr));
            for (line, count) in &lines[from..] {
                text.push_str(line);
                if *count > 1 {
                    text.push_str(&format!(" (x{count})"));
                }
                text.push('\n');
            }
        }
        text
    }

    /// The journal as PostgreSQL holds it, in revision order.
    pub async fn journal(&self) -> Vec<Record> {
        read_journal(&self.db.url).await
    }

    /// Polls the journal until `done` holds for it; returns it.
    pub async fn journal_until(
        &self,
        what: &str,
        mut done: impl FnMut(&[Record]) -> bool,
    ) -> Vec<Record> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let journal = self.journal().await;
            if done(&journal) {
                return journal;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the journal never showed {what}\n{}",
                self.all_logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // A failing test shows what the nodes said.
        if std::thread::panicking() {
            eprintln!("{}", self.all_logs());
        }
    }
}

/// Reads every event of the journal at `url`, in revision order.
pub async fn read_journal(url: &str) -> Vec<Record> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect to PostgreSQL");
    let driver = tokio::spawn(connection);
    let rows = client
        .query(
            "SELECT revision, time_ms, body, actor FROM events ORDER BY revision",
            &[],
        )
        .await
        .expect("read the events");
    drop(client);
    let _ = driver.await;
    rows.iter()
        .map(|row| {
            let revision: i64 = row.get(0);
            let time_ms: i64 = row.get(1);
            let body: String = row.get(2);
            let actor: String = row.get(3);
            Record {
                revision: u64::try_from(revision).expect("a positive revision"),
                time_ms: u64::try_from(time_ms).expect("a positive time"),
                actor: Actor::parse(&actor).expect("a journaled actor"),
                event: serde_json::from_str::<Event>(&body)
                    .unwrap_or_else(|e| panic!("event {revision}: {e}: {body}")),
            }
        })
        .collect()
}

/// Retries `attempt` every 50 ms until it gives `Some`, failing after `WAIT`.
pub async fn eventually<T>(what: &str, mut attempt: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(value) = attempt().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ----- what the journal must show ------------------------------------------------------------

/// The journal's revisions run 1, 2, 3... with no gap and no duplicate.
#[track_caller]
pub fn assert_gapless(journal: &[Record]) {
    for (i, record) in journal.iter().enumerate() {
        let expected = i as u64 + 1;
        assert_eq!(
            record.revision, expected,
            "the journal's revisions have a gap or a duplicate at position {i}"
        );
    }
}

/// The `TaskQueued` of the task a channel submitted with `request_id`, if journaled.
pub fn queued_with<'a>(journal: &'a [Record], request_id: &str) -> Vec<&'a Record> {
    journal
        .iter()
        .filter(
            |r| matches!(&r.event, Event::TaskQueued { spec, .. } if spec.request_id == request_id),
        )
        .collect()
}

/// What an acknowledged call changed, as the journal must show it.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    Queued { task: String },
    Accepted { task: String, agent: String },
    Closed { task: String },
    Ready { agent: String },
    NotReady { agent: String },
    LoggedIn { agent: String },
    LoggedOut { agent: String },
}

impl Effect {
    pub fn shown_by(&self, event: &Event) -> bool {
        match (self, event) {
            (Effect::Queued { task }, Event::TaskQueued { spec, .. }) => spec.task_id == *task,
            (
                Effect::Accepted { task, agent },
                Event::TaskAccepted {
                    task_id, agent_id, ..
                },
            ) => task_id == task && agent_id == agent,
            (
                Effect::Closed { task },
                Event::TaskStateChanged {
                    task_id,
                    state: TaskState::Closed,
                    ..
                },
            ) => task_id == task,
            (Effect::Ready { agent }, Event::AgentReady { agent_id, .. })
            | (Effect::NotReady { agent }, Event::AgentNotReady { agent_id, .. })
            | (Effect::LoggedIn { agent }, Event::AgentLoggedIn { agent_id, .. })
            | (Effect::LoggedOut { agent }, Event::AgentLoggedOut { agent_id, .. }) => {
                agent_id == agent
            }
            _ => false,
        }
    }
}

/// An acknowledged call: who made it and through which node, what it changed, the revision
/// its answer carried, and the caller's previous acknowledged revision (the caller waits for
/// each answer, so this call's events come after that one).
#[derive(Debug, Clone)]
pub struct Ack {
    pub actor: Actor,
    pub node: usize,
    pub effect: Effect,
    pub revision: u64,
    pub after: u64,
}

/// Every acknowledged change is in the journal: an event with its effect, by its caller,
/// after the caller's previous acknowledgement and at or before the revision it was answered
/// with.
#[track_caller]
pub fn assert_acknowledged_in(journal: &[Record], acks: &[Ack]) {
    for ack in acks {
        let found = journal.iter().any(|r| {
            r.revision > ack.after
                && r.revision <= ack.revision
                && r.actor == ack.actor
                && ack.effect.shown_by(&r.event)
        });
        assert!(found, "acknowledged, but not in the journal: {ack:?}");
    }
}

/// No task has two owners, from the journal alone: a task is offered only while nobody owns
/// it and no other offer rings, and accepted only by the agent its ringing offer went to; a
/// requeue, a transfer or its close is what releases it.
#[track_caller]
pub fn assert_one_owner(journal: &[Record]) {
    #[derive(Default, Debug)]
    struct Seen {
        offered: Option<String>,
        owner: Option<String>,
        closed: bool,
    }
    let mut tasks: BTreeMap<String, Seen> = BTreeMap::new();
    for r in journal {
        let (task_id, what) = match &r.event {
            Event::TaskQueued { spec, .. } => {
                let fresh = tasks.insert(spec.task_id.clone(), Seen::default());
                assert!(fresh.is_none(), "revision {}: queued twice", r.revision);
                continue;
            }
            Event::TaskAgentSelected { task_id, .. }
            | Event::TaskAccepted { task_id, .. }
            | Event::TaskRequeued { task_id, .. }
            | Event::TaskAgentTransferred { task_id, .. }
            | Event::TaskStateChanged { task_id, .. } => (task_id, &r.event),
            _ => continue,
        };
        let task = tasks
            .get_mut(task_id)
            .unwrap_or_else(|| panic!("revision {}: task {task_id} never queued", r.revision));
        let at = format!(
            "revision {} ({:?}), task {task_id} was {task:?}",
            r.revision, r.event
        );
        assert!(!task.closed, "{at}: it changed after it closed");
        match what {
            Event::TaskAgentSelected { agent_id, .. } => {
                assert!(task.owner.is_none() && task.offered.is_none(), "{at}");
                task.offered = Some(agent_id.clone());
            }
            Event::TaskAccepted { agent_id, .. } => {
                assert!(task.owner.is_none(), "{at}: a second owner");
                assert_eq!(task.offered.as_ref(), Some(agent_id), "{at}: not its offer");
                task.owner = Some(agent_id.clone());
                task.offered = None;
            }
            Event::TaskRequeued { .. } => {
                task.owner = None;
                task.offered = None;
            }
            Event::TaskAgentTransferred {
                owner_agent_id,
                recipient_agent_id,
                ..
            } => {
                assert_eq!(task.owner.as_ref(), Some(owner_agent_id), "{at}");
                task.owner = Some(recipient_agent_id.clone());
            }
            Event::TaskStateChanged {
                state: TaskState::Closed,
                ..
            } => {
                task.closed = true;
                task.owner = None;
                task.offered = None;
            }
            _ => {}
        }
    }
}

/// An offer ringing at some revision: its task, agent and deadline.
#[derive(Debug, Clone, PartialEq)]
pub struct Ringing {
    pub task: String,
    pub agent: String,
    pub deadline: u64,
}

/// The offers ringing once the journal is folded up to `revision`.
pub fn ringing_at(journal: &[Record], revision: u64) -> Vec<Ringing> {
    let mut ringing: BTreeMap<&str, Ringing> = BTreeMap::new();
    for r in journal.iter().take_while(|r| r.revision <= revision) {
        match &r.event {
            Event::TaskAgentSelected {
                task_id,
                agent_id,
                offer_deadline,
                ..
            } => {
                ringing.insert(
                    task_id,
                    Ringing {
                        task: task_id.clone(),
                        agent: agent_id.clone(),
                        deadline: *offer_deadline,
                    },
                );
            }
            Event::TaskAccepted { task_id, .. }
            | Event::TaskRequeued { task_id, .. }
            | Event::TaskStateChanged { task_id, .. } => {
                ringing.remove(task_id.as_str());
            }
            _ => {}
        }
    }
    ringing.into_values().collect()
}

/// How an offer ringing at `revision` ended, after it: the first event that ended it.
pub fn how_it_ended<'a>(
    journal: &'a [Record],
    offer: &Ringing,
    revision: u64,
) -> Option<&'a Record> {
    journal.iter().filter(|r| r.revision > revision).find(|r| {
        matches!(&r.event,
            Event::TaskAccepted { task_id, .. }
            | Event::TaskRequeued { task_id, .. }
            | Event::TaskStateChanged { task_id, .. } if *task_id == offer.task)
    })
}

/// A task as the journal, folded, says it stands: its state, and who owns it or is offered it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskView {
    /// The contract's name of its state (`TASK_STATE_ACTIVE`...).
    pub state: &'static str,
    pub owner: Option<String>,
    pub offered: Option<String>,
}

/// Every task as the journal stands at `revision`.
pub fn tasks_at(journal: &[Record], revision: u64) -> BTreeMap<String, TaskView> {
    let mut tasks = BTreeMap::new();
    for r in journal.iter().take_while(|r| r.revision <= revision) {
        let (task_id, state, owner, offered) = match &r.event {
            Event::TaskQueued { spec, .. } => (&spec.task_id, TaskState::Queued, None, None),
            Event::TaskAgentSelected {
                task_id, agent_id, ..
            } => (task_id, TaskState::Offered, None, Some(agent_id)),
            Event::TaskAccepted {
                task_id, agent_id, ..
            } => (task_id, TaskState::Active, Some(agent_id), None),
            Event::TaskRequeued { task_id, .. } => (task_id, TaskState::Queued, None, None),
            Event::TaskAgentTransferred {
                task_id,
                recipient_agent_id,
                ..
            } => (task_id, TaskState::Active, Some(recipient_agent_id), None),
            Event::TaskStateChanged { task_id, state, .. } => {
                let owner = tasks.get(task_id).and_then(|t: &TaskView| t.owner.as_ref());
                (task_id, *state, owner, None)
            }
            _ => continue,
        };
        let view = TaskView {
            state: state.wire_name(),
            owner: owner.cloned(),
            offered: offered.cloned(),
        };
        tasks.insert(task_id.clone(), view);
    }
    tasks
}
