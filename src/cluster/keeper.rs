//! The lease keeper: which node of a cluster leads. A follower reads the lease row every renew
//! interval and takes it once it has expired; the leader renews it every renew interval. The
//! engine is told to lead only after the journal's fence holds the new epoch, so that nothing
//! it writes can interleave with the previous leader's; it is told to follow (and the fence
//! dropped) as soon as the leader cannot be sure of its lease: a renewal refused, or none
//! succeeded for a lease's time to live less one renew interval (measured on this node's
//! monotonic clock from before the last renewal that succeeded, so it errs on the early
//! side). A commit the node still attempts after that is refused by the journal itself, which
//! checks the epoch under the lease row's lock.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout};
use tracing::{info, warn};

use super::lease::{LeaseTable, LeaseView};
use super::route::Route;
use crate::domain::{DomainError, Revision};
use crate::engine::{EngineHandle, EngineStatus};
use crate::store::Fence;

/// A node's part in its cluster, as `GetServerStatus` tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeRole {
    /// No cluster: the node has the journal to itself.
    Standalone,
    /// Holds the lease and takes writes (`ready`), or is still catching up to.
    Leader { ready: bool },
    /// Follows the journal and forwards writes to the leader, when one is known.
    Follower,
}

/// What a node knows of its cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeView {
    pub node_id: String,
    pub role: NodeRole,
    /// The lease's epoch as this node last saw it (0: never taken).
    pub epoch: u64,
    /// Where the leader takes forwarded commands, when known.
    pub leader_address: Option<String>,
}

impl NodeView {
    pub fn standalone(node_id: String) -> Self {
        Self {
            node_id,
            role: NodeRole::Standalone,
            epoch: 0,
            leader_address: None,
        }
    }

    /// Where this node sends what only the leader may do.
    pub fn route(&self) -> Route {
        match (&self.role, &self.leader_address) {
            (NodeRole::Standalone | NodeRole::Leader { ready: true }, _) => Route::Local,
            (NodeRole::Leader { ready: false }, _) => Route::NoLeader,
            (NodeRole::Follower, Some(address)) => Route::Leader(address.clone()),
            (NodeRole::Follower, None) => Route::NoLeader,
        }
    }
}

/// How the lease is kept (defaults: `ServerConfig`).
#[derive(Debug, Clone)]
pub struct LeaseSettings {
    pub node_id: String,
    /// Where other nodes forward commands to this one when it leads.
    pub advertise: String,
    /// How long a lease lasts without renewal: the most a dead leader costs.
    pub ttl: Duration,
    /// How often the leader renews it and followers look at it.
    pub renew_every: Duration,
}

/// The running keeper: its view of the cluster, and how to stop it.
pub struct Keeper {
    view: watch::Receiver<NodeView>,
    route: watch::Receiver<Route>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Keeper {
    pub fn spawn(
        lease: LeaseTable,
        engine: EngineHandle,
        fence: Fence,
        settings: LeaseSettings,
    ) -> Self {
        let (view_tx, view) = watch::channel(NodeView {
            node_id: settings.node_id.clone(),
            role: NodeRole::Follower,
            epoch: 0,
            leader_address: None,
        });
        let (route_tx, route) = watch::channel(Route::NoLeader);
        let (stop, stopped) = oneshot::channel();
        let run = Run {
            holder: format!("{}/{}", settings.node_id, uuid::Uuid::new_v4().simple()),
            route: route_tx,
            lease: Arc::new(lease),
            status: engine.status(),
            engine,
            fence,
            settings,
            view: view_tx,
            held: None,
        };
        let task = tokio::spawn(run.run(stopped));
        Self {
            view,
            route,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub fn view(&self) -> watch::Receiver<NodeView> {
        self.view.clone()
    }

    /// Where this node sends what only the leader may serve.
    pub fn route(&self) -> watch::Receiver<Route> {
        self.route.clone()
    }

    /// Stops renewing and, when leading, releases the lease at once so that another node
    /// takes over without waiting for it to expire. Call after the engine has closed.
    pub async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take()
            && let Err(e) = task.await
        {
            warn!(error = %e, "the lease keeper ended abnormally");
        }
    }
}

/// The lease this node holds.
struct Held {
    epoch: u64,
    /// Taken just before the last renewal that succeeded: the lease lasts at least a time to
    /// live from here.
    renewed_at: Instant,
    /// The engine catching up before it takes writes; `None` once it leads.
    taking_over: Option<JoinHandle<Result<Revision, DomainError>>>,
}

struct Run {
    lease: Arc<LeaseTable>,
    /// This process in the lease row: its node id and an id of its own, so that a node
    /// restarted under the same id (or a second process given it by mistake) never takes the
    /// previous one's lease for its own.
    holder: String,
    engine: EngineHandle,
    status: watch::Receiver<EngineStatus>,
    fence: Fence,
    settings: LeaseSettings,
    view: watch::Sender<NodeView>,
    route: watch::Sender<Route>,
    held: Option<Held>,
}

impl Run {
    async fn run(mut self, mut stopped: oneshot::Receiver<()>) {
        loop {
            self.turn().await;
            tokio::select! {
                _ = &mut stopped => break,
                () = tokio::time::sleep(self.settings.renew_every) => {}
                changed = self.status.changed() => {
                    if changed.is_err() {
                        break;
                    }
                }
            }
        }
        if let Some(held) = self.held.take() {
            self.fence.release();
            let released = self.lease.release(&self.holder, held.epoch).await;
            match released {
                Ok(()) => info!(epoch = held.epoch, "lease released"),
                Err(e) => warn!(error = %e, "releasing the lease failed; it expires on its own"),
            }
        }
    }

    async fn turn(&mut self) {
        match self.held.take() {
            Some(held) => self.keep(held).await,
            None => self.look().await,
        }
    }

    /// A follower's turn: learns who leads, and takes the lease once it has expired.
    async fn look(&mut self) {
        let limit = self.settings.renew_every;
        let view = match timeout(limit, self.lease.read()).await {
            Ok(Ok(view)) => view,
            Ok(Err(e)) => return warn!(error = %e, "reading the lease failed"),
            Err(_) => return warn!("reading the lease timed out"),
        };
        if !view.expired && view.holder == self.holder {
            // A take this node gave up waiting for went through after all.
            let expires = Instant::now() + Duration::from_millis(view.remaining_ms);
            let renewed_at = expires.checked_sub(self.settings.ttl).unwrap_or(expires);
            return self.take_over(view.epoch, renewed_at);
        }
        if !view.expired {
            self.follow(&view);
            return;
        }
        if *self.status.borrow() == EngineStatus::Recovering {
            // Its state is being rebuilt: leading now would only delay the hand-over.
            return self.follow(&view);
        }
        let asked = Instant::now();
        let settings = &self.settings;
        // The take may wait on a commit of the old leader's (its lock on the lease row); if it
        // outlasts the limit here it may still go through, and the next look adopts it.
        let taken = timeout(
            limit,
            self.lease
                .try_take(&self.holder, &settings.advertise, settings.ttl),
        )
        .await;
        match taken {
            Ok(Ok(Some(epoch))) => self.take_over(epoch, asked),
            Ok(Ok(None)) => {}
            Ok(Err(e)) => warn!(error = %e, "taking the lease failed"),
            Err(_) => warn!("taking the lease timed out"),
        }
    }

    /// This node holds the lease at `epoch`, renewed (or taken) no earlier than `renewed_at`.
    fn take_over(&mut self, epoch: u64, renewed_at: Instant) {
        // Fenced first: the engine writes under this epoch or not at all.
        self.fence.hold(epoch);
        info!(epoch, "lease taken; catching up with the journal");
        let engine = self.engine.clone();
        self.held = Some(Held {
            epoch,
            renewed_at,
            taking_over: Some(tokio::spawn(async move { engine.lead().await })),
        });
        self.publish(NodeRole::Leader { ready: false }, epoch, None);
    }

    fn follow(&mut self, view: &LeaseView) {
        let leader = (!view.expired && view.holder != self.holder).then(|| view.address.clone());
        self.publish(NodeRole::Follower, view.epoch, leader);
    }

    /// The leader's turn: renews the lease, and steps down when it cannot be sure of it.
    async fn keep(&mut self, mut held: Held) {
        // The engine says it writes just before it answers: either means it has taken over.
        let writable = *self.status.borrow() == EngineStatus::Writable;
        if let Some(task) = held
            .taking_over
            .take_if(|task| task.is_finished() || writable)
        {
            match task.await {
                Ok(Ok(revision)) => {
                    info!(epoch = held.epoch, revision, "leading");
                    let address = self.settings.advertise.clone();
                    self.publish(NodeRole::Leader { ready: true }, held.epoch, Some(address));
                }
                Ok(Err(e)) => return self.step_down(held, &format!("taking over failed: {e}")),
                Err(e) => return self.step_down(held, &format!("taking over failed: {e}")),
            }
        } else if held.taking_over.is_none() && *self.status.borrow() != EngineStatus::Writable {
            return self.step_down(held, "the journal refused this node's changes");
        }
        let asked = Instant::now();
        let settings = &self.settings;
        let renewed = timeout(
            settings.renew_every,
            self.lease.renew(&self.holder, held.epoch, settings.ttl),
        )
        .await;
        match renewed {
            Ok(Ok(true)) => held.renewed_at = asked,
            Ok(Ok(false)) => return self.step_down(held, "the lease moved on"),
            Ok(Err(e)) => warn!(error = %e, "renewing the lease failed"),
            Err(_) => warn!("renewing the lease timed out"),
        }
        // Stop before the lease can have expired, with a renew interval to spare.
        let deadline = held.renewed_at + settings.ttl.saturating_sub(settings.renew_every);
        if Instant::now() >= deadline {
            return self.step_down(held, "the lease could not be renewed in time");
        }
        self.held = Some(held);
    }

    fn step_down(&mut self, held: Held, why: &str) {
        self.fence.release();
        if let Some(task) = held.taking_over {
            task.abort();
        }
        self.engine.follow();
        warn!(epoch = held.epoch, why, "no longer leading");
        self.publish(NodeRole::Follower, held.epoch, None);
        // Let any node (this one included) take the lease without waiting for it to expire,
        // unless it has moved on already; a failure leaves it to expire.
        let lease = self.lease.clone();
        let holder = self.holder.clone();
        tokio::spawn(async move {
            let _ = lease.release(&holder, held.epoch).await;
        });
    }

    fn publish(&self, role: NodeRole, epoch: u64, leader_address: Option<String>) {
        self.view.send_if_modified(|view| {
            let next = NodeView {
                node_id: view.node_id.clone(),
                role,
                epoch,
                leader_address,
            };
            let changed = *view != next;
            *view = next;
            changed
        });
        let route = self.view.borrow().route();
        self.route.send_if_modified(|now| {
            let changed = *now != route;
            *now = route;
            changed
        });
    }
}
