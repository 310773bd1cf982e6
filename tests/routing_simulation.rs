//! Thousands of random commands (supervisor moves among them) and clock jumps against the
//! routing engine, checking after every step that nothing is over capacity, double-owned,
//! stuck or left waiting beside an idle eligible agent, and every few hundred steps that the
//! fold of its events (from the start, and from the latest snapshot) rebuilds the live state.
//! Seeded: a failure names its seed and step, and replays exactly.

mod common;
#[path = "common/queueing_invariants.rs"]
mod queueing;

use std::collections::BTreeMap;

use common::replay::ReplayCheck;
use common::world::{World, spec};
use switchboard::domain::commands as cmd;
use switchboard::domain::routing::attempts::AttemptPolicy;
use switchboard::domain::routing::classify::{Classifier, QueueChoice};
use switchboard::domain::routing::config::{LogoutAction, MrdConfig, QueueConfig, RonaAction};
use switchboard::domain::routing::expr::Expr;
use switchboard::domain::routing::expr::TaskExpr;
use switchboard::domain::routing::model::{
    AgentState, RequestedAgentState as Req, RequeueReason, Selection, Task, TaskSpec, TaskState,
};
use switchboard::domain::routing::{AgentStatusView, ServiceLevelTarget};
use switchboard::domain::{DomainError, Event};

const STEPS: usize = 3_000;
const AGENTS: usize = 12;
/// Steps between checks that replaying the events, and restoring the latest snapshot then
/// replaying the rest, both rebuild the live state.
const REPLAY_EVERY: usize = 250;

/// A small deterministic generator (64-bit LCG), so a seed fully fixes a run.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next()).unwrap() % n
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        (!items.is_empty()).then(|| &items[self.below(items.len())])
    }
}

/// Chat's classifiers: VIPs to sales, then by language.
fn classifiers() -> Vec<Classifier> {
    [
        ("vip", "vip", "sales", 9),
        ("lang", "lang = en OR lang = fr", "lang", 0),
    ]
    .iter()
    .map(|(name, e, queue, priority)| Classifier {
        name: (*name).into(),
        expression: TaskExpr::parse(e).unwrap(),
        queue: (*queue).into(),
        priority: *priority,
    })
    .collect()
}

/// A task that names no queue lands where the first matching classifier says (chat), or in
/// `default` (email has none); one that names a queue is not classified.
fn check_classified(spec: &TaskSpec, events: &[Event]) {
    let Some((queue, choice)) = events.iter().find_map(|e| match e {
        Event::TaskQueued { spec, choice, .. } => Some((spec.queue.clone(), choice.clone())),
        _ => None,
    }) else {
        return;
    };
    let rules = if spec.mrd == "chat" {
        classifiers()
    } else {
        Vec::new()
    };
    let expected = if !spec.queue.is_empty() {
        QueueChoice::Channel
    } else {
        rules
            .iter()
            .position(|c| c.expression.matches(&spec.attributes, &spec.labels))
            .map_or(QueueChoice::Unclassified, |index| QueueChoice::Classifier {
                index,
                name: rules[index].name.clone(),
            })
    };
    if let QueueChoice::Classifier { index, .. } = &expected {
        assert_eq!(queue, rules[*index].queue, "{}", spec.task_id);
    }
    assert_eq!(choice, expected, "{}", spec.task_id);
}

struct Sim {
    world: World,
    rng: Lcg,
    attributes: BTreeMap<String, BTreeMap<String, u32>>,
    next_task: usize,
}

impl Sim {
    fn new(seed: u64) -> Self {
        let mut world = World::new();
        world.mrd_with(MrdConfig {
            name: "chat".into(),
            max_tasks: 3,
            // Cross-MRD rules both ways: email work keeps chat closed (not interruptible),
            // and chat work or a chat offer keeps email closed (`blocks`).
            interruptible: true,
            offer_timeout_ms: 8_000,
            wrap_up_timeout_ms: 5_000,
            rona_action: RonaAction::NotReady,
            logout_action: LogoutAction::Requeue,
            blocks: vec!["email".into()],
            classifiers: classifiers(),
            unclassified_queue: String::new(),
            unclassified_priority: 0,
        });
        world.mrd_with(MrdConfig {
            name: "email".into(),
            max_tasks: 2,
            interruptible: false,
            offer_timeout_ms: 12_000,
            wrap_up_timeout_ms: 0,
            rona_action: RonaAction::NotRoutable,
            logout_action: LogoutAction::Close,
            blocks: Vec::new(),
            classifiers: Vec::new(),
            unclassified_queue: String::new(),
            unclassified_priority: 0,
        });
        world.queue(
            "chat",
            "sales",
            &[("sales >= 7", 3_000), ("sales >= 3", 3_000), ("TRUE", 0)],
            60_000,
        );
        // Where `sales` tasks that let go their attempts may overflow to.
        world.queue("chat", "spill", &[("sales >= 5", 0)], 0);
        // Task-aware steps: the task's language first, then enough sales skill for it.
        let lang_steps = [("lang = task.lang", 3_000), ("sales >= task.min_sales", 0)];
        world.queue("chat", "lang", &lang_steps, 60_000);
        world.queue(
            "email",
            "support",
            &[("support AND lang_en", 5_000), ("support OR lang_en", 0)],
            0,
        );
        let mut sim = Self {
            world,
            rng: Lcg(seed),
            attributes: BTreeMap::new(),
            next_task: 0,
        };
        for i in 0..AGENTS {
            let mut attrs: BTreeMap<String, u32> = [
                (
                    "sales".to_owned(),
                    u32::try_from(sim.rng.below(11)).unwrap(),
                ),
                (
                    "support".to_owned(),
                    u32::try_from(sim.rng.below(2)).unwrap(),
                ),
                (
                    "lang_en".to_owned(),
                    u32::try_from(sim.rng.below(2)).unwrap(),
                ),
                (
                    "lang_fr".to_owned(),
                    u32::try_from(sim.rng.below(2)).unwrap(),
                ),
            ]
            .into();
            // An agent lacks what it has at 0: attributes hold 1-10, and expressions read an
            // absent attribute as 0.
            attrs.retain(|_, level| *level > 0);
            let max: Vec<(&str, u32)> = match i % 4 {
                0 => vec![("chat", 1)],
                1 => vec![("email", 0)],
                _ => vec![],
            };
            let id = format!("agent{i:02}");
            let attr_refs: Vec<(&str, u32)> = attrs.iter().map(|(k, v)| (k.as_str(), *v)).collect();
            sim.world.agent_with_max(&id, &attr_refs, &max);
            sim.attributes.insert(id, attrs);
        }
        sim
    }

    fn agents(&self) -> Vec<String> {
        self.attributes.keys().cloned().collect()
    }

    fn tasks(&mut self) -> Vec<Task> {
        match self.world.run(cmd::ListTasks {
            after: None,
            limit: 1_000_000,
        }) {
            Ok((page, _)) => page.items,
            Err(e) => panic!("{e}"),
        }
    }

    fn tasks_in(&mut self, states: &[TaskState]) -> Vec<Task> {
        self.tasks()
            .into_iter()
            .filter(|t| states.contains(&t.state))
            .collect()
    }

    /// A task with a pending offer: routed, or an offered transfer of an active task.
    fn pick_offered(&mut self) -> Option<Task> {
        let tasks: Vec<Task> = self
            .tasks()
            .into_iter()
            .filter(|t| t.offer.is_some())
            .collect();
        self.rng.pick(&tasks).cloned()
    }

    fn pick_task(&mut self, states: &[TaskState]) -> Option<Task> {
        let tasks = self.tasks_in(states);
        self.rng.pick(&tasks).cloned()
    }

    /// One random command; refusals are fine (and must be refusals, not panics).
    fn step(&mut self) {
        let agents = self.agents();
        let mrds = ["chat", "email"];
        let agent = self.rng.pick(&agents).unwrap().clone();
        let mrd = *self.rng.pick(&mrds).unwrap();
        let result: Result<Vec<Event>, DomainError> = match self.rng.below(100) {
            0..=7 => self.world.set_state(
                &agent,
                Req::Login,
                if self.rng.below(3) == 0 { "" } else { mrd },
            ),
            8..=22 => self.world.set_state(&agent, Req::Ready, mrd),
            23..=27 => self.world.set_state(&agent, Req::NotReady, mrd),
            28..=30 => self.world.set_state(&agent, Req::Logout, mrd),
            31..=50 => {
                self.next_task += 1;
                let queue = *self
                    .rng
                    .pick(&["sales", "support", "lang", "", "nowhere"])
                    .unwrap();
                let mut s = spec(
                    &format!("task{:05}", self.next_task),
                    mrd,
                    queue,
                    u8::try_from(1 + self.rng.below(10)).unwrap(),
                );
                if self.rng.below(4) == 0 {
                    s.last_agent_id = agent.clone();
                }
                if self.rng.below(3) == 0 {
                    s.conversation_id = format!("conv{}", self.rng.below(5));
                }
                if self.rng.below(6) == 0 && self.next_task > 1 {
                    s.callback_for = format!("task{:05}", 1 + self.rng.below(self.next_task - 1));
                }
                if self.rng.below(4) == 0 {
                    s.preferred_agents = vec![self.rng.pick(&agents).unwrap().clone()];
                    s.preferred_timeout_ms = u64::try_from(self.rng.below(3) * 4_000).unwrap();
                }
                for (name, values) in [("lang", ["en", "fr", "de"]), ("min_sales", ["3", "7", "x"])]
                {
                    if let Some(v) = self.rng.pick(&values[..]).filter(|_| self.rng.below(4) > 0) {
                        s.attributes.insert(name.into(), (*v).into());
                    }
                }
                if self.rng.below(4) == 0 {
                    s.labels.push("vip".into());
                }
                let result = self.world.run(cmd::NewTask(s.clone())).map(|(_, e)| e);
                if let Ok(events) = &result {
                    check_classified(&s, events);
                }
                result
            }
            51..=65 => match self.pick_offered() {
                Some(task) => {
                    let (offered_to, _) = task.offer.clone().unwrap();
                    let (task_id, agent_id) = (task.spec.task_id, offered_to);
                    if self.rng.below(5) == 0 {
                        let command = cmd::RejectTask { task_id, agent_id };
                        self.world.run(command).map(|(_, e)| e)
                    } else {
                        let command = cmd::AcceptTask { task_id, agent_id };
                        self.world.run(command).map(|(_, e)| e)
                    }
                }
                None => Ok(vec![]),
            },
            66..=77 => {
                let open = self.tasks_in(&[
                    TaskState::Queued,
                    TaskState::Active,
                    TaskState::Paused,
                    TaskState::WrappingUp,
                ]);
                match self.rng.pick(&open).cloned() {
                    Some(task) => {
                        let state = *self
                            .rng
                            .pick(&[
                                TaskState::Paused,
                                TaskState::Active,
                                TaskState::WrappingUp,
                                TaskState::Closed,
                            ])
                            .unwrap();
                        self.world.task_state(&task.spec.task_id, state)
                    }
                    None => Ok(vec![]),
                }
            }
            78..=83 => match self.pick_task(&[TaskState::Active]) {
                Some(task) => {
                    let other = self.rng.pick(&agents).unwrap().clone();
                    if self.rng.below(2) == 0 {
                        let to = match self.rng.below(3) {
                            0 => cmd::TransferTo::Agent {
                                agent_id: other,
                                consult: false,
                            },
                            1 => cmd::TransferTo::Agent {
                                agent_id: other,
                                consult: true,
                            },
                            _ => cmd::TransferTo::Queue {
                                queue: if mrd == "chat" { "sales" } else { "support" }.into(),
                                keep_arrival: self.rng.below(2) == 0,
                            },
                        };
                        let command = cmd::TransferTask {
                            task_id: task.spec.task_id,
                            owner_agent_id: task.owner.clone().unwrap(),
                            to,
                        };
                        self.world.run(command).map(|(_, e)| e)
                    } else {
                        let command = cmd::ConferenceTask {
                            task_id: task.spec.task_id,
                            owner_agent_id: task.owner.clone().unwrap(),
                            participant_agent_id: other,
                            mrd: String::new(),
                        };
                        self.world.run(command).map(|(_, e)| e)
                    }
                }
                None => Ok(vec![]),
            },
            84..=85 => {
                // Reconfigure a queue while tasks wait in it: the task-aware one rebuilds the
                // pools of its bindings.
                let (name, all) = if self.rng.below(2) == 0 {
                    ("sales", ["sales >= 7", "sales >= 3", "TRUE"])
                } else {
                    (
                        "lang",
                        ["lang = task.lang", "sales >= task.min_sales", "TRUE"],
                    )
                };
                let steps = if self.rng.below(2) == 0 { 1 } else { 3 };
                let q = QueueConfig {
                    name: name.into(),
                    mrd: "chat".into(),
                    steps: all
                        .iter()
                        .take(steps)
                        .map(|e| switchboard::domain::routing::config::Step {
                            expression: Expr::parse(e).unwrap(),
                            timeout_ms: 3_000,
                        })
                        .collect(),
                    task_ttl_ms: 60_000,
                    attempts: AttemptPolicy {
                        max_attempts: 2,
                        overflow_queue: if steps == 1 { "spill" } else { "" }.into(),
                    },
                    service_level: ServiceLevelTarget {
                        percent: 80,
                        threshold_ms: 10_000,
                        window_ms: 60_000 * u64::try_from(steps).unwrap(),
                    },
                    dispositions: Default::default(),
                };
                self.world.run(cmd::UpsertQueue(q)).map(|(_, e)| e)
            }
            86..=87 => {
                // A supervisor puts a task back in line, maybe elsewhere, maybe reprioritised.
                let open = self.tasks_in(&[
                    TaskState::Queued,
                    TaskState::Offered,
                    TaskState::Active,
                    TaskState::Paused,
                ]);
                match self.rng.pick(&open).cloned() {
                    Some(task) => {
                        let queue = *self.rng.pick(&["", "sales", "support", "nowhere"]).unwrap();
                        let priority = (self.rng.below(3) > 0)
                            .then(|| u8::try_from(1 + self.rng.below(10)).unwrap());
                        let command = cmd::RequeueTask {
                            task_id: task.spec.task_id,
                            queue: queue.into(),
                            priority,
                        };
                        self.world.run(command).map(|(_, e)| e)
                    }
                    None => Ok(vec![]),
                }
            }
            88 => {
                // A supervisor sets an agent's next state.
                let state = *self
                    .rng
                    .pick(&[Req::Ready, Req::NotReady, Req::Logout])
                    .unwrap();
                let command = cmd::SetAgentNextState {
                    agent_id: agent.clone(),
                    state,
                    mrd: if self.rng.below(3) == 0 { "" } else { mrd }.into(),
                    reason_code: String::new(),
                };
                self.world.run(command).map(|(_, e)| e)
            }
            _ => {
                let jump = u64::try_from(self.rng.below(10_000)).unwrap();
                Ok(self.world.advance(jump))
            }
        };
        // Refusals carry a reason; anything else is a bug in the rules.
        if let Err(DomainError::Internal(e)) = &result {
            panic!("internal error: {e}");
        }
        // A position announced is the task's position once the command is done.
        for event in result.iter().flatten() {
            if let Event::TaskPositionChanged {
                task_id, position, ..
            } = event
            {
                let command = cmd::GetTaskState {
                    task_id: task_id.clone(),
                };
                let ((_, place), _) = self.world.run(command).expect("an announced task");
                assert_eq!(place.map(|p| p.position), Some(*position), "{task_id}");
            }
        }
    }

    fn agent_views(&mut self) -> BTreeMap<String, AgentStatusView> {
        self.agents()
            .into_iter()
            .map(|a| (a.clone(), self.world.get_agent(&a)))
            .collect()
    }

    /// Would `agent` be a legal pick for the waiting `task` right now?
    fn could_take(
        &self,
        view: &AgentStatusView,
        task: &Task,
        queues: &BTreeMap<(String, String), QueueConfig>,
        tasks: &BTreeMap<String, Task>,
    ) -> bool {
        let Some(on_mrd) = view.mrds.iter().find(|m| m.mrd == task.spec.mrd) else {
            return false;
        };
        let free = matches!(
            on_mrd.state,
            AgentState::Ready | AgentState::Active | AgentState::WorkReady
        );
        if !free
            || !view.routable
            || view.pending_offer.is_some()
            || on_mrd.active_tasks.len() >= on_mrd.max_tasks as usize
        {
            return false;
        }
        if task.declined_by.contains(&view.agent_id) {
            return false;
        }
        let same_conversation = !task.spec.conversation_id.is_empty()
            && on_mrd
                .active_tasks
                .iter()
                .any(|t| tasks[t].spec.conversation_id == task.spec.conversation_id);
        if same_conversation {
            return false;
        }
        let routing = self.world.state.routing();
        if routing
            .blocking_mrd(&view.agent_id, &task.spec.mrd)
            .is_some()
        {
            return false;
        }
        if task.spec.preferred().any(|a| *a == view.agent_id) {
            return true;
        }
        if task.preferred_deadline.is_some() {
            return false;
        }
        let queue = &queues[&(task.spec.mrd.clone(), task.spec.queue.clone())];
        let attributes = &self.attributes[&view.agent_id];
        queue.steps.iter().take(task.step + 1).any(|s| {
            s.expression
                .binding(&task.spec.attributes)
                .is_some_and(|b| s.expression.matches_with(attributes, &b))
        })
    }

    fn check(&mut self, seed: u64, step: usize) {
        let now = self.world.now;
        let at = format!("seed {seed}, step {step}");
        let tasks: BTreeMap<String, Task> = self
            .tasks()
            .into_iter()
            .map(|t| (t.spec.task_id.clone(), t))
            .collect();
        let views = self.agent_views();
        let queues: BTreeMap<(String, String), QueueConfig> = match self.world.run(cmd::ListQueues)
        {
            Ok((q, _)) => q
                .into_iter()
                .map(|q| ((q.mrd.clone(), q.name.clone()), q))
                .collect(),
            Err(e) => panic!("{e}"),
        };

        // No agent above its MRD's max; every task an agent holds lists the agent. A LOGOUT a
        // supervisor set waits only while the agent has work there.
        for view in views.values() {
            for m in &view.mrds {
                if m.logout_pending_by.is_some() {
                    let offered_here = view
                        .pending_offer
                        .as_ref()
                        .is_some_and(|t| tasks[t].spec.mrd == m.mrd);
                    assert!(
                        !m.active_tasks.is_empty() || offered_here,
                        "{at}: {}'s LOGOUT on {} waits though it is free",
                        view.agent_id,
                        m.mrd
                    );
                }
                assert!(
                    m.active_tasks.len() <= m.max_tasks as usize,
                    "{at}: {} over max on {}",
                    view.agent_id,
                    m.mrd
                );
                for t in &m.active_tasks {
                    let task = &tasks[t];
                    assert!(
                        task.agents().any(|a| *a == view.agent_id),
                        "{at}: {} holds {t} but is not on it",
                        view.agent_id
                    );
                    assert!(
                        matches!(
                            task.state,
                            TaskState::Active | TaskState::Paused | TaskState::WrappingUp
                        ),
                        "{at}: {t} held while {:?}",
                        task.state
                    );
                }
            }
        }
        for task in tasks.values() {
            let id = &task.spec.task_id;
            let holders: Vec<&String> = views
                .values()
                .filter(|v| v.mrds.iter().any(|m| m.active_tasks.contains(id)))
                .map(|v| &v.agent_id)
                .collect();
            match task.state {
                TaskState::Queued => {
                    assert!(
                        task.offer.is_none() && task.owner.is_none() && holders.is_empty(),
                        "{at}: queued {id} has agents"
                    );
                }
                TaskState::Active | TaskState::Paused if task.offer.is_some() => {
                    // An offered transfer: the owner keeps the task while the recipient rings.
                    let (agent, deadline) = task.offer.clone().unwrap();
                    assert!(
                        deadline > now,
                        "{at}: transfer offer of {id} is past its deadline"
                    );
                    assert_eq!(
                        views[&agent].pending_offer.as_deref(),
                        Some(id.as_str()),
                        "{at}: transfer offer of {id} not on {agent}"
                    );
                    assert!(
                        !holders.contains(&&agent),
                        "{at}: {agent} rings for {id} it holds"
                    );
                    assert!(
                        task.owner.is_some(),
                        "{at}: offered transfer of {id} has no owner"
                    );
                }
                TaskState::Offered => {
                    let (agent, deadline) =
                        task.offer.clone().expect("an offered task names its agent");
                    assert!(deadline > now, "{at}: offer of {id} is past its deadline");
                    assert_eq!(
                        views[&agent].pending_offer.as_deref(),
                        Some(id.as_str()),
                        "{at}: offer of {id} not on {agent}"
                    );
                    assert!(holders.is_empty(), "{at}: offered {id} is held");
                }
                TaskState::Active | TaskState::Paused | TaskState::WrappingUp => {
                    // One owner; a conference participant is not an owner.
                    let owner = task
                        .owner
                        .clone()
                        .unwrap_or_else(|| panic!("{at}: {id} has no owner"));
                    assert!(
                        !task.participants.contains(&owner),
                        "{at}: {id}'s owner is also a participant"
                    );
                    assert_eq!(
                        holders.len(),
                        1 + task.participants.len(),
                        "{at}: {id} held by {holders:?}"
                    );
                }
                TaskState::Closed => {
                    assert!(
                        task.close_reason.is_some(),
                        "{at}: {id} closed without a reason"
                    );
                    assert!(holders.is_empty(), "{at}: closed {id} still held");
                }
            }
        }
        // Queue statistics, kept as tasks move, equal a walk of the waiting tasks.
        for (mrd, queue) in queues.keys() {
            let mut by_priority = BTreeMap::new();
            let mut oldest = None::<u64>;
            for task in tasks.values().filter(|t| {
                t.state == TaskState::Queued && t.spec.mrd == *mrd && t.spec.queue == *queue
            }) {
                *by_priority.entry(task.priority).or_insert(0_u32) += 1;
                oldest = Some(oldest.map_or(task.queued_at, |o| o.min(task.queued_at)));
            }
            let query = cmd::GetQueueStats {
                mrd: mrd.clone(),
                queue: queue.clone(),
            };
            let (stats, _) = self.world.run(query).expect("a listed queue's statistics");
            assert_eq!(
                stats.waiting_by_priority, by_priority,
                "{at}: {mrd}/{queue} waiting counts"
            );
            assert_eq!(
                stats.longest_wait_ms,
                oldest.map_or(0, |o| now.saturating_sub(o)),
                "{at}: {mrd}/{queue} longest wait"
            );
        }
        queueing::check(&mut self.world, &tasks, &queues, &at);
        // No blocked MRD offered: an agent rings only on an MRD its other work leaves open.
        for view in views.values() {
            if let Some(offered) = &view.pending_offer {
                let mrd = &tasks[offered].spec.mrd;
                let blocking = self.world.state.routing().blocking_mrd(&view.agent_id, mrd);
                assert!(
                    blocking.is_none(),
                    "{at}: {} offered {offered} on {mrd}, blocked by {blocking:?}",
                    view.agent_id
                );
            }
        }
        // No task waits while an eligible agent is idle.
        for task in tasks.values().filter(|t| t.state == TaskState::Queued) {
            for view in views.values() {
                assert!(
                    !self.could_take(view, task, &queues, &tasks),
                    "{at}: {} waits while {} could take it",
                    task.spec.task_id,
                    view.agent_id
                );
            }
        }
    }
}

fn run(seed: u64) -> Vec<Event> {
    let mut sim = Sim::new(seed);
    let mut replay = ReplayCheck::default();
    for step in 0..STEPS {
        sim.step();
        sim.check(seed, step);
        if step % REPLAY_EVERY == REPLAY_EVERY - 1 {
            replay.check(&sim.world, &format!("seed {seed}, step {step}"));
        }
    }
    let tasks = sim.tasks();
    let routed = tasks
        .iter()
        .filter(|t| t.state != TaskState::Queued)
        .count();
    assert!(
        tasks.len() > 300 && routed > 100,
        "seed {seed}: the run did too little ({} tasks, {routed} routed)",
        tasks.len()
    );
    // The new rules took part: classifiers chose queues, task-aware steps chose agents, and
    // supervisors moved tasks and set next states.
    let events = &sim.world.events;
    let count = |wanted: &dyn Fn(&Event) -> bool| events.iter().filter(|e| wanted(e)).count();
    let classified = count(&|e| {
        matches!(
            e,
            Event::TaskQueued {
                choice: QueueChoice::Classifier { .. },
                ..
            }
        )
    });
    let task_aware = count(&|e| {
        matches!(
            e,
            Event::TaskAgentSelected { queue, selection: Selection::Step { index: 0 | 1 }, .. }
                if queue == "lang"
        )
    });
    let requeues = count(&|e| {
        matches!(
            e,
            Event::TaskRequeued {
                reason: RequeueReason::Supervisor,
                ..
            }
        )
    });
    let next_states = count(&|e| matches!(e, Event::AgentNextStateSet { .. }));
    assert!(
        classified > 20 && task_aware > 0,
        "seed {seed}: {classified} tasks classified, {task_aware} offered by task-aware steps"
    );
    assert!(
        requeues > 10 && next_states > 10,
        "seed {seed}: too few supervisor moves ({requeues} requeues, {next_states} next states)"
    );
    sim.world.events
}

#[test]
fn random_commands_keep_every_invariant() {
    for seed in [1, 2, 3] {
        run(seed);
    }
}

#[test]
fn the_same_seed_gives_the_same_events() {
    assert_eq!(run(42), run(42));
}
