//! Who called, across a forward. A follower forwards a call to the leader over its own
//! connection, so the leader would see the follower's address (and no client certificate):
//! sign-in throttling would count every caller of a follower as one, and a caller who signed in
//! with a client certificate would arrive without one. The follower therefore seals the
//! caller's address and certificate fingerprint into a header with the cluster's shared
//! forwarding key; the leader takes them in place of the connection's only when the seal
//! verifies, and strips the header otherwise, so a client cannot claim an address or a
//! certificate by sending the header itself.

use std::net::IpAddr;

use blake2::Blake2sMac256;
use blake2::digest::{KeyInit, Mac};
use http::{HeaderMap, HeaderName, HeaderValue, Request};
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};

use crate::auth::ForwardedCertificate;
use crate::tls::PeerIdentity;

/// `<ip>;<certificate fingerprint or empty>;<mac, hex>`.
pub const FORWARDED_FOR_HEADER: HeaderName = HeaderName::from_static("x-switchboard-forwarded-for");

/// The caller of a forwarded call, as the forwarding node saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardedPeer {
    pub ip: IpAddr,
    /// SHA-256 (lowercase hex) of the client certificate it presented, if any.
    pub certificate: Option<String>,
}

/// Seals and opens `FORWARDED_FOR_HEADER` with the cluster's forwarding key. Debug never shows
/// the key.
#[derive(Clone)]
pub struct PeerSeal {
    key: [u8; 32],
}

impl std::fmt::Debug for PeerSeal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PeerSeal(..)")
    }
}

impl PeerSeal {
    pub fn new(key: [u8; 32]) -> Self {
        Self { key }
    }

    fn mac(&self) -> Blake2sMac256 {
        // A 32-byte key is always accepted.
        <Blake2sMac256 as KeyInit>::new_from_slice(&self.key).expect("a 32-byte MAC key")
    }

    /// Puts `peer` in `headers`, replacing whatever a client sent under that name.
    pub fn seal(&self, peer: &ForwardedPeer, headers: &mut HeaderMap) {
        let body = format!(
            "{};{}",
            peer.ip,
            peer.certificate.as_deref().unwrap_or_default()
        );
        let mut mac = self.mac();
        mac.update(body.as_bytes());
        let tag = hex(&mac.finalize().into_bytes());
        match HeaderValue::from_str(&format!("{body};{tag}")) {
            Ok(value) => {
                headers.insert(FORWARDED_FOR_HEADER, value);
            }
            // A fingerprint is hex and an address prints as ASCII: unreachable, and then the
            // call merely arrives as the forwarding node's.
            Err(_) => {
                headers.remove(FORWARDED_FOR_HEADER);
            }
        }
    }

    /// Takes the header out of `headers`; the caller it names if its seal verifies.
    pub fn open(&self, headers: &mut HeaderMap) -> Option<ForwardedPeer> {
        let value = headers.remove(FORWARDED_FOR_HEADER)?;
        let value = value.to_str().ok()?;
        let (body, tag) = value.rsplit_once(';')?;
        let tag = unhex(tag)?;
        let mut mac = self.mac();
        mac.update(body.as_bytes());
        // Constant time: the tag is a secret's function.
        mac.verify_slice(&tag).ok()?;
        let (ip, certificate) = body.split_once(';')?;
        Some(ForwardedPeer {
            ip: ip.parse().ok()?,
            certificate: (!certificate.is_empty()).then(|| certificate.to_owned()),
        })
    }
}

/// The caller of `request` on this node's connection: its address and client certificate.
pub(super) fn caller_of<B>(request: &Request<B>) -> Option<ForwardedPeer> {
    let tcp = request.extensions().get::<TcpConnectInfo>();
    let tls = request.extensions().get::<TlsConnectInfo<TcpConnectInfo>>();
    let remote = tcp
        .and_then(TcpConnectInfo::remote_addr)
        .or_else(|| tls.and_then(|tls| tls.get_ref().remote_addr()))?;
    let certificate = tls
        .and_then(TlsConnectInfo::peer_certs)
        .and_then(|chain| chain.first().cloned())
        .map(|leaf| PeerIdentity::of_certificate(leaf.as_ref()).fingerprint_hex());
    Some(ForwardedPeer {
        ip: remote.ip(),
        certificate,
    })
}

/// Makes the forwarded caller this request's caller: tonic's `remote_addr` reads the plain
/// connection info first, and the auth layer takes a forwarded certificate first.
pub(super) fn act_as<B>(request: &mut Request<B>, peer: ForwardedPeer) {
    let local_addr = request
        .extensions()
        .get::<TcpConnectInfo>()
        .and_then(TcpConnectInfo::local_addr);
    request.extensions_mut().insert(TcpConnectInfo {
        local_addr,
        remote_addr: Some(std::net::SocketAddr::new(peer.ip, 0)),
    });
    if let Some(fingerprint) = peer.certificate {
        request
            .extensions_mut()
            .insert(ForwardedCertificate(fingerprint));
    }
}

/// Removes the header: on a node that cannot verify it, it is never trusted.
pub fn strip(headers: &mut HeaderMap) {
    headers.remove(FORWARDED_FOR_HEADER);
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(certificate: Option<&str>) -> ForwardedPeer {
        ForwardedPeer {
            ip: "10.1.2.3".parse().expect("an address"),
            certificate: certificate.map(str::to_owned),
        }
    }

    #[test]
    fn a_sealed_peer_opens_with_the_same_key_once() {
        let seal = PeerSeal::new([7; 32]);
        for sent in [peer(None), peer(Some("ab12"))] {
            let mut headers = HeaderMap::new();
            seal.seal(&sent, &mut headers);
            assert_eq!(seal.open(&mut headers), Some(sent));
            assert!(headers.get(FORWARDED_FOR_HEADER).is_none(), "taken out");
        }
    }

    #[test]
    fn a_header_sealed_with_another_key_or_altered_is_not_trusted() {
        let seal = PeerSeal::new([7; 32]);
        let mut headers = HeaderMap::new();
        PeerSeal::new([8; 32]).seal(&peer(None), &mut headers);
        assert_eq!(seal.open(&mut headers), None);

        seal.seal(&peer(None), &mut headers);
        let sealed = headers[FORWARDED_FOR_HEADER]
            .to_str()
            .expect("ASCII")
            .to_owned();
        for forged in [
            sealed.replacen("10.1.2.3", "10.1.2.4", 1),
            sealed.replacen("10.1.2.3;", "10.1.2.3;ab12", 1),
            "10.1.2.3;;00".to_owned(),
            "10.1.2.3".to_owned(),
            "not an address;;zz".to_owned(),
        ] {
            headers.insert(
                FORWARDED_FOR_HEADER,
                forged.parse().expect("a header value"),
            );
            assert_eq!(seal.open(&mut headers), None, "{forged}");
            assert!(headers.get(FORWARDED_FOR_HEADER).is_none());
        }
    }
}
