//! Identifiers and the validation of their wire form: one place for each id's rules.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::error::{DomainError, DomainResult};

/// Longest id or name accepted from the wire.
pub const MAX_ID_LEN: usize = 128;

/// A registered client (a desktop connection or a unary user).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ClientId(pub Uuid);

impl ClientId {
    pub fn parse(field: &'static str, raw: &str) -> DomainResult<Self> {
        if raw.is_empty() {
            return Err(DomainError::invalid(field, "must not be empty"));
        }
        Uuid::try_parse(raw)
            .map(Self)
            .map_err(|_| DomainError::invalid(field, format!("'{}' is not a UUID", shorten(raw))))
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Checks a name-like id: 1 to 128 characters of letters, digits, `.`, `_`, `@` and `-`.
pub fn validate_name(field: &'static str, raw: &str) -> DomainResult<()> {
    if raw.is_empty() {
        return Err(DomainError::invalid(field, "must not be empty"));
    }
    if raw.chars().count() > MAX_ID_LEN {
        return Err(DomainError::invalid(
            field,
            format!("must be at most {MAX_ID_LEN} characters"),
        ));
    }
    if let Some(bad) = raw
        .chars()
        .find(|c| !(c.is_alphanumeric() || matches!(c, '.' | '_' | '@' | '-')))
    {
        return Err(DomainError::invalid(
            field,
            format!("character {bad:?} is not allowed (letters, digits, '.', '_', '@', '-')"),
        ));
    }
    Ok(())
}

/// Checks that a field is set, returning it for chaining.
pub fn require<'a>(field: &'static str, raw: &'a str) -> DomainResult<&'a str> {
    if raw.is_empty() {
        Err(DomainError::invalid(field, "must not be empty"))
    } else if raw.chars().count() > 4 * MAX_ID_LEN {
        Err(DomainError::invalid(field, "is too long"))
    } else {
        Ok(raw)
    }
}

/// Cuts what we quote back in an error message, so a huge input is not echoed whole.
pub fn shorten(raw: &str) -> String {
    const KEEP: usize = 64;
    if raw.chars().count() <= KEEP {
        raw.to_owned()
    } else {
        let head: String = raw.chars().take(KEEP).collect();
        format!("{head}…")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_accept_the_documented_alphabet_only() {
        assert!(validate_name("agent_id", "rajat.gupta@example-1_x").is_ok());
        let err = validate_name("agent_id", "bad id").unwrap_err();
        assert_eq!(
            err.to_string(),
            "agent_id: character ' ' is not allowed (letters, digits, '.', '_', '@', '-')"
        );
        assert!(validate_name("agent_id", "").is_err());
        assert!(validate_name("agent_id", &"a".repeat(129)).is_err());
    }

    #[test]
    fn client_ids_must_be_uuids() {
        assert!(ClientId::parse("client_id", "nope").is_err());
        let id = ClientId(Uuid::from_u128(0x1234_5678));
        assert_eq!(ClientId::parse("client_id", &id.to_string()).unwrap(), id);
    }
}
