//! Helpers for the auth tests: a test issuer, and hand-built token parts for forgeries.

use super::tokens::{SigningKey, TokenConfig, TokenIssuer};

/// A fixed "now" for tests that pass time explicitly.
pub const NOW: u64 = 1_700_000_000;

pub fn config() -> TokenConfig {
    TokenConfig {
        issuer: "switchboard-test".to_owned(),
        audience: "switchboard".to_owned(),
        ttl_secs: 900,
    }
}

pub fn issuer_with(config: TokenConfig) -> TokenIssuer {
    TokenIssuer::new(config, SigningKey::generate().expect("a fresh key"))
}

pub fn issuer() -> TokenIssuer {
    issuer_with(config())
}

/// Unpadded base64url, as JWT segments are written.
pub fn b64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, byte)| n | u32::from(*byte) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
        }
    }
    out
}

/// `token` with its header and/or claims segment replaced by the given JSON, its signature
/// kept.
pub fn forge(token: &str, header: Option<&str>, claims: Option<&str>) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "a JWT has three segments");
    let header = header.map_or_else(|| parts[0].to_owned(), |json| b64url(json.as_bytes()));
    let claims = claims.map_or_else(|| parts[1].to_owned(), |json| b64url(json.as_bytes()));
    format!("{header}.{claims}.{}", parts[2])
}

#[test]
fn b64url_matches_known_vectors() {
    assert_eq!(b64url(b""), "");
    assert_eq!(b64url(b"f"), "Zg");
    assert_eq!(b64url(b"fo"), "Zm8");
    assert_eq!(b64url(b"foo"), "Zm9v");
    assert_eq!(b64url(b"foob"), "Zm9vYg");
    assert_eq!(b64url(&[0xfb, 0xff]), "-_8");
}
