//! Classification: an MRD's ordered classifiers pick the queue and priority of a task that
//! names no queue; the first match wins, with the MRD's default for the rest.

mod common;

use common::replay::rebuilt;
use common::world::{World, offer_of, spec};
use switchboard::domain::commands as cmd;
use switchboard::domain::routing::classify::{Classifier, QueueChoice};
use switchboard::domain::routing::config::{LogoutAction, MrdConfig, RonaAction};
use switchboard::domain::routing::expr::TaskExpr;
use switchboard::domain::routing::model::TaskSpec;
use switchboard::domain::{DomainError, Event};

fn classifier(name: &str, expression: &str, queue: &str, priority: u8) -> Classifier {
    Classifier {
        name: name.into(),
        expression: TaskExpr::parse(expression).unwrap(),
        queue: queue.into(),
        priority,
    }
}

fn chat(classifiers: Vec<Classifier>) -> MrdConfig {
    MrdConfig {
        name: "chat".into(),
        max_tasks: 1,
        interruptible: false,
        offer_timeout_ms: 20_000,
        wrap_up_timeout_ms: 0,
        rona_action: RonaAction::NotReady,
        logout_action: LogoutAction::Close,
        classifiers,
        unclassified_queue: String::new(),
        unclassified_priority: 0,
        blocks: Vec::new(),
    }
}

/// A chat MRD with queues `vip`, `web` and `triage`, classified by channel and label.
fn world() -> World {
    let mut w = World::new();
    w.mrd_with(chat(vec![
        classifier("web vip", "channel = web AND vip", "vip", 9),
        classifier("web", "channel = web", "web", 0),
        classifier("big order", "amount >= 1000", "vip", 7),
    ]));
    for queue in ["vip", "web", "triage"] {
        w.queue("chat", queue, &[("TRUE", 0)], 0);
    }
    w
}

fn task(id: &str, queue: &str, attributes: &[(&str, &str)], labels: &[&str]) -> TaskSpec {
    let mut s = spec(id, "chat", queue, 4);
    s.attributes = attributes
        .iter()
        .map(|(k, v)| ((*k).into(), (*v).into()))
        .collect();
    s.labels = labels.iter().map(|l| (*l).into()).collect();
    s
}

/// The queue, priority and choice the task's `TaskQueued` says.
fn queued(events: &[Event]) -> (String, u8, QueueChoice) {
    events
        .iter()
        .find_map(|e| match e {
            Event::TaskQueued {
                spec,
                priority,
                choice,
                ..
            } => Some((spec.queue.clone(), *priority, choice.clone())),
            _ => None,
        })
        .expect("a TaskQueued")
}

fn by(index: usize, name: &str) -> QueueChoice {
    QueueChoice::Classifier {
        index,
        name: name.into(),
    }
}

#[test]
fn first_matching_classifier_picks_queue_and_priority() {
    let mut w = world();
    // Matches the first and the second: the first wins, with its priority.
    let e = w.task_spec(task("t1", "", &[("channel", "web")], &["vip"]));
    assert_eq!(queued(&e), ("vip".into(), 9, by(0, "web vip")));
    // The second: priority 0 keeps the task's own.
    let e = w.task_spec(task("t2", "", &[("channel", "web")], &[]));
    assert_eq!(queued(&e), ("web".into(), 4, by(1, "web")));
    // A number compares as a number, not as text.
    let e = w.task_spec(task("t3", "", &[("amount", "1500")], &[]));
    assert_eq!(queued(&e), ("vip".into(), 7, by(2, "big order")));
    let e = w.task_spec(task("t4", "", &[("amount", "999")], &[]));
    assert_eq!(queued(&e), ("default".into(), 4, QueueChoice::Unclassified));
    // The task itself shows where it waits.
    assert_eq!(w.get_task("t1").spec.queue, "vip");
    assert_eq!(w.get_task("t1").priority, 9);
}

#[test]
fn a_task_that_names_a_queue_is_not_classified() {
    let mut w = world();
    let e = w.task_spec(task("t1", "triage", &[("channel", "web")], &["vip"]));
    assert_eq!(queued(&e), ("triage".into(), 4, QueueChoice::Channel));
    // An unknown name still goes to `default`, unclassified as before.
    let e = w.task_spec(task("t2", "nowhere", &[("channel", "web")], &[]));
    assert_eq!(queued(&e), ("default".into(), 4, QueueChoice::Channel));
}

#[test]
fn unmatched_tasks_get_the_mrds_default_queue_and_priority() {
    let mut w = world();
    w.mrd_with(MrdConfig {
        unclassified_queue: "triage".into(),
        unclassified_priority: 2,
        ..chat(vec![classifier("web", "channel = web", "web", 0)])
    });
    let e = w.task_spec(task("t1", "", &[("channel", "phone")], &[]));
    assert_eq!(queued(&e), ("triage".into(), 2, QueueChoice::Unclassified));
}

#[test]
fn missing_attributes_match_no_comparison() {
    let mut w = World::new();
    w.mrd_with(chat(vec![
        classifier("not web", "channel != web", "web", 0),
        classifier("flag", "vip", "vip", 0),
    ]));
    w.queue("chat", "web", &[("TRUE", 0)], 0);
    w.queue("chat", "vip", &[("TRUE", 0)], 0);
    // No `channel`: `!=` does not hold either.
    let e = w.task_spec(task("t1", "", &[], &[]));
    assert_eq!(queued(&e).2, QueueChoice::Unclassified);
    let e = w.task_spec(task("t2", "", &[("channel", "voice")], &[]));
    assert_eq!(queued(&e).2, by(0, "not web"));
    // A bare name: a label, or an attribute that is not empty, 0 or false.
    let e = w.task_spec(task("t3", "", &[("vip", "false")], &[]));
    assert_eq!(queued(&e).2, QueueChoice::Unclassified);
    let e = w.task_spec(task("t4", "", &[("vip", "yes")], &[]));
    assert_eq!(queued(&e).2, by(1, "flag"));
    // A number that is not one compares with nothing.
    assert!(
        !TaskExpr::parse("amount >= 1")
            .unwrap()
            .matches(&[("amount".to_owned(), "lots".to_owned())].into(), &[])
    );
}

#[test]
fn a_classifier_naming_a_missing_queue_sends_to_default_and_says_so() {
    let mut w = World::new();
    w.mrd_with(chat(vec![classifier("later", "TRUE", "not-yet", 8)]));
    let e = w.task_spec(task("t1", "", &[], &[]));
    assert_eq!(queued(&e), ("default".into(), 8, by(0, "later")));
    // Once the queue exists, tasks go there.
    w.queue("chat", "not-yet", &[("TRUE", 0)], 0);
    let e = w.task_spec(task("t2", "", &[], &[]));
    assert_eq!(queued(&e), ("not-yet".into(), 8, by(0, "later")));
}

#[test]
fn classified_tasks_are_offered_by_their_queues_steps() {
    let mut w = World::new();
    w.mrd_with(chat(vec![classifier("fr", "lang = fr", "french", 0)]));
    w.queue("chat", "french", &[("lang_fr", 0)], 0);
    w.agent("anglo", &[("lang_en", 1)]);
    w.agent("franco", &[("lang_fr", 1)]);
    w.login_ready("anglo", "chat");
    w.login_ready("franco", "chat");
    let e = w.task_spec(task("t1", "", &[("lang", "fr")], &[]));
    assert_eq!(common::world::offer_of(&e, "t1").as_deref(), Some("franco"));
}

fn invalid(result: Result<impl Sized, DomainError>) -> (&'static str, String) {
    match result {
        Err(DomainError::InvalidArgument { field, reason }) => (field, reason),
        Err(other) => panic!("expected INVALID_ARGUMENT, got {other}"),
        Ok(_) => panic!("expected INVALID_ARGUMENT, got success"),
    }
}

#[test]
fn classifiers_are_validated() {
    let mut w = World::new();
    let (field, reason) = invalid(w.run(cmd::UpsertMrd(chat(vec![
        classifier("ok", "TRUE", "web", 0),
        classifier("bad", "TRUE", "no spaces", 0),
    ]))));
    assert_eq!(field, "mrd.classifiers.queue");
    assert!(reason.starts_with("classifier 1: "), "{reason}");
    let (field, _) = invalid(w.run(cmd::UpsertMrd(chat(vec![classifier(
        "p", "TRUE", "web", 11,
    )]))));
    assert_eq!(field, "mrd.classifiers.priority");
    let many = (0..65).map(|i| classifier(&format!("c{i}"), "TRUE", "web", 0));
    let (field, _) = invalid(w.run(cmd::UpsertMrd(chat(many.collect()))));
    assert_eq!(field, "mrd.classifiers");
    let (field, _) = invalid(w.run(cmd::UpsertMrd(MrdConfig {
        unclassified_priority: 11,
        ..chat(Vec::new())
    })));
    assert_eq!(field, "mrd.unclassified_priority");
    // Expressions: words compare only with = and !=; steps refuse words.
    assert!(TaskExpr::parse("channel > web").is_err());
    assert!(TaskExpr::parse("amount >= 100000").is_ok());
    assert!(switchboard::domain::routing::expr::Expr::parse("channel = web").is_err());
}

#[test]
fn classification_survives_replay_and_snapshot() {
    let mut w = world();
    w.agent("a", &[]);
    // Classified while nobody is ready: it waits in `vip` with the classifier's priority.
    let e = w.task_spec(task("t1", "", &[("channel", "web")], &["vip"]));
    assert_eq!(queued(&e), ("vip".into(), 9, by(0, "web vip")));
    let [replayed, restored] = rebuilt(&w);
    for (i, mut w) in [w, replayed, restored].into_iter().enumerate() {
        let t1 = w.get_task("t1");
        assert_eq!(
            (t1.spec.queue.as_str(), t1.priority),
            ("vip", 9),
            "world {i}"
        );
        // The classifiers came back with the MRD: the next task is classified alike.
        let e = w.task_spec(task("t2", "", &[("amount", "1500")], &[]));
        assert_eq!(
            queued(&e),
            ("vip".into(), 7, by(2, "big order")),
            "world {i}"
        );
        // And the classified task is routed first, by its classified priority.
        let e = w.login_ready("a", "chat");
        assert_eq!(offer_of(&e, "t1").as_deref(), Some("a"), "world {i}");
    }
}
