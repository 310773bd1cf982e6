//! Failed logins, counted per account and per peer address, slow down and then lock out
//! further attempts. Pure bookkeeping: the time comes in as a parameter (`Logins` reads it
//! from a `Clock`), so the rules are tested without sleeping.
//!
//! For each key, with its `Rules`:
//! - the first `backoff_after` failures cost nothing;
//! - each failure from there on makes the next attempt wait `backoff_ms`, doubled per further
//!   failure (capped at `lockout_ms`): an attempt before then is refused unchecked;
//! - the `lockout_after`th failure locks the key out for `lockout_ms`: every attempt is refused
//!   unchecked, the right password too. After that one more failure locks it out again;
//! - a key with no failure for `forget_after_ms` (and not locked out) starts afresh.
//!
//! A success clears its account's count, never its peer's (one good account must not buy an
//! address more guesses). Attempts still being checked count against their account, so a
//! burst of parallel guesses cannot slip past the count. Unknown accounts are counted exactly
//! like known ones, so the answers never tell them apart. At most `max_keys` keys are kept:
//! past that, expired ones go first, then the longest quiet.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;

use crate::domain::Millis;

/// What a key's failures lead to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    /// Failures before attempts must wait.
    pub backoff_after: u32,
    /// Failures that lock the key out.
    pub lockout_after: u32,
    /// The first wait, doubled per further failure.
    pub backoff_ms: Millis,
    /// How long a lockout lasts; also the longest wait.
    pub lockout_ms: Millis,
    /// How long a key's failures are remembered after its last one.
    pub forget_after_ms: Millis,
}

impl Rules {
    /// The wait after `failures` failures: none, a doubling backoff, or a lockout.
    fn wait_after(&self, failures: u32) -> Option<Millis> {
        if failures >= self.lockout_after {
            Some(self.lockout_ms)
        } else if failures >= self.backoff_after {
            let doublings = (failures - self.backoff_after).min(32);
            Some(
                self.backoff_ms
                    .saturating_mul(1 << doublings)
                    .min(self.lockout_ms),
            )
        } else {
            None
        }
    }
}

/// Whose failures are counted.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Key {
    /// An account id as given, whether or not such an account exists.
    Account(String),
    /// A peer address; IPv6 by its /64 (one host usually has the whole prefix), IPv4-mapped
    /// IPv6 as IPv4.
    Peer(IpAddr),
}

impl Key {
    pub fn peer(addr: IpAddr) -> Self {
        let addr = match addr {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
            },
            v4 => v4,
        };
        Self::Peer(addr)
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Key::Account(id) => write!(f, "account {id}"),
            Key::Peer(addr) => write!(f, "peer {addr}"),
        }
    }
}

/// An attempt refused unchecked; it may be retried after `retry_after_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    pub retry_after_ms: Millis,
}

#[derive(Debug, Clone, Default)]
struct Entry {
    failures: u32,
    /// Attempts admitted and not yet decided (accounts only).
    pending: u32,
    last_failure: Millis,
    /// No attempt before this.
    blocked_until: Millis,
}

impl Entry {
    fn forgettable(&self, rules: &Rules, now: Millis) -> bool {
        self.pending == 0
            && now >= self.blocked_until
            && (self.failures == 0
                || now >= self.last_failure.saturating_add(rules.forget_after_ms))
    }
}

#[derive(Debug)]
pub struct Throttle {
    account: Rules,
    peer: Rules,
    max_keys: usize,
    entries: HashMap<Key, Entry>,
}

impl Throttle {
    pub fn new(account: Rules, peer: Rules, max_keys: usize) -> Self {
        Self {
            account,
            peer,
            max_keys: max_keys.max(1),
            entries: HashMap::new(),
        }
    }

    pub fn tracked(&self) -> usize {
        self.entries.len()
    }

    /// Admits an attempt for `account` from `peer` (counted as pending until `failed`,
    /// `succeeded` or `withdrawn`), or refuses it with the longest wait either key has.
    pub fn admit(
        &mut self,
        account: &str,
        peer: Option<IpAddr>,
        now: Millis,
    ) -> Result<(), Refused> {
        let account_key = Key::Account(account.to_owned());
        self.forget_if_expired(&account_key, now);
        let mut wait = 0;
        if let Some(entry) = self.entries.get(&account_key) {
            wait = wait.max(entry.blocked_until.saturating_sub(now));
            // Past the free failures, one attempt at a time.
            if entry.pending > 0 && entry.failures + entry.pending >= self.account.backoff_after {
                let next = self
                    .account
                    .wait_after(entry.failures + entry.pending)
                    .unwrap_or(self.account.backoff_ms);
                wait = wait.max(next.max(1));
            }
        }
        if let Some(peer) = peer.map(Key::peer) {
            self.forget_if_expired(&peer, now);
            if let Some(entry) = self.entries.get(&peer) {
                wait = wait.max(entry.blocked_until.saturating_sub(now));
            }
        }
        if wait > 0 {
            return Err(Refused {
                retry_after_ms: wait,
            });
        }
        self.entry(account_key, now).pending += 1;
        Ok(())
    }

    /// The admitted attempt failed. Returns the keys this failure locked out, for the log.
    pub fn failed(&mut self, account: &str, peer: Option<IpAddr>, now: Millis) -> Vec<Key> {
        let mut locked = Vec::new();
        let account_key = Key::Account(account.to_owned());
        let rules = self.account;
        let entry = self.entry(account_key.clone(), now);
        entry.pending = entry.pending.saturating_sub(1);
        if fail(entry, &rules, now) {
            locked.push(account_key);
        }
        if let Some(peer) = peer.map(Key::peer) {
            let rules = self.peer;
            if fail(self.entry(peer.clone(), now), &rules, now) {
                locked.push(peer);
            }
        }
        locked
    }

    /// The admitted attempt succeeded: its account starts afresh.
    pub fn succeeded(&mut self, account: &str) {
        let key = Key::Account(account.to_owned());
        if let Some(entry) = self.entries.get_mut(&key) {
            entry.pending = entry.pending.saturating_sub(1);
            entry.failures = 0;
            entry.blocked_until = 0;
            if entry.pending == 0 {
                self.entries.remove(&key);
            }
        }
    }

    /// The admitted attempt was never decided (refused by the pool, cancelled).
    pub fn withdrawn(&mut self, account: &str, now: Millis) {
        let key = Key::Account(account.to_owned());
        if let Some(entry) = self.entries.get_mut(&key) {
            entry.pending = entry.pending.saturating_sub(1);
            if entry.forgettable(&self.account, now) {
                self.entries.remove(&key);
            }
        }
    }

    fn rules(&self, key: &Key) -> &Rules {
        match key {
            Key::Account(_) => &self.account,
            Key::Peer(_) => &self.peer,
        }
    }

    fn forget_if_expired(&mut self, key: &Key, now: Millis) {
        let rules = *self.rules(key);
        if self
            .entries
            .get(key)
            .is_some_and(|e| e.forgettable(&rules, now))
        {
            self.entries.remove(key);
        }
    }

    /// `key`'s entry, made room for when new.
    fn entry(&mut self, key: Key, now: Millis) -> &mut Entry {
        if !self.entries.contains_key(&key) && self.entries.len() >= self.max_keys {
            self.make_room(now);
        }
        self.entries.entry(key).or_default()
    }

    /// Drops expired keys; if that is not enough, the longest quiet ones down to 7/8 of the
    /// cap, so that the cost of sorting is spread over many new keys.
    fn make_room(&mut self, now: Millis) {
        let (account, peer) = (self.account, self.peer);
        let rules = |key: &Key| match key {
            Key::Account(_) => account,
            Key::Peer(_) => peer,
        };
        self.entries
            .retain(|key, entry| !entry.forgettable(&rules(key), now));
        let target = self.max_keys - self.max_keys / 8 - 1;
        if self.entries.len() <= target {
            return;
        }
        let mut quiet: Vec<(Millis, Key)> = self
            .entries
            .iter()
            .filter(|(_, e)| e.pending == 0)
            .map(|(k, e)| (e.last_failure.max(e.blocked_until), k.clone()))
            .collect();
        quiet.sort_unstable_by_key(|(at, _)| *at);
        let excess = self.entries.len() - target;
        for (_, key) in quiet.into_iter().take(excess) {
            self.entries.remove(&key);
        }
    }
}

/// Counts a failure; true when it locked the key out.
fn fail(entry: &mut Entry, rules: &Rules, now: Millis) -> bool {
    entry.failures = entry.failures.saturating_add(1);
    entry.last_failure = now;
    match rules.wait_after(entry.failures) {
        Some(wait) => {
            entry.blocked_until = now.saturating_add(wait);
            entry.failures >= rules.lockout_after
        }
        None => false,
    }
}

#[cfg(test)]
#[path = "throttle_tests.rs"]
mod tests;
