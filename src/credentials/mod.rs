//! Passwords: hashing and checking, deliberately slow and memory-hard (Argon2id, about
//! 19 MiB each), so they run at the edge on a few dedicated threads (`pool`), never inside
//! the rules or on the engine task. Only the resulting PHC string (`PasswordHashString`)
//! enters the domain. `Logins` is the gate every login goes through: it throttles failed
//! attempts per account and per peer address (`throttle`) before any password is checked.

mod hashing;
mod logins;
mod pool;
mod throttle;

pub use hashing::Scratch;
pub use logins::{
    ACCOUNT_BACKOFF_AFTER, ACCOUNT_LOCKOUT_AFTER, Attempt, LoginConfig, Logins, MAX_TRACKED_KEYS,
    PEER_FACTOR, default_workers,
};
pub use pool::{HashingPool, POOL_FULL};
pub use throttle::{Key, Refused, Rules, Throttle};

use crate::domain::DomainError;
use crate::domain::agents::PasswordHashString;

/// Hashes a password with a fresh salt, on the calling thread with memory of its own (the
/// server goes through `Logins`). Deliberately slow: call it off the engine task.
pub fn hash_password(password: &str) -> Result<PasswordHashString, DomainError> {
    Scratch::default().hash(password)
}

/// Checks a password against a stored hash, or against a dummy one when the agent is unknown,
/// so that the answer takes as long either way; on the calling thread, like `hash_password`.
pub fn verify_password(password: &str, stored: Option<&PasswordHashString>) -> bool {
    Scratch::default().verify(password, stored)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_do_not_contain_the_password() {
        let hash = hash_password("s3cret-pass").unwrap();
        assert!(!hash.as_phc().contains("s3cret-pass"));
        assert!(verify_password("s3cret-pass", Some(&hash)));
        assert!(!verify_password("wrong", Some(&hash)));
        assert!(!verify_password("s3cret-pass", None));
        assert_eq!(format!("{hash:?}"), "PasswordHash(..)");
    }

    #[test]
    fn the_same_password_gets_a_different_salt() {
        assert_ne!(hash_password("p").unwrap(), hash_password("p").unwrap());
    }
}
