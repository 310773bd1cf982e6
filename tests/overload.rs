//! Overload and hostile callers: a full inbox refuses writes at once while reads go on, an
//! oversized request is RESOURCE_EXHAUSTED naming the limit, and the stream limits refuse the
//! extra stream with a clear status.

mod common;

use std::sync::{Arc, Condvar, Mutex};

use futures_util::FutureExt;
use switchboard::domain::commands::{GetAgent, UpsertMrd};
use switchboard::domain::routing::config::{LogoutAction, MrdConfig, RonaAction};
use switchboard::domain::{DomainError, ModelCatalog, Principal, Record, ServiceDirectory, State};
use switchboard::engine::{Engine, EngineConfig, SystemClock};
use switchboard::store::{
    Journal, MemoryJournal, RememberedRequest, Retention, StoreError, StoredSnapshot,
};
use switchboard::watch::WatchConfig;
use tonic::Code;

/// The in-memory journal, whose appends wait while the gate is shut: the engine's pipeline
/// backs up behind it exactly as behind a slow disk, with no timing involved.
struct GatedJournal {
    inner: MemoryJournal,
    open: Mutex<bool>,
    opened: Condvar,
}

impl GatedJournal {
    fn shut() -> Self {
        Self {
            inner: MemoryJournal::new(),
            open: Mutex::new(false),
            opened: Condvar::new(),
        }
    }

    fn open(&self) {
        *self.open.lock().expect("the gate's lock") = true;
        self.opened.notify_all();
    }
}

impl Journal for GatedJournal {
    fn append(
        &self,
        records: &[&Record],
        requests: &[&RememberedRequest],
    ) -> Result<(), StoreError> {
        let mut open = self.open.lock().expect("the gate's lock");
        while !*open {
            open = self.opened.wait(open).expect("the gate's lock");
        }
        drop(open);
        self.inner.append(records, requests)
    }
    fn read_from(&self, from: u64, limit: usize) -> Result<Vec<Record>, StoreError> {
        self.inner.read_from(from, limit)
    }
    fn last_revision(&self) -> Result<u64, StoreError> {
        self.inner.last_revision()
    }
    fn first_revision(&self) -> Result<u64, StoreError> {
        self.inner.first_revision()
    }
    fn latest_snapshot(&self) -> Result<Option<StoredSnapshot>, StoreError> {
        self.inner.latest_snapshot()
    }
    fn save_snapshot(
        &self,
        snapshot: &StoredSnapshot,
        retention: Retention,
    ) -> Result<(), StoreError> {
        self.inner.save_snapshot(snapshot, retention)
    }
    fn remembered_requests(&self, since: u64) -> Result<Vec<RememberedRequest>, StoreError> {
        self.inner.remembered_requests(since)
    }
}

fn mrd(n: usize) -> UpsertMrd {
    UpsertMrd(MrdConfig {
        name: format!("mrd{n}"),
        max_tasks: 1,
        interruptible: false,
        offer_timeout_ms: 20_000,
        wrap_up_timeout_ms: 0,
        rona_action: RonaAction::NotReady,
        logout_action: LogoutAction::Close,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_inbox_refuses_writes_at_once_and_still_takes_reads() {
    const DEPTH: usize = 4;
    let journal = Arc::new(GatedJournal::shut());
    let state = State::new(
        ServiceDirectory::new(uuid::Uuid::nil(), "Switchboard"),
        Arc::new(ModelCatalog::default()),
    );
    let engine = Engine::start(
        state,
        Arc::clone(&journal) as Arc<dyn Journal>,
        Arc::new(SystemClock),
        EngineConfig {
            snapshot_every: 1_000_000,
            retain_events: 1_000_000,
            request_window_ms: 60_000,
            inbox_depth: DEPTH,
        },
        WatchConfig {
            progress_every: std::time::Duration::from_secs(60),
            live_buffer: 64,
        },
    )
    .expect("the engine starts");
    let admin = Principal::engine();

    // Writes pile up behind the shut journal: the commit pipeline fills, then the inbox. Each
    // write is queued (or refused) on its first poll; a refusal is the first poll's answer.
    let mut accepted = Vec::new();
    let mut refusal = None;
    for n in 0..100_000 {
        let engine = engine.clone();
        let admin = admin.clone();
        let mut write = Box::pin(async move { engine.execute(&admin, mrd(n)).await });
        match (&mut write).now_or_never() {
            Some(Err(error)) => {
                refusal = Some(error);
                break;
            }
            Some(Ok(_)) => panic!("a write was answered while the journal could not take it"),
            None => accepted.push(tokio::spawn(write)),
        }
        // Lets the engine take what waits, so the pipeline behind the journal fills.
        tokio::task::yield_now().await;
    }
    let refusal = refusal.expect("a write is refused once the inbox is full");
    assert!(
        matches!(&refusal, DomainError::Unavailable(message) if message.contains("overloaded")),
        "{refusal:?}"
    );
    let status = tonic::Status::from(refusal);
    assert_eq!(status.code(), Code::Unavailable);
    assert!(
        status.message().contains("the server is overloaded"),
        "{}",
        status.message()
    );

    // A read is still taken, in its own lane, and answered once the state it sees is durable.
    let read = {
        let engine = engine.clone();
        let admin = admin.clone();
        let mut read = Box::pin(async move {
            engine
                .execute(
                    &admin,
                    GetAgent {
                        agent_id: "nobody".into(),
                    },
                )
                .await
        });
        assert!(
            (&mut read).now_or_never().is_none(),
            "a read is queued, not refused, while writes are"
        );
        tokio::spawn(read)
    };

    journal.open();
    let read = read.await.expect("the read's task");
    assert!(
        matches!(read, Err(DomainError::NotFound { .. })),
        "the read is answered: {read:?}"
    );
    // Every write taken is answered and durable; the refused one changed nothing.
    let taken = accepted.len();
    for write in accepted {
        write
            .await
            .expect("the write's task")
            .expect("an accepted write is answered");
    }
    assert_eq!(
        journal
            .last_revision()
            .expect("the journal's last revision"),
        taken as u64,
        "every accepted write is in the journal, and nothing else"
    );
    // With room again, writes go through.
    engine
        .execute(&admin, mrd(1_000_000))
        .await
        .expect("a write after the overload is taken");
    engine.close().await;
}
