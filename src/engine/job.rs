//! A command on its way through the engine with its typed reply channel. The engine's queue
//! carries every kind of command, so each is erased to a `Job`; its answer keeps its type from
//! the caller to the reply, and no match on an answer's kind exists anywhere.

use std::sync::Arc;

use tokio::sync::oneshot;

use super::Engine;
use super::commit::Pending;
use super::handle::{Committed, Outbox, RequestKey};
use crate::domain::commands::{AttachStream, Command, DetachStream};
use crate::domain::{DomainError, DomainResult, Hearing, Millis, Principal};
use crate::watch::Tap;

pub(super) type Reply<A> = oneshot::Sender<DomainResult<Committed<A>>>;

/// A command the engine can run inside a batch.
pub(super) trait Job: Send {
    fn run(self: Box<Self>, engine: &mut Engine, now: Millis, pending: &mut Pending);
}

/// A caller's command, run once per request id when it carries one.
pub(super) struct Call<C: Command> {
    pub command: C,
    /// Who the command acts for.
    pub principal: Principal,
    pub request: Option<RequestKey>,
    pub reply: Reply<C::Answer>,
}

impl<C: Command> Job for Call<C> {
    fn run(self: Box<Self>, engine: &mut Engine, now: Millis, pending: &mut Pending) {
        let Call {
            command,
            principal,
            request,
            reply,
        } = *self;
        if let Some(key) = &request
            && let Some(answer) = engine.requests.answer::<C::Answer>(&principal.actor, key)
        {
            pending.answer(reply, answer);
            return;
        }
        if let Some(refused) = engine.refusal(C::READS_ONLY) {
            pending.answer(reply, Err(refused));
            return;
        }
        let result = engine.apply(command, &principal, now, pending);
        if let (Ok(committed), Some(key)) = (&result, request) {
            let remembered = engine
                .requests
                .remember(&principal.actor, key, committed, now);
            pending.requests.push(remembered);
        }
        pending.answer(reply, result);
    }
}

/// A `Connect` stream joining its client: once the client is found, the client's events go
/// to `outbox`, and the stream holds the client's lease until it detaches.
pub(super) struct Attach {
    pub command: AttachStream,
    /// Only the principal that registered the client may attach a stream to it.
    pub principal: Principal,
    pub outbox: Outbox,
    pub reply: Reply<Hearing>,
}

impl Job for Attach {
    fn run(self: Box<Self>, engine: &mut Engine, now: Millis, pending: &mut Pending) {
        let Attach {
            command,
            principal,
            outbox,
            reply,
        } = *self;
        if let Some(refused) = engine.refusal(false) {
            pending.answer(reply, Err(refused));
            return;
        }
        let (client_id, stream) = (command.client_id, command.stream);
        let result = engine.apply(command, &principal, now, pending);
        if result.is_ok() {
            pending.attach.push((client_id, stream, outbox));
        }
        pending.answer(reply, result);
    }
}

/// A stream closed or was cut off: it stops receiving events whatever the state says of its
/// client, and with no stream left the client's grace period starts.
pub(super) struct Detach {
    pub command: DetachStream,
    /// `None` when the engine detaches a stream itself (one too slow to keep up).
    pub reply: Option<Reply<()>>,
}

impl Job for Detach {
    fn run(self: Box<Self>, engine: &mut Engine, now: Millis, pending: &mut Pending) {
        let Detach { command, reply } = *self;
        if let Some(refused) = engine.refusal(false) {
            // The committer dropped every stream when the journal failed; nothing to detach.
            if let Some(reply) = reply {
                pending.answer(reply, Err(refused));
            }
            return;
        }
        pending.detach.push((command.client_id, command.stream));
        let result = engine.apply(command, &Principal::engine(), now, pending);
        match reply {
            Some(reply) => pending.answer(reply, result),
            None => log_refusal(result),
        }
    }
}

/// A tap joining (the server's metrics): seeded with the state as it is now, it is then
/// handed every record after it.
pub(super) struct Tapping {
    pub tap: Arc<dyn Tap>,
    pub reply: Reply<()>,
}

impl Job for Tapping {
    fn run(self: Box<Self>, engine: &mut Engine, _: Millis, pending: &mut Pending) {
        let revision = engine.revision;
        let result = if engine.watch.tap().set(self.tap, &engine.state, revision) {
            Ok(Committed {
                answer: (),
                revision,
            })
        } else {
            Err(DomainError::FailedPrecondition(
                "the engine has a tap already".into(),
            ))
        };
        pending.answer(self.reply, result);
    }
}

/// Due timers and expired leases: the engine's own command, answered to nobody.
pub(super) struct Tick;

impl Job for Tick {
    fn run(self: Box<Self>, engine: &mut Engine, now: Millis, pending: &mut Pending) {
        let tick = crate::domain::commands::Tick;
        log_refusal(engine.apply(tick, &Principal::engine(), now, pending));
    }
}

fn log_refusal<A>(result: DomainResult<A>) {
    if let Err(e) = result {
        tracing::debug!(error = %e, "internal command refused");
    }
}

/// An answer held until its batch is durable, then sent; or replaced by an error when the
/// journal could not take the batch.
pub(super) trait HeldAnswer: Send {
    fn send(self: Box<Self>);
    fn fail(self: Box<Self>, error: DomainError);
}

pub(super) struct Held<A> {
    pub reply: Reply<A>,
    pub result: DomainResult<Committed<A>>,
}

impl<A: Send> HeldAnswer for Held<A> {
    fn send(self: Box<Self>) {
        // The caller may have gone; its change is committed all the same.
        let _ = self.reply.send(self.result);
    }

    fn fail(self: Box<Self>, error: DomainError) {
        let _ = self.reply.send(Err(error));
    }
}
