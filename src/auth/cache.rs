//! Tokens already verified, so that a client calling again with the same bearer token skips the
//! signature check. Keyed by the token's SHA-256, never the token itself; an entry is dropped
//! once its token expires. Only the signature and claims are cached: the credential version is
//! checked on every request, so a revocation takes effect at once.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use aws_lc_rs::digest;

use super::tokens::VerifiedToken;

type Key = [u8; 32];

pub struct TokenCache {
    entries: Mutex<HashMap<Key, VerifiedToken>>,
    capacity: usize,
}

impl Default for TokenCache {
    fn default() -> Self {
        Self::new(Self::DEFAULT_CAPACITY)
    }
}

impl TokenCache {
    pub const DEFAULT_CAPACITY: usize = 10_000;

    /// A cache of at most `capacity` tokens (at least one).
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
        }
    }

    /// What `token` was verified to say, if it was and has not expired at `now_secs`.
    pub fn get(&self, token: &str, now_secs: u64) -> Option<VerifiedToken> {
        let key = key(token);
        let mut entries = self.lock();
        match entries.get(&key) {
            Some(verified) if now_secs < verified.expires_at_secs => Some(verified.clone()),
            Some(_) => {
                entries.remove(&key);
                None
            }
            None => None,
        }
    }

    /// Remembers that `token` verified as `verified`. When full, expired entries go first, then
    /// an arbitrary eighth of the rest, so that a flood of fresh tokens costs a scan only now
    /// and then.
    pub fn insert(&self, token: &str, verified: VerifiedToken, now_secs: u64) {
        if now_secs >= verified.expires_at_secs {
            return;
        }
        let key = key(token);
        let mut entries = self.lock();
        if entries.len() >= self.capacity && !entries.contains_key(&key) {
            entries.retain(|_, kept| now_secs < kept.expires_at_secs);
            if entries.len() >= self.capacity {
                let excess = entries.len() + 1 - self.capacity;
                let evict = excess.max(self.capacity / 8);
                let victims: Vec<Key> = entries.keys().take(evict).copied().collect();
                for victim in victims {
                    entries.remove(&victim);
                }
            }
        }
        entries.insert(key, verified);
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The map stays whole whatever panicked while holding it, so a poisoned lock is used as is.
    fn lock(&self) -> MutexGuard<'_, HashMap<Key, VerifiedToken>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn key(token: &str) -> Key {
    let mut key = [0; 32];
    key.copy_from_slice(digest::digest(&digest::SHA256, token.as_bytes()).as_ref());
    key
}

#[cfg(test)]
mod tests {
    use crate::domain::{Actor, Principal, Role};

    use super::*;

    fn verified(id: &str, expires_at_secs: u64) -> VerifiedToken {
        VerifiedToken {
            principal: Principal {
                actor: Actor::Agent(id.to_owned()),
                roles: [Role::Agent].into(),
            },
            credential_version: 1,
            expires_at_secs,
        }
    }

    #[test]
    fn keeps_a_token_until_it_expires() {
        let cache = TokenCache::new(10);
        cache.insert("t1", verified("a1", 100), 50);
        assert_eq!(cache.get("t1", 99), Some(verified("a1", 100)));
        assert_eq!(cache.get("t2", 99), None);
        assert_eq!(cache.get("t1", 100), None);
        assert!(cache.is_empty(), "the expired entry is dropped when met");
    }

    #[test]
    fn does_not_keep_an_expired_token() {
        let cache = TokenCache::new(10);
        cache.insert("t1", verified("a1", 100), 100);
        assert!(cache.is_empty());
    }

    #[test]
    fn never_grows_past_its_capacity() {
        let cache = TokenCache::new(16);
        for n in 0..100 {
            cache.insert(&format!("t{n}"), verified("a1", 1_000), 0);
            assert!(cache.len() <= 16);
        }
        assert_eq!(cache.get("t99", 1), Some(verified("a1", 1_000)));
    }

    #[test]
    fn when_full_drops_expired_entries_first() {
        let cache = TokenCache::new(4);
        cache.insert("old1", verified("a1", 10), 0);
        cache.insert("old2", verified("a1", 10), 0);
        cache.insert("live1", verified("a1", 100), 0);
        cache.insert("live2", verified("a1", 100), 0);
        cache.insert("live3", verified("a1", 100), 20);
        assert_eq!(cache.len(), 3);
        for token in ["live1", "live2", "live3"] {
            assert!(cache.get(token, 20).is_some(), "{token}");
        }
    }

    #[test]
    fn is_keyed_by_a_hash_of_the_token() {
        assert_eq!(key("abc"), key("abc"));
        assert_ne!(key("abc"), key("abd"));
        assert_ne!(&key("abc")[..3], b"abc");
    }
}
