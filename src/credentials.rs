//! Password hashing and checking: deliberately slow, so it runs at the edge on blocking
//! threads, never inside the rules or on the engine task. Only the resulting PHC string
//! (`PasswordHashString`) enters the domain.

use std::sync::OnceLock;

use argon2::Argon2;
use argon2::password_hash::{
    PasswordHash, PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng,
};

use crate::domain::DomainError;
use crate::domain::agents::PasswordHashString;

/// Hashes a password with a fresh salt. Deliberately slow: call it off the engine task.
pub fn hash_password(password: &str) -> Result<PasswordHashString, DomainError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| PasswordHashString::from_phc(h.to_string()))
        .map_err(|e| DomainError::Internal(format!("password hashing failed: {e}")))
}

/// Checks a password against a stored hash, or against a dummy one when the agent is unknown,
/// so that the answer takes as long either way. Deliberately slow: call it off the engine task.
pub fn verify_password(password: &str, stored: Option<&PasswordHashString>) -> bool {
    static DUMMY: OnceLock<PasswordHashString> = OnceLock::new();
    let known = stored.is_some();
    let stored = stored.unwrap_or_else(|| {
        DUMMY.get_or_init(|| hash_password("not a real password").expect("hashing works"))
    });
    let Ok(parsed) = PasswordHash::new(stored.as_phc()) else {
        return false;
    };
    let matches = Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok();
    known && matches
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
