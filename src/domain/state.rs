//! The session hub's state and its rules: `execute` decides which events a command produces
//! (or refuses it) and applies them; `apply` is the fold that replay uses too.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::agents::{AgentRecord, PasswordHashString, validate_routing_profile};
use super::commands::{Command, Outcome, PrepareResult, SessionView};
use super::error::{DomainError, DomainResult};
use super::events::{Event, Millis};
use super::ids::ClientId;
use super::presence::Presence;
use super::routing::model::RequestedAgentState;
use super::routing::{DesktopAction, Routing, Sink};

/// The workflow actions that also log the session's agent in and out of routing.
pub const SESSION_LOGIN: &str = "session.login";
pub const SESSION_LOGOUT: &str = "session.logout";
/// What a desktop can do with a task, as `GetCapabilities` reports it.
const CHANNEL_ACTIONS: [&str; 8] = [
    "accept",
    "reject",
    "pause",
    "resume",
    "wrap-up",
    "close",
    "transfer",
    "conference",
];
use super::services::{ServiceDirectory, ServiceKind};
use super::workflow::{ModelCatalog, WorkflowModel};

/// A registered client's bindings. Its name stays in the journal, for diagnostics.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(super) struct Client {
    services: BTreeSet<ServiceKind>,
    resources: BTreeSet<(ServiceKind, String)>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Session {
    agent_id: String,
    model: String,
    cti: String,
    view_state: String,
    /// The actions desktops were last shown, so a routing change re-announces only changes.
    shown: Vec<(String, bool)>,
}

/// An event together with the clients whose streams must receive it, computed before the
/// event is applied (an ended session has no bound clients afterwards).
#[derive(Debug, Clone)]
pub struct Decided {
    pub event: Event,
    pub audience: Vec<ClientId>,
}

#[derive(Debug, Clone)]
pub struct State {
    directory: ServiceDirectory,
    models: Arc<ModelCatalog>,
    pub(super) clients: BTreeMap<ClientId, Client>,
    pub(super) agents: BTreeMap<String, AgentRecord>,
    pub(super) sessions: BTreeMap<String, Session>,
    pub(super) routing: Routing,
    /// Not journaled: rebuilt at start-up with a fresh grace period for every client.
    presence: Presence,
}

/// How long a client without an open stream stays registered after its last call, unless
/// the server is configured otherwise.
pub const DEFAULT_PRESENCE_GRACE_MS: Millis = 60_000;

impl State {
    pub fn new(directory: ServiceDirectory, models: Arc<ModelCatalog>) -> Self {
        Self {
            directory,
            models,
            clients: BTreeMap::new(),
            agents: BTreeMap::new(),
            sessions: BTreeMap::new(),
            routing: Routing::default(),
            presence: Presence::new(DEFAULT_PRESENCE_GRACE_MS),
        }
    }

    /// Sets how long a client without a stream stays registered after its last call.
    pub fn with_presence_grace(mut self, grace_ms: Millis) -> Self {
        self.presence = Presence::new(grace_ms);
        self
    }

    pub fn routing(&self) -> &Routing {
        &self.routing
    }

    /// When the engine must next run `Command::Tick`.
    pub fn next_deadline(&self) -> Option<Millis> {
        match (self.routing.next_deadline(), self.presence.next_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Call once after replaying the journal (at `now`): what it replayed was already
    /// settled, and every client gets a grace period to reconnect in.
    pub fn finish_replay(&mut self, now: Millis) {
        self.routing.finish_replay();
        for client_id in self.clients.keys() {
            self.presence.arrived(*client_id, now);
        }
    }

    /// Decides and applies one command. On error nothing changed.
    pub fn execute(
        &mut self,
        command: Command,
        now: Millis,
    ) -> DomainResult<(Outcome, Vec<Decided>)> {
        use Command as C;
        match command {
            C::Tick => {
                // Clients whose lease ran out go as if they had unregistered.
                let mut decided = Vec::new();
                for client_id in self.presence.take_expired(now) {
                    if let Ok((_, gone)) = self.execute_once(C::UnregisterClient { client_id }, now)
                    {
                        decided.extend(gone);
                    }
                }
                let (outcome, due) = self.execute_once(C::Tick, now)?;
                decided.extend(due);
                Ok((outcome, decided))
            }
            C::AttachStream { client_id, stream } => {
                self.client(client_id)?;
                self.presence.attach(client_id, stream);
                Ok((Outcome::Done, Vec::new()))
            }
            C::DetachStream { client_id, stream } => {
                self.presence.detach(client_id, stream, now);
                Ok((Outcome::Done, Vec::new()))
            }
            command => {
                let acting = command.acting_client();
                let result = self.execute_once(command, now)?;
                if let Some(client_id) = acting
                    && self.clients.contains_key(&client_id)
                {
                    self.presence.seen(client_id, now);
                }
                Ok(result)
            }
        }
    }

    fn execute_once(
        &mut self,
        command: Command,
        now: Millis,
    ) -> DomainResult<(Outcome, Vec<Decided>)> {
        let mut sink = Sink::new();
        let (outcome, mut decided) = match self.execute_routing(command, now, &mut sink) {
            Ok(outcome) => (outcome?, Vec::new()),
            Err(command) => {
                let presence = self.routing_presence_of(&command);
                let orphaned = match &*command {
                    Command::UnregisterClient { client_id } => self.orphaned_by(*client_id),
                    _ => Vec::new(),
                };
                let (outcome, events) = self.decide(*command)?;
                let mut decided: Vec<Decided> = events
                    .into_iter()
                    .map(|event| {
                        let audience = self.audience(&event);
                        self.apply(&event);
                        Decided { event, audience }
                    })
                    .collect();
                if let Some((agent_id, requested)) = presence {
                    // A desktop's session login is its agent's routing login on every MRD it
                    // may work on. A refusal (no MRD to log in on) leaves the view as it is,
                    // and a refused call emits nothing.
                    let _ = self
                        .routing
                        .change_agent_state(&agent_id, requested, "", "", now, &mut sink);
                }
                for resource_id in orphaned {
                    decided.extend(self.log_out_abandoned(&resource_id, now));
                }
                (outcome, decided)
            }
        };
        // Every command ends settled: due timers fired, every possible offer made.
        self.routing.settle(now, &mut sink);
        let outcome = self.refreshed(outcome);
        let mut follow_ups = Vec::new();
        self.follow_routing(&sink, &mut follow_ups);
        decided.extend(sink.into_iter().map(|event| {
            let audience = self.routing_audience(&event);
            Decided { event, audience }
        }));
        decided.extend(follow_ups);
        Ok((outcome, decided))
    }

    /// Runs a routing command; hands any other command back. Routing applies its events as it
    /// emits them (each decision sees the last), so on error nothing may have been emitted.
    fn execute_routing(
        &mut self,
        command: Command,
        now: Millis,
        sink: &mut Sink,
    ) -> Result<DomainResult<Outcome>, Box<Command>> {
        use Command as C;
        if let C::InvokeAction {
            resource_id,
            action,
        } = &command
            && let Some(routing_action) = DesktopAction::parse(action)
        {
            return Ok(self.invoke_desktop_action(resource_id, routing_action, now, sink));
        }
        let r = &mut self.routing;
        let done = |result: DomainResult<()>| result.map(|()| Outcome::Done);
        // Task commands answer with the task (refreshed once routing has settled).
        let task_view = |routing: &Routing, result: DomainResult<()>, task_id: &str| {
            result.and_then(|()| {
                routing
                    .task(task_id)
                    .map(|t| Outcome::TaskStatus(Box::new(t.clone())))
            })
        };
        Ok(match command {
            C::UpsertMrd(mrd) => done(r.upsert_mrd(mrd, sink)),
            C::DeleteMrd { name } => done(r.delete_mrd(&name, sink)),
            C::ListMrds => Ok(Outcome::Mrds(r.mrds().cloned().collect())),
            C::UpsertQueue(queue) => done(r.upsert_queue(queue, sink)),
            C::DeleteQueue { mrd, name } => done(r.delete_queue(&mrd, &name, sink)),
            C::ListQueues => Ok(Outcome::Queues(r.queues().cloned().collect())),
            C::UpsertReasonCode(reason) => done(r.upsert_reason_code(reason, sink)),
            C::ListReasonCodes => Ok(Outcome::ReasonCodes(r.reason_codes().cloned().collect())),
            C::ConnectAgent {
                agent_id,
                verified_hash,
                extension,
                destination,
            } => {
                let checked = check_hash(&self.agents, &agent_id, &verified_hash);
                done(checked.and_then(|()| {
                    self.routing
                        .connect_agent(&agent_id, extension, destination, sink)
                }))
            }
            C::ChangeAgentState {
                agent_id,
                verified_hash,
                state,
                mrd,
                reason_code,
            } => {
                let checked = match &verified_hash {
                    Some(hash) => check_hash(&self.agents, &agent_id, hash),
                    None => Ok(()),
                };
                checked
                    .and_then(|()| {
                        self.routing.change_agent_state(
                            &agent_id,
                            state,
                            &mrd,
                            &reason_code,
                            now,
                            sink,
                        )
                    })
                    .and_then(|()| self.routing.agent_status(&agent_id))
                    .map(Outcome::AgentStatus)
            }
            C::NewTask(spec) => {
                let task_id = spec.task_id.clone();
                r.new_task(spec, now, sink).map(|()| {
                    Outcome::TaskStatus(Box::new(
                        self.routing
                            .task(&task_id)
                            .cloned()
                            .expect("the task was just queued"),
                    ))
                })
            }
            C::AcceptTask { task_id, agent_id } => {
                let result = r.accept_task(&task_id, &agent_id, now, sink);
                task_view(r, result, &task_id)
            }
            C::RejectTask { task_id, agent_id } => {
                let result = r.reject_task(&task_id, &agent_id, now, sink);
                task_view(r, result, &task_id)
            }
            C::ChangeTaskState { task_id, state } => {
                let result = r.change_task_state(&task_id, state, now, sink);
                task_view(r, result, &task_id)
            }
            C::TransferTask {
                task_id,
                owner_agent_id,
                recipient_agent_id,
            } => {
                let result =
                    r.transfer_task(&task_id, &owner_agent_id, &recipient_agent_id, now, sink);
                task_view(r, result, &task_id)
            }
            C::ConferenceTask {
                task_id,
                owner_agent_id,
                participant_agent_id,
                mrd,
            } => {
                let result = r.conference_task(
                    &task_id,
                    &owner_agent_id,
                    &participant_agent_id,
                    &mrd,
                    now,
                    sink,
                );
                task_view(r, result, &task_id)
            }
            C::GetAgentState { agent_id } => r.agent_status(&agent_id).map(Outcome::AgentStatus),
            C::GetTaskState { task_id } => r
                .task(&task_id)
                .map(|t| Outcome::TaskStatus(Box::new(t.clone()))),
            C::ListAgentStates { after, limit } => {
                let (agents, next_after) = r.agent_statuses_after(after.as_deref(), limit);
                Ok(Outcome::AgentStatuses { agents, next_after })
            }
            C::ListTasks { after, limit } => {
                let (tasks, next_after) = r.tasks_after(after.as_deref(), limit);
                Ok(Outcome::Tasks { tasks, next_after })
            }
            C::GetQueueStats { mrd, queue } => {
                r.queue_stats(&mrd, &queue, now).map(Outcome::QueueStats)
            }
            C::Tick => Ok(Outcome::Done),
            other => return Err(Box::new(other)),
        })
    }

    /// A desktop's routing action, on its session's agent. Refused unless enabled now.
    fn invoke_desktop_action(
        &mut self,
        resource_id: &str,
        action: DesktopAction,
        now: Millis,
        sink: &mut Sink,
    ) -> DomainResult<Outcome> {
        let view = self.session_view(resource_id)?;
        let agent_id = self.sessions[resource_id].agent_id.clone();
        let enabled = view
            .actions
            .iter()
            .any(|(name, on)| name == action.name() && *on);
        if !enabled {
            return Err(DomainError::FailedPrecondition(format!(
                "action '{}' is not enabled for agent '{agent_id}' now",
                action.name()
            )));
        }
        let r = &mut self.routing;
        match action {
            DesktopAction::Ready => {
                r.change_agent_state(&agent_id, RequestedAgentState::Ready, "", "", now, sink)
            }
            DesktopAction::NotReady => {
                r.change_agent_state(&agent_id, RequestedAgentState::NotReady, "", "", now, sink)
            }
            DesktopAction::Accept | DesktopAction::Reject => {
                let task_id = r.pending_offer(&agent_id).unwrap_or_default();
                if action == DesktopAction::Accept {
                    r.accept_task(&task_id, &agent_id, now, sink)
                } else {
                    r.reject_task(&task_id, &agent_id, now, sink)
                }
            }
        }?;
        Ok(Outcome::Session(view))
    }

    /// The routing presence change a session action stands for: `session.login` logs the
    /// session's agent in for routing, `session.logout` out.
    fn routing_presence_of(&self, command: &Command) -> Option<(String, RequestedAgentState)> {
        let Command::InvokeAction {
            resource_id,
            action,
        } = command
        else {
            return None;
        };
        let requested = match action.as_str() {
            SESSION_LOGIN => RequestedAgentState::Login,
            SESSION_LOGOUT => RequestedAgentState::Logout,
            _ => return None,
        };
        let agent_id = self.sessions.get(resource_id)?.agent_id.clone();
        Some((agent_id, requested))
    }

    /// What this processor supports, in the six keys desktops read: single task channels on
    /// each configured MRD, with the task actions routing offers; no channel groups.
    fn capabilities(&self) -> BTreeMap<String, String> {
        let mrds: Vec<&str> = self.routing.mrds().map(|m| m.name.as_str()).collect();
        let single = if mrds.is_empty() { "false" } else { "true" };
        [
            ("channel-groups-max-per-agent", "0".to_owned()),
            ("channel-groups-media-types", String::new()),
            ("channel-groups-supported", "false".to_owned()),
            ("channel-actions", CHANNEL_ACTIONS.join(",")),
            ("single-channels-media-types", mrds.join(",")),
            ("single-channels-supported", single.to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    /// An answer that shows an agent or a task shows it as it stands after settling (a READY
    /// agent may already hold an offer).
    fn refreshed(&self, outcome: Outcome) -> Outcome {
        match outcome {
            Outcome::AgentStatus(view) => match self.routing.agent_status(&view.agent_id) {
                Ok(now) => Outcome::AgentStatus(now),
                Err(_) => Outcome::AgentStatus(view),
            },
            Outcome::Session(view) => match self.session_view(&view.resource_id) {
                Ok(now) => Outcome::Session(now),
                Err(_) => Outcome::Session(view),
            },
            Outcome::TaskStatus(task) => match self.routing.task(&task.spec.task_id) {
                Ok(now) => Outcome::TaskStatus(Box::new(now.clone())),
                Err(_) => Outcome::TaskStatus(task),
            },
            other => other,
        }
    }

    /// Desktops hear of routing events about their agent: the clients bound to the agent's
    /// session, in either service.
    fn routing_audience(&self, event: &Event) -> Vec<ClientId> {
        let agents: Vec<&str> = match event {
            Event::AgentStateChanged { agent_id, .. }
            | Event::TaskAgentSelected { agent_id, .. }
            | Event::TaskAccepted { agent_id, .. }
            | Event::TaskRequeued { agent_id, .. }
            | Event::TaskParticipantLeft { agent_id, .. } => vec![agent_id],
            Event::TaskAgentTransferred {
                owner_agent_id: a,
                recipient_agent_id: b,
                ..
            }
            | Event::TaskConferenced {
                owner_agent_id: a,
                participant_agent_id: b,
                ..
            } => vec![a, b],
            Event::TaskStateChanged { task_id, .. } => self
                .routing
                .task(task_id)
                .map(|t| t.agents().map(String::as_str).collect())
                .unwrap_or_default(),
            _ => return Vec::new(),
        };
        let resources: Vec<String> = agents
            .into_iter()
            .map(|a| self.directory.session_resource_id(a))
            .collect();
        self.clients
            .iter()
            .filter(|(_, c)| c.resources.iter().any(|(_, r)| resources.contains(r)))
            .map(|(id, _)| *id)
            .collect()
    }

    fn decide(&self, command: Command) -> DomainResult<(Outcome, Vec<Event>)> {
        use Command as C;
        let done = |events| Ok((Outcome::Done, events));
        match command {
            C::ServerLoad => Ok((self.load(), vec![])),
            C::GetCapabilities => Ok((Outcome::Capabilities(self.capabilities()), vec![])),
            C::GetSessionState { resource_id } => {
                Ok((Outcome::Session(self.session_view(&resource_id)?), vec![]))
            }
            C::GetAgent { agent_id } => {
                Ok((Outcome::Agent(self.agent(&agent_id)?.clone()), vec![]))
            }
            C::ListAgents { after, limit } => Ok((self.list_agents(after, limit), vec![])),
            C::AgentCredential { agent_id } => Ok((
                Outcome::Credential(self.agents.get(&agent_id).map(|a| a.password_hash.clone())),
                vec![],
            )),

            C::RegisterClient {
                client_id,
                client_name,
            } => {
                if self.clients.contains_key(&client_id) {
                    return Err(DomainError::FailedPrecondition(format!(
                        "client {client_id} is already registered"
                    )));
                }
                Ok((
                    Outcome::Registered { client_id },
                    vec![Event::ClientRegistered {
                        client_id,
                        client_name,
                    }],
                ))
            }
            C::UnregisterClient { client_id } => {
                self.client(client_id)?;
                done(vec![Event::ClientUnregistered { client_id }])
            }
            C::BindService { client_id, service } => {
                let client = self.client(client_id)?;
                if client.services.contains(&service) {
                    return done(vec![]);
                }
                done(vec![Event::ServiceBound { client_id, service }])
            }
            C::UnbindService { client_id, service } => {
                let client = self.client(client_id)?;
                if !client.services.contains(&service) {
                    return Err(self.not_bound_to_service(client_id, service));
                }
                done(vec![Event::ServiceUnbound { client_id, service }])
            }
            C::BindResource {
                client_id,
                service,
                resource_id,
            } => self.decide_bind_resource(client_id, service, resource_id),
            C::UnbindResource {
                client_id,
                service,
                resource_id,
            } => {
                let client = self.client(client_id)?;
                if !client.resources.contains(&(service, resource_id.clone())) {
                    return Err(DomainError::FailedPrecondition(format!(
                        "client {client_id} has not bound resource '{resource_id}' of service '{}'",
                        self.directory.id(service)
                    )));
                }
                done(vec![Event::ResourceUnbound {
                    client_id,
                    service,
                    resource_id,
                }])
            }
            C::UpsertAgent {
                agent_id,
                display_name,
                password_hash,
                attributes,
                mrd_max_tasks,
            } => {
                validate_routing_profile(&attributes, &mrd_max_tasks)?;
                let existing = self.agents.get(&agent_id);
                let password_hash = match (password_hash, existing) {
                    (Some(hash), _) => hash,
                    (None, Some(agent)) => agent.password_hash.clone(),
                    (None, None) => {
                        return Err(DomainError::invalid(
                            "agent.password",
                            "must not be empty when creating an agent",
                        ));
                    }
                };
                let record = AgentRecord {
                    agent_id: agent_id.clone(),
                    display_name: display_name.clone(),
                    password_hash: password_hash.clone(),
                    attributes: attributes.clone(),
                    mrd_max_tasks: mrd_max_tasks.clone(),
                };
                Ok((
                    Outcome::AgentWritten {
                        agent: record,
                        created: existing.is_none(),
                    },
                    vec![Event::AgentUpserted {
                        agent_id,
                        display_name,
                        password_hash,
                        attributes,
                        mrd_max_tasks,
                    }],
                ))
            }
            C::DeleteAgent { agent_id } => {
                self.agent(&agent_id)?;
                if self.routing.is_logged_in_anywhere(&agent_id) {
                    return Err(DomainError::FailedPrecondition(format!(
                        "agent '{agent_id}' is logged in for routing; log it out first"
                    )));
                }
                if let Some((resource_id, _)) =
                    self.sessions.iter().find(|(_, s)| s.agent_id == agent_id)
                {
                    return Err(DomainError::FailedPrecondition(format!(
                        "agent '{agent_id}' has session '{resource_id}'; end it first"
                    )));
                }
                done(vec![Event::AgentDeleted { agent_id }])
            }
            C::PrepareSession {
                agent_id,
                verified_hash,
                model,
                take_over,
                cti,
            } => {
                let model = self.models.get(&model)?.clone();
                check_hash(&self.agents, &agent_id, &verified_hash)?;
                self.decide_prepare(agent_id, &model, take_over, cti)
            }
            C::EndSession { resource_id } => {
                self.session(&resource_id)?;
                done(vec![Event::SessionEnded { resource_id }])
            }
            C::InvokeAction {
                resource_id,
                action,
            } => {
                let session = self.session(&resource_id)?;
                let model = self.model_of(session)?;
                let next = model.next_state(&session.view_state, &action)?.to_owned();
                let view = self.view_in(&resource_id, session, &next)?;
                Ok((
                    Outcome::Session(view.clone()),
                    vec![Event::SessionStateUpdated {
                        resource_id,
                        view_state: view.view_state,
                        actions: view.actions,
                    }],
                ))
            }
            // `execute_routing` takes these before they get here.
            other => Err(DomainError::Internal(format!(
                "{other:?} is not a session hub command"
            ))),
        }
    }

    fn decide_bind_resource(
        &self,
        client_id: ClientId,
        service: ServiceKind,
        resource_id: String,
    ) -> DomainResult<(Outcome, Vec<Event>)> {
        let client = self.client(client_id)?;
        if !client.services.contains(&service) {
            return Err(self.not_bound_to_service(client_id, service));
        }
        let view = self.session_view(&resource_id)?;
        let mut events = Vec::new();
        if !client.resources.contains(&(service, resource_id.clone())) {
            events.push(Event::ResourceBound {
                client_id,
                service,
                resource_id: resource_id.clone(),
            });
        }
        // Binding a workflow session shows the binder where the view stands, as `state.updated`.
        if service == ServiceKind::WorkflowManager {
            events.push(Event::SessionStateUpdated {
                resource_id,
                view_state: view.view_state,
                actions: view.actions,
            });
        }
        Ok((Outcome::Done, events))
    }

    fn decide_prepare(
        &self,
        agent_id: String,
        model: &WorkflowModel,
        take_over: bool,
        cti: String,
    ) -> DomainResult<(Outcome, Vec<Event>)> {
        let resource_id = self.directory.session_resource_id(&agent_id);
        let prepared = |result, message: String, events| {
            Ok((
                Outcome::Prepared {
                    result,
                    resource_id: resource_id.clone(),
                    message,
                },
                events,
            ))
        };
        let Some(existing) = self.sessions.get(&resource_id) else {
            return prepared(
                PrepareResult::Success,
                String::new(),
                vec![Event::SessionPrepared {
                    resource_id: resource_id.clone(),
                    agent_id,
                    model: model.name.clone(),
                    cti,
                    view_state: model.initial.clone(),
                }],
            );
        };
        if !take_over {
            return prepared(
                PrepareResult::Confirm,
                format!(
                    "agent '{agent_id}' already has session '{resource_id}'; \
                     repeat with override set to take it over"
                ),
                vec![],
            );
        }
        // Taking over keeps where the view stands unless the desktop asks for another model.
        let view_state = if existing.model == model.name {
            existing.view_state.clone()
        } else {
            model.initial.clone()
        };
        prepared(
            PrepareResult::Success,
            format!("session '{resource_id}' taken over; its previous clients were unbound"),
            vec![Event::SessionTakenOver {
                resource_id: resource_id.clone(),
                model: model.name.clone(),
                cti,
                view_state,
            }],
        )
    }

    /// Who must hear of an event on their `Connect` stream, in client id order.
    fn audience(&self, event: &Event) -> Vec<ClientId> {
        let bound_to = |resource: &str, services: &[ServiceKind]| -> Vec<ClientId> {
            self.clients
                .iter()
                .filter(|(_, c)| {
                    services
                        .iter()
                        .any(|s| c.resources.contains(&(*s, resource.to_owned())))
                })
                .map(|(id, _)| *id)
                .collect()
        };
        match event {
            Event::SessionStateUpdated { resource_id, .. } => {
                bound_to(resource_id, &[ServiceKind::WorkflowManager])
            }
            Event::SessionTakenOver { resource_id, .. } | Event::SessionEnded { resource_id } => {
                bound_to(resource_id, &ServiceKind::ALL)
            }
            _ => Vec::new(),
        }
    }

    /// The fold: applies an event that `decide` produced (or the journal holds).
    pub fn apply(&mut self, event: &Event) {
        self.routing.apply(event);
        match event {
            Event::ClientRegistered { client_id, .. } => {
                self.clients.insert(*client_id, Client::default());
            }
            Event::ClientUnregistered { client_id } => {
                self.clients.remove(client_id);
                self.presence.forget(*client_id);
            }
            Event::ServiceBound { client_id, service } => {
                if let Some(c) = self.clients.get_mut(client_id) {
                    c.services.insert(*service);
                }
            }
            Event::ServiceUnbound { client_id, service } => {
                if let Some(c) = self.clients.get_mut(client_id) {
                    c.services.remove(service);
                    c.resources.retain(|(s, _)| s != service);
                }
            }
            Event::ResourceBound {
                client_id,
                service,
                resource_id,
            } => {
                if let Some(c) = self.clients.get_mut(client_id) {
                    c.resources.insert((*service, resource_id.clone()));
                }
            }
            Event::ResourceUnbound {
                client_id,
                service,
                resource_id,
            } => {
                if let Some(c) = self.clients.get_mut(client_id) {
                    c.resources.remove(&(*service, resource_id.clone()));
                }
            }
            Event::AgentUpserted {
                agent_id,
                display_name,
                password_hash,
                attributes,
                mrd_max_tasks,
            } => {
                self.agents.insert(
                    agent_id.clone(),
                    AgentRecord {
                        agent_id: agent_id.clone(),
                        display_name: display_name.clone(),
                        password_hash: password_hash.clone(),
                        attributes: attributes.clone(),
                        mrd_max_tasks: mrd_max_tasks.clone(),
                    },
                );
            }
            Event::AgentDeleted { agent_id } => {
                self.agents.remove(agent_id);
            }
            Event::SessionPrepared {
                resource_id,
                agent_id,
                model,
                cti,
                view_state,
            } => {
                self.sessions.insert(
                    resource_id.clone(),
                    Session {
                        agent_id: agent_id.clone(),
                        model: model.clone(),
                        cti: cti.clone(),
                        view_state: view_state.clone(),
                        shown: Vec::new(),
                    },
                );
            }
            Event::SessionTakenOver {
                resource_id,
                model,
                cti,
                view_state,
            } => {
                self.unbind_everyone_from(resource_id);
                if let Some(s) = self.sessions.get_mut(resource_id) {
                    s.model.clone_from(model);
                    s.cti.clone_from(cti);
                    s.view_state.clone_from(view_state);
                }
            }
            Event::SessionEnded { resource_id } => {
                self.unbind_everyone_from(resource_id);
                self.sessions.remove(resource_id);
            }
            Event::SessionStateUpdated {
                resource_id,
                view_state,
                actions,
            } => {
                if let Some(s) = self.sessions.get_mut(resource_id) {
                    s.view_state.clone_from(view_state);
                    s.shown.clone_from(actions);
                }
            }
            // The rest are routing's; `self.routing.apply` above took them.
            _ => {}
        }
    }

    /// The sessions only `client_id` has bound: they lose their last desktop when it goes.
    fn orphaned_by(&self, client_id: ClientId) -> Vec<String> {
        let Some(client) = self.clients.get(&client_id) else {
            return Vec::new();
        };
        let mine: BTreeSet<&String> = client.resources.iter().map(|(_, r)| r).collect();
        mine.into_iter()
            .filter(|resource_id| {
                !self.clients.iter().any(|(id, c)| {
                    *id != client_id && c.resources.iter().any(|(_, r)| r == *resource_id)
                })
            })
            .cloned()
            .collect()
    }

    /// A session whose last desktop is gone logs out, so its agent gets no more work and any
    /// offer pending on it is rerouted at once: through the model's `session.logout` when
    /// the view allows it, else straight out of routing.
    fn log_out_abandoned(&mut self, resource_id: &str, now: Millis) -> Vec<Decided> {
        let Some(session) = self.sessions.get(resource_id) else {
            return Vec::new();
        };
        let agent_id = session.agent_id.clone();
        let can_log_out = self
            .session_view(resource_id)
            .is_ok_and(|v| v.actions.iter().any(|(a, on)| a == SESSION_LOGOUT && *on));
        let command = if can_log_out {
            Command::InvokeAction {
                resource_id: resource_id.to_owned(),
                action: SESSION_LOGOUT.to_owned(),
            }
        } else if self.routing.is_logged_in_anywhere(&agent_id) {
            Command::ChangeAgentState {
                agent_id,
                verified_hash: None,
                state: RequestedAgentState::Logout,
                mrd: String::new(),
                reason_code: String::new(),
            }
        } else {
            return Vec::new();
        };
        self.execute_once(command, now)
            .map(|(_, decided)| decided)
            .unwrap_or_default()
    }

    fn unbind_everyone_from(&mut self, resource_id: &str) {
        for client in self.clients.values_mut() {
            client.resources.retain(|(_, r)| r != resource_id);
        }
    }

    fn load(&self) -> Outcome {
        let per_service = ServiceKind::ALL
            .into_iter()
            .map(|kind| {
                let bound = self
                    .clients
                    .values()
                    .filter(|c| c.services.contains(&kind))
                    .count();
                (kind, bound)
            })
            .collect();
        Outcome::Load {
            client_count: self.clients.len(),
            per_service,
        }
    }

    fn list_agents(&self, after: Option<String>, limit: usize) -> Outcome {
        use std::ops::Bound;
        let start = after.map_or(Bound::Unbounded, Bound::Excluded);
        let mut page: Vec<AgentRecord> = self
            .agents
            .range((start, Bound::Unbounded))
            .take(limit + 1)
            .map(|(_, a)| a.clone())
            .collect();
        let next_after = if page.len() > limit {
            page.truncate(limit);
            page.last().map(|a| a.agent_id.clone())
        } else {
            None
        };
        Outcome::Agents {
            agents: page,
            next_after,
        }
    }

    fn client(&self, client_id: ClientId) -> DomainResult<&Client> {
        self.clients
            .get(&client_id)
            .ok_or_else(|| DomainError::not_found("client", client_id.to_string()))
    }

    fn agent(&self, agent_id: &str) -> DomainResult<&AgentRecord> {
        self.agents
            .get(agent_id)
            .ok_or_else(|| DomainError::not_found("agent", agent_id))
    }

    fn session(&self, resource_id: &str) -> DomainResult<&Session> {
        self.sessions
            .get(resource_id)
            .ok_or_else(|| DomainError::not_found("resource", resource_id))
    }

    fn model_of(&self, session: &Session) -> DomainResult<&Arc<WorkflowModel>> {
        self.models.get(&session.model).map_err(|_| {
            DomainError::FailedPrecondition(format!(
                "the session's model '{}' is no longer loaded",
                session.model
            ))
        })
    }

    fn session_view(&self, resource_id: &str) -> DomainResult<SessionView> {
        let session = self.session(resource_id)?;
        self.view_in(resource_id, session, &session.view_state)
    }

    /// A session's view in `view_state`: the model's actions, then the routing actions of the
    /// session's agent.
    fn view_in(
        &self,
        resource_id: &str,
        session: &Session,
        view_state: &str,
    ) -> DomainResult<SessionView> {
        let model = self.model_of(session)?;
        let mut actions = model.actions_in(view_state);
        actions.extend(
            self.routing
                .desktop_actions(&session.agent_id)
                .into_iter()
                .map(|(name, enabled)| (name.to_owned(), enabled)),
        );
        Ok(SessionView {
            resource_id: resource_id.to_owned(),
            model: model.name.clone(),
            view_state: view_state.to_owned(),
            actions,
        })
    }

    /// After routing moved: a `state.updated` for each session whose agent's routing actions
    /// changed.
    fn follow_routing(&mut self, routing_events: &[Event], decided: &mut Vec<Decided>) {
        let agents: BTreeSet<&str> = routing_events
            .iter()
            .filter_map(|e| match e {
                Event::AgentStateChanged { agent_id, .. } => Some(agent_id.as_str()),
                _ => None,
            })
            .collect();
        for agent_id in agents {
            let resource_id = self.directory.session_resource_id(agent_id);
            let Ok(view) = self.session_view(&resource_id) else {
                continue;
            };
            if self.sessions[&resource_id].shown == view.actions {
                continue;
            }
            let event = Event::SessionStateUpdated {
                resource_id,
                view_state: view.view_state,
                actions: view.actions,
            };
            let audience = self.audience(&event);
            self.apply(&event);
            decided.push(Decided { event, audience });
        }
    }

    fn not_bound_to_service(&self, client_id: ClientId, service: ServiceKind) -> DomainError {
        DomainError::FailedPrecondition(format!(
            "client {client_id} has not bound service '{}'; call BindService first",
            self.directory.id(service)
        ))
    }
}

/// A login goes through only if the password was checked against the hash stored now.
fn check_hash(
    agents: &BTreeMap<String, AgentRecord>,
    agent_id: &str,
    verified_hash: &PasswordHashString,
) -> DomainResult<()> {
    match agents.get(agent_id) {
        Some(agent) if agent.password_hash == *verified_hash => Ok(()),
        _ => Err(DomainError::Unauthenticated),
    }
}
