//! The server's state and how one command runs on it. The rules of each command family are in
//! `commands`, the fold in `fold`, and the glue between desktops and routing in `desktop`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::agents::{AccountRecord, AgentRecord, Credential, PasswordHashString};
use super::commands::{
    ChangeAgentState, Command, InvokeAction, Load, SESSION_LOGOUT, SessionView, Turn,
};
use super::error::{DomainError, DomainResult};
use super::events::{Event, Millis};
use super::ids::ClientId;
use super::presence::Presence;
use super::principals::{Actor, Principal, Role};
use super::routing::Routing;
use super::routing::model::{RequestedAgentState, Task};
use super::services::{ServiceDirectory, ServiceKind};
use super::signins::SignIns;
use super::workflow::{ModelCatalog, WorkflowModel};

/// A registered client's bindings. Its name stays in the journal, for diagnostics.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Client {
    /// The principal that registered the client.
    #[serde(default)]
    pub(super) owner: Actor,
    pub(super) services: BTreeSet<ServiceKind>,
    pub(super) resources: BTreeSet<(ServiceKind, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Session {
    pub(super) agent_id: String,
    pub(super) model: String,
    pub(super) cti: String,
    pub(super) view_state: String,
    /// The actions desktops were last shown, so a routing change re-announces only changes.
    pub(super) shown: Vec<(String, bool)>,
    /// Who prepared (or last took over) the session: it may act on it besides its agent.
    #[serde(default)]
    pub(super) prepared_by: Actor,
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
    pub(super) directory: ServiceDirectory,
    pub(super) models: Arc<ModelCatalog>,
    pub(super) clients: BTreeMap<ClientId, Client>,
    pub(super) agents: BTreeMap<String, AgentRecord>,
    pub(super) accounts: BTreeMap<String, AccountRecord>,
    pub(super) sessions: BTreeMap<String, Session>,
    pub(super) routing: Routing,
    pub(super) signins: SignIns,
    /// Not journaled: rebuilt at start-up with a fresh grace period for every client.
    pub(super) presence: Presence,
    /// How long a closed task stays in memory (it is in the journal's history from its close).
    pub(super) closed_task_retention_ms: Millis,
    /// Open tasks held at most: past it `NewTask` is refused rather than the heap growing.
    pub(super) max_open_tasks: usize,
}

/// How long a client without an open stream stays registered after its last call, unless
/// the server is configured otherwise.
pub const DEFAULT_PRESENCE_GRACE_MS: Millis = 60_000;

/// How long a closed task stays in memory unless the server is configured otherwise.
pub const DEFAULT_CLOSED_TASK_RETENTION_MS: Millis = 15 * 60_000;

/// Open tasks held at most unless the server is configured otherwise.
pub const DEFAULT_MAX_OPEN_TASKS: usize = 100_000;

impl State {
    pub fn new(directory: ServiceDirectory, models: Arc<ModelCatalog>) -> Self {
        Self {
            directory,
            models,
            clients: BTreeMap::new(),
            agents: BTreeMap::new(),
            accounts: BTreeMap::new(),
            sessions: BTreeMap::new(),
            routing: Routing::default(),
            signins: SignIns::default(),
            presence: Presence::new(DEFAULT_PRESENCE_GRACE_MS),
            closed_task_retention_ms: DEFAULT_CLOSED_TASK_RETENTION_MS,
            max_open_tasks: DEFAULT_MAX_OPEN_TASKS,
        }
    }

    /// Sets how many open tasks the server holds at most.
    pub fn with_max_open_tasks(mut self, max_open_tasks: usize) -> Self {
        self.max_open_tasks = max_open_tasks;
        self
    }

    /// Refuses a new task when the open ones fill the cap: channels hear it at once and can
    /// divert or retry, instead of the heap growing while no agent works the queues.
    pub(super) fn check_room_for_a_task(&self) -> DomainResult<()> {
        if self.routing.open_tasks() >= self.max_open_tasks {
            return Err(DomainError::ResourceExhausted(format!(
                "the server holds {} open tasks, its --max-open-tasks; retry when tasks close",
                self.max_open_tasks
            )));
        }
        Ok(())
    }

    /// Sets how long a closed task stays in memory before only the history has it.
    pub fn with_closed_task_retention(mut self, retention_ms: Millis) -> Self {
        self.closed_task_retention_ms = retention_ms;
        self
    }

    /// Sets how long a client without a stream stays registered after its last call.
    pub fn with_presence_grace(mut self, grace_ms: Millis) -> Self {
        self.presence = Presence::new(grace_ms);
        self
    }

    pub fn routing(&self) -> &Routing {
        &self.routing
    }

    /// When the engine must next run `Tick`.
    pub fn next_deadline(&self) -> Option<Millis> {
        let retire = self.routing.oldest_closed().map(|at| {
            at.saturating_add(self.closed_task_retention_ms)
                .saturating_add(1)
        });
        [
            self.routing.next_deadline(),
            self.presence.next_deadline(),
            retire,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Drops from memory the tasks closed longer ago than the retention; returns them.
    pub fn retire_closed_tasks(&mut self, now: Millis) -> Vec<Task> {
        self.routing
            .retire_closed(now.saturating_sub(self.closed_task_retention_ms))
    }

    /// Call once after replaying the journal (at `now`): what it replayed was already
    /// settled, and every client gets a grace period to reconnect in. Returns the closed
    /// tasks past the retention that it dropped from memory, for the caller to make sure the
    /// history has them (a journal written before the history existed does not).
    pub fn finish_replay(&mut self, now: Millis) -> Vec<Task> {
        self.routing.finish_replay();
        for client_id in self.clients.keys() {
            self.presence.arrived(*client_id, now);
        }
        self.retire_closed_tasks(now)
    }

    /// Call after folding records another node decided (a cluster follower): they were
    /// settled there. Closed tasks past the retention leave memory; their history is in the
    /// journal already.
    pub fn finish_following(&mut self, now: Millis) {
        self.routing.finish_replay();
        self.retire_closed_tasks(now);
    }

    /// Decides and applies one command at `now`: its answer, and its events in order with
    /// who must hear of each. On error nothing changed. Every command ends settled: due
    /// timers fired, every possible offer made, desktops told of their routing actions.
    pub fn execute<C: Command>(
        &mut self,
        command: C,
        now: Millis,
    ) -> DomainResult<(C::Answer, Vec<Decided>)> {
        self.execute_as(command, &Principal::engine(), now)
    }

    /// As `execute`, for `principal`: the rules check what it may do to what it names.
    pub fn execute_as<C: Command>(
        &mut self,
        command: C,
        principal: &Principal,
        now: Millis,
    ) -> DomainResult<(C::Answer, Vec<Decided>)> {
        let acting = command.acting_client();
        let mut turn = Turn::new(now, principal.clone());
        let answer = command.run(self, &mut turn)?;
        self.retire_closed_tasks(now);
        let Turn {
            mut decided,
            mut sink,
            ..
        } = turn;
        // A read decides nothing: due timers are the engine's own `Tick`, and a cluster
        // follower's reads must not decide what only its leader may.
        if !C::READS_ONLY {
            self.routing.settle(now, &mut sink);
        }
        let mut follow_ups = Vec::new();
        self.follow_routing(&sink, &mut follow_ups);
        decided.extend(sink.into_iter().map(|event| {
            let audience = self.audience(&event);
            Decided { event, audience }
        }));
        decided.extend(follow_ups);
        if let Some(client_id) = acting
            && self.clients.contains_key(&client_id)
        {
            self.presence.seen(client_id, now);
        }
        Ok((C::settled(answer, self), decided))
    }

    /// Applies a session hub event the rules decided, noting who must hear of it first.
    pub(super) fn record(&mut self, turn: &mut Turn, event: Event) {
        let audience = self.audience(&event);
        self.apply(&event);
        turn.decided.push(Decided { event, audience });
    }

    /// The sessions only `client_id` has bound: they lose their last desktop when it goes.
    pub(super) fn orphaned_by(&self, client_id: ClientId) -> Vec<String> {
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
    /// the view allows it, else straight out of routing. Runs as a turn of its own.
    pub(super) fn log_out_abandoned(&mut self, resource_id: &str, turn: &mut Turn) {
        let Some(session) = self.sessions.get(resource_id) else {
            return;
        };
        let agent_id = session.agent_id.clone();
        let can_log_out = self
            .session_view(resource_id)
            .is_ok_and(|v| v.actions.iter().any(|(a, on)| a == SESSION_LOGOUT && *on));
        let decided = if can_log_out {
            let command = InvokeAction {
                resource_id: resource_id.to_owned(),
                action: SESSION_LOGOUT.to_owned(),
            };
            self.execute(command, turn.now).map(|(_, d)| d)
        } else if self.routing.is_logged_in_anywhere(&agent_id) {
            let command = ChangeAgentState {
                agent_id,
                verified_hash: None,
                state: RequestedAgentState::Logout,
                mrd: String::new(),
                reason_code: String::new(),
            };
            self.execute(command, turn.now).map(|(_, d)| d)
        } else {
            return;
        };
        turn.decided.extend(decided.unwrap_or_default());
    }

    pub(super) fn load(&self) -> Load {
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
        Load {
            client_count: self.clients.len(),
            per_service,
        }
    }

    /// Clients `owner` registered.
    pub(super) fn clients_of(&self, owner: &Actor) -> usize {
        self.clients.values().filter(|c| &c.owner == owner).count()
    }

    /// The client, if `who` may use it (see `access::own_client`).
    pub(super) fn owned_client(
        &self,
        client_id: ClientId,
        who: &Principal,
    ) -> DomainResult<&Client> {
        let client = self.client(client_id)?;
        super::access::own_client(who, client, client_id)?;
        Ok(client)
    }

    pub(super) fn client(&self, client_id: ClientId) -> DomainResult<&Client> {
        self.clients
            .get(&client_id)
            .ok_or_else(|| DomainError::not_found("client", client_id.to_string()))
    }

    pub(super) fn agent(&self, agent_id: &str) -> DomainResult<&AgentRecord> {
        self.agents
            .get(agent_id)
            .ok_or_else(|| DomainError::not_found("agent", agent_id))
    }

    pub(super) fn session(&self, resource_id: &str) -> DomainResult<&Session> {
        self.sessions
            .get(resource_id)
            .ok_or_else(|| DomainError::not_found("resource", resource_id))
    }

    pub(super) fn model_of(&self, session: &Session) -> DomainResult<&Arc<WorkflowModel>> {
        self.models.get(&session.model).map_err(|_| {
            DomainError::FailedPrecondition(format!(
                "the session's model '{}' is no longer loaded",
                session.model
            ))
        })
    }

    pub(super) fn session_view(&self, resource_id: &str) -> DomainResult<SessionView> {
        let session = self.session(resource_id)?;
        self.view_in(resource_id, session, &session.view_state)
    }

    /// A session's view in `view_state`: the model's actions, then the routing actions of the
    /// session's agent.
    pub(super) fn view_in(
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

    pub(super) fn not_bound_to_service(
        &self,
        client_id: ClientId,
        service: ServiceKind,
    ) -> DomainError {
        DomainError::FailedPrecondition(format!(
            "client {client_id} has not bound service '{}'; call BindService first",
            self.directory.id(service)
        ))
    }

    /// What a principal signs in with: its hash, roles and credential version.
    pub fn credential(&self, principal: &Actor) -> Option<Credential> {
        match principal {
            Actor::Agent(id) => self.agents.get(id).map(|a| Credential {
                secret_hash: a.password_hash.clone(),
                roles: a.roles.clone(),
                credential_version: a.credential_version,
            }),
            Actor::Account(id) => self.accounts.get(id).map(|a| Credential {
                secret_hash: a.secret_hash.clone(),
                roles: a.roles.clone(),
                credential_version: a.credential_version,
            }),
            Actor::Engine => None,
        }
    }

    /// Every principal with its credential version.
    pub fn credential_versions(&self) -> impl Iterator<Item = (Actor, u64)> + '_ {
        let agents = self
            .agents
            .values()
            .map(|a| (Actor::Agent(a.agent_id.clone()), a.credential_version));
        let accounts = self
            .accounts
            .values()
            .map(|a| (Actor::Account(a.account_id.clone()), a.credential_version));
        agents.chain(accounts)
    }

    /// Integrations that may sign in with a client certificate: its fingerprint, and who.
    pub fn certificate_principals(&self) -> impl Iterator<Item = (String, Principal)> + '_ {
        self.accounts.values().filter_map(|a| {
            let principal = Principal {
                actor: Actor::Account(a.account_id.clone()),
                roles: a.roles.clone(),
            };
            a.client_certificate.clone().map(|f| (f, principal))
        })
    }

    /// Principals with the admin role, agents and accounts alike.
    pub fn admin_count(&self) -> usize {
        let admin = |roles: &BTreeSet<Role>| roles.contains(&Role::Admin);
        self.agents.values().filter(|a| admin(&a.roles)).count()
            + self.accounts.values().filter(|a| admin(&a.roles)).count()
    }

    /// Refuses to take the admin role from `who` (by deleting or demoting it) when it is the
    /// last admin: the server must never lock its operators out.
    pub(super) fn keep_an_admin(&self, who: &str) -> DomainResult<()> {
        if self.admin_count() <= 1 {
            return Err(DomainError::FailedPrecondition(format!(
                "{who} is the last admin; make another admin first"
            )));
        }
        Ok(())
    }

    /// A login goes through only if the password was checked against the hash stored now.
    pub(super) fn check_hash(
        &self,
        agent_id: &str,
        verified_hash: &PasswordHashString,
    ) -> DomainResult<()> {
        match self.agents.get(agent_id) {
            Some(agent) if agent.password_hash == *verified_hash => Ok(()),
            _ => Err(DomainError::Unauthenticated),
        }
    }
}
