//! Replay equals live: the journal's fold must rebuild exactly the state the rules built while
//! running, both from the first event and from the latest snapshot plus the events after it.
//! The model is a cluster state checker that asserts every replica folds to the same state.

// Shared by the tests that drive a `World`; not every one uses it.
#![allow(dead_code)]

use switchboard::domain::{Event, Snapshot, State};

use super::world::World;

/// Checks a running world against its own events, and keeps the snapshot the next check
/// restores from, as the server would have taken it.
#[derive(Default)]
pub struct ReplayCheck {
    /// The latest snapshot, serialised as the journal stores it, and how many events it covers.
    snapshot: Option<(String, usize)>,
}

impl ReplayCheck {
    /// Panics, naming `at`, if either rebuild differs from the live state; then takes a new
    /// snapshot for the next check.
    #[track_caller]
    pub fn check(&mut self, world: &World, at: &str) {
        let live = fingerprint(&world.state);

        let mut replayed = World::empty_state();
        fold(&mut replayed, &world.events, world.now);
        assert_same(
            &live,
            &fingerprint(&replayed),
            &format!("{at}: replay from the start"),
        );

        if let Some((body, covered)) = &self.snapshot {
            let snapshot: Snapshot = serde_json::from_str(body).expect("the snapshot reads back");
            let mut restored = World::empty_state();
            restored.restore(snapshot);
            fold(&mut restored, &world.events[*covered..], world.now);
            assert_same(
                &live,
                &fingerprint(&restored),
                &format!("{at}: restore the snapshot, then replay"),
            );
        }

        let body = serde_json::to_string(&world.state.snapshot()).expect("the snapshot serialises");
        self.snapshot = Some((body, world.events.len()));
    }
}

/// What engine start-up does: fold the events, then settle presence and timers at `now`.
fn fold(state: &mut State, events: &[Event], now: u64) {
    for event in events {
        state.apply(event);
    }
    state.finish_replay(now);
}

/// Everything two states must agree on: the records a snapshot keeps, and what the indexes
/// and timers rebuilt from them answer (every agent's and task's view, the next deadline).
fn fingerprint(state: &State) -> serde_json::Value {
    let routing = state.routing();
    let agents = routing.agent_statuses_after(None, usize::MAX).items;
    let tasks = routing.tasks_after(None, usize::MAX).items;
    serde_json::json!({
        "records": state.snapshot(),
        "agents": agents,
        "tasks": tasks,
        "next_deadline": routing.next_deadline(),
    })
}

#[track_caller]
fn assert_same(live: &serde_json::Value, rebuilt: &serde_json::Value, what: &str) {
    if live == rebuilt {
        return;
    }
    let (live, rebuilt) = (live.as_object().unwrap(), rebuilt.as_object().unwrap());
    let differing: Vec<&String> = live
        .keys()
        .filter(|k| live.get(*k) != rebuilt.get(*k))
        .collect();
    panic!("{what} differs from the live state in {differing:?}");
}

/// The world as a restart would rebuild it: once from the journal, once from a snapshot, each
/// read back from JSON as the store keeps them.
pub fn rebuilt(w: &World) -> [World; 2] {
    let journal: Vec<Event> =
        serde_json::from_str(&serde_json::to_string(&w.events).unwrap()).unwrap();
    assert_eq!(journal, w.events, "the journal reads back as written");
    let mut replayed = World::new();
    for event in &journal {
        replayed.state.apply(event);
    }
    let snapshot: Snapshot =
        serde_json::from_str(&serde_json::to_string(&w.state.snapshot()).unwrap()).unwrap();
    let mut restored = World::new();
    restored.state.restore(snapshot);
    [replayed, restored].map(|mut copy| {
        copy.now = w.now;
        copy.events = w.events.clone();
        copy.state.finish_replay(w.now);
        copy
    })
}
