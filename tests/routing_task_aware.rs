//! Task-aware steps: a step compares an agent attribute with the task's (`lang = task.lang`,
//! `billing >= task.min_billing`), from pools keyed by the task's values.

mod common;

use common::replay::rebuilt;
use common::world::{World, offer_of, spec};
use switchboard::domain::Event;
use switchboard::domain::routing::model::{Selection, TaskSpec, TaskState};

fn task(id: &str, queue: &str, attributes: &[(&str, &str)]) -> TaskSpec {
    let mut s = spec(id, "chat", queue, 5);
    s.attributes = attributes
        .iter()
        .map(|(k, v)| ((*k).into(), (*v).into()))
        .collect();
    s
}

fn selection(events: &[Event], task: &str) -> Option<Selection> {
    events.iter().find_map(|e| match e {
        Event::TaskAgentSelected {
            task_id, selection, ..
        } if task_id == task => Some(selection.clone()),
        _ => None,
    })
}

/// Agents `en` (lang_en) and `fr` (lang_fr), both READY on `chat` (one task each); queue
/// `lang` whose only step is `lang = task.lang`.
fn languages() -> World {
    let mut w = World::new();
    w.mrd("chat", 1);
    w.queue("chat", "lang", &[("lang = task.lang", 0)], 0);
    w.agent("en", &[("lang_en", 1)]);
    w.agent("fr", &[("lang_fr", 1)]);
    w.login_ready("en", "chat");
    w.login_ready("fr", "chat");
    w
}

#[test]
fn equality_with_a_task_word_picks_the_agent_with_that_flag() {
    let mut w = languages();
    let e = w.task_spec(task("t-fr", "lang", &[("lang", "fr")]));
    assert_eq!(offer_of(&e, "t-fr").as_deref(), Some("fr"));
    assert_eq!(selection(&e, "t-fr"), Some(Selection::Step { index: 0 }));
    let e = w.task_spec(task("t-en", "lang", &[("lang", "en")]));
    assert_eq!(offer_of(&e, "t-en").as_deref(), Some("en"));
}

#[test]
fn a_task_lacking_the_attribute_matches_no_agent_at_that_step() {
    let mut w = languages();
    let e = w.task_spec(task("t", "lang", &[]));
    assert_eq!(offer_of(&e, "t"), None);
    // Nor does a language no agent speaks.
    let e = w.task_spec(task("t-de", "lang", &[("lang", "de")]));
    assert_eq!(offer_of(&e, "t-de"), None);
}

#[test]
fn ordered_comparison_with_a_task_number() {
    let mut w = World::new();
    w.mrd("chat", 1);
    w.queue("chat", "billing", &[("billing >= task.min_billing", 0)], 0);
    w.agent("junior", &[("billing", 3)]);
    w.agent("senior", &[("billing", 8)]);
    w.login_ready("junior", "chat");
    w.now += 1_000;
    w.login_ready("senior", "chat");
    // junior has waited longest, but only senior bills 7 or more.
    let e = w.task_spec(task("hard", "billing", &[("min_billing", "7")]));
    assert_eq!(offer_of(&e, "hard").as_deref(), Some("senior"));
    let e = w.task_spec(task("easy", "billing", &[("min_billing", "2")]));
    assert_eq!(offer_of(&e, "easy").as_deref(), Some("junior"));
}

#[test]
fn widening_reaches_an_agent_only_step() {
    let mut w = World::new();
    w.mrd("chat", 1);
    w.queue(
        "chat",
        "lang",
        &[("lang = task.lang", 10_000), ("TRUE", 0)],
        0,
    );
    w.agent("en", &[("lang_en", 1)]);
    w.login_ready("en", "chat");
    let e = w.task_spec(task("t-fr", "lang", &[("lang", "fr")]));
    assert_eq!(offer_of(&e, "t-fr"), None);
    let e = w.advance(10_000);
    assert_eq!(offer_of(&e, "t-fr").as_deref(), Some("en"));
    assert_eq!(selection(&e, "t-fr"), Some(Selection::Step { index: 1 }));
}

#[test]
fn an_agent_going_ready_picks_the_task_whose_values_it_matches() {
    let mut w = languages();
    // Both agents busy.
    w.task_spec(task("busy-en", "lang", &[("lang", "en")]));
    w.task_spec(task("busy-fr", "lang", &[("lang", "fr")]));
    w.accept("busy-en", "en");
    w.accept("busy-fr", "fr");
    // An English task first, then a French one with a higher priority.
    w.task_spec(task("wait-en", "lang", &[("lang", "en")]));
    let mut urgent = task("wait-fr", "lang", &[("lang", "fr")]);
    urgent.priority = 9;
    w.task_spec(urgent);
    // The English agent frees up: it gets the English task, not the more urgent French one.
    let e = w
        .task_state(
            "busy-en",
            switchboard::domain::routing::model::TaskState::Closed,
        )
        .unwrap();
    assert_eq!(offer_of(&e, "wait-en").as_deref(), Some("en"));
    assert_eq!(offer_of(&e, "wait-fr"), None);
    let e = w
        .task_state(
            "busy-fr",
            switchboard::domain::routing::model::TaskState::Closed,
        )
        .unwrap();
    assert_eq!(offer_of(&e, "wait-fr").as_deref(), Some("fr"));
}

#[test]
fn a_binding_pool_outlives_its_tasks_and_follows_agents() {
    let mut w = languages();
    let e = w.task_spec(task("t1", "lang", &[("lang", "fr")]));
    assert_eq!(offer_of(&e, "t1").as_deref(), Some("fr"));
    w.accept("t1", "fr");
    w.task_state("t1", switchboard::domain::routing::model::TaskState::Closed)
        .unwrap();
    // The `fr` pool is kept: fr, ready again, is found for the next French task.
    let e = w.task_spec(task("t2", "lang", &[("lang", "fr")]));
    assert_eq!(offer_of(&e, "t2").as_deref(), Some("fr"));
}

#[test]
fn task_aware_pools_survive_replay_and_snapshot() {
    let mut w = languages();
    w.agent("de", &[("lang_de", 1)]);
    w.set_state(
        "de",
        switchboard::domain::routing::model::RequestedAgentState::Login,
        "chat",
    )
    .unwrap();
    w.task_spec(task("busy-en", "lang", &[("lang", "en")]));
    w.task_spec(task("busy-fr", "lang", &[("lang", "fr")]));
    w.accept("busy-en", "en");
    w.accept("busy-fr", "fr");
    // Waiting with their bindings: an English task, then a more urgent French one.
    w.task_spec(task("wait-en", "lang", &[("lang", "en")]));
    let mut urgent = task("wait-fr", "lang", &[("lang", "fr")]);
    urgent.priority = 9;
    w.task_spec(urgent);
    let [replayed, restored] = rebuilt(&w);
    for (i, mut w) in [w, replayed, restored].into_iter().enumerate() {
        // The freed English agent finds the English task through its binding.
        let e = w.task_state("busy-en", TaskState::Closed).unwrap();
        assert_eq!(offer_of(&e, "wait-en").as_deref(), Some("en"), "world {i}");
        assert_eq!(offer_of(&e, "wait-fr"), None, "world {i}");
        // A new binding after the restart is pooled from the agents logged in then.
        let e = w
            .set_state(
                "de",
                switchboard::domain::routing::model::RequestedAgentState::Ready,
                "chat",
            )
            .unwrap();
        assert!(offer_of(&e, "wait-fr").is_none(), "world {i}");
        let e = w.task_spec(task("t-de", "lang", &[("lang", "de")]));
        assert_eq!(offer_of(&e, "t-de").as_deref(), Some("de"), "world {i}");
        let e = w.task_state("busy-fr", TaskState::Closed).unwrap();
        assert_eq!(offer_of(&e, "wait-fr").as_deref(), Some("fr"), "world {i}");
    }
}

#[test]
fn a_bindings_pool_lives_only_while_a_waiting_task_uses_it() {
    let mut w = languages();
    // Offered at once: its binding's pool is not kept once the task stops waiting.
    let e = w.task_spec(task("t-fr", "lang", &[("lang", "fr")]));
    assert_eq!(offer_of(&e, "t-fr").as_deref(), Some("fr"));
    assert_eq!(w.state.routing().binding_pools(), 0);
    // Values nobody speaks wait, one pool each.
    for (id, lang) in [("t-de", "de"), ("t-it", "it"), ("t-de2", "de")] {
        w.task_spec(task(id, "lang", &[("lang", lang)]));
    }
    assert_eq!(w.state.routing().binding_pools(), 2, "de and it");
    // A German speaker takes the first German task: the other still holds the pool.
    w.agent("de", &[("lang_de", 1)]);
    let e = w.login_ready("de", "chat");
    assert_eq!(offer_of(&e, "t-de").as_deref(), Some("de"));
    assert_eq!(w.state.routing().binding_pools(), 2);
    w.accept("t-de", "de");
    // The agent is at its max; a second German speaker takes the last German task.
    w.agent("de2", &[("lang_de", 1)]);
    let e = w.login_ready("de2", "chat");
    assert_eq!(offer_of(&e, "t-de2").as_deref(), Some("de2"));
    assert_eq!(w.state.routing().binding_pools(), 1, "only it is left");
    // A value seen before builds its pool afresh and still routes right.
    w.accept("t-fr", "fr");
    w.agent("fr2", &[("lang_fr", 1)]);
    w.login_ready("fr2", "chat");
    let e = w.task_spec(task("t-fr2", "lang", &[("lang", "fr")]));
    assert_eq!(offer_of(&e, "t-fr2").as_deref(), Some("fr2"));
}
