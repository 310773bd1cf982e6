//! The wire form: every conversion between `pb` and the domain, one file per concept, as
//! `TryFrom` (wire -> domain or command, validated against `domain::bounds`, refusing with
//! `DomainError::invalid` naming the field) and `From` (domain -> wire). Handlers convert a
//! request with `try_from`, hand the command to the engine and convert its answer with `from`.
//!
//! What a handler cannot finish by itself (a password to check first, a service to resolve
//! against this server's directory) converts into a small validated form with the same rules.

pub mod agents;
pub mod clients;
pub mod events;
pub mod principals;
pub mod refresh_tokens;
pub mod routing_config;
pub mod sessions;
pub mod tasks;

use prost_types::Timestamp;

use crate::domain::events::Millis;
use crate::domain::{DomainError, DomainResult};

/// A domain time (ms since the epoch) as a wire timestamp.
pub fn timestamp(ms: Millis) -> Option<Timestamp> {
    Some(Timestamp {
        seconds: i64::try_from(ms / 1000).unwrap_or(i64::MAX),
        nanos: i32::try_from((ms % 1000) * 1_000_000).unwrap_or(0),
    })
}

/// A wire timestamp as a domain time, refusing one before 1970 or with nanos out of range.
pub fn millis(field: &'static str, at: &Timestamp) -> DomainResult<Millis> {
    let seconds = u64::try_from(at.seconds)
        .map_err(|_| DomainError::invalid(field, "must not be before 1970-01-01T00:00:00Z"))?;
    let nanos = u64::try_from(at.nanos)
        .ok()
        .filter(|n| *n < 1_000_000_000)
        .ok_or_else(|| DomainError::invalid(field, "nanos must be 0 to 999,999,999"))?;
    Ok(seconds
        .saturating_mul(1000)
        .saturating_add(nanos / 1_000_000))
}

/// A duration the contract sets in seconds, as the domain keeps it. Never overflows: the
/// domain's bounds refuse what is too long, and its message states the seconds given.
pub fn seconds_to_ms(seconds: u32) -> Millis {
    Millis::from(seconds) * 1000
}

/// A domain duration in the contract's whole seconds.
pub fn ms_to_seconds(ms: Millis) -> u32 {
    u32::try_from(ms / 1000).unwrap_or(u32::MAX)
}

/// A count or index on the wire's `uint32`, saturating.
pub fn saturating_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Reads a wire enum, refusing numbers the contract does not define.
pub fn wire_enum<E: TryFrom<i32>>(field: &'static str, raw: i32) -> DomainResult<E> {
    E::try_from(raw).map_err(|_| DomainError::invalid(field, format!("{raw} is not a known value")))
}

/// A message field the request must set.
pub fn required<T>(field: &'static str, value: Option<T>) -> DomainResult<T> {
    value.ok_or_else(|| DomainError::invalid(field, "must be set"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb;

    #[test]
    fn times_and_durations() {
        assert_eq!(
            timestamp(1_234_567),
            Some(Timestamp {
                seconds: 1234,
                nanos: 567_000_000
            })
        );
        assert_eq!(seconds_to_ms(u32::MAX), 4_294_967_295_000);
        assert_eq!(ms_to_seconds(seconds_to_ms(u32::MAX)), u32::MAX);
        assert_eq!(ms_to_seconds(Millis::MAX), u32::MAX);
    }

    #[test]
    fn enums_and_required_fields() {
        let known: pb::TaskState = wire_enum("state", 3).unwrap();
        assert_eq!(known, pb::TaskState::Active);
        assert_eq!(
            wire_enum::<pb::TaskState>("state", 99)
                .unwrap_err()
                .to_string(),
            "state: 99 is not a known value"
        );
        assert_eq!(
            required::<()>("mrd", None).unwrap_err().to_string(),
            "mrd: must be set"
        );
    }
}
