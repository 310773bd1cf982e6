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

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use common::Clients;
use common::process::ServerProcess;
use common::routing_setup::RoutingSetup;
use switchboard::pb;
use switchboard::pb::admin_service_client::AdminServiceClient;
use switchboard::pb::routing_event::Event as Ev;
use switchboard::pb::routing_service_client::RoutingServiceClient;
use tokio::task::JoinHandle;
use tokio_stream::StreamExt;
use common::Channel;
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
    routing: Routing,
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
            let request = pb::AcceptTaskRequest {
                request_id: format!("accept-{task_id}"),
                task_id,
                agent_id,
            };
            let Some(reply) = round.call("AcceptTask", routing.accept_task(request)).await else {
                return;
            };
            round.ack("AcceptTask", reply.task, reply.revision);
        }
    }
}

/// The closer: wraps up active tasks and closes wrapping ones, picking among them in a
/// scattered order so that tasks of every state are about when the server dies.
async fn finish_tasks(round: Arc<Round>) {
    let mut routing = round.routing.clone();
    for step in 0usize.. {
        if !round.running() {
            break;
        }
        let candidates: Vec<(String, pb::TaskState)> = lock(&round.ledger)
            .known
            .iter()
            .filter(|(_, s)| matches!(s, pb::TaskState::Active | pb::TaskState::WrappingUp))
            .map(|(id, s)| (id.clone(), *s))
            .collect();
        if candidates.is_empty() {
            tokio::time::sleep(Duration::from_millis(2)).await;
            continue;
        }
        let (task_id, state) = candidates[step.wrapping_mul(7919) % candidates.len()].clone();
        let (wanted, request_id) = if state == pb::TaskState::Active {
            (pb::TaskState::WrappingUp, format!("wrap-{task_id}"))
        } else {
            (pb::TaskState::Closed, format!("close-{task_id}"))
        };
        let request = pb::ChangeTaskStateRequest {
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

/// MRD `chat` as `setup` has it and logged-in agents (NOT_READY), every write idempotent.
async fn configure(channel: &Channel, setup: RoutingSetup, agents: &[&str]) {
    setup
        .agents(agents, PASSWORD)
        .log_in(&RoutingServiceClient::new(channel.clone()))
        .request_ids("setup")
        .apply(&mut Clients::new(channel.clone()))
        .await;
}

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
        let channel = server.channel().await;
        let mut routing = RoutingServiceClient::new(channel.clone());
        if number == 0 {
            configure(&channel, chat(HOUR, MAX_TASKS, HOUR), &AGENTS).await;
            for agent in AGENTS {
                make_ready(&mut routing, agent).await;
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
            }
        }

        let round = Arc::new(Round {
            number,
            routing,
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
    let channel = server.channel().await;
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
    let wrong = routing
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
    let mut routing = RoutingServiceClient::new(server.channel().await);
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
            other => assert!(
                matches!(other, Some(Ev::TaskQueued(_))),
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
    let channel = server.channel().await;
    configure(&channel, chat(offer_timeout_seconds, 1, 0), &["ana", "ben"]).await;
    let mut routing = RoutingServiceClient::new(channel);
    make_ready(&mut routing, "ana").await;
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
    // Only now may ben take the task: before the stop, ana was the only candidate.
    make_ready(&mut routing, "ben").await;
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
    let accepted = routing
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
