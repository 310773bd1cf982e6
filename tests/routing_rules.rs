//! Each routing rule, deterministically, on the engine's state with a clock the test moves.

mod common;

use common::world::{World, offer_of, offers, spec};
use switchboard::domain::commands as cmd;
use switchboard::domain::routing::config::{
    LogoutAction, MrdConfig, QueueConfig, ReasonCategory, ReasonCode, RonaAction, Step,
};
use switchboard::domain::routing::expr::Expr;
use switchboard::domain::routing::model::{
    AgentState, CloseReason, RequestedAgentState as Req, RequeueReason, Selection, TaskSpec,
    TaskState,
};
use switchboard::domain::{DomainError, Event};

fn chat(max_tasks: u32) -> MrdConfig {
    MrdConfig {
        name: "chat".into(),
        max_tasks,
        interruptible: false,
        offer_timeout_ms: 20_000,
        wrap_up_timeout_ms: 0,
        rona_action: RonaAction::NotReady,
        logout_action: LogoutAction::Close,
        blocks: Vec::new(),
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

#[test]
fn sticky_agent_wins_when_eligible() {
    let mut w = World::new();
    w.mrd("chat", 1);
    w.agent("longest", &[]);
    w.agent("last", &[]);
    w.login_ready("longest", "chat");
    w.now += 5_000;
    w.login_ready("last", "chat");
    let mut s = spec("t1", "chat", "", 5);
    s.last_agent_id = "last".into();
    let events = w.task_spec(s);
    assert_eq!(offer_of(&events, "t1").as_deref(), Some("last"));
    assert_eq!(selection(&events, "t1"), Selection::Sticky);

    // Not eligible (busy with an offer): the queue decides instead.
    let mut s = spec("t2", "chat", "", 5);
    s.last_agent_id = "last".into();
    let events = w.task_spec(s);
    assert_eq!(offer_of(&events, "t2").as_deref(), Some("longest"));
    assert_eq!(selection(&events, "t2"), Selection::Step { index: 0 });
}

#[test]
fn steps_widen_as_their_timeouts_pass() {
    let mut w = World::new();
    w.mrd("chat", 1);
    w.queue(
        "chat",
        "sales",
        &[("sales >= 8", 10_000), ("sales >= 3", 10_000), ("TRUE", 0)],
        0,
    );
    w.agent("junior", &[("sales", 4)]);
    w.agent("novice", &[]);
    w.login_ready("junior", "chat");
    w.login_ready("novice", "chat");

    assert!(
        offers(&w.task("t1", "chat", "sales", 5)).is_empty(),
        "nobody matches step 0"
    );
    assert!(offers(&w.advance(9_999)).is_empty());
    let events = w.advance(1);
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::TaskStepWidened { step: 1, .. }))
    );
    assert_eq!(offer_of(&events, "t1").as_deref(), Some("junior"));
    assert_eq!(selection(&events, "t1"), Selection::Step { index: 1 });

    // A second task reaches step 2 and takes the novice.
    w.task("t2", "chat", "sales", 5);
    w.advance(10_000);
    let events = w.advance(10_000);
    assert_eq!(offer_of(&events, "t2").as_deref(), Some("novice"));
    assert_eq!(selection(&events, "t2"), Selection::Step { index: 2 });
}

#[test]
fn fewest_tasks_then_longest_available_then_id() {
    let mut w = World::new();
    w.mrd("chat", 3);
    for a in ["b", "a", "c"] {
        w.agent(a, &[]);
    }
    w.login_ready("c", "chat");
    w.login_ready("b", "chat");
    w.login_ready("a", "chat"); // all at the same instant: id breaks the tie
    assert_eq!(
        offer_of(&w.task("t1", "chat", "", 5), "t1").as_deref(),
        Some("a")
    );
    w.accept("t1", "a");
    // a has one task now; b and c have none: b first by id.
    assert_eq!(
        offer_of(&w.task("t2", "chat", "", 5), "t2").as_deref(),
        Some("b")
    );
    w.accept("t2", "b");
    assert_eq!(
        offer_of(&w.task("t3", "chat", "", 5), "t3").as_deref(),
        Some("c")
    );
    w.accept("t3", "c");
    // Everyone has one: the one available longest (a, since its last change) goes first.
    w.now += 1_000;
    w.task_state("t2", TaskState::Closed).unwrap(); // b freed: available later, fewer tasks
    assert_eq!(
        offer_of(&w.task("t4", "chat", "", 5), "t4").as_deref(),
        Some("b")
    );
    w.accept("t4", "b");
    assert_eq!(
        offer_of(&w.task("t5", "chat", "", 5), "t5").as_deref(),
        Some("a")
    );
}

#[test]
fn ready_again_while_ready_keeps_the_place_in_line() {
    let mut w = World::new();
    w.mrd("chat", 1);
    w.agent("first", &[]);
    w.agent("second", &[]);
    w.login_ready("first", "chat");
    w.now += 1_000;
    w.login_ready("second", "chat");
    w.now += 1_000;
    // Still journaled, but "first" stays the one available longest.
    let events = w.set_state("first", Req::Ready, "chat").unwrap();
    assert!(matches!(events.as_slice(), [Event::AgentReady { .. }, ..]));
    assert_eq!(
        offer_of(&w.task("t1", "chat", "", 5), "t1").as_deref(),
        Some("first")
    );
    // READY while holding an offer changes nothing either: the next task goes to "second".
    w.set_state("first", Req::Ready, "chat").unwrap();
    assert_eq!(
        offer_of(&w.task("t2", "chat", "", 5), "t2").as_deref(),
        Some("second")
    );
}

#[test]
fn higher_priority_first_then_first_in_first_out() {
    let mut w = World::new();
    w.mrd("chat", 1);
    w.agent("a", &[]);
    w.set_state("a", Req::Login, "chat").unwrap();
    for (id, priority) in [("t1", 5), ("t2", 9), ("t3", 5), ("t4", 9)] {
        w.task(id, "chat", "", priority);
        w.now += 1;
    }
    let mut order = Vec::new();
    let mut events = w.set_state("a", Req::Ready, "chat").unwrap();
    for _ in 0..4 {
        let (task, _) = offers(&events).pop().expect("one offer at a time");
        w.accept(&task, "a");
        events = w.task_state(&task, TaskState::Closed).unwrap();
        order.push(task);
    }
    assert_eq!(order, ["t2", "t4", "t1", "t3"]);
}

#[test]
fn rona_requeues_ahead_of_all_and_sets_the_agent_not_ready() {
    let mut w = World::new();
    w.mrd_with(chat(1));
    w.agent("sleepy", &[]);
    w.agent("b", &[]);
    w.login_ready("sleepy", "chat");
    w.set_state("b", Req::Login, "chat").unwrap();
    w.task("t1", "chat", "", 5);
    w.now += 1;
    w.task("t2", "chat", "", 10);
    assert_eq!(w.get_task("t1").state, TaskState::Offered);

    let events = w.advance(20_000);
    assert!(events.iter().any(
        |e| matches!(e, Event::TaskRequeued { task_id, priority: 11, .. } if task_id == "t1")
    ));
    assert_eq!(w.agent_state("sleepy", "chat"), AgentState::NotReady);
    assert_eq!(w.get_agent("sleepy").mrds[0].reason_code, "RONA");
    // Requeued ahead of the priority-10 task that waited meanwhile.
    let events = w.set_state("b", Req::Ready, "chat").unwrap();
    assert_eq!(offer_of(&events, "t1").as_deref(), Some("b"));
    // The agent who let it ring is not offered it again.
    assert!(w.get_task("t1").declined_by.contains("sleepy"));
}

#[test]
fn rona_can_make_the_agent_not_routable_instead() {
    let mut w = World::new();
    w.mrd_with(MrdConfig {
        rona_action: RonaAction::NotRoutable,
        ..chat(1)
    });
    w.agent("sleepy", &[]);
    w.login_ready("sleepy", "chat");
    w.task("t1", "chat", "", 5);
    w.advance(20_000);
    let view = w.get_agent("sleepy");
    assert!(!view.routable);
    assert_eq!(view.mrds[0].state, AgentState::Ready);
    assert!(
        offers(&w.task("t2", "chat", "", 5)).is_empty(),
        "not routable: no offers"
    );
    // READY again makes it routable; t2 comes first (t1 was declined by this agent).
    let events = w.set_state("sleepy", Req::Ready, "chat").unwrap();
    assert_eq!(
        offers(&events),
        vec![("t2".to_owned(), "sleepy".to_owned())]
    );
}

#[test]
fn time_to_live_closes_with_no_agent_available_and_says_what_it_tried() {
    let mut w = World::new();
    w.mrd("chat", 1);
    w.queue("chat", "vip", &[("vip", 5_000), ("sales >= 5", 0)], 30_000);
    w.task("t1", "chat", "vip", 5);
    assert!(
        w.advance(29_999)
            .iter()
            .all(|e| !matches!(e, Event::TaskStateChanged { .. }))
    );
    let events = w.advance(1);
    let detail = events
        .iter()
        .find_map(|e| match e {
            Event::TaskStateChanged {
                close_reason: Some(CloseReason::NoAgentAvailable),
                detail,
                ..
            } => Some(detail.clone()),
            _ => None,
        })
        .expect("closed for want of an agent");
    assert!(
        detail.contains("step 0: vip") && detail.contains("step 1: sales >= 5"),
        "{detail}"
    );
    assert_eq!(w.get_task("t1").state, TaskState::Closed);
}

#[test]
fn capacity_counts_active_and_busy() {
    let mut w = World::new();
    w.mrd("chat", 2);
    w.agent("a", &[]);
    w.login_ready("a", "chat");
    w.task("t1", "chat", "", 5);
    assert_eq!(w.agent_state("a", "chat"), AgentState::Reserved);
    w.accept("t1", "a");
    assert_eq!(w.agent_state("a", "chat"), AgentState::Active);
    // The second task is offered at once: the agent is below max.
    assert_eq!(
        offer_of(&w.task("t2", "chat", "", 5), "t2").as_deref(),
        Some("a")
    );
    w.accept("t2", "a");
    assert_eq!(w.agent_state("a", "chat"), AgentState::Busy);
    assert!(
        offers(&w.task("t3", "chat", "", 5)).is_empty(),
        "busy: no third task"
    );
    // A per-agent override raises the limit, and backfill follows at once.
    let events = w.ok(cmd::UpsertAgent {
        agent_id: "a".into(),
        display_name: "a".into(),
        password_hash: None,
        attributes: Default::default(),
        mrd_max_tasks: [("chat".to_owned(), 3)].into(),
        roles: None,
    });
    assert_eq!(offer_of(&events, "t3").as_deref(), Some("a"));
}

#[test]
fn one_pending_offer_per_agent() {
    let mut w = World::new();
    w.mrd("chat", 5);
    w.agent("a", &[]);
    w.login_ready("a", "chat");
    let events = [w.task("t1", "chat", "", 5), w.task("t2", "chat", "", 5)].concat();
    assert_eq!(offers(&events), vec![("t1".to_owned(), "a".to_owned())]);
    let events = w.accept("t1", "a");
    assert_eq!(offers(&events), vec![("t2".to_owned(), "a".to_owned())]);
}

#[test]
fn not_ready_with_tasks_is_pending_until_they_end() {
    let mut w = World::new();
    w.mrd("chat", 2);
    w.reason("lunch", ReasonCategory::NotReady);
    w.agent("a", &[]);
    w.login_ready("a", "chat");
    w.task("t1", "chat", "", 5);
    w.accept("t1", "a");
    w.set_state_reason("a", Req::NotReady, "chat", "lunch")
        .unwrap();
    assert_eq!(w.agent_state("a", "chat"), AgentState::PendingNotReady);
    assert!(
        offers(&w.task("t2", "chat", "", 5)).is_empty(),
        "no new work while pending"
    );
    w.task_state("t1", TaskState::Closed).unwrap();
    assert_eq!(w.agent_state("a", "chat"), AgentState::NotReady);
    assert_eq!(w.get_agent("a").mrds[0].reason_code, "lunch");
    // Derived states are never set by clients: only LOGIN/READY/NOT_READY/LOGOUT exist to ask.
    assert!(matches!(
        w.set_state_reason("a", Req::NotReady, "chat", "nope"),
        Err(DomainError::NotFound { .. })
    ));
}

#[test]
fn logout_closes_or_requeues_per_mrd() {
    for (action, expect_requeue) in [(LogoutAction::Close, false), (LogoutAction::Requeue, true)] {
        let mut w = World::new();
        w.mrd_with(MrdConfig {
            logout_action: action,
            blocks: Vec::new(),
            ..chat(1)
        });
        w.agent("a", &[]);
        w.agent("b", &[]);
        w.login_ready("a", "chat");
        w.task("t1", "chat", "", 5);
        w.accept("t1", "a");
        w.set_state("b", Req::Login, "chat").unwrap();
        w.set_state("a", Req::Logout, "chat").unwrap();
        let task = w.get_task("t1");
        if expect_requeue {
            assert_eq!((task.state, task.priority), (TaskState::Queued, 11));
            let events = w.set_state("b", Req::Ready, "chat").unwrap();
            assert_eq!(offer_of(&events, "t1").as_deref(), Some("b"));
        } else {
            assert_eq!(
                (task.state, task.close_reason),
                (TaskState::Closed, Some(CloseReason::AgentLogout))
            );
        }
        assert_eq!(w.agent_state("a", "chat"), AgentState::Logout);
    }
}

#[test]
fn logout_reroutes_a_pending_offer_at_once() {
    let mut w = World::new();
    w.mrd("chat", 1);
    w.agent("a", &[]);
    w.agent("b", &[]);
    w.login_ready("a", "chat");
    w.task("t1", "chat", "", 5);
    w.login_ready("b", "chat");
    let events = w.set_state("a", Req::Logout, "").unwrap();
    assert_eq!(offer_of(&events, "t1").as_deref(), Some("b"));
}

#[test]
fn wrap_up_holds_the_agent_until_its_timer_ends() {
    let mut w = World::new();
    w.mrd_with(MrdConfig {
        wrap_up_timeout_ms: 15_000,
        ..chat(1)
    });
    w.agent("a", &[]);
    w.login_ready("a", "chat");
    w.task("t1", "chat", "", 5);
    w.accept("t1", "a");
    w.task("t2", "chat", "", 5);
    w.task_state("t1", TaskState::WrappingUp).unwrap();
    assert_eq!(w.agent_state("a", "chat"), AgentState::WorkReady);
    assert!(offers(&w.advance(14_999)).is_empty());
    let events = w.advance(1);
    assert!(events.iter().any(|e| matches!(e, Event::TaskStateChanged { task_id, close_reason: Some(CloseReason::Done), .. } if task_id == "t1")));
    assert_eq!(
        offer_of(&events, "t2").as_deref(),
        Some("a"),
        "backfill when wrap-up ends"
    );
}

#[test]
fn transfer_and_conference_refusals() {
    let mut w = World::new();
    w.mrd("chat", 2);
    w.mrd("voice", 1);
    for a in ["owner", "other", "idle", "away"] {
        w.agent(a, &[]);
    }
    w.login_ready("owner", "chat");
    w.task("t1", "chat", "", 5);
    let transfer = |task: &str, owner: &str, to: &str| cmd::TransferTask {
        task_id: task.into(),
        owner_agent_id: owner.into(),
        to: cmd::TransferTo::Agent {
            agent_id: to.into(),
            consult: false,
        },
    };
    let conference = |owner: &str, to: &str, mrd: &str| cmd::ConferenceTask {
        task_id: "t1".into(),
        owner_agent_id: owner.into(),
        participant_agent_id: to.into(),
        mrd: mrd.into(),
    };
    let precondition = |r: Result<_, DomainError>, needle: &str| match r {
        Err(DomainError::FailedPrecondition(m)) => assert!(m.contains(needle), "{m}"),
        other => panic!("expected FAILED_PRECONDITION ({needle}), got {other:?}"),
    };
    // Not active yet (offered).
    precondition(
        w.run(transfer("t1", "owner", "other")),
        "is TASK_STATE_OFFERED, not TASK_STATE_ACTIVE",
    );
    w.accept("t1", "owner");
    assert!(matches!(
        w.run(transfer("ghost", "owner", "other")),
        Err(DomainError::NotFound { .. })
    ));
    assert!(matches!(
        w.run(transfer("t1", "owner", "nobody")),
        Err(DomainError::NotFound { .. })
    ));
    precondition(w.run(transfer("t1", "other", "idle")), "does not own");
    assert!(matches!(
        w.run(transfer("t1", "owner", "owner")),
        Err(DomainError::InvalidArgument {
            field: "recipient_agent_id",
            ..
        })
    ));
    precondition(
        w.run(transfer("t1", "owner", "away")),
        "not logged in on mrd 'chat'",
    );
    w.set_state("other", Req::Login, "chat").unwrap();
    precondition(
        w.run(transfer("t1", "owner", "other")),
        "cannot take work now (AGENT_STATE_NOT_READY on mrd 'chat')",
    );
    assert!(matches!(
        w.run(conference("owner", "idle", "voice")),
        Err(DomainError::InvalidArgument { field: "mrd", .. })
    ));

    // Conference adds a participant; then neither can be added again.
    w.login_ready("idle", "chat");
    w.ok(conference("owner", "idle", "chat"));
    precondition(
        w.run(conference("owner", "idle", "chat")),
        "already on task",
    );
    precondition(w.run(transfer("t1", "owner", "idle")), "already on task");

    // Transfer moves ownership and frees the owner.
    w.set_state("other", Req::Ready, "chat").unwrap();
    let events = w.ok(transfer("t1", "owner", "other"));
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::TaskAgentTransferred { .. }))
    );
    let task = w.get_task("t1");
    assert_eq!(task.owner.as_deref(), Some("other"));
    assert!(task.participants.contains("idle"));
    assert_eq!(w.agent_state("owner", "chat"), AgentState::Ready);
}

#[test]
fn backfill_is_immediate() {
    let mut w = World::new();
    w.mrd("chat", 1);
    w.agent("a", &[]);
    w.set_state("a", Req::Login, "chat").unwrap();
    w.task("t1", "chat", "", 5);
    w.task("t2", "chat", "", 5);
    // READY: offered in the same command.
    assert_eq!(
        offer_of(&w.set_state("a", Req::Ready, "chat").unwrap(), "t1").as_deref(),
        Some("a")
    );
    w.accept("t1", "a");
    // A task closed: the next one is offered in the same command.
    assert_eq!(
        offer_of(&w.task_state("t1", TaskState::Closed).unwrap(), "t2").as_deref(),
        Some("a")
    );
    // A rejection: the task goes back, and nobody else is eligible.
    let events = w.ok(cmd::RejectTask {
        task_id: "t2".into(),
        agent_id: "a".into(),
    });
    assert!(offers(&events).is_empty());
    assert_eq!(w.get_task("t2").priority, 11);
}

#[test]
fn derived_state_notices_follow_each_change() {
    let mut w = World::new();
    w.mrd("chat", 1);
    w.agent("a", &[]);
    let states = |events: &[Event]| -> Vec<AgentState> {
        events
            .iter()
            .filter_map(|e| match e {
                Event::AgentStateChanged { state, .. } => Some(*state),
                _ => None,
            })
            .collect()
    };
    assert_eq!(
        states(&w.set_state("a", Req::Login, "chat").unwrap()),
        [AgentState::NotReady]
    );
    assert_eq!(
        states(&w.set_state("a", Req::Ready, "chat").unwrap()),
        [AgentState::Ready]
    );
    assert_eq!(states(&w.task("t1", "chat", "", 5)), [AgentState::Reserved]);
    assert_eq!(states(&w.accept("t1", "a")), [AgentState::Busy]);
    assert_eq!(
        states(&w.task_state("t1", TaskState::Closed).unwrap()),
        [AgentState::Ready]
    );
    assert_eq!(
        states(&w.set_state("a", Req::Logout, "chat").unwrap()),
        [AgentState::Logout]
    );
}

#[test]
fn wire_names_match_the_contract() {
    use switchboard::pb;

    // Exhaustive matches: a new variant without a contract counterpart does not compile.
    fn check<T: Copy + std::fmt::Display>(
        all: &[T],
        wire: fn(T) -> &'static str,
        pb: fn(T) -> &'static str,
    ) {
        let mut seen = std::collections::BTreeSet::new();
        for &value in all {
            assert_eq!(wire(value), pb(value));
            assert_eq!(value.to_string(), pb(value));
            assert!(seen.insert(pb(value)), "{} listed twice", pb(value));
        }
    }
    check(&AgentState::ALL, AgentState::wire_name, |s| {
        match s {
            AgentState::Logout => pb::AgentState::Logout,
            AgentState::NotReady => pb::AgentState::NotReady,
            AgentState::Ready => pb::AgentState::Ready,
            AgentState::Reserved => pb::AgentState::Reserved,
            AgentState::Active => pb::AgentState::Active,
            AgentState::Busy => pb::AgentState::Busy,
            AgentState::WorkReady => pb::AgentState::WorkReady,
            AgentState::PendingNotReady => pb::AgentState::PendingNotReady,
        }
        .as_str_name()
    });
    check(&Req::ALL, Req::wire_name, |s| {
        match s {
            Req::Login => pb::AgentState::Login,
            Req::Ready => pb::AgentState::Ready,
            Req::NotReady => pb::AgentState::NotReady,
            Req::Logout => pb::AgentState::Logout,
        }
        .as_str_name()
    });
    check(&TaskState::ALL, TaskState::wire_name, |s| {
        match s {
            TaskState::Queued => pb::TaskState::Queued,
            TaskState::Offered => pb::TaskState::Offered,
            TaskState::Active => pb::TaskState::Active,
            TaskState::Paused => pb::TaskState::Paused,
            TaskState::WrappingUp => pb::TaskState::WrappingUp,
            TaskState::Closed => pb::TaskState::Closed,
        }
        .as_str_name()
    });
    check(&CloseReason::ALL, CloseReason::wire_name, |s| {
        match s {
            CloseReason::Done => pb::CloseReason::Done,
            CloseReason::NoAgentAvailable => pb::CloseReason::NoAgentAvailable,
            CloseReason::Cancelled => pb::CloseReason::Cancelled,
            CloseReason::AgentLogout => pb::CloseReason::AgentLogout,
            CloseReason::ForceClosed => pb::CloseReason::ForceClosed,
            CloseReason::MaxAttempts => pb::CloseReason::MaxAttempts,
        }
        .as_str_name()
    });
    check(&RequeueReason::ALL, RequeueReason::wire_name, |s| {
        match s {
            RequeueReason::Rona => pb::RequeueReason::Rona,
            RequeueReason::Rejected => pb::RequeueReason::Rejected,
            RequeueReason::AgentLogout => pb::RequeueReason::AgentLogout,
            RequeueReason::Transferred => pb::RequeueReason::Transferred,
            RequeueReason::Supervisor => pb::RequeueReason::Supervisor,
        }
        .as_str_name()
    });
    check(&ReasonCategory::ALL, ReasonCategory::wire_name, |s| {
        match s {
            ReasonCategory::NotReady => pb::ReasonCategory::NotReady,
            ReasonCategory::Logout => pb::ReasonCategory::Logout,
        }
        .as_str_name()
    });
    check(&RonaAction::ALL, RonaAction::wire_name, |s| {
        match s {
            RonaAction::NotReady => pb::RonaAction::NotReady,
            RonaAction::NotRoutable => pb::RonaAction::NotRoutable,
        }
        .as_str_name()
    });
    check(&LogoutAction::ALL, LogoutAction::wire_name, |s| {
        match s {
            LogoutAction::Close => pb::LogoutAction::Close,
            LogoutAction::Requeue => pb::LogoutAction::Requeue,
        }
        .as_str_name()
    });
}

#[test]
fn refusals_name_wire_values() {
    let mut w = World::new();
    w.mrd("chat", 1);
    w.reason("lunch", ReasonCategory::NotReady);
    w.reason("home", ReasonCategory::Logout);
    w.agent("a", &[]);
    w.login_ready("a", "chat");
    w.task("t1", "chat", "", 5);
    w.accept("t1", "a");
    w.task_state("t1", TaskState::Closed).unwrap();
    let message = |r: Result<Vec<Event>, DomainError>| match r {
        Err(e) => e.to_string(),
        Ok(_) => panic!("expected a refusal"),
    };
    assert_eq!(
        message(w.task_state("t1", TaskState::Paused)),
        "task 't1' cannot go from TASK_STATE_CLOSED to TASK_STATE_PAUSED"
    );
    assert_eq!(
        message(w.set_state_reason("a", Req::NotReady, "chat", "home")),
        "reason_code: 'home' is a REASON_CATEGORY_LOGOUT reason code; \
         AGENT_STATE_NOT_READY takes a REASON_CATEGORY_NOT_READY one"
    );
    assert_eq!(
        message(w.set_state_reason("a", Req::Ready, "chat", "lunch")),
        "reason_code: only AGENT_STATE_NOT_READY and AGENT_STATE_LOGOUT take a reason code, \
         not AGENT_STATE_READY"
    );
}

/// The field and reason of an INVALID_ARGUMENT refusal.
#[track_caller]
fn invalid<T: std::fmt::Debug>(result: Result<T, DomainError>) -> (&'static str, String) {
    match result {
        Err(DomainError::InvalidArgument { field, reason }) => (field, reason),
        other => panic!("expected INVALID_ARGUMENT, got {other:?}"),
    }
}

fn upsert_agent(attributes: &[(&str, u32)], max: &[(&str, u32)]) -> cmd::UpsertAgent {
    cmd::UpsertAgent {
        agent_id: "a".into(),
        display_name: "A".into(),
        password_hash: Some(common::world::test_hash()),
        attributes: attributes.iter().map(|(k, v)| ((*k).into(), *v)).collect(),
        mrd_max_tasks: max.iter().map(|(k, v)| ((*k).into(), *v)).collect(),
        roles: None,
    }
}

#[test]
fn agent_attributes_hold_proficiencies_one_to_ten() {
    let mut w = World::new();
    w.mrd("chat", 1);
    w.ok(upsert_agent(
        &[("sales", 1), ("billing", 10)],
        &[("chat", 0)],
    ));
    let (field, reason) = invalid(w.run(upsert_agent(&[("sales", 0)], &[])));
    assert_eq!(field, "agent.attributes");
    assert!(
        reason.starts_with("'sales' is 0; a proficiency is 1 to 10"),
        "{reason}"
    );
    let (_, reason) = invalid(w.run(upsert_agent(&[("sales", 11)], &[])));
    assert!(reason.starts_with("'sales' is 11;"), "{reason}");
    let (field, reason) = invalid(w.run(upsert_agent(&[], &[("chat", 101)])));
    assert_eq!(
        (field, reason.as_str()),
        ("agent.mrd_max_tasks", "'chat' is 101; must be 0 to 100")
    );
}

#[test]
fn per_mrd_max_tasks_must_name_an_existing_mrd() {
    let mut w = World::new();
    let (field, reason) = invalid(w.run(upsert_agent(&[], &[("chta", 2)])));
    assert_eq!(field, "agent.mrd_max_tasks");
    assert!(reason.contains("MRD 'chta' does not exist"), "{reason}");
    w.mrd("chta", 1);
    w.ok(upsert_agent(&[], &[("chta", 2)]));
}

#[test]
fn agent_maps_are_bounded() {
    let mut w = World::new();
    let names: Vec<String> = (0..100_000).map(|i| format!("skill{i}")).collect();
    let attributes =
        |n: usize| -> Vec<(&str, u32)> { names[..n].iter().map(|s| (s.as_str(), 1)).collect() };
    w.ok(upsert_agent(&attributes(256), &[]));
    assert_eq!(
        invalid(w.run(upsert_agent(&attributes(257), &[]))),
        (
            "agent.attributes",
            "must have at most 256 attributes, not 257".to_owned()
        )
    );
    assert_eq!(
        invalid(w.run(upsert_agent(&attributes(100_000), &[]))).1,
        "must have at most 256 attributes, not 100000"
    );
    let overrides: Vec<(&str, u32)> = names[..65].iter().map(|s| (s.as_str(), 1)).collect();
    assert_eq!(
        invalid(w.run(upsert_agent(&[], &overrides))),
        (
            "agent.mrd_max_tasks",
            "must have at most 64 entries, not 65".to_owned()
        )
    );
}

#[test]
fn timeouts_have_upper_bounds() {
    let mut w = World::new();
    let mrd = |offer_timeout_ms, wrap_up_timeout_ms| {
        cmd::UpsertMrd(MrdConfig {
            offer_timeout_ms,
            wrap_up_timeout_ms,
            ..chat(1)
        })
    };
    w.ok(mrd(3_600_000, 86_400_000));
    assert_eq!(
        invalid(w.run(mrd(3_601_000, 0))),
        (
            "mrd.offer_timeout_seconds",
            "must be 1 to 3600 seconds (1 hour), not 3601".to_owned()
        )
    );
    // The largest uint32 of seconds: an offer deadline in 2163.
    assert_eq!(
        invalid(w.run(mrd(4_294_967_295_000, 0))).1,
        "must be 1 to 3600 seconds (1 hour), not 4294967295"
    );
    assert_eq!(invalid(w.run(mrd(0, 0))).0, "mrd.offer_timeout_seconds");
    assert_eq!(
        invalid(w.run(mrd(20_000, 86_401_000))),
        (
            "mrd.wrap_up_timeout_seconds",
            "must be 0 to 86400 seconds (1 day), not 86401".to_owned()
        )
    );

    let queue = |step_timeout_ms, task_ttl_ms| {
        cmd::UpsertQueue(QueueConfig {
            name: "sales".into(),
            mrd: "chat".into(),
            steps: vec![
                Step {
                    expression: Expr::always(),
                    timeout_ms: 10_000,
                },
                Step {
                    expression: Expr::always(),
                    timeout_ms: step_timeout_ms,
                },
            ],
            task_ttl_ms,
            ..QueueConfig::built_in_default("chat")
        })
    };
    w.ok(queue(86_400_000, 604_800_000));
    assert_eq!(
        invalid(w.run(queue(86_401_000, 0))),
        (
            "queue.steps.timeout_seconds",
            "step 1: must be 0 to 86400 seconds (1 day), not 86401".to_owned()
        )
    );
    assert_eq!(
        invalid(w.run(queue(0, 604_801_000))),
        (
            "queue.task_ttl_seconds",
            "must be 0 to 604800 seconds (7 days), not 604801".to_owned()
        )
    );
}

#[test]
fn control_characters_are_refused_in_ids_and_names() {
    let mut w = World::new();
    let (field, reason) = invalid(w.run(cmd::UpsertMrd(MrdConfig {
        name: "chat\u{1b}[2J".into(),
        ..chat(1)
    })));
    assert_eq!(
        (field, reason.as_str()),
        ("mrd.name", "must not contain control character U+001B")
    );
    w.mrd_with(chat(1));
    let (field, reason) = invalid(w.run(cmd::UpsertQueue(QueueConfig {
        name: "vip\u{202e}".into(),
        ..QueueConfig::built_in_default("chat")
    })));
    assert_eq!(
        (field, reason.as_str()),
        (
            "queue.name",
            "must not contain bidirectional control U+202E"
        )
    );
    let reason_code = |code: &str, label: &str| {
        cmd::UpsertReasonCode(ReasonCode {
            code: code.into(),
            label: label.into(),
            category: ReasonCategory::NotReady,
        })
    };
    w.ok(reason_code("lunch", "Lunch — 30 min"));
    assert_eq!(
        invalid(w.run(reason_code("lunch\0", "Lunch"))).0,
        "reason_code.code"
    );
    assert_eq!(
        invalid(w.run(reason_code("lunch", "Lunch\r\nFORGED LOG LINE"))),
        (
            "reason_code.label",
            "must not contain control character U+000D".to_owned()
        )
    );
    assert_eq!(
        invalid(w.run(reason_code("lunch", &"x".repeat(257)))).1,
        "must be at most 256 characters"
    );
    let (field, reason) = invalid(w.run(upsert_agent(&[("sales\u{2066}", 5)], &[])));
    assert_eq!(field, "agent.attributes");
    assert!(reason.contains("U+2066"), "{reason}");
}

#[test]
fn task_specs_are_bounded() {
    let mut w = World::new();
    w.mrd("chat", 1);
    let submit = |w: &mut World, change: &dyn Fn(&mut TaskSpec)| {
        let mut s = spec("t", "chat", "", 5);
        change(&mut s);
        w.run(cmd::NewTask(s))
    };
    for priority in [0, 11] {
        assert_eq!(
            invalid(submit(&mut w, &|s| s.priority = priority)),
            ("priority", format!("must be 1 to 10, not {priority}"))
        );
    }
    assert_eq!(
        invalid(submit(&mut w, &|s| s.labels = vec!["l".into(); 65])),
        ("labels", "must have at most 64 labels, not 65".to_owned())
    );
    assert_eq!(
        invalid(submit(&mut w, &|s| s.labels = vec!["ok".into(), "x".repeat(257)])),
        (
            "labels",
            "label 1: must be at most 256 characters".to_owned()
        )
    );
    assert_eq!(
        invalid(submit(&mut w, &|s| {
            s.attributes = (0..65).map(|i| (format!("k{i}"), "v".into())).collect()
        })),
        (
            "attributes",
            "must have at most 64 attributes, not 65".to_owned()
        )
    );
    assert_eq!(
        invalid(submit(&mut w, &|s| {
            s.attributes = [("subject".into(), "x".repeat(1025))].into()
        })),
        (
            "attributes",
            "attribute \"subject\": must be at most 1024 characters".to_owned()
        )
    );
    assert_eq!(
        invalid(submit(&mut w, &|s| s.conversation_id =
            "c\u{1b}]0;pwned\u{7}".into())),
        (
            "conversation_id",
            "must not contain control character U+001B".to_owned()
        )
    );
    assert_eq!(
        invalid(submit(&mut w, &|s| s.last_agent_id = "\u{202d}ana".into())).0,
        "last_agent_id"
    );
    // Free text may span lines; at the limits everything is accepted.
    let events = submit(&mut w, &|s| {
        s.labels = vec!["x".repeat(256); 64];
        s.attributes = (0..64)
            .map(|i| (format!("k{i}"), "line one\nline\ttwo".into()))
            .collect();
    })
    .unwrap()
    .1;
    assert!(events.iter().any(|e| matches!(e, Event::TaskQueued { .. })));
}

#[test]
fn every_attribute_an_agent_may_have_can_be_named_in_a_step() {
    let longest = format!("_{}", "x".repeat(63));
    for name in ["sales", "lang.fr-CA_2", "_x", "Vip", "a-", longest.as_str()] {
        let mut w = World::new();
        w.mrd("chat", 1);
        w.queue("chat", "q", &[(&format!("{name} >= 3"), 0)], 0);
        w.agent("a", &[(name, 3)]);
        w.login_ready("a", "chat");
        assert_eq!(
            offer_of(&w.task("t1", "chat", "q", 5), "t1").as_deref(),
            Some("a"),
            "{name}"
        );
    }
}

#[test]
fn an_attribute_name_steps_cannot_read_is_refused_for_agents_too() {
    let too_long = "a".repeat(65);
    let cases = [
        ("salés", "character 'é' is not allowed in an attribute name"),
        ("навык", "character 'н' is not allowed in an attribute name"),
        ("3d", "character '3' is not allowed in an attribute name"),
        (".net", "character '.' is not allowed in an attribute name"),
        (
            "team@x",
            "character '@' is not allowed in an attribute name",
        ),
        (
            "sales\u{1b}",
            "character U+001B is not allowed in an attribute name",
        ),
        ("true", "'true' is a keyword of step expressions"),
        ("Or", "'Or' is a keyword of step expressions"),
        (
            too_long.as_str(),
            "attribute name is longer than 64 characters",
        ),
    ];
    let mut w = World::new();
    for (name, why) in cases {
        let (field, reason) = invalid(w.run(upsert_agent(&[(name, 3)], &[])));
        assert_eq!(field, "agent.attributes");
        assert!(reason.contains(why), "{name:?}: {reason}");
        // The alphabet is spelled out whenever a character is the problem.
        if why.starts_with("character") {
            assert!(
                reason.ends_with(
                    "(ASCII letters, digits, '_', '.' and '-', starting with a letter or '_')"
                ),
                "{reason}"
            );
        }
        let refused = Expr::parse(&format!("{name} >= 3"));
        assert!(refused.is_err(), "{name:?} parsed as an expression");
    }
    // The same names, refused by the expression reader with the reason that applies there.
    let message = |source: &str| Expr::parse(source).unwrap_err().to_string();
    assert!(message("salés >= 3").contains("unexpected character 'é' (attribute names are ASCII"));
    assert!(message("3d >= 3").contains("an attribute name starts with a letter or '_'"));
    assert!(message("true >= 3").contains("keywords, not attribute names"));
    assert_eq!(
        message(&format!("{too_long} >= 3")),
        "column 1: attribute name is longer than 64 characters"
    );
}

/// The world as a restart would rebuild it, once from the journal and once from a snapshot.
fn rebuilt(w: &World) -> [World; 2] {
    let mut replayed = World::new();
    for event in &w.events {
        replayed.state.apply(event);
    }
    let mut restored = World::new();
    restored.state.restore(w.state.snapshot());
    [replayed, restored].map(|mut copy| {
        copy.now = w.now;
        copy.events = w.events.clone();
        copy.state.finish_replay(w.now);
        copy
    })
}

/// Agent `a` READY on `chat` (max 2) with `t1` ringing, then NOT_READY (reason `lunch`); and
/// the same world rebuilt from its journal and from its snapshot.
fn not_ready_while_ringing() -> Vec<World> {
    let mut w = World::new();
    w.mrd_with(chat(2));
    w.reason("lunch", ReasonCategory::NotReady);
    w.agent("a", &[]);
    w.agent("b", &[]);
    w.login_ready("a", "chat");
    w.set_state("b", Req::Login, "chat").unwrap();
    assert_eq!(
        offer_of(&w.task("t1", "chat", "", 5), "t1").as_deref(),
        Some("a")
    );
    let events = w
        .set_state_reason("a", Req::NotReady, "chat", "lunch")
        .unwrap();
    // Still ringing: the agent stays RESERVED, and the notice carries the reason it gave.
    assert!(events.iter().any(|e| matches!(
        e,
        Event::AgentStateChanged { agent_id, state: AgentState::Reserved, reason_code, .. }
            if agent_id == "a" && reason_code == "lunch"
    )));
    assert_eq!(w.agent_state("a", "chat"), AgentState::Reserved);
    // Below its max, but asked for a break: no second offer.
    assert!(offers(&w.task("t2", "chat", "", 5)).is_empty());
    let [replayed, restored] = rebuilt(&w);
    vec![w, replayed, restored]
}

#[test]
fn not_ready_while_an_offer_rings_applies_after_the_accepted_task() {
    for (i, mut w) in not_ready_while_ringing().into_iter().enumerate() {
        let events = w.accept("t1", "a");
        assert!(offers(&events).is_empty(), "world {i}");
        assert_eq!(
            w.agent_state("a", "chat"),
            AgentState::PendingNotReady,
            "world {i}"
        );
        let events = w.task_state("t1", TaskState::Closed).unwrap();
        assert!(offers(&events).is_empty(), "world {i}");
        assert_eq!(
            w.agent_state("a", "chat"),
            AgentState::NotReady,
            "world {i}"
        );
        assert_eq!(w.get_agent("a").mrds[0].reason_code, "lunch", "world {i}");
        // READY again: back to work, t2 first.
        let events = w.set_state("a", Req::Ready, "chat").unwrap();
        assert_eq!(offer_of(&events, "t2").as_deref(), Some("a"), "world {i}");
    }
}

#[test]
fn not_ready_while_an_offer_rings_applies_on_rona() {
    for (i, mut w) in not_ready_while_ringing().into_iter().enumerate() {
        let events = w.advance(20_000);
        assert!(
            events.iter().any(|e| matches!(
                e,
                Event::TaskRequeued { task_id, reason: RequeueReason::Rona, .. } if task_id == "t1"
            )),
            "world {i}"
        );
        assert!(offers(&events).is_empty(), "world {i}");
        assert_eq!(
            w.agent_state("a", "chat"),
            AgentState::NotReady,
            "world {i}"
        );
        // The agent had asked for its break before the offer timed out: its reason stands.
        assert_eq!(w.get_agent("a").mrds[0].reason_code, "lunch", "world {i}");
        assert_eq!(w.get_task("t1").state, TaskState::Queued, "world {i}");
        // Another agent takes it.
        let events = w.set_state("b", Req::Ready, "chat").unwrap();
        assert_eq!(offer_of(&events, "t1").as_deref(), Some("b"), "world {i}");
    }
}

#[test]
fn not_ready_while_an_offer_rings_applies_on_reject() {
    for (i, mut w) in not_ready_while_ringing().into_iter().enumerate() {
        let events = w.ok(cmd::RejectTask {
            task_id: "t1".into(),
            agent_id: "a".into(),
        });
        assert!(offers(&events).is_empty(), "world {i}: no new offer");
        assert_eq!(
            w.agent_state("a", "chat"),
            AgentState::NotReady,
            "world {i}"
        );
        assert_eq!(w.get_agent("a").mrds[0].reason_code, "lunch", "world {i}");
        assert!(events.iter().any(|e| matches!(
            e,
            Event::AgentStateChanged { agent_id, state: AgentState::NotReady, .. } if agent_id == "a"
        )));
    }
}

#[test]
fn ready_while_an_offer_rings_withdraws_the_pending_not_ready() {
    for mut w in not_ready_while_ringing() {
        w.set_state("a", Req::Ready, "chat").unwrap();
        assert_eq!(w.agent_state("a", "chat"), AgentState::Reserved);
        // Taking work again: below its max, it is offered t2 as soon as it accepts t1.
        let events = w.accept("t1", "a");
        assert_eq!(offer_of(&events, "t2").as_deref(), Some("a"));
        w.accept("t2", "a");
        assert_eq!(w.agent_state("a", "chat"), AgentState::Busy);
    }
}

#[test]
fn a_pending_not_ready_waits_for_the_ringing_offer_when_the_last_task_ends() {
    let mut w = World::new();
    w.mrd_with(chat(2));
    w.agent("a", &[]);
    w.login_ready("a", "chat");
    w.task("t1", "chat", "", 5);
    w.accept("t1", "a");
    assert_eq!(
        offer_of(&w.task("t2", "chat", "", 5), "t2").as_deref(),
        Some("a")
    );
    w.set_state("a", Req::NotReady, "chat").unwrap();
    // t1 ends while t2 rings: the break waits for t2.
    w.task_state("t1", TaskState::Closed).unwrap();
    assert_eq!(w.agent_state("a", "chat"), AgentState::Reserved);
    w.accept("t2", "a");
    assert_eq!(w.agent_state("a", "chat"), AgentState::PendingNotReady);
    w.task_state("t2", TaskState::Closed).unwrap();
    assert_eq!(w.agent_state("a", "chat"), AgentState::NotReady);
}
