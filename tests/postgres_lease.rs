//! The cluster's PostgreSQL side against a real server: the leader's lease row (taken only
//! when expired, by exactly one of two at once, renewed only while held, released for the
//! next epoch), the journal's fence on it (a stale epoch or an expired lease writes nothing;
//! a hand-over waits for a commit under way), the journal's time limits and reconnection
//! through a network cut, the wake-ups an append sends, the shared signing key, and the
//! schema made by several nodes at once. Every wait is on a condition, never a duration.

mod common;

use std::sync::Arc;
use std::time::Duration;

use switchboard::cluster::keys::shared_signing_key;
use switchboard::cluster::lease::LeaseTable;
use switchboard::cluster::wakeup;
use switchboard::domain::{Actor, ClientId, Event, Record, Revision};
use switchboard::store::{
    Fence, Journal, PostgresJournal, PostgresOptions, RememberedRequest, Retention, StoreError,
    StoredSnapshot,
};
use uuid::Uuid;

use crate::common::postgres::{PgDatabase, PgServer, TcpProxy, leased_fence, wait_for};

const LIMIT: Duration = Duration::from_secs(30);
const HOUR: Duration = Duration::from_secs(3600);

fn record(revision: Revision) -> Record {
    Record {
        revision,
        time_ms: 1_000 + revision,
        actor: Actor::Engine,
        event: Event::ClientRegistered {
            client_id: ClientId(Uuid::from_u128(u128::from(revision))),
            client_name: format!("desk {revision}"),
            owner: Actor::Engine,
        },
    }
}

fn append(journal: &dyn Journal, revisions: &[Revision]) -> Result<(), StoreError> {
    let batch: Vec<Record> = revisions.iter().copied().map(record).collect();
    let refs: Vec<&Record> = batch.iter().collect();
    journal.append(&refs, &[], &[]).map(|_| ())
}

fn revisions(journal: &dyn Journal) -> Vec<Revision> {
    journal
        .read_from(0, usize::MAX)
        .expect("read the journal")
        .iter()
        .map(|r| r.revision)
        .collect()
}

fn fresh() -> (Arc<PgServer>, PgDatabase) {
    let server = PgServer::shared();
    let database = server.fresh_database();
    (server, database)
}

async fn lease_table(url: &str) -> LeaseTable {
    LeaseTable::connect(url, LIMIT)
        .await
        .expect("connect to the lease")
}

/// Runs blocking journal calls off the test's async workers.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f)
        .await
        .expect("the blocking call returns")
}

fn fenced(result: Result<(), StoreError>) -> (Option<u64>, u64) {
    match result {
        Err(StoreError::Fenced { held, current }) => (held, current),
        other => panic!("expected the write to be fenced, got {other:?}"),
    }
}

// ---- The lease row -------------------------------------------------------------------------

#[tokio::test]
async fn the_lease_is_taken_only_when_it_has_expired() {
    let (_server, db) = fresh();
    let lease = lease_table(&db.url).await;
    let before = lease.read().await.unwrap();
    assert_eq!((before.epoch, before.expired), (0, true), "{before:?}");
    assert_eq!(before.remaining_ms, 0);

    assert_eq!(
        lease.try_take("a", "10.0.0.1:50051", HOUR).await.unwrap(),
        Some(1)
    );
    // Held and unexpired: no one takes it, not even its holder again.
    assert_eq!(
        lease.try_take("b", "10.0.0.2:50051", HOUR).await.unwrap(),
        None
    );
    assert_eq!(
        lease.try_take("a", "10.0.0.1:50051", HOUR).await.unwrap(),
        None
    );
    let view = lease.read().await.unwrap();
    assert_eq!(view.epoch, 1);
    assert_eq!(view.holder, "a");
    assert_eq!(view.address, "10.0.0.1:50051");
    assert!(!view.expired);
    assert!(
        view.remaining_ms > 0 && view.remaining_ms <= 3_600_000,
        "{view:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_two_takes_at_once_exactly_one_wins() {
    let (_server, db) = fresh();
    let (a, b) = (lease_table(&db.url).await, lease_table(&db.url).await);
    for round in 1..=10 {
        let (took_a, took_b) =
            tokio::join!(a.try_take("a", "a:1", HOUR), b.try_take("b", "b:1", HOUR));
        let (took_a, took_b) = (took_a.unwrap(), took_b.unwrap());
        let winner = match (took_a, took_b) {
            (Some(epoch), None) => {
                assert_eq!(epoch, round);
                ("a", &a)
            }
            (None, Some(epoch)) => {
                assert_eq!(epoch, round);
                ("b", &b)
            }
            other => panic!("round {round}: exactly one take must win, got {other:?}"),
        };
        assert_eq!(a.read().await.unwrap().holder, winner.0);
        winner.1.release(winner.0, round).await.unwrap();
    }
}

#[tokio::test]
async fn a_renewal_holds_the_lease_and_fails_once_it_has_expired() {
    let (_server, db) = fresh();
    let lease = lease_table(&db.url).await;
    let epoch = lease
        .try_take("a", "a:1", Duration::from_millis(200))
        .await
        .unwrap()
        .expect("a fresh lease is free");
    // Only the holder, at its epoch, renews.
    assert!(!lease.renew("b", epoch, HOUR).await.unwrap());
    assert!(!lease.renew("a", epoch + 1, HOUR).await.unwrap());
    // Renewed for an hour, then left to run out on a short one.
    assert!(lease.renew("a", epoch, HOUR).await.unwrap());
    assert!(!lease.read().await.unwrap().expired);
    assert!(
        lease
            .renew("a", epoch, Duration::from_millis(100))
            .await
            .unwrap()
    );
    let deadline = tokio::time::Instant::now() + LIMIT;
    while !lease.read().await.unwrap().expired {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the lease never expired"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        !lease.renew("a", epoch, HOUR).await.unwrap(),
        "an expired lease cannot be renewed"
    );
    let view = lease.read().await.unwrap();
    assert_eq!((view.epoch, view.expired), (epoch, true));
}

#[tokio::test]
async fn a_release_lets_another_take_it_at_the_next_epoch() {
    let (_server, db) = fresh();
    let (a, b) = (lease_table(&db.url).await, lease_table(&db.url).await);
    assert_eq!(a.try_take("a", "a:1", HOUR).await.unwrap(), Some(1));
    assert_eq!(b.try_take("b", "b:1", HOUR).await.unwrap(), None);
    // A release by anyone but the holder at its epoch does nothing.
    b.release("b", 1).await.unwrap();
    a.release("a", 2).await.unwrap();
    assert!(!a.read().await.unwrap().expired);

    a.release("a", 1).await.unwrap();
    let released = a.read().await.unwrap();
    assert!(released.expired, "{released:?}");
    assert_eq!(b.try_take("b", "b:1", HOUR).await.unwrap(), Some(2));
    let view = b.read().await.unwrap();
    assert_eq!((view.epoch, view.holder.as_str()), (2, "b"));
    // The old holder's renewal fails: the lease moved on.
    assert!(!a.renew("a", 1, HOUR).await.unwrap());
}

// ---- The journal's fence -------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_under_a_stale_epoch_keeps_nothing_and_is_fenced() {
    let (_server, db) = fresh();
    let a = lease_table(&db.url).await;
    let epoch = a.try_take("a", "a:1", HOUR).await.unwrap().unwrap();
    let fence = Fence::default();
    fence.hold(epoch);
    let url = db.url.clone();
    let journal = Arc::new(blocking(move || PostgresJournal::connect(&url, fence).unwrap()).await);
    let j = Arc::clone(&journal);
    blocking(move || append(&*j, &[1, 2]).unwrap()).await;

    // Another node takes over.
    a.release("a", epoch).await.unwrap();
    let b = lease_table(&db.url).await;
    assert_eq!(b.try_take("b", "b:1", HOUR).await.unwrap(), Some(epoch + 1));

    let j = Arc::clone(&journal);
    blocking(move || {
        let request = RememberedRequest {
            request_id: "late".into(),
            fingerprint: "f".into(),
            answer: "{}".into(),
            revision: 3,
            time_ms: 5_000,
        };
        let batch = [record(3)];
        let refused = j.append(&[&batch[0]], &[&request], &[]).map(|_| ());
        assert_eq!(fenced(refused), (Some(epoch), epoch + 1));
        let snapshot = StoredSnapshot {
            revision: 2,
            time_ms: 9,
            body: "{}".into(),
        };
        let compaction = Retention {
            events: 0,
            requests_since: 0,
            history_since: 0,
        };
        assert_eq!(
            fenced(j.save_snapshot(&snapshot, compaction)),
            (Some(epoch), epoch + 1)
        );
        // Nothing of either was kept.
        assert_eq!(revisions(&*j), [1, 2]);
        assert_eq!(j.last_revision().unwrap(), 2);
        assert!(j.remembered_requests(0).unwrap().is_empty());
        assert_eq!(j.latest_snapshot().unwrap(), None);
        // A node that holds no lease is refused too; the probe needs none.
        j.fence().release();
        assert_eq!(fenced(append(&*j, &[3])), (None, epoch + 1));
        j.probe().expect("the probe writes without the lease");
        // Under the new epoch, the journal goes on from where it was.
        j.fence().hold(epoch + 1);
        append(&*j, &[3]).unwrap();
        assert_eq!(revisions(&*j), [1, 2, 3]);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_after_the_lease_expired_is_fenced() {
    let (_server, db) = fresh();
    let lease = lease_table(&db.url).await;
    let epoch = lease.try_take("a", "a:1", HOUR).await.unwrap().unwrap();
    let fence = Fence::default();
    fence.hold(epoch);
    let url = db.url.clone();
    let journal = Arc::new(blocking(move || PostgresJournal::connect(&url, fence).unwrap()).await);
    let j = Arc::clone(&journal);
    blocking(move || append(&*j, &[1]).unwrap()).await;

    // Renewed for a moment only, and not again: it runs out while the fence still holds it.
    assert!(
        lease
            .renew("a", epoch, Duration::from_millis(100))
            .await
            .unwrap()
    );
    let deadline = tokio::time::Instant::now() + LIMIT;
    while !lease.read().await.unwrap().expired {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the lease never expired"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let j = Arc::clone(&journal);
    blocking(move || {
        assert_eq!(j.fence().held(), Some(epoch));
        assert_eq!(fenced(append(&*j, &[2])), (Some(epoch), epoch));
        assert_eq!(revisions(&*j), [1]);
    })
    .await;
}

/// The journal's writer, blocked on a lock inside its transaction.
const WAITING_WRITER: &str = "SELECT pid FROM pg_stat_activity
     WHERE datname = current_database() AND application_name = 'switchboard-journal'
       AND wait_event_type = 'Lock'";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hand_over_waits_for_the_commit_under_way_and_fences_the_next() {
    let (server, db) = fresh();
    let lease = Arc::new(lease_table(&db.url).await);
    let epoch = lease.try_take("a", "a:1", HOUR).await.unwrap().unwrap();
    let fence = Fence::default();
    fence.hold(epoch);
    let url = db.url.clone();
    let journal = Arc::new(blocking(move || PostgresJournal::connect(&url, fence).unwrap()).await);
    let j = Arc::clone(&journal);
    blocking(move || append(&*j, &[1]).unwrap()).await;

    // A session of the test's holds revision 3, uncommitted: the append of 2..=3 passes the
    // lease check (and keeps the row locked FOR SHARE), inserts 2, then waits on 3.
    let (blocker, connection) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    blocker
        .batch_execute("BEGIN; INSERT INTO events (revision, time_ms, body) VALUES (3, 0, 'x')")
        .await
        .unwrap();
    let j = Arc::clone(&journal);
    let commit = tokio::task::spawn_blocking(move || append(&*j, &[2, 3]));
    let (s, name) = (Arc::clone(&server), db.name.clone());
    let writer = blocking(move || {
        let mut pid = String::new();
        wait_for("the append to wait in its transaction", LIMIT, || {
            pid = s.psql(&name, WAITING_WRITER);
            !pid.is_empty()
        });
        pid
    })
    .await;

    // The holder hands the lease over while the commit is under way: the release waits for
    // the journal's transaction, whose FOR SHARE lock it needs.
    let releasing = Arc::clone(&lease);
    let release = tokio::spawn(async move { releasing.release("a", epoch).await });
    let (s, name) = (Arc::clone(&server), db.name.clone());
    blocking(move || {
        let blocked_by_writer = format!(
            "SELECT pid FROM pg_stat_activity
             WHERE datname = current_database() AND application_name = 'switchboard-lease'
               AND {writer} = ANY (pg_blocking_pids(pid))"
        );
        wait_for(
            "the release to wait for the journal's commit",
            LIMIT,
            || !s.psql(&name, &blocked_by_writer).is_empty(),
        );
    })
    .await;
    assert!(!release.is_finished(), "the release waits on the commit");

    // The commit goes through under the epoch it checked, then the release.
    blocker.batch_execute("ROLLBACK").await.unwrap();
    commit.await.unwrap().expect("the commit under way lands");
    release.await.unwrap().unwrap();
    let j = Arc::clone(&journal);
    assert_eq!(blocking(move || revisions(&*j)).await, [1, 2, 3]);

    // The next holder takes it; the old one's next write is fenced and keeps nothing.
    let next = lease_table(&db.url).await;
    assert_eq!(
        next.try_take("b", "b:1", HOUR).await.unwrap(),
        Some(epoch + 1)
    );
    let j = Arc::clone(&journal);
    blocking(move || {
        assert_eq!(fenced(append(&*j, &[4])), (Some(epoch), epoch + 1));
        assert_eq!(revisions(&*j), [1, 2, 3]);
    })
    .await;
}

// ---- Time limits and reconnection ----------------------------------------------------------

/// Runs `call` on a thread of its own and waits for it, failing the test if it never returns.
fn returns<T: Send + 'static>(what: &str, call: impl FnOnce() -> T + Send + 'static) -> T {
    let (done, result) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(call());
    });
    result
        .recv_timeout(LIMIT)
        .unwrap_or_else(|_| panic!("{what}: the call never returned"))
}

#[test]
fn a_cut_off_database_fails_calls_within_the_limit_and_the_journal_recovers() {
    let (server, db) = fresh();
    let proxy = TcpProxy::start(([127, 0, 0, 1], server.port()).into());
    let url = proxy.database_url(&db.name);
    let fence = leased_fence(&db.url, "a");
    let options = PostgresOptions {
        timeout: Duration::from_millis(500),
        readers: 2,
    };
    let journal = Arc::new(PostgresJournal::connect_with(&url, fence, options).unwrap());
    append(&*journal, &[1, 2]).unwrap();
    assert_eq!(revisions(&*journal), [1, 2]);

    proxy.blackhole();
    let j = Arc::clone(&journal);
    let cut_append = returns("an append while cut off", move || append(&*j, &[3]));
    assert!(
        matches!(cut_append, Err(StoreError::Write(_))),
        "{cut_append:?}"
    );
    let j = Arc::clone(&journal);
    let cut_read = returns("a read while cut off", move || j.last_revision());
    assert!(matches!(cut_read, Err(StoreError::Read(_))), "{cut_read:?}");
    let j = Arc::clone(&journal);
    let cut_probe = returns("a probe while cut off", move || j.probe());
    assert!(cut_probe.is_err(), "{cut_probe:?}");

    // Back: the same journal connects again on its next calls, and nothing was half written.
    proxy.restore();
    let j = Arc::clone(&journal);
    returns("an append after the cut", move || append(&*j, &[3])).unwrap();
    assert_eq!(revisions(&*journal), [1, 2, 3]);
    journal.probe().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lease_table_fails_within_the_limit_when_cut_off_and_reconnects() {
    let (server, db) = fresh();
    let proxy = TcpProxy::start(([127, 0, 0, 1], server.port()).into());
    let lease = LeaseTable::connect(&proxy.database_url(&db.name), Duration::from_millis(500))
        .await
        .unwrap();
    assert_eq!(lease.try_take("a", "a:1", HOUR).await.unwrap(), Some(1));
    proxy.blackhole();
    let cut = tokio::time::timeout(LIMIT, lease.renew("a", 1, HOUR))
        .await
        .expect("the renewal returns while cut off");
    assert!(matches!(cut, Err(StoreError::Write(_))), "{cut:?}");
    assert!(matches!(
        tokio::time::timeout(LIMIT, lease.read()).await.unwrap(),
        Err(StoreError::Read(_))
    ));
    proxy.restore();
    assert!(lease.renew("a", 1, HOUR).await.unwrap());
    assert_eq!(lease.read().await.unwrap().holder, "a");
}

// ---- Wake-ups, the shared key, the schema --------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_wakes_a_listener_with_its_last_revision() {
    let (_server, db) = fresh();
    let fence = leased_fence(&db.url, "a");
    let url = db.url.clone();
    let journal = Arc::new(blocking(move || PostgresJournal::connect(&url, fence).unwrap()).await);
    let mut woken = wakeup::listen(&db.url);
    // The first wake-up says "listening": read again from where you are.
    tokio::time::timeout(LIMIT, woken.changed())
        .await
        .expect("the listener connects")
        .expect("the listener runs");
    let j = Arc::clone(&journal);
    blocking(move || append(&*j, &[1, 2, 3]).unwrap()).await;
    tokio::time::timeout(LIMIT, woken.wait_for(|&revision| revision == 3))
        .await
        .expect("the append wakes the listener")
        .expect("the listener runs");
    let j = Arc::clone(&journal);
    blocking(move || append(&*j, &[4]).unwrap()).await;
    tokio::time::timeout(LIMIT, woken.wait_for(|&revision| revision == 4))
        .await
        .expect("the next append wakes it again")
        .expect("the listener runs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_whose_connection_dies_reconnects_and_says_so() {
    let (server, db) = fresh();
    let mut woken = wakeup::listen(&db.url);
    tokio::time::timeout(LIMIT, woken.changed())
        .await
        .expect("the listener connects")
        .expect("the listener runs");
    let listener = "SELECT pid FROM pg_stat_activity
         WHERE datname = current_database() AND application_name = 'switchboard-wakeup'";
    let (s, name) = (Arc::clone(&server), db.name.clone());
    let first = blocking(move || s.psql(&name, listener)).await;
    assert!(!first.is_empty(), "the listener has a session");
    let (s, name) = (Arc::clone(&server), db.name.clone());
    let killed =
        blocking(move || s.psql(&name, &format!("SELECT pg_terminate_backend({first})"))).await;
    assert_eq!(killed, "t");

    // Back on a new session, it bumps the value: whatever was notified meanwhile is read again.
    tokio::time::timeout(LIMIT, woken.changed())
        .await
        .expect("the listener reconnects")
        .expect("the listener runs");
    assert_eq!(*woken.borrow_and_update(), 0, "a bump, not a revision");
    let fence = leased_fence(&db.url, "a");
    let url = db.url.clone();
    blocking(move || {
        let journal = PostgresJournal::connect(&url, fence).unwrap();
        append(&journal, &[1, 2]).unwrap();
    })
    .await;
    tokio::time::timeout(LIMIT, woken.wait_for(|&revision| revision == 2))
        .await
        .expect("the new session is woken by an append")
        .expect("the listener runs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_starting_at_once_share_one_signing_key() {
    let (_server, db) = fresh();
    let (first, second) = tokio::join!(
        shared_signing_key(&db.url, LIMIT),
        shared_signing_key(&db.url, LIMIT)
    );
    let (first, second) = (first.unwrap(), second.unwrap());
    assert_eq!(first.kid(), second.kid());
    let later = shared_signing_key(&db.url, LIMIT).await.unwrap();
    assert_eq!(later.kid(), first.kid());
    // Another cluster (database) has a key of its own.
    let (_server, other) = fresh();
    let theirs = shared_signing_key(&other.url, LIMIT).await.unwrap();
    assert_ne!(theirs.kid(), first.kid());
}

#[test]
fn journals_starting_at_once_on_an_empty_database_all_start() {
    let (_server, db) = fresh();
    // Each creates the schema if it is missing, all at the same moment.
    let fence = Fence::default();
    let starts: Vec<_> = (0..4)
        .map(|_| {
            let (url, fence) = (db.url.clone(), fence.clone());
            std::thread::spawn(move || PostgresJournal::connect(&url, fence))
        })
        .collect();
    let journals: Vec<PostgresJournal> = starts
        .into_iter()
        .map(|start| start.join().unwrap().expect("every node starts"))
        .collect();
    fence.hold(
        leased_fence(&db.url, "a")
            .held()
            .expect("the lease is taken"),
    );
    append(&journals[0], &[1]).unwrap();
    for journal in &journals {
        assert_eq!(journal.last_revision().unwrap(), 1);
    }
}

#[test]
fn a_database_that_is_not_there_fails_the_start_with_an_open_error() {
    let (server, _db) = fresh();
    let url = server.database_url("no_such_database");
    let err = PostgresJournal::connect(&url, Fence::default()).err();
    assert!(matches!(err, Some(StoreError::Open { .. })), "{err:?}");
}
