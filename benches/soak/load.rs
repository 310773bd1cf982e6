//! The day's traffic. A channel server submits tasks at a steady pace (at most `open_cap`
//! unclosed at once, so the queue cannot grow without end); one admin watch follows the
//! routing events and hands each offer to the agent it names, who acts on it as itself:
//! accepts most, rejects some, lets some ring out (RONA, after which it goes READY again),
//! transfers some to another agent, then wraps up and closes, or leaves the wrap-up timer to
//! close. Meanwhile agents log out and back in. Some calls carry request ids, and some of
//! those are sent twice, as a channel server retrying after a lost answer would.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use futures_util::future::join_all;
use switchboard::pb;
use switchboard::pb::routing_event::Event;
use switchboard::pb::routing_service_client::RoutingServiceClient;
use switchboard::pb::watch_routing_events_response::Frame;
use tokio::sync::Semaphore;
use tokio::time::MissedTickBehavior;
use tonic::Status;

use crate::auth;
use crate::center::{self, Agent, MRD};

/// What the day holds.
#[derive(Clone)]
pub struct Plan {
    pub tasks: u64,
    /// `NewTask` calls per second the channel server aims at.
    pub rate: u64,
    /// Tasks submitted and not yet closed, at most; the channel server waits beyond it.
    pub open_cap: usize,
    /// How often some idle agent logs out (and back in a second later).
    pub logout_every: Duration,
}

/// Out of 1000 offers: let ring out, rejected, accepted then transferred; the rest are
/// accepted and kept.
const RONA_PER_MILLE: u64 = 20;
const REJECT_PER_MILLE: u64 = 30;
const TRANSFER_PER_MILLE: u64 = 30;
/// Every 10th task is submitted with a request id, and every 100th is sent a second time.
const IDEMPOTENT_EVERY: u64 = 10;
const RETRIED_EVERY: u64 = 100;
/// The drain at the end gives up after this long without a task closing.
const STALL: Duration = Duration::from_secs(60);

#[derive(Default)]
pub struct Counters {
    pub submitted: AtomicU64,
    pub closed: AtomicU64,
    pub offers: AtomicU64,
    pub let_ring: AtomicU64,
    pub rejected: AtomicU64,
    pub accepted: AtomicU64,
    pub transferred: AtomicU64,
    pub transfers_refused: AtomicU64,
    pub wrapped_up: AtomicU64,
    pub closed_by_agent: AtomicU64,
    pub rona_not_ready: AtomicU64,
    pub back_ready: AtomicU64,
    pub retries: AtomicU64,
    pub retries_differing: AtomicU64,
    pub logouts: AtomicU64,
    pub logins: AtomicU64,
    pub watch_reopened: AtomicU64,
    /// Refusals and failures, by call and status code.
    pub errors: Mutex<BTreeMap<String, u64>>,
    /// The last task the watch saw close.
    pub last_closed: Mutex<Option<String>>,
}

impl Counters {
    fn error(&self, call: &str, status: &Status) {
        let key = format!("{call}: {:?}", status.code());
        *self
            .errors
            .lock()
            .expect("not poisoned")
            .entry(key)
            .or_default() += 1;
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

struct Desk {
    agent: Agent,
    /// Offers and tasks this agent's desktop is working on now.
    in_hand: AtomicU32,
    /// Logged out (or logging out or in) by the day's comings and goings.
    away: AtomicBool,
}

pub struct Day {
    desks: Vec<Desk>,
    by_id: HashMap<String, usize>,
    pub counters: Counters,
    open: Semaphore,
    sequence: AtomicU64,
    done: AtomicBool,
}

impl Day {
    pub fn new(agents: Vec<Agent>, plan: &Plan) -> Arc<Self> {
        let by_id = agents
            .iter()
            .enumerate()
            .map(|(i, a)| (a.id.clone(), i))
            .collect();
        let desks = agents
            .into_iter()
            .map(|agent| Desk {
                agent,
                in_hand: AtomicU32::new(0),
                away: AtomicBool::new(false),
            })
            .collect();
        Arc::new(Self {
            desks,
            by_id,
            counters: Counters::default(),
            open: Semaphore::new(plan.open_cap),
            sequence: AtomicU64::new(0),
            done: AtomicBool::new(false),
        })
    }

    pub fn is_done(&self) -> bool {
        self.done.load(Ordering::Relaxed)
    }

    /// A pseudo-random number (SplitMix64 over a shared sequence): the same mix every run.
    fn roll(&self) -> u64 {
        let mut z = self
            .sequence
            .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
            .wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// Runs the day: the watch from `start_revision`, every agent logged in and READY, then the
/// tasks. Returns when every submitted task has closed (or closing stalled) and the time the
/// first task was submitted.
pub async fn run(
    day: Arc<Day>,
    admin: auth::Channel,
    channel: RoutingServiceClient<auth::Channel>,
    start_revision: u64,
    plan: Plan,
    started: tokio::sync::oneshot::Sender<Instant>,
) {
    let follower = tokio::spawn(follow(Arc::clone(&day), admin, start_revision));
    let indexes: Vec<usize> = (0..day.desks.len()).collect();
    for some in indexes.chunks(32) {
        join_all(some.iter().map(|&i| {
            let day = Arc::clone(&day);
            async move {
                let agent = &day.desks[i].agent;
                center::log_in_ready(agent)
                    .await
                    .unwrap_or_else(|e| panic!("{} logs in and goes READY: {e:?}", agent.id));
            }
        }))
        .await;
    }
    println!(
        "{} agents logged in on {MRD} and READY; the channel server starts.",
        day.desks.len()
    );
    let _ = started.send(Instant::now());
    let comings_and_goings = tokio::spawn(come_and_go(Arc::clone(&day), plan.logout_every));
    submit(&day, channel, &plan).await;
    drain(&day).await;
    day.done.store(true, Ordering::Relaxed);
    comings_and_goings.abort();
    follower.abort();
}

/// The channel server: `plan.tasks` tasks at `plan.rate` a second, in 10 ms slices.
async fn submit(day: &Arc<Day>, channel: RoutingServiceClient<auth::Channel>, plan: &Plan) {
    let mut slice = tokio::time::interval(Duration::from_millis(10));
    slice.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut budget = 0.0_f64;
    let mut n = 0u64;
    while n < plan.tasks {
        slice.tick().await;
        budget = (budget + plan.rate as f64 / 100.0).min(plan.rate as f64);
        while budget >= 1.0 && n < plan.tasks {
            day.open.acquire().await.expect("never closed").forget();
            budget -= 1.0;
            tokio::spawn(new_task(Arc::clone(day), channel.clone(), n));
            n += 1;
        }
    }
}

async fn new_task(day: Arc<Day>, mut channel: RoutingServiceClient<auth::Channel>, n: u64) {
    let request = pb::NewTaskRequest {
        request_id: if n.is_multiple_of(IDEMPOTENT_EVERY) {
            format!("soak-task-{n}")
        } else {
            String::new()
        },
        mrd: MRD.into(),
        conversation_id: format!("conversation-{n}"),
        attributes: [("customer".to_owned(), format!("Customer {n}"))].into(),
        ..Default::default()
    };
    let c = &day.counters;
    let first = match channel.new_task(request.clone()).await {
        Ok(answer) => answer.into_inner().task_id,
        Err(e) => {
            c.error("NewTask", &e);
            day.open.add_permits(1);
            return;
        }
    };
    bump(&c.submitted);
    if n.is_multiple_of(RETRIED_EVERY) {
        bump(&c.retries);
        match channel.new_task(request).await {
            Ok(again) if again.get_ref().task_id == first => {}
            Ok(_) => bump(&c.retries_differing),
            Err(e) => c.error("NewTask (retried)", &e),
        }
    }
}

/// Waits until every submitted task has closed, or until none has closed for `STALL`.
async fn drain(day: &Day) {
    let c = &day.counters;
    let (mut last, mut since) = (Counters::get(&c.closed), Instant::now());
    while Counters::get(&c.closed) < Counters::get(&c.submitted) && since.elapsed() < STALL {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = Counters::get(&c.closed);
        if now != last {
            (last, since) = (now, Instant::now());
        }
    }
}

/// One admin watch over the routing events that drive the agents, reopened where it stopped
/// if the server ends it (a watch that lags is ended, by design).
async fn follow(day: Arc<Day>, admin: auth::Channel, mut next: u64) {
    let kinds = [
        pb::RoutingEventKind::TaskAgentSelected,
        pb::RoutingEventKind::TaskStateChanged,
        pb::RoutingEventKind::AgentStateChanged,
    ];
    loop {
        let opened = RoutingServiceClient::new(admin.clone())
            .watch_routing_events(pb::WatchRoutingEventsRequest {
                start_revision: next,
                mrd: MRD.into(),
                kinds: kinds.iter().map(|&k| k.into()).collect(),
                ..Default::default()
            })
            .await;
        let mut frames = match opened {
            Ok(frames) => frames.into_inner(),
            Err(e) => {
                day.counters.error("WatchRoutingEvents", &e);
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        while let Some(frame) = frames.next().await {
            match frame.map(|f| f.frame) {
                Ok(Some(Frame::Event(event))) => {
                    next = event.revision + 1;
                    if let Some(event) = event.event {
                        on_event(&day, event);
                    }
                }
                Ok(Some(Frame::Progress(progress))) => next = progress.revision + 1,
                Ok(None) => {}
                Err(e) => {
                    day.counters.error("WatchRoutingEvents (ended)", &e);
                    break;
                }
            }
        }
        bump(&day.counters.watch_reopened);
    }
}

fn on_event(day: &Arc<Day>, event: Event) {
    let c = &day.counters;
    match event {
        Event::TaskAgentSelected(offer) => {
            bump(&c.offers);
            if let Some(&i) = day.by_id.get(&offer.agent_id) {
                tokio::spawn(work(Arc::clone(day), i, offer.task_id));
            }
        }
        Event::TaskStateChanged(change) if change.state() == pb::TaskState::Closed => {
            bump(&c.closed);
            day.open.add_permits(1);
            *c.last_closed.lock().expect("not poisoned") = Some(change.task_id);
        }
        Event::AgentStateChanged(agent)
            if agent.state() == pb::AgentState::NotReady && agent.reason_code == "RONA" =>
        {
            bump(&c.rona_not_ready);
            if let Some(&i) = day.by_id.get(&agent.agent_id)
                && !day.desks[i].away.load(Ordering::Relaxed)
            {
                let day = Arc::clone(day);
                tokio::spawn(async move {
                    match center::ready(&day.desks[i].agent).await {
                        Ok(()) => bump(&day.counters.back_ready),
                        Err(e) => day.counters.error("ChangeAgentState READY after RONA", &e),
                    }
                });
            }
        }
        _ => {}
    }
}

/// An agent's desktop working on one offer.
async fn work(day: Arc<Day>, i: usize, task_id: String) {
    let desk = &day.desks[i];
    desk.in_hand.fetch_add(1, Ordering::Relaxed);
    let recipient = handle_offer(&day, i, &task_id).await;
    desk.in_hand.fetch_sub(1, Ordering::Relaxed);
    if let Some(j) = recipient {
        day.desks[j].in_hand.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Returns the agent the task was offered on to, if it tried a transfer.
async fn handle_offer(day: &Day, i: usize, task_id: &str) -> Option<usize> {
    let c = &day.counters;
    let roll = day.roll() % 1000;
    let agent = &day.desks[i].agent;
    let mut routing = agent.routing.clone();
    if roll < RONA_PER_MILLE {
        bump(&c.let_ring);
        return None;
    }
    if roll < RONA_PER_MILLE + REJECT_PER_MILLE {
        match routing
            .reject_task(pb::RejectTaskRequest {
                task_id: task_id.into(),
                agent_id: agent.id.clone(),
                request_id: String::new(),
            })
            .await
        {
            Ok(_) => bump(&c.rejected),
            Err(e) => c.error("RejectTask", &e),
        }
        return None;
    }
    let accepted = routing
        .accept_task(pb::AcceptTaskRequest {
            task_id: task_id.into(),
            agent_id: agent.id.clone(),
            request_id: if roll.is_multiple_of(5) {
                format!("accept-{task_id}")
            } else {
                String::new()
            },
        })
        .await;
    if let Err(e) = accepted {
        // The offer went elsewhere meanwhile (a logout, a late answer after RONA).
        c.error("AcceptTask", &e);
        return None;
    }
    bump(&c.accepted);
    let mut owner = i;
    let mut tried = None;
    if roll < RONA_PER_MILLE + REJECT_PER_MILLE + TRANSFER_PER_MILLE {
        let n = day.desks.len();
        let j = (i + 1 + (day.roll() as usize) % (n - 1)) % n;
        day.desks[j].in_hand.fetch_add(1, Ordering::Relaxed);
        tried = Some(j);
        match routing
            .transfer_task(pb::TransferTaskRequest {
                task_id: task_id.into(),
                owner_agent_id: agent.id.clone(),
                recipient_agent_id: day.desks[j].agent.id.clone(),
                ..Default::default()
            })
            .await
        {
            Ok(_) => {
                bump(&c.transferred);
                owner = j;
            }
            // The recipient is at its max, away or not READY: the owner keeps the task.
            Err(e) if e.code() == tonic::Code::FailedPrecondition => bump(&c.transfers_refused),
            Err(e) => c.error("TransferTask", &e),
        }
    }
    let mut routing = day.desks[owner].agent.routing.clone();
    let mut change = async |state: pb::TaskState, request_id: String| {
        routing
            .change_task_state(pb::ChangeTaskStateRequest {
                disposition_code: String::new(),
                task_id: task_id.into(),
                state: state.into(),
                request_id,
            })
            .await
    };
    if let Err(e) = change(pb::TaskState::WrappingUp, String::new()).await {
        c.error("ChangeTaskState WRAPPING_UP", &e);
        return tried;
    }
    bump(&c.wrapped_up);
    // Half the tasks are closed by their agent; the wrap-up timer closes the others.
    if roll.is_multiple_of(2) {
        let request_id = if roll.is_multiple_of(3) {
            format!("close-{task_id}")
        } else {
            String::new()
        };
        match change(pb::TaskState::Closed, request_id).await {
            Ok(_) => bump(&c.closed_by_agent),
            Err(e) => c.error("ChangeTaskState CLOSED", &e),
        }
    }
    tried
}

/// Every `every`, an idle agent logs out, and logs back in and goes READY a second later.
async fn come_and_go(day: Arc<Day>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let n = day.desks.len() as u64;
        let idle = (0..10).map(|_| (day.roll() % n) as usize).find(|&i| {
            let desk = &day.desks[i];
            desk.in_hand.load(Ordering::Relaxed) == 0 && !desk.away.swap(true, Ordering::Relaxed)
        });
        let Some(i) = idle else { continue };
        let day = Arc::clone(&day);
        tokio::spawn(async move {
            let desk = &day.desks[i];
            let c = &day.counters;
            match center::log_out(&desk.agent).await {
                Ok(()) => bump(&c.logouts),
                Err(e) => c.error("ChangeAgentState LOGOUT", &e),
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
            match center::log_in_ready(&desk.agent).await {
                Ok(()) => bump(&c.logins),
                Err(e) => c.error("LoginAgent and READY", &e),
            }
            desk.away.store(false, Ordering::Relaxed);
        });
    }
}
