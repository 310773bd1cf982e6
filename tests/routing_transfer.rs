//! Preferred agents, transfers to a queue and offered transfers, and the cross-MRD rules
//! (`interruptible`, `blocks`), on the engine's state with a clock the test moves.

mod common;

use common::replay::ReplayCheck;
use common::world::{World, offer_of, offers, spec};
use switchboard::domain::commands::{self as cmd, Command};
use switchboard::domain::routing::config::{LogoutAction, MrdConfig, RonaAction};
use switchboard::domain::routing::model::{
    AgentState, RequestedAgentState as Req, RequeueReason, Selection, TaskSpec, TaskState,
};
use switchboard::domain::{Actor, DomainError, Event, Principal, Role};

fn mrd(name: &str, max_tasks: u32, interruptible: bool, blocks: &[&str]) -> MrdConfig {
    MrdConfig {
        name: name.into(),
        max_tasks,
        interruptible,
        offer_timeout_ms: 20_000,
        wrap_up_timeout_ms: 0,
        rona_action: RonaAction::NotReady,
        logout_action: LogoutAction::Close,
        blocks: blocks.iter().map(|b| (*b).into()).collect(),
        classifiers: Vec::new(),
        unclassified_queue: String::new(),
        unclassified_priority: 0,
    }
}

fn selection(events: &[Event], task: &str) -> Selection {
    events
        .iter()
        .find_map(|e| match e {
            Event::TaskAgentSelected {
                task_id, selection, ..
            } if task_id == task => Some(selection.clone()),
            _ => None,
        })
        .expect("the task was offered")
}

fn preferring(task_id: &str, agents: &[&str], timeout_ms: u64) -> TaskSpec {
    let mut s = spec(task_id, "chat", "", 5);
    s.preferred_agents = agents.iter().map(|a| (*a).into()).collect();
    s.preferred_timeout_ms = timeout_ms;
    s
}

fn transfer(task: &str, owner: &str, to: cmd::TransferTo) -> cmd::TransferTask {
    cmd::TransferTask {
        task_id: task.into(),
        owner_agent_id: owner.into(),
        to,
    }
}

fn to_agent(agent: &str, consult: bool) -> cmd::TransferTo {
    cmd::TransferTo::Agent {
        agent_id: agent.into(),
        consult,
    }
}

fn to_queue(queue: &str, keep_arrival: bool) -> cmd::TransferTo {
    cmd::TransferTo::Queue {
        queue: queue.into(),
        keep_arrival,
    }
}

#[track_caller]
fn refused(result: Result<impl std::fmt::Debug, DomainError>, needle: &str) {
    match result {
        Err(DomainError::FailedPrecondition(m)) => assert!(m.contains(needle), "{m}"),
        other => panic!("expected FAILED_PRECONDITION with {needle:?}, got {other:?}"),
    }
}

#[track_caller]
fn invalid(result: Result<impl std::fmt::Debug, DomainError>, field: &str, needle: &str) {
    match result {
        Err(DomainError::InvalidArgument { field: f, reason }) => {
            assert_eq!(f, field);
            assert!(reason.contains(needle), "{reason}");
        }
        other => panic!("expected INVALID_ARGUMENT on {field}, got {other:?}"),
    }
}

/// A world with MRD `chat` (max 2) and agents `longest` (ready first), `p1` and `p2`.
fn chat_world() -> World {
    let mut w = World::new();
    w.mrd_with(mrd("chat", 2, false, &[]));
    for a in ["longest", "p1", "p2"] {
        w.agent(a, &[]);
        w.login_ready(a, "chat");
        w.now += 1_000;
    }
    w
}

// ----- point 4: preferred agents ---------------------------------------------------------------

#[test]
fn preferred_agents_are_tried_in_order_before_the_steps() {
    let mut w = chat_world();
    let events = w.task_spec(preferring("t1", &["p2", "p1"], 0));
    assert_eq!(offer_of(&events, "t1").as_deref(), Some("p2"));
    assert_eq!(selection(&events, "t1"), Selection::Preferred { index: 0 });
    // p2 rings: the next preferred agent is taken.
    let events = w.task_spec(preferring("t2", &["p2", "p1"], 0));
    assert_eq!(offer_of(&events, "t2").as_deref(), Some("p1"));
    assert_eq!(selection(&events, "t2"), Selection::Preferred { index: 1 });
    // Neither is free and there is no window: the queue's steps decide at once.
    let events = w.task_spec(preferring("t3", &["p2", "p1"], 0));
    assert_eq!(offer_of(&events, "t3").as_deref(), Some("longest"));
    assert_eq!(selection(&events, "t3"), Selection::Step { index: 0 });
}

#[test]
fn the_sticky_agent_comes_first_among_the_preferred() {
    let mut w = chat_world();
    let mut s = preferring("t1", &["p1"], 0);
    s.last_agent_id = "p2".into();
    let events = w.task_spec(s);
    assert_eq!(offer_of(&events, "t1").as_deref(), Some("p2"));
    assert_eq!(selection(&events, "t1"), Selection::Sticky);
}

/// t1 waits in `sales` (steps of 5 s) for `p1`, not ready, for 10 s.
fn window_world() -> World {
    let mut w = chat_world();
    w.queue("chat", "sales", &[("TRUE", 5_000), ("TRUE", 0)], 0);
    w.set_state("p1", Req::NotReady, "chat").unwrap();
    let mut s = preferring("t1", &["p1"], 10_000);
    s.queue = "sales".into();
    assert!(offers(&w.task_spec(s)).is_empty(), "others wait");
    w
}

#[test]
fn only_preferred_agents_while_the_window_is_open() {
    let mut w = window_world();
    let task = w.get_task("t1");
    assert_eq!(task.preferred_deadline, Some(w.now + 10_000));
    // The queue's step timeouts start after the window: step 0 until 15 s.
    assert_eq!(task.step_deadline, Some(w.now + 15_000));
    // When the window ends the queue's steps apply, in that same command.
    assert!(offers(&w.advance(9_999)).is_empty());
    let events = w.advance(1);
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::TaskPreferenceEnded { task_id, .. } if task_id == "t1"))
    );
    assert_eq!(offer_of(&events, "t1").as_deref(), Some("longest"));
    assert_eq!(selection(&events, "t1"), Selection::Step { index: 0 });
    ReplayCheck::default().check(&w, "after the window");
}

#[test]
fn a_preferred_agent_freed_within_the_window_is_offered_the_task() {
    let mut w = window_world();
    w.advance(4_000);
    let events = w.set_state("p1", Req::Ready, "chat").unwrap();
    assert_eq!(offer_of(&events, "t1").as_deref(), Some("p1"));
    assert_eq!(selection(&events, "t1"), Selection::Preferred { index: 0 });
    ReplayCheck::default().check(&w, "within the window");
}

#[test]
fn the_last_agent_alone_can_have_a_window() {
    let mut w = chat_world();
    w.set_state("p1", Req::NotReady, "chat").unwrap();
    let mut s = spec("t1", "chat", "", 5);
    s.last_agent_id = "p1".into();
    s.preferred_timeout_ms = 5_000;
    assert!(offers(&w.task_spec(s)).is_empty());
    let events = w.set_state("p1", Req::Ready, "chat").unwrap();
    assert_eq!(offer_of(&events, "t1").as_deref(), Some("p1"));
    assert_eq!(selection(&events, "t1"), Selection::Sticky);
}

#[test]
fn a_window_that_ends_while_offered_lets_the_steps_apply_after_a_rejection() {
    let mut w = chat_world();
    let events = w.task_spec(preferring("t1", &["p1"], 5_000));
    assert_eq!(offer_of(&events, "t1").as_deref(), Some("p1"));
    w.advance(6_000);
    let events = w.ok(cmd::RejectTask {
        task_id: "t1".into(),
        agent_id: "p1".into(),
    });
    assert_eq!(offer_of(&events, "t1").as_deref(), Some("longest"));
}

#[test]
fn preferred_agents_are_bounded() {
    let mut w = chat_world();
    let many: Vec<String> = (0..11).map(|i| format!("a{i}")).collect();
    let refs: Vec<&str> = many.iter().map(String::as_str).collect();
    invalid(
        w.run(cmd::NewTask(preferring("t1", &refs, 0))),
        "preferred_agent_ids",
        "at most 10",
    );
    invalid(
        w.run(cmd::NewTask(preferring("t1", &["p1", "p1"], 0))),
        "preferred_agent_ids",
        "entry 1: 'p1' is named twice",
    );
    invalid(
        w.run(cmd::NewTask(preferring("t1", &[], 5_000))),
        "preferred_timeout_seconds",
        "needs preferred_agent_ids or last_agent_id",
    );
    invalid(
        w.run(cmd::NewTask(preferring("t1", &["p1"], 3_600_001))),
        "preferred_timeout_seconds",
        "must be 0 to 3600 seconds",
    );
}

// ----- point 5: transfers ----------------------------------------------------------------------

/// `owner` holds t1 (queue default) on `chat`; `seller` is the only agent of queue `sales`.
fn owned_task() -> World {
    let mut w = World::new();
    w.mrd_with(mrd("chat", 2, false, &[]));
    w.queue("chat", "sales", &[("sales >= 1", 0)], 0);
    w.agent("owner", &[]);
    w.agent("seller", &[("sales", 5)]);
    w.login_ready("owner", "chat");
    w.task("t1", "chat", "", 5);
    w.accept("t1", "owner");
    w.now += 1_000;
    w
}

#[test]
fn a_transfer_to_a_queue_requeues_under_its_steps_and_releases_the_sender() {
    let mut w = owned_task();
    let events = w.ok(transfer("t1", "owner", to_queue("sales", false)));
    assert!(events.iter().any(|e| matches!(
        e,
        Event::TaskTransferredToQueue { queue, agent_id, keep_arrival: false, .. }
            if queue == "sales" && agent_id == "owner"
    )));
    let task = w.get_task("t1");
    assert_eq!(
        (task.state, task.spec.queue.as_str()),
        (TaskState::Queued, "sales")
    );
    assert_eq!(task.owner, None);
    assert!(task.declined_by.contains("owner"), "not offered back");
    assert_eq!(w.agent_state("owner", "chat"), AgentState::Ready);
    // The queue's agent takes it when it can.
    let events = w.login_ready("seller", "chat");
    assert_eq!(offer_of(&events, "t1").as_deref(), Some("seller"));
    ReplayCheck::default().check(&w, "after a transfer to a queue");
}

#[test]
fn keep_arrival_keeps_the_place_in_line() {
    for keep in [true, false] {
        let mut w = owned_task();
        w.task("later", "chat", "sales", 5);
        w.now += 1_000;
        w.ok(transfer("t1", "owner", to_queue("sales", keep)));
        let task = w.get_task("t1");
        let created = task.created_at;
        assert_eq!(task.queued_at == created, keep);
        let events = w.login_ready("seller", "chat");
        let first = offers(&events)[0].0.clone();
        assert_eq!(first == "t1", keep, "keep_arrival {keep}: {first} first");
    }
}

#[test]
fn an_offered_transfer_rings_the_recipient_while_the_owner_keeps_the_task() {
    let mut w = owned_task();
    w.login_ready("seller", "chat");
    let events = w.ok(transfer("t1", "owner", to_agent("seller", true)));
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::TaskTransferOffered { .. }))
    );
    let task = w.get_task("t1");
    assert_eq!(task.state, TaskState::Active);
    assert_eq!(task.owner.as_deref(), Some("owner"));
    assert_eq!(
        task.offer.as_ref().map(|o| o.0.as_str()),
        Some("seller"),
        "shown as offered"
    );
    assert_eq!(w.agent_state("seller", "chat"), AgentState::Reserved);
    assert_eq!(w.agent_state("owner", "chat"), AgentState::Active);
    // One offer per agent: the recipient is offered nothing else meanwhile.
    assert!(offers(&w.task("t2", "chat", "sales", 5)).is_empty());
    // A second transfer waits for the answer.
    refused(
        w.run(transfer("t1", "owner", to_queue("sales", false))),
        "already offered to agent 'seller'",
    );

    let events = w.accept("t1", "seller");
    assert!(events.iter().any(|e| matches!(
        e,
        Event::TaskAgentTransferred { recipient_agent_id, consult: true, .. }
            if recipient_agent_id == "seller"
    )));
    let task = w.get_task("t1");
    assert_eq!(task.owner.as_deref(), Some("seller"));
    assert!(task.offer.is_none());
    assert_eq!(w.agent_state("owner", "chat"), AgentState::Ready);
    ReplayCheck::default().check(&w, "after an accepted transfer");
}

#[test]
fn a_rejected_or_unanswered_transfer_falls_back_to_the_sender() {
    for answer in ["reject", "timeout", "logout", "wrap-up"] {
        let mut w = owned_task();
        w.login_ready("seller", "chat");
        w.ok(transfer("t1", "owner", to_agent("seller", true)));
        let events = match answer {
            "reject" => w.ok(cmd::RejectTask {
                task_id: "t1".into(),
                agent_id: "seller".into(),
            }),
            "timeout" => w.advance(20_000),
            "logout" => w.set_state("seller", Req::Logout, "chat").unwrap(),
            _ => w.task_state("t1", TaskState::WrappingUp).unwrap(),
        };
        let reason = events.iter().find_map(|e| match e {
            Event::TaskTransferDeclined { reason, .. } => Some(*reason),
            _ => None,
        });
        let expected = match answer {
            "reject" => Some(RequeueReason::Rejected),
            "timeout" => Some(RequeueReason::Rona),
            "logout" => Some(RequeueReason::AgentLogout),
            _ => None,
        };
        assert_eq!(reason, expected, "{answer}");
        let task = w.get_task("t1");
        assert_eq!(task.owner.as_deref(), Some("owner"), "{answer}");
        assert!(task.offer.is_none(), "{answer}");
        assert_eq!(w.state.routing().pending_offer("seller"), None, "{answer}");
        if answer == "timeout" {
            // Not RONA's penalty: a colleague asked, not routing.
            assert_eq!(w.agent_state("seller", "chat"), AgentState::Ready);
        }
        ReplayCheck::default().check(&w, answer);
    }
}

#[test]
fn the_owner_logging_out_requeues_the_task_and_frees_the_recipient() {
    let mut w = World::new();
    w.mrd_with(MrdConfig {
        logout_action: LogoutAction::Requeue,
        ..mrd("chat", 2, false, &[])
    });
    w.agent("owner", &[]);
    w.agent("seller", &[]);
    w.login_ready("owner", "chat");
    w.task("t1", "chat", "", 5);
    w.accept("t1", "owner");
    w.login_ready("seller", "chat");
    w.ok(transfer("t1", "owner", to_agent("seller", true)));
    // The task goes back to its queue; the recipient, free again, is offered it there.
    let events = w.set_state("owner", Req::Logout, "chat").unwrap();
    assert_eq!(offer_of(&events, "t1").as_deref(), Some("seller"));
    let task = w.get_task("t1");
    assert_eq!(task.state, TaskState::Offered);
    assert_eq!(
        w.state.routing().pending_offer("seller").as_deref(),
        Some("t1")
    );
    ReplayCheck::default().check(&w, "after the owner's logout");
}

#[test]
fn only_the_owner_transfers() {
    let mut w = owned_task();
    w.login_ready("seller", "chat");
    refused(
        w.run(transfer("t1", "seller", to_queue("sales", false))),
        "agent 'seller' does not own task 't1'",
    );
    refused(
        w.run(transfer("t1", "seller", to_agent("owner", true))),
        "does not own",
    );
    match w.run(transfer("t1", "owner", to_queue("nowhere", false))) {
        Err(DomainError::NotFound { .. }) => {}
        other => panic!("expected NOT_FOUND, got {other:?}"),
    }
    w.task_state("t1", TaskState::Paused).unwrap();
    refused(
        w.run(transfer("t1", "owner", to_queue("sales", false))),
        "is TASK_STATE_PAUSED, not TASK_STATE_ACTIVE",
    );
}

// ----- point 6: cross-MRD rules ----------------------------------------------------------------

/// `ana` is ready on `voice` and `chat`, configured as given.
fn two_mrds(voice: MrdConfig, chat: MrdConfig) -> World {
    let mut w = World::new();
    w.mrd_with(voice);
    w.mrd_with(chat);
    w.agent("ana", &[]);
    w.login_ready("ana", "voice");
    w.login_ready("ana", "chat");
    w
}

#[test]
fn a_non_interruptible_mrd_keeps_others_closed_until_its_task_ends() {
    let mut w = two_mrds(mrd("voice", 1, false, &[]), mrd("chat", 3, true, &[]));
    w.task("call", "voice", "", 5);
    w.accept("call", "ana");
    assert!(
        offers(&w.task("c1", "chat", "", 5)).is_empty(),
        "no chat on a call"
    );
    assert_eq!(w.state.routing().blocking_mrd("ana", "chat"), Some("voice"));
    // The call ends: backfill in the same command.
    let events = w.task_state("call", TaskState::Closed).unwrap();
    assert_eq!(offer_of(&events, "c1").as_deref(), Some("ana"));
}

#[test]
fn an_interruptible_mrd_lets_others_offer() {
    let mut w = two_mrds(mrd("voice", 1, false, &[]), mrd("chat", 3, true, &[]));
    w.task("c1", "chat", "", 5);
    w.accept("c1", "ana");
    assert_eq!(
        offer_of(&w.task("call", "voice", "", 5), "call").as_deref(),
        Some("ana")
    );
}

#[test]
fn blocks_closes_the_named_mrds_even_when_interruptible() {
    let mut w = World::new();
    w.mrd_with(mrd("voice", 1, true, &["chat"]));
    w.mrd_with(mrd("chat", 3, true, &[]));
    w.mrd_with(mrd("email", 3, true, &[]));
    w.agent("ana", &[]);
    for m in ["voice", "chat", "email"] {
        w.login_ready("ana", m);
    }
    w.task("call", "voice", "", 5);
    // While the call rings, and while it is worked, chat stays closed; email does not.
    assert_eq!(w.state.routing().blocking_mrd("ana", "chat"), Some("voice"));
    w.accept("call", "ana");
    assert!(offers(&w.task("c1", "chat", "", 5)).is_empty());
    assert_eq!(
        offer_of(&w.task("e1", "email", "", 5), "e1").as_deref(),
        Some("ana")
    );
    w.accept("e1", "ana");
    // A transfer to a blocked agent says why it is refused.
    w.agent("ben", &[]);
    w.login_ready("ben", "chat");
    w.accept("c1", "ben");
    refused(
        w.run(transfer("c1", "ben", to_agent("ana", false))),
        "agent 'ana' is working on mrd 'voice', which keeps it from mrd 'chat'",
    );
    let events = w.task_state("call", TaskState::Closed).unwrap();
    assert_eq!(w.state.routing().blocking_mrd("ana", "chat"), None);
    assert!(offers(&events).is_empty(), "nothing waits on chat");
    ReplayCheck::default().check(&w, "after blocking");
}

#[test]
fn blocks_are_checked() {
    let mut w = World::new();
    invalid(
        w.run(cmd::UpsertMrd(mrd("voice", 1, false, &["voice"]))),
        "mrd.blocks",
        "entry 0: an MRD cannot block itself",
    );
    invalid(
        w.run(cmd::UpsertMrd(mrd("voice", 1, false, &["chat", "chat"]))),
        "mrd.blocks",
        "entry 1: 'chat' is named twice",
    );
    invalid(
        w.run(cmd::UpsertMrd(mrd("voice", 1, false, &["bad name"]))),
        "mrd.blocks",
        "entry 0: character ' '",
    );
}

// ----- recovery: what is pending survives a restart --------------------------------------------

/// The live world and the same world as a restart rebuilds it, once from the journal and once
/// from a snapshot read back as the journal stores it. Both rebuilds are checked against the
/// live state first; the tests then drive all three alike.
fn with_restarts(w: World) -> Vec<World> {
    let mut check = ReplayCheck::default();
    check.check(&w, "before the restart");
    check.check(&w, "the snapshot taken at the restart");
    let mut replayed = World::new();
    for event in &w.events {
        replayed.state.apply(event);
    }
    let body = serde_json::to_string(&w.state.snapshot()).expect("the snapshot serialises");
    let mut restored = World::new();
    restored
        .state
        .restore(serde_json::from_str(&body).expect("the snapshot reads back"));
    let rebuilt = [replayed, restored].map(|mut copy| {
        copy.now = w.now;
        copy.events = w.events.clone();
        copy.state.finish_replay(w.now);
        copy
    });
    let [replayed, restored] = rebuilt;
    vec![w, replayed, restored]
}

const WORLDS: [&str; 3] = ["live", "replayed", "restored"];

#[test]
fn a_preferred_window_survives_a_restart() {
    // The window runs out: the steps apply then, not before.
    for (name, mut w) in WORLDS.iter().zip(with_restarts(window_world())) {
        let task = w.get_task("t1");
        assert_eq!(task.preferred_deadline, Some(w.now + 10_000), "{name}");
        assert!(offers(&w.advance(9_999)).is_empty(), "{name}");
        let events = w.advance(1);
        assert_eq!(
            offer_of(&events, "t1").as_deref(),
            Some("longest"),
            "{name}"
        );
        assert_eq!(
            selection(&events, "t1"),
            Selection::Step { index: 0 },
            "{name}"
        );
    }
    // The preferred agent comes back within it.
    for (name, mut w) in WORLDS.iter().zip(with_restarts(window_world())) {
        let events = w.set_state("p1", Req::Ready, "chat").unwrap();
        assert_eq!(offer_of(&events, "t1").as_deref(), Some("p1"), "{name}");
        assert_eq!(
            selection(&events, "t1"),
            Selection::Preferred { index: 0 },
            "{name}"
        );
    }
}

#[test]
fn an_offered_transfer_survives_a_restart() {
    for answer in ["accept", "timeout"] {
        let mut w = owned_task();
        w.login_ready("seller", "chat");
        w.ok(transfer("t1", "owner", to_agent("seller", true)));
        for (name, mut w) in WORLDS.iter().zip(with_restarts(w)) {
            let task = w.get_task("t1");
            assert_eq!(task.owner.as_deref(), Some("owner"), "{name}");
            assert_eq!(task.offer.as_ref().map(|o| o.0.as_str()), Some("seller"));
            assert_eq!(w.agent_state("seller", "chat"), AgentState::Reserved);
            assert!(
                offers(&w.task("t2", "chat", "sales", 5)).is_empty(),
                "{name}"
            );
            refused(
                w.run(transfer("t1", "owner", to_queue("sales", false))),
                "already offered to agent 'seller'",
            );
            let events = match answer {
                "accept" => w.accept("t1", "seller"),
                _ => w.advance(20_000),
            };
            let moved = events
                .iter()
                .any(|e| matches!(e, Event::TaskAgentTransferred { consult: true, .. }));
            let declined = events.iter().any(|e| {
                matches!(
                    e,
                    Event::TaskTransferDeclined {
                        reason: RequeueReason::Rona,
                        ..
                    }
                )
            });
            assert_eq!((moved, declined), (answer == "accept", answer == "timeout"));
            let owner = if answer == "accept" {
                "seller"
            } else {
                "owner"
            };
            assert_eq!(w.get_task("t1").owner.as_deref(), Some(owner), "{name}");
            // Free again, the seller is offered t2.
            if answer == "timeout" {
                assert_eq!(offer_of(&events, "t2").as_deref(), Some("seller"), "{name}");
            }
        }
    }
}

#[test]
fn a_transfer_to_a_queue_keeps_its_place_across_a_restart() {
    let mut w = owned_task();
    w.task("later", "chat", "sales", 5);
    w.now += 1_000;
    w.ok(transfer("t1", "owner", to_queue("sales", true)));
    for (name, mut w) in WORLDS.iter().zip(with_restarts(w)) {
        let task = w.get_task("t1");
        assert_eq!(task.queued_at, task.created_at, "{name}");
        assert!(task.declined_by.contains("owner"), "{name}");
        let events = w.login_ready("seller", "chat");
        assert_eq!(offers(&events)[0].0, "t1", "{name}: first in line");
    }
}

#[test]
fn blocking_mrds_survive_a_restart() {
    for voice in [
        mrd("voice", 1, false, &[]),
        mrd("voice", 1, true, &["chat"]),
    ] {
        let mut w = two_mrds(voice, mrd("chat", 3, true, &[]));
        w.task("call", "voice", "", 5);
        w.accept("call", "ana");
        for (name, mut w) in WORLDS.iter().zip(with_restarts(w)) {
            let routing = w.state.routing();
            assert_eq!(routing.blocking_mrd("ana", "chat"), Some("voice"), "{name}");
            assert!(offers(&w.task("c1", "chat", "", 5)).is_empty(), "{name}");
            let events = w.task_state("call", TaskState::Closed).unwrap();
            assert_eq!(offer_of(&events, "c1").as_deref(), Some("ana"), "{name}");
        }
    }
}

// ----- authorization: who may transfer, who may answer an offered transfer ---------------------

fn agent(id: &str) -> Principal {
    Principal {
        actor: Actor::Agent(id.into()),
        roles: [Role::Agent].into(),
    }
}

fn account(id: &str, role: Role) -> Principal {
    Principal {
        actor: Actor::Account(id.into()),
        roles: [role].into(),
    }
}

/// Runs a command as `who`, through the same checks the engine runs for a caller.
fn run_as<C: Command>(
    w: &mut World,
    who: &Principal,
    command: C,
) -> Result<Vec<Event>, DomainError> {
    let (_, decided) = w.state.execute_as(command, who, w.now)?;
    let events: Vec<Event> = decided.into_iter().map(|d| d.event).collect();
    w.events.extend(events.iter().cloned());
    Ok(events)
}

#[track_caller]
fn denied(result: Result<Vec<Event>, DomainError>, needle: &str) {
    match result {
        Err(DomainError::PermissionDenied(m)) => assert!(m.contains(needle), "{m}"),
        other => panic!("expected PERMISSION_DENIED with {needle:?}, got {other:?}"),
    }
}

fn accept(task: &str, agent: &str) -> cmd::AcceptTask {
    cmd::AcceptTask {
        task_id: task.into(),
        agent_id: agent.into(),
    }
}

fn reject(task: &str, agent: &str) -> cmd::RejectTask {
    cmd::RejectTask {
        task_id: task.into(),
        agent_id: agent.into(),
    }
}

#[test]
fn only_the_holder_transfers_and_only_the_recipient_answers() {
    let mut w = owned_task();
    w.agent("ben", &[]);
    for a in ["seller", "ben"] {
        w.login_ready(a, "chat");
    }
    w.ok(cmd::ConferenceTask {
        task_id: "t1".into(),
        owner_agent_id: "owner".into(),
        participant_agent_id: "seller".into(),
        mrd: "chat".into(),
    });
    let before = w.events.len();
    // An agent not on the task, a participant passing the owner's task on, a participant
    // naming itself, an integration that did not create it: all refused, nothing changed.
    denied(
        run_as(
            &mut w,
            &agent("ben"),
            transfer("t1", "owner", to_agent("ben", true)),
        ),
        "may not transfer task 't1'",
    );
    denied(
        run_as(
            &mut w,
            &agent("seller"),
            transfer("t1", "owner", to_queue("sales", false)),
        ),
        "agent 'seller' may transfer only the tasks it owns",
    );
    refused(
        run_as(
            &mut w,
            &agent("seller"),
            transfer("t1", "seller", to_agent("ben", false)),
        ),
        "agent 'seller' does not own task 't1'",
    );
    denied(
        run_as(
            &mut w,
            &account("crm", Role::Integration),
            transfer("t1", "owner", to_agent("ben", true)),
        ),
        "may not transfer task 't1'",
    );
    assert_eq!(w.events.len(), before, "the refusals changed nothing");

    // The holder offers it to ben; only ben answers, even a supervisor may not for him.
    run_as(
        &mut w,
        &agent("owner"),
        transfer("t1", "owner", to_agent("ben", true)),
    )
    .unwrap();
    let before = w.events.len();
    denied(
        run_as(&mut w, &agent("owner"), accept("t1", "ben")),
        "an agent acts only as itself",
    );
    denied(
        run_as(&mut w, &agent("owner"), reject("t1", "ben")),
        "an agent acts only as itself",
    );
    denied(
        run_as(
            &mut w,
            &account("sup", Role::Supervisor),
            accept("t1", "ben"),
        ),
        "an agent acts only as itself",
    );
    refused(
        run_as(&mut w, &agent("owner"), accept("t1", "owner")),
        "task 't1' has no pending offer to agent 'owner'",
    );
    refused(
        run_as(&mut w, &agent("seller"), accept("t1", "seller")),
        "task 't1' has no pending offer to agent 'seller'",
    );
    assert_eq!(w.events.len(), before, "the refusals changed nothing");
    let events = run_as(&mut w, &agent("ben"), accept("t1", "ben")).unwrap();
    assert!(events.iter().any(|e| matches!(
        e,
        Event::TaskAgentTransferred { owner_agent_id, recipient_agent_id, consult: true, .. }
            if owner_agent_id == "owner" && recipient_agent_id == "ben"
    )));
    // The former holder may no longer transfer it; a supervisor may, naming the holder.
    denied(
        run_as(
            &mut w,
            &agent("owner"),
            transfer("t1", "owner", to_queue("sales", false)),
        ),
        "may not transfer task 't1'",
    );
    run_as(
        &mut w,
        &account("sup", Role::Supervisor),
        transfer("t1", "ben", to_queue("sales", false)),
    )
    .unwrap();
    assert_eq!(w.get_task("t1").spec.queue, "sales");
}

#[test]
fn the_integration_that_created_a_task_may_transfer_it() {
    let mut w = owned_task();
    let crm = account("crm", Role::Integration);
    run_as(&mut w, &crm, cmd::NewTask(spec("t2", "chat", "", 5))).unwrap();
    w.login_ready("seller", "chat");
    w.accept("t2", "owner");
    run_as(
        &mut w,
        &crm,
        transfer("t2", "owner", to_agent("seller", false)),
    )
    .unwrap();
    assert_eq!(w.get_task("t2").owner.as_deref(), Some("seller"));
}
