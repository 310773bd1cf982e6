//! The indexes that keep every choice cheap: no choice scans all agents or all tasks.
//!
//! - `Pools`: per queue step, the agents eligible right now whose attributes match the step,
//!   ordered by (load, available since, agent id): the first one is the best.
//!
//! Task-aware steps (`lang = task.lang`, see `expr`) are pooled by the task-side values they
//! read: a step's *binding* is a task's values for the attributes the step names, and the step
//! has one pool per binding seen among its waiting tasks (`fr`, `en`...), holding the eligible
//! agents that match the step for tasks with that binding. The pool of a new binding is
//! built when the first task with it waits, by one pass over the MRD's logged-in agents; it
//! then stays (until the queue changes), so a stream of tasks with the same value never pays
//! that pass again. An agent whose eligibility changes is re-placed in the pools of every
//! binding its steps know: O(B) evaluations per task-aware step, B the step's bindings.
//! Choosing stays a lookup: the best agent for a task is the first of the pool of its
//! binding at each step, O(S log n); equality and ordered comparisons (`>=`) cost the same,
//! because the pool key is the task's value, not the comparison. The best task for an agent
//! that frees up is the first acceptable waiting task of each binding of each task-aware step
//! that the agent matches (`Waiting::bound`), O(S * B * log n). A task lacking an attribute a
//! step names has no binding there and matches no agent at that step.
//! - `Waiting`: per queue and widest step reached, the waiting tasks ordered by (priority
//!   descending, arrival), plus the waiting tasks each agent is a preferred agent of, and per
//!   queue a tally (count per priority, oldest arrival) kept as tasks come and go, so that
//!   queue statistics cost O(log n), not a walk of every waiting task. Per queue too, every
//!   waiting task in dispatch order in a `RankSet`, so a task's position costs O(log n), and
//!   the tasks that joined or left each queue since the last look (see `position`).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::expr::Binding;
use super::rank::RankSet;
use crate::domain::events::Millis;

/// A queue is named within its MRD: the key of a queue, of its pools and of its waiting tasks.
/// Ordered by MRD first, so that one MRD's queues are one range.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct QueueKey {
    mrd: String,
    name: String,
}

impl QueueKey {
    pub fn new(mrd: &str, name: &str) -> Self {
        Self {
            mrd: mrd.to_owned(),
            name: name.to_owned(),
        }
    }

    pub fn mrd(&self) -> &str {
        &self.mrd
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}
/// One step of one queue, for tasks with one binding (empty for a step that looks only at
/// agents).
pub type PoolKey = (QueueKey, usize, Binding);

/// Orders eligible agents: fewest tasks, then longest available, then id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AgentKey {
    pub load: u32,
    pub available_since: Millis,
    pub agent_id: String,
}

/// Orders waiting tasks: highest priority first, then first in.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TaskKey {
    /// `u8::MAX - priority`, so that ascending order is priority descending.
    pub rank: u8,
    pub seq: u64,
    pub task_id: String,
}

impl TaskKey {
    pub fn new(priority: u8, seq: u64, task_id: &str) -> Self {
        Self {
            rank: u8::MAX - priority,
            seq,
            task_id: task_id.to_owned(),
        }
    }
}

#[derive(Debug, Default, Clone)]
pub struct Pools {
    by_step: HashMap<PoolKey, BTreeSet<AgentKey>>,
    /// Where each agent stands, so it can be taken out exactly.
    placed: HashMap<String, Vec<(PoolKey, AgentKey)>>,
    /// The bindings each task-aware step has a pool for.
    bindings: HashMap<(QueueKey, usize), BTreeSet<Binding>>,
}

impl Pools {
    /// Takes the agent out of every pool.
    pub fn remove(&mut self, agent_id: &str) {
        for (pool, key) in self.placed.remove(agent_id).unwrap_or_default() {
            if let Some(set) = self.by_step.get_mut(&pool) {
                set.remove(&key);
            }
        }
    }

    /// Puts the agent into the given pools (after `remove`).
    pub fn insert(&mut self, key: &AgentKey, pools: Vec<PoolKey>) {
        let placed = self.placed.entry(key.agent_id.clone()).or_default();
        for pool in pools {
            self.by_step
                .entry(pool.clone())
                .or_default()
                .insert(key.clone());
            placed.push((pool, key.clone()));
        }
    }

    /// The eligible agents of one step for tasks with `binding`, best first.
    pub fn step(
        &self,
        queue: &QueueKey,
        step: usize,
        binding: &[super::expr::TaskValue],
    ) -> impl Iterator<Item = &AgentKey> {
        self.by_step
            .get(&(queue.clone(), step, binding.into()))
            .into_iter()
            .flat_map(|set| set.iter())
    }

    /// The bindings a task-aware step has pools for.
    pub fn bindings(&self, queue: &QueueKey, step: usize) -> impl Iterator<Item = &Binding> {
        self.bindings
            .get(&(queue.clone(), step))
            .into_iter()
            .flatten()
    }

    /// How many binding pools task-aware steps have.
    pub fn binding_count(&self) -> usize {
        self.bindings.values().map(BTreeSet::len).sum()
    }

    /// Notes a binding's pool; `false` when it was known already.
    pub fn add_binding(&mut self, queue: &QueueKey, step: usize, binding: &Binding) -> bool {
        self.bindings
            .entry((queue.clone(), step))
            .or_default()
            .insert(binding.clone())
    }

    /// Forgets the pool of one binding of a task-aware step. Agents' notes of where they stand
    /// may still name it until they are placed again; taking them out skips a missing pool.
    pub fn drop_binding(&mut self, queue: &QueueKey, step: usize, binding: &Binding) {
        let step_key = (queue.clone(), step);
        if let Some(set) = self.bindings.get_mut(&step_key) {
            set.remove(binding);
            if set.is_empty() {
                self.bindings.remove(&step_key);
            }
        }
        self.by_step.remove(&(queue.clone(), step, binding.clone()));
    }

    /// Forgets the pools of a queue's task-aware steps, after the queue changed.
    pub fn forget_queue(&mut self, queue: &QueueKey) {
        self.bindings.retain(|(q, _), _| q != queue);
        self.by_step
            .retain(|(q, _, b), _| q != queue || b.is_empty());
    }
}

#[derive(Debug, Default, Clone)]
pub struct Waiting {
    /// Per queue, one set per step level: the tasks whose widest step is that level.
    by_level: HashMap<QueueKey, Vec<BTreeSet<TaskKey>>>,
    /// Per agent, the waiting tasks that name it as a preferred agent.
    preferring: HashMap<String, BTreeSet<TaskKey>>,
    /// Per task-aware step and binding, the waiting tasks that reached the step with it.
    bound: HashMap<(QueueKey, usize), BTreeMap<Binding, BTreeSet<TaskKey>>>,
    /// Bindings whose last waiting task left since `take_vacated`: their pools may go.
    vacated: Vec<PoolKey>,
    placed: HashMap<String, Placement>,
    tallies: HashMap<QueueKey, QueueTally>,
    /// Per queue, its waiting tasks in dispatch order, across its step levels.
    ranks: HashMap<QueueKey, RankSet<TaskKey>>,
    /// Per queue, the tasks that joined or left it since `take_moves`, each with whether it was
    /// there before: what moved the others' positions.
    moves: BTreeMap<QueueKey, BTreeMap<TaskKey, bool>>,
}

#[derive(Debug, Clone)]
struct Placement {
    queue: QueueKey,
    level: usize,
    key: TaskKey,
    preferred: Vec<String>,
    in_levels: bool,
    queued_at: Millis,
    bindings: Vec<(usize, Binding)>,
}

/// What queue statistics need of one queue's waiting tasks, kept as they come and go.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct QueueTally {
    /// Waiting tasks per priority; no zero counts.
    pub by_priority: BTreeMap<u8, u32>,
    /// Waiting tasks per arrival time; the first is the longest waiting.
    by_arrival: BTreeMap<Millis, u32>,
}

impl QueueTally {
    /// When the longest waiting task arrived.
    pub fn oldest_arrival(&self) -> Option<Millis> {
        self.by_arrival.keys().next().copied()
    }

    fn add(&mut self, priority: u8, queued_at: Millis) {
        *self.by_priority.entry(priority).or_default() += 1;
        *self.by_arrival.entry(queued_at).or_default() += 1;
    }

    fn take(&mut self, priority: u8, queued_at: Millis) {
        decrement(&mut self.by_priority, priority);
        decrement(&mut self.by_arrival, queued_at);
    }

    fn is_empty(&self) -> bool {
        self.by_priority.is_empty()
    }
}

fn decrement<K: Ord>(counts: &mut BTreeMap<K, u32>, key: K) {
    if let std::collections::btree_map::Entry::Occupied(mut count) = counts.entry(key) {
        *count.get_mut() -= 1;
        if *count.get() == 0 {
            count.remove();
        }
    }
}

impl Waiting {
    /// Places a task that arrived at `queued_at` (after taking it out from where it was): under
    /// its preferred agents, and in its queue's levels unless only they may take it now, with
    /// its bindings at the task-aware steps it reached.
    pub fn insert(
        &mut self,
        queue: QueueKey,
        level: Option<usize>,
        key: TaskKey,
        preferred: Vec<String>,
        queued_at: Millis,
        bindings: Vec<(usize, Binding)>,
    ) {
        self.remove(&key.task_id);
        for (step, binding) in &bindings {
            self.bound
                .entry((queue.clone(), *step))
                .or_default()
                .entry(binding.clone())
                .or_default()
                .insert(key.clone());
        }
        self.tallies
            .entry(queue.clone())
            .or_default()
            .add(u8::MAX - key.rank, queued_at);
        if let Some(level) = level {
            let levels = self.by_level.entry(queue.clone()).or_default();
            if levels.len() <= level {
                levels.resize_with(level + 1, BTreeSet::new);
            }
            levels[level].insert(key.clone());
        }
        self.ranks
            .entry(queue.clone())
            .or_default()
            .insert(key.clone());
        self.note_move(&queue, &key, false);
        for agent in &preferred {
            self.preferring
                .entry(agent.clone())
                .or_default()
                .insert(key.clone());
        }
        self.placed.insert(
            key.task_id.clone(),
            Placement {
                queue,
                level: level.unwrap_or_default(),
                in_levels: level.is_some(),
                key,
                preferred,
                queued_at,
                bindings,
            },
        );
    }

    pub fn remove(&mut self, task_id: &str) {
        let Some(p) = self.placed.remove(task_id) else {
            return;
        };
        if let Some(tally) = self.tallies.get_mut(&p.queue) {
            tally.take(u8::MAX - p.key.rank, p.queued_at);
            if tally.is_empty() {
                self.tallies.remove(&p.queue);
            }
        }
        if p.in_levels
            && let Some(set) = self
                .by_level
                .get_mut(&p.queue)
                .and_then(|levels| levels.get_mut(p.level))
        {
            set.remove(&p.key);
        }
        if let Some(ranks) = self.ranks.get_mut(&p.queue) {
            ranks.remove(&p.key);
            if ranks.is_empty() {
                self.ranks.remove(&p.queue);
            }
        }
        self.note_move(&p.queue, &p.key, true);
        for agent in p.preferred {
            if let Some(set) = self.preferring.get_mut(&agent) {
                set.remove(&p.key);
                if set.is_empty() {
                    self.preferring.remove(&agent);
                }
            }
        }
        for (step, binding) in p.bindings {
            let step_key = (p.queue.clone(), step);
            if let Some(by_binding) = self.bound.get_mut(&step_key) {
                if let Some(set) = by_binding.get_mut(&binding) {
                    set.remove(&p.key);
                    if set.is_empty() {
                        by_binding.remove(&binding);
                        self.vacated.push((p.queue.clone(), step, binding.clone()));
                    }
                }
                if by_binding.is_empty() {
                    self.bound.remove(&step_key);
                }
            }
        }
    }

    /// Waiting tasks of `queue` whose widest step is at least `min_level`, each level best first.
    pub fn levels_from<'a>(
        &'a self,
        queue: &QueueKey,
        min_level: usize,
    ) -> impl Iterator<Item = &'a BTreeSet<TaskKey>> + 'a {
        self.by_level
            .get(queue)
            .into_iter()
            .flat_map(move |levels| levels.iter().skip(min_level))
    }

    /// Waiting tasks that name `agent_id` as their last or a preferred agent, best first.
    pub fn preferring(&self, agent_id: &str) -> impl Iterator<Item = &TaskKey> {
        self.preferring
            .get(agent_id)
            .into_iter()
            .flat_map(|s| s.iter())
    }

    /// The bindings whose last waiting task left since the last call.
    pub fn take_vacated(&mut self) -> Vec<PoolKey> {
        std::mem::take(&mut self.vacated)
    }

    /// Whether a waiting task reached task-aware step `step` of `queue` with `binding`.
    pub fn is_bound(&self, queue: &QueueKey, step: usize, binding: &Binding) -> bool {
        self.bound
            .get(&(queue.clone(), step))
            .is_some_and(|m| m.contains_key(binding))
    }

    /// Per binding, the waiting tasks that reached task-aware step `step` of `queue` with it,
    /// each set best first.
    pub fn bound<'a>(
        &'a self,
        queue: &QueueKey,
        step: usize,
    ) -> impl Iterator<Item = (&'a Binding, &'a BTreeSet<TaskKey>)> + 'a {
        self.bound
            .get(&(queue.clone(), step))
            .into_iter()
            .flat_map(|m| m.iter())
    }

    /// The tally of a queue's waiting tasks; `None` when none waits.
    pub fn tally(&self, queue: &QueueKey) -> Option<&QueueTally> {
        self.tallies.get(queue)
    }

    /// Every waiting task of a queue, in no particular order, those still kept for their
    /// preferred agents (in no level yet) included.
    pub fn in_queue<'a>(&'a self, queue: &QueueKey) -> impl Iterator<Item = &'a TaskKey> + 'a {
        self.ranks
            .get(queue)
            .into_iter()
            .flat_map(|ranks| (0..ranks.len()).filter_map(|i| ranks.nth(i)))
    }

    /// Notes that `key` left (`was_there`) or joined the queue; a task that leaves and comes
    /// back with the same key moved nobody.
    fn note_move(&mut self, queue: &QueueKey, key: &TaskKey, was_there: bool) {
        let moves = self.moves.entry(queue.clone()).or_default();
        match moves.get(key) {
            Some(before) if *before != was_there => {
                moves.remove(key);
            }
            Some(_) => {}
            None => {
                moves.insert(key.clone(), was_there);
            }
        }
    }

    /// The tasks that joined or left each queue since the last call, each with whether it was
    /// there before.
    pub fn take_moves(&mut self) -> BTreeMap<QueueKey, BTreeMap<TaskKey, bool>> {
        std::mem::take(&mut self.moves)
    }

    /// How many waiting tasks of `queue` come before `key` in dispatch order.
    pub fn ahead_of(&self, queue: &QueueKey, key: &TaskKey) -> usize {
        self.ranks.get(queue).map_or(0, |r| r.rank(key))
    }

    /// The waiting task of `queue` with `index` tasks before it.
    pub fn nth(&self, queue: &QueueKey, index: usize) -> Option<&TaskKey> {
        self.ranks.get(queue)?.nth(index)
    }

    /// How many tasks wait in `queue`.
    pub fn len(&self, queue: &QueueKey) -> usize {
        self.ranks.get(queue).map_or(0, RankSet::len)
    }

    /// Where a waiting task is: its queue and its key there.
    pub fn place_of(&self, task_id: &str) -> Option<(&QueueKey, &TaskKey)> {
        self.placed.get(task_id).map(|p| (&p.queue, &p.key))
    }
}
