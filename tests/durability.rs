//! Durability, proven against the real `switchboard` binary and a real data directory: the
//! server is stopped the way production stops it (SIGTERM) and the way it crashes (SIGKILL),
//! and what the restarted server reports is checked against what clients were told.
//!
//! `acknowledged_changes_survive_sigkill`: three concurrent tasks (a channel submitting tasks,
//! the agents' desktops accepting offers, a closer wrapping up and closing) send a steady stream
//! of commands, and the server is SIGKILLed after a number of acknowledged commands that differs
//! every round (none at all in one): ten rounds on one data directory, with snapshots every
//! few dozen events and compaction, so that recovery reads a snapshot plus a journal tail.
//! After each restart it proves that
//! - the server recovered to at least the highest revision any reply reported;
//! - every acknowledged task exists, exactly one per request id, and is at least as far along
//!   as any reply said, with the agent any reply named (the rule is spelled out at `rank`);
//! - offers, owners and agents agree: no task is with two agents, no agent holds more than the
//!   MRD's maximum, every agent's derived state matches its tasks, the queue statistics match
//!   the queued tasks, and no task waits while an agent could take it;
//! - the agents are still there, logged in and ready, their passwords still checked;
//! - a `NewTask` the crash cut off, sent again with its request id, creates its task only if
//!   the lost attempt did not, and an answered one gets its first answer again.
//!
//! Then a graceful stop and start must change nothing at all and replay nothing.
//!
//! A SIGKILL loses what the process held, not what the kernel held: this proves that replies
//! wait for the journal's commit, not that the commit reached the disk (that is the
//! `synchronous = FULL` fsync, which only a power cut would test).
//!
//! `pending_offers_time_out_after_a_graceful_stop_and_after_sigkill`: timers are state. An
//! offer pending when the server stops, by SIGTERM (restarted at once) or by SIGKILL (restarted
//! only after the offer's deadline passed), still times out after the restart, decided by the
//! new process (its revision is after the one it recovered to): the task is requeued for RONA,
//! its agent goes NOT_READY with reason `RONA` and is not offered the task again, and the task
//! is offered to the agent that became ready after the restart, who can accept it.
//!
//! `accounts_refresh_chains_and_revocations_survive_a_restart_*`: who may sign in is state too.
//! Accounts written before a restart sign in after it with their secrets; a refresh chain
//! started (and rotated) before it goes on after it, its spent token still counting as spent;
//! a chain signed out of stays ended; and the tokens of a principal whose credentials were
//! revoked stay refused, access and refresh tokens alike, while the principal may sign in
//! anew. Proven after a SIGKILL with everything recovered from the journal, after a SIGKILL
//! with everything in a snapshot (`--snapshot-every 1`), and after a graceful stop.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use common::process::ServerProcess;
use common::routing_setup::RoutingSetup;
use common::{ADMIN, Channel, Clients, Who};
use switchboard::pb;
use switchboard::pb::admin_service_client::AdminServiceClient;
use switchboard::pb::auth_service_client::AuthServiceClient;
use switchboard::pb::routing_event::Event as Ev;
use switchboard::pb::routing_service_client::RoutingServiceClient;
use tokio::task::JoinHandle;
use tokio_stream::StreamExt;
use tonic::{Code, Response, Status};

type Routing = RoutingServiceClient<Channel>;

const PASSWORD: &str = "durable-Pw-3";
const MRD: &str = "chat";
/// Bounds every wait, so that a broken server fails a test instead of hanging it.
const GUARD: Duration = Duration::from_secs(30);
/// Long enough that no offer times out and no wrap-up ends by itself during a test.
const HOUR: u32 = 3600;

// ----- acknowledged_changes_survive_sigkill --------------------------------------------------

const AGENTS: [&str; 6] = [
    "agent-1", "agent-2", "agent-3", "agent-4", "agent-5", "agent-6",
];
const MAX_TASKS: u32 = 3;
/// Acknowledged commands before each round's SIGKILL: a different moment every round.
const KILL_AFTER: [usize; 10] = [5, 40, 120, 1, 75, 200, 0, 17, 300, 60];
/// Snapshots every few dozen events, and few events kept behind them, so that recovery reads
/// a snapshot and a journal tail, and compaction runs between the crashes.
const CRASH_SERVER_ARGS: [&str; 4] = ["--snapshot-every", "40", "--retain-events", "20"];

/// With offers and wrap-up lasting an hour and no rejects, transfers or logouts, a task only
/// ever moves forward, with one agent: QUEUED, OFFERED to X, ACTIVE with X, WRAPPING_UP, CLOSED.
/// The rule checked after a crash: the recovered state ranks at least as high as the highest
/// any reply reported, and names the agent any reply named.
fn rank(state: pb::TaskState) -> u8 {
    match state {
        pb::TaskState::Queued => 0,
        pb::TaskState::Offered => 1,
        pb::TaskState::Active | pb::TaskState::Paused => 2,
        pb::TaskState::WrappingUp => 3,
        pb::TaskState::Closed => 4,
        pb::TaskState::Unspecified => panic!("a task in no state"),
    }
}

/// The agent a task is with: the one it is offered to, or its owner (kept once closed).
fn agent_of(task: &pb::TaskStatus) -> &str {
    if task.state() == pb::TaskState::Offered {
        &task.offered_agent_id
    } else {
        &task.owner_agent_id
    }
}

/// One acknowledged reply about a task.
#[derive(Debug)]
struct Ack {
    round: usize,
    command: &'static str,
    task_id: String,
    state: pb::TaskState,
    /// The agent the reply named (offered or owner); empty for a queued task.
    agent: String,
    revision: u64,
}

/// What the clients were told, over every round.
#[derive(Default)]
struct Ledger {
    acks: Vec<Ack>,
    /// The furthest state each task is known to have reached: from replies during a round, and
    /// from the recovered server at the start of the next. The closer picks its work here.
    known: BTreeMap<String, pb::TaskState>,
    /// Each task's owner, once it has one: only the agent on a task may wrap it up and close
    /// it, so the closer acts as this agent.
    owners: BTreeMap<String, String>,
    /// Acknowledged `NewTask` request ids and the task each created.
    created: BTreeMap<String, String>,
    /// `NewTask` request ids sent whose reply never came: the server died first.
    unanswered: BTreeSet<String>,
    /// The highest revision any reply reported.
    max_revision: u64,
}

impl Ledger {
    fn acknowledge(
        &mut self,
        round: usize,
        command: &'static str,
        task: &pb::TaskStatus,
        revision: u64,
    ) {
        let state = task.state();
        self.known
            .entry(task.task_id.clone())
            .and_modify(|known| {
                if rank(state) > rank(*known) {
                    *known = state;
                }
            })
            .or_insert(state);
        if !task.owner_agent_id.is_empty() {
            self.owners
                .insert(task.task_id.clone(), task.owner_agent_id.clone());
        }
        self.max_revision = self.max_revision.max(revision);
        self.acks.push(Ack {
            round,
            command,
            task_id: task.task_id.clone(),
            state,
            agent: agent_of(task).to_owned(),
            revision,
        });
    }
}

fn lock(ledger: &Mutex<Ledger>) -> MutexGuard<'_, Ledger> {
    ledger.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A `NewTask` is fully determined by its request id, so that it can be sent again as is.
fn new_task_request(request_id: &str) -> pb::NewTaskRequest {
    pb::NewTaskRequest {
        request_id: request_id.to_owned(),
        mrd: MRD.into(),
        labels: vec!["durability".into()],
        ..Default::default()
    }
}

/// One round: a server's life from its start to its SIGKILL.
struct Round {
    number: usize,
    /// Signed in as the first admin: the channel submitting tasks, and the reads.
    routing: Routing,
    /// Each agent's desktop, signed in as that agent: it accepts its offers, wraps up and
    /// closes its tasks.
    agents: BTreeMap<String, Routing>,
    ledger: Arc<Mutex<Ledger>>,
    /// Mutating commands acknowledged this round.
    acknowledged: AtomicUsize,
    /// Set just before the SIGKILL: from then on a failed call is the crash, not a bug.
    killed: AtomicBool,
}

impl Round {
    fn running(&self) -> bool {
        !self.killed.load(Ordering::SeqCst)
    }

    /// The reply to a call, or `None` when the call failed because the server was killed.
    async fn call<T>(
        &self,
        what: &str,
        call: impl Future<Output = Result<Response<T>, Status>>,
    ) -> Option<T> {
        match tokio::time::timeout(GUARD, call).await {
            Ok(Ok(reply)) => Some(reply.into_inner()),
            Ok(Err(_)) if self.killed.load(Ordering::SeqCst) => None,
            Ok(Err(status)) => panic!(
                "round {}: {what} failed while the server was up: {status:?}",
                self.number
            ),
            Err(_) => panic!(
                "round {}: {what} got no answer within {GUARD:?}",
                self.number
            ),
        }
    }

    /// Records an acknowledged reply about a task.
    fn ack(&self, command: &'static str, task: Option<pb::TaskStatus>, revision: u64) {
        let task = task.unwrap_or_else(|| panic!("the {command} reply carries its task"));
        lock(&self.ledger).acknowledge(self.number, command, &task, revision);
        self.acknowledged.fetch_add(1, Ordering::SeqCst);
    }
}

/// The channel: submits tasks one after another, each with a request id of its own.
async fn submit_tasks(round: Arc<Round>) {
    let mut routing = round.routing.clone();
    for n in 1.. {
        if !round.running() {
            break;
        }
        let request_id = format!("round{}-task{n}", round.number);
        lock(&round.ledger).unanswered.insert(request_id.clone());
        let Some(reply) = round
            .call("NewTask", routing.new_task(new_task_request(&request_id)))
            .await
        else {
            break;
        };
        {
            let mut ledger = lock(&round.ledger);
            ledger.unanswered.remove(&request_id);
            ledger.created.insert(request_id, reply.task_id.clone());
        }
        round.ack("NewTask", reply.task, reply.revision);
    }
}

/// The agents' desktops: find pending offers and accept a couple at a time, so that some
/// offers are pending whenever the server dies.
async fn accept_offers(round: Arc<Round>) {
    let mut routing = round.routing.clone();
    while round.running() {
        let Some(page) = round
            .call(
                "ListAgentStates",
                routing.list_agent_states(pb::ListAgentStatesRequest::default()),
            )
            .await
        else {
            break;
        };
        let offers: Vec<(String, String)> = page
            .agents
            .into_iter()
            .filter(|a| !a.pending_offer_task_id.is_empty())
            .map(|a| (a.agent_id, a.pending_offer_task_id))
            .take(2)
            .collect();
        if offers.is_empty() {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        for (agent_id, task_id) in offers {
            let mut desktop = round.agents[&agent_id].clone();
            let request = pb::AcceptTaskRequest {
                request_id: format!("accept-{task_id}"),
                task_id,
                agent_id,
            };
            let Some(reply) = round.call("AcceptTask", desktop.accept_task(request)).await else {
                return;
            };
            round.ack("AcceptTask", reply.task, reply.revision);
        }
    }
}

/// The closer: wraps up active tasks and closes wrapping ones, picking among them in a
/// scattered order so that tasks of every state are about when the server dies. Each task is
/// wrapped up and closed by its owner's desktop.
async fn finish_tasks(round: Arc<Round>) {
    for step in 0usize.. {
        if !round.running() {
            break;
        }
        let candidates: Vec<(String, pb::TaskState, String)> = {
            let ledger = lock(&round.ledger);
            ledger
                .known
                .iter()
                .filter(|(_, s)| matches!(s, pb::TaskState::Active | pb::TaskState::WrappingUp))
                .map(|(id, s)| {
                    let owner = ledger.owners.get(id).unwrap_or_else(|| {
                        panic!("task {id} is {s:?}, yet no reply or listing named its owner")
                    });
                    (id.clone(), *s, owner.clone())
                })
                .collect()
        };
        if candidates.is_empty() {
            tokio::time::sleep(Duration::from_millis(2)).await;
            continue;
        }
        let (task_id, state, owner) =
            candidates[step.wrapping_mul(7919) % candidates.len()].clone();
        let mut routing = round.agents[&owner].clone();
        let (wanted, request_id) = if state == pb::TaskState::Active {
            (pb::TaskState::WrappingUp, format!("wrap-{task_id}"))
        } else {
            (pb::TaskState::Closed, format!("close-{task_id}"))
        };
        let request = pb::ChangeTaskStateRequest {
            disposition_code: String::new(),
            task_id,
            state: wanted.into(),
            request_id,
        };
        let Some(reply) = round
            .call("ChangeTaskState", routing.change_task_state(request))
            .await
        else {
            break;
        };
        round.ack("ChangeTaskState", reply.task, reply.revision);
    }
}

/// Everything a restarted server reports about tasks and agents.
#[derive(Debug, Clone, PartialEq)]
struct Observed {
    revision: u64,
    tasks: Vec<pb::TaskStatus>,
    agents: Vec<pb::AgentStatus>,
    /// Tasks waiting in the MRD's default queue, per its statistics.
    waiting: u32,
}

async fn observe(routing: &mut Routing) -> Observed {
    let mut tasks = Vec::new();
    let mut page_token = String::new();
    let mut revision = None;
    loop {
        let page = routing
            .list_tasks(pb::ListTasksRequest {
                page_size: 1000,
                page_token,
                ..Default::default()
            })
            .await
            .expect("tasks are listed")
            .into_inner();
        revision.get_or_insert(page.revision);
        tasks.extend(page.tasks);
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    let agents = routing
        .list_agent_states(pb::ListAgentStatesRequest {
            page_size: 1000,
            page_token: String::new(),
        })
        .await
        .expect("agents are listed")
        .into_inner();
    assert!(agents.next_page_token.is_empty(), "one page holds them all");
    let stats = routing
        .get_queue_stats(pb::GetQueueStatsRequest {
            mrd: MRD.into(),
            queue: String::new(),
        })
        .await
        .expect("queue statistics answer")
        .into_inner();
    Observed {
        revision: revision.unwrap_or_default(),
        tasks,
        agents: agents.agents,
        waiting: stats.waiting,
    }
}

/// Checks a restarted server against every acknowledged reply and against itself.
fn check_recovered(seen: &Observed, ledger: &Ledger, context: &str) {
    assert!(
        seen.revision >= ledger.max_revision,
        "{context}: recovered to revision {}, but revision {} was acknowledged",
        seen.revision,
        ledger.max_revision
    );
    let tasks: BTreeMap<&str, &pb::TaskStatus> =
        seen.tasks.iter().map(|t| (t.task_id.as_str(), t)).collect();
    assert_eq!(tasks.len(), seen.tasks.len(), "{context}: a task id twice");

    // Exactly one task per request id, and the one the reply named.
    let mut by_request: BTreeMap<&str, &str> = BTreeMap::new();
    for task in &seen.tasks {
        if let Some(other) = by_request.insert(&task.request_id, &task.task_id) {
            panic!(
                "{context}: request id {} created two tasks: {other} and {}",
                task.request_id, task.task_id
            );
        }
    }
    for (request_id, task_id) in &ledger.created {
        assert_eq!(
            by_request.get(request_id.as_str()).copied(),
            Some(task_id.as_str()),
            "{context}: the task acknowledged for request id {request_id}"
        );
    }

    // Every acknowledged reply still holds (see `rank`).
    for ack in &ledger.acks {
        let task = tasks.get(ack.task_id.as_str()).unwrap_or_else(|| {
            panic!(
                "{context}: task {} is gone; round {} acknowledged it at revision {}: {ack:?}",
                ack.task_id, ack.round, ack.revision
            )
        });
        assert!(
            rank(task.state()) >= rank(ack.state),
            "{context}: task {} is {:?}, behind what was acknowledged: {ack:?}",
            ack.task_id,
            task.state()
        );
        if !ack.agent.is_empty() {
            assert_eq!(
                agent_of(task),
                ack.agent,
                "{context}: task {} changed agents; it was acknowledged: {ack:?}",
                ack.task_id
            );
        }
    }

    // The agents survived, logged in, and agree with the tasks.
    let agent_ids: Vec<&str> = seen.agents.iter().map(|a| a.agent_id.as_str()).collect();
    assert_eq!(agent_ids, AGENTS, "{context}: the agents");
    // Each task's one agent, as the agents tell it.
    let mut holder: BTreeMap<&str, &str> = BTreeMap::new();
    for agent in &seen.agents {
        let id = agent.agent_id.as_str();
        assert!(agent.routable, "{context}: {id} is not routable");
        let [on_mrd] = agent.mrds.as_slice() else {
            panic!("{context}: {id} is not logged in on exactly one MRD: {agent:?}")
        };
        assert_eq!(
            (on_mrd.mrd.as_str(), on_mrd.max_tasks),
            (MRD, MAX_TASKS),
            "{context}: {id}'s MRD"
        );
        assert!(
            on_mrd.active_task_ids.len() <= MAX_TASKS as usize,
            "{context}: {id} holds more than {MAX_TASKS} tasks: {:?}",
            on_mrd.active_task_ids
        );
        let offered = !agent.pending_offer_task_id.is_empty();
        if offered {
            let task = tasks
                .get(agent.pending_offer_task_id.as_str())
                .unwrap_or_else(|| panic!("{context}: {id}'s offer is of no task"));
            assert_eq!(
                (task.state(), task.offered_agent_id.as_str()),
                (pb::TaskState::Offered, id),
                "{context}: {id}'s pending offer"
            );
        }
        let mut all_wrapping = true;
        for task_id in &on_mrd.active_task_ids {
            let task = tasks
                .get(task_id.as_str())
                .unwrap_or_else(|| panic!("{context}: {id} holds task {task_id}, which is gone"));
            assert!(
                matches!(
                    task.state(),
                    pb::TaskState::Active | pb::TaskState::Paused | pb::TaskState::WrappingUp
                ) && task.owner_agent_id == id,
                "{context}: {id} holds a task it does not own or that is not in hand: {task:?}"
            );
            all_wrapping &= task.state() == pb::TaskState::WrappingUp;
        }
        let held = on_mrd
            .active_task_ids
            .iter()
            .chain(offered.then_some(&agent.pending_offer_task_id))
            .map(String::as_str);
        for task_id in held {
            if let Some(other) = holder.insert(task_id, id) {
                panic!("{context}: task {task_id} is with both {other} and {id}");
            }
        }
        let expected = if offered {
            pb::AgentState::Reserved
        } else if on_mrd.active_task_ids.is_empty() {
            pb::AgentState::Ready
        } else if all_wrapping {
            pb::AgentState::WorkReady
        } else if on_mrd.active_task_ids.len() >= MAX_TASKS as usize {
            pb::AgentState::Busy
        } else {
            pb::AgentState::Active
        };
        assert_eq!(on_mrd.state(), expected, "{context}: {id}'s derived state");
    }

    // The tasks agree with the agents.
    for task in &seen.tasks {
        let id = task.task_id.as_str();
        let with = holder.get(id).copied();
        match task.state() {
            pb::TaskState::Queued => assert!(
                with.is_none()
                    && task.owner_agent_id.is_empty()
                    && task.offered_agent_id.is_empty(),
                "{context}: a queued task with an agent: {task:?}"
            ),
            pb::TaskState::Offered => assert!(
                with == Some(task.offered_agent_id.as_str()) && task.owner_agent_id.is_empty(),
                "{context}: an offered task its agent does not know of: {task:?}"
            ),
            pb::TaskState::Active | pb::TaskState::Paused | pb::TaskState::WrappingUp => assert!(
                with == Some(task.owner_agent_id.as_str()) && task.offered_agent_id.is_empty(),
                "{context}: a task in hand its owner does not hold: {task:?}"
            ),
            pb::TaskState::Closed => assert!(
                with.is_none()
                    && task.close_reason() == pb::CloseReason::Done
                    && !task.owner_agent_id.is_empty(),
                "{context}: a closed task still held, or closed by something else: {task:?}"
            ),
            pb::TaskState::Unspecified => panic!("{context}: a task in no state: {task:?}"),
        }
    }

    // Immediate backfill held at the crash: nothing waits while an agent could take it.
    let queued = seen
        .tasks
        .iter()
        .filter(|t| t.state() == pb::TaskState::Queued)
        .count();
    assert_eq!(
        seen.waiting as usize, queued,
        "{context}: the queue's waiting count"
    );
    if queued > 0 {
        for agent in &seen.agents {
            assert!(
                !agent.pending_offer_task_id.is_empty()
                    || agent.mrds[0].active_task_ids.len() >= MAX_TASKS as usize,
                "{context}: {queued} tasks wait while {} could take one: {agent:?}",
                agent.agent_id
            );
        }
    }
}

fn count_by_state(seen: &Observed) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for task in &seen.tasks {
        *counts
            .entry(
                task.state()
                    .as_str_name()
                    .trim_start_matches("TASK_STATE_")
                    .to_owned(),
            )
            .or_default() += 1;
    }
    counts
}

/// After a restart: sends again every `NewTask` the crash cut off, and one that was answered.
/// Returns how many were cut off, and how many of those the journal already had (answered
/// from it: at or before the revision the server recovered to).
async fn retry_new_tasks(
    routing: &mut Routing,
    ledger: &Mutex<Ledger>,
    round: usize,
    recovered: u64,
) -> (usize, usize) {
    let (unanswered, answered) = {
        let mut ledger = lock(ledger);
        let last = ledger.acks.iter().rev().find(|a| a.command == "NewTask");
        let answered = last.and_then(|ack| {
            ledger
                .created
                .iter()
                .find(|(_, task_id)| **task_id == ack.task_id)
                .map(|(r, t)| (r.clone(), t.clone()))
        });
        (std::mem::take(&mut ledger.unanswered), answered)
    };
    let (cut_off, mut committed) = (unanswered.len(), 0);
    for request_id in unanswered {
        let reply = routing
            .new_task(new_task_request(&request_id))
            .await
            .expect("a retried NewTask is answered")
            .into_inner();
        if reply.revision <= recovered {
            committed += 1;
        }
        let task = reply.task.expect("the reply carries its task");
        let mut ledger = lock(ledger);
        ledger.created.insert(request_id, reply.task_id);
        ledger.acknowledge(round, "NewTask (retry)", &task, reply.revision);
    }
    if let Some((request_id, task_id)) = answered {
        let again = routing
            .new_task(new_task_request(&request_id))
            .await
            .expect("a repeated NewTask is answered")
            .into_inner();
        assert_eq!(
            again.task_id, task_id,
            "a request id answered before the crash gets its first answer after it"
        );
    }
    (cut_off, committed)
}

/// MRD `chat` as `setup` has it (written by the first admin) and agents that logged
/// themselves in (NOT_READY), every write idempotent.
async fn configure(server: &ServerProcess, setup: RoutingSetup, agents: &[&str]) {
    setup
        .agents(agents, PASSWORD)
        .log_in(&server.raw_channel().await)
        .request_ids("setup")
        .apply(&mut Clients::new(server.channel().await))
        .await;
}

/// A routing client signed in as `agent`: an agent acts only as itself.
async fn agent_routing(server: &ServerProcess, agent: &str) -> Routing {
    RoutingServiceClient::new(server.channel_as(Who::Agent(agent), PASSWORD).await)
}

/// Every agent's desktop, each signed in as its agent.
async fn desktops(server: &ServerProcess, agents: &[&str]) -> BTreeMap<String, Routing> {
    let mut desktops = BTreeMap::new();
    for &agent in agents {
        desktops.insert(agent.to_owned(), agent_routing(server, agent).await);
    }
    desktops
}

/// `agent` goes READY; `routing` is signed in as that agent.
async fn make_ready(routing: &mut Routing, agent: &str) {
    let reply = routing
        .change_agent_state(pb::ChangeAgentStateRequest {
            agent_id: agent.into(),
            state: pb::AgentState::Ready.into(),
            mrd: MRD.into(),
            reason_code: String::new(),
            request_id: format!("ready-{agent}"),
        })
        .await
        .expect("the agent goes ready")
        .into_inner();
    let state = reply.agent.expect("the reply carries the agent").mrds[0].state();
    assert!(
        matches!(state, pb::AgentState::Ready | pb::AgentState::Reserved),
        "{agent} is {state:?}"
    );
}

fn chat(offer_timeout_seconds: u32, max_tasks: u32, wrap_up_timeout_seconds: u32) -> RoutingSetup {
    RoutingSetup::chat()
        .offer_timeout(offer_timeout_seconds)
        .max_tasks(max_tasks)
        .wrap_up_timeout(wrap_up_timeout_seconds)
}

/// Re-raises a worker's panic, or fails if it does not stop.
async fn join(worker: JoinHandle<()>) {
    match tokio::time::timeout(GUARD, worker).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => std::panic::resume_unwind(e.into_panic()),
        Err(_) => panic!("a worker did not stop within {GUARD:?} of the kill"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_changes_survive_sigkill() {
    let started = std::time::Instant::now();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let ledger = Arc::new(Mutex::new(Ledger::default()));

    for (number, &kill_after) in KILL_AFTER.iter().enumerate() {
        let server = ServerProcess::start_durable(dir.path(), &CRASH_SERVER_ARGS).await;
        let mut routing = RoutingServiceClient::new(server.channel().await);
        if number == 0 {
            configure(&server, chat(HOUR, MAX_TASKS, HOUR), &AGENTS).await;
        }
        let mut agents = desktops(&server, &AGENTS).await;
        if number == 0 {
            for (agent, desktop) in &mut agents {
                make_ready(desktop, agent).await;
            }
        } else {
            let seen = observe(&mut routing).await;
            let context = format!("after the SIGKILL of round {}", number - 1);
            check_recovered(&seen, &lock(&ledger), &context);
            let recovered = server.recovered_revision();
            let (cut_off, committed) =
                retry_new_tasks(&mut routing, &ledger, number, recovered).await;
            eprintln!(
                "{context}: recovered revision {} (replayed {}), tasks {:?}, \
                 NewTasks cut off: {cut_off}, of which committed: {committed}",
                recovered,
                server
                    .log_field("state recovered", "replayed")
                    .unwrap_or_default(),
                count_by_state(&seen),
            );
            // The workers start from what the server says, not from what replies said.
            let mut ledger = lock(&ledger);
            for task in &seen.tasks {
                ledger.known.insert(task.task_id.clone(), task.state());
                if !task.owner_agent_id.is_empty() {
                    ledger
                        .owners
                        .insert(task.task_id.clone(), task.owner_agent_id.clone());
                }
            }
        }

        let round = Arc::new(Round {
            number,
            routing,
            agents,
            ledger: Arc::clone(&ledger),
            acknowledged: AtomicUsize::new(0),
            killed: AtomicBool::new(false),
        });
        let workers = [
            tokio::spawn(submit_tasks(Arc::clone(&round))),
            tokio::spawn(accept_offers(Arc::clone(&round))),
            tokio::spawn(finish_tasks(Arc::clone(&round))),
        ];
        let deadline = tokio::time::Instant::now() + GUARD;
        while round.acknowledged.load(Ordering::SeqCst) < kill_after
            && !workers.iter().any(JoinHandle::is_finished)
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "round {number}: {kill_after} commands were not acknowledged within {GUARD:?}"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        round.killed.store(true, Ordering::SeqCst);
        server.kill();
        for worker in workers {
            join(worker).await;
        }
        eprintln!(
            "round {number}: SIGKILL after {} acknowledged commands",
            round.acknowledged.load(Ordering::SeqCst)
        );
    }

    // Recover from the last crash, then stop gracefully: that must change nothing.
    let server = ServerProcess::start_durable(dir.path(), &CRASH_SERVER_ARGS).await;
    // Signed in once, before the graceful stop: the same token still works after the start
    // (the signing key is in the data directory), so that signing in again, which commits,
    // does not change what the restarted server reports.
    let admin_token = common::sign_in(
        &server.raw_channel().await,
        Who::Account(ADMIN),
        &server.admin_secret(),
    )
    .await;
    let channel = common::signed(server.raw_channel().await, &admin_token);
    let mut routing = RoutingServiceClient::new(channel.clone());
    let context = format!("after the SIGKILL of round {}", KILL_AFTER.len() - 1);
    check_recovered(&observe(&mut routing).await, &lock(&ledger), &context);
    let recovered = server.recovered_revision();
    retry_new_tasks(&mut routing, &ledger, KILL_AFTER.len(), recovered).await;

    // The agent directory survived too: passwords are still checked against their hashes.
    let mut admin = AdminServiceClient::new(channel);
    for agent in AGENTS {
        let stored = admin
            .get_agent(pb::GetAgentRequest {
                agent_id: agent.into(),
            })
            .await
            .expect("the agent survived")
            .into_inner()
            .agent
            .expect("the reply carries the agent");
        assert_eq!(stored.display_name, format!("Agent {agent}"));
    }
    // The agent logs in on the MRD as itself, with a wrong password, and signs in with one.
    let wrong = agent_routing(&server, AGENTS[0])
        .await
        .login_agent(pb::LoginAgentRequest {
            agent_id: AGENTS[0].into(),
            password: "not-the-password".into(),
            mrd: MRD.into(),
            request_id: String::new(),
        })
        .await;
    assert_eq!(
        wrong.map(|_| ()).map_err(|s| s.code()),
        Err(Code::Unauthenticated),
        "a wrong password is refused after the crashes"
    );
    let wrong = common::auth::try_sign_in(
        &server.raw_channel().await,
        Who::Agent(AGENTS[1]),
        "not-the-password",
    )
    .await;
    assert_eq!(
        wrong.map(|_| ()).map_err(|s| s.code()),
        Err(Code::Unauthenticated),
        "a wrong password does not sign in after the crashes"
    );

    let before = observe(&mut routing).await;
    check_recovered(&before, &lock(&ledger), "after the last retries");
    assert!(
        server.terminate().await.success(),
        "a graceful stop succeeds"
    );
    let server = ServerProcess::start_durable(dir.path(), &CRASH_SERVER_ARGS).await;
    assert_eq!(
        server.log_field("state recovered", "replayed").as_deref(),
        Some("0"),
        "a graceful stop leaves a snapshot of everything"
    );
    let channel = common::signed(server.raw_channel().await, &admin_token);
    let mut routing = RoutingServiceClient::new(channel);
    let after = observe(&mut routing).await;
    assert_eq!(after, before, "a graceful stop and start changes nothing");
    eprintln!(
        "{} acknowledged task replies over {} rounds, {} tasks {:?}, revision {}, in {:?}",
        lock(&ledger).acks.len(),
        KILL_AFTER.len(),
        after.tasks.len(),
        count_by_state(&after),
        after.revision,
        started.elapsed()
    );
    assert!(server.terminate().await.success());
}

// ----- pending_offers_time_out_after_a_graceful_stop_and_after_sigkill -----------------------

#[derive(Debug, Clone, Copy)]
enum Stop {
    /// SIGTERM; the server restarts at once, before the offer's deadline as a rule.
    Graceful,
    /// SIGKILL; the server restarts only once the offer's deadline has passed.
    Crash,
}

/// How the task's story reads on a watch of it, from revision 1.
#[derive(Debug, Default)]
struct TaskStory {
    offered_to_ana: Option<u64>,
    rona: Option<u64>,
    offered_to_ben: Option<u64>,
}

async fn read_story(routing: &mut Routing, task_id: &str) -> TaskStory {
    let mut watch = routing
        .watch_routing_events(pb::WatchRoutingEventsRequest {
            start_revision: 1,
            task_id: task_id.into(),
            ..Default::default()
        })
        .await
        .expect("the watch opens")
        .into_inner();
    let mut story = TaskStory::default();
    let deadline = tokio::time::Instant::now() + GUARD;
    while story.offered_to_ben.is_none() {
        let frame = tokio::time::timeout_at(deadline, watch.next())
            .await
            .unwrap_or_else(|_| panic!("the task was not offered to ben: {story:?}"))
            .expect("the watch is open")
            .expect("the watch is healthy");
        let Some(pb::watch_routing_events_response::Frame::Event(event)) = frame.frame else {
            continue;
        };
        match event.event {
            Some(Ev::TaskAgentSelected(s)) if s.agent_id == "ana" => {
                story.offered_to_ana = Some(event.revision);
            }
            Some(Ev::TaskAgentSelected(s)) if s.agent_id == "ben" => {
                story.offered_to_ben = Some(event.revision);
            }
            Some(Ev::TaskStateChanged(c))
                if c.requeue_reason() != pb::RequeueReason::Unspecified =>
            {
                assert_eq!(
                    (c.requeue_reason(), c.agent_id.as_str(), c.state()),
                    (pb::RequeueReason::Rona, "ana", pb::TaskState::Queued),
                    "the only requeue is ana's RONA"
                );
                story.rona = Some(event.revision);
            }
            // Queued, and back in line (position 1) after the RONA.
            other => assert!(
                matches!(other, Some(Ev::TaskQueued(_) | Ev::TaskPositionChanged(_))),
                "an unexpected event about the task: {other:?}"
            ),
        }
    }
    story
}

/// One scenario; `false` when the offer expired before the stop took effect (the machine
/// was slower than the offer timeout), which proves nothing about restarts.
async fn offer_times_out_across_a_restart(stop: Stop, offer_timeout_seconds: u32) -> bool {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let server = ServerProcess::start_durable(dir.path(), &[]).await;
    configure(&server, chat(offer_timeout_seconds, 1, 0), &["ana", "ben"]).await;
    make_ready(&mut agent_routing(&server, "ana").await, "ana").await;
    let mut routing = RoutingServiceClient::new(server.channel().await);
    let created = routing
        .new_task(new_task_request("rona-task"))
        .await
        .expect("the task is queued")
        .into_inner();
    let task = created.task.expect("the reply carries the task");
    assert_eq!(
        (task.state(), task.offered_agent_id.as_str()),
        (pb::TaskState::Offered, "ana"),
        "ana is the only ready agent"
    );
    let deadline = SystemTime::try_from(task.offer_deadline_time.expect("an offer deadline"))
        .expect("a valid deadline");
    drop(routing);

    match stop {
        Stop::Graceful => assert!(server.terminate().await.success(), "a graceful stop"),
        Stop::Crash => {
            server.kill();
            // Down past the deadline: the new process finds the timer already due.
            let left = deadline
                .duration_since(SystemTime::now())
                .unwrap_or_default();
            tokio::time::sleep(left + Duration::from_millis(100)).await;
        }
    }

    let server = ServerProcess::start_durable(dir.path(), &[]).await;
    let recovered = server.recovered_revision();
    let mut routing = RoutingServiceClient::new(server.channel().await);
    let mut ben_desktop = agent_routing(&server, "ben").await;
    // Only now may ben take the task: before the stop, ana was the only candidate.
    make_ready(&mut ben_desktop, "ben").await;
    let story = read_story(&mut routing, &task.task_id).await;
    let (Some(offered_to_ana), Some(rona), Some(offered_to_ben)) =
        (story.offered_to_ana, story.rona, story.offered_to_ben)
    else {
        panic!("{stop:?}: the story is incomplete: {story:?}")
    };
    if rona <= recovered {
        return false;
    }
    assert!(
        offered_to_ana <= recovered && recovered < rona && rona < offered_to_ben,
        "{stop:?}: offered to ana at {offered_to_ana}, recovered to {recovered}, \
         RONA at {rona}, offered to ben at {offered_to_ben}"
    );

    let now = routing
        .get_task_state(pb::GetTaskStateRequest {
            task_id: task.task_id.clone(),
        })
        .await
        .expect("the task is there")
        .into_inner()
        .task
        .expect("the reply carries the task");
    assert_eq!(
        (
            now.state(),
            now.offered_agent_id.as_str(),
            now.declined_agent_ids.as_slice(),
            now.priority,
        ),
        (
            pb::TaskState::Offered,
            "ben",
            ["ana".to_owned()].as_slice(),
            11
        ),
        "{stop:?}: the task, requeued ahead of all, is offered to ben"
    );
    let agent_state = |agent: pb::GetAgentStateResponse| {
        let agent = agent.agent.expect("the reply carries the agent");
        let mrd = &agent.mrds[0];
        (
            mrd.state(),
            mrd.reason_code.clone(),
            agent.pending_offer_task_id,
        )
    };
    let ana = routing
        .get_agent_state(pb::GetAgentStateRequest {
            agent_id: "ana".into(),
        })
        .await
        .expect("ana is there")
        .into_inner();
    assert_eq!(
        agent_state(ana),
        (pb::AgentState::NotReady, "RONA".to_owned(), String::new()),
        "{stop:?}: ana let the offer go"
    );
    let ben = routing
        .get_agent_state(pb::GetAgentStateRequest {
            agent_id: "ben".into(),
        })
        .await
        .expect("ben is there")
        .into_inner();
    assert_eq!(
        agent_state(ben),
        (
            pb::AgentState::Reserved,
            String::new(),
            task.task_id.clone()
        ),
        "{stop:?}: ben has the offer"
    );
    let accepted = ben_desktop
        .accept_task(pb::AcceptTaskRequest {
            task_id: task.task_id.clone(),
            agent_id: "ben".into(),
            request_id: "ben-accepts".into(),
        })
        .await
        .expect("ben accepts")
        .into_inner()
        .task
        .expect("the reply carries the task");
    assert_eq!(
        (accepted.state(), accepted.owner_agent_id.as_str()),
        (pb::TaskState::Active, "ben")
    );
    assert!(server.terminate().await.success());
    true
}

/// Runs the scenario with longer offer timeouts until the stop comes before the deadline.
async fn prove_offer_timeout_across_a_restart(stop: Stop) {
    for offer_timeout_seconds in [2, 4, 8] {
        if offer_times_out_across_a_restart(stop, offer_timeout_seconds).await {
            return;
        }
        eprintln!(
            "{stop:?}: the {offer_timeout_seconds} s offer expired before the server stopped; \
             trying a longer one"
        );
    }
    panic!("{stop:?}: the server never stopped within an offer's timeout");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_offers_time_out_after_a_graceful_stop_and_after_sigkill() {
    tokio::join!(
        prove_offer_timeout_across_a_restart(Stop::Graceful),
        prove_offer_timeout_across_a_restart(Stop::Crash),
    );
}

// ----- accounts_refresh_chains_and_revocations_survive_a_restart_* ---------------------------

const SUPERVISOR_SECRET: &str = "supervisor-Secret-1";
const CHANNEL_SECRET: &str = "channel-Secret-2";
const REPORTS_SECRET: &str = "reports-Secret-3";

/// How the server stops, and what its next start recovers from.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Restart {
    /// SIGKILL before any snapshot: the next start replays the journal, every event of it.
    CrashFromJournal,
    /// SIGKILL with a snapshot after every commit: the next start loads the snapshot, which
    /// holds every acknowledged change.
    CrashFromSnapshot,
    /// SIGTERM: the stop leaves a snapshot of everything, and nothing to replay.
    Graceful,
}

async fn upsert_account(
    admin: &mut AdminServiceClient<Channel>,
    account_id: &str,
    secret: &str,
    role: pb::Role,
) {
    admin
        .upsert_account(pb::UpsertAccountRequest {
            account: Some(pb::Account {
                account_id: account_id.into(),
                display_name: format!("Account {account_id}"),
                secret: secret.into(),
                roles: vec![role.into()],
                ..Default::default()
            }),
            request_id: format!("account-{account_id}"),
        })
        .await
        .unwrap_or_else(|e| panic!("account {account_id} is written: {e:?}"));
}

async fn log_in(server: &ServerProcess, who: Who<'_>, password: &str) -> pb::LoginResponse {
    common::auth::try_sign_in(&server.raw_channel().await, who, password)
        .await
        .unwrap_or_else(|e| panic!("{who:?} signs in: {e:?}"))
}

async fn refresh(
    server: &ServerProcess,
    refresh_token: &str,
) -> Result<pb::RefreshResponse, Status> {
    AuthServiceClient::new(server.raw_channel().await)
        .refresh(pb::RefreshRequest {
            refresh_token: refresh_token.into(),
        })
        .await
        .map(Response::into_inner)
}

/// Who an access token says its bearer is (`WhoAmI`), or why it is refused.
async fn who_am_i(
    server: &ServerProcess,
    access_token: &str,
) -> Result<pb::WhoAmIResponse, Status> {
    let channel = common::signed(server.raw_channel().await, access_token);
    AuthServiceClient::new(channel)
        .who_am_i(pb::WhoAmIRequest {})
        .await
        .map(Response::into_inner)
}

#[track_caller]
fn assert_unauthenticated<T: std::fmt::Debug>(result: Result<T, Status>, what: &str) {
    match result {
        Err(status) => assert_eq!(status.code(), Code::Unauthenticated, "{what}: {status:?}"),
        Ok(answer) => panic!("{what}: accepted, answering {answer:?}"),
    }
}

/// What the run before the restart leaves for the one after it to check.
struct BeforeRestart {
    /// The supervisor's first login (its refresh token spent by the refresh below).
    supervisor_login: pb::LoginResponse,
    /// The supervisor's refresh: its refresh token is the chain's live one.
    supervisor_refreshed: pb::RefreshResponse,
    /// A login of the channel's that it keeps.
    channel_kept: pb::LoginResponse,
    /// A login of the channel's that it signed out of.
    channel_signed_out: pb::LoginResponse,
    /// Ana's login, and the reports account's, both revoked since.
    ana: pb::LoginResponse,
    reports: pb::LoginResponse,
    /// A revision that every change made before the restart is at or before.
    last_change: u64,
}

async fn make_credentials(server: &ServerProcess) -> BeforeRestart {
    let mut admin = AdminServiceClient::new(server.channel().await);
    upsert_account(
        &mut admin,
        "supervisor-1",
        SUPERVISOR_SECRET,
        pb::Role::Supervisor,
    )
    .await;
    upsert_account(
        &mut admin,
        "channel-1",
        CHANNEL_SECRET,
        pb::Role::Integration,
    )
    .await;
    upsert_account(&mut admin, "reports", REPORTS_SECRET, pb::Role::Supervisor).await;
    admin
        .upsert_agent(pb::UpsertAgentRequest {
            agent: Some(pb::Agent {
                agent_id: "ana".into(),
                display_name: "Agent ana".into(),
                password: PASSWORD.into(),
                ..Default::default()
            }),
            request_id: "agent-ana".into(),
        })
        .await
        .expect("ana is written");

    // The supervisor signs in and refreshes once: the chain's live token is the second one.
    let supervisor_login = log_in(server, Who::Account("supervisor-1"), SUPERVISOR_SECRET).await;
    let supervisor_refreshed = refresh(server, &supervisor_login.refresh_token)
        .await
        .expect("the supervisor's refresh token is good");
    // The channel signs in twice, and signs out of one of its chains.
    let channel_kept = log_in(server, Who::Account("channel-1"), CHANNEL_SECRET).await;
    let channel_signed_out = log_in(server, Who::Account("channel-1"), CHANNEL_SECRET).await;
    AuthServiceClient::new(server.raw_channel().await)
        .logout(pb::LogoutRequest {
            refresh_token: channel_signed_out.refresh_token.clone(),
        })
        .await
        .expect("the channel signs out");
    assert_unauthenticated(
        refresh(server, &channel_signed_out.refresh_token).await,
        "a refresh token of a chain signed out of, before the restart",
    );

    // Ana (an agent) and the reports account are forced out.
    let ana = log_in(server, Who::Agent("ana"), PASSWORD).await;
    let reports = log_in(server, Who::Account("reports"), REPORTS_SECRET).await;
    let mut last_change = 0;
    for principal in [
        pb::revoke_credentials_request::Principal::AgentId("ana".into()),
        pb::revoke_credentials_request::Principal::AccountId("reports".into()),
    ] {
        last_change = admin
            .revoke_credentials(pb::RevokeCredentialsRequest {
                principal: Some(principal.clone()),
                request_id: String::new(),
            })
            .await
            .unwrap_or_else(|e| panic!("{principal:?} is revoked: {e:?}"))
            .into_inner()
            .revision;
    }
    for (what, login) in [("ana's", &ana), ("the reports account's", &reports)] {
        assert_unauthenticated(
            who_am_i(server, &login.access_token).await,
            &format!("{what} revoked access token, before the restart"),
        );
        assert_unauthenticated(
            refresh(server, &login.refresh_token).await,
            &format!("{what} revoked refresh token, before the restart"),
        );
    }
    // Nothing changed since the revocations: the revision a read reflects is still theirs.
    let read = admin
        .get_account(pb::GetAccountRequest {
            account_id: "supervisor-1".into(),
        })
        .await
        .expect("the supervisor's account is there")
        .into_inner()
        .revision;
    assert!(read >= last_change, "{read} < {last_change}");
    BeforeRestart {
        supervisor_login,
        supervisor_refreshed,
        channel_kept,
        channel_signed_out,
        ana,
        reports,
        last_change: read,
    }
}

async fn credentials_survive(restart: Restart) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let args: &[&str] = match restart {
        Restart::CrashFromSnapshot => &["--snapshot-every", "1"],
        Restart::CrashFromJournal | Restart::Graceful => &[],
    };
    let server = ServerProcess::start_durable(dir.path(), args).await;
    let before = make_credentials(&server).await;
    match restart {
        Restart::CrashFromJournal | Restart::CrashFromSnapshot => server.kill(),
        Restart::Graceful => assert!(server.terminate().await.success(), "a graceful stop"),
    }

    let server = ServerProcess::start_durable(dir.path(), args).await;
    let field = |name: &str| -> u64 {
        server
            .log_field("state recovered", name)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{restart:?}: no {name} in the log: {:?}", server.logs()))
    };
    let (recovered, snapshot, replayed) = (
        server.recovered_revision(),
        field("snapshot_revision"),
        field("replayed"),
    );
    assert!(
        recovered >= before.last_change,
        "{restart:?}: recovered to {recovered}, before {}",
        before.last_change
    );
    match restart {
        Restart::CrashFromJournal => assert!(
            snapshot == 0 && replayed == recovered,
            "{restart:?}: everything comes from the journal: snapshot at {snapshot}, \
             {replayed} of {recovered} events replayed"
        ),
        Restart::CrashFromSnapshot | Restart::Graceful => assert!(
            snapshot >= before.last_change,
            "{restart:?}: the snapshot at {snapshot} holds every change up to {}",
            before.last_change
        ),
    }
    if restart == Restart::Graceful {
        assert_eq!(replayed, 0, "a graceful stop leaves nothing to replay");
    }

    // The accounts are there, as written, and their secrets sign them in.
    let mut admin = AdminServiceClient::new(server.channel().await);
    let mut listed = admin
        .list_accounts(pb::ListAccountsRequest::default())
        .await
        .expect("the accounts are listed")
        .into_inner()
        .accounts;
    listed.sort_by(|a, b| a.account_id.cmp(&b.account_id));
    assert!(
        listed.iter().all(|a| a.secret.is_empty()),
        "{restart:?}: a secret in a listing"
    );
    let (supervisor, integration, admin_role) = (
        [pb::Role::Supervisor as i32],
        [pb::Role::Integration as i32],
        [pb::Role::Admin as i32],
    );
    let ids_and_roles: Vec<(&str, &[i32])> = listed
        .iter()
        .map(|a| (a.account_id.as_str(), a.roles.as_slice()))
        .collect();
    assert_eq!(
        ids_and_roles,
        [
            (ADMIN, admin_role.as_slice()),
            ("channel-1", integration.as_slice()),
            ("reports", supervisor.as_slice()),
            ("supervisor-1", supervisor.as_slice()),
        ],
        "{restart:?}: the accounts and their roles"
    );
    for account in listed.iter().filter(|a| a.account_id != ADMIN) {
        assert_eq!(
            account.display_name,
            format!("Account {}", account.account_id),
            "{restart:?}: the display name as written"
        );
    }
    for (account, secret) in [
        ("supervisor-1", SUPERVISOR_SECRET),
        ("channel-1", CHANNEL_SECRET),
    ] {
        let login = log_in(&server, Who::Account(account), secret).await;
        assert_eq!(login.principal, format!("account:{account}"));
        let wrong = common::auth::try_sign_in(
            &server.raw_channel().await,
            Who::Account(account),
            "not-the-secret",
        )
        .await;
        assert_unauthenticated(
            wrong,
            &format!("{restart:?}: {account} with a wrong secret"),
        );
    }

    // An access token issued before the restart and never revoked is still good, with its
    // roles: the supervisor's reads every agent's state.
    let whoami = who_am_i(&server, &before.supervisor_refreshed.access_token)
        .await
        .unwrap_or_else(|e| panic!("{restart:?}: the supervisor's token is refused: {e:?}"));
    assert_eq!(
        (whoami.principal.as_str(), whoami.roles.as_slice()),
        ("account:supervisor-1", supervisor.as_slice())
    );
    let supervisor_channel = common::signed(
        server.raw_channel().await,
        &before.supervisor_refreshed.access_token,
    );
    RoutingServiceClient::new(supervisor_channel)
        .list_agent_states(pb::ListAgentStatesRequest::default())
        .await
        .unwrap_or_else(|e| panic!("{restart:?}: the supervisor lists agents: {e:?}"));

    // The refresh chains went on: the live token of each refreshes once more.
    let supervisor_next = refresh(&server, &before.supervisor_refreshed.refresh_token)
        .await
        .unwrap_or_else(|e| {
            panic!("{restart:?}: the supervisor's refresh token from before is refused: {e:?}")
        });
    assert_eq!(supervisor_next.principal, "account:supervisor-1");
    let whoami = who_am_i(&server, &supervisor_next.access_token)
        .await
        .unwrap_or_else(|e| panic!("{restart:?}: the refreshed access token: {e:?}"));
    assert_eq!(whoami.principal, "account:supervisor-1");
    let channel_next = refresh(&server, &before.channel_kept.refresh_token)
        .await
        .unwrap_or_else(|e| panic!("{restart:?}: the channel's kept chain: {e:?}"));
    assert_eq!(channel_next.principal, "account:channel-1");
    // A chain signed out of stayed ended.
    assert_unauthenticated(
        refresh(&server, &before.channel_signed_out.refresh_token).await,
        &format!("{restart:?}: a chain signed out of before the restart"),
    );
    // A token spent before the restart is still spent: presenting it again ends its chain,
    // whose live token is then refused too.
    assert_unauthenticated(
        refresh(&server, &before.supervisor_login.refresh_token).await,
        &format!("{restart:?}: a refresh token spent before the restart"),
    );
    assert_unauthenticated(
        refresh(&server, &supervisor_next.refresh_token).await,
        &format!("{restart:?}: the live token of a chain whose spent token came back"),
    );

    // Revoked before the restart, refused after it: access and refresh tokens alike.
    for (what, login) in [
        ("ana's", &before.ana),
        ("the reports account's", &before.reports),
    ] {
        assert_unauthenticated(
            who_am_i(&server, &login.access_token).await,
            &format!("{restart:?}: {what} revoked access token"),
        );
        let revoked = common::signed(server.raw_channel().await, &login.access_token);
        assert_unauthenticated(
            RoutingServiceClient::new(revoked)
                .get_agent_state(pb::GetAgentStateRequest {
                    agent_id: "ana".into(),
                })
                .await,
            &format!("{restart:?}: a call with {what} revoked access token"),
        );
        assert_unauthenticated(
            refresh(&server, &login.refresh_token).await,
            &format!("{restart:?}: {what} revoked refresh token"),
        );
    }
    // A revoked principal may sign in anew, and its new token is good.
    for (who, password, principal) in [
        (Who::Agent("ana"), PASSWORD, "agent:ana"),
        (Who::Account("reports"), REPORTS_SECRET, "account:reports"),
    ] {
        let login = log_in(&server, who, password).await;
        let whoami = who_am_i(&server, &login.access_token)
            .await
            .unwrap_or_else(|e| panic!("{restart:?}: {principal}'s new token: {e:?}"));
        assert_eq!(whoami.principal, principal);
    }
    assert!(server.terminate().await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_refresh_chains_and_revocations_survive_a_restart_from_the_journal() {
    credentials_survive(Restart::CrashFromJournal).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_refresh_chains_and_revocations_survive_a_restart_from_a_snapshot() {
    credentials_survive(Restart::CrashFromSnapshot).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_refresh_chains_and_revocations_survive_a_graceful_restart() {
    credentials_survive(Restart::Graceful).await;
}
