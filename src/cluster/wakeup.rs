//! Wake-ups for followers: every append to the shared journal ends with a `pg_notify` on
//! `switchboard_events` carrying its last revision; a listener publishes the latest one. It
//! is a wake-up only: a notification can be lost (a dropped connection, a restart), so a
//! reader always reads the journal from the revision it last applied, and a reconnect bumps
//! the value so that readers read again whatever they may have missed.

use std::future::poll_fn;
use std::time::Duration;

use tokio::sync::watch;
use tokio_postgres::{AsyncMessage, Config, NoTls};
use tracing::{debug, error, warn};

use crate::store::postgres::{EVENTS_CHANNEL, error_text, parse};

/// The limit of connecting and of each check that the connection still answers.
const CALL_LIMIT: Duration = Duration::from_secs(5);
/// How often a quiet connection is checked: a cut-off network sends no error by itself.
const CHECK_EVERY: Duration = Duration::from_secs(5);
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// Listens on `switchboard_events` from a task of the current runtime, reconnecting with a
/// short back-off when the connection drops, until every receiver is gone. The value is the
/// latest revision notified; it is also marked changed on every (re)connect. A URL that does
/// not parse is logged and gives a receiver whose sender is gone.
pub fn listen(url: &str) -> watch::Receiver<u64> {
    let (tx, rx) = watch::channel(0);
    match parse(url, "switchboard-wakeup", CALL_LIMIT) {
        Ok(config) => {
            tokio::spawn(run(config, tx));
        }
        Err(e) => error!(error = %e, "journal wake-ups cannot listen"),
    }
    rx
}

async fn run(config: Config, tx: watch::Sender<u64>) {
    let mut backoff = FIRST_BACKOFF;
    loop {
        let outcome = tokio::select! {
            outcome = session(&config, &tx, &mut backoff) => outcome,
            () = tx.closed() => return,
        };
        if let Err(e) = outcome {
            warn!(error = %e, retry_in_ms = backoff.as_millis() as u64,
                  "journal wake-ups: the LISTEN connection failed");
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = tx.closed() => return,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// One connection: LISTEN, bump, then publish notifications until it fails.
async fn session(
    config: &Config,
    tx: &watch::Sender<u64>,
    backoff: &mut Duration,
) -> Result<(), String> {
    let (client, mut connection) = tokio::time::timeout(CALL_LIMIT, config.connect(NoTls))
        .await
        .map_err(|_| "connecting timed out".to_owned())?
        .map_err(|e| error_text(&e))?;
    // The connection is polled here, not spawned: notifications come out of it.
    let (notes, mut noted) = tokio::sync::mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        loop {
            match poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(n))) => {
                    if notes.send(n.payload().to_owned()).is_err() {
                        return Ok(());
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(error_text(&e)),
                None => return Ok(()),
            }
        }
    });
    let _abort_driver = AbortOnDrop(driver.abort_handle());
    let listen = format!("LISTEN {EVENTS_CHANNEL}");
    tokio::time::timeout(CALL_LIMIT, client.batch_execute(&listen))
        .await
        .map_err(|_| "LISTEN timed out".to_owned())?
        .map_err(|e| error_text(&e))?;
    *backoff = FIRST_BACKOFF;
    debug!("journal wake-ups: listening");
    // Whatever was notified while no one listened is read again.
    tx.send_modify(|_| {});
    let mut check = tokio::time::interval(CHECK_EVERY);
    check.tick().await;
    loop {
        tokio::select! {
            payload = noted.recv() => {
                let Some(payload) = payload else {
                    return Err("the connection closed".to_owned());
                };
                match payload.parse::<u64>() {
                    Ok(revision) => tx.send_modify(|latest| *latest = (*latest).max(revision)),
                    Err(_) => tx.send_modify(|_| {}),
                }
            }
            _ = check.tick() => {
                tokio::time::timeout(CALL_LIMIT, client.simple_query(""))
                    .await
                    .map_err(|_| "the connection stopped answering".to_owned())?
                    .map_err(|e| error_text(&e))?;
            }
        }
    }
}

struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
