//! The edge: one tower layer around the whole router (health and reflection included) that
//! authenticates the bearer token and applies the policy table before any handler runs. A
//! refused request is answered here with a gRPC status; the handler never sees it.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{SystemTime, UNIX_EPOCH};

use futures_util::future::{Either, Ready, ready};
use http::header::AUTHORIZATION;
use http::{HeaderMap, Request, Response};
use tonic::Status;
use tonic::body::Body;
use tower::{Layer, Service};

use super::cache::TokenCache;
use super::policy::{self, Access};
use super::tokens::{TokenError, TokenIssuer};
use crate::domain::{Actor, Principal};

/// Longer bearer values are refused unread: a real token is a few hundred bytes.
pub const MAX_TOKEN_LEN: usize = 4096;

/// The engine's word on a principal's credentials.
pub trait CredentialStanding: Send + Sync + 'static {
    /// The principal's current credential version, `None` when it no longer exists. A token
    /// is accepted only while its `ver` equals this.
    fn current_version(&self, actor: &Actor) -> Option<u64>;

    /// The integration that signs in with the client certificate of this SHA-256 fingerprint
    /// (lowercase hex), with its credential version; `None` for a certificate nobody maps.
    fn certificate_principal(&self, _sha256_hex: &str) -> Option<(Principal, u64)> {
        None
    }
}

/// A request's caller, as its token says, in the request's extensions beside its `Principal`;
/// a stream ends when the principal's credential version moves past `credential_version`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticated {
    pub principal: Principal,
    pub credential_version: u64,
    pub expires_at_secs: u64,
}

/// Authenticates and authorizes every request against [`policy::POLICY`]; mounted with
/// `Server::builder().layer(auth_layer)`, so that it sees every service of the router.
#[derive(Clone)]
pub struct AuthLayer {
    shared: Arc<Shared>,
}

struct Shared {
    issuer: Arc<TokenIssuer>,
    standing: Arc<dyn CredentialStanding>,
    cache: Arc<TokenCache>,
    reflection_requires_auth: bool,
}

impl AuthLayer {
    pub fn new(
        issuer: Arc<TokenIssuer>,
        standing: Arc<dyn CredentialStanding>,
        cache: Arc<TokenCache>,
        reflection_requires_auth: bool,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                issuer,
                standing,
                cache,
                reflection_requires_auth,
            }),
        }
    }

    /// The caller that `headers` carry a bearer token for, if the token is valid at
    /// `now_secs` and the principal's credentials have not changed since it was issued.
    pub fn authenticate(
        &self,
        headers: &HeaderMap,
        now_secs: u64,
    ) -> Result<Authenticated, Status> {
        let token = bearer(headers)?
            .ok_or_else(|| Status::unauthenticated("missing authorization: Bearer <token>"))?;
        self.check_token(token, now_secs)
    }

    /// The integration a verified client certificate signs in; its streams end when its
    /// credentials change, like a token's.
    fn by_certificate(&self, fingerprint: &str) -> Option<Authenticated> {
        let (principal, credential_version) =
            self.shared.standing.certificate_principal(fingerprint)?;
        Some(Authenticated {
            principal,
            credential_version,
            expires_at_secs: u64::MAX,
        })
    }

    fn check_token(&self, token: &str, now_secs: u64) -> Result<Authenticated, Status> {
        let shared = &self.shared;
        let verified = match shared.cache.get(token, now_secs) {
            Some(verified) => verified,
            None => {
                let verified = shared.issuer.verify(token, now_secs)?;
                shared.cache.insert(token, verified.clone(), now_secs);
                verified
            }
        };
        match shared.standing.current_version(&verified.principal.actor) {
            None => Err(Status::unauthenticated(
                "access token's principal no longer exists",
            )),
            Some(current) if current != verified.credential_version => Err(
                Status::unauthenticated("access token was revoked; sign in again"),
            ),
            Some(_) => Ok(Authenticated {
                principal: verified.principal,
                credential_version: verified.credential_version,
                expires_at_secs: verified.expires_at_secs,
            }),
        }
    }

    /// What a request to `path` with `headers` may do: `Ok(Some(_))` with its caller,
    /// `Ok(None)` for a public method called without a valid token, or the refusal.
    ///
    /// Without a bearer token, a client certificate verified by the TLS handshake (its
    /// SHA-256 fingerprint `certificate`) signs in the integration it is mapped to.
    pub fn admit(
        &self,
        path: &str,
        headers: &HeaderMap,
        certificate: Option<&str>,
        now_secs: u64,
    ) -> Result<Option<Authenticated>, Status> {
        let access = policy::effective_access(path, self.shared.reflection_requires_auth)
            .ok_or_else(|| Status::permission_denied(policy::unlisted_message(path)))?;
        match access {
            // A caller known on a public method is still worth telling the handler about;
            // a bad token there just counts as none.
            Access::Public => Ok(match bearer(headers) {
                Ok(Some(token)) => self.check_token(token, now_secs).ok(),
                _ => None,
            }),
            Access::Roles(_) => {
                let by_certificate = match (bearer(headers), certificate) {
                    (Ok(None), Some(fingerprint)) => self.by_certificate(fingerprint),
                    _ => None,
                };
                let authenticated = match by_certificate {
                    Some(authenticated) => authenticated,
                    None => self.authenticate(headers, now_secs)?,
                };
                if !policy::allows(access, &authenticated.principal) {
                    return Err(Status::permission_denied(policy::denied_message(
                        path, access,
                    )));
                }
                Ok(Some(authenticated))
            }
        }
    }
}

impl From<TokenError> for Status {
    fn from(error: TokenError) -> Self {
        match error {
            TokenError::Signing => Status::internal(error.to_string()),
            _ => Status::unauthenticated(format!("invalid access token: {error}")),
        }
    }
}

/// Whether `principal` may call `path` by the policy table (reflection public): for the
/// methods multiplexed over one `Connect` stream, each checked by its own path.
pub fn authorize(path: &str, principal: &Principal) -> Result<(), Status> {
    let access = policy::access(path)
        .ok_or_else(|| Status::permission_denied(policy::unlisted_message(path)))?;
    if policy::allows(access, principal) {
        Ok(())
    } else {
        Err(Status::permission_denied(policy::denied_message(
            path, access,
        )))
    }
}

/// The bearer token in `headers`: `None` without an `authorization` header, an error for one
/// that is not `Bearer <token>` (scheme in any case). Messages never echo the value.
fn bearer(headers: &HeaderMap) -> Result<Option<&str>, Status> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(Status::unauthenticated(
            "more than one authorization header",
        ));
    }
    let malformed = || Status::unauthenticated("authorization must be Bearer <token>");
    let value = value.to_str().map_err(|_| malformed())?;
    let (scheme, token) = value.trim().split_once(' ').ok_or_else(malformed)?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(malformed());
    }
    if token.len() > MAX_TOKEN_LEN {
        return Err(Status::unauthenticated("access token is too long"));
    }
    Ok(Some(token))
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

impl<S> Layer<S> for AuthLayer {
    type Service = AuthGuard<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthGuard {
            inner,
            auth: self.clone(),
        }
    }
}

/// A service behind [`AuthLayer`].
#[derive(Clone)]
pub struct AuthGuard<S> {
    inner: S,
    auth: AuthLayer,
}

impl<S, B> Service<Request<B>> for AuthGuard<S>
where
    S: Service<Request<B>, Response = Response<Body>>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = Either<Ready<Result<Response<Body>, S::Error>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let certificate = client_certificate(&request);
        match self.auth.admit(
            request.uri().path(),
            request.headers(),
            certificate.as_deref(),
            now_secs(),
        ) {
            Ok(caller) => {
                if let Some(authenticated) = caller {
                    request
                        .extensions_mut()
                        .insert(authenticated.principal.clone());
                    request.extensions_mut().insert(authenticated);
                }
                Either::Right(self.inner.call(request))
            }
            Err(status) => Either::Left(ready(Ok(status.into_http()))),
        }
    }
}

/// The client certificate (its SHA-256, lowercase hex) a cluster node verified for a call it
/// forwarded here, put in the request's extensions by the forwarding edge once the node's seal
/// verified (`cluster::peer`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardedCertificate(pub String);

/// The SHA-256 fingerprint (lowercase hex) of the client certificate the TLS handshake
/// verified for this request's connection (or, for a forwarded call, the forwarding node's
/// connection), if any.
fn client_certificate<B>(request: &Request<B>) -> Option<String> {
    use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
    if let Some(ForwardedCertificate(fingerprint)) = request.extensions().get() {
        return Some(fingerprint.clone());
    }
    let info = request
        .extensions()
        .get::<TlsConnectInfo<TcpConnectInfo>>()?;
    let chain = info.peer_certs()?;
    let leaf = chain.first()?;
    Some(crate::tls::PeerIdentity::of_certificate(leaf.as_ref()).fingerprint_hex())
}

#[cfg(test)]
#[path = "layer_tests.rs"]
mod tests;
