//! Transport security for the gRPC listener: TLS from PEM files (rustls through tonic), client
//! certificates (mTLS) checked against a CA, the rule that plaintext stays on loopback, and
//! the identity of a verified client certificate for handlers.
//!
//! Every file is read and checked here, before the server binds, so a bad one stops start-up
//! with its path and the reason instead of failing each handshake later.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use thiserror::Error;
use tonic::transport::{Certificate, Identity, ServerTlsConfig};

/// A client that has not finished its TLS handshake by then is dropped, so half-open
/// handshakes cannot pile up.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether a client must present a certificate once `--client-ca` is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ClientAuth {
    /// Clients without a certificate are let in; one that presents a certificate must have
    /// it from the client CA, or the handshake fails.
    Optional,
    /// Every client must present a certificate from the client CA.
    Required,
}

#[derive(Debug, Error)]
pub enum TlsError {
    #[error("--{flag} {}: {reason}", path.display())]
    File {
        flag: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("--{given} needs --{missing} too: TLS takes a certificate and its key")]
    Incomplete {
        given: &'static str,
        missing: &'static str,
    },
    #[error("--{flag} needs TLS: give --tls-cert and --tls-key too")]
    NeedsTls { flag: &'static str },
    #[error("--client-auth needs --client-ca: the CA that client certificates come from")]
    ClientAuthWithoutCa,
    #[error(
        "refusing to serve plaintext gRPC on {addr}, which is not a loopback address: \
         configure TLS (--tls-cert and --tls-key) or pass --insecure to serve without it"
    )]
    PlaintextNotLoopback { addr: SocketAddr },
}

/// The PEM files that configure TLS, as given on the command line.
#[derive(Debug, Clone, Copy)]
pub struct TlsFiles<'a> {
    /// The server's certificate chain, leaf first.
    pub cert: &'a Path,
    /// The private key of the leaf certificate (PKCS#8, PKCS#1 or SEC1).
    pub key: &'a Path,
    /// CA certificates that client certificates must chain to; `None` asks for none.
    pub client_ca: Option<&'a Path>,
    /// Whether a certificate is required when `client_ca` is given.
    pub client_auth: ClientAuth,
}

/// TLS settings whose files were read and checked.
#[derive(Debug, Clone)]
pub struct ServerTls {
    config: ServerTlsConfig,
    client_auth: Option<ClientAuth>,
}

impl ServerTls {
    /// Reads and checks every file: each must hold what its flag asks for, the key must be
    /// the certificate's, and the client CA must hold usable CA certificates.
    pub fn load(files: TlsFiles<'_>) -> Result<Self, TlsError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());

        let cert_pem = read("tls-cert", files.cert)?;
        let chain = certificates("tls-cert", files.cert, &cert_pem)?;
        let key_pem = read("tls-key", files.key)?;
        let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| TlsError::File {
            flag: "tls-key",
            path: files.key.to_owned(),
            reason: match e {
                pem::Error::NoItemsFound => {
                    "no PEM private key (PKCS#8, PKCS#1 or SEC1) in it".to_owned()
                }
                e => format!("not a valid PEM private key: {e}"),
            },
        })?;
        // The same check tonic's acceptor makes, done here to name the files.
        rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .and_then(|builder| builder.with_no_client_auth().with_single_cert(chain, key))
            .map_err(|e| TlsError::File {
                flag: "tls-key",
                path: files.key.to_owned(),
                reason: format!(
                    "not usable with the certificate in {}: {e}",
                    files.cert.display()
                ),
            })?;

        let mut config = ServerTlsConfig::new()
            .identity(Identity::from_pem(cert_pem, key_pem))
            .timeout(HANDSHAKE_TIMEOUT);
        let mut client_auth = None;
        if let Some(ca) = files.client_ca {
            let ca_pem = read("client-ca", ca)?;
            check_client_ca(ca, &ca_pem, provider)?;
            config = config
                .client_ca_root(Certificate::from_pem(ca_pem))
                .client_auth_optional(files.client_auth == ClientAuth::Optional);
            client_auth = Some(files.client_auth);
        }
        Ok(Self {
            config,
            client_auth,
        })
    }

    /// The settings for tonic's server builder.
    pub fn tonic_config(&self) -> ServerTlsConfig {
        self.config.clone()
    }

    /// Whether and how client certificates are checked; `None` when none are asked for.
    pub fn client_auth(&self) -> Option<ClientAuth> {
        self.client_auth
    }

    /// A word for the log: `tls`, `mtls-optional` or `mtls-required`.
    pub fn mode(&self) -> &'static str {
        match self.client_auth {
            None => "tls",
            Some(ClientAuth::Optional) => "mtls-optional",
            Some(ClientAuth::Required) => "mtls-required",
        }
    }
}

fn read(flag: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError::File {
        flag,
        path: path.to_owned(),
        reason: format!("cannot read it: {e}"),
    })
}

/// Every `CERTIFICATE` block in `pem`; at least one.
fn certificates(
    flag: &'static str,
    path: &Path,
    pem: &[u8],
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let invalid = |reason: String| TlsError::File {
        flag,
        path: path.to_owned(),
        reason,
    };
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(format!("not valid PEM: {e}")))?;
    if certs.is_empty() {
        return Err(invalid("no PEM certificate in it".to_owned()));
    }
    Ok(certs)
}

/// Each certificate must be a usable trust anchor; tonic would skip a bad one silently.
fn check_client_ca(path: &Path, pem: &[u8], provider: Arc<CryptoProvider>) -> Result<(), TlsError> {
    let invalid = |reason: String| TlsError::File {
        flag: "client-ca",
        path: path.to_owned(),
        reason,
    };
    let mut roots = RootCertStore::empty();
    for (n, cert) in certificates("client-ca", path, pem)?
        .into_iter()
        .enumerate()
    {
        roots
            .add(cert)
            .map_err(|e| invalid(format!("certificate {} is not a usable CA: {e}", n + 1)))?;
    }
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .map_err(|e| invalid(format!("not usable to verify clients: {e}")))?;
    Ok(())
}

/// Plaintext is for loopback only (127.0.0.0/8 and ::1) unless `insecure` says otherwise.
pub fn check_plaintext(listen: SocketAddr, insecure: bool) -> Result<(), TlsError> {
    if insecure || listen.ip().to_canonical().is_loopback() {
        Ok(())
    } else {
        Err(TlsError::PlaintextNotLoopback { addr: listen })
    }
}

/// A stable identity of a client certificate: the SHA-256 fingerprint of its DER encoding.
///
/// Only a certificate that the TLS handshake verified against `--client-ca` reaches a handler,
/// so the fingerprint names one certificate that CA issued, and no other client can present
/// it without its private key. It changes when the certificate is reissued (renewal included):
/// whatever maps fingerprints to accounts has to learn the new one.
///
/// It shows as `sha256:` and 64 lowercase hex digits; `openssl x509 -in client.pem -noout
/// -fingerprint -sha256` prints the same digits in upper case, with colons.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PeerIdentity {
    sha256: [u8; 32],
}

impl PeerIdentity {
    /// The identity of the DER-encoded certificate `der`.
    pub fn of_certificate(der: &[u8]) -> Self {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der);
        let mut sha256 = [0; 32];
        sha256.copy_from_slice(digest.as_ref());
        Self { sha256 }
    }

    /// The fingerprint's bytes.
    pub fn sha256(&self) -> &[u8; 32] {
        &self.sha256
    }

    /// The fingerprint as 64 lowercase hex digits.
    pub fn fingerprint_hex(&self) -> String {
        self.sha256.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl fmt::Display for PeerIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.fingerprint_hex())
    }
}

impl fmt::Debug for PeerIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PeerIdentity({self})")
    }
}

/// The identity of the client certificate `request` came with, taken from the TLS session
/// through tonic's `Request::peer_certs`. `None` on a plaintext connection, without
/// `--client-ca`, and for a client that presented no certificate under `--client-auth optional`.
/// Works for any request type, streaming ones included, and for the `Request<()>` an
/// interceptor sees.
pub fn peer_identity<T>(request: &tonic::Request<T>) -> Option<PeerIdentity> {
    let chain = request.peer_certs()?;
    // The leaf comes first; the rest is the chain up to the CA.
    chain
        .first()
        .map(|leaf| PeerIdentity::of_certificate(leaf.as_ref()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plaintext_stays_on_loopback_unless_insecure() {
        for loopback in [
            "127.0.0.1:1",
            "127.8.9.10:0",
            "[::1]:5",
            "[::ffff:127.0.0.1]:7",
        ] {
            let addr: SocketAddr = loopback.parse().unwrap();
            assert!(check_plaintext(addr, false).is_ok(), "{addr}");
        }
        for other in [
            "0.0.0.0:0",
            "[::]:0",
            "10.1.2.3:50051",
            "[fe80::1]:1",
            "[::2]:1",
        ] {
            let addr: SocketAddr = other.parse().unwrap();
            let refused = check_plaintext(addr, false).unwrap_err().to_string();
            assert!(refused.contains("--insecure"), "{refused}");
            assert!(refused.contains("--tls-cert"), "{refused}");
            assert!(check_plaintext(addr, true).is_ok(), "{addr}");
        }
    }

    #[test]
    fn identity_is_the_sha256_of_the_der() {
        // SHA-256 of the empty input, a known value.
        let id = PeerIdentity::of_certificate(b"");
        assert_eq!(
            id.to_string(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_ne!(id, PeerIdentity::of_certificate(b"x"));
        assert_eq!(id.fingerprint_hex().len(), 64);
    }

    #[test]
    fn a_missing_file_names_its_flag_and_path() {
        let files = TlsFiles {
            cert: Path::new("/nonexistent/server.pem"),
            key: Path::new("/nonexistent/server.key"),
            client_ca: None,
            client_auth: ClientAuth::Required,
        };
        let error = ServerTls::load(files).unwrap_err().to_string();
        assert!(
            error.starts_with("--tls-cert /nonexistent/server.pem: cannot read it:"),
            "{error}"
        );
    }
}
