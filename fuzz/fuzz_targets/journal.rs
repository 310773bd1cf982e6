//! What start-up does with the journal's bodies: the first byte picks an event body, an
//! actor column, or a snapshot body followed by event bodies (one JSON document a line).
//! Nothing panics; an event that decodes encodes and decodes back equal; a snapshot of the
//! current format restores, the events fold onto it, and the resulting state's snapshot
//! decodes again.
#![no_main]

use std::sync::{Arc, LazyLock};

use libfuzzer_sys::fuzz_target;
use switchboard::domain::{Actor, Event, ModelCatalog, ServiceDirectory, Snapshot, State};

static MODELS: LazyLock<Arc<ModelCatalog>> = LazyLock::new(|| Arc::new(ModelCatalog::default()));

fn event_round_trips(body: &[u8]) -> Option<Event> {
    let event: Event = serde_json::from_slice(body).ok()?;
    let encoded = serde_json::to_string(&event).expect("a decoded event encodes");
    let decoded: Event = serde_json::from_str(&encoded).expect("an encoded event decodes");
    assert_eq!(decoded, event);
    Some(event)
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    match pick % 3 {
        0 => {
            event_round_trips(rest);
        }
        1 => {
            let Ok(raw) = std::str::from_utf8(rest) else {
                return;
            };
            if let Ok(actor) = Actor::parse(raw) {
                assert_eq!(Actor::parse(&actor.to_string()).ok(), Some(actor));
            }
        }
        _ => {
            let mut lines = rest.split(|b| *b == b'\n');
            let Some(Ok(snapshot)) = lines.next().map(serde_json::from_slice::<Snapshot>) else {
                return;
            };
            if !snapshot.is_current_format() {
                return;
            }
            let directory = ServiceDirectory::new(uuid::Uuid::nil(), "processor");
            let mut state = State::new(directory, Arc::clone(&MODELS));
            state.restore(snapshot);
            for event in lines.filter_map(event_round_trips) {
                state.apply(&event);
            }
            state.finish_replay(0);
            let encoded = serde_json::to_string(&state.snapshot()).expect("a state encodes");
            serde_json::from_str::<Snapshot>(&encoded).expect("its snapshot decodes");
        }
    }
});
