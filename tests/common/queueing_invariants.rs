//! The routing simulation's checks of positions, attempts, callbacks and service levels, run
//! after every step beside its own.

use std::collections::BTreeMap;

use switchboard::domain::commands as cmd;
use switchboard::domain::routing::config::QueueConfig;
use switchboard::domain::routing::model::{Task, TaskState};

use crate::common::world::World;

pub fn check(
    world: &mut World,
    tasks: &BTreeMap<String, Task>,
    queues: &BTreeMap<(String, String), QueueConfig>,
    at: &str,
) {
    // Positions follow dispatch order: priority, then first in, per queue.
    let mut waiting: BTreeMap<(&str, &str), Vec<&Task>> = BTreeMap::new();
    for task in tasks.values().filter(|t| t.state == TaskState::Queued) {
        waiting
            .entry((&task.spec.mrd, &task.spec.queue))
            .or_default()
            .push(task);
    }
    for line in waiting.values_mut() {
        line.sort_by_key(|t| (u8::MAX - t.priority, t.seq, t.spec.task_id.clone()));
        for (index, task) in line.iter().enumerate() {
            let id = &task.spec.task_id;
            let place = world.state.routing().queue_place(id, world.now);
            assert_eq!(
                place.map(|p| p.position as usize),
                Some(index + 1),
                "{at}: position of {id}"
            );
        }
    }
    for task in tasks.values() {
        let id = &task.spec.task_id;
        // A waiting task has attempts left in its queue.
        let queue = &queues[&(task.spec.mrd.clone(), task.spec.queue.clone())];
        if matches!(task.state, TaskState::Queued | TaskState::Offered) {
            let max = queue.attempts.max_attempts;
            assert!(
                max == 0 || task.attempts < max,
                "{at}: {id} waits after {} attempts (max {max})",
                task.attempts
            );
        }
        // A callback and the task it calls back name each other; the earlier one waits no more.
        if let Some(callback) = &task.callback_task_id {
            assert_eq!(tasks[callback].spec.callback_for, *id, "{at}: {callback}");
            assert!(
                !matches!(task.state, TaskState::Queued | TaskState::Offered),
                "{at}: {id} still waits beside its callback {callback}"
            );
        }
        // (The earlier task may have left memory since: closed tasks are retired.)
        if let Some(earlier) = tasks.get(&task.spec.callback_for) {
            assert_eq!(
                earlier.callback_task_id.as_deref(),
                Some(id.as_str()),
                "{at}: {id} calls back {}",
                earlier.spec.task_id
            );
        }
    }
    // Service level counts hold together.
    for (mrd, queue) in queues.keys() {
        let query = cmd::GetQueueStats {
            mrd: mrd.clone(),
            queue: queue.clone(),
        };
        let (stats, _) = world.run(query).expect("a listed queue's statistics");
        let counts = stats.service_level.counts;
        assert!(
            counts.answered_within <= counts.answered && counts.abandoned_after <= counts.abandoned,
            "{at}: {mrd}/{queue} service level counts {counts:?}"
        );
        if let Some(level) = stats.service_level.achieved_percent() {
            assert!((0.0..=100.0).contains(&level), "{at}: {level}");
        }
        assert_eq!(
            stats.estimated_wait_ms.is_some(),
            counts.departed() > 0,
            "{at}: {mrd}/{queue} has an estimate only with a recent pace"
        );
    }
}
