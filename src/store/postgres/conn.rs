//! Connections to PostgreSQL, shared by the journal and the cluster's tables: the URL parsed
//! (and described without its password), a connection whose driver task dies with it, and the
//! schema made once per database, safely when several nodes start at once.

use std::collections::HashMap;
use std::time::Duration;

use tokio::task::AbortHandle;
use tokio_postgres::config::Host;
use tokio_postgres::{Client, Config, NoTls, Statement};
use tracing::debug;

use crate::store::StoreError;

const SCHEMA: &str = include_str!("../schema.sql");
const CLUSTER_SCHEMA: &str = include_str!("cluster.sql");
/// The tables of `schema.sql` are those of the SQLite journal's schema version 2.
const SCHEMA_VERSION: &str = "2";
/// Taken around the schema's creation: `CREATE TABLE IF NOT EXISTS` run by two sessions at
/// once can still collide in the catalogue.
const SCHEMA_LOCK: i64 = 0x5357_4254_4348_0001;

/// The connection URL parsed, with `role` as the application name unless the URL gives one
/// (`pg_stat_activity` then tells the journal's sessions from the lease's).
pub(crate) fn parse(url: &str, role: &str, timeout: Duration) -> Result<Config, StoreError> {
    let mut config: Config = url.parse().map_err(|e| StoreError::Open {
        path: "the PostgreSQL URL".to_owned(),
        reason: format!("it does not parse: {e}"),
    })?;
    if config.get_application_name().is_none() {
        config.application_name(role);
    }
    if config.get_options().is_none() {
        // The server's notices ("relation already exists, skipping") are not worth a log line;
        // a session that goes silent inside a transaction (a node cut off mid-commit, still
        // holding the lease row FOR SHARE) is ended by the server, so it cannot hold up a
        // take-over longer than a call may take.
        config.options(format!(
            "-c client_min_messages=warning -c idle_in_transaction_session_timeout={}",
            timeout.as_millis()
        ));
    }
    // A peer that stops answering is given up by the kernel too, not only by the call's limit.
    config
        .connect_timeout(timeout)
        .tcp_user_timeout(timeout)
        .keepalives(true)
        .keepalives_idle(timeout.max(Duration::from_secs(1)));
    Ok(config)
}

/// `postgres://user@host:port/db`, for messages: never the password.
pub(crate) fn describe(config: &Config) -> String {
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(host)) => host.clone(),
        Some(Host::Unix(path)) => path.display().to_string(),
        None => "localhost".to_owned(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!(
        "postgres://{}@{host}:{port}/{}",
        config.get_user().unwrap_or(""),
        config.get_dbname().unwrap_or("")
    )
}

/// One open connection. Its driver task is aborted when it is dropped, so a connection given
/// up on (a call that timed out on a silent network) leaves no task behind.
pub(crate) struct Live {
    pub client: Client,
    /// Statements prepared on this connection, by their SQL.
    statements: HashMap<&'static str, Statement>,
    /// Set when the session may be left inside a transaction: it is not used again.
    broken: bool,
    driver: AbortHandle,
}

impl Live {
    /// Connects, driving the connection on the current runtime.
    pub async fn connect(config: &Config) -> Result<Self, tokio_postgres::Error> {
        let (client, connection) = config.connect(NoTls).await?;
        let driver = tokio::spawn(async move {
            if let Err(e) = connection.await {
                debug!(error = %e, "a PostgreSQL connection ended");
            }
        })
        .abort_handle();
        Ok(Self {
            client,
            statements: HashMap::new(),
            broken: false,
            driver,
        })
    }

    /// `sql` prepared once per connection: one round trip fewer on every later call.
    pub async fn statement(
        &mut self,
        sql: &'static str,
    ) -> Result<Statement, tokio_postgres::Error> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.client.prepare(sql).await?;
        self.statements.insert(sql, statement.clone());
        Ok(statement)
    }

    /// Runs `body` in a transaction: committed when it returns `Ok`, rolled back otherwise.
    pub async fn transaction<T, E>(
        &mut self,
        body: impl AsyncFnOnce(&mut Live) -> Result<T, E>,
        failed: impl Fn(String) -> E,
    ) -> Result<T, E> {
        self.broken = true;
        self.client
            .batch_execute("BEGIN")
            .await
            .map_err(|e| failed(error_text(&e)))?;
        match body(self).await {
            Ok(value) => {
                self.client
                    .batch_execute("COMMIT")
                    .await
                    .map_err(|e| failed(format!("committing: {}", error_text(&e))))?;
                self.broken = false;
                Ok(value)
            }
            Err(e) => {
                if self.client.batch_execute("ROLLBACK").await.is_ok() {
                    self.broken = false;
                }
                Err(e)
            }
        }
    }

    /// Marks the session as possibly inside a transaction (so not to be used again), or not.
    pub fn set_in_doubt(&mut self, in_doubt: bool) {
        self.broken = in_doubt;
    }

    /// Whether the connection must be replaced.
    pub fn is_closed(&self) -> bool {
        self.broken || self.client.is_closed()
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

/// Creates the tables when missing and checks the schema version, in one transaction under
/// an advisory lock.
pub(crate) async fn ensure_schema(client: &Client) -> Result<(), String> {
    let create = format!(
        "BEGIN;
         SELECT pg_advisory_xact_lock({SCHEMA_LOCK});
         {SCHEMA}
         {CLUSTER_SCHEMA}
         INSERT INTO journal_meta (key, value) VALUES ('schema_version', '{SCHEMA_VERSION}')
         ON CONFLICT (key) DO NOTHING;
         COMMIT;"
    );
    if let Err(e) = client.batch_execute(&create).await {
        // Leaves the session usable if the error was not the connection's.
        let _ = client.batch_execute("ROLLBACK").await;
        return Err(format!("creating the schema: {}", error_text(&e)));
    }
    let version: String = client
        .query_one(
            "SELECT value FROM journal_meta WHERE key = 'schema_version'",
            &[],
        )
        .await
        .map_err(|e| format!("reading the schema version: {}", error_text(&e)))?
        .get(0);
    if version != SCHEMA_VERSION {
        return Err(format!(
            "schema version {version} is not {SCHEMA_VERSION}, the one this server knows"
        ));
    }
    Ok(())
}

/// A connection of its own, with the schema made: what the lease and the key tables start
/// with. Time-limited as a whole.
pub(crate) async fn open(config: &Config, timeout: Duration) -> Result<Live, StoreError> {
    let open_error = |reason: String| StoreError::Open {
        path: describe(config),
        reason,
    };
    let opened = tokio::time::timeout(timeout, async {
        let live = Live::connect(config).await.map_err(|e| error_text(&e))?;
        ensure_schema(&live.client).await?;
        Ok::<_, String>(live)
    })
    .await;
    match opened {
        Ok(Ok(live)) => Ok(live),
        Ok(Err(reason)) => Err(open_error(reason)),
        Err(_) => Err(open_error(no_answer(timeout))),
    }
}

/// The error with the server's own message when it sent one (tokio-postgres' `Display` alone
/// says only "db error").
pub(crate) fn error_text(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{e}: {}", db.message()),
        None => e.to_string(),
    }
}

pub(crate) fn write_error(e: tokio_postgres::Error) -> StoreError {
    StoreError::Write(error_text(&e))
}

pub(crate) fn read_error(e: tokio_postgres::Error) -> StoreError {
    StoreError::Read(error_text(&e))
}

pub(crate) fn no_answer(timeout: Duration) -> String {
    format!(
        "PostgreSQL did not answer within {} ms",
        timeout.as_millis()
    )
}

/// SQL integers are signed; revisions and times stay far below `i64::MAX`.
pub(crate) fn sql_int(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

pub(crate) fn from_sql_int(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_description_never_shows_the_password() {
        let config = parse(
            "postgres://journal:s3cret@db.example:6543/switchboard",
            "test",
            Duration::from_secs(1),
        )
        .unwrap();
        assert_eq!(
            describe(&config),
            "postgres://journal@db.example:6543/switchboard"
        );
        assert_eq!(config.get_application_name(), Some("test"));
    }

    #[test]
    fn an_unparsable_url_is_an_open_error_without_the_url() {
        let err = parse(
            "postgres://journal:s3cret@[",
            "test",
            Duration::from_secs(1),
        )
        .expect_err("not a URL");
        assert!(matches!(err, StoreError::Open { .. }), "{err:?}");
        assert!(!err.to_string().contains("s3cret"), "{err}");
    }
}
