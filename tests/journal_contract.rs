//! The `Journal` contract: one set of tests that every store passes, so the engine can rely on
//! the same behaviour whichever journal it is given.
//!
//! A store joins with one line at `journal_contract!` below, after implementing `Store` (a
//! fresh journal per test) and, if its journal outlives the process, `DurableStore` (reopen,
//! crash, crash during an append). Each line makes a module of `#[test]`s named after the
//! store, so `cargo test --test journal_contract sqlite::` runs one store's contract. The cases
//! that need a journal to outlive the process are generated only for stores marked `durable`:
//! the memory store's module simply has no such tests.
//!
//! Every record names its actor (`agent:<id>`, `account:<id>`, or the engine for timers), which
//! the journal keeps with the event. The SQLite journal's own cases, after the contract, check
//! the `actor` column the server writes and the upgrade of a schema-1 journal (which had none).

mod common;

use std::fs;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use switchboard::domain::routing::model::{Task, TaskSpec, TaskState};
use switchboard::domain::{Actor, ClientId, Event, Record, Revision};
use switchboard::store::{
    ClosedTask, Fence, HistoryQuery, Journal, MemoryJournal, PostgresJournal, RememberedRequest,
    Retention, SqliteJournal, StoreError, StoredSnapshot,
};
use tempfile::TempDir;
use uuid::Uuid;

use crate::common::postgres::{PgDatabase, PgServer, SqlSession, leased_fence, wait_for};

/// One `#[test]` per case, each with a store of its own.
macro_rules! cases {
    ($store:expr; $($case:ident),+ $(,)?) => {
        $(
            #[test]
            fn $case() {
                let mut store = $store;
                super::$case(&mut store);
            }
        )+
    };
}

macro_rules! every_store_cases {
    ($store:expr) => {
        cases!($store;
            an_empty_journal_has_nothing,
            reads_ranges_from_a_revision_up_to_a_limit,
            refuses_a_batch_that_does_not_follow_and_keeps_nothing_of_it,
            remembers_requests_with_their_batch_oldest_first,
            remembering_a_request_id_again_replaces_it,
            the_latest_snapshot_is_the_newest_saved,
            the_snapshot_before_the_latest_stays_with_the_events_after_it,
            compaction_keeps_the_retained_events_behind_the_snapshot,
            compaction_keeps_every_event_after_the_snapshot,
            compacting_every_event_keeps_the_revisions_going,
            compaction_forgets_requests_older_than_the_cutoff,
            every_record_keeps_its_actor,
            the_history_finds_closed_tasks_by_id_and_pages_them_in_closing_order,
            a_task_id_closed_again_replaces_its_history_entry,
            compaction_forgets_history_closed_before_the_cutoff,
        );
    };
}

macro_rules! durable_store_cases {
    ($store:expr) => {
        cases!($store;
            everything_survives_a_reopen_with_or_without_close,
            compacted_revisions_survive_a_reopen,
            the_previous_snapshot_survives_a_reopen,
            every_append_survives_a_crash,
            a_crash_during_an_append_keeps_every_earlier_batch_and_nothing_of_it,
        );
    };
}

/// `journal_contract!(name, store)` runs every store's cases against `store` (an expression
/// evaluated once per test); `journal_contract!(name, store, durable)` adds the durable cases.
macro_rules! journal_contract {
    ($name:ident, $store:expr) => {
        mod $name {
            use super::*;
            every_store_cases!($store);
        }
    };
    ($name:ident, $store:expr, durable) => {
        mod $name {
            use super::*;
            every_store_cases!($store);
            durable_store_cases!($store);
        }
    };
}

journal_contract!(memory, MemoryStore);
journal_contract!(sqlite, SqliteStore::new(), durable);
journal_contract!(postgres, PgStore::new(), durable);

// ---- The stores ----------------------------------------------------------------------------

/// A store under test: it opens the journal a test uses, empty.
trait Store {
    fn open(&self) -> Box<dyn Journal>;
}

/// A store whose journal outlives the process that wrote it.
trait DurableStore: Store {
    /// Opens the same data again, as the next start does; the caller has dropped the journal
    /// it had (with or without `close`).
    fn reopen(&mut self) -> Box<dyn Journal>;

    /// The process dies with `journal` open, right after its last append returned: returns
    /// the journal the next start opens.
    fn crash(&mut self, journal: Box<dyn Journal>) -> Box<dyn Journal>;

    /// The process dies while `journal` is writing this append, before it returns: returns
    /// the journal the next start opens.
    fn crash_during_append(
        &mut self,
        journal: Box<dyn Journal>,
        records: &[&Record],
        requests: &[&RememberedRequest],
    ) -> Box<dyn Journal>;
}

struct MemoryStore;

impl Store for MemoryStore {
    fn open(&self) -> Box<dyn Journal> {
        Box::new(MemoryJournal::new())
    }
}

/// A data directory in a temporary directory. A crash is a copy of the data directory taken
/// while the journal is open (what the disk holds when the process dies), which the next
/// start opens: the original is then dropped, and whatever its closing does is not seen.
struct SqliteStore {
    root: TempDir,
    data_dir: PathBuf,
    crashes: usize,
}

impl SqliteStore {
    fn new() -> Self {
        let root = tempfile::tempdir().expect("temporary directory");
        let data_dir = root.path().join("data");
        Self {
            root,
            data_dir,
            crashes: 0,
        }
    }

    /// Copies the data directory as it is now, and makes the copy the one opened next.
    fn take_crash_image(&mut self) -> PathBuf {
        self.crashes += 1;
        let image = self
            .root
            .path()
            .join(format!("after-crash-{}", self.crashes));
        fs::create_dir(&image).expect("crash image directory");
        for entry in fs::read_dir(&self.data_dir).expect("data directory") {
            let entry = entry.expect("data directory entry");
            fs::copy(entry.path(), image.join(entry.file_name())).expect("copy a data file");
        }
        self.data_dir = image.clone();
        image
    }
}

impl Store for SqliteStore {
    fn open(&self) -> Box<dyn Journal> {
        Box::new(SqliteJournal::open(&self.data_dir).expect("open the SQLite journal"))
    }
}

impl DurableStore for SqliteStore {
    fn reopen(&mut self) -> Box<dyn Journal> {
        self.open()
    }

    fn crash(&mut self, journal: Box<dyn Journal>) -> Box<dyn Journal> {
        self.take_crash_image();
        drop(journal);
        self.open()
    }

    fn crash_during_append(
        &mut self,
        journal: Box<dyn Journal>,
        records: &[&Record],
        requests: &[&RememberedRequest],
    ) -> Box<dyn Journal> {
        // The append is written in full, then its commit is torn in the crash image: SQLite
        // writes a commit as WAL frames, the last one marking the commit, and a crash cuts
        // the last frame short.
        journal
            .append(records, requests, &[])
            .expect("the append to tear");
        let image = self.take_crash_image();
        tear_last_wal_frame(&image);
        drop(journal);
        self.open()
    }
}

/// A fresh database on the binary's PostgreSQL server, whose lease the store holds: its
/// journals write under that epoch. The next start is a new `PostgresJournal` on the same
/// database. A crash drops the journal without `close` (its connections die with it); a crash
/// during an append kills the journal's session on the server while its transaction is under
/// way, after it has inserted rows: the server rolls it back, as it does when a process dies.
struct PgStore {
    server: Arc<PgServer>,
    database: PgDatabase,
    fence: Fence,
}

impl PgStore {
    fn new() -> Self {
        let server = PgServer::shared();
        let database = server.fresh_database();
        let fence = leased_fence(&database.url, "contract");
        Self {
            server,
            database,
            fence,
        }
    }
}

impl Store for PgStore {
    fn open(&self) -> Box<dyn Journal> {
        Box::new(
            PostgresJournal::connect(&self.database.url, self.fence.clone())
                .expect("connect the PostgreSQL journal"),
        )
    }
}

impl DurableStore for PgStore {
    fn reopen(&mut self) -> Box<dyn Journal> {
        self.open()
    }

    fn crash(&mut self, journal: Box<dyn Journal>) -> Box<dyn Journal> {
        drop(journal);
        self.open()
    }

    fn crash_during_append(
        &mut self,
        journal: Box<dyn Journal>,
        records: &[&Record],
        requests: &[&RememberedRequest],
    ) -> Box<dyn Journal> {
        // A session of the test's own holds the batch's last revision, uncommitted: the
        // append inserts the rows before it, then waits on that one, in the middle of its
        // transaction. Its session is then killed, as the death of its process would.
        let last = records.last().expect("a batch to tear").revision;
        let blocker = SqlSession::connect(&self.database.url);
        blocker.execute(&format!(
            "BEGIN; INSERT INTO events (revision, time_ms, body) VALUES ({last}, 0, 'blocker')"
        ));
        let waiting_writer = "SELECT pid FROM pg_stat_activity
             WHERE datname = current_database() AND application_name = 'switchboard-journal'
               AND wait_event_type = 'Lock' AND query LIKE 'INSERT INTO events%'";
        let appended = std::thread::scope(|scope| {
            let append = scope.spawn(|| journal.append(records, requests, &[]));
            let mut pid = String::new();
            wait_for(
                "the append to wait inside its transaction",
                Duration::from_secs(60),
                || {
                    pid = self.server.psql(&self.database.name, waiting_writer);
                    !pid.is_empty()
                },
            );
            let killed = self.server.psql(
                &self.database.name,
                &format!("SELECT pg_terminate_backend({pid})"),
            );
            assert_eq!(killed, "t", "the journal's session is killed");
            append.join().expect("the append returns")
        });
        assert!(
            appended.is_err(),
            "an append whose session died mid-transaction cannot have succeeded"
        );
        blocker.execute("ROLLBACK");
        drop(journal);
        self.open()
    }
}

/// Cuts the last frame of the data directory's WAL in half. The frames are read, not assumed:
/// the last frame of the WAL's current generation (the frames carrying the header's salts;
/// any after them are stale leftovers of an earlier generation) must mark a commit.
fn tear_last_wal_frame(data_dir: &Path) {
    const WAL_HEADER: usize = 32;
    const FRAME_HEADER: usize = 24;
    let wal = fs::read_dir(data_dir)
        .expect("data directory")
        .map(|entry| entry.expect("data directory entry").path())
        .find(|path| path.to_string_lossy().ends_with("-wal"))
        .expect("the journal has a WAL file");
    let bytes = fs::read(&wal).expect("read the WAL");
    assert!(bytes.len() > WAL_HEADER, "the WAL is empty");
    let word = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
    let page_size = word(8) as usize;
    let salts = &bytes[16..24];
    let frame_len = FRAME_HEADER + page_size;
    let frames = (0..)
        .map(|i| WAL_HEADER + i * frame_len)
        .take_while(|&at| at + frame_len <= bytes.len() && &bytes[at + 8..at + 16] == salts)
        .count();
    assert!(
        frames > 0,
        "the WAL holds no frame: the append was checkpointed"
    );
    let last = WAL_HEADER + (frames - 1) * frame_len;
    assert_ne!(
        word(last + 4),
        0,
        "the WAL's last frame does not mark a commit"
    );
    let torn = last + FRAME_HEADER + page_size / 2;
    fs::OpenOptions::new()
        .write(true)
        .open(&wal)
        .and_then(|file| file.set_len(torn as u64))
        .expect("truncate the WAL");
}

// ---- Helpers -------------------------------------------------------------------------------

/// A record whose event, time and actor follow from its revision, so a test can rebuild it.
/// The actors take turns: the engine, an agent, an account.
fn record(revision: Revision) -> Record {
    let actor = match revision % 3 {
        0 => Actor::Engine,
        1 => Actor::Agent(format!("agent-{revision}")),
        _ => Actor::Account(format!("account.{revision}@example")),
    };
    Record {
        revision,
        time_ms: 1_000 + revision,
        actor: actor.clone(),
        event: Event::ClientRegistered {
            client_id: ClientId(Uuid::from_u128(u128::from(revision))),
            client_name: format!("desk \"{revision}\" – ü"),
            owner: actor.clone(),
        },
    }
}

fn records(revisions: RangeInclusive<Revision>) -> Vec<Record> {
    revisions.map(record).collect()
}

fn request(id: &str, revision: Revision, time_ms: u64) -> RememberedRequest {
    RememberedRequest {
        request_id: id.to_owned(),
        fingerprint: format!("fingerprint of {id}"),
        answer: format!(r#"{{"answer":"{id}","revision":{revision}}}"#),
        revision,
        time_ms,
    }
}

fn snapshot(revision: Revision, body: &str) -> StoredSnapshot {
    StoredSnapshot {
        revision,
        time_ms: 50_000 + revision,
        body: body.to_owned(),
    }
}

fn append(journal: &dyn Journal, revisions: RangeInclusive<Revision>) {
    append_with(journal, revisions, &[]);
}

fn append_with(
    journal: &dyn Journal,
    revisions: RangeInclusive<Revision>,
    requests: &[&RememberedRequest],
) {
    let batch = records(revisions);
    let refs: Vec<&Record> = batch.iter().collect();
    journal.append(&refs, requests, &[]).expect("append");
}

/// The error an append of these revisions gets.
fn refused(journal: &dyn Journal, revisions: &[Revision]) -> StoreError {
    let batch: Vec<Record> = revisions.iter().copied().map(record).collect();
    let refs: Vec<&Record> = batch.iter().collect();
    journal
        .append(&refs, &[], &[])
        .expect_err("the append is refused")
}

fn revisions_read(journal: &dyn Journal, from: Revision, limit: usize) -> Vec<Revision> {
    let read = journal.read_from(from, limit).expect("read_from");
    read.iter().map(|r| r.revision).collect()
}

fn keep_everything() -> Retention {
    Retention {
        events: u64::MAX,
        requests_since: 0,
        history_since: 0,
    }
}

fn keep_events(events: u64) -> Retention {
    Retention {
        events,
        requests_since: 0,
        history_since: 0,
    }
}

/// All a journal shows through the trait, to compare before and after a reopen.
#[derive(Debug, PartialEq)]
struct Contents {
    first: Revision,
    last: Revision,
    records: Vec<Record>,
    snapshot: Option<StoredSnapshot>,
    previous_snapshot: Option<StoredSnapshot>,
    requests: Vec<RememberedRequest>,
    history: Vec<ClosedTask>,
}

fn contents(journal: &dyn Journal) -> Contents {
    Contents {
        first: journal.first_revision().expect("first_revision"),
        last: journal.last_revision().expect("last_revision"),
        records: journal.read_from(0, usize::MAX).expect("read_from"),
        snapshot: journal.latest_snapshot().expect("latest_snapshot"),
        previous_snapshot: journal
            .snapshot_before(Revision::MAX)
            .and_then(|latest| match latest {
                Some(latest) => journal.snapshot_before(latest.revision),
                None => Ok(None),
            })
            .expect("snapshot_before"),
        requests: journal.remembered_requests(0).expect("remembered_requests"),
        history: history(journal, 0, Revision::MAX),
    }
}

/// A task as it closed at revision `revision`, time `closed_at`.
fn closed(task_id: &str, revision: Revision, closed_at: u64) -> ClosedTask {
    let spec = TaskSpec {
        task_id: task_id.into(),
        request_id: String::new(),
        mrd: "chat".into(),
        queue: "default".into(),
        priority: 5,
        conversation_id: String::new(),
        last_agent_id: String::new(),
        labels: vec![],
        attributes: Default::default(),
        created_by: Actor::Engine,
        callback_for: String::new(),
        preferred_agents: Vec::new(),
        preferred_timeout_ms: 0,
    };
    ClosedTask {
        revision,
        closed_at,
        task: Task {
            spec,
            state: TaskState::Closed,
            priority: 5,
            close_reason: None,
            created_at: closed_at.saturating_sub(10),
            queued_at: closed_at.saturating_sub(10),
            seq: revision,
            preferred_deadline: None,
            arrival_seq: revision,
            step: 0,
            step_deadline: None,
            ttl_deadline: None,
            offer: None,
            owner: Some("agent-1".into()),
            participants: Default::default(),
            wrap_deadline: None,
            declined_by: Default::default(),
            updated_at: closed_at,
            attempts: 0,
            answered_at: None,
            callback_task_id: None,
            disposition: Default::default(),
        },
    }
}

/// Writes closed tasks to the history, with no records of their own.
fn close_tasks(journal: &dyn Journal, tasks: &[ClosedTask]) {
    let refs: Vec<&ClosedTask> = tasks.iter().collect();
    journal
        .append(&[], &[], &refs)
        .expect("append closed tasks");
}

/// Everything the history has closed in `[from, until)`, a page of 2 at a time.
fn history(journal: &dyn Journal, from: u64, until: u64) -> Vec<ClosedTask> {
    let mut all = Vec::new();
    let mut after = 0;
    loop {
        let page = journal
            .closed_tasks(HistoryQuery {
                closed_from: from,
                closed_until: until,
                after,
                limit: 2,
            })
            .expect("closed_tasks");
        let Some(last) = page.last() else {
            return all;
        };
        after = last.revision;
        all.extend(page);
    }
}

fn ids(tasks: &[ClosedTask]) -> Vec<&str> {
    tasks.iter().map(|c| c.task.spec.task_id.as_str()).collect()
}

// ---- Every store ---------------------------------------------------------------------------

fn the_history_finds_closed_tasks_by_id_and_pages_them_in_closing_order(store: &mut impl Store) {
    let journal = store.open();
    assert_eq!(journal.closed_task("t-1").unwrap(), None);
    // Written with the records that close them, in the same append.
    let batch = records(1..=3);
    let refs: Vec<&Record> = batch.iter().collect();
    let (a, b) = (closed("t-b", 2, 2_000), closed("t-a", 3, 3_000));
    journal.append(&refs, &[], &[&a, &b]).unwrap();
    close_tasks(
        &*journal,
        &[closed("t-c", 7, 3_000), closed("t-d", 9, 9_000)],
    );
    assert_eq!(journal.closed_task("t-a").unwrap(), Some(b.clone()));
    assert_eq!(journal.closed_task("t-z").unwrap(), None);
    assert_eq!(
        ids(&history(&*journal, 0, u64::MAX)),
        ["t-b", "t-a", "t-c", "t-d"]
    );
    // `closed_from` is inclusive, `closed_until` exclusive.
    assert_eq!(ids(&history(&*journal, 3_000, 9_000)), ["t-a", "t-c"]);
    assert!(history(&*journal, 9_001, u64::MAX).is_empty());
    let after_a = journal
        .closed_tasks(HistoryQuery {
            closed_from: 0,
            closed_until: u64::MAX,
            after: 3,
            limit: 10,
        })
        .unwrap();
    assert_eq!(ids(&after_a), ["t-c", "t-d"]);
}

fn a_task_id_closed_again_replaces_its_history_entry(store: &mut impl Store) {
    let journal = store.open();
    close_tasks(
        &*journal,
        &[closed("t-1", 2, 2_000), closed("t-2", 3, 3_000)],
    );
    let again = closed("t-1", 8, 8_000);
    close_tasks(&*journal, std::slice::from_ref(&again));
    assert_eq!(journal.closed_task("t-1").unwrap(), Some(again));
    assert_eq!(ids(&history(&*journal, 0, u64::MAX)), ["t-2", "t-1"]);
}

fn compaction_forgets_history_closed_before_the_cutoff(store: &mut impl Store) {
    let journal = store.open();
    append(&*journal, 1..=3);
    close_tasks(
        &*journal,
        &[
            closed("old", 1, 1_000),
            closed("at-cutoff", 2, 2_000),
            closed("young", 3, 3_000),
        ],
    );
    let retention = Retention {
        events: u64::MAX,
        requests_since: 0,
        history_since: 2_000,
    };
    journal
        .save_snapshot(&snapshot(3, "{}"), retention)
        .unwrap();
    assert_eq!(
        ids(&history(&*journal, 0, u64::MAX)),
        ["at-cutoff", "young"]
    );
    assert_eq!(journal.closed_task("old").unwrap(), None);
}

fn an_empty_journal_has_nothing(store: &mut impl Store) {
    let journal = store.open();
    assert_eq!(journal.last_revision().unwrap(), 0);
    assert_eq!(journal.first_revision().unwrap(), 1);
    assert!(journal.read_from(0, 10).unwrap().is_empty());
    assert!(journal.read_from(1, usize::MAX).unwrap().is_empty());
    assert_eq!(journal.latest_snapshot().unwrap(), None);
    assert!(journal.remembered_requests(0).unwrap().is_empty());
    // An append with nothing in it changes nothing.
    journal.append(&[], &[], &[]).unwrap();
    assert_eq!(journal.last_revision().unwrap(), 0);
}

fn reads_ranges_from_a_revision_up_to_a_limit(store: &mut impl Store) {
    let journal = store.open();
    append(&*journal, 1..=3);
    append(&*journal, 4..=6);
    assert_eq!(journal.first_revision().unwrap(), 1);
    assert_eq!(journal.last_revision().unwrap(), 6);
    // Records come back as they went in, across batches.
    assert_eq!(journal.read_from(1, usize::MAX).unwrap(), records(1..=6));
    assert_eq!(journal.read_from(0, 100).unwrap(), records(1..=6));
    assert_eq!(revisions_read(&*journal, 3, 2), [3, 4]);
    assert_eq!(revisions_read(&*journal, 1, 1), [1]);
    assert_eq!(revisions_read(&*journal, 6, 10), [6]);
    assert_eq!(revisions_read(&*journal, 5, 2), [5, 6]);
    assert!(revisions_read(&*journal, 2, 0).is_empty());
    assert!(revisions_read(&*journal, 7, 10).is_empty());
    assert!(revisions_read(&*journal, 1_000, 10).is_empty());
}

fn refuses_a_batch_that_does_not_follow_and_keeps_nothing_of_it(store: &mut impl Store) {
    let journal = store.open();
    let gap = |err: StoreError| match err {
        StoreError::Gap { expected, got } => (expected, got),
        other => panic!("expected a gap, got {other:?}"),
    };
    // The first revision is 1.
    assert_eq!(gap(refused(&*journal, &[2])), (1, 2));
    assert_eq!(gap(refused(&*journal, &[0])), (1, 0));
    append(&*journal, 1..=3);
    // Skipping ahead, repeating the last, going back.
    assert_eq!(gap(refused(&*journal, &[5])), (4, 5));
    assert_eq!(gap(refused(&*journal, &[3])), (4, 3));
    assert_eq!(gap(refused(&*journal, &[1, 2])), (4, 1));
    // A gap inside a batch refuses the whole batch, and its requests.
    let remembered = request("in-the-refused-batch", 4, 9_000);
    let batch = [record(4), record(6)];
    let err = journal
        .append(&[&batch[0], &batch[1]], &[&remembered], &[])
        .expect_err("a batch with a gap inside");
    assert_eq!(gap(err), (5, 6));
    assert_eq!(journal.last_revision().unwrap(), 3);
    assert_eq!(journal.read_from(0, usize::MAX).unwrap(), records(1..=3));
    assert!(journal.remembered_requests(0).unwrap().is_empty());
    // The revision that follows is still welcome.
    append(&*journal, 4..=5);
    assert_eq!(journal.read_from(0, usize::MAX).unwrap(), records(1..=5));
}

fn remembers_requests_with_their_batch_oldest_first(store: &mut impl Store) {
    let journal = store.open();
    // Ids sort the other way round from their times: the order must come from the times.
    let first = request("c-first", 2, 5_000);
    let second = request("b-second", 3, 6_000);
    let third = request("a-third", 3, 7_000);
    append_with(&*journal, 1..=2, &[&first]);
    append_with(&*journal, 3..=3, &[&second]);
    // A batch of requests alone, as for a retried command that changed nothing.
    journal.append(&[], &[&third], &[]).unwrap();
    assert_eq!(journal.last_revision().unwrap(), 3);
    assert_eq!(
        journal.remembered_requests(0).unwrap(),
        [first.clone(), second.clone(), third.clone()]
    );
    // `since` is inclusive.
    assert_eq!(
        journal.remembered_requests(6_000).unwrap(),
        [second, third.clone()]
    );
    assert_eq!(journal.remembered_requests(6_001).unwrap(), [third]);
    assert!(journal.remembered_requests(7_001).unwrap().is_empty());
}

fn remembering_a_request_id_again_replaces_it(store: &mut impl Store) {
    let journal = store.open();
    let other = request("other", 1, 1_500);
    append_with(&*journal, 1..=1, &[&request("reused", 1, 1_000), &other]);
    // Once forgotten by the engine, an id may be used again: the journal keeps the new answer.
    let again = request("reused", 2, 2_000);
    append_with(&*journal, 2..=2, &[&again]);
    assert_eq!(journal.remembered_requests(0).unwrap(), [other, again]);
}

fn the_latest_snapshot_is_the_newest_saved(store: &mut impl Store) {
    let journal = store.open();
    append(&*journal, 1..=6);
    let at_three = snapshot(3, r#"{"at":3}"#);
    journal.save_snapshot(&at_three, keep_everything()).unwrap();
    assert_eq!(journal.latest_snapshot().unwrap(), Some(at_three.clone()));
    // A newer one replaces it.
    let at_five = snapshot(5, r#"{"at":5}"#);
    journal.save_snapshot(&at_five, keep_everything()).unwrap();
    assert_eq!(journal.latest_snapshot().unwrap(), Some(at_five.clone()));
    // One at the same revision replaces it too.
    let at_five_again = snapshot(5, r#"{"at":5,"again":true}"#);
    journal
        .save_snapshot(&at_five_again, keep_everything())
        .unwrap();
    assert_eq!(
        journal.latest_snapshot().unwrap(),
        Some(at_five_again.clone())
    );
    // An older one does not.
    journal.save_snapshot(&at_three, keep_everything()).unwrap();
    assert_eq!(journal.latest_snapshot().unwrap(), Some(at_five_again));
    // Keeping everything drops no event.
    assert_eq!(journal.first_revision().unwrap(), 1);
    assert_eq!(journal.read_from(0, usize::MAX).unwrap(), records(1..=6));
}

fn the_snapshot_before_the_latest_stays_with_the_events_after_it(store: &mut impl Store) {
    let journal = store.open();
    append(&*journal, 1..=12);
    assert_eq!(journal.snapshot_before(Revision::MAX).unwrap(), None);
    let at_four = snapshot(4, r#"{"at":4}"#);
    journal.save_snapshot(&at_four, keep_events(0)).unwrap();
    assert_eq!(journal.snapshot_before(4).unwrap(), None);
    assert_eq!(journal.first_revision().unwrap(), 5);
    // A newer snapshot keeps the one before it, and every event after that one: a latest
    // snapshot that does not decode can be replaced by it and them.
    let at_eight = snapshot(8, r#"{"at":8}"#);
    journal.save_snapshot(&at_eight, keep_events(0)).unwrap();
    assert_eq!(journal.latest_snapshot().unwrap(), Some(at_eight.clone()));
    assert_eq!(journal.snapshot_before(8).unwrap(), Some(at_four.clone()));
    assert_eq!(journal.snapshot_before(5).unwrap(), Some(at_four.clone()));
    assert_eq!(journal.snapshot_before(4).unwrap(), None);
    assert_eq!(
        journal.snapshot_before(Revision::MAX).unwrap(),
        Some(at_eight.clone())
    );
    assert_eq!(journal.first_revision().unwrap(), 5);
    assert_eq!(journal.read_from(0, usize::MAX).unwrap(), records(5..=12));
    // The next one lets the oldest go, and the events only it needed.
    let at_ten = snapshot(10, r#"{"at":10}"#);
    journal.save_snapshot(&at_ten, keep_events(0)).unwrap();
    assert_eq!(journal.snapshot_before(10).unwrap(), Some(at_eight));
    assert_eq!(journal.snapshot_before(8).unwrap(), None);
    assert_eq!(journal.first_revision().unwrap(), 9);
    assert_eq!(journal.read_from(0, usize::MAX).unwrap(), records(9..=12));
    // Retention still keeps more when it asks for more.
    journal
        .save_snapshot(&snapshot(12, "{}"), keep_events(10))
        .unwrap();
    assert_eq!(journal.first_revision().unwrap(), 9);
    assert_eq!(journal.snapshot_before(12).unwrap(), Some(at_ten));
}

fn compaction_keeps_the_retained_events_behind_the_snapshot(store: &mut impl Store) {
    let journal = store.open();
    append(&*journal, 1..=10);
    journal
        .save_snapshot(&snapshot(10, "{}"), keep_events(3))
        .unwrap();
    assert_eq!(journal.first_revision().unwrap(), 8);
    assert_eq!(journal.last_revision().unwrap(), 10);
    assert_eq!(journal.read_from(0, usize::MAX).unwrap(), records(8..=10));
    assert_eq!(revisions_read(&*journal, 9, 10), [9, 10]);
    // More retained events than there are drops none.
    journal
        .save_snapshot(&snapshot(10, "{}"), keep_events(100))
        .unwrap();
    assert_eq!(journal.first_revision().unwrap(), 8);
    append(&*journal, 11..=11);
    assert_eq!(journal.read_from(0, usize::MAX).unwrap(), records(8..=11));
}

fn compaction_keeps_every_event_after_the_snapshot(store: &mut impl Store) {
    let journal = store.open();
    append(&*journal, 1..=10);
    journal
        .save_snapshot(&snapshot(6, "{}"), keep_events(0))
        .unwrap();
    assert_eq!(journal.first_revision().unwrap(), 7);
    assert_eq!(journal.read_from(0, usize::MAX).unwrap(), records(7..=10));
    assert_eq!(journal.last_revision().unwrap(), 10);
}

fn compacting_every_event_keeps_the_revisions_going(store: &mut impl Store) {
    let journal = store.open();
    append(&*journal, 1..=10);
    journal
        .save_snapshot(&snapshot(10, "{}"), keep_events(0))
        .unwrap();
    // No event is left, yet the journal still knows where it is.
    assert_eq!(journal.last_revision().unwrap(), 10);
    assert_eq!(journal.first_revision().unwrap(), 11);
    assert!(journal.read_from(0, usize::MAX).unwrap().is_empty());
    assert!(matches!(
        refused(&*journal, &[1]),
        StoreError::Gap {
            expected: 11,
            got: 1
        }
    ));
    append(&*journal, 11..=12);
    assert_eq!(journal.first_revision().unwrap(), 11);
    assert_eq!(journal.read_from(0, usize::MAX).unwrap(), records(11..=12));
}

fn compaction_forgets_requests_older_than_the_cutoff(store: &mut impl Store) {
    let journal = store.open();
    let old = request("old", 1, 1_000);
    let at_cutoff = request("at-cutoff", 2, 2_000);
    let young = request("young", 3, 3_000);
    append_with(&*journal, 1..=1, &[&old]);
    append_with(&*journal, 2..=3, &[&at_cutoff, &young]);
    let retention = Retention {
        events: u64::MAX,
        requests_since: 2_000,
        history_since: 0,
    };
    journal
        .save_snapshot(&snapshot(3, "{}"), retention)
        .unwrap();
    assert_eq!(journal.remembered_requests(0).unwrap(), [at_cutoff, young]);
    // Events are compacted by their own rule, not by the requests' cutoff.
    assert_eq!(journal.first_revision().unwrap(), 1);
}

fn every_record_keeps_its_actor(store: &mut impl Store) {
    let journal = store.open();
    let actors = [
        Actor::Agent("ana".into()),
        Actor::Account("admin".into()),
        Actor::Engine,
        Actor::Agent("x.y_z@example-1".into()),
        Actor::Account("channel@example.com".into()),
    ];
    let batch: Vec<Record> = actors
        .iter()
        .zip(1..)
        .map(|(actor, revision)| Record {
            actor: actor.clone(),
            ..record(revision)
        })
        .collect();
    let refs: Vec<&Record> = batch.iter().collect();
    journal.append(&refs, &[], &[]).unwrap();
    let read = journal.read_from(1, usize::MAX).unwrap();
    assert_eq!(read, batch);
    let read_actors: Vec<Actor> = read.into_iter().map(|r| r.actor).collect();
    assert_eq!(
        read_actors, actors,
        "each record with its own actor, in order"
    );
    // Compaction keeps the actors of the events it keeps.
    journal
        .save_snapshot(&snapshot(5, "{}"), keep_events(2))
        .unwrap();
    assert_eq!(journal.read_from(0, usize::MAX).unwrap(), batch[3..]);
}

// ---- Durable stores ------------------------------------------------------------------------

/// Events, requests, a snapshot and a compaction: something of everything a journal keeps.
fn fill(journal: &dyn Journal) {
    append_with(journal, 1..=4, &[&request("one", 4, 1_000)]);
    close_tasks(journal, &[closed("t-1", 4, 1_000)]);
    append_with(journal, 5..=8, &[&request("two", 8, 2_000)]);
    let retention = Retention {
        events: 3,
        requests_since: 1_500,
        history_since: 0,
    };
    journal
        .save_snapshot(&snapshot(7, r#"{"state":7}"#), retention)
        .unwrap();
    append_with(journal, 9..=9, &[&request("three", 9, 3_000)]);
}

fn everything_survives_a_reopen_with_or_without_close(store: &mut impl DurableStore) {
    let journal = store.open();
    fill(&*journal);
    let before = contents(&*journal);
    assert_eq!(before.first, 6, "the compaction should have dropped 1..=5");
    journal.close().unwrap();
    drop(journal);

    let journal = store.reopen();
    assert_eq!(contents(&*journal), before, "after close and reopen");
    append(&*journal, 10..=10);
    let before = contents(&*journal);
    // Dropped without `close`, as when a start-up fails half-way.
    drop(journal);

    let journal = store.reopen();
    assert_eq!(contents(&*journal), before, "after a drop and reopen");
    assert_eq!(journal.read_from(0, usize::MAX).unwrap(), records(6..=10));
    assert!(matches!(
        refused(&*journal, &[12]),
        StoreError::Gap {
            expected: 11,
            got: 12
        }
    ));
    append(&*journal, 11..=11);
}

fn compacted_revisions_survive_a_reopen(store: &mut impl DurableStore) {
    let journal = store.open();
    append(&*journal, 1..=10);
    journal
        .save_snapshot(&snapshot(10, "{}"), keep_events(0))
        .unwrap();
    journal.close().unwrap();
    drop(journal);

    let journal = store.reopen();
    assert_eq!(journal.last_revision().unwrap(), 10);
    assert_eq!(journal.first_revision().unwrap(), 11);
    assert_eq!(journal.latest_snapshot().unwrap(), Some(snapshot(10, "{}")));
    append(&*journal, 11..=11);
    assert_eq!(journal.read_from(0, usize::MAX).unwrap(), records(11..=11));
}

fn the_previous_snapshot_survives_a_reopen(store: &mut impl DurableStore) {
    let journal = store.open();
    append(&*journal, 1..=10);
    journal
        .save_snapshot(&snapshot(4, r#"{"at":4}"#), keep_events(0))
        .unwrap();
    journal
        .save_snapshot(&snapshot(8, r#"{"at":8}"#), keep_events(0))
        .unwrap();
    let before = contents(&*journal);
    assert_eq!(before.previous_snapshot, Some(snapshot(4, r#"{"at":4}"#)));
    journal.close().unwrap();
    drop(journal);

    let journal = store.reopen();
    assert_eq!(contents(&*journal), before);
    assert_eq!(journal.first_revision().unwrap(), 5);
    assert_eq!(journal.read_from(0, usize::MAX).unwrap(), records(5..=10));
}

fn every_append_survives_a_crash(store: &mut impl DurableStore) {
    let journal = store.open();
    fill(&*journal);
    append(&*journal, 10..=12);
    let before = contents(&*journal);

    let journal = store.crash(journal);
    assert_eq!(contents(&*journal), before);
    append(&*journal, 13..=13);
    assert_eq!(journal.last_revision().unwrap(), 13);
}

fn a_crash_during_an_append_keeps_every_earlier_batch_and_nothing_of_it(
    store: &mut impl DurableStore,
) {
    let journal = store.open();
    append_with(&*journal, 1..=3, &[&request("first", 3, 1_000)]);
    append_with(&*journal, 4..=6, &[&request("second", 6, 2_000)]);
    let before = contents(&*journal);

    let torn = records(7..=9);
    let torn_refs: Vec<&Record> = torn.iter().collect();
    let journal = store.crash_during_append(journal, &torn_refs, &[&request("torn", 9, 3_000)]);
    assert_eq!(contents(&*journal), before, "after the crash");

    // Appending goes on from the last whole batch, without a gap.
    assert!(matches!(
        refused(&*journal, &[10]),
        StoreError::Gap {
            expected: 7,
            got: 10
        }
    ));
    append_with(&*journal, 7..=8, &[&request("after", 8, 4_000)]);
    let after = contents(&*journal);
    assert_eq!(after.records, records(1..=8));
    journal.close().unwrap();
    drop(journal);

    let journal = store.reopen();
    assert_eq!(
        contents(&*journal),
        after,
        "after a reopen that follows the crash"
    );
}

// ---- The SQLite journal's own: actors on disk, and the upgrade from schema 1 ---------------

mod sqlite_journal {
    use std::collections::BTreeSet;
    use std::time::Duration;

    use rusqlite::Connection;
    use switchboard::config::ServerConfig;
    use switchboard::domain::routing::model::RequeueReason;
    use switchboard::pb;
    use switchboard::pb::routing_service_client::RoutingServiceClient;
    use tokio_stream::StreamExt;

    use super::*;
    use crate::common::routing_setup::RoutingSetup;
    use crate::common::{TestServer, Who};

    /// The journal's file in a data directory.
    const JOURNAL_FILE: &str = "journal.sqlite3";

    /// The tables as schema version 1 had them: `events` without `actor`.
    const SCHEMA_1: &str = "
        CREATE TABLE journal_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE events (
            revision BIGINT PRIMARY KEY,
            time_ms BIGINT NOT NULL,
            body TEXT NOT NULL
        );
        CREATE TABLE snapshots (
            revision BIGINT PRIMARY KEY,
            time_ms BIGINT NOT NULL,
            body TEXT NOT NULL
        );
        CREATE TABLE requests (
            request_id TEXT PRIMARY KEY,
            fingerprint TEXT NOT NULL,
            answer TEXT NOT NULL,
            revision BIGINT NOT NULL,
            time_ms BIGINT NOT NULL
        );
        CREATE INDEX requests_by_time ON requests (time_ms);
        INSERT INTO journal_meta (key, value) VALUES ('schema_version', '1');";

    /// `(revision, actor)` as the `actor` column holds them.
    fn actor_column(data_dir: &Path) -> Vec<(Revision, String)> {
        let conn = Connection::open(data_dir.join(JOURNAL_FILE)).expect("open the journal file");
        let mut select = conn
            .prepare("SELECT revision, actor FROM events ORDER BY revision")
            .expect("events have an actor column");
        select
            .query_map([], |row| {
                Ok((from_sql(row.get::<_, i64>(0)?), row.get::<_, String>(1)?))
            })
            .expect("the query runs")
            .collect::<Result<_, _>>()
            .expect("the rows read")
    }

    fn schema_version(data_dir: &Path) -> String {
        Connection::open(data_dir.join(JOURNAL_FILE))
            .expect("open the journal file")
            .query_row(
                "SELECT value FROM journal_meta WHERE key = 'schema_version'",
                [],
                |row| row.get(0),
            )
            .expect("the journal has a schema version")
    }

    fn from_sql(value: i64) -> Revision {
        u64::try_from(value).expect("a revision is not negative")
    }

    #[test]
    fn the_actor_column_names_who_caused_each_event() {
        let dir = tempfile::tempdir().unwrap();
        let journal = SqliteJournal::open(dir.path()).unwrap();
        let actors = [
            Actor::Agent("ana".into()),
            Actor::Account("admin".into()),
            Actor::Engine,
        ];
        let batch: Vec<Record> = actors
            .iter()
            .zip(1..)
            .map(|(actor, revision)| Record {
                actor: actor.clone(),
                ..record(revision)
            })
            .collect();
        let refs: Vec<&Record> = batch.iter().collect();
        journal.append(&refs, &[], &[]).unwrap();
        journal.close().unwrap();
        drop(journal);

        assert_eq!(
            actor_column(dir.path()),
            [
                (1, "agent:ana".to_owned()),
                (2, "account:admin".to_owned()),
                (3, "engine".to_owned()),
            ]
        );
        assert_eq!(schema_version(dir.path()), "2");
        let journal = SqliteJournal::open(dir.path()).unwrap();
        assert_eq!(journal.read_from(1, usize::MAX).unwrap(), batch);
    }

    #[test]
    fn a_schema_1_journal_is_upgraded_on_open_with_its_events_the_engines() {
        let dir = tempfile::tempdir().unwrap();
        // A journal as a server of schema 1 left it: events, a snapshot, a remembered request.
        // Its events knew no principals at all: their bodies name no client owner either (which
        // reads as the engine).
        let old: Vec<Record> = records(1..=4)
            .into_iter()
            .map(|r| Record {
                actor: Actor::Engine,
                event: match r.event {
                    Event::ClientRegistered {
                        client_id,
                        client_name,
                        ..
                    } => Event::ClientRegistered {
                        client_id,
                        client_name,
                        owner: Actor::Engine,
                    },
                    other => other,
                },
                ..r
            })
            .collect();
        let schema_1_body = |event: &Event| {
            let mut body = serde_json::to_value(event).unwrap();
            body.as_object_mut()
                .expect("an event is a JSON object")
                .remove("owner")
                .expect("the event names its owner");
            body.to_string()
        };
        {
            let conn = Connection::open(dir.path().join(JOURNAL_FILE)).unwrap();
            conn.execute_batch(SCHEMA_1).unwrap();
            for r in &old {
                conn.execute(
                    "INSERT INTO events (revision, time_ms, body) VALUES (?1, ?2, ?3)",
                    rusqlite::params![
                        i64::try_from(r.revision).unwrap(),
                        i64::try_from(r.time_ms).unwrap(),
                        schema_1_body(&r.event)
                    ],
                )
                .unwrap();
            }
            conn.execute(
                "INSERT INTO snapshots (revision, time_ms, body) VALUES (2, 50002, '{\"at\":2}')",
                [],
            )
            .unwrap();
            conn.execute(
                "INSERT INTO requests (request_id, fingerprint, answer, revision, time_ms)
                 VALUES ('old-request', 'fingerprint of old-request', '{}', 3, 1000)",
                [],
            )
            .unwrap();
        }

        let journal = SqliteJournal::open(dir.path()).expect("a schema-1 journal opens");
        // Every old event is read as the engine's; nothing else about it changed.
        let as_engines = old.clone();
        assert_eq!(journal.read_from(0, usize::MAX).unwrap(), as_engines);
        assert_eq!(journal.first_revision().unwrap(), 1);
        assert_eq!(journal.last_revision().unwrap(), 4);
        assert_eq!(
            journal.latest_snapshot().unwrap(),
            Some(StoredSnapshot {
                revision: 2,
                time_ms: 50_002,
                body: r#"{"at":2}"#.into(),
            })
        );
        assert_eq!(
            journal.remembered_requests(0).unwrap(),
            [RememberedRequest {
                request_id: "old-request".into(),
                fingerprint: "fingerprint of old-request".into(),
                answer: "{}".into(),
                revision: 3,
                time_ms: 1_000,
            }]
        );
        // New events keep their actors, after the old ones.
        let new = Record {
            actor: Actor::Agent("ana".into()),
            ..record(5)
        };
        journal.append(&[&new], &[], &[]).unwrap();
        let mut all = as_engines.clone();
        all.push(new.clone());
        assert_eq!(journal.read_from(0, usize::MAX).unwrap(), all);
        journal.close().unwrap();
        drop(journal);

        // On disk: schema 2, with an `actor` column that says `engine` for the old events.
        assert_eq!(schema_version(dir.path()), "2");
        assert_eq!(
            actor_column(dir.path()),
            [
                (1, "engine".to_owned()),
                (2, "engine".to_owned()),
                (3, "engine".to_owned()),
                (4, "engine".to_owned()),
                (5, "agent:ana".to_owned()),
            ]
        );
        // An upgraded journal opens as any schema-2 one, everything still there.
        let journal = SqliteJournal::open(dir.path()).expect("the upgraded journal reopens");
        assert_eq!(journal.read_from(0, usize::MAX).unwrap(), all);
        assert_eq!(schema_version(dir.path()), "2");
    }

    /// What the server journals for real: the first admin's writes are `account:admin`'s, an
    /// agent's own moves `agent:<id>`'s, and what a timer decides (here a RONA) the engine's.
    #[tokio::test]
    async fn the_server_journals_each_events_actor() {
        const PASSWORD: &str = "actor-Pw-1";
        let dir = tempfile::tempdir().unwrap();
        let server = TestServer::start_with(ServerConfig {
            data_dir: dir.path().to_owned(),
            in_memory: false,
            bootstrap_secret_file: Some(dir.path().join("bootstrap-admin.secret")),
            ..ServerConfig::in_memory()
        })
        .await;
        let mut admin = crate::common::Clients::new(server.channel().await);
        RoutingSetup::chat()
            .offer_timeout(1)
            .agents(&["ana"], PASSWORD)
            .log_in(&server.raw_channel().await)
            .apply(&mut admin)
            .await;
        let mut ana =
            RoutingServiceClient::new(server.channel_as(Who::Agent("ana"), PASSWORD).await);
        ana.change_agent_state(pb::ChangeAgentStateRequest {
            agent_id: "ana".into(),
            state: pb::AgentState::Ready.into(),
            mrd: "chat".into(),
            ..Default::default()
        })
        .await
        .expect("ana goes ready");
        let mut routing = RoutingServiceClient::new(server.channel().await);
        let task_id = routing
            .new_task(pb::NewTaskRequest {
                mrd: "chat".into(),
                ..Default::default()
            })
            .await
            .expect("the task is queued")
            .into_inner()
            .task_id;
        // Ana lets the offer go: after a second, the engine requeues the task (RONA).
        let mut watch = routing
            .watch_routing_events(pb::WatchRoutingEventsRequest {
                start_revision: 1,
                task_id: task_id.clone(),
                ..Default::default()
            })
            .await
            .expect("the watch opens")
            .into_inner();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let frame = tokio::time::timeout_at(deadline, watch.next())
                .await
                .expect("the offer times out")
                .expect("the watch is open")
                .expect("the watch is healthy");
            if let Some(pb::watch_routing_events_response::Frame::Event(event)) = frame.frame
                && let Some(pb::routing_event::Event::TaskStateChanged(c)) = event.event
                && c.requeue_reason() == pb::RequeueReason::Rona
            {
                break;
            }
        }
        drop((watch, routing, ana, admin));
        server.stop().await;

        let journal = SqliteJournal::open(dir.path()).unwrap();
        let records = journal.read_from(1, usize::MAX).unwrap();
        drop(journal);
        let actor_of = |what: &str, wanted: &dyn Fn(&Event) -> bool| -> Vec<Actor> {
            let found: Vec<Actor> = records
                .iter()
                .filter(|r| wanted(&r.event))
                .map(|r| r.actor.clone())
                .collect();
            assert!(!found.is_empty(), "no {what} in the journal: {records:#?}");
            found
        };
        let engine = Actor::Engine;
        let admin = Actor::Account("admin".into());
        let ana = Actor::Agent("ana".into());
        // What each case is, which events it is about, and whose they must be.
        type Case<'a> = (&'a str, &'a dyn Fn(&Event) -> bool, &'a Actor);
        let cases: [Case<'_>; 10] = [
            (
                "the first admin's creation",
                &|e| matches!(e, Event::AccountUpserted { account_id, .. } if account_id == "admin"),
                &engine,
            ),
            (
                "the admin's sign-in",
                &|e| matches!(e, Event::RefreshIssued { principal, .. } if *principal == Actor::Account("admin".into())),
                &admin,
            ),
            (
                "the MRD",
                &|e| matches!(e, Event::MrdUpserted { .. }),
                &admin,
            ),
            (
                "ana's record",
                &|e| matches!(e, Event::AgentUpserted { agent_id, .. } if agent_id == "ana"),
                &admin,
            ),
            (
                "ana's sign-in",
                &|e| matches!(e, Event::RefreshIssued { principal, .. } if *principal == Actor::Agent("ana".into())),
                &ana,
            ),
            (
                "ana's login on the MRD",
                &|e| matches!(e, Event::AgentLoggedIn { agent_id, .. } if agent_id == "ana"),
                &ana,
            ),
            (
                "ana's READY",
                &|e| matches!(e, Event::AgentReady { agent_id, .. } if agent_id == "ana"),
                &ana,
            ),
            (
                "the new task",
                &|e| matches!(e, Event::TaskQueued { .. }),
                &admin,
            ),
            (
                "the RONA requeue",
                &|e| {
                    matches!(
                        e,
                        Event::TaskRequeued {
                            reason: RequeueReason::Rona,
                            ..
                        }
                    )
                },
                &engine,
            ),
            (
                "ana's NOT_READY for RONA",
                &|e| matches!(e, Event::AgentNotReady { agent_id, reason_code, .. } if agent_id == "ana" && reason_code == "RONA"),
                &engine,
            ),
        ];
        for (what, wanted, actor) in cases {
            let found = actor_of(what, wanted);
            assert!(
                found.iter().all(|a| a == actor),
                "{what}: journaled as {found:?}, not {actor}"
            );
        }
        // The first offer is decided within the NewTask, so it is the admin's too.
        let offers: Vec<&Record> = records
            .iter()
            .filter(|r| matches!(&r.event, Event::TaskAgentSelected { .. }))
            .collect();
        assert_eq!(
            offers.first().map(|r| &r.actor),
            Some(&admin),
            "{offers:#?}"
        );

        // The column says what `read_from` says, in the forms `agent:<id>`, `account:<id>`,
        // `engine`, and holds no other actor.
        let column = actor_column(dir.path());
        let typed: Vec<(Revision, String)> = records
            .iter()
            .map(|r| (r.revision, r.actor.to_string()))
            .collect();
        assert_eq!(column, typed);
        let distinct: BTreeSet<&str> = column.iter().map(|(_, a)| a.as_str()).collect();
        assert_eq!(
            distinct,
            BTreeSet::from(["account:admin", "agent:ana", "engine"])
        );
    }
}
