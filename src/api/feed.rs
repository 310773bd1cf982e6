//! `CoreService.Feed`: a browser desktop's lease and event feed. A browser cannot open a
//! two-way stream (gRPC-web carries server streams only), so its desktop holds this one
//! server stream and sends its commands as unary calls naming its client. The feed is to
//! presence what `Connect` is: open, it holds the client's lease; ended however, the client's
//! grace period starts. A feed naming its client resumes it, first replaying from the journal
//! the events it missed, picked by what the client has bound.

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use tracing::debug;

use super::connect::{client_event, next_stream_id};
use super::convert::clients::{FeedOpening, new_client_id};
use super::{Api, ApiResult, stopping_status};
use crate::domain::commands as cmd;
use crate::domain::presence::StreamId;
use crate::domain::{Actor, ClientId, DomainError, Hearing, Principal, Record, Revision};
use crate::pb::feed_response::Frame;
use crate::pb::{self, FeedResponse};
use crate::watch::{WatchError, WatchItem};

/// Events queued for one feed before it counts as too slow and is disconnected, as for
/// `Connect`.
const EVENT_BUFFER: usize = 1024;
/// Frames queued towards the network for one feed.
const OUT_BUFFER: usize = 64;

pub(super) type FeedStream =
    std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<FeedResponse, Status>> + Send>>;

type Out = mpsc::Sender<Result<FeedResponse, Status>>;

/// An open feed: who holds it, its client and stream, where its live events start, and what
/// it replays first.
struct Feed {
    who: Principal,
    token: Option<(Actor, u64)>,
    client_id: ClientId,
    stream: StreamId,
    /// The revision of the greeting: live events after it come from the engine.
    attached: Revision,
    /// The first revision to replay (0: none), and what the client hears.
    start: Revision,
    hearing: Hearing,
}

impl Api {
    pub(super) async fn open_feed(
        &self,
        request: Request<pb::FeedRequest>,
    ) -> ApiResult<Response<FeedStream>> {
        self.ensure_accepting()?;
        let who = super::caller(&request)?;
        let token = super::token_of(&request);
        let fallback = request
            .remote_addr()
            .map_or_else(|| "browser feed".to_owned(), |a| format!("feed {a}"));
        let opening = FeedOpening::parse(request.get_ref(), &fallback)?;
        let resume = opening.resume;
        let client_id = match resume {
            Some(client_id) => client_id,
            None => {
                let command = cmd::RegisterClient {
                    client_id: new_client_id(),
                    client_name: opening.name,
                };
                self.engine().execute(&who, command).await?.answer
            }
        };
        let stream = next_stream_id();
        let (event_tx, event_rx) = mpsc::channel(EVENT_BUFFER);
        let attached = self
            .engine()
            .attach_stream(&who, client_id, stream, event_tx)
            .await
            .map_err(|e| match e {
                DomainError::NotFound { .. } => Status::not_found(format!(
                    "client {client_id} is not registered (its grace period may have passed); \
                     open a feed without client_id to register a new one"
                )),
                other => other.into(),
            })?;
        let (out, out_rx) = mpsc::channel(OUT_BUFFER);
        let greeting = Frame::Connected(pb::Connected {
            client_id: client_id.to_string(),
            revision: attached.revision,
            resumed: resume.is_some(),
        });
        // The channel is new and empty, so the greeting always fits.
        let _ = out.try_send(Ok(feed_frame(greeting)));
        debug!(%client_id, stream, resumed = resume.is_some(), "feed opened");
        let feed = Feed {
            who,
            token,
            client_id,
            stream,
            attached: attached.revision,
            start: opening.start_revision,
            hearing: attached.answer,
        };
        tokio::spawn(self.clone().serve_feed(feed, event_rx, out));
        Ok(Response::new(Box::pin(ReceiverStream::new(out_rx))))
    }

    /// Serves an open feed until it ends, then lets go of its client's lease.
    async fn serve_feed(self, feed: Feed, mut events: mpsc::Receiver<Arc<Record>>, out: Out) {
        let (client_id, stream) = (feed.client_id, feed.stream);
        let ended = match self.replay_missed(&feed, &out).await {
            Ok(true) => self.follow_live(&feed, &mut events, &out).await,
            Ok(false) => None,
            Err(status) => Some(status),
        };
        // However it ended, the client keeps its bindings for its grace period. A client
        // that was unregistered meanwhile is gone already, which is fine.
        match Box::pin(self.engine().detach_stream(client_id, stream)).await {
            Ok(_) | Err(DomainError::NotFound { .. }) => {}
            Err(e) => debug!(%client_id, error = %e, "detaching a feed failed"),
        }
        debug!(%client_id, stream, "feed closed; grace period");
        if let Some(status) = ended {
            let _ = out.send(Err(status)).await;
        }
    }

    /// Sends the events the client missed, from `start` up to the greeting's revision; false
    /// when the browser is gone.
    async fn replay_missed(&self, feed: &Feed, out: &Out) -> Result<bool, Status> {
        if feed.start == 0 {
            return Ok(true);
        }
        if feed.start > feed.attached + 1 {
            return Err(WatchError::BeyondHead {
                requested: feed.start,
                head: feed.attached,
            }
            .into());
        }
        let hearing = feed.hearing.clone();
        let mut missed = self
            .engine()
            .watch()
            .replay(&feed.who.actor, feed.start, feed.attached, move |record| {
                hearing.hears(&record.event)
            })
            .map_err(Status::from)?;
        while let Some(item) = missed.recv().await {
            match item.map_err(Status::from)? {
                WatchItem::Record(record) => {
                    if !send_event(out, &record).await {
                        return Ok(false);
                    }
                }
                WatchItem::Progress(_) => {}
            }
        }
        Ok(true)
    }

    /// Sends live events and progress notices until the feed ends: the status it ends with,
    /// `None` when the browser went away.
    async fn follow_live(
        &self,
        feed: &Feed,
        events: &mut mpsc::Receiver<Arc<Record>>,
        out: &Out,
    ) -> Option<Status> {
        let stopping = self.lifecycle().stopping();
        tokio::pin!(stopping);
        let revoked = super::revoked(self.engine().standings().clone(), feed.token.clone());
        tokio::pin!(revoked);
        let applied = self.engine().applied();
        let mut progress = tokio::time::interval(self.engine().watch().progress_every());
        progress.reset();
        loop {
            tokio::select! {
                biased;
                () = &mut stopping => return Some(stopping_status()),
                () = &mut revoked => return Some(super::revoked_status()),
                () = out.closed() => return None,
                event = events.recv() => match event {
                    // Sent before the feed opened, or replayed.
                    Some(record) if record.revision <= feed.attached => {}
                    Some(record) => {
                        if !send_event(out, &record).await {
                            return None;
                        }
                        progress.reset();
                    }
                    None => return Some(Status::aborted(
                        "the server disconnected this client: it was unregistered, read its \
                         events too slowly, or another stream took it over; open a feed again",
                    )),
                },
                _ = progress.tick() => {
                    // Every event up to the applied revision is in `events` already (they are
                    // handed over before the revision is published): send those first.
                    let revision = *applied.borrow();
                    while let Ok(record) = events.try_recv() {
                        if record.revision > feed.attached && !send_event(out, &record).await {
                            return None;
                        }
                    }
                    let notice = Frame::Progress(pb::WatchProgress {
                        revision: revision.max(feed.attached),
                    });
                    if out.send(Ok(feed_frame(notice))).await.is_err() {
                        return None;
                    }
                }
            }
        }
    }
}

fn feed_frame(frame: Frame) -> FeedResponse {
    FeedResponse { frame: Some(frame) }
}

/// Sends an event's frame, if desktops see that event; false when the browser is gone.
async fn send_event(out: &Out, record: &Record) -> bool {
    match client_event(record) {
        Some(event) => out.send(Ok(feed_frame(Frame::Event(event)))).await.is_ok(),
        None => true,
    }
}
