//! Identifiers. The bounds and grammar of ids and names that come from the wire are in
//! `bounds` (`check_id` and friends); ids with a form of their own parse here.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::error::{DomainError, DomainResult};

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
    fn client_ids_must_be_uuids() {
        assert!(ClientId::parse("client_id", "nope").is_err());
        let id = ClientId(Uuid::from_u128(0x1234_5678));
        assert_eq!(ClientId::parse("client_id", &id.to_string()).unwrap(), id);
    }
}
