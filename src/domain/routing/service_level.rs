//! Service level: per queue, how many tasks were answered within a threshold over a sliding
//! window, beside the queue's target (e.g. 80% within 20 s over the last 30 minutes).
//!
//! The definition, one rule for `GetQueueStats` and the estimate of `position`:
//! - a task is *answered* at its first accept; its wait is from its arrival (`created_at`) to
//!   then, counted in the queue it was in when answered. The metrics' wait histogram
//!   (`switchboard_task_wait_seconds`) measures the same wait.
//! - a task is *abandoned* when it closes never answered (cancelled, time to live, attempts,
//!   force-closed, logout), with its wait to the close; a task a callback took over is not
//!   abandoned (its callback is answered or abandoned in its own right).
//! - service level = answered within the threshold / (answered + abandoned after the
//!   threshold): a task abandoned within the threshold counts neither way.
//!
//! Bounded memory: the window keeps counts per time bucket (`SERVICE_LEVEL_BUCKETS` of them,
//! each a 60th of the window), not per task; the window slides a bucket at a time. A change of
//! the queue's threshold or window starts the count afresh: counts made against another
//! threshold cannot be re-sorted. The counts are folded from `TaskAccepted` and the close, so
//! replay rebuilds them, and snapshots carry them.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::Routing;
use super::index::QueueKey;
use crate::domain::bounds::{
    DEFAULT_SERVICE_LEVEL_WINDOW_MS, MAX_SERVICE_LEVEL_THRESHOLD_MS, MAX_SERVICE_LEVEL_WINDOW_MS,
    MIN_SERVICE_LEVEL_WINDOW_MS, SERVICE_LEVEL_BUCKETS, check_duration,
};
use crate::domain::error::{DomainError, DomainResult};
use crate::domain::events::Millis;

/// A queue's service level target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ServiceLevelTarget {
    /// The share of tasks to answer within the threshold, 1 to 100; 0: no target (the counts
    /// are still kept).
    pub percent: u32,
    pub threshold_ms: Millis,
    /// The sliding window measured; 0: `DEFAULT_SERVICE_LEVEL_WINDOW_MS`.
    pub window_ms: Millis,
}

impl ServiceLevelTarget {
    pub fn validate(&self) -> DomainResult<()> {
        if self.percent > 100 {
            return Err(DomainError::invalid(
                "queue.service_level_percent",
                format!("must be 0 (no target) to 100, not {}", self.percent),
            ));
        }
        check_duration(
            "queue.service_level_threshold_seconds",
            self.threshold_ms,
            0,
            MAX_SERVICE_LEVEL_THRESHOLD_MS,
        )?;
        if self.window_ms != 0 {
            check_duration(
                "queue.service_level_window_seconds",
                self.window_ms,
                MIN_SERVICE_LEVEL_WINDOW_MS,
                MAX_SERVICE_LEVEL_WINDOW_MS,
            )?;
        }
        Ok(())
    }

    /// The window measured.
    pub fn window(&self) -> Millis {
        if self.window_ms == 0 {
            DEFAULT_SERVICE_LEVEL_WINDOW_MS
        } else {
            self.window_ms
        }
    }

    /// Whether counts made against `other` hold for this target: the same threshold and window.
    fn measures_as(&self, other: &ServiceLevelTarget) -> bool {
        self.threshold_ms == other.threshold_ms && self.window() == other.window()
    }

    fn bucket_ms(&self) -> Millis {
        (self.window() / SERVICE_LEVEL_BUCKETS).max(1)
    }
}

/// What happened to the tasks that left a queue in one time bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Outcomes {
    pub answered: u32,
    pub answered_within: u32,
    pub abandoned: u32,
    pub abandoned_after: u32,
}

impl Outcomes {
    fn add(&mut self, other: &Outcomes) {
        self.answered += other.answered;
        self.answered_within += other.answered_within;
        self.abandoned += other.abandoned;
        self.abandoned_after += other.abandoned_after;
    }

    /// Tasks that left the queue, answered or not.
    pub fn departed(&self) -> u32 {
        self.answered + self.abandoned
    }
}

/// One queue's counts per bucket, the oldest first; a bucket is named by its index
/// (`at / bucket_ms`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ServiceWindow {
    target: ServiceLevelTarget,
    buckets: VecDeque<(u64, Outcomes)>,
}

impl ServiceWindow {
    fn record(&mut self, at: Millis, wait: Millis, answered: bool) {
        let index = at / self.target.bucket_ms();
        let oldest_kept = index.saturating_sub(SERVICE_LEVEL_BUCKETS);
        while self.buckets.front().is_some_and(|(i, _)| *i <= oldest_kept) {
            self.buckets.pop_front();
        }
        if self.buckets.back().is_none_or(|(i, _)| *i < index) {
            self.buckets.push_back((index, Outcomes::default()));
        }
        // Events come in time order, so the bucket of `at` is the last one.
        let Some((_, counts)) = self.buckets.back_mut() else {
            return;
        };
        let within = wait <= self.target.threshold_ms;
        if answered {
            counts.answered += 1;
            counts.answered_within += u32::from(within);
        } else {
            counts.abandoned += 1;
            counts.abandoned_after += u32::from(!within);
        }
    }

    /// The counts of the buckets inside the window at `now`, and the time they span (from the
    /// start of the oldest to `now`).
    fn sum(&self, now: Millis) -> (Outcomes, Millis) {
        let bucket_ms = self.target.bucket_ms();
        let current = now / bucket_ms;
        let oldest = current.saturating_sub(SERVICE_LEVEL_BUCKETS - 1);
        let mut total = Outcomes::default();
        let mut first = None;
        for (index, counts) in self.buckets.iter().filter(|(i, _)| *i >= oldest) {
            first.get_or_insert(*index);
            total.add(counts);
        }
        let span = first.map_or(0, |i| now.saturating_sub(i * bucket_ms));
        (total, span)
    }
}

/// A queue's service level as `GetQueueStats` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ServiceLevel {
    pub target: ServiceLevelTarget,
    /// The window measured (the target's, or the default).
    pub window_ms: Millis,
    pub counts: Outcomes,
}

impl ServiceLevel {
    /// Answered within the threshold / (answered + abandoned after it), in percent; `None`
    /// when no task counts yet.
    pub fn achieved_percent(&self) -> Option<f64> {
        let base = self.counts.answered + self.counts.abandoned_after;
        (base > 0).then(|| 100.0 * f64::from(self.counts.answered_within) / f64::from(base))
    }

    /// Whether the queue has a target and meets it.
    pub fn met(&self) -> bool {
        self.target.percent > 0
            && self
                .achieved_percent()
                .is_some_and(|p| p >= f64::from(self.target.percent))
    }
}

impl Routing {
    /// Counts a task's first answer, or its close unanswered, in its queue's window.
    pub(super) fn note_outcome(&mut self, task_id: &str, at: Millis, answered: bool) {
        let Some(task) = self.tasks.get(task_id) else {
            return;
        };
        if task.answered_at.is_some() || (!answered && task.callback_task_id.is_some()) {
            return;
        }
        let key = task.spec.queue_key();
        let wait = at.saturating_sub(task.created_at);
        let target = self.target_of(&key);
        let window = self.service_windows.entry(key).or_default();
        if !window.target.measures_as(&target) {
            *window = ServiceWindow {
                target,
                buckets: VecDeque::new(),
            };
        }
        window.record(at, wait, answered);
        if answered && let Some(task) = self.tasks.get_mut(task_id) {
            task.answered_at = Some(at);
        }
    }

    /// Drops the windows of queues that are gone.
    pub(super) fn forget_windows(&mut self) {
        let queues = &self.queues;
        self.service_windows
            .retain(|key, _| queues.contains_key(key));
    }

    fn target_of(&self, key: &QueueKey) -> ServiceLevelTarget {
        self.queues
            .get(key)
            .map(|q| q.service_level)
            .unwrap_or_default()
    }

    /// The queue's window, unless it counted against another threshold or window.
    fn current_window(&self, key: &QueueKey) -> Option<&ServiceWindow> {
        let target = self.target_of(key);
        self.service_windows
            .get(key)
            .filter(|w| w.target.measures_as(&target))
    }

    /// A queue's service level at `now`.
    pub(super) fn service_level(&self, key: &QueueKey, now: Millis) -> ServiceLevel {
        let target = self.target_of(key);
        let counts = self
            .current_window(key)
            .map(|w| w.sum(now).0)
            .unwrap_or_default();
        ServiceLevel {
            target,
            window_ms: target.window(),
            counts,
        }
    }

    /// How long, recently, the queue took per task that left it (answered or abandoned): the
    /// window's span over its departures. `None` when none left within the window.
    pub(super) fn time_per_departure(&self, key: &QueueKey, now: Millis) -> Option<Millis> {
        let (counts, span) = self.current_window(key)?.sum(now);
        let departed = Millis::from(counts.departed());
        (departed > 0).then(|| (span / departed).max(1))
    }

    /// The windows, for a snapshot.
    pub(super) fn service_windows_snapshot(&self) -> Vec<(String, String, ServiceWindow)> {
        let mut windows: Vec<_> = self
            .service_windows
            .iter()
            .map(|(k, w)| (k.mrd().to_owned(), k.name().to_owned(), w.clone()))
            .collect();
        windows.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        windows
    }
}
