//! The gate every password goes through: the throttle decides whether an attempt is checked
//! at all, the hashing pool does the checking (and the hashing of new passwords).

use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tracing::warn;

use super::pool::HashingPool;
use super::throttle::{Refused, Rules, Throttle};
use crate::domain::agents::PasswordHashString;
use crate::domain::{DomainError, DomainResult, Millis};
use crate::engine::{Clock, SystemClock};

/// Failures per account before attempts wait; per peer address it is `PEER_FACTOR` times
/// more, as a whole contact center may log in from behind one address.
pub const ACCOUNT_BACKOFF_AFTER: u32 = 5;
/// Failures per account that lock it out (per peer address: `PEER_FACTOR` times more).
pub const ACCOUNT_LOCKOUT_AFTER: u32 = 10;
pub const PEER_FACTOR: u32 = 10;
/// Keys (accounts and addresses) whose failures are remembered at once.
pub const MAX_TRACKED_KEYS: usize = 100_000;

/// How many password checks run at once, how many wait, and the throttle's rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginConfig {
    /// Hashing threads; each holds one Argon2 buffer (about 19 MiB) once it has worked.
    pub workers: usize,
    /// Checks waiting for a thread; one more is refused with `ResourceExhausted`.
    pub queue: usize,
    pub account: Rules,
    pub peer: Rules,
    pub max_keys: usize,
}

impl LoginConfig {
    /// `workers` threads (0: `default_workers()`), `queue` waiting, a first backoff of
    /// `backoff_ms`, lockouts of `lockout_ms`; failures are forgotten after three lockouts'
    /// length without one.
    pub fn new(workers: usize, queue: usize, backoff_ms: Millis, lockout_ms: Millis) -> Self {
        let account = Rules {
            backoff_after: ACCOUNT_BACKOFF_AFTER,
            lockout_after: ACCOUNT_LOCKOUT_AFTER,
            backoff_ms,
            lockout_ms,
            forget_after_ms: lockout_ms.saturating_mul(3),
        };
        Self {
            workers: if workers == 0 {
                default_workers()
            } else {
                workers
            },
            queue,
            account,
            peer: Rules {
                backoff_after: ACCOUNT_BACKOFF_AFTER * PEER_FACTOR,
                lockout_after: ACCOUNT_LOCKOUT_AFTER * PEER_FACTOR,
                ..account
            },
            max_keys: MAX_TRACKED_KEYS,
        }
    }
}

impl Default for LoginConfig {
    /// As many threads as cores (2 to 8), 64 waiting, 1 s first backoff, 5 min lockouts.
    fn default() -> Self {
        Self::new(0, 64, 1_000, 300_000)
    }
}

/// The number of cores, at least 2 and at most 8 (which bounds the buffers to about 150 MiB).
pub fn default_workers() -> usize {
    std::thread::available_parallelism()
        .map_or(2, std::num::NonZeroUsize::get)
        .clamp(2, 8)
}

pub struct Logins {
    pool: HashingPool,
    throttle: Mutex<Throttle>,
    clock: Arc<dyn Clock>,
}

impl Default for Logins {
    fn default() -> Self {
        Self::new(&LoginConfig::default(), Arc::new(SystemClock))
    }
}

impl Logins {
    pub fn new(config: &LoginConfig, clock: Arc<dyn Clock>) -> Self {
        Self {
            pool: HashingPool::new(config.workers, config.queue),
            throttle: Mutex::new(Throttle::new(config.account, config.peer, config.max_keys)),
            clock,
        }
    }

    pub fn pool(&self) -> &HashingPool {
        &self.pool
    }

    /// Lets an attempt on `account` from `peer` be checked, or refuses it unchecked with
    /// `LoginThrottled`, the same whether the account exists or not. The caller reports the
    /// attempt's outcome on the `Attempt`; one dropped undecided is not counted.
    pub fn admit(self: &Arc<Self>, account: &str, peer: Option<IpAddr>) -> DomainResult<Attempt> {
        let now = self.clock.now();
        match self.throttle().admit(account, peer, now) {
            Ok(()) => Ok(Attempt {
                logins: Arc::clone(self),
                account: account.to_owned(),
                peer,
                decided: false,
            }),
            Err(Refused { retry_after_ms }) => Err(DomainError::LoginThrottled {
                retry_after_secs: retry_after_ms.div_ceil(1000).max(1),
            }),
        }
    }

    /// Hashes a new password on the pool.
    pub async fn hash(&self, password: String) -> DomainResult<PasswordHashString> {
        self.pool.run(move |s| s.hash(&password)).await?
    }

    /// Checks `password` on the pool against `stored`, or against the dummy hash when the
    /// account is unknown (`None`): the same work either way, and `false` for the unknown.
    pub async fn verify(
        &self,
        password: String,
        stored: Option<PasswordHashString>,
    ) -> DomainResult<bool> {
        self.pool
            .run(move |s| s.verify(&password, stored.as_ref()))
            .await
    }

    fn throttle(&self) -> MutexGuard<'_, Throttle> {
        self.throttle.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// An admitted login attempt, counted against its account until decided.
pub struct Attempt {
    logins: Arc<Logins>,
    account: String,
    peer: Option<IpAddr>,
    decided: bool,
}

impl Attempt {
    /// The right password: the account's failures are forgotten (not the peer's).
    pub fn succeeded(mut self) {
        self.decided = true;
        self.logins.throttle().succeeded(&self.account);
    }

    /// A wrong password or an unknown account: counted against both keys.
    pub fn failed(mut self) {
        self.decided = true;
        let now = self.logins.clock.now();
        let locked = self.logins.throttle().failed(&self.account, self.peer, now);
        for key in locked {
            warn!(%key, "too many failed logins: locked out");
        }
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        if !self.decided {
            let now = self.logins.clock.now();
            self.logins.throttle().withdrawn(&self.account, now);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;

    #[derive(Default)]
    struct FakeClock(AtomicU64);

    impl Clock for FakeClock {
        fn now(&self) -> Millis {
            self.0.load(Ordering::SeqCst)
        }
    }

    impl FakeClock {
        fn advance(&self, ms: Millis) {
            self.0.fetch_add(ms, Ordering::SeqCst);
        }
    }

    const PEER: Option<IpAddr> = Some(IpAddr::V4(Ipv4Addr::LOCALHOST));

    fn logins() -> (Arc<Logins>, Arc<FakeClock>) {
        let clock = Arc::new(FakeClock::default());
        let config = LoginConfig::new(2, 4, 1_000, 300_000);
        (Arc::new(Logins::new(&config, clock.clone())), clock)
    }

    fn throttled(secs: u64) -> DomainError {
        DomainError::LoginThrottled {
            retry_after_secs: secs,
        }
    }

    #[test]
    fn known_and_unknown_accounts_are_refused_alike() {
        let (logins, clock) = logins();
        for _ in 0..10 {
            for account in ["known", "ghost"] {
                logins.admit(account, PEER).unwrap().failed();
            }
            clock.advance(20_000);
        }
        // Locked out at the tenth failures, 20 s ago.
        for account in ["known", "ghost"] {
            assert_eq!(logins.admit(account, PEER).err(), Some(throttled(280)));
        }
    }

    #[test]
    fn the_lockout_ends_on_the_clock_and_a_success_clears_it() {
        let (logins, clock) = logins();
        for _ in 0..10 {
            logins.admit("ana", PEER).unwrap().failed();
            clock.advance(16_000);
        }
        assert_eq!(logins.admit("ana", PEER).err(), Some(throttled(284)));
        clock.advance(284_000);
        logins.admit("ana", PEER).unwrap().succeeded();
        for _ in 0..4 {
            logins.admit("ana", PEER).unwrap().failed();
        }
        assert!(logins.admit("ana", PEER).is_ok());
    }

    #[test]
    fn an_undecided_attempt_is_not_counted() {
        let (logins, _clock) = logins();
        for _ in 0..50 {
            drop(logins.admit("ana", PEER).unwrap());
        }
        assert_eq!(logins.throttle().tracked(), 0);
    }

    #[tokio::test]
    async fn hashes_and_checks_through_the_pool() {
        let (logins, _clock) = logins();
        let hash = logins.hash("pw-1".into()).await.unwrap();
        assert!(
            logins
                .verify("pw-1".into(), Some(hash.clone()))
                .await
                .unwrap()
        );
        assert!(!logins.verify("pw-2".into(), Some(hash)).await.unwrap());
        assert!(!logins.verify("pw-1".into(), None).await.unwrap());
    }
}
