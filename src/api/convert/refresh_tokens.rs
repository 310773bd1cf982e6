//! Refresh tokens on the wire: `rt1.<chain id>.<secret>`. The chain id finds the chain; only a
//! hash of the secret is ever stored or compared. The secret is 32 random bytes, so a fast
//! hash is enough: nothing short of the token itself can be guessed from it.

use std::fmt;

use crate::domain::{DomainError, DomainResult};

const PREFIX: &str = "rt1";
/// Longer input is refused unread, whatever it claims to be.
const MAX_TOKEN_CHARS: usize = 128;

/// A refresh token, in full. Debug never shows it.
pub struct RefreshToken {
    pub chain_id: String,
    secret: String,
}

impl fmt::Debug for RefreshToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RefreshToken")
            .field("chain_id", &self.chain_id)
            .finish_non_exhaustive()
    }
}

impl RefreshToken {
    /// A new token for chain `chain_id`, or for a new chain.
    pub fn mint(chain_id: Option<String>) -> Self {
        let chain_id = chain_id.unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
        let secret = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        Self { chain_id, secret }
    }

    /// Reads a token a client presented; a malformed one is refused as unauthenticated,
    /// without saying more.
    pub fn parse(raw: &str) -> DomainResult<Self> {
        if raw.is_empty() {
            return Err(DomainError::invalid("refresh_token", "must not be empty"));
        }
        let malformed = || DomainError::Unauthenticated;
        if raw.len() > MAX_TOKEN_CHARS {
            return Err(malformed());
        }
        let mut parts = raw.split('.');
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(PREFIX), Some(chain), Some(secret), None)
                if is_hex(chain, 32) && is_hex(secret, 64) =>
            {
                Ok(Self {
                    chain_id: chain.to_owned(),
                    secret: secret.to_owned(),
                })
            }
            _ => Err(malformed()),
        }
    }

    /// The hash the chain stores.
    pub fn hash(&self) -> String {
        use blake2::{Blake2s256, Digest};
        Blake2s256::digest(self.secret.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// The token to hand to the client, once.
    pub fn reveal(&self) -> String {
        format!("{PREFIX}.{}.{}", self.chain_id, self.secret)
    }
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minted_token_reads_back_with_the_same_hash() {
        let token = RefreshToken::mint(None);
        let read = RefreshToken::parse(&token.reveal()).unwrap();
        assert_eq!(read.chain_id, token.chain_id);
        assert_eq!(read.hash(), token.hash());
        let next = RefreshToken::mint(Some(token.chain_id.clone()));
        assert_eq!(next.chain_id, token.chain_id);
        assert_ne!(next.hash(), token.hash());
        assert!(!format!("{token:?}").contains(&token.secret));
    }

    #[test]
    fn malformed_tokens_are_refused() {
        for raw in ["x", "rt1.a.b", "rt2.0.0", &"a".repeat(500)] {
            assert!(matches!(
                RefreshToken::parse(raw),
                Err(DomainError::Unauthenticated)
            ));
        }
        assert!(matches!(
            RefreshToken::parse(""),
            Err(DomainError::InvalidArgument { .. })
        ));
    }
}
