//! Failover of nodes sharing a PostgreSQL journal (issue 14, "What it must show" 2 to 6), each
//! test against a real PostgreSQL server and real node processes (`common::cluster`): a leader
//! killed under load, a leader frozen past its lease, a leader cut off from the database, a
//! request retried on another node after a failover, and a desktop and a watch moving to
//! another node. What was acknowledged is checked against the journal as PostgreSQL holds it.
//! Waits are bounded polls for a condition; nothing asserts on how long anything took.

mod common;

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::cluster::{
    Ack, CALL, Cluster, Effect, TaskView, WAIT, assert_acknowledged_in, assert_gapless,
    assert_one_owner, eventually, how_it_ended, queued_with, ringing_at, tasks_at,
};
use common::desktop::ConnectedDesktop;
use common::postgres::TcpProxy;
use common::routing_setup::RoutingSetup;
use common::{Channel, Clients, Who};
use switchboard::domain::routing::model::RequeueReason;
use switchboard::domain::{Actor, Event};
use switchboard::pb;
use switchboard::pb::connect_request::Request as Req;
use switchboard::pb::connect_response::Frame;
use switchboard::pb::core_service_client::CoreServiceClient;
use switchboard::pb::routing_service_client::RoutingServiceClient;
use tokio_stream::StreamExt;
use tonic::{Code, Status};

const PASSWORD: &str = "cluster-Pw-7";
const MRD: &str = "chat";

// ----- calls ------------------------------------------------------------------------------------

/// A call's answer, or its status; a call unanswered within `CALL` is DEADLINE_EXCEEDED.
async fn within<T>(
    call: impl Future<Output = Result<tonic::Response<T>, Status>>,
) -> Result<T, Status> {
    match tokio::time::timeout(CALL, call).await {
        Ok(answer) => answer.map(tonic::Response::into_inner),
        Err(_) => Err(Status::deadline_exceeded(
            "no answer within the test's limit",
        )),
    }
}

fn routing(channel: Channel) -> RoutingServiceClient<Channel> {
    RoutingServiceClient::new(channel)
}

fn new_task_request(request_id: &str) -> pb::NewTaskRequest {
    pb::NewTaskRequest {
        request_id: request_id.into(),
        mrd: MRD.into(),
        priority: 7,
        labels: vec!["failover".into()],
        ..Default::default()
    }
}

/// Submits tasks through `routing` until one is acknowledged; any refusal on the way must be
/// UNAVAILABLE (a hand-over) and is retried with a new request id.
async fn submit_until_acknowledged(
    routing: &mut RoutingServiceClient<Channel>,
    prefix: &str,
) -> (String, pb::NewTaskResponse) {
    let mut n = 0;
    eventually(
        &format!("a task submitted as {prefix}-* acknowledged"),
        async || {
            n += 1;
            let request_id = format!("{prefix}-{n}");
            match within(routing.new_task(new_task_request(&request_id))).await {
                Ok(answer) => Some((request_id, answer)),
                Err(status) => {
                    assert_eq!(status.code(), Code::Unavailable, "refused: {status:?}");
                    None
                }
            }
        },
    )
    .await
}

// ----- what the nodes say ---------------------------------------------------------------------

/// Waits until every live node tells the same story: `leader` says LEADER under `epoch` and
/// names itself, every other says FOLLOWER under `epoch` naming the leader, and all take
/// clients. Returns each live node's status.
async fn agreed(
    cluster: &Cluster,
    leader: usize,
    epoch: u64,
) -> BTreeMap<usize, pb::GetServerStatusResponse> {
    let address = cluster.address(leader);
    eventually("every node naming the same leader", async || {
        let mut statuses = BTreeMap::new();
        for i in cluster.live() {
            let status = cluster.try_status(i).await.ok()?;
            let role = if i == leader {
                pb::NodeRole::Leader
            } else {
                pb::NodeRole::Follower
            };
            let truthful = status.role() == role
                && status.lease_epoch == epoch
                && status.leader_address == address
                && status.accepting_clients
                && status.node_id == format!("node{i}");
            if !truthful {
                return None;
            }
            statuses.insert(i, status);
        }
        Some(statuses)
    })
    .await
}

// ----- a steady load of routing commands --------------------------------------------------------

/// Agents answering offers and closing their tasks, a sleeper who never answers (its offers
/// time out, and it makes itself READY again), and a channel submitting tasks, each sending
/// every call to the next node in turn that is not down, and keeping what was acknowledged.
struct Load {
    stop: Arc<AtomicBool>,
    down: Arc<Vec<AtomicBool>>,
    acks: Arc<Mutex<Vec<Ack>>>,
    refused: Arc<Mutex<Vec<Refusal>>>,
    workers: Vec<tokio::task::JoinHandle<()>>,
}

/// A call of the load that was refused: where it went, and what it heard.
#[derive(Clone)]
struct Refusal {
    node: usize,
    code: Code,
    message: String,
}

/// One caller of the load: its connections (one per node) and its acknowledgements.
struct Caller {
    actor: Actor,
    channels: Vec<Channel>,
    turn: usize,
    last: u64,
    load: LoadShared,
}

#[derive(Clone)]
struct LoadShared {
    stop: Arc<AtomicBool>,
    down: Arc<Vec<AtomicBool>>,
    acks: Arc<Mutex<Vec<Ack>>>,
    refused: Arc<Mutex<Vec<Refusal>>>,
}

impl Caller {
    /// The next node in turn that is not down, and a routing client to it.
    fn next(&mut self) -> (usize, RoutingServiceClient<Channel>) {
        let n = self.channels.len();
        for _ in 0..n {
            self.turn = (self.turn + 1) % n;
            if !self.load.down[self.turn].load(Ordering::SeqCst) {
                break;
            }
        }
        (self.turn, routing(self.channels[self.turn].clone()))
    }

    fn stopped(&self) -> bool {
        self.load.stop.load(Ordering::SeqCst)
    }

    /// Keeps an answer: acknowledged, with `effect`, at `revision`; or the refusal's code.
    fn keep<T>(
        &mut self,
        node: usize,
        answer: &Result<T, Status>,
        effect: Effect,
        revision: impl Fn(&T) -> u64,
    ) {
        match answer {
            Ok(answer) => {
                let revision = revision(answer);
                let ack = Ack {
                    actor: self.actor.clone(),
                    node,
                    effect,
                    revision,
                    after: self.last,
                };
                self.last = self.last.max(revision);
                self.load.acks.lock().unwrap().push(ack);
            }
            Err(status) => self.load.refused.lock().unwrap().push(Refusal {
                node,
                code: status.code(),
                message: status.message().to_owned(),
            }),
        }
    }
}

impl Load {
    async fn start(cluster: &Cluster, agents: &[&str], sleeper: &str) -> Load {
        let shared = LoadShared {
            stop: Arc::default(),
            down: Arc::new((0..cluster.len()).map(|_| AtomicBool::new(false)).collect()),
            acks: Arc::default(),
            refused: Arc::default(),
        };
        let caller = |actor: Actor, token: &str, turn: usize| Caller {
            actor,
            channels: (0..cluster.len())
                .map(|i| cluster.signed(i, token))
                .collect(),
            turn,
            last: 0,
            load: shared.clone(),
        };
        let mut workers = Vec::new();
        let admin = caller(Actor::Account("admin".into()), &cluster.admin_token(), 0);
        workers.push(tokio::spawn(submit(admin)));
        for (k, agent) in agents.iter().chain([&sleeper]).enumerate() {
            let token = cluster.sign_in(Who::Agent(agent), PASSWORD).await;
            let who = caller(Actor::Agent((*agent).to_owned()), &token, k);
            workers.push(tokio::spawn(work(
                who,
                (*agent).to_owned(),
                *agent != sleeper,
            )));
        }
        Load {
            stop: shared.stop,
            down: shared.down,
            acks: shared.acks,
            refused: shared.refused,
            workers,
        }
    }

    /// From now on, no call goes to node `i`.
    fn down(&self, i: usize) {
        self.down[i].store(true, Ordering::SeqCst);
    }

    fn acks(&self) -> Vec<Ack> {
        self.acks.lock().unwrap().clone()
    }

    /// Stops every caller and waits for them; returns what was acknowledged and what was
    /// refused.
    async fn stop(self) -> (Vec<Ack>, Vec<Refusal>) {
        self.stop.store(true, Ordering::SeqCst);
        for worker in self.workers {
            worker.await.expect("a load worker ends cleanly");
        }
        let acks = self.acks.lock().unwrap().clone();
        let refused = self.refused.lock().unwrap().clone();
        (acks, refused)
    }
}

const PACE: Duration = Duration::from_millis(20);

/// A channel submitting a task every few tens of milliseconds, each with a request id.
async fn submit(mut caller: Caller) {
    let mut n = 0;
    while !caller.stopped() {
        n += 1;
        let (node, mut routing) = caller.next();
        let answer = within(routing.new_task(new_task_request(&format!("load-{n}")))).await;
        let effect = Effect::Queued {
            task: answer
                .as_ref()
                .map(|a| a.task_id.clone())
                .unwrap_or_default(),
        };
        caller.keep(node, &answer, effect, |a| a.revision);
        tokio::time::sleep(PACE * 3).await;
    }
}

/// An agent at work: reads its state (from whichever node, possibly a little behind), then
/// accepts the offer ringing, closes its tasks, logs in when logged out, goes READY when
/// NOT_READY, and now and then takes a break (NOT_READY) or logs out. A sleeper (`answers`
/// false) only ever makes itself READY.
async fn work(mut caller: Caller, agent: String, answers: bool) {
    let mut round = 0u64;
    while !caller.stopped() {
        round += 1;
        tokio::time::sleep(PACE).await;
        let (_, mut routing) = caller.next();
        let request = pb::GetAgentStateRequest {
            agent_id: agent.clone(),
        };
        let Ok(Some(status)) = within(routing.get_agent_state(request))
            .await
            .map(|a| a.agent)
        else {
            continue;
        };
        let on_mrd = status
            .mrds
            .iter()
            .find(|m| m.mrd == MRD && m.state() != pb::AgentState::Logout)
            .cloned();
        let Some(on_mrd) = on_mrd else {
            let (node, mut routing) = caller.next();
            let request = pb::LoginAgentRequest {
                agent_id: agent.clone(),
                password: PASSWORD.into(),
                mrd: MRD.into(),
                ..Default::default()
            };
            let answer = within(routing.login_agent(request)).await;
            let effect = Effect::LoggedIn {
                agent: agent.clone(),
            };
            caller.keep(node, &answer, effect, |a| a.revision);
            continue;
        };
        let offer = status.pending_offer_task_id;
        let idle = offer.is_empty() && on_mrd.active_task_ids.is_empty();
        if answers && !offer.is_empty() {
            let (node, mut routing) = caller.next();
            let request = pb::AcceptTaskRequest {
                task_id: offer.clone(),
                agent_id: agent.clone(),
                ..Default::default()
            };
            let answer = within(routing.accept_task(request)).await;
            let effect = Effect::Accepted {
                task: offer,
                agent: agent.clone(),
            };
            caller.keep(node, &answer, effect, |a| a.revision);
        } else if answers && !on_mrd.active_task_ids.is_empty() {
            for task in on_mrd.active_task_ids {
                let (node, mut routing) = caller.next();
                let request = pb::ChangeTaskStateRequest {
                    disposition_code: String::new(),
                    task_id: task.clone(),
                    state: pb::TaskState::Closed.into(),
                    ..Default::default()
                };
                let answer = within(routing.change_task_state(request)).await;
                caller.keep(node, &answer, Effect::Closed { task }, |a| a.revision);
            }
        } else if on_mrd.state() == pb::AgentState::NotReady && offer.is_empty() {
            let answer = change_state(&mut caller, &agent, pb::AgentState::Ready).await;
            let effect = Effect::Ready {
                agent: agent.clone(),
            };
            caller.keep(answer.0, &answer.1, effect, |a| a.revision);
        } else if answers && round.is_multiple_of(23) && idle {
            let answer = change_state(&mut caller, &agent, pb::AgentState::Logout).await;
            let effect = Effect::LoggedOut {
                agent: agent.clone(),
            };
            caller.keep(answer.0, &answer.1, effect, |a| a.revision);
        } else if answers && round.is_multiple_of(9) && on_mrd.state() == pb::AgentState::Ready {
            let answer = change_state(&mut caller, &agent, pb::AgentState::NotReady).await;
            let effect = Effect::NotReady {
                agent: agent.clone(),
            };
            caller.keep(answer.0, &answer.1, effect, |a| a.revision);
        }
    }
}

async fn change_state(
    caller: &mut Caller,
    agent: &str,
    state: pb::AgentState,
) -> (usize, Result<pb::ChangeAgentStateResponse, Status>) {
    let (node, mut routing) = caller.next();
    let request = pb::ChangeAgentStateRequest {
        agent_id: agent.into(),
        state: state.into(),
        mrd: MRD.into(),
        ..Default::default()
    };
    (node, within(routing.change_agent_state(request)).await)
}

// ----- 2. a leader killed under load ------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_killed_under_load_loses_nothing_and_its_offers_move_on() {
    const AGENTS: [&str; 4] = ["ana", "ben", "cy", "dee"];
    const SLEEPER: &str = "zed";
    let mut cluster = Cluster::start(3, &[]).await;
    let (old, epoch) = cluster.leader().await;
    // Offers ring 2 s, so the test sees offers pending at the kill time out.
    RoutingSetup::chat()
        .offer_timeout(2)
        .agents(
            &[AGENTS[0], AGENTS[1], AGENTS[2], AGENTS[3], SLEEPER],
            PASSWORD,
        )
        .log_in(&cluster.raw_channel(old))
        .apply(&mut Clients::new(cluster.channel(old)))
        .await;

    let load = Load::start(&cluster, &AGENTS, SLEEPER).await;
    // Killed mid-load, while an offer rings on the sleeper (it never answers) with most of
    // its time still to run, so that it is still ringing when the leader dies.
    let mut on_leader = routing(cluster.channel(old));
    eventually(
        "load acknowledged, and an offer ringing on the sleeper",
        async || {
            if load.acks().len() < 40 {
                return None;
            }
            let request = pb::GetAgentStateRequest {
                agent_id: SLEEPER.into(),
            };
            let status = within(on_leader.get_agent_state(request))
                .await
                .ok()?
                .agent?;
            let request = pb::GetTaskStateRequest {
                task_id: status.pending_offer_task_id,
            };
            let task = within(on_leader.get_task_state(request)).await.ok()?.task?;
            (task.offered_agent_id == SLEEPER
                && deadline_ms(task.offer_deadline_time?) > now_ms() + 1000)
                .then_some(())
        },
    )
    .await;
    load.down(old);
    cluster.kill(old);

    let (new, new_epoch) = cluster.leader_after(epoch).await;
    assert_ne!(new, old);
    assert_eq!(new_epoch, epoch + 1, "one take-over, one epoch more");
    let took_over = cluster.took_over_at(new);
    // The load goes on through the nodes left, acknowledged by the new leader.
    eventually("load acknowledged by the new leader", async || {
        let after = load
            .acks()
            .iter()
            .filter(|a| a.revision > took_over)
            .count();
        (after >= 40).then_some(())
    })
    .await;
    let (acks, refused) = load.stop().await;
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    for ack in &acks {
        let kind = format!("{:?}", ack.effect);
        let kind = kind.split([' ', '{']).next().unwrap_or_default().to_owned();
        *kinds.entry(kind).or_default() += 1;
    }
    let mut refused_by_code: BTreeMap<String, usize> = BTreeMap::new();
    for refusal in &refused {
        *refused_by_code
            .entry(format!("{:?}", refusal.code))
            .or_default() += 1;
    }
    eprintln!(
        "{} calls acknowledged ({} after the take-over at revision {took_over}): {kinds:?}; \
         refused: {refused_by_code:?}",
        acks.len(),
        acks.iter().filter(|a| a.revision > took_over).count()
    );

    // What was refused was refused for a reason a client acts on: a hand-over (retry), a
    // read a little behind (the offer or task had moved on), or the test's own call limit.
    // A call in flight on the leader as it died may also end UNKNOWN: its connection broke
    // mid-call, and no one can tell its caller what became of it (nothing unacknowledged is
    // counted on). Calls through the nodes left must never end so.
    let acted_on = [
        Code::Unavailable,
        Code::FailedPrecondition,
        Code::NotFound,
        Code::DeadlineExceeded,
    ];
    for refusal in &refused {
        assert!(
            acted_on.contains(&refusal.code)
                || (refusal.code == Code::Unknown && refusal.node == old),
            "refused on node {} with {:?}, \"{}\" (node {old} was killed)",
            refusal.node,
            refusal.code,
            refusal.message
        );
    }

    // Offers ringing when the new leader took over time out (RONA) or are answered there.
    let journal = cluster.journal().await;
    let ringing = ringing_at(&journal, took_over);
    assert!(
        ringing.iter().any(|o| o.agent == SLEEPER),
        "the sleeper's offer rang at the take-over: {ringing:?}"
    );
    let journal = cluster
        .journal_until("every offer ringing at the take-over ended", |j| {
            ringing
                .iter()
                .all(|o| how_it_ended(j, o, took_over).is_some())
        })
        .await;
    for offer in &ringing {
        let end = how_it_ended(&journal, offer, took_over).expect("it ended");
        match &end.event {
            Event::TaskRequeued {
                reason: RequeueReason::Rona,
                agent_id,
                ..
            } => {
                assert_eq!(*agent_id, offer.agent);
                assert_eq!(end.actor, Actor::Engine, "the leader's timer, {end:?}");
                assert!(
                    end.time_ms >= offer.deadline,
                    "timed out before its deadline: {offer:?} {end:?}"
                );
            }
            Event::TaskAccepted { agent_id, .. } if offer.agent != SLEEPER => {
                assert_eq!(*agent_id, offer.agent, "{end:?}");
            }
            // Its agent logged out (acting on a read from before the offer).
            Event::TaskRequeued {
                reason: RequeueReason::AgentLogout,
                agent_id,
                ..
            } if offer.agent != SLEEPER => {
                assert_eq!(*agent_id, offer.agent, "{end:?}");
                assert_eq!(end.actor, Actor::Agent(offer.agent.clone()), "{end:?}");
            }
            _ => panic!("the offer {offer:?} ended by {end:?}"),
        }
    }

    assert_gapless(&journal);
    assert_one_owner(&journal);
    assert_acknowledged_in(&journal, &acks);
    for node in 0..cluster.len() {
        assert!(
            acks.iter().any(|a| a.node == node),
            "the load went through node{node} too"
        );
    }
    assert!(
        acks.iter()
            .any(|a| a.revision <= took_over && a.node == old),
        "the old leader acknowledged changes before it died"
    );
    agreed(&cluster, new, new_epoch).await;
    // The new leader and the follower left hold every task as the journal has it, at the
    // revision each answers at.
    for node in cluster.live() {
        let request = pb::ListTasksRequest {
            page_size: 1000,
            ..Default::default()
        };
        let page = within(routing(cluster.channel(node)).list_tasks(request))
            .await
            .expect("the tasks are listed");
        assert!(page.next_page_token.is_empty(), "one page holds them all");
        assert!(
            page.revision > took_over,
            "node{node} answers after the take-over"
        );
        let listed: BTreeMap<String, TaskView> = page
            .tasks
            .iter()
            .map(|t| {
                let named = |agent: &str| (!agent.is_empty()).then(|| agent.to_owned());
                let view = TaskView {
                    state: t.state().as_str_name(),
                    owner: named(&t.owner_agent_id),
                    offered: named(&t.offered_agent_id),
                };
                (t.task_id.clone(), view)
            })
            .collect();
        let journal = cluster.journal().await;
        assert_eq!(
            listed,
            tasks_at(&journal, page.revision),
            "node{node}'s tasks at revision {}",
            page.revision
        );
    }
}

// ----- 2b. a follower's reads decide nothing --------------------------------------------------------

/// Milliseconds since the Unix epoch, by the clock the nodes' engines use.
fn now_ms() -> u64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the clock is after 1970");
    u64::try_from(since.as_millis()).expect("a time in range")
}

/// A time on the wire in milliseconds since the Unix epoch.
fn deadline_ms(time: prost_types::Timestamp) -> u64 {
    u64::try_from(time.seconds).expect("a time after 1970") * 1000
        + u64::from(time.nanos.unsigned_abs()) / 1_000_000
}

/// A follower answers reads from the journal it folded and decides nothing itself: an offer
/// whose deadline has passed, while the leader has not yet timed it out (frozen here, under a
/// lease too long to be taken over), still rings on the follower, which stays at the journal's
/// revision and keeps answering; once the leader thaws, it times the offer out and the
/// follower folds that.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_read_past_an_offer_deadline_decides_nothing() {
    let mut cluster = Cluster::empty(&[])
        .await
        .with_lease(60_000, 400)
        .with_nodes(2)
        .await;
    let (leader, _) = cluster.leader().await;
    let follower = 1 - leader;
    RoutingSetup::chat()
        .offer_timeout(1)
        .agents(&["ana"], PASSWORD)
        .log_in(&cluster.raw_channel(leader))
        .apply(&mut Clients::new(cluster.channel(leader)))
        .await;
    let mut ana = routing(
        cluster
            .channel_as(leader, Who::Agent("ana"), PASSWORD)
            .await,
    );
    let ready = pb::ChangeAgentStateRequest {
        agent_id: "ana".into(),
        state: pb::AgentState::Ready.into(),
        mrd: MRD.into(),
        ..Default::default()
    };
    within(ana.change_agent_state(ready))
        .await
        .expect("ana is ready");
    let offered = within(routing(cluster.channel(leader)).new_task(new_task_request("t1")))
        .await
        .expect("the task is queued");
    let task = offered.task.clone().expect("the task's status");
    assert_eq!(task.offered_agent_id, "ana", "offered at once: {task:?}");
    let deadline_ms = deadline_ms(task.offer_deadline_time.expect("an offer deadline"));
    cluster
        .status_until(follower, "folding the offer", |s| {
            s.applied_revision >= offered.revision
        })
        .await;

    cluster.pause(leader);
    eventually("the offer's deadline to pass", async || {
        (now_ms() > deadline_ms + 100).then_some(())
    })
    .await;
    let mut on_follower = routing(cluster.channel(follower));
    for _ in 0..2 {
        let request = pb::GetAgentStateRequest {
            agent_id: "ana".into(),
        };
        let ana = within(on_follower.get_agent_state(request))
            .await
            .expect("the follower answers the read")
            .agent
            .expect("ana's status");
        assert_eq!(
            ana.pending_offer_task_id, offered.task_id,
            "the offer still rings there"
        );
    }
    let journal = cluster.journal().await;
    let status = cluster.status(follower).await;
    assert_eq!(
        status.applied_revision,
        journal.last().expect("events").revision,
        "the follower is at the journal's revision, no further"
    );

    cluster.resume(leader);
    let journal = cluster
        .journal_until("the leader timing the offer out", |j| {
            j.iter().any(|r| {
                matches!(&r.event, Event::TaskRequeued { task_id, reason: RequeueReason::Rona, .. }
                    if *task_id == offered.task_id)
            })
        })
        .await;
    let end = journal.last().expect("events").revision;
    cluster
        .status_until(follower, "folding the time-out", |s| {
            s.applied_revision >= end
        })
        .await;
    let request = pb::GetAgentStateRequest {
        agent_id: "ana".into(),
    };
    let ana = within(on_follower.get_agent_state(request))
        .await
        .expect("the follower answers")
        .agent
        .expect("ana's status");
    assert!(ana.pending_offer_task_id.is_empty(), "{ana:?}");
    assert_gapless(&journal);
}

// ----- 3. a leader frozen past its lease --------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_frozen_past_its_lease_is_fenced_and_steps_down() {
    let mut cluster = Cluster::start(3, &[]).await;
    let (old, epoch) = cluster.leader().await;
    RoutingSetup::chat()
        .apply(&mut Clients::new(cluster.channel(old)))
        .await;
    // A connection to the leader, open (and used) before it freezes.
    let mut stale = routing(cluster.channel(old));
    within(stale.new_task(new_task_request("before-the-freeze")))
        .await
        .expect("the leader takes the task");

    cluster.pause(old);
    // Sent while it is frozen: the request waits in its socket for it to thaw, and may reach
    // its engine before its keeper has looked at the lease again.
    let queued = tokio::spawn(async move {
        tokio::time::timeout(WAIT, stale.new_task(new_task_request("sent-while-frozen"))).await
    });
    let (new, new_epoch) = cluster.leader_after(epoch).await;
    assert_ne!(new, old);
    assert_eq!(new_epoch, epoch + 1, "one take-over, one epoch more");
    let (_, on_new) =
        submit_until_acknowledged(&mut routing(cluster.channel(new)), "on-the-new-leader").await;

    cluster.resume(old);
    let queued = queued
        .await
        .expect("the frozen call's task")
        .expect("the thawed node answers the call it had waiting");
    cluster
        .status_until(old, "following the new leader", |s| {
            s.role() == pb::NodeRole::Follower
                && s.lease_epoch == new_epoch
                && s.leader_address == cluster.address(new)
        })
        .await;
    // From here its writes go to the new leader, or are refused while it catches up.
    let (after_id, after) =
        submit_until_acknowledged(&mut routing(cluster.channel(old)), "after-the-thaw").await;

    let journal = cluster.journal().await;
    assert_gapless(&journal);
    match queued {
        // Acknowledged only as a forwarded call the new leader committed.
        Ok(answer) => {
            let answer = answer.into_inner();
            let queued = queued_with(&journal, "sent-while-frozen");
            assert_eq!(queued.len(), 1, "{queued:?}");
            assert!(queued[0].revision <= answer.revision);
            assert!(
                queued[0].revision > on_new.revision,
                "committed under the new epoch"
            );
        }
        Err(status) => {
            assert_eq!(status.code(), Code::Unavailable, "{status:?}");
            assert!(
                queued_with(&journal, "sent-while-frozen").is_empty(),
                "refused, yet in the journal"
            );
        }
    }
    let after_queued = queued_with(&journal, &after_id);
    assert_eq!(
        after_queued.len(),
        1,
        "acknowledged after the thaw: {after:?}"
    );
    assert!(after_queued[0].revision <= after.revision);
    agreed(&cluster, new, new_epoch).await;
}

// ----- 4. a leader cut off from the database ----------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_cut_off_from_the_database_steps_down_and_rejoins_as_a_follower() {
    let mut cluster = Cluster::empty(&[]).await;
    let proxy = TcpProxy::start(SocketAddr::from(([127, 0, 0, 1], cluster.pg().port())));
    // The node behind the proxy starts alone, so it leads.
    let cut = cluster
        .add_node(&proxy.database_url(&cluster.database().name))
        .await;
    let (leader, epoch) = cluster.leader().await;
    assert_eq!(leader, cut);
    cluster.await_admin().await;
    let url = cluster.database().url.clone();
    cluster.add_node(&url).await;
    cluster.add_node(&url).await;
    RoutingSetup::chat()
        .apply(&mut Clients::new(cluster.channel(cut)))
        .await;
    agreed(&cluster, cut, epoch).await;

    proxy.blackhole();
    // Writes keep coming to it while it is cut off: none may be acknowledged.
    let writing = Arc::new(AtomicBool::new(true));
    let writer = tokio::spawn({
        let writing = Arc::clone(&writing);
        let mut to_cut = routing(cluster.channel(cut));
        async move {
            let mut answers = Vec::new();
            let mut n = 0;
            while writing.load(Ordering::SeqCst) {
                n += 1;
                let request = new_task_request(&format!("to-the-cut-off-node-{n}"));
                answers.push(within(to_cut.new_task(request)).await);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            answers
        }
    });
    cluster
        .status_until(cut, "stepping down", |s| s.role() != pb::NodeRole::Leader)
        .await;
    let (new, new_epoch) = cluster.leader_after(epoch).await;
    assert_ne!(new, cut);
    assert_eq!(new_epoch, epoch + 1, "one take-over, one epoch more");
    let (_, written) =
        submit_until_acknowledged(&mut routing(cluster.channel(new)), "on-the-new-leader").await;
    writing.store(false, Ordering::SeqCst);
    let answers = writer.await.expect("the writer ends");
    assert!(!answers.is_empty());
    for answer in &answers {
        match answer {
            Ok(acknowledged) => {
                panic!("a node cut off from the journal acknowledged {acknowledged:?}")
            }
            Err(status) => assert!(
                matches!(status.code(), Code::Unavailable | Code::DeadlineExceeded),
                "{status:?}"
            ),
        }
    }

    proxy.restore();
    cluster
        .status_until(cut, "following the new leader, caught up", |s| {
            s.role() == pb::NodeRole::Follower
                && s.lease_epoch == new_epoch
                && s.leader_address == cluster.address(new)
                && s.applied_revision >= written.revision
        })
        .await;
    // It reads what the new leader wrote, and forwards writes to it again.
    let read = pb::GetTaskStateRequest {
        task_id: written.task_id.clone(),
    };
    within(routing(cluster.channel(cut)).get_task_state(read))
        .await
        .expect("the rejoined node knows the task the new leader took");
    let (through_id, through) = submit_until_acknowledged(
        &mut routing(cluster.channel(cut)),
        "through-the-rejoined-node",
    )
    .await;

    let journal = cluster.journal().await;
    assert_gapless(&journal);
    let forwarded = queued_with(&journal, &through_id);
    assert_eq!(forwarded.len(), 1);
    assert!(forwarded[0].revision <= through.revision);
    agreed(&cluster, new, new_epoch).await;
}

// ----- 5. a request retried on another node after the failover ----------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_retried_on_another_node_after_a_failover_gets_its_first_answer() {
    let mut cluster = Cluster::start(3, &[]).await;
    let (old, epoch) = cluster.leader().await;
    RoutingSetup::chat()
        .apply(&mut Clients::new(cluster.channel(old)))
        .await;
    let task = new_task_request("retried-after-the-failover");
    let client = pb::RegisterClientRequest {
        client_name: "channel server".into(),
        request_id: "registered-before-the-failover".into(),
    };
    let first_task = within(routing(cluster.channel(old)).new_task(task.clone()))
        .await
        .expect("the leader takes the task");
    let first_client =
        within(CoreServiceClient::new(cluster.channel(old)).register_client(client.clone()))
            .await
            .expect("the leader registers the client");

    cluster.kill(old);
    // The same calls, by the same principal, to a node that did not answer them: retried
    // (through the hand-over) until answered.
    let other = cluster.live()[0];
    let mut routing_other = routing(cluster.channel(other));
    let mut core_other = CoreServiceClient::new(cluster.channel(other));
    let again_task = eventually("the retried task answered", async || {
        match within(routing_other.new_task(task.clone())).await {
            Ok(answer) => Some(answer),
            Err(status) => {
                assert_eq!(status.code(), Code::Unavailable, "{status:?}");
                None
            }
        }
    })
    .await;
    let again_client = within(core_other.register_client(client.clone()))
        .await
        .expect("the retried registration is answered");
    assert_eq!(again_task, first_task, "the first answer, whole");
    assert_eq!(again_client, first_client, "the first answer, whole");
    let (_, new_epoch) = cluster.leader_after(epoch).await;
    assert_eq!(new_epoch, epoch + 1);

    // Nothing was done twice; and the same id with another request is refused.
    let journal = cluster.journal().await;
    assert_gapless(&journal);
    assert_eq!(queued_with(&journal, "retried-after-the-failover").len(), 1);
    let registered = journal
        .iter()
        .filter(|r| matches!(&r.event, Event::ClientRegistered { client_id, .. } if client_id.to_string() == first_client.client_id))
        .count();
    assert_eq!(registered, 1);
    let changed = pb::NewTaskRequest {
        priority: 2,
        ..task
    };
    let refused = within(routing_other.new_task(changed)).await;
    common::assert_status(refused, Code::AlreadyExists, "retried-after-the-failover");
}

// ----- 6. a desktop and a watch move to another node --------------------------------------------

/// Reads a routing watch into `seen` until `until` matches an event, or the stream breaks
/// (`None`: until it breaks). Returns whether it broke.
async fn read_watch(
    watch: &mut tonic::Streaming<pb::WatchRoutingEventsResponse>,
    seen: &mut Vec<pb::RoutingEvent>,
    last: &mut u64,
    until: Option<&dyn Fn(&pb::RoutingEvent) -> bool>,
) -> bool {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let frame = match tokio::time::timeout_at(deadline, watch.next()).await {
            Ok(Some(Ok(frame))) => frame,
            Ok(Some(Err(_)) | None) => return true,
            Err(_) => panic!("the watch never showed what was awaited; it saw {seen:?}"),
        };
        match frame.frame {
            Some(pb::watch_routing_events_response::Frame::Event(event)) => {
                *last = (*last).max(event.revision);
                let done = until.is_some_and(|until| until(&event));
                seen.push(event);
                if done {
                    return false;
                }
            }
            Some(pb::watch_routing_events_response::Frame::Progress(progress)) => {
                *last = (*last).max(progress.revision);
            }
            None => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_desktop_and_a_watch_resume_on_another_node_after_the_leader_dies() {
    let mut cluster = Cluster::start(3, &[]).await;
    let (old, epoch) = cluster.leader().await;
    // Offers ring an hour: only an accept can end this one.
    RoutingSetup::chat()
        .offer_timeout(3600)
        .agents(&["ana"], PASSWORD)
        .apply(&mut Clients::new(cluster.channel(old)))
        .await;
    let mut watch = within(routing(cluster.channel(old)).watch_routing_events(
        pb::WatchRoutingEventsRequest {
            start_revision: 1,
            ..Default::default()
        },
    ))
    .await
    .expect("the watch opens");

    // Ana's desktop, on the leader, logged in and ready, is shown an offer.
    let token = cluster.sign_in(Who::Agent("ana"), PASSWORD).await;
    let mut desktop = ConnectedDesktop::open_as(cluster.addr(old), &token, None).await;
    let resource_id = desktop.sign_in("ana", PASSWORD).await;
    desktop.invoke(&resource_id, "session.login").await;
    desktop.invoke(&resource_id, "routing.ready").await;
    let offered = within(routing(cluster.channel(old)).new_task(new_task_request("offered")))
        .await
        .expect("the task is queued");
    let shown = desktop
        .routing_event("the offer", |e| {
            matches!(e, pb::routing_event::Event::TaskAgentSelected(s) if s.task_id == offered.task_id)
        })
        .await;
    let (mut seen, mut last) = (Vec::new(), 0);
    let offer_on_watch = |e: &pb::RoutingEvent| e.revision >= shown.revision;
    let broke = read_watch(&mut watch, &mut seen, &mut last, Some(&offer_on_watch)).await;
    assert!(!broke, "the watch shows the offer before the leader dies");
    let client_id = desktop.client_id().to_owned();

    cluster.kill(old);
    assert!(
        read_watch(&mut watch, &mut seen, &mut last, None).await,
        "the watch broke with its node"
    );
    let (new, new_epoch) = cluster.leader_after(epoch).await;
    assert_eq!(new_epoch, epoch + 1);
    let follower = cluster
        .live()
        .into_iter()
        .find(|&i| i != new)
        .expect("a follower");

    // The desktop comes back through the follower, as the same client, and accepts the offer
    // it was shown.
    let mut back = eventually("the desktop resumed through the follower", async || {
        let open = ConnectedDesktop::try_open_as(cluster.addr(follower), &token, Some(&client_id));
        match tokio::time::timeout(CALL, open).await {
            Ok(Ok(desktop)) => Some(desktop),
            Ok(Err(status)) => {
                eprintln!("resuming: {status:?}");
                None
            }
            Err(_) => {
                eprintln!("resuming: no answer in time");
                None
            }
        }
    })
    .await;
    assert!(
        back.greeting.resumed,
        "the client was kept for its grace period"
    );
    assert_eq!(back.client_id(), client_id);
    let accept = Req::AcceptTask(pb::AcceptTaskRequest {
        task_id: offered.task_id.clone(),
        agent_id: "ana".into(),
        ..Default::default()
    });
    let Frame::AcceptTask(accepted) = back.call(accept).await else {
        panic!("AcceptTask answers with its own frame");
    };

    // The watch, reopened on the follower from the revision after the last it saw, sees
    // every routing event after it, once, up to the accept.
    let mut watch = within(routing(cluster.channel(follower)).watch_routing_events(
        pb::WatchRoutingEventsRequest {
            start_revision: last + 1,
            ..Default::default()
        },
    ))
    .await
    .expect("the watch reopens");
    let accepted_on_watch = |e: &pb::RoutingEvent| {
        matches!(&e.event, Some(pb::routing_event::Event::TaskStateChanged(c))
            if c.task_id == offered.task_id && c.state() == pb::TaskState::Active)
    };
    let broke = read_watch(&mut watch, &mut seen, &mut last, Some(&accepted_on_watch)).await;
    assert!(!broke, "the reopened watch stays open");
    let journal = cluster.journal().await;
    assert_gapless(&journal);
    let expected: Vec<pb::RoutingEvent> = journal
        .iter()
        .take_while(|r| r.revision <= last)
        .filter_map(pb::RoutingEvent::from_record)
        .collect();
    assert_eq!(seen, expected, "every routing event, once, in order");
    let accepted_by_ana = journal.iter().any(|r| {
        r.revision <= accepted.revision
            && r.actor == Actor::Agent("ana".into())
            && matches!(&r.event, Event::TaskAccepted { task_id, agent_id, .. }
                if *task_id == offered.task_id && agent_id == "ana")
    });
    assert!(accepted_by_ana, "the accept is journaled");

    // Every node tells the truth: the resumed desktop is on the follower; one more, opened
    // on the leader, is the leader's.
    let admin = ConnectedDesktop::open_as(cluster.addr(new), &cluster.admin_token(), None).await;
    let statuses = agreed(&cluster, new, new_epoch).await;
    assert_eq!(statuses[&follower].client_count, 1, "{statuses:?}");
    assert_eq!(statuses[&new].client_count, 1, "{statuses:?}");
    admin.close().await;
    back.close().await;
}
