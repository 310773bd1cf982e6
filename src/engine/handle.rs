//! How the rest of the server talks to the engine: send a command, await its durable answer.
//! Password hashing and checking happen here, on the login gate's few hashing threads
//! (`credentials::Logins`), never on the engine task.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use super::Message;
use super::job::{Attach, Call, Detach, Job};
use crate::credentials::Logins;
use crate::domain::agents::PasswordHashString;
use crate::domain::commands::{AgentCredential, AttachStream, Command, DetachStream, UpsertAgent};
use crate::domain::presence::StreamId;
use crate::domain::{ClientId, DomainError, DomainResult, Record, Revision};
use crate::watch::WatchHub;

/// Where the engine pushes the events a `Connect` stream's client must see.
pub type Outbox = mpsc::Sender<Arc<Record>>;

/// A command's answer and the revision that includes its effects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Committed<A> {
    pub answer: A,
    pub revision: Revision,
}

/// What makes a request idempotent: the caller's id for it, and a fingerprint of the request
/// that tells a retry from a different request reusing the id.
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
    tx: mpsc::Sender<Message>,
    watch: WatchHub,
    logins: Arc<Logins>,
}

impl EngineHandle {
    pub(super) fn new(tx: mpsc::Sender<Message>, watch: WatchHub) -> Self {
        Self {
            tx,
            watch,
            logins: Arc::new(Logins::default()),
        }
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

    pub async fn execute<C: Command>(&self, command: C) -> DomainResult<Committed<C::Answer>> {
        self.execute_once(command, None).await
    }

    /// Runs a command once per request id: a retry with the same key gets the first answer.
    pub async fn execute_once<C: Command>(
        &self,
        command: C,
        request: Option<RequestKey>,
    ) -> DomainResult<Committed<C::Answer>> {
        self.send(|reply| {
            Box::new(Call {
                command,
                request,
                reply,
            })
        })
        .await
    }

    /// Attaches a `Connect` stream to its client: the client's events go to `outbox`, and
    /// the stream holds the client's lease until `detach_stream`.
    pub async fn attach_stream(
        &self,
        client_id: ClientId,
        stream: StreamId,
        outbox: Outbox,
    ) -> DomainResult<Committed<()>> {
        let command = AttachStream { client_id, stream };
        self.send(|reply| {
            Box::new(Attach {
                command,
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
        self.send(|reply| {
            Box::new(Detach {
                command,
                reply: Some(reply),
            })
        })
        .await
    }

    /// Stops the engine after what was sent before: a last snapshot, the journal closed.
    pub async fn close(&self) {
        let (done, closed) = oneshot::channel();
        if self.tx.send(Message::Close(done)).await.is_ok() {
            let _ = closed.await;
        }
    }

    /// Creates or updates an agent, hashing a new password first (on the hashing pool:
    /// `ResourceExhausted` when it is full).
    pub async fn upsert_agent(
        &self,
        request: Option<RequestKey>,
        agent_id: String,
        display_name: String,
        password: Option<Password>,
        attributes: BTreeMap<String, u32>,
        mrd_max_tasks: BTreeMap<String, u32>,
    ) -> DomainResult<Committed<crate::domain::commands::AgentWritten>> {
        let password_hash = match password {
            Some(Password(clear)) => Some(self.logins.hash(clear).await?),
            None => None,
        };
        self.execute_once(
            UpsertAgent {
                agent_id,
                display_name,
                password_hash,
                attributes,
                mrd_max_tasks,
            },
            request,
        )
        .await
    }

    /// Checks an agent's password off the engine task; returns the hash it matched, which the
    /// command carries so that a password changed meanwhile fails the login.
    ///
    /// The throttle goes first: after too many failures for `agent_id` or from `peer` the
    /// attempt is refused unchecked (`LoginThrottled`). An unknown agent is checked against a
    /// dummy hash and counted like a wrong password, so that both answer the same. A full
    /// hashing pool refuses with `ResourceExhausted`, which counts as no attempt.
    pub async fn verify_agent(
        &self,
        agent_id: &str,
        password: Password,
        peer: Option<IpAddr>,
    ) -> DomainResult<PasswordHashString> {
        let attempt = self.logins.admit(agent_id, peer)?;
        let stored = self
            .execute(AgentCredential {
                agent_id: agent_id.to_owned(),
            })
            .await?
            .answer;
        let Password(clear) = password;
        let matches = self.logins.verify(clear, stored.clone()).await?;
        match (matches, stored) {
            (true, Some(hash)) => {
                attempt.succeeded();
                Ok(hash)
            }
            _ => {
                attempt.failed();
                Err(DomainError::Unauthenticated)
            }
        }
    }

    /// Queues a job built around its reply channel and awaits the durable answer.
    async fn send<A>(
        &self,
        job: impl FnOnce(oneshot::Sender<DomainResult<Committed<A>>>) -> Box<dyn Job>,
    ) -> DomainResult<Committed<A>> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Message::Job(job(reply)))
            .await
            .map_err(|_| engine_stopped())?;
        answer.await.map_err(|_| engine_stopped())?
    }
}

fn engine_stopped() -> DomainError {
    DomainError::Unavailable("the engine has stopped; retry on another server".into())
}
