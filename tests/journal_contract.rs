//! The `Journal` contract: one set of tests that every store passes, so the engine can rely on
//! the same behaviour whichever journal it is given.
//!
//! A store joins with one line at `journal_contract!` below, after implementing `Store` (a
//! fresh journal per test) and, if its journal outlives the process, `DurableStore` (reopen,
//! crash, crash during an append). Each line makes a module of `#[test]`s named after the
//! store, so `cargo test --test journal_contract sqlite::` runs one store's contract. The cases
//! that need a journal to outlive the process are generated only for stores marked `durable`:
//! the memory store's module simply has no such tests.

use std::fs;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

use switchboard::domain::{ClientId, Event, Record, Revision};
use switchboard::store::{
    Journal, MemoryJournal, RememberedRequest, Retention, SqliteJournal, StoreError, StoredSnapshot,
};
use tempfile::TempDir;
use uuid::Uuid;

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
            compaction_keeps_the_retained_events_behind_the_snapshot,
            compaction_keeps_every_event_after_the_snapshot,
            compacting_every_event_keeps_the_revisions_going,
            compaction_forgets_requests_older_than_the_cutoff,
        );
    };
}

macro_rules! durable_store_cases {
    ($store:expr) => {
        cases!($store;
            everything_survives_a_reopen_with_or_without_close,
            compacted_revisions_survive_a_reopen,
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
            .append(records, requests)
            .expect("the append to tear");
        let image = self.take_crash_image();
        tear_last_wal_frame(&image);
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

/// A record whose event and time follow from its revision, so a test can rebuild it.
fn record(revision: Revision) -> Record {
    Record {
        revision,
        time_ms: 1_000 + revision,
        event: Event::ClientRegistered {
            client_id: ClientId(Uuid::from_u128(u128::from(revision))),
            client_name: format!("desk \"{revision}\" – ü"),
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
    journal.append(&refs, requests).expect("append");
}

/// The error an append of these revisions gets.
fn refused(journal: &dyn Journal, revisions: &[Revision]) -> StoreError {
    let batch: Vec<Record> = revisions.iter().copied().map(record).collect();
    let refs: Vec<&Record> = batch.iter().collect();
    journal
        .append(&refs, &[])
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
    }
}

fn keep_events(events: u64) -> Retention {
    Retention {
        events,
        requests_since: 0,
    }
}

/// All a journal shows through the trait, to compare before and after a reopen.
#[derive(Debug, PartialEq)]
struct Contents {
    first: Revision,
    last: Revision,
    records: Vec<Record>,
    snapshot: Option<StoredSnapshot>,
    requests: Vec<RememberedRequest>,
}

fn contents(journal: &dyn Journal) -> Contents {
    Contents {
        first: journal.first_revision().expect("first_revision"),
        last: journal.last_revision().expect("last_revision"),
        records: journal.read_from(0, usize::MAX).expect("read_from"),
        snapshot: journal.latest_snapshot().expect("latest_snapshot"),
        requests: journal.remembered_requests(0).expect("remembered_requests"),
    }
}

// ---- Every store ---------------------------------------------------------------------------

fn an_empty_journal_has_nothing(store: &mut impl Store) {
    let journal = store.open();
    assert_eq!(journal.last_revision().unwrap(), 0);
    assert_eq!(journal.first_revision().unwrap(), 1);
    assert!(journal.read_from(0, 10).unwrap().is_empty());
    assert!(journal.read_from(1, usize::MAX).unwrap().is_empty());
    assert_eq!(journal.latest_snapshot().unwrap(), None);
    assert!(journal.remembered_requests(0).unwrap().is_empty());
    // An append with nothing in it changes nothing.
    journal.append(&[], &[]).unwrap();
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
        .append(&[&batch[0], &batch[1]], &[&remembered])
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
    journal.append(&[], &[&third]).unwrap();
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
    };
    journal
        .save_snapshot(&snapshot(3, "{}"), retention)
        .unwrap();
    assert_eq!(journal.remembered_requests(0).unwrap(), [at_cutoff, young]);
    // Events are compacted by their own rule, not by the requests' cutoff.
    assert_eq!(journal.first_revision().unwrap(), 1);
}

// ---- Durable stores ------------------------------------------------------------------------

/// Events, requests, a snapshot and a compaction: something of everything a journal keeps.
fn fill(journal: &dyn Journal) {
    append_with(journal, 1..=4, &[&request("one", 4, 1_000)]);
    append_with(journal, 5..=8, &[&request("two", 8, 2_000)]);
    let retention = Retention {
        events: 3,
        requests_since: 1_500,
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
