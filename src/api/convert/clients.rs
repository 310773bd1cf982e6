//! Clients of the session hub (CoreService): their names, their registration, and the
//! lifecycle state the server reports to them.

use tonic::metadata::{Ascii, MetadataValue};

use crate::domain::bounds::check_name;
use crate::domain::commands as cmd;
use crate::domain::{ClientId, DomainError, DomainResult};
use crate::lifecycle::Phase;
use crate::pb;

/// The name of a client in logs and diagnostics: one line of at most `bounds::MAX_NAME_CHARS`,
/// as given, or a stand-in when none is given. An over-long name or one with a control
/// character is refused, never cut or cleaned.
pub fn client_name(field: &'static str, raw: &str, fallback: &str) -> DomainResult<String> {
    if raw.is_empty() {
        return Ok(fallback.to_owned());
    }
    check_name(field, raw)?;
    Ok(raw.to_owned())
}

/// A client name from request metadata (`field` is the header). A header carries visible ASCII
/// and, beyond it, raw bytes: those must be UTF-8, and the name is then checked as any other.
pub fn client_name_header(
    field: &'static str,
    value: Option<&MetadataValue<Ascii>>,
    fallback: &str,
) -> DomainResult<String> {
    let Some(value) = value else {
        return Ok(fallback.to_owned());
    };
    let raw = std::str::from_utf8(value.as_bytes())
        .map_err(|_| DomainError::invalid(field, "must be UTF-8"))?;
    client_name(field, raw, fallback)
}

/// A new client's id: random, made here at the edge so the rules stay deterministic.
pub fn new_client_id() -> ClientId {
    ClientId(uuid::Uuid::new_v4())
}

impl TryFrom<pb::RegisterClientRequest> for cmd::RegisterClient {
    type Error = DomainError;

    fn try_from(req: pb::RegisterClientRequest) -> DomainResult<Self> {
        Ok(Self {
            client_name: client_name("client_name", &req.client_name, "unnamed client")?,
            client_id: new_client_id(),
        })
    }
}

/// A browser feed's request, checked: the client it resumes (`None`: a new one, named
/// `name`) and the first revision to replay (0: none).
pub struct FeedOpening {
    pub resume: Option<ClientId>,
    pub name: String,
    pub start_revision: u64,
}

impl FeedOpening {
    /// `fallback` names a new client that gave no name.
    pub fn parse(req: &pb::FeedRequest, fallback: &str) -> DomainResult<Self> {
        let resume = match req.client_id.as_str() {
            "" => None,
            raw => Some(ClientId::parse("client_id", raw)?),
        };
        Ok(Self {
            resume,
            name: client_name("client_name", &req.client_name, fallback)?,
            start_revision: req.start_revision,
        })
    }
}

impl From<Phase> for pb::ServiceStatus {
    fn from(phase: Phase) -> Self {
        match phase {
            Phase::Starting => Self::Starting,
            Phase::InService => Self::InService,
            Phase::Stopping => Self::Stopping,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_refused_not_cut() {
        assert_eq!(client_name("client_name", "", "x").unwrap(), "x");
        assert_eq!(
            client_name("client_name", "media-bar é", "x").unwrap(),
            "media-bar é"
        );
        assert_eq!(
            client_name("client_name", &"n".repeat(257), "x")
                .unwrap_err()
                .to_string(),
            "client_name: must be at most 256 characters"
        );
        assert_eq!(
            client_name("client_name", "a\nb", "x")
                .unwrap_err()
                .to_string(),
            "client_name: must not contain control character U+000A"
        );
    }

    #[test]
    fn header_names_decode_as_utf8() {
        let header = |bytes: &[u8]| MetadataValue::<Ascii>::try_from(bytes).unwrap();
        let field = "switchboard-client-name";
        assert_eq!(client_name_header(field, None, "fb").unwrap(), "fb");
        assert_eq!(
            client_name_header(field, Some(&header("desk 1".as_bytes())), "fb").unwrap(),
            "desk 1"
        );
        assert!(client_name_header(field, Some(&header(&[0xff, 0x41])), "fb").is_err());
        let bidi = "a\u{202E}b";
        assert_eq!(
            client_name_header(field, Some(&header(bidi.as_bytes())), "fb")
                .unwrap_err()
                .to_string(),
            "switchboard-client-name: must not contain bidirectional control U+202E"
        );
        assert!(client_name_header(field, Some(&header(b"tab\there")), "fb").is_err());
    }
}
