//! The journal's write transactions: an append (events, remembered requests, closed tasks,
//! the notification) and a snapshot with its compaction, each under the lease.

use super::EVENTS_CHANNEL;
use std::collections::HashSet;

use tokio_postgres::Row;

use super::conn::{Live, error_text, from_sql_int, sql_int, write_error};
use crate::domain::{Record, Revision};
use crate::store::{ClosedTask, RememberedRequest, Retention, StoreError, StoredSnapshot};

/// The lease as this transaction sees it (locked against a take until it ends), and the last
/// revision.
const LEASE_AND_LAST: &str = concat!(
    "SELECT epoch, expires_at > clock_timestamp(), ",
    last_revision!(),
    " FROM cluster_lease WHERE id = 1 FOR SHARE"
);
const INSERT_EVENTS: &str = "INSERT INTO events (revision, time_ms, body, actor)
     SELECT * FROM UNNEST($1::BIGINT[], $2::BIGINT[], $3::TEXT[], $4::TEXT[])";
const REMEMBER_REQUESTS: &str =
    "INSERT INTO requests (request_id, fingerprint, answer, revision, time_ms)
     SELECT * FROM UNNEST($1::TEXT[], $2::TEXT[], $3::TEXT[], $4::BIGINT[], $5::BIGINT[])
     ON CONFLICT (request_id) DO UPDATE SET
        fingerprint = excluded.fingerprint, answer = excluded.answer,
        revision = excluded.revision, time_ms = excluded.time_ms";
const KEEP_CLOSED: &str = "INSERT INTO task_history (task_id, revision, closed_at, body)
     SELECT * FROM UNNEST($1::TEXT[], $2::BIGINT[], $3::BIGINT[], $4::TEXT[])
     ON CONFLICT (task_id) DO UPDATE SET
        revision = excluded.revision, closed_at = excluded.closed_at, body = excluded.body";
/// On `EVENTS_CHANNEL`, with the last revision appended.
const NOTIFY: &str = "SELECT pg_notify($1::TEXT, $2::TEXT)";

/// Reads the lease row under `FOR SHARE` and refuses unless `held` is its epoch and it has
/// not expired. Returns the last revision.
async fn check_lease(live: &mut Live, held: Option<u64>) -> Result<Revision, StoreError> {
    let statement = live.statement(LEASE_AND_LAST).await.map_err(write_error)?;
    let row = live
        .client
        .query_opt(&statement, &[])
        .await
        .map_err(write_error)?;
    lease_allows(row, held)
}

/// What the lease row says about a write under `held`: the last revision, or `Fenced`.
fn lease_allows(row: Option<Row>, held: Option<u64>) -> Result<Revision, StoreError> {
    let Some(row) = row else {
        return Err(StoreError::Fenced { held, current: 0 });
    };
    let current = from_sql_int(row.get(0));
    let unexpired: bool = row.get(1);
    if held != Some(current) || !unexpired {
        return Err(StoreError::Fenced { held, current });
    }
    Ok(from_sql_int(row.get(2)))
}

/// An append's rows, owned, one vector per column: each table takes its rows in one statement.
#[derive(Default)]
pub(super) struct AppendRows {
    revisions: Vec<Revision>,
    times: Vec<i64>,
    bodies: Vec<String>,
    actors: Vec<String>,
    request_ids: Vec<String>,
    fingerprints: Vec<String>,
    answers: Vec<String>,
    request_revisions: Vec<i64>,
    request_times: Vec<i64>,
    task_ids: Vec<String>,
    closing_revisions: Vec<i64>,
    closed_ats: Vec<i64>,
    tasks: Vec<String>,
}

impl AppendRows {
    pub(super) fn new(
        records: &[&Record],
        requests: &[&RememberedRequest],
        closed: &[&ClosedTask],
    ) -> Result<Self, StoreError> {
        let mut rows = Self::default();
        for record in records {
            rows.revisions.push(record.revision);
            rows.times.push(sql_int(record.time_ms));
            rows.bodies.push(
                serde_json::to_string(&record.event)
                    .map_err(|e| StoreError::Write(e.to_string()))?,
            );
            rows.actors.push(record.actor.to_string());
        }
        // One statement cannot write a key twice: the last of a repeated key wins, as it
        // would row by row.
        for r in last_of_each(requests, |r| r.request_id.as_str()) {
            rows.request_ids.push(r.request_id.clone());
            rows.fingerprints.push(r.fingerprint.clone());
            rows.answers.push(r.answer.clone());
            rows.request_revisions.push(sql_int(r.revision));
            rows.request_times.push(sql_int(r.time_ms));
        }
        for c in last_of_each(closed, |c| c.task.spec.task_id.as_str()) {
            let id = &c.task.spec.task_id;
            rows.task_ids.push(id.clone());
            rows.closing_revisions.push(sql_int(c.revision));
            rows.closed_ats.push(sql_int(c.closed_at));
            rows.tasks.push(
                serde_json::to_string(&c.task).map_err(|e| StoreError::Write(e.to_string()))?,
            );
        }
        Ok(rows)
    }

    /// Refuses revisions that do not follow `last` one by one.
    fn check_follows(&self, last: Revision) -> Result<(), StoreError> {
        for (expected, &got) in (last + 1..).zip(&self.revisions) {
            if got != expected {
                return Err(StoreError::Gap { expected, got });
            }
        }
        Ok(())
    }

    /// The append's transaction in two round trips: `BEGIN` with the lease check, then the
    /// inserts, the notification and `COMMIT` together. Requests on one connection are
    /// pipelined and run in the order they are sent: a statement that fails aborts the
    /// transaction, and the `COMMIT` after it then rolls it back.
    pub(super) async fn append(self, live: &mut Live, held: Option<u64>) -> Result<(), StoreError> {
        let lease = live.statement(LEASE_AND_LAST).await.map_err(write_error)?;
        let insert = live.statement(INSERT_EVENTS).await.map_err(write_error)?;
        let notify = live.statement(NOTIFY).await.map_err(write_error)?;
        let remember = live
            .statement(REMEMBER_REQUESTS)
            .await
            .map_err(write_error)?;
        let keep = live.statement(KEEP_CLOSED).await.map_err(write_error)?;
        // Until the transaction is known to be over, the session is not used again.
        live.set_in_doubt(true);
        let c = &live.client;
        let (begun, lease_row) = tokio::join!(
            biased;
            c.batch_execute("BEGIN"),
            c.query_opt(&lease, &[])
        );
        begun.map_err(write_error)?;
        let allowed = lease_row
            .map_err(write_error)
            .and_then(|row| lease_allows(row, held))
            .and_then(|last| self.check_follows(last));
        if let Err(refused) = allowed {
            if c.batch_execute("ROLLBACK").await.is_ok() {
                live.set_in_doubt(false);
            }
            return Err(refused);
        }
        let revisions: Vec<i64> = self.revisions.iter().map(|&r| sql_int(r)).collect();
        let last = self.revisions.last().map(u64::to_string);
        let events = async {
            match &last {
                Some(last) => {
                    c.execute(
                        &insert,
                        &[&revisions, &self.times, &self.bodies, &self.actors],
                    )
                    .await?;
                    c.execute(&notify, &[&EVENTS_CHANNEL, last]).await
                }
                None => Ok(0),
            }
        };
        let requests = async {
            if self.request_ids.is_empty() {
                return Ok(0);
            }
            c.execute(
                &remember,
                &[
                    &self.request_ids,
                    &self.fingerprints,
                    &self.answers,
                    &self.request_revisions,
                    &self.request_times,
                ],
            )
            .await
        };
        let closed = async {
            if self.task_ids.is_empty() {
                return Ok(0);
            }
            c.execute(
                &keep,
                &[
                    &self.task_ids,
                    &self.closing_revisions,
                    &self.closed_ats,
                    &self.tasks,
                ],
            )
            .await
        };
        let (events, requests, closed, committed) = tokio::join!(
            biased;
            events,
            requests,
            closed,
            c.batch_execute("COMMIT")
        );
        let committed = committed.map_err(|e| write_error_in("committing", &e));
        if committed.is_ok() {
            // Committed, or rolled back after a failed statement: either way it is over.
            live.set_in_doubt(false);
        }
        events.and(requests).and(closed).map_err(write_error)?;
        committed
    }
}

/// Stores the snapshot and compacts, as the SQLite journal does, under the lease.
pub(super) async fn save_snapshot(
    live: &mut Live,
    held: Option<u64>,
    snapshot: &StoredSnapshot,
    retention: Retention,
) -> Result<(), StoreError> {
    let last = check_lease(live, held).await?;
    let c = &live.client;
    c.execute(
        "INSERT INTO snapshots (revision, time_ms, body) VALUES ($1, $2, $3)
         ON CONFLICT (revision) DO UPDATE SET time_ms = excluded.time_ms, body = excluded.body",
        &[
            &sql_int(snapshot.revision),
            &sql_int(snapshot.time_ms),
            &snapshot.body,
        ],
    )
    .await
    .map_err(write_error)?;
    // The two newest stay: the one before the latest is recovery's fallback.
    let oldest_kept: i64 = c
        .query_one(
            "SELECT MIN(revision) FROM
                (SELECT revision FROM snapshots ORDER BY revision DESC LIMIT 2) AS newest",
            &[],
        )
        .await
        .map_err(write_error)?
        .get(0);
    c.execute("DELETE FROM snapshots WHERE revision < $1", &[&oldest_kept])
        .await
        .map_err(write_error)?;
    // The snapshot may be newer than every event: the last revision is read again.
    let last = last.max(snapshot.revision);
    let keep_from = last
        .saturating_sub(retention.events)
        .saturating_add(1)
        .min(snapshot.revision + 1)
        .min(from_sql_int(oldest_kept) + 1);
    c.execute(
        "DELETE FROM events WHERE revision < $1",
        &[&sql_int(keep_from)],
    )
    .await
    .map_err(write_error)?;
    c.execute(
        "DELETE FROM requests WHERE time_ms < $1",
        &[&sql_int(retention.requests_since)],
    )
    .await
    .map_err(write_error)?;
    c.execute(
        "DELETE FROM task_history WHERE closed_at < $1",
        &[&sql_int(retention.history_since)],
    )
    .await
    .map_err(write_error)?;
    Ok(())
}

fn write_error_in(what: &str, e: &tokio_postgres::Error) -> StoreError {
    StoreError::Write(format!("{what}: {}", error_text(e)))
}

/// The items whose key no later item repeats, in their order.
fn last_of_each<'a, T>(items: &[&'a T], key: impl Fn(&'a T) -> &'a str) -> Vec<&'a T> {
    let mut seen = HashSet::new();
    let mut kept: Vec<&'a T> = items
        .iter()
        .rev()
        .filter(|item| seen.insert(key(item)))
        .copied()
        .collect();
    kept.reverse();
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_repeated_in_one_append_keeps_its_last_item_in_place() {
        let items = [("a", 1), ("b", 2), ("a", 3), ("c", 4), ("b", 5)];
        let refs: Vec<&(&str, i32)> = items.iter().collect();
        let kept: Vec<i32> = last_of_each(&refs, |item| item.0)
            .iter()
            .map(|item| item.1)
            .collect();
        assert_eq!(kept, [3, 4, 5]);
    }
}
