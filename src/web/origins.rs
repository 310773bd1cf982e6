//! The servers a browser desktop compares (`--web-servers`), checked once at start-up.

use http::HeaderValue;
use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
#[error("'{given}' is not an origin: {reason} (write it as http://host:port or https://host:port)")]
pub struct OriginError {
    given: String,
    reason: &'static str,
}

/// Origins as browsers send them: `scheme://host[:port]`, without a path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WebOrigins(Vec<String>);

impl WebOrigins {
    /// Checks each origin; a trailing `/` is dropped, anything else past the port is refused.
    pub fn parse(given: &[String]) -> Result<Self, OriginError> {
        let mut origins = Vec::with_capacity(given.len());
        for raw in given.iter().map(|g| g.trim()).filter(|g| !g.is_empty()) {
            let origin = raw.strip_suffix('/').unwrap_or(raw);
            let fail = |reason| OriginError {
                given: raw.to_owned(),
                reason,
            };
            let rest = origin
                .strip_prefix("http://")
                .or_else(|| origin.strip_prefix("https://"))
                .ok_or_else(|| fail("it must start with http:// or https://"))?;
            if rest.is_empty() {
                return Err(fail("it names no host"));
            }
            if rest.contains(['/', '?', '#', '@']) {
                return Err(fail("it may hold only a host and a port"));
            }
            if !origin.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(fail("it must be visible ASCII (write a name in punycode)"));
            }
            let origin = origin.to_ascii_lowercase();
            if !origins.contains(&origin) {
                origins.push(origin);
            }
        }
        Ok(Self(origins))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn as_strs(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }

    pub(super) fn header_values(&self) -> Vec<HeaderValue> {
        self.0
            .iter()
            .filter_map(|o| HeaderValue::from_str(o).ok())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(given: &[&str]) -> Result<WebOrigins, OriginError> {
        WebOrigins::parse(&given.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
    }

    #[test]
    fn origins_are_normalised_and_deduplicated() {
        let origins = parse(&["http://A.example:50051/", "http://a.example:50051", " "]).unwrap();
        assert_eq!(
            origins.as_strs().collect::<Vec<_>>(),
            ["http://a.example:50051"]
        );
    }

    #[test]
    fn anything_but_an_origin_is_refused() {
        for bad in [
            "a.example:50051",
            "ftp://a.example",
            "http://",
            "http://a.example/desk",
            "http://user@a.example",
            "http://a.example?x",
            "http://bücher.example",
        ] {
            assert!(parse(&[bad]).is_err(), "{bad} was accepted");
        }
    }
}
