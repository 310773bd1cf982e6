//! Argon2id over memory the caller keeps. Each hashing thread owns one `Scratch` for good,
//! so a burst of logins reuses a few buffers (about 19 MiB each with the default parameters)
//! instead of allocating one per check, which the allocator would then keep per thread.

use std::sync::OnceLock;

use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString, rand_core::OsRng};
use argon2::{Algorithm, Argon2, Block, Params, Version};

use crate::domain::DomainError;
use crate::domain::agents::PasswordHashString;

/// One thread's Argon2 working memory, grown to the largest parameters it has met.
#[derive(Default)]
pub struct Scratch {
    blocks: Vec<Block>,
}

impl Scratch {
    /// Hashes a password with a fresh salt and the default parameters (Argon2id, v19).
    pub fn hash(&mut self, password: &str) -> Result<PasswordHashString, DomainError> {
        let failed = |e: argon2::password_hash::Error| {
            DomainError::Internal(format!("password hashing failed: {e}"))
        };
        let salt = SaltString::generate(&mut OsRng);
        let params = Params::default();
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
        let mut salt_bytes = [0u8; 64];
        let salt_bytes = salt.as_salt().decode_b64(&mut salt_bytes).map_err(failed)?;
        let output_len = params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN);
        let memory = self.blocks(&params);
        let output = Output::init_with(output_len, |out| {
            Ok(argon.hash_password_into_with_memory(
                password.as_bytes(),
                salt_bytes,
                out,
                memory,
            )?)
        })
        .map_err(failed)?;
        let phc = PasswordHash {
            algorithm: Algorithm::Argon2id.ident(),
            version: Some(Version::V0x13.into()),
            params: ParamsString::try_from(&params).map_err(failed)?,
            salt: Some(salt.as_salt()),
            hash: Some(output),
        };
        Ok(PasswordHashString::from_phc(phc.to_string()))
    }

    /// Checks a password against a stored hash, or against a dummy one when the account is
    /// unknown, so that the work (and the time) is the same either way; an unknown account
    /// never matches.
    pub fn verify(&mut self, password: &str, stored: Option<&PasswordHashString>) -> bool {
        let known = stored.is_some();
        let stored = match stored {
            Some(stored) => stored,
            None => self.dummy(),
        };
        let matches = self.matches(password, stored).unwrap_or(false);
        known && matches
    }

    /// The hash unknown accounts are checked against: computed once per process, with the
    /// parameters real hashes get.
    pub fn dummy(&mut self) -> &'static PasswordHashString {
        static DUMMY: OnceLock<PasswordHashString> = OnceLock::new();
        DUMMY.get_or_init(|| self.hash("not a real password").expect("hashing works"))
    }

    /// Recomputes `stored`'s hash for `password` with its own parameters and salt, and
    /// compares in constant time; `None` when `stored` is not a usable Argon2 PHC string.
    fn matches(&mut self, password: &str, stored: &PasswordHashString) -> Option<bool> {
        let parsed = PasswordHash::new(stored.as_phc()).ok()?;
        let (salt, expected) = (parsed.salt?, parsed.hash?);
        let algorithm = Algorithm::try_from(parsed.algorithm).ok()?;
        let version = match parsed.version {
            Some(v) => Version::try_from(v).ok()?,
            None => Version::default(),
        };
        let params = Params::try_from(&parsed).ok()?;
        let argon = Argon2::new(algorithm, version, params.clone());
        let mut salt_bytes = [0u8; 64];
        let salt_bytes = salt.decode_b64(&mut salt_bytes).ok()?;
        let memory = self.blocks(&params);
        let computed = Output::init_with(expected.len(), |out| {
            Ok(argon.hash_password_into_with_memory(
                password.as_bytes(),
                salt_bytes,
                out,
                memory,
            )?)
        })
        .ok()?;
        // `Output`'s equality is constant-time.
        Some(computed == expected)
    }

    /// Exactly the blocks `params` need, reusing (and if need be growing) the buffer. Argon2
    /// writes every block before reading it, so what a previous hash left does not matter.
    fn blocks(&mut self, params: &Params) -> &mut [Block] {
        let needed = params.block_count();
        if self.blocks.len() < needed {
            self.blocks.resize(needed, Block::default());
        }
        &mut self.blocks[..needed]
    }
}

#[cfg(test)]
mod tests {
    use argon2::password_hash::{PasswordHasher, PasswordVerifier};

    use super::*;

    #[test]
    fn reused_memory_gives_the_standard_answers() {
        let mut scratch = Scratch::default();
        let ours = scratch.hash("s3cret-pass").unwrap();
        let parsed = PasswordHash::new(ours.as_phc()).unwrap();
        assert!(
            Argon2::default()
                .verify_password(b"s3cret-pass", &parsed)
                .is_ok()
        );
        assert!(ours.as_phc().starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));

        let salt = SaltString::generate(&mut OsRng);
        let theirs = Argon2::default()
            .hash_password(b"other-pass", &salt)
            .unwrap()
            .to_string();
        let theirs = PasswordHashString::from_phc(theirs);
        // The same scratch, dirty from the hashes before, checks both ways.
        assert!(scratch.verify("other-pass", Some(&theirs)));
        assert!(!scratch.verify("other-pasS", Some(&theirs)));
        assert!(scratch.verify("s3cret-pass", Some(&ours)));
        assert!(!scratch.verify("other-pass", Some(&ours)));
    }

    #[test]
    fn unknown_accounts_and_garbage_never_match() {
        let mut scratch = Scratch::default();
        assert!(!scratch.verify("not a real password", None));
        let garbage = PasswordHashString::from_phc("$argon2id$nonsense".into());
        assert!(!scratch.verify("anything", Some(&garbage)));
        assert!(std::ptr::eq(scratch.dummy(), scratch.dummy()));
    }
}
