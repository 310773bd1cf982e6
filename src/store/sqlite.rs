//! The durable journal: one SQLite file in the data directory, written in WAL mode with
//! `synchronous = FULL`, so every commit is fsynced before `append` returns. The engine's
//! committer calls `append` once per group of batches, which is what keeps that cheap.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use tracing::warn;

use super::{
    Appended, ClosedTask, HistoryQuery, Journal, RememberedRequest, Retention, StoreError,
    StoredSnapshot,
};
use crate::domain::routing::model::Task;
use crate::domain::{Actor, Event, Millis, Record, Revision};

/// The journal's file name inside the data directory.
pub const JOURNAL_FILE: &str = "journal.sqlite3";
/// Held exclusively while a server uses the data directory.
const LOCK_FILE: &str = "LOCK";
const SCHEMA: &str = include_str!("schema.sql");
const SCHEMA_VERSION: &str = "2";
/// Version 1 had no `actor` column: its events were all recorded as the engine's.
/// One transaction: a crash midway leaves version 1 as it was, never half upgraded.
const ADD_ACTORS: &str = "BEGIN;
     ALTER TABLE events ADD COLUMN actor TEXT NOT NULL DEFAULT 'engine';
     UPDATE journal_meta SET value = '2' WHERE key = 'schema_version';
     COMMIT;";

pub struct SqliteJournal {
    path: PathBuf,
    writer: Mutex<Connection>,
    reader: Mutex<Connection>,
    /// Held from open to close: no other server writes while this one runs. Let go at
    /// `close`, after the last append, rather than when the last reader drops the journal,
    /// so that a server started on the directory just after a clean stop finds it free.
    lock: Mutex<Option<File>>,
}

impl SqliteJournal {
    /// Opens (or creates) the journal in `data_dir`, refusing a directory another server
    /// already uses.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        let open_error = |reason: String| StoreError::Open {
            path: data_dir.display().to_string(),
            reason,
        };
        std::fs::create_dir_all(data_dir).map_err(|e| open_error(e.to_string()))?;
        let lock = File::create(data_dir.join(LOCK_FILE)).map_err(|e| open_error(e.to_string()))?;
        lock.try_lock()
            .map_err(|_| open_error("another server is using this data directory".to_owned()))?;

        let path = data_dir.join(JOURNAL_FILE);
        // A clean stop folds the write-ahead log back and empties it; one left with frames in
        // it means the last stop was a crash, whose last write may be torn.
        let unclean_wal = std::fs::metadata(data_dir.join(format!("{JOURNAL_FILE}-wal")))
            .map(|wal| wal.len())
            .ok()
            .filter(|&len| len > 0);
        let writer = Connection::open(&path).map_err(|e| open_error(e.to_string()))?;
        writer
            .execute_batch(
                "PRAGMA journal_mode = WAL;
                 PRAGMA synchronous = FULL;",
            )
            .map_err(|e| open_error(e.to_string()))?;
        writer
            .execute_batch(SCHEMA)
            .map_err(|e| open_error(e.to_string()))?;
        let version: Option<String> = writer
            .query_row(
                "SELECT value FROM journal_meta WHERE key = 'schema_version'",
                [],
                |row| row.get(0),
            )
            .optional()
            .map_err(|e| open_error(e.to_string()))?;
        match version.as_deref() {
            None => {
                writer
                    .execute(
                        "INSERT INTO journal_meta (key, value) VALUES ('schema_version', ?1)",
                        [SCHEMA_VERSION],
                    )
                    .map_err(|e| open_error(e.to_string()))?;
            }
            Some(SCHEMA_VERSION) => {}
            Some("1") => writer
                .execute_batch(ADD_ACTORS)
                .map_err(|e| open_error(format!("upgrading the journal to version 2: {e}")))?,
            Some(other) => {
                return Err(open_error(format!(
                    "schema version {other} is not {SCHEMA_VERSION}, the one this server knows"
                )));
            }
        }
        if let Some(wal_bytes) = unclean_wal {
            // SQLite replays the log up to its last whole (checksummed) commit and drops what
            // follows, such as a torn last write: what is left is the last whole transaction.
            let last = last_revision(&writer).map_err(|e| open_error(e.to_string()))?;
            warn!(
                wal_bytes,
                last_revision = last,
                "the journal was not closed cleanly: its write-ahead log was replayed up to the \
                 last whole transaction, and anything after it (a torn last write) was cut off"
            );
        }
        let reader = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| open_error(e.to_string()))?;
        Ok(Self {
            path,
            writer: Mutex::new(writer),
            reader: Mutex::new(reader),
            lock: Mutex::new(Some(lock)),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn writer(&self) -> MutexGuard<'_, Connection> {
        // A connection stays usable after a panic elsewhere; SQLite rolls back what was open.
        self.writer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn reader(&self) -> MutexGuard<'_, Connection> {
        self.reader.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// SQL integers are signed; revisions and times stay far below `i64::MAX`.
fn sql_int(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn from_sql_int(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

fn write_error(e: impl ToString) -> StoreError {
    StoreError::Write(e.to_string())
}

fn read_error(e: impl ToString) -> StoreError {
    StoreError::Read(e.to_string())
}

fn stored_snapshot(row: &rusqlite::Row<'_>) -> rusqlite::Result<StoredSnapshot> {
    Ok(StoredSnapshot {
        revision: from_sql_int(row.get(0)?),
        time_ms: from_sql_int(row.get(1)?),
        body: row.get(2)?,
    })
}

fn last_revision(conn: &Connection) -> rusqlite::Result<Revision> {
    // Cached: every append asks, and parsing the statement each time cost more than running it.
    let last: i64 = conn
        .prepare_cached(
            "SELECT MAX(COALESCE((SELECT MAX(revision) FROM events), 0),
                        COALESCE((SELECT MAX(revision) FROM snapshots), 0))",
        )?
        .query_row([], |row| row.get(0))?;
    Ok(from_sql_int(last))
}

/// A history row as stored: closing revision, close time, the task as JSON.
type HistoryRow = (i64, i64, String);

fn history_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<HistoryRow> {
    Ok((row.get(0)?, row.get(1)?, row.get(2)?))
}

fn closed_task((revision, closed_at, body): HistoryRow) -> Result<ClosedTask, StoreError> {
    let task: Task = serde_json::from_str(&body).map_err(|e| {
        StoreError::Read(format!(
            "the history's task closed at revision {revision} is unreadable: {e}"
        ))
    })?;
    Ok(ClosedTask {
        revision: from_sql_int(revision),
        closed_at: from_sql_int(closed_at),
        task,
    })
}

impl Journal for SqliteJournal {
    fn append(
        &self,
        records: &[&Record],
        requests: &[&RememberedRequest],
        closed: &[&ClosedTask],
    ) -> Result<Appended, StoreError> {
        if records.is_empty() && requests.is_empty() && closed.is_empty() {
            return Ok(Appended::default());
        }
        let mut conn = self.writer();
        let tx = conn.transaction().map_err(write_error)?;
        if let Some(first) = records.first() {
            let expected = last_revision(&tx).map_err(write_error)? + 1;
            if first.revision != expected {
                return Err(StoreError::Gap {
                    expected,
                    got: first.revision,
                });
            }
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO events (revision, time_ms, body, actor) VALUES (?1, ?2, ?3, ?4)",
                )
                .map_err(write_error)?;
            for (expected, record) in (expected..).zip(records) {
                if record.revision != expected {
                    return Err(StoreError::Gap {
                        expected,
                        got: record.revision,
                    });
                }
                let body = serde_json::to_string(&record.event).map_err(write_error)?;
                insert
                    .execute(params![
                        sql_int(record.revision),
                        sql_int(record.time_ms),
                        body,
                        record.actor.to_string()
                    ])
                    .map_err(write_error)?;
            }
        }
        if !requests.is_empty() {
            let mut remember = tx
                .prepare_cached(
                    "INSERT INTO requests (request_id, fingerprint, answer, revision, time_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (request_id) DO UPDATE SET
                        fingerprint = excluded.fingerprint, answer = excluded.answer,
                        revision = excluded.revision, time_ms = excluded.time_ms",
                )
                .map_err(write_error)?;
            for r in requests {
                remember
                    .execute(params![
                        r.request_id,
                        r.fingerprint,
                        r.answer,
                        sql_int(r.revision),
                        sql_int(r.time_ms)
                    ])
                    .map_err(write_error)?;
            }
        }
        if !closed.is_empty() {
            let mut keep = tx
                .prepare_cached(
                    "INSERT INTO task_history (task_id, revision, closed_at, body)
                     VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (task_id) DO UPDATE SET
                        revision = excluded.revision, closed_at = excluded.closed_at,
                        body = excluded.body",
                )
                .map_err(write_error)?;
            for c in closed {
                let body = serde_json::to_string(&c.task).map_err(write_error)?;
                keep.execute(params![
                    c.task.spec.task_id,
                    sql_int(c.revision),
                    sql_int(c.closed_at),
                    body
                ])
                .map_err(write_error)?;
            }
        }
        let syncing = Instant::now();
        tx.commit().map_err(write_error)?;
        Ok(Appended {
            sync: Some(syncing.elapsed()),
        })
    }

    fn closed_task(&self, task_id: &str) -> Result<Option<ClosedTask>, StoreError> {
        let conn = self.reader();
        let row = conn
            .prepare_cached("SELECT revision, closed_at, body FROM task_history WHERE task_id = ?1")
            .map_err(read_error)?
            .query_row([task_id], history_row)
            .optional()
            .map_err(read_error)?;
        row.map(closed_task).transpose()
    }

    fn closed_tasks(&self, query: HistoryQuery) -> Result<Vec<ClosedTask>, StoreError> {
        let conn = self.reader();
        let mut select = conn
            .prepare_cached(
                "SELECT revision, closed_at, body FROM task_history
                 WHERE closed_at >= ?1 AND closed_at < ?2 AND revision > ?3
                 ORDER BY revision LIMIT ?4",
            )
            .map_err(read_error)?;
        let rows = select
            .query_map(
                params![
                    sql_int(query.closed_from),
                    sql_int(query.closed_until),
                    sql_int(query.after),
                    sql_int(query.limit as u64)
                ],
                history_row,
            )
            .map_err(read_error)?;
        let mut page = Vec::with_capacity(query.limit.min(1024));
        for row in rows {
            page.push(closed_task(row.map_err(read_error)?)?);
        }
        Ok(page)
    }

    fn read_from(&self, from: Revision, limit: usize) -> Result<Vec<Record>, StoreError> {
        let conn = self.reader();
        let mut select = conn
            .prepare_cached(
                "SELECT revision, time_ms, body, actor FROM events WHERE revision >= ?1
                 ORDER BY revision LIMIT ?2",
            )
            .map_err(read_error)?;
        let rows = select
            .query_map(params![sql_int(from), sql_int(limit as u64)], |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, i64>(1)?,
                    row.get::<_, String>(2)?,
                    row.get::<_, String>(3)?,
                ))
            })
            .map_err(read_error)?;
        let mut records = Vec::with_capacity(limit.min(4096));
        for row in rows {
            let (revision, time_ms, body, actor) = row.map_err(read_error)?;
            let unreadable = |e: String| {
                StoreError::Read(format!("event at revision {revision} is unreadable: {e}"))
            };
            let event: Event =
                serde_json::from_str(&body).map_err(|e| unreadable(e.to_string()))?;
            let actor = Actor::parse(&actor).map_err(|e| unreadable(e.to_string()))?;
            records.push(Record {
                revision: from_sql_int(revision),
                time_ms: from_sql_int(time_ms),
                actor,
                event,
            });
        }
        Ok(records)
    }

    fn last_revision(&self) -> Result<Revision, StoreError> {
        last_revision(&self.reader()).map_err(read_error)
    }

    fn first_revision(&self) -> Result<Revision, StoreError> {
        let conn = self.reader();
        let first: Option<i64> = conn
            .query_row("SELECT MIN(revision) FROM events", [], |row| row.get(0))
            .map_err(read_error)?;
        match first {
            Some(first) => Ok(from_sql_int(first)),
            None => Ok(last_revision(&conn).map_err(read_error)? + 1),
        }
    }

    fn latest_snapshot(&self) -> Result<Option<StoredSnapshot>, StoreError> {
        self.reader()
            .query_row(
                "SELECT revision, time_ms, body FROM snapshots ORDER BY revision DESC LIMIT 1",
                [],
                stored_snapshot,
            )
            .optional()
            .map_err(read_error)
    }

    fn snapshot_before(&self, revision: Revision) -> Result<Option<StoredSnapshot>, StoreError> {
        self.reader()
            .query_row(
                "SELECT revision, time_ms, body FROM snapshots WHERE revision < ?1
                 ORDER BY revision DESC LIMIT 1",
                [sql_int(revision)],
                stored_snapshot,
            )
            .optional()
            .map_err(read_error)
    }

    fn save_snapshot(
        &self,
        snapshot: &StoredSnapshot,
        retention: Retention,
    ) -> Result<(), StoreError> {
        let mut conn = self.writer();
        let tx = conn.transaction().map_err(write_error)?;
        tx.execute(
            "INSERT INTO snapshots (revision, time_ms, body) VALUES (?1, ?2, ?3)
             ON CONFLICT (revision) DO UPDATE SET time_ms = excluded.time_ms, body = excluded.body",
            params![
                sql_int(snapshot.revision),
                sql_int(snapshot.time_ms),
                snapshot.body
            ],
        )
        .map_err(write_error)?;
        // The two newest stay: the one before the latest is recovery's fallback.
        let oldest_kept: i64 = tx
            .query_row(
                "SELECT MIN(revision) FROM
                    (SELECT revision FROM snapshots ORDER BY revision DESC LIMIT 2)",
                [],
                |row| row.get(0),
            )
            .map_err(write_error)?;
        tx.execute("DELETE FROM snapshots WHERE revision < ?1", [oldest_kept])
            .map_err(write_error)?;
        let last = last_revision(&tx).map_err(write_error)?;
        let keep_from = last
            .saturating_sub(retention.events)
            .saturating_add(1)
            .min(snapshot.revision + 1)
            .min(from_sql_int(oldest_kept) + 1);
        tx.execute(
            "DELETE FROM events WHERE revision < ?1",
            [sql_int(keep_from)],
        )
        .map_err(write_error)?;
        tx.execute(
            "DELETE FROM requests WHERE time_ms < ?1",
            [sql_int(retention.requests_since)],
        )
        .map_err(write_error)?;
        tx.execute(
            "DELETE FROM task_history WHERE closed_at < ?1",
            [sql_int(retention.history_since)],
        )
        .map_err(write_error)?;
        tx.commit().map_err(write_error)
    }

    fn remembered_requests(&self, since: Millis) -> Result<Vec<RememberedRequest>, StoreError> {
        let conn = self.reader();
        let mut select = conn
            .prepare_cached(
                "SELECT request_id, fingerprint, answer, revision, time_ms FROM requests
                 WHERE time_ms >= ?1 ORDER BY time_ms",
            )
            .map_err(read_error)?;
        let rows = select
            .query_map([sql_int(since)], |row| {
                Ok(RememberedRequest {
                    request_id: row.get(0)?,
                    fingerprint: row.get(1)?,
                    answer: row.get(2)?,
                    revision: from_sql_int(row.get(3)?),
                    time_ms: from_sql_int(row.get(4)?),
                })
            })
            .map_err(read_error)?;
        rows.collect::<Result<_, _>>().map_err(read_error)
    }

    fn probe(&self) -> Result<(), StoreError> {
        // A row of its own, rewritten each time: a write that needs a fresh WAL frame and an
        // fsync, as an append does, without touching the journal's data.
        let mut conn = self.writer();
        let tx = conn.transaction().map_err(write_error)?;
        tx.execute(
            "INSERT INTO journal_meta (key, value) VALUES ('probe', ?1)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            [std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
                .to_string()],
        )
        .map_err(write_error)?;
        tx.commit().map_err(write_error)
    }

    fn close(&self) -> Result<(), StoreError> {
        // Folds the WAL back into the main file, so the next start reads one file.
        let checkpoint = self
            .writer()
            .execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
            .map_err(write_error);
        // Nothing more is written, whether the checkpoint worked or not: readers still
        // holding the journal only read, which SQLite's own locking keeps safe.
        self.lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        checkpoint
    }
}

// The journal's behaviour, durability and crash recovery included, is checked by the contract
// every store passes (tests/journal_contract.rs); what is SQLite's own is checked here.
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_server_cannot_open_the_same_directory() {
        let dir = tempfile::tempdir().unwrap();
        let _first = SqliteJournal::open(dir.path()).unwrap();
        let second = SqliteJournal::open(dir.path());
        assert!(matches!(second, Err(StoreError::Open { .. })));
    }

    #[test]
    fn a_closed_journal_frees_its_directory_while_still_held() {
        let dir = tempfile::tempdir().unwrap();
        let first = SqliteJournal::open(dir.path()).unwrap();
        first.close().unwrap();
        // `first` is still alive, as it is while a server's last readers let go of it.
        let second = SqliteJournal::open(dir.path()).expect("the directory is free");
        assert_eq!(
            first.last_revision().unwrap(),
            second.last_revision().unwrap()
        );
    }
}
