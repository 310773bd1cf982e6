//! Position and estimated wait of a waiting task.
//!
//! **Position**: 1 + the waiting tasks of the same queue ahead of it in dispatch order
//! (priority, then first in, across the queue's step levels), read from the queue's `RankSet`
//! in O(log n). It is the order the queue hands tasks out in; a task's sticky agent or a step
//! only some agents match can still take one further back first.
//!
//! **Estimated wait**: position x the queue's recent time per departure: the span of its
//! service level window (`service_level`) over the tasks that left it in that span, answered or
//! abandoned. A queue whose agents are all busy (the only time a task waits) hands out about
//! `agents / average handle time` tasks a unit of time, so this is `position x average handle
//! time / agents working the queue`, measured rather than configured, and it follows
//! staffing as it changes. Unknown (none) until a task has left the queue in the window.
//!
//! **When it is announced** (`TaskPositionChanged`): a waiting task's position moves whenever
//! a task ahead of it leaves or one joins ahead of it, so announcing every move would cost
//! O(waiting) per offer. A move is *material* when the task's position reaches a milestone: 1
//! to 5, then 10, 20, 50, 100, 200, 500, 1000... After each command, per queue that tasks
//! joined or left, only the task now at each milestone is looked at (found with `RankSet::nth`)
//! and announced if its position changed: O(log n) milestones x O(log n) each, however long the
//! queue. A task that comes back in (requeued, overflowed) is announced at once. The estimate
//! rides on each announcement; a change of the queue's pace alone is not announced (it would
//! touch every waiting task): `GetTaskState` and `GetQueueStats` show it as it stands.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::index::{QueueKey, TaskKey};
use super::{Routing, Sink};
use crate::domain::events::{Event, Millis};

/// Where a waiting task stands in its queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueuePlace {
    /// 1: the next task its queue hands out.
    pub position: u32,
    /// None until the queue has a recent pace.
    pub estimated_wait_ms: Option<Millis>,
}

/// The positions announced when a task reaches them, from 1 to `last`: 1 to 5, then 1, 2 and
/// 5 times each power of ten from 10 on.
fn milestones(last: usize) -> impl Iterator<Item = usize> {
    let small = 1..=last.min(5);
    let large = std::iter::successors(Some(10usize), |u| u.checked_mul(10))
        .flat_map(|u| [u, 2 * u, 5 * u])
        .take_while(move |p| *p <= last);
    small.chain(large)
}

impl Routing {
    /// Where a waiting task stands now; `None` when it is not waiting.
    pub fn queue_place(&self, task_id: &str, now: Millis) -> Option<QueuePlace> {
        let (queue, key) = self.waiting.place_of(task_id)?;
        Some(self.place_at(queue, self.waiting.ahead_of(queue, key) + 1, now))
    }

    /// The place a task with `key` takes on joining `queue`, where `leaving` (the task a
    /// callback replaces) no longer counts.
    pub(super) fn joining_place(
        &self,
        queue: &QueueKey,
        key: &TaskKey,
        leaving: &str,
        now: Millis,
    ) -> QueuePlace {
        let left_ahead = self
            .waiting
            .place_of(leaving)
            .is_some_and(|(q, k)| q == queue && k < key);
        let ahead = self.waiting.ahead_of(queue, key) - usize::from(left_ahead);
        self.place_at(queue, ahead + 1, now)
    }

    /// The estimated wait of a task that would join `queue` now, at its back.
    pub(super) fn queue_tail_estimate(&self, queue: &QueueKey, now: Millis) -> Option<Millis> {
        self.place_at(queue, self.waiting.len(queue) + 1, now)
            .estimated_wait_ms
    }

    fn place_at(&self, queue: &QueueKey, position: usize, now: Millis) -> QueuePlace {
        let position = u32::try_from(position).unwrap_or(u32::MAX);
        QueuePlace {
            position,
            estimated_wait_ms: self
                .time_per_departure(queue, now)
                .map(|per| per.saturating_mul(Millis::from(position))),
        }
    }

    /// Announces the material moves of this command (see the module's doc).
    pub(super) fn announce_positions(&mut self, now: Millis, sink: &mut Sink) {
        let moves = self.waiting.take_moves();
        if moves.is_empty() {
            return;
        }
        let arrived: BTreeSet<&str> = sink
            .iter()
            .filter_map(|e| match e {
                Event::TaskQueued { spec, .. } => Some(spec.task_id.as_str()),
                _ => None,
            })
            .collect();
        let mut announce: Vec<(QueueKey, TaskKey, usize)> = Vec::new();
        for (queue, moved) in &moves {
            let joined: Vec<&TaskKey> = moved.iter().filter(|(_, b)| !**b).map(|m| m.0).collect();
            let left: Vec<&TaskKey> = moved.iter().filter(|(_, b)| **b).map(|m| m.0).collect();
            for key in &joined {
                if !arrived.contains(key.task_id.as_str())
                    && self.waiting.place_of(&key.task_id).is_some()
                {
                    let position = self.waiting.ahead_of(queue, key) + 1;
                    announce.push((queue.clone(), (*key).clone(), position));
                }
            }
            for position in milestones(self.waiting.len(queue)) {
                let Some(key) = self.waiting.nth(queue, position - 1) else {
                    break;
                };
                if joined.binary_search(&key).is_ok() {
                    continue;
                }
                let before = position + left.partition_point(|k| *k < key)
                    - joined.partition_point(|k| *k < key);
                if before != position {
                    announce.push((queue.clone(), key.clone(), position));
                }
            }
        }
        for (queue, key, position) in announce {
            let place = self.place_at(&queue, position, now);
            let event = Event::TaskPositionChanged {
                task_id: key.task_id,
                mrd: queue.mrd().to_owned(),
                queue: queue.name().to_owned(),
                position: place.position,
                estimated_wait_ms: place.estimated_wait_ms,
                at: now,
            };
            self.emit(event, sink);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::milestones;

    #[test]
    fn milestones_are_the_first_five_then_one_two_five() {
        let listed: Vec<usize> = milestones(1200).collect();
        assert_eq!(listed, [1, 2, 3, 4, 5, 10, 20, 50, 100, 200, 500, 1000]);
        assert_eq!(milestones(3).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(milestones(0).count(), 0);
    }
}
