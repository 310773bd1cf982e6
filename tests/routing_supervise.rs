//! Supervisor moves: a supervisor or an admin requeues any task and sets any agent's next
//! state (applied when the agent's work allows), each journaled with who asked; on the
//! engine's state with a clock the test moves.

mod common;

use common::replay::ReplayCheck;
use common::world::{World, offer_of};
use switchboard::domain::commands::{self as cmd, Command};
use switchboard::domain::routing::config::{
    LogoutAction, MrdConfig, QueueConfig, ReasonCategory, RonaAction,
};
use switchboard::domain::routing::disposition::{DispositionCode, Dispositions};
use switchboard::domain::routing::model::{
    AgentState, RequestedAgentState as Req, RequeueReason, TaskState,
};
use switchboard::domain::routing::supervise::QueueMove;
use switchboard::domain::{Actor, DomainError, Event, Principal, Role};

const OFFER_TIMEOUT_MS: u64 = 20_000;

fn chat(wrap_up_timeout_ms: u64) -> MrdConfig {
    MrdConfig {
        name: "chat".into(),
        max_tasks: 2,
        interruptible: false,
        offer_timeout_ms: OFFER_TIMEOUT_MS,
        wrap_up_timeout_ms,
        rona_action: RonaAction::NotReady,
        logout_action: LogoutAction::Close,
        blocks: Vec::new(),
        classifiers: Vec::new(),
        unclassified_queue: String::new(),
        unclassified_priority: 0,
    }
}

fn principal(actor: Actor, role: Role) -> Principal {
    Principal {
        actor,
        roles: [role].into(),
    }
}

fn sue() -> Principal {
    principal(Actor::Account("sue".into()), Role::Supervisor)
}

fn admin() -> Principal {
    principal(Actor::Account("root".into()), Role::Admin)
}

fn agent(id: &str) -> Principal {
    principal(Actor::Agent(id.into()), Role::Agent)
}

fn channel() -> Principal {
    principal(Actor::Account("channel".into()), Role::Integration)
}

/// Runs a command as `who`, recording its events in the world.
fn run_as<C: Command>(
    w: &mut World,
    who: &Principal,
    command: C,
) -> Result<(C::Answer, Vec<Event>), DomainError> {
    let (answer, decided) = w.state.execute_as(command, who, w.now)?;
    let events: Vec<Event> = decided.into_iter().map(|d| d.event).collect();
    w.events.extend(events.iter().cloned());
    Ok((answer, events))
}

fn requeue(
    w: &mut World,
    who: &Principal,
    task_id: &str,
    queue: &str,
    priority: Option<u8>,
) -> Result<Vec<Event>, DomainError> {
    let command = cmd::RequeueTask {
        task_id: task_id.into(),
        queue: queue.into(),
        priority,
    };
    run_as(w, who, command).map(|(_, e)| e)
}

fn next_state(
    w: &mut World,
    who: &Principal,
    agent_id: &str,
    state: Req,
    reason_code: &str,
) -> Result<Vec<Event>, DomainError> {
    let command = cmd::SetAgentNextState {
        agent_id: agent_id.into(),
        state,
        mrd: "chat".into(),
        reason_code: reason_code.into(),
    };
    run_as(w, who, command).map(|(_, e)| e)
}

/// MRD `chat` (max 2), queue `sales` (anyone with `sales`) and queue `vip` (first only `vip`
/// agents for 10 s, then anyone; tasks live 60 s); agents ana and ben with `sales`, logged
/// out; reason codes `lunch` (NOT_READY) and `shift_end` (LOGOUT).
fn world(wrap_up_timeout_ms: u64) -> World {
    let mut w = World::new();
    w.mrd_with(chat(wrap_up_timeout_ms));
    w.queue("chat", "sales", &[("sales >= 1", 0)], 0);
    w.queue("chat", "vip", &[("vip >= 1", 10_000), ("TRUE", 0)], 60_000);
    w.reason("lunch", ReasonCategory::NotReady);
    w.reason("shift_end", ReasonCategory::Logout);
    w.agent("ana", &[("sales", 1)]);
    w.agent("ben", &[("sales", 1)]);
    w
}

fn requeued(events: &[Event]) -> (String, RequeueReason, u8, Option<QueueMove>) {
    events
        .iter()
        .find_map(|e| match e {
            Event::TaskRequeued {
                agent_id,
                reason,
                priority,
                moved_to,
                ..
            } => Some((agent_id.clone(), *reason, *priority, moved_to.clone())),
            _ => None,
        })
        .expect("the task was requeued")
}

fn logged_out(events: &[Event], agent: &str) -> bool {
    events
        .iter()
        .any(|e| matches!(e, Event::AgentLoggedOut { agent_id, .. } if agent_id == agent))
}

#[track_caller]
fn assert_failed(result: Result<Vec<Event>, DomainError>, what: &str) -> String {
    match result {
        Err(DomainError::FailedPrecondition(message)) => message,
        other => panic!("{what}: expected FAILED_PRECONDITION, got {other:?}"),
    }
}

#[track_caller]
fn assert_denied(result: Result<Vec<Event>, DomainError>, what: &str) {
    assert!(
        matches!(result, Err(DomainError::PermissionDenied(_))),
        "{what}: expected PERMISSION_DENIED, got {result:?}"
    );
}

#[test]
fn a_waiting_task_moves_to_another_queue_at_its_first_step_and_keeps_its_arrival() {
    let mut w = world(0);
    w.task("t1", "chat", "sales", 5);
    let arrived = w.now;
    w.advance(5_000);
    let events = requeue(&mut w, &sue(), "t1", "vip", None).unwrap();
    let (agent_id, reason, priority, moved) = requeued(&events);
    assert_eq!(
        (agent_id.as_str(), reason, priority),
        ("", RequeueReason::Supervisor, 5)
    );
    assert_eq!(
        moved,
        Some(QueueMove {
            queue: "vip".into(),
            ttl_deadline: Some(w.now + 60_000),
        })
    );
    let task = w.get_task("t1");
    assert_eq!(
        (task.spec.queue.as_str(), task.step, task.queued_at),
        ("vip", 0, arrived)
    );
    assert_eq!(task.step_deadline, Some(w.now + 10_000));
    let stats = |w: &mut World, queue: &str| {
        let query = cmd::GetQueueStats {
            mrd: "chat".into(),
            queue: queue.into(),
        };
        w.run(query).unwrap().0
    };
    assert!(stats(&mut w, "sales").waiting_by_priority.is_empty());
    let vip = stats(&mut w, "vip");
    assert_eq!(vip.waiting_by_priority, [(5, 1)].into());
    assert_eq!(vip.longest_wait_ms, 5_000, "its wait goes on");

    // It searches under vip's steps: ana has no `vip`, so only the second step reaches her.
    let events = w.login_ready("ana", "chat");
    assert_eq!(offer_of(&events, "t1"), None);
    let events = w.advance(10_000);
    assert_eq!(offer_of(&events, "t1").as_deref(), Some("ana"));
}

#[test]
fn a_waiting_task_changes_priority_and_keeps_its_place_by_arrival_within_it() {
    let mut w = world(0);
    for t in ["t1", "t2", "t3"] {
        w.task(t, "chat", "sales", 5);
    }
    requeue(&mut w, &sue(), "t3", "", Some(7)).unwrap();
    requeue(&mut w, &sue(), "t2", "", Some(7)).unwrap();
    assert_eq!(w.get_task("t2").priority, 7);
    // Same priority, t2 arrived first: t2, then t3, then t1.
    let events = w.login_ready("ana", "chat");
    assert_eq!(offer_of(&events, "t2").as_deref(), Some("ana"));
    let events = w.accept("t2", "ana");
    assert_eq!(offer_of(&events, "t3").as_deref(), Some("ana"));

    // A move that changes nothing is refused, and journals nothing.
    let before = w.events.len();
    let message = assert_failed(requeue(&mut w, &sue(), "t1", "sales", None), "no change");
    assert!(message.contains("already"), "{message}");
    assert_eq!(w.events.len(), before);
}

#[test]
fn an_offered_task_is_rescinded_and_goes_ahead_of_all_but_not_back_to_that_agent() {
    let mut w = world(0);
    w.login_ready("ana", "chat");
    let events = w.task("t1", "chat", "sales", 5);
    assert_eq!(offer_of(&events, "t1").as_deref(), Some("ana"));
    let events = requeue(&mut w, &sue(), "t1", "", None).unwrap();
    let (agent_id, reason, priority, moved) = requeued(&events);
    assert_eq!(
        (agent_id.as_str(), reason, priority, moved),
        ("ana", RequeueReason::Supervisor, 11, None)
    );
    let task = w.get_task("t1");
    assert_eq!((task.state, task.offer.clone()), (TaskState::Queued, None));
    assert!(task.declined_by.contains("ana"));
    // Ana is not penalised: READY, and not offered it again.
    assert_eq!(w.agent_state("ana", "chat"), AgentState::Ready);
    assert_eq!(w.get_agent("ana").pending_offer, None);
    let events = w.login_ready("ben", "chat");
    assert_eq!(offer_of(&events, "t1").as_deref(), Some("ben"));
}

#[test]
fn a_task_in_hand_is_taken_from_its_agents_and_offered_to_another() {
    for held in [TaskState::Active, TaskState::Paused] {
        let mut w = world(0);
        w.login_ready("ana", "chat");
        w.task("t1", "chat", "sales", 5);
        w.accept("t1", "ana");
        if held == TaskState::Paused {
            w.task_state("t1", TaskState::Paused).unwrap();
        }
        w.login_ready("ben", "chat");
        let events = requeue(&mut w, &sue(), "t1", "", Some(9)).unwrap();
        assert_eq!(requeued(&events).0, "ana", "{held}");
        assert_eq!(offer_of(&events, "t1").as_deref(), Some("ben"), "{held}");
        let ana = w.get_agent("ana");
        assert!(
            ana.mrds[0].active_tasks.is_empty(),
            "{held}: ana holds nothing"
        );
        assert_eq!(w.agent_state("ana", "chat"), AgentState::Ready, "{held}");
        let task = w.get_task("t1");
        assert_eq!((task.owner.clone(), task.priority), (None, 9), "{held}");
    }
}

#[test]
fn only_a_waiting_offered_or_held_task_can_be_requeued() {
    let mut w = world(30_000);
    w.login_ready("ana", "chat");
    w.task("t1", "chat", "sales", 5);
    w.accept("t1", "ana");
    w.task_state("t1", TaskState::WrappingUp).unwrap();
    let message = assert_failed(requeue(&mut w, &sue(), "t1", "", None), "wrapping up");
    assert!(message.contains("WRAPPING_UP"), "{message}");
    w.task_state("t1", TaskState::Closed).unwrap();
    assert_failed(requeue(&mut w, &sue(), "t1", "", None), "closed");
}

#[test]
fn a_requeue_names_what_is_wrong() {
    let mut w = world(0);
    w.mrd_with(MrdConfig {
        name: "email".into(),
        ..chat(0)
    });
    w.queue("email", "billing", &[("TRUE", 0)], 0);
    w.task("t1", "chat", "sales", 5);
    for (task, queue, what) in [
        ("t9", "", "an unknown task"),
        ("t1", "nowhere", "an unknown queue"),
        ("t1", "billing", "a queue of another MRD"),
    ] {
        assert!(
            matches!(
                requeue(&mut w, &sue(), task, queue, None),
                Err(DomainError::NotFound { .. })
            ),
            "{what}"
        );
    }
    for priority in [0, 12] {
        assert!(
            matches!(
                requeue(&mut w, &sue(), "t1", "", Some(priority)),
                Err(DomainError::InvalidArgument {
                    field: "priority",
                    ..
                })
            ),
            "priority {priority}"
        );
    }
    assert_eq!(w.get_task("t1").spec.queue, "sales", "nothing moved");
}

#[test]
fn only_supervisors_and_admins_may_requeue() {
    let mut w = world(0);
    w.login_ready("ana", "chat");
    // The channel creates the task; ana holds it. Neither may requeue it.
    let spec = common::world::spec("t1", "chat", "sales", 5);
    run_as(&mut w, &channel(), cmd::NewTask(spec)).unwrap();
    w.accept("t1", "ana");
    assert_denied(requeue(&mut w, &agent("ana"), "t1", "", None), "its agent");
    assert_denied(requeue(&mut w, &channel(), "t1", "", None), "its channel");
    assert_eq!(w.get_task("t1").state, TaskState::Active, "nothing changed");
    requeue(&mut w, &admin(), "t1", "", None).expect("an admin may");
    w.login_ready("ben", "chat");
    requeue(&mut w, &sue(), "t1", "", None).expect("a supervisor may");
}

#[test]
fn next_state_ready_applies_at_once_and_names_the_supervisor() {
    let mut w = world(0);
    w.set_state("ana", Req::Login, "chat").unwrap();
    assert_eq!(w.agent_state("ana", "chat"), AgentState::NotReady);
    let events = next_state(&mut w, &sue(), "ana", Req::Ready, "").unwrap();
    assert!(events.iter().any(|e| matches!(
        e,
        Event::AgentNextStateSet { agent_id, state: Req::Ready, by, .. }
            if agent_id == "ana" && *by == sue().actor
    )));
    assert_eq!(w.agent_state("ana", "chat"), AgentState::Ready);
}

#[test]
fn next_state_not_ready_waits_for_the_agents_tasks() {
    let mut w = world(0);
    w.login_ready("ana", "chat");
    w.task("t1", "chat", "sales", 5);
    w.accept("t1", "ana");
    next_state(&mut w, &sue(), "ana", Req::NotReady, "lunch").unwrap();
    assert_eq!(w.agent_state("ana", "chat"), AgentState::PendingNotReady);
    let events = w.task("t2", "chat", "sales", 5);
    assert_eq!(offer_of(&events, "t2"), None, "offered nothing meanwhile");
    w.task_state("t1", TaskState::Closed).unwrap();
    assert_eq!(w.agent_state("ana", "chat"), AgentState::NotReady);
    assert_eq!(w.get_agent("ana").mrds[0].reason_code, "lunch");
}

#[test]
fn next_state_logout_waits_until_the_agents_tasks_end_wrap_up_included() {
    let mut w = world(30_000);
    w.login_ready("ana", "chat");
    w.task("t1", "chat", "sales", 5);
    w.accept("t1", "ana");
    let events = next_state(&mut w, &sue(), "ana", Req::Logout, "shift_end").unwrap();
    assert!(!logged_out(&events, "ana"), "ana still works");
    let view = w.get_agent("ana");
    assert_eq!(view.mrds[0].logout_pending_by, Some(sue().actor));
    assert_eq!(w.agent_state("ana", "chat"), AgentState::PendingNotReady);
    let events = w.task("t2", "chat", "sales", 5);
    assert_eq!(offer_of(&events, "t2"), None, "offered nothing meanwhile");
    let events = w.task_state("t1", TaskState::WrappingUp).unwrap();
    assert!(!logged_out(&events, "ana"), "wrap-up is work");
    let events = w.advance(30_000);
    assert!(logged_out(&events, "ana"), "out once wrap-up ended");
    assert_eq!(w.agent_state("ana", "chat"), AgentState::Logout);
    assert_eq!(w.get_task("t2").state, TaskState::Queued);
}

#[test]
fn next_state_logout_waits_for_a_ringing_offer() {
    let mut w = world(0);
    w.login_ready("ana", "chat");
    w.task("t1", "chat", "sales", 5);
    let events = next_state(&mut w, &sue(), "ana", Req::Logout, "").unwrap();
    assert!(!logged_out(&events, "ana"), "the offer rings");
    let events = w.advance(OFFER_TIMEOUT_MS);
    assert!(logged_out(&events, "ana"), "out once the offer went");
    assert_eq!(w.get_task("t1").state, TaskState::Queued);
}

#[test]
fn next_state_logout_of_a_free_agent_applies_at_once() {
    let mut w = world(0);
    w.login_ready("ana", "chat");
    let events = next_state(&mut w, &sue(), "ana", Req::Logout, "shift_end").unwrap();
    assert!(logged_out(&events, "ana"));
    assert_eq!(w.agent_state("ana", "chat"), AgentState::Logout);
}

#[test]
fn the_agents_own_ready_withdraws_a_pending_logout() {
    let mut w = world(0);
    w.login_ready("ana", "chat");
    w.task("t1", "chat", "sales", 5);
    w.accept("t1", "ana");
    next_state(&mut w, &sue(), "ana", Req::Logout, "").unwrap();
    w.set_state("ana", Req::Ready, "chat").unwrap();
    assert_eq!(w.get_agent("ana").mrds[0].logout_pending_by, None);
    let events = w.task_state("t1", TaskState::Closed).unwrap();
    assert!(!logged_out(&events, "ana"));
    assert_eq!(w.agent_state("ana", "chat"), AgentState::Ready);
}

#[test]
fn only_supervisors_and_admins_may_set_a_next_state() {
    let mut w = world(0);
    w.login_ready("ana", "chat");
    w.login_ready("ben", "chat");
    assert_denied(
        next_state(&mut w, &agent("ana"), "ben", Req::NotReady, ""),
        "another agent",
    );
    assert_denied(
        next_state(&mut w, &agent("ana"), "ana", Req::Logout, ""),
        "the agent itself",
    );
    assert_denied(
        next_state(&mut w, &channel(), "ana", Req::NotReady, ""),
        "an integration",
    );
    assert_eq!(
        w.agent_state("ben", "chat"),
        AgentState::Ready,
        "nothing changed"
    );
    next_state(&mut w, &admin(), "ben", Req::NotReady, "").expect("an admin may");
}

#[test]
fn a_next_state_names_what_is_wrong() {
    let mut w = world(0);
    w.login_ready("ana", "chat");
    assert!(matches!(
        next_state(&mut w, &sue(), "ana", Req::Login, ""),
        Err(DomainError::InvalidArgument { field: "state", .. })
    ));
    assert!(matches!(
        next_state(&mut w, &sue(), "ana", Req::Logout, "lunch"),
        Err(DomainError::InvalidArgument {
            field: "reason_code",
            ..
        })
    ));
    assert!(matches!(
        next_state(&mut w, &sue(), "zoe", Req::NotReady, ""),
        Err(DomainError::NotFound { .. })
    ));
    assert_failed(
        next_state(&mut w, &sue(), "ben", Req::NotReady, ""),
        "ben is not logged in",
    );
}

#[test]
fn pending_moves_and_dispositions_survive_replay_and_snapshots() {
    let mut w = world(30_000);
    w.ok(cmd::UpsertQueue(QueueConfig {
        name: "sales".into(),
        dispositions: Dispositions {
            codes: vec![DispositionCode {
                code: "sale".into(),
                label: "Sale".into(),
            }],
            required: true,
        },
        ..QueueConfig::built_in_default("chat")
    }));
    let mut replay = ReplayCheck::default();
    w.login_ready("ana", "chat");
    w.login_ready("ben", "chat");
    w.task("t1", "chat", "sales", 5);
    w.accept("t1", "ana");
    w.task("t2", "chat", "sales", 5);
    w.task("t3", "chat", "sales", 5);
    replay.check(&w, "configured and working");
    next_state(&mut w, &sue(), "ana", Req::Logout, "shift_end").unwrap();
    next_state(&mut w, &sue(), "ben", Req::NotReady, "lunch").unwrap();
    requeue(&mut w, &sue(), "t3", "vip", Some(8)).unwrap();
    replay.check(&w, "a LOGOUT and a NOT_READY pending, a task moved");
    w.task_state("t1", TaskState::WrappingUp).unwrap();
    replay.check(&w, "in wrap-up");
    let events = w.task_state_coded("t1", TaskState::Closed, "sale").unwrap();
    assert!(logged_out(&events, "ana"));
    assert_eq!(w.get_task("t1").disposition.code, "sale");
    replay.check(&w, "closed with its code, and ana logged out");
}
