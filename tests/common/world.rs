//! The routing rules without a server: a `State` driven with explicit commands and a clock the
//! test moves, so every rule and the simulation are deterministic.

// Shared by the tests and the routing benchmark; each uses only some of it.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use switchboard::credentials::hash_password;
use switchboard::domain::agents::PasswordHashString;
use switchboard::domain::commands::{self as cmd, Command};
use switchboard::domain::routing::AgentStatusView;
use switchboard::domain::routing::config::{
    LogoutAction, MrdConfig, QueueConfig, ReasonCategory, ReasonCode, RonaAction, Step,
};
use switchboard::domain::routing::expr::Expr;
use switchboard::domain::routing::model::{
    AgentState, RequestedAgentState, Task, TaskSpec, TaskState,
};
use switchboard::domain::{DomainError, Event, Millis, ModelCatalog, ServiceDirectory, State};

/// One real hash shared by every test agent: hashing is slow on purpose.
pub fn test_hash() -> PasswordHashString {
    static HASH: OnceLock<PasswordHashString> = OnceLock::new();
    HASH.get_or_init(|| hash_password("test-password").unwrap())
        .clone()
}

pub struct World {
    pub state: State,
    pub now: Millis,
    /// Every event so far, in order.
    pub events: Vec<Event>,
    /// The hash every agent this world creates gets.
    pub password_hash: PasswordHashString,
}

impl Default for World {
    fn default() -> Self {
        Self::new()
    }
}

impl World {
    pub fn new() -> Self {
        Self {
            state: Self::empty_state(),
            now: 1_000_000,
            events: Vec::new(),
            password_hash: test_hash(),
        }
    }

    /// A state configured as every world's, before any event.
    pub fn empty_state() -> State {
        let directory = ServiceDirectory::new(uuid::Uuid::nil(), "Switchboard");
        State::new(directory, Arc::new(ModelCatalog::default()))
    }

    /// Runs a command at the current time; returns its answer and the events it produced.
    pub fn run<C: Command>(&mut self, command: C) -> Result<(C::Answer, Vec<Event>), DomainError> {
        let (answer, decided) = self.state.execute(command, self.now)?;
        let events: Vec<Event> = decided.into_iter().map(|d| d.event).collect();
        self.events.extend(events.iter().cloned());
        Ok((answer, events))
    }

    #[track_caller]
    pub fn ok<C: Command>(&mut self, command: C) -> Vec<Event> {
        match self.run(command) {
            Ok((_, events)) => events,
            Err(e) => panic!("command failed: {e}"),
        }
    }

    /// Moves the clock on and fires what is due.
    pub fn advance(&mut self, ms: Millis) -> Vec<Event> {
        self.now += ms;
        self.ok(cmd::Tick)
    }

    pub fn mrd(&mut self, name: &str, max_tasks: u32) {
        self.mrd_with(MrdConfig {
            name: name.into(),
            max_tasks,
            interruptible: false,
            offer_timeout_ms: 30_000,
            wrap_up_timeout_ms: 0,
            rona_action: RonaAction::NotReady,
            logout_action: LogoutAction::Close,
            blocks: Vec::new(),
            classifiers: Vec::new(),
            unclassified_queue: String::new(),
            unclassified_priority: 0,
        });
    }

    pub fn mrd_with(&mut self, mrd: MrdConfig) {
        self.ok(cmd::UpsertMrd(mrd));
    }

    /// A queue whose steps are `(expression, timeout ms)`.
    pub fn queue(&mut self, mrd: &str, name: &str, steps: &[(&str, Millis)], ttl_ms: Millis) {
        self.ok(cmd::UpsertQueue(QueueConfig {
            name: name.into(),
            mrd: mrd.into(),
            steps: steps
                .iter()
                .map(|(e, t)| Step {
                    expression: Expr::parse(e).unwrap(),
                    timeout_ms: *t,
                })
                .collect(),
            task_ttl_ms: ttl_ms,
            attempts: Default::default(),
            service_level: Default::default(),
            dispositions: Default::default(),
        }));
    }

    pub fn reason(&mut self, code: &str, category: ReasonCategory) {
        self.ok(cmd::UpsertReasonCode(ReasonCode {
            code: code.into(),
            label: code.into(),
            category,
        }));
    }

    pub fn agent(&mut self, agent_id: &str, attributes: &[(&str, u32)]) {
        self.agent_with_max(agent_id, attributes, &[]);
    }

    pub fn agent_with_max(
        &mut self,
        agent_id: &str,
        attributes: &[(&str, u32)],
        max: &[(&str, u32)],
    ) {
        self.ok(cmd::UpsertAgent {
            agent_id: agent_id.into(),
            display_name: agent_id.into(),
            password_hash: Some(self.password_hash.clone()),
            attributes: attributes.iter().map(|(k, v)| ((*k).into(), *v)).collect(),
            mrd_max_tasks: max.iter().map(|(k, v)| ((*k).into(), *v)).collect(),
            roles: None,
        });
    }

    pub fn set_state(
        &mut self,
        agent_id: &str,
        state: RequestedAgentState,
        mrd: &str,
    ) -> Result<Vec<Event>, DomainError> {
        self.set_state_reason(agent_id, state, mrd, "")
    }

    pub fn set_state_reason(
        &mut self,
        agent_id: &str,
        state: RequestedAgentState,
        mrd: &str,
        reason_code: &str,
    ) -> Result<Vec<Event>, DomainError> {
        self.run(cmd::ChangeAgentState {
            agent_id: agent_id.into(),
            verified_hash: None,
            state,
            mrd: mrd.into(),
            reason_code: reason_code.into(),
        })
        .map(|(_, e)| e)
    }

    pub fn login_ready(&mut self, agent_id: &str, mrd: &str) -> Vec<Event> {
        self.set_state(agent_id, RequestedAgentState::Login, mrd)
            .unwrap();
        self.set_state(agent_id, RequestedAgentState::Ready, mrd)
            .unwrap()
    }

    pub fn task(&mut self, task_id: &str, mrd: &str, queue: &str, priority: u8) -> Vec<Event> {
        self.task_spec(spec(task_id, mrd, queue, priority))
    }

    pub fn task_spec(&mut self, spec: TaskSpec) -> Vec<Event> {
        self.ok(cmd::NewTask(spec))
    }

    pub fn accept(&mut self, task_id: &str, agent_id: &str) -> Vec<Event> {
        self.ok(cmd::AcceptTask {
            task_id: task_id.into(),
            agent_id: agent_id.into(),
        })
    }

    pub fn task_state(
        &mut self,
        task_id: &str,
        state: TaskState,
    ) -> Result<Vec<Event>, DomainError> {
        self.task_state_coded(task_id, state, "")
    }

    /// A change of a task's state that gives a disposition code.
    pub fn task_state_coded(
        &mut self,
        task_id: &str,
        state: TaskState,
        disposition_code: &str,
    ) -> Result<Vec<Event>, DomainError> {
        self.run(cmd::ChangeTaskState {
            task_id: task_id.into(),
            state,
            disposition_code: disposition_code.into(),
        })
        .map(|(_, e)| e)
    }

    pub fn get_task(&mut self, task_id: &str) -> Task {
        match self.run(cmd::GetTaskState {
            task_id: task_id.into(),
        }) {
            Ok(((task, _), _)) => task,
            Err(e) => panic!("no task {task_id}: {e}"),
        }
    }

    pub fn get_agent(&mut self, agent_id: &str) -> AgentStatusView {
        match self.run(cmd::GetAgentState {
            agent_id: agent_id.into(),
        }) {
            Ok((view, _)) => view,
            Err(e) => panic!("no agent {agent_id}: {e}"),
        }
    }

    pub fn agent_state(&self, agent_id: &str, mrd: &str) -> AgentState {
        self.state.routing().agent_state(agent_id, mrd)
    }
}

pub fn spec(task_id: &str, mrd: &str, queue: &str, priority: u8) -> TaskSpec {
    TaskSpec {
        task_id: task_id.into(),
        request_id: String::new(),
        mrd: mrd.into(),
        queue: queue.into(),
        priority,
        conversation_id: String::new(),
        last_agent_id: String::new(),
        labels: Vec::new(),
        attributes: BTreeMap::new(),
        created_by: Default::default(),
        callback_for: String::new(),
        preferred_agents: Vec::new(),
        preferred_timeout_ms: 0,
    }
}

/// The offers among some events, as (task, agent).
pub fn offers(events: &[Event]) -> Vec<(String, String)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::TaskAgentSelected {
                task_id, agent_id, ..
            } => Some((task_id.clone(), agent_id.clone())),
            _ => None,
        })
        .collect()
}

pub fn offer_of(events: &[Event], task_id: &str) -> Option<String> {
    offers(events)
        .into_iter()
        .find(|(t, _)| t == task_id)
        .map(|(_, a)| a)
}
