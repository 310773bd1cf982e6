//! How the rest of the server talks to the engine: send a command, await its durable answer.
//! Password hashing and checking happen here, on the login gate's few hashing threads
//! (`credentials::Logins`), never on the engine task.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot, watch};

use super::history::History;
use super::inbox::{Inbox, Refused};
use super::job::{Attach, Call, Detach, Job, Tapping};
use super::standing::Standings;
use super::{EngineStatus, Message};
use crate::credentials::Logins;
use crate::domain::agents::{Credential, PasswordHashString};
use crate::domain::commands::{AttachStream, Command, DetachStream, PrincipalCredential};
use crate::domain::presence::StreamId;
use crate::domain::{
    Actor, ClientId, DomainError, DomainResult, Hearing, Principal, Record, Revision,
};
use crate::watch::{Tap, WatchHub};

/// Where the engine pushes the events a `Connect` stream's client must see.
pub type Outbox = mpsc::Sender<Arc<Record>>;

/// A command's answer and the revision that includes its effects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Committed<A> {
    pub answer: A,
    pub revision: Revision,
}

/// What makes a request idempotent: the caller's id for it, and a fingerprint of the request
/// that tells a retry from a different request reusing the id. Ids are scoped per principal
/// (the engine adds it), so one caller can neither read nor block another's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestKey {
    pub id: String,
    pub fingerprint: String,
}

/// A clear-text password on its way to be hashed or checked. Debug never shows it.
pub struct Password(String);

impl Password {
    pub fn new(clear: String) -> Self {
        Self(clear)
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(..)")
    }
}

#[derive(Clone)]
pub struct EngineHandle {
    inbox: Inbox,
    watch: WatchHub,
    logins: Arc<Logins>,
    standings: Arc<Standings>,
    history: History,
    status: watch::Receiver<EngineStatus>,
    applied: watch::Receiver<Revision>,
}

impl EngineHandle {
    pub(super) fn new(
        inbox: Inbox,
        watch: WatchHub,
        standings: Arc<Standings>,
        history: History,
        status: watch::Receiver<EngineStatus>,
        applied: watch::Receiver<Revision>,
    ) -> Self {
        Self {
            inbox,
            watch,
            logins: Arc::new(Logins::default()),
            standings,
            history,
            status,
            applied,
        }
    }

    /// The last revision that is durable and visible here: what reads are answered at.
    pub fn applied(&self) -> watch::Receiver<Revision> {
        self.applied.clone()
    }

    /// Makes a cluster node's engine lead, once its node holds the lease: it reads the
    /// journal to its end, then runs commands and timers. Answers the revision it starts at.
    pub async fn lead(&self) -> Result<Revision, DomainError> {
        let (done, led) = oneshot::channel();
        self.inbox
            .control(Message::Lead(done))
            .map_err(|refused| refused.into_error("control"))?;
        match led.await {
            Ok(Ok(revision)) => Ok(revision),
            Ok(Err(e)) => Err(DomainError::Unavailable(format!(
                "taking over from the journal failed: {e}"
            ))),
            Err(_) => Err(engine_stopped()),
        }
    }

    /// Makes a cluster node's engine follow the journal: it no longer holds the lease.
    pub fn follow(&self) {
        // A stopped engine follows nothing; nothing to do then.
        let _ = self.inbox.control(Message::Follow);
    }

    /// Closed tasks past the retention, from the journal's history.
    pub fn history(&self) -> &History {
        &self.history
    }

    /// Whether writes are taken (health follows it); closed once the engine has stopped.
    pub fn status(&self) -> watch::Receiver<EngineStatus> {
        self.status.clone()
    }

    /// The principals' credential versions, which tokens are checked against.
    pub fn standings(&self) -> &Arc<Standings> {
        &self.standings
    }

    /// Checks passwords through `logins` (its pool and throttle) instead of the defaults.
    #[must_use]
    pub fn with_logins(self, logins: Logins) -> Self {
        Self {
            logins: Arc::new(logins),
            ..self
        }
    }

    /// The login gate: every password check and hash goes through it.
    pub fn logins(&self) -> &Arc<Logins> {
        &self.logins
    }

    pub fn watch(&self) -> &WatchHub {
        &self.watch
    }

    /// Runs a command for `principal`; the rules check what it may do to what it names.
    pub async fn execute<C: Command>(
        &self,
        principal: &Principal,
        command: C,
    ) -> DomainResult<Committed<C::Answer>> {
        self.execute_once(principal, command, None).await
    }

    /// Runs a command once per request id of `principal`: a retry with the same key gets the
    /// first answer.
    pub async fn execute_once<C: Command>(
        &self,
        principal: &Principal,
        command: C,
        request: Option<RequestKey>,
    ) -> DomainResult<Committed<C::Answer>> {
        let principal = principal.clone();
        let lane = if C::READS_ONLY {
            Lane::Read
        } else {
            Lane::Write
        };
        self.send(lane, |reply| {
            Box::new(Call {
                command,
                principal,
                request,
                reply,
            })
        })
        .await
    }

    /// Attaches a desktop stream (`Connect` or `Feed`) to its client: the client's events go
    /// to `outbox`, and the stream holds the client's lease until `detach_stream`. Answers
    /// what the client hears as bound now.
    pub async fn attach_stream(
        &self,
        principal: &Principal,
        client_id: ClientId,
        stream: StreamId,
        outbox: Outbox,
    ) -> DomainResult<Committed<Hearing>> {
        let command = AttachStream { client_id, stream };
        let principal = principal.clone();
        self.send(Lane::Write, |reply| {
            Box::new(Attach {
                command,
                principal,
                outbox,
                reply,
            })
        })
        .await
    }

    /// Detaches a closed `Connect` stream: it gets no more events, and with no stream left
    /// its client's grace period starts.
    pub async fn detach_stream(
        &self,
        client_id: ClientId,
        stream: StreamId,
    ) -> DomainResult<Committed<()>> {
        let command = DetachStream { client_id, stream };
        // Never refused: a closed stream must let go of its client's lease.
        self.send(Lane::Control, |reply| {
            Box::new(Detach {
                command,
                reply: Some(reply),
            })
        })
        .await
    }

    /// Hands `tap` the state as it is now, then every record made visible after it (see
    /// `watch::Tap`). Only one tap may be set.
    pub async fn tap(&self, tap: Arc<dyn Tap>) -> DomainResult<()> {
        self.send(Lane::Control, |reply| Box::new(Tapping { tap, reply }))
            .await
            .map(|committed| committed.answer)
    }

    /// Commands waiting for the engine now, writes and reads.
    pub fn inbox_depth(&self) -> (usize, usize) {
        self.inbox.depth()
    }

    /// Stops the engine after what was sent before: a last snapshot, the journal closed.
    pub async fn close(&self) {
        let (done, closed) = oneshot::channel();
        if self.inbox.after_writes(Message::Close(done)).await.is_ok() {
            let _ = closed.await;
        }
    }

    /// Hashes a new password or secret on the hashing pool (`ResourceExhausted` when full).
    pub async fn hash_secret(&self, secret: Password) -> DomainResult<PasswordHashString> {
        let Password(clear) = secret;
        self.logins.hash(clear).await
    }

    /// Checks a principal's password or secret off the engine task; returns what it was
    /// checked against (hash, roles, credential version), which a command carries so that a
    /// secret changed meanwhile fails.
    ///
    /// The throttle goes first: after too many failures for the principal or from `peer` the
    /// attempt is refused unchecked (`LoginThrottled`). An unknown principal is checked against
    /// a dummy hash and counted like a wrong password, so that both answer the same. A full
    /// hashing pool refuses with `ResourceExhausted`, which counts as no attempt.
    pub async fn verify_principal(
        &self,
        principal: &Actor,
        secret: Password,
        peer: Option<IpAddr>,
    ) -> DomainResult<Credential> {
        let attempt = self.logins.admit(&principal.to_string(), peer)?;
        let query = PrincipalCredential {
            principal: principal.clone(),
        };
        let stored = self.execute(&Principal::engine(), query).await?.answer;
        let Password(clear) = secret;
        let hash = stored.as_ref().map(|c| c.secret_hash.clone());
        let matches = self.logins.verify(clear, hash).await?;
        match (matches, stored) {
            (true, Some(credential)) => {
                attempt.succeeded();
                Ok(credential)
            }
            _ => {
                attempt.failed();
                Err(DomainError::Unauthenticated)
            }
        }
    }

    /// As `verify_principal`, for an agent: the hash its password matched.
    pub async fn verify_agent(
        &self,
        agent_id: &str,
        password: Password,
        peer: Option<IpAddr>,
    ) -> DomainResult<PasswordHashString> {
        let agent = Actor::Agent(agent_id.to_owned());
        Ok(self
            .verify_principal(&agent, password, peer)
            .await?
            .secret_hash)
    }

    /// Queues a job built around its reply channel on `lane` and awaits the durable answer.
    /// A full lane refuses the job at once.
    async fn send<A>(
        &self,
        lane: Lane,
        job: impl FnOnce(oneshot::Sender<DomainResult<Committed<A>>>) -> Box<dyn Job>,
    ) -> DomainResult<Committed<A>> {
        let (reply, answer) = oneshot::channel();
        let message = Message::Job(job(reply));
        let queued = match lane {
            Lane::Write => self.inbox.write(message),
            Lane::Read => self.inbox.read(message),
            Lane::Control => self.inbox.control(message),
        };
        queued.map_err(|refused: Refused| refused.into_error(lane.name()))?;
        answer.await.map_err(|_| engine_stopped())?
    }
}

/// Which lane of the inbox a job takes.
#[derive(Clone, Copy)]
enum Lane {
    Write,
    Read,
    Control,
}

impl Lane {
    fn name(self) -> &'static str {
        match self {
            Lane::Write => "write",
            Lane::Read => "read",
            Lane::Control => "control",
        }
    }
}

pub(super) fn engine_stopped() -> DomainError {
    DomainError::Unavailable("the engine has stopped; retry on another server".into())
}
