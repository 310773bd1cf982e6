//! Disposition codes: per queue, the codes an agent gives when a task it handled closes,
//! optional or required, on the engine's state with a clock the test moves.

mod common;

use common::replay::ReplayCheck;
use common::world::World;
use switchboard::domain::commands as cmd;
use switchboard::domain::routing::config::{LogoutAction, MrdConfig, QueueConfig, RonaAction};
use switchboard::domain::routing::disposition::{DispositionCode, Dispositions, TaskDisposition};
use switchboard::domain::routing::model::{CloseReason, RequestedAgentState as Req, TaskState};
use switchboard::domain::{DomainError, Event};

fn chat(wrap_up_timeout_ms: u64) -> MrdConfig {
    MrdConfig {
        name: "chat".into(),
        max_tasks: 2,
        interruptible: false,
        offer_timeout_ms: 20_000,
        wrap_up_timeout_ms,
        rona_action: RonaAction::NotReady,
        logout_action: LogoutAction::Close,
        blocks: Vec::new(),
        classifiers: Vec::new(),
        unclassified_queue: String::new(),
        unclassified_priority: 0,
    }
}

fn codes(required: bool) -> Dispositions {
    Dispositions {
        codes: ["sale", "no_sale"]
            .into_iter()
            .map(|c| DispositionCode {
                code: c.into(),
                label: c.replace('_', " "),
            })
            .collect(),
        required,
    }
}

/// A world with MRD `chat`, a `sales` queue with the codes, and ana holding task `t1`.
fn world(wrap_up_timeout_ms: u64, required: bool) -> World {
    let mut w = World::new();
    w.mrd_with(chat(wrap_up_timeout_ms));
    w.ok(cmd::UpsertQueue(QueueConfig {
        name: "sales".into(),
        dispositions: codes(required),
        ..QueueConfig::built_in_default("chat")
    }));
    w.agent("ana", &[]);
    w.login_ready("ana", "chat");
    w.task("t1", "chat", "sales", 5);
    w.accept("t1", "ana");
    w
}

fn close_disposition(events: &[Event]) -> TaskDisposition {
    events
        .iter()
        .find_map(|e| match e {
            Event::TaskStateChanged {
                state: TaskState::Closed,
                disposition,
                ..
            } => Some(disposition.clone()),
            _ => None,
        })
        .expect("the task closed")
}

#[test]
fn a_close_records_the_code_given_on_the_task_and_its_event() {
    let mut w = world(0, false);
    let mut replay = ReplayCheck::default();
    replay.check(&w, "before the close");
    let events = w.task_state_coded("t1", TaskState::Closed, "sale").unwrap();
    let recorded = TaskDisposition {
        code: "sale".into(),
        missing: false,
    };
    assert_eq!(close_disposition(&events), recorded);
    assert_eq!(w.get_task("t1").disposition, recorded);
    replay.check(&w, "after the close");
}

#[test]
fn an_optional_code_may_be_left_out() {
    let mut w = world(0, false);
    let events = w.task_state("t1", TaskState::Closed).unwrap();
    assert_eq!(close_disposition(&events), TaskDisposition::default());
}

#[test]
fn an_unknown_code_is_invalid_and_names_the_field() {
    let mut w = world(0, true);
    match w.task_state_coded("t1", TaskState::Closed, "refund") {
        Err(DomainError::InvalidArgument { field, reason }) => {
            assert_eq!(field, "disposition_code");
            assert!(reason.contains("'refund'") && reason.contains("sale, no_sale"));
        }
        other => panic!("expected INVALID_ARGUMENT, got {other:?}"),
    }
    assert_eq!(w.get_task("t1").state, TaskState::Active, "nothing changed");
}

#[test]
fn a_required_code_left_out_is_refused_until_given() {
    let mut w = world(0, true);
    for state in [TaskState::Closed, TaskState::WrappingUp] {
        match w.task_state("t1", state) {
            Err(DomainError::FailedPrecondition(message)) => {
                assert!(message.contains("requires a disposition code"), "{message}");
            }
            other => panic!("{state}: expected FAILED_PRECONDITION, got {other:?}"),
        }
    }
    // WRAPPING_UP on an MRD without wrap-up closes at once: the code comes with it.
    let events = w
        .task_state_coded("t1", TaskState::WrappingUp, "no_sale")
        .unwrap();
    assert_eq!(close_disposition(&events).code, "no_sale");
}

#[test]
fn a_code_is_taken_only_when_a_handled_task_closes() {
    let mut w = world(30_000, true);
    // Pausing, or starting a timed wrap-up, closes nothing.
    for state in [TaskState::Paused, TaskState::WrappingUp] {
        assert!(
            matches!(
                w.task_state_coded("t1", state, "sale"),
                Err(DomainError::FailedPrecondition(_))
            ),
            "{state}"
        );
    }
    // A task nobody handled is cancelled without a code, even in a queue that requires one.
    w.task("t2", "chat", "sales", 5);
    assert!(matches!(
        w.task_state_coded("t2", TaskState::Closed, "sale"),
        Err(DomainError::FailedPrecondition(_))
    ));
    let events = w.task_state("t2", TaskState::Closed).unwrap();
    assert_eq!(close_disposition(&events), TaskDisposition::default());
    // In wrap-up, the close gives the code.
    w.task_state("t1", TaskState::WrappingUp).unwrap();
    let events = w.task_state_coded("t1", TaskState::Closed, "sale").unwrap();
    assert_eq!(close_disposition(&events).code, "sale");
}

#[test]
fn the_wrap_up_timer_closes_without_a_required_code_and_records_it_missing() {
    let mut w = world(30_000, true);
    let mut replay = ReplayCheck::default();
    w.task_state("t1", TaskState::WrappingUp).unwrap();
    replay.check(&w, "in wrap-up");
    let events = w.advance(30_000);
    assert_eq!(
        close_disposition(&events),
        TaskDisposition {
            code: String::new(),
            missing: true,
        }
    );
    let task = w.get_task("t1");
    assert_eq!(
        (task.state, task.close_reason, task.disposition.missing),
        (TaskState::Closed, Some(CloseReason::Done), true)
    );
    replay.check(&w, "closed by the timer");
}

#[test]
fn a_logout_closes_without_a_required_code_and_records_it_missing() {
    let mut w = world(0, true);
    let events = w.set_state("ana", Req::Logout, "chat").unwrap();
    assert!(close_disposition(&events).missing);
    // In a queue that does not require one, nothing is missing.
    let mut w = world(0, false);
    let events = w.set_state("ana", Req::Logout, "chat").unwrap();
    assert!(!close_disposition(&events).missing);
}

#[test]
fn queues_validate_their_codes_naming_the_field() {
    let mut w = World::new();
    w.mrd_with(chat(0));
    let upsert = |dispositions| {
        cmd::UpsertQueue(QueueConfig {
            name: "sales".into(),
            dispositions,
            ..QueueConfig::built_in_default("chat")
        })
    };
    let field_of = |result: Result<_, DomainError>| match result {
        Err(DomainError::InvalidArgument { field, .. }) => field,
        other => panic!("expected INVALID_ARGUMENT, got {other:?}"),
    };
    let required_without_codes = Dispositions {
        codes: vec![],
        required: true,
    };
    assert_eq!(
        field_of(w.run(upsert(required_without_codes))),
        "queue.disposition_required"
    );
    let mut twice = codes(false);
    twice.codes.push(twice.codes[0].clone());
    assert_eq!(
        field_of(w.run(upsert(twice))),
        "queue.disposition_codes.code"
    );
    let mut bad_code = codes(false);
    bad_code.codes[1].code = "no sale".into();
    assert_eq!(
        field_of(w.run(upsert(bad_code))),
        "queue.disposition_codes.code"
    );
    let mut bad_label = codes(false);
    bad_label.codes[0].label = "line\nbreak".into();
    assert_eq!(
        field_of(w.run(upsert(bad_label))),
        "queue.disposition_codes.label"
    );
    let mut too_many = codes(false);
    too_many.codes = (0..101)
        .map(|i| DispositionCode {
            code: format!("c{i}"),
            label: String::new(),
        })
        .collect();
    assert_eq!(field_of(w.run(upsert(too_many))), "queue.disposition_codes");
    w.ok(upsert(codes(true)));
}
