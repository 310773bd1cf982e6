//! Workflow model files, as the server loads them at start-up: loading never panics, and an
//! accepted model is consistent: its initial state and every transition's target are states
//! whose actions can be listed and taken.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard::domain::{ModelCatalog, WorkflowModel};

fuzz_target!(|data: &[u8]| {
    let Ok(json) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(model) = WorkflowModel::parse(json) else {
        return;
    };
    let mut seen = vec![model.initial.clone()];
    let mut next = 0;
    // Walks the states reachable from the initial one, each once.
    while let Some(state) = seen.get(next).cloned() {
        next += 1;
        for (action, enabled) in model.actions_in(&state) {
            let taken = model.next_state(&state, &action);
            assert_eq!(taken.is_ok(), enabled, "{state} / {action}");
            if let Ok(target) = taken {
                if !seen.iter().any(|s| s == target) {
                    seen.push(target.to_owned());
                }
            }
        }
    }
    let mut catalog = ModelCatalog::default();
    let name = model.name.clone();
    if catalog.add(model, true).is_ok() {
        assert!(catalog.get(&name).is_ok());
    }
});
