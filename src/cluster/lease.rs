//! The leader's lease: one row of `cluster_lease` (`src/store/postgres/cluster.sql`), taken
//! when it has expired (the epoch grows by one with each take), renewed by its holder well
//! inside its time to live, released on a clean stop. Every time is the database's clock,
//! the one the nodes agree on. The journal fences its writes on the same row (`FOR SHARE`),
//! so a take waits for a commit under way, and a commit after it is refused.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio_postgres::{Client, Config};

use crate::store::StoreError;
use crate::store::postgres::{Live, error_text, from_sql_int, no_answer, open, parse, sql_int};

/// How long a statement on the lease row waits for a commit that holds it.
const LOCK_TIMEOUT_MS: u64 = 200;

const TAKE: &str = "UPDATE cluster_lease
     SET epoch = epoch + 1, holder = $1, address = $2,
         expires_at = clock_timestamp() + $3::BIGINT * INTERVAL '1 millisecond'
     WHERE id = 1 AND expires_at <= clock_timestamp()
     RETURNING epoch";
const RENEW: &str = "UPDATE cluster_lease
     SET expires_at = clock_timestamp() + $3::BIGINT * INTERVAL '1 millisecond'
     WHERE id = 1 AND holder = $1 AND epoch = $2 AND expires_at > clock_timestamp()";
const RELEASE: &str = "UPDATE cluster_lease SET expires_at = clock_timestamp()
     WHERE id = 1 AND holder = $1 AND epoch = $2 AND expires_at > clock_timestamp()";
const READ: &str = "SELECT epoch, COALESCE(holder, ''), COALESCE(address, ''),
            expires_at <= now.at,
            GREATEST(0, CEIL(EXTRACT(EPOCH FROM (expires_at - now.at)) * 1000))::BIGINT
     FROM cluster_lease, (SELECT clock_timestamp() AS at) AS now WHERE id = 1";

/// The lease as the database has it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseView {
    pub epoch: u64,
    /// Empty before the first take.
    pub holder: String,
    pub address: String,
    pub expired: bool,
    /// 0 once expired.
    pub remaining_ms: u64,
}

/// The lease row, through a connection of its own (replaced when it fails); every call is
/// time-limited.
pub struct LeaseTable {
    config: Config,
    timeout: Duration,
    conn: Mutex<Option<Live>>,
}

type Call<'a, T> = Pin<Box<dyn Future<Output = Result<T, tokio_postgres::Error>> + Send + 'a>>;

impl LeaseTable {
    /// Connects, creating the schema (and the lease row, expired at epoch 0) when missing.
    pub async fn connect(url: &str, timeout: Duration) -> Result<Self, StoreError> {
        let mut config = parse(url, "switchboard-lease", timeout)?;
        // A take or a renewal does not queue behind a commit holding the row (a cut-off
        // leader's may hold it until the server ends its session): it fails at once and is
        // tried again at the next look. A take that queued would go through long after its
        // caller gave up, with an expiry computed before the wait.
        let options = config.get_options().unwrap_or_default().to_owned();
        config.options(format!("{options} -c lock_timeout={LOCK_TIMEOUT_MS}"));
        let live = open(&config, timeout).await?;
        Ok(Self {
            config,
            timeout,
            conn: Mutex::new(Some(live)),
        })
    }

    /// Takes the lease when it has expired: epoch + 1, `holder` and `address` (where the
    /// other nodes forward commands), expiring `ttl` from now. `None`: it is held.
    pub async fn try_take(
        &self,
        holder: &str,
        address: &str,
        ttl: Duration,
    ) -> Result<Option<u64>, StoreError> {
        let (holder, address, ttl) = (holder.to_owned(), address.to_owned(), millis(ttl));
        self.call(StoreError::Write, move |c| {
            Box::pin(async move {
                let row = c.query_opt(TAKE, &[&holder, &address, &ttl]).await?;
                Ok(row.map(|row| from_sql_int(row.get(0))))
            })
        })
        .await
    }

    /// Extends the lease to `ttl` from now while `holder` still holds `epoch` and it has not
    /// expired. `false`: it is lost, and must not be used again.
    pub async fn renew(&self, holder: &str, epoch: u64, ttl: Duration) -> Result<bool, StoreError> {
        let (holder, epoch, ttl) = (holder.to_owned(), sql_int(epoch), millis(ttl));
        self.call(StoreError::Write, move |c| {
            Box::pin(async move { Ok(c.execute(RENEW, &[&holder, &epoch, &ttl]).await? == 1) })
        })
        .await
    }

    /// On a clean stop: expires the lease now, so that another node takes over at once.
    /// Nothing happens when `holder` no longer holds `epoch`.
    pub async fn release(&self, holder: &str, epoch: u64) -> Result<(), StoreError> {
        let (holder, epoch) = (holder.to_owned(), sql_int(epoch));
        self.call(StoreError::Write, move |c| {
            Box::pin(async move {
                c.execute(RELEASE, &[&holder, &epoch]).await?;
                Ok(())
            })
        })
        .await
    }

    pub async fn read(&self) -> Result<LeaseView, StoreError> {
        self.call(StoreError::Read, |c| {
            Box::pin(async move {
                let row = c.query_one(READ, &[]).await?;
                Ok(LeaseView {
                    epoch: from_sql_int(row.get(0)),
                    holder: row.get(1),
                    address: row.get(2),
                    expired: row.get(3),
                    remaining_ms: from_sql_int(row.get(4)),
                })
            })
        })
        .await
    }

    /// Runs `call` on the connection (connecting first when there is none), within the time
    /// limit; a connection that failed or ran out of time is dropped for the next call.
    async fn call<T, F>(&self, failed: fn(String) -> StoreError, call: F) -> Result<T, StoreError>
    where
        F: for<'a> FnOnce(&'a Client) -> Call<'a, T>,
    {
        let mut conn = self.conn.lock().await;
        // Taken out for the call: on timeout it is dropped with the future, half-answered.
        let ran = tokio::time::timeout(self.timeout, async {
            let live = match conn.take() {
                Some(live) => live,
                None => Live::connect(&self.config)
                    .await
                    .map_err(|e| failed(format!("connecting: {}", error_text(&e))))?,
            };
            let result = call(&live.client).await.map_err(|e| failed(error_text(&e)));
            if result.is_ok() && !live.is_closed() {
                *conn = Some(live);
            }
            result
        })
        .await;
        ran.unwrap_or_else(|_| Err(failed(no_answer(self.timeout))))
    }
}

fn millis(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX)
}
