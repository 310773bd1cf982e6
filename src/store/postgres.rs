//! The shared journal of a cluster: the tables of `schema.sql` in a PostgreSQL database that
//! every node connects to. One node leads and writes; every write transaction first reads the
//! lease row `FOR SHARE` and goes ahead only under the epoch this node's `Fence` holds, before
//! the lease expires by the database's clock, so a leader that lost its lease writes nothing,
//! and a new leader's take of the lease waits for a commit already under way. Each append
//! ends with a `pg_notify` on `switchboard_events`, which wakes the followers
//! (`cluster::wakeup`). Every call is time-limited (`PostgresOptions::timeout`): a database
//! cut off makes calls fail with a `StoreError` instead of hanging.

/// The last revision: of the events, or of a snapshot when compaction left no event.
macro_rules! last_revision {
    () => {
        "GREATEST(COALESCE((SELECT MAX(revision) FROM events), 0),
                  COALESCE((SELECT MAX(revision) FROM snapshots), 0))"
    };
}

mod conn;
mod pool;
mod write;

use std::time::Duration;

pub(crate) use conn::{
    Live, describe, ensure_schema, error_text, from_sql_int, no_answer, open, parse, sql_int,
};
use conn::{read_error, write_error};
use pool::{Call, Pool};
use tokio_postgres::Row;
use write::{AppendRows, save_snapshot};

use super::{
    Appended, ClosedTask, Fence, HistoryQuery, Journal, RememberedRequest, Retention, StoreError,
    StoredSnapshot,
};
use crate::domain::routing::model::Task;
use crate::domain::{Actor, Event, Millis, Record, Revision};

/// The channel each append notifies, with its last revision as the payload.
pub const EVENTS_CHANNEL: &str = "switchboard_events";

/// How the journal talks to the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PostgresOptions {
    /// The limit of every call, connecting included.
    pub timeout: Duration,
    /// Connections for reads, beside the one that writes.
    pub readers: usize,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(5),
            readers: 4,
        }
    }
}

pub struct PostgresJournal {
    pool: Pool,
    fence: Fence,
}

const LAST_REVISION: &str = concat!("SELECT ", last_revision!());
const FIRST_REVISION: &str = concat!(
    "SELECT COALESCE((SELECT MIN(revision) FROM events), ",
    last_revision!(),
    " + 1)"
);
const READ_FROM: &str = "SELECT revision, time_ms, body, actor FROM events
     WHERE revision >= $1 ORDER BY revision LIMIT $2";
const CLOSED_TASK: &str = "SELECT revision, closed_at, body FROM task_history WHERE task_id = $1";
const CLOSED_TASKS: &str = "SELECT revision, closed_at, body FROM task_history
     WHERE closed_at >= $1 AND closed_at < $2 AND revision > $3 ORDER BY revision LIMIT $4";
const LATEST_SNAPSHOT: &str =
    "SELECT revision, time_ms, body FROM snapshots ORDER BY revision DESC LIMIT 1";
const SNAPSHOT_BEFORE: &str = "SELECT revision, time_ms, body FROM snapshots
     WHERE revision < $1 ORDER BY revision DESC LIMIT 1";
const REMEMBERED: &str = "SELECT request_id, fingerprint, answer, revision, time_ms FROM requests
     WHERE time_ms >= $1 ORDER BY time_ms, revision, request_id";
const PROBE: &str = "INSERT INTO journal_meta (key, value) VALUES ('probe', $1)
     ON CONFLICT (key) DO UPDATE SET value = excluded.value";

impl PostgresJournal {
    /// Connects to the database at `url` (a `postgres://` URL or a key=value string) and
    /// creates the schema if it is missing. Writes go ahead only under the epoch `fence`
    /// holds.
    pub fn connect(url: &str, fence: Fence) -> Result<Self, StoreError> {
        Self::connect_with(url, fence, PostgresOptions::default())
    }

    pub fn connect_with(
        url: &str,
        fence: Fence,
        options: PostgresOptions,
    ) -> Result<Self, StoreError> {
        let config = parse(url, "switchboard-journal", options.timeout)?;
        let path = describe(&config);
        let open_error = |reason: String| StoreError::Open {
            path: path.clone(),
            reason,
        };
        let pool = Pool::new(config, options.timeout, options.readers)
            .map_err(|e| open_error(format!("starting the journal's runtime: {e}")))?;
        // The writer connects now: a wrong URL or a database that is down fails the start.
        pool.write(|live| {
            Box::pin(async move { ensure_schema(&live.client).await.map_err(StoreError::Write) })
        })
        .map_err(|e| match e {
            StoreError::Write(reason) => open_error(reason),
            other => other,
        })?;
        Ok(Self { pool, fence })
    }

    /// The database, as `postgres://user@host:port/db` (never the password).
    pub fn describe(&self) -> String {
        describe(self.pool.config())
    }

    pub fn fence(&self) -> &Fence {
        &self.fence
    }
}

fn stored_snapshot(row: &Row) -> StoredSnapshot {
    StoredSnapshot {
        revision: from_sql_int(row.get(0)),
        time_ms: from_sql_int(row.get(1)),
        body: row.get(2),
    }
}

fn closed_task(row: &Row) -> Result<ClosedTask, StoreError> {
    let revision: i64 = row.get(0);
    let body: &str = row.get(2);
    let task: Task = serde_json::from_str(body).map_err(|e| {
        StoreError::Read(format!(
            "the history's task closed at revision {revision} is unreadable: {e}"
        ))
    })?;
    Ok(ClosedTask {
        revision: from_sql_int(revision),
        closed_at: from_sql_int(row.get(1)),
        task,
    })
}

fn record(row: &Row) -> Result<Record, StoreError> {
    let revision: i64 = row.get(0);
    let unreadable =
        |e: String| StoreError::Read(format!("event at revision {revision} is unreadable: {e}"));
    let event: Event = serde_json::from_str(row.get(2)).map_err(|e| unreadable(e.to_string()))?;
    let actor = Actor::parse(row.get(3)).map_err(|e| unreadable(e.to_string()))?;
    Ok(Record {
        revision: from_sql_int(revision),
        time_ms: from_sql_int(row.get(1)),
        actor,
        event,
    })
}

/// Runs one prepared query on a reading connection and maps its rows.
fn query<T: Send + 'static>(
    journal: &PostgresJournal,
    sql: &'static str,
    params: Vec<i64>,
    map: fn(&[Row]) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    journal.pool.read(move |live| -> Call<'_, T> {
        Box::pin(async move {
            let statement = live.statement(sql).await.map_err(read_error)?;
            let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
                params.iter().map(|p| p as _).collect();
            let rows = live
                .client
                .query(&statement, &params)
                .await
                .map_err(read_error)?;
            map(&rows)
        })
    })
}

impl Journal for PostgresJournal {
    fn append(
        &self,
        records: &[&Record],
        requests: &[&RememberedRequest],
        closed: &[&ClosedTask],
    ) -> Result<Appended, StoreError> {
        if records.is_empty() && requests.is_empty() && closed.is_empty() {
            return Ok(Appended::default());
        }
        let rows = AppendRows::new(records, requests, closed)?;
        let held = self.fence.held();
        self.pool
            .write(move |live| Box::pin(async move { rows.append(live, held).await }))?;
        Ok(Appended::default())
    }

    fn closed_task(&self, task_id: &str) -> Result<Option<ClosedTask>, StoreError> {
        let task_id = task_id.to_owned();
        self.pool.read(move |live| {
            Box::pin(async move {
                let statement = live.statement(CLOSED_TASK).await.map_err(read_error)?;
                let row = live
                    .client
                    .query_opt(&statement, &[&task_id])
                    .await
                    .map_err(read_error)?;
                row.as_ref().map(closed_task).transpose()
            })
        })
    }

    fn closed_tasks(&self, q: HistoryQuery) -> Result<Vec<ClosedTask>, StoreError> {
        let params = vec![
            sql_int(q.closed_from),
            sql_int(q.closed_until),
            sql_int(q.after),
            sql_int(q.limit as u64),
        ];
        query(self, CLOSED_TASKS, params, |rows| {
            rows.iter().map(closed_task).collect()
        })
    }

    fn read_from(&self, from: Revision, limit: usize) -> Result<Vec<Record>, StoreError> {
        let params = vec![sql_int(from), sql_int(limit as u64)];
        query(self, READ_FROM, params, |rows| {
            rows.iter().map(record).collect()
        })
    }

    fn last_revision(&self) -> Result<Revision, StoreError> {
        query(self, LAST_REVISION, vec![], |rows| {
            Ok(rows.first().map_or(0, |row| from_sql_int(row.get(0))))
        })
    }

    fn first_revision(&self) -> Result<Revision, StoreError> {
        query(self, FIRST_REVISION, vec![], |rows| {
            Ok(rows.first().map_or(1, |row| from_sql_int(row.get(0))))
        })
    }

    fn latest_snapshot(&self) -> Result<Option<StoredSnapshot>, StoreError> {
        query(self, LATEST_SNAPSHOT, vec![], |rows| {
            Ok(rows.first().map(stored_snapshot))
        })
    }

    fn snapshot_before(&self, revision: Revision) -> Result<Option<StoredSnapshot>, StoreError> {
        query(self, SNAPSHOT_BEFORE, vec![sql_int(revision)], |rows| {
            Ok(rows.first().map(stored_snapshot))
        })
    }

    fn save_snapshot(
        &self,
        snapshot: &StoredSnapshot,
        retention: Retention,
    ) -> Result<(), StoreError> {
        let snapshot = snapshot.clone();
        let held = self.fence.held();
        self.pool.write(move |live| {
            Box::pin(async move {
                live.transaction(
                    async move |live| save_snapshot(live, held, &snapshot, retention).await,
                    StoreError::Write,
                )
                .await
            })
        })
    }

    fn remembered_requests(&self, since: Millis) -> Result<Vec<RememberedRequest>, StoreError> {
        query(self, REMEMBERED, vec![sql_int(since)], |rows| {
            Ok(rows
                .iter()
                .map(|row| RememberedRequest {
                    request_id: row.get(0),
                    fingerprint: row.get(1),
                    answer: row.get(2),
                    revision: from_sql_int(row.get(3)),
                    time_ms: from_sql_int(row.get(4)),
                })
                .collect())
        })
    }

    fn probe(&self) -> Result<(), StoreError> {
        // A row of its own, rewritten: a committed write that needs no lease, so it tells
        // whether the database takes writes at all.
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
            .to_string();
        self.pool.write(move |live| {
            Box::pin(async move {
                let statement = live.statement(PROBE).await.map_err(write_error)?;
                live.client
                    .execute(&statement, &[&stamp])
                    .await
                    .map_err(write_error)?;
                Ok(())
            })
        })
    }
}
