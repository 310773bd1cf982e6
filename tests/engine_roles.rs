//! A cluster node's engine between following and leading, in one process: two engines on one
//! journal, each writing through a fence like the PostgreSQL journal's (an append is refused
//! unless the engine's `Fence` holds the lease's current epoch). The PostgreSQL journal's own
//! fence is proven in `tests/postgres_lease.rs`, the whole cluster over gRPC in `tests/cluster.rs`.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::journals::HookedJournal;
use switchboard::domain::commands::{ListMrds, UpsertMrd};
use switchboard::domain::routing::config::{LogoutAction, MrdConfig, RonaAction};
use switchboard::domain::{
    DomainError, ModelCatalog, Principal, Revision, ServiceDirectory, State,
};
use switchboard::engine::{
    Engine, EngineConfig, EngineHandle, EngineStatus, Membership, RequestKey, SystemClock,
};
use switchboard::store::{Fence, Journal, MemoryJournal, StoreError};
use switchboard::watch::{WatchConfig, WatchItem};
use tokio::sync::watch;

/// Bounds every wait for a condition: a failure guard only.
const PATIENCE: Duration = Duration::from_secs(20);

/// The lease row: its current epoch, which every append checks.
#[derive(Clone, Default)]
struct Lease(Arc<AtomicU64>);

struct Node {
    engine: EngineHandle,
    fence: Fence,
    /// Bumped to wake the node's engine, as the journal's notifications do.
    wake: watch::Sender<Revision>,
}

fn node(journal: &Arc<MemoryJournal>, lease: &Lease) -> Node {
    let fence = Fence::default();
    let (current, held) = (lease.0.clone(), fence.clone());
    let fenced = HookedJournal {
        inner: Arc::clone(journal),
        hook: Box::new(move || {
            let now = current.load(Ordering::SeqCst);
            match held.held() {
                Some(epoch) if epoch == now => Ok(()),
                held => Err(StoreError::Fenced { held, current: now }),
            }
        }),
    };
    let (wake, wakeups) = watch::channel(0);
    let engine = Engine::start_following(
        State::new(
            ServiceDirectory::new(uuid::Uuid::nil(), "Switchboard"),
            Arc::new(ModelCatalog::default()),
        ),
        Arc::new(fenced) as Arc<dyn Journal>,
        Arc::new(SystemClock),
        EngineConfig {
            snapshot_every: 1_000_000,
            retain_events: 1_000_000,
            request_window_ms: 60_000,
            max_remembered_requests: 1_000,
            task_history_ms: 60_000,
            inbox_depth: 64,
        },
        WatchConfig {
            progress_every: Duration::from_secs(60),
            live_buffer: 64,
            max_per_principal: 16,
        },
        Membership {
            wakeups,
            fence: fence.clone(),
        },
    )
    .expect("the engine starts");
    Node {
        engine,
        fence,
        wake,
    }
}

impl Node {
    /// What the lease keeper does on taking the lease: fence first, then lead.
    async fn take_lease(&self, lease: &Lease) -> Revision {
        let epoch = lease.0.fetch_add(1, Ordering::SeqCst) + 1;
        self.fence.hold(epoch);
        self.engine.lead().await.expect("the engine takes over")
    }

    fn wake(&self) {
        self.wake.send_modify(|n| *n += 1);
    }

    async fn wait_for_applied(&self, revision: Revision) {
        let mut applied = self.engine.applied();
        tokio::time::timeout(PATIENCE, applied.wait_for(|now| *now >= revision))
            .await
            .expect("the node applies the revision in time")
            .expect("the engine runs");
    }

    async fn wait_for_status(&self, status: EngineStatus) {
        let mut now = self.engine.status();
        tokio::time::timeout(PATIENCE, now.wait_for(|now| *now == status))
            .await
            .expect("the engine reaches the status in time")
            .expect("the engine runs");
    }

    async fn mrds(&self) -> Vec<String> {
        let listed = self
            .engine
            .execute(&Principal::engine(), ListMrds)
            .await
            .expect("a read is answered");
        listed.answer.into_iter().map(|m| m.name).collect()
    }
}

fn mrd(name: &str) -> UpsertMrd {
    UpsertMrd(MrdConfig {
        name: name.into(),
        max_tasks: 1,
        interruptible: false,
        offer_timeout_ms: 20_000,
        wrap_up_timeout_ms: 0,
        rona_action: RonaAction::NotReady,
        logout_action: LogoutAction::Close,
        blocks: Vec::new(),
        classifiers: Vec::new(),
        unclassified_queue: String::new(),
        unclassified_priority: 0,
    })
}

fn key(id: &str) -> Option<RequestKey> {
    Some(RequestKey {
        id: id.into(),
        fingerprint: "same request".into(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_folds_the_leaders_writes_answers_reads_and_refuses_writes() {
    let journal = Arc::new(MemoryJournal::new());
    let lease = Lease::default();
    let (a, b) = (node(&journal, &lease), node(&journal, &lease));
    a.take_lease(&lease).await;
    let admin = Principal::engine();
    let mut watch = b
        .engine
        .watch()
        .subscribe(&admin.actor, 1, |_| true)
        .expect("a watch opens on the follower");

    let written = a
        .engine
        .execute(&admin, mrd("chat"))
        .await
        .expect("the leader writes");
    b.wake();
    b.wait_for_applied(written.revision).await;
    assert_eq!(b.mrds().await, ["chat"]);
    assert_eq!(*b.engine.status().borrow(), EngineStatus::Following);
    match tokio::time::timeout(PATIENCE, watch.recv()).await {
        Ok(Some(Ok(WatchItem::Record(record)))) => assert_eq!(record.revision, 1),
        other => panic!("the follower's watch sees the leader's record: {other:?}"),
    }

    let refused = b.engine.execute(&admin, mrd("voice")).await;
    assert!(
        matches!(&refused, Err(DomainError::Unavailable(m)) if m.contains("does not lead")),
        "{refused:?}"
    );
    assert_eq!(journal.last_revision().expect("readable"), written.revision);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deposed_leader_cannot_write_and_the_new_one_carries_on_with_its_answers() {
    let journal = Arc::new(MemoryJournal::new());
    let lease = Lease::default();
    let (a, b) = (node(&journal, &lease), node(&journal, &lease));
    a.take_lease(&lease).await;
    let admin = Principal::engine();
    let first = a
        .engine
        .execute_once(&admin, mrd("chat"), key("r-1"))
        .await
        .expect("the leader writes");

    // The lease moves on while A still thinks it leads (a paused process): B takes it.
    let started_at = b.take_lease(&lease).await;
    assert_eq!(started_at, first.revision, "B read the journal to its end");
    assert_eq!(b.mrds().await, ["chat"]);

    // A's next write is fenced: not acknowledged, not in the journal; A rebuilds and follows.
    let fenced = a.engine.execute(&admin, mrd("voice")).await;
    assert!(
        matches!(&fenced, Err(DomainError::Unavailable(m)) if m.contains("stopped leading")),
        "{fenced:?}"
    );
    a.wait_for_status(EngineStatus::Following).await;
    assert_eq!(journal.last_revision().expect("readable"), first.revision);

    // B answers the request id A answered, and its writes follow A's without a gap.
    let again = b
        .engine
        .execute_once(&admin, mrd("chat"), key("r-1"))
        .await
        .expect("the retry is answered");
    assert_eq!(
        again.revision, first.revision,
        "the first answer, not a second change"
    );
    let next = b
        .engine
        .execute(&admin, mrd("email"))
        .await
        .expect("B writes");
    assert_eq!(next.revision, first.revision + 1);
    a.wake();
    a.wait_for_applied(next.revision).await;
    assert_eq!(a.mrds().await, ["chat", "email"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_to_lead_after_the_lease_was_let_go_is_refused_and_a_leader_without_it_stops() {
    let journal = Arc::new(MemoryJournal::new());
    let lease = Lease::default();
    let a = node(&journal, &lease);
    let refused = a.engine.lead().await;
    assert!(refused.is_err(), "no lease held: {refused:?}");
    assert_eq!(*a.engine.status().borrow(), EngineStatus::Following);

    a.take_lease(&lease).await;
    assert_eq!(*a.engine.status().borrow(), EngineStatus::Writable);
    // The keeper lets go of the lease (it could not renew in time) and says so.
    a.fence.release();
    a.engine.follow();
    a.wait_for_status(EngineStatus::Following).await;
    let refused = a.engine.execute(&Principal::engine(), mrd("chat")).await;
    assert!(
        matches!(refused, Err(DomainError::Unavailable(_))),
        "{refused:?}"
    );
    assert_eq!(journal.last_revision().expect("readable"), 0);
}
