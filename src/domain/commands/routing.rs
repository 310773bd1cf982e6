//! The media routing commands: agents' presence per MRD, and tasks from submission to close.
//! Commands on a task answer with the task, and agent commands with the agent's status, as
//! they stand once routing has settled.

use super::{Command, Page, Turn};
use crate::domain::access::{self, TaskAct};
use crate::domain::agents::PasswordHashString;
use crate::domain::error::DomainResult;
use crate::domain::principals::Principal;
use crate::domain::routing::model::{RequestedAgentState, Task, TaskSpec, TaskState};
use crate::domain::routing::supervise::NextState;
use crate::domain::routing::{AgentStatusView, Census, QueuePlace, QueueStats};
use crate::domain::state::State;

/// The task as it stands after routing settled.
fn settled_task(task: Task, state: &State) -> Task {
    state
        .routing
        .task(&task.spec.task_id)
        .cloned()
        .unwrap_or(task)
}

/// The task, if `who` may do `act` to it.
fn task_for<'a>(
    state: &'a State,
    who: &Principal,
    task_id: &str,
    act: TaskAct,
) -> DomainResult<&'a Task> {
    let task = state.routing.task(task_id)?;
    access::act_on_task(who, task, act)?;
    Ok(task)
}

/// The agent's status as it stands after routing settled.
fn settled_agent(view: AgentStatusView, state: &State) -> AgentStatusView {
    state.routing.agent_status(&view.agent_id).unwrap_or(view)
}

#[derive(Debug, Clone)]
pub struct ConnectAgent {
    pub agent_id: String,
    /// `None` when the caller is the agent itself, signed in with a token.
    pub verified_hash: Option<PasswordHashString>,
    pub extension: String,
    pub destination: String,
}

impl Command for ConnectAgent {
    type Answer = ();
    fn run(self, state: &mut State, turn: &mut Turn) -> DomainResult<()> {
        match &self.verified_hash {
            Some(hash) => state.check_hash(&self.agent_id, hash)?,
            None => access::act_as_agent(&turn.principal, &self.agent_id)?,
        }
        state.routing.connect_agent(
            &self.agent_id,
            self.extension,
            self.destination,
            &mut turn.sink,
        )
    }
}

#[derive(Debug, Clone)]
pub struct ChangeAgentState {
    pub agent_id: String,
    /// Set for `LoginAgent` with a password: the hash it was verified against, which lets the
    /// caller log the agent in; otherwise only the agent itself may ask for LOGIN or READY.
    pub verified_hash: Option<PasswordHashString>,
    pub state: RequestedAgentState,
    pub mrd: String,
    pub reason_code: String,
}

impl Command for ChangeAgentState {
    type Answer = AgentStatusView;
    fn run(self, state: &mut State, turn: &mut Turn) -> DomainResult<AgentStatusView> {
        match &self.verified_hash {
            Some(hash) => state.check_hash(&self.agent_id, hash)?,
            None => access::steer_agent(&turn.principal, &self.agent_id, self.state)?,
        }
        state.routing.change_agent_state(
            &self.agent_id,
            self.state,
            &self.mrd,
            &self.reason_code,
            turn.now,
            &mut turn.sink,
        )?;
        state.routing.agent_status(&self.agent_id)
    }
    fn settled(view: AgentStatusView, state: &State) -> AgentStatusView {
        settled_agent(view, state)
    }
}

#[derive(Debug, Clone)]
pub struct NewTask(pub TaskSpec);

impl Command for NewTask {
    type Answer = Task;
    fn run(self, state: &mut State, turn: &mut Turn) -> DomainResult<Task> {
        let task_id = self.0.task_id.clone();
        let spec = TaskSpec {
            created_by: turn.principal.actor.clone(),
            ..self.0
        };
        state.check_room_for_a_task()?;
        state.routing.new_task(spec, turn.now, &mut turn.sink)?;
        state.routing.task(&task_id).cloned()
    }
    fn settled(task: Task, state: &State) -> Task {
        settled_task(task, state)
    }
}

#[derive(Debug, Clone)]
pub struct AcceptTask {
    pub task_id: String,
    pub agent_id: String,
}

impl Command for AcceptTask {
    type Answer = Task;
    fn run(self, state: &mut State, turn: &mut Turn) -> DomainResult<Task> {
        access::act_as_agent(&turn.principal, &self.agent_id)?;
        let r = &mut state.routing;
        r.accept_task(&self.task_id, &self.agent_id, turn.now, &mut turn.sink)?;
        r.task(&self.task_id).cloned()
    }
    fn settled(task: Task, state: &State) -> Task {
        settled_task(task, state)
    }
}

#[derive(Debug, Clone)]
pub struct RejectTask {
    pub task_id: String,
    pub agent_id: String,
}

impl Command for RejectTask {
    type Answer = Task;
    fn run(self, state: &mut State, turn: &mut Turn) -> DomainResult<Task> {
        access::act_as_agent(&turn.principal, &self.agent_id)?;
        let r = &mut state.routing;
        r.reject_task(&self.task_id, &self.agent_id, turn.now, &mut turn.sink)?;
        r.task(&self.task_id).cloned()
    }
    fn settled(task: Task, state: &State) -> Task {
        settled_task(task, state)
    }
}

#[derive(Debug, Clone)]
pub struct ChangeTaskState {
    pub task_id: String,
    pub state: TaskState,
    /// With a close of a handled task: one of its queue's disposition codes; may be empty.
    pub disposition_code: String,
}

impl Command for ChangeTaskState {
    type Answer = Task;
    fn run(self, state: &mut State, turn: &mut Turn) -> DomainResult<Task> {
        task_for(
            state,
            &turn.principal,
            &self.task_id,
            TaskAct::Change(self.state),
        )?;
        let r = &mut state.routing;
        r.change_task_state(
            &self.task_id,
            self.state,
            &self.disposition_code,
            turn.now,
            &mut turn.sink,
        )?;
        r.task(&self.task_id).cloned()
    }
    fn settled(task: Task, state: &State) -> Task {
        settled_task(task, state)
    }
}

/// Where a transfer sends a task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransferTo {
    /// To an agent: handed over at once, or offered (`consult`) for it to accept.
    Agent { agent_id: String, consult: bool },
    /// To a queue of the task's MRD, in line from now or from its first arrival.
    Queue { queue: String, keep_arrival: bool },
}

/// A supervisor puts a task back in line (see `Routing::requeue_task`).
#[derive(Debug, Clone)]
pub struct RequeueTask {
    pub task_id: String,
    /// A queue of the task's MRD; empty: its own.
    pub queue: String,
    /// 1-10; `None`: as `Routing::requeue_task` says.
    pub priority: Option<u8>,
}

impl Command for RequeueTask {
    type Answer = Task;
    fn run(self, state: &mut State, turn: &mut Turn) -> DomainResult<Task> {
        task_for(state, &turn.principal, &self.task_id, TaskAct::Requeue)?;
        let r = &mut state.routing;
        r.requeue_task(
            &self.task_id,
            &self.queue,
            self.priority,
            turn.now,
            &mut turn.sink,
        )?;
        r.task(&self.task_id).cloned()
    }
    fn settled(task: Task, state: &State) -> Task {
        settled_task(task, state)
    }
}

/// A supervisor sets an agent's next state (see `Routing::set_next_state`).
#[derive(Debug, Clone)]
pub struct SetAgentNextState {
    pub agent_id: String,
    pub state: RequestedAgentState,
    pub mrd: String,
    pub reason_code: String,
}

impl Command for SetAgentNextState {
    type Answer = AgentStatusView;
    fn run(self, state: &mut State, turn: &mut Turn) -> DomainResult<AgentStatusView> {
        access::oversee_agent(&turn.principal, &self.agent_id)?;
        let next = NextState {
            agent_id: self.agent_id,
            state: self.state,
            mrd: self.mrd,
            reason_code: self.reason_code,
        };
        let by = &turn.principal.actor;
        state
            .routing
            .set_next_state(&next, by, turn.now, &mut turn.sink)?;
        state.routing.agent_status(&next.agent_id)
    }
    fn settled(view: AgentStatusView, state: &State) -> AgentStatusView {
        settled_agent(view, state)
    }
}

#[derive(Debug, Clone)]
pub struct TransferTask {
    pub task_id: String,
    pub owner_agent_id: String,
    pub to: TransferTo,
}

impl Command for TransferTask {
    type Answer = Task;
    fn run(self, state: &mut State, turn: &mut Turn) -> DomainResult<Task> {
        task_for(state, &turn.principal, &self.task_id, TaskAct::Transfer)?;
        access::transfer_as(&turn.principal, &self.owner_agent_id)?;
        let (r, task, owner, now) = (
            &mut state.routing,
            &self.task_id,
            &self.owner_agent_id,
            turn.now,
        );
        let sink = &mut turn.sink;
        match &self.to {
            TransferTo::Agent {
                agent_id,
                consult: false,
            } => r.transfer_task(task, owner, agent_id, now, sink)?,
            TransferTo::Agent {
                agent_id,
                consult: true,
            } => r.offer_transfer(task, owner, agent_id, now, sink)?,
            TransferTo::Queue {
                queue,
                keep_arrival,
            } => r.transfer_to_queue(task, owner, queue, *keep_arrival, now, sink)?,
        }
        r.task(&self.task_id).cloned()
    }
    fn settled(task: Task, state: &State) -> Task {
        settled_task(task, state)
    }
}

#[derive(Debug, Clone)]
pub struct ConferenceTask {
    pub task_id: String,
    pub owner_agent_id: String,
    pub participant_agent_id: String,
    pub mrd: String,
}

impl Command for ConferenceTask {
    type Answer = Task;
    fn run(self, state: &mut State, turn: &mut Turn) -> DomainResult<Task> {
        task_for(state, &turn.principal, &self.task_id, TaskAct::Conference)?;
        let r = &mut state.routing;
        r.conference_task(
            &self.task_id,
            &self.owner_agent_id,
            &self.participant_agent_id,
            &self.mrd,
            turn.now,
            &mut turn.sink,
        )?;
        r.task(&self.task_id).cloned()
    }
    fn settled(task: Task, state: &State) -> Task {
        settled_task(task, state)
    }
}

#[derive(Debug, Clone)]
pub struct GetAgentState {
    pub agent_id: String,
}

impl Command for GetAgentState {
    type Answer = AgentStatusView;
    const READS_ONLY: bool = true;
    fn run(self, state: &mut State, turn: &mut Turn) -> DomainResult<AgentStatusView> {
        access::see_agent(&turn.principal, &self.agent_id)?;
        state.routing.agent_status(&self.agent_id)
    }
}

#[derive(Debug, Clone)]
pub struct GetTaskState {
    pub task_id: String,
}

impl Command for GetTaskState {
    /// The task, and where it stands in its queue while it waits.
    type Answer = (Task, Option<QueuePlace>);
    const READS_ONLY: bool = true;
    fn run(self, state: &mut State, turn: &mut Turn) -> DomainResult<Self::Answer> {
        let task = task_for(state, &turn.principal, &self.task_id, TaskAct::Read)?;
        let place = state.routing.queue_place(&self.task_id, turn.now);
        Ok((task.clone(), place))
    }
}

#[derive(Debug, Clone)]
pub struct ListAgentStates {
    pub after: Option<String>,
    pub limit: usize,
}

impl Command for ListAgentStates {
    type Answer = Page<AgentStatusView>;
    const READS_ONLY: bool = true;
    fn run(self, state: &mut State, _: &mut Turn) -> DomainResult<Self::Answer> {
        Ok(state
            .routing
            .agent_statuses_after(self.after.as_deref(), self.limit))
    }
}

#[derive(Debug, Clone)]
pub struct ListTasks {
    pub after: Option<String>,
    pub limit: usize,
}

impl Command for ListTasks {
    type Answer = Page<Task>;
    const READS_ONLY: bool = true;
    fn run(self, state: &mut State, _: &mut Turn) -> DomainResult<Self::Answer> {
        Ok(state.routing.tasks_after(self.after.as_deref(), self.limit))
    }
}

#[derive(Debug, Clone)]
pub struct GetQueueStats {
    pub mrd: String,
    pub queue: String,
}

impl Command for GetQueueStats {
    type Answer = QueueStats;
    const READS_ONLY: bool = true;
    fn run(self, state: &mut State, turn: &mut Turn) -> DomainResult<QueueStats> {
        state.routing.queue_stats(&self.mrd, &self.queue, turn.now)
    }
}

/// Routing's census for the server's metrics (no RPC: the metrics listener reads it).
#[derive(Debug, Clone)]
pub struct GetCensus;

impl Command for GetCensus {
    type Answer = Census;
    const READS_ONLY: bool = true;
    fn run(self, state: &mut State, turn: &mut Turn) -> DomainResult<Census> {
        Ok(state.routing.census(turn.now))
    }
}
