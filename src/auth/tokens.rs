//! Access tokens: JWTs signed with the server's Ed25519 key (EdDSA), naming the principal, its
//! roles and the credential version they were issued under. Time comes in as data (`now_secs`),
//! so expiry is checked against the caller's clock, never one read here.

use std::collections::BTreeSet;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use aws_lc_rs::digest;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::domain::{Actor, Principal, Role};

/// The signing key's file in the key directory: PKCS#8 DER, mode 0600.
pub const KEY_FILE: &str = "signing-key.pk8";

/// What every token names and how long it lasts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenConfig {
    pub issuer: String,
    pub audience: String,
    pub ttl_secs: u64,
}

/// A signed access token and when it stops being accepted.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken {
    pub token: String,
    pub expires_at_secs: u64,
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("token", &"<redacted>")
            .field("expires_at_secs", &self.expires_at_secs)
            .finish()
    }
}

/// What a token that checks out says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedToken {
    pub principal: Principal,
    pub credential_version: u64,
    pub expires_at_secs: u64,
}

/// Why a token was refused. No message contains the token or any part of it.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TokenError {
    #[error("token is malformed")]
    Malformed,
    #[error("token is not signed with EdDSA")]
    Algorithm,
    #[error("token names no signing key")]
    MissingKeyId,
    #[error("token is signed by an unknown key")]
    UnknownKey,
    #[error("token signature does not verify")]
    Signature,
    #[error("token is from another issuer")]
    Issuer,
    #[error("token is meant for another audience")]
    Audience,
    #[error("token has expired")]
    Expired,
    #[error("token subject is not an agent or an account")]
    Subject,
    #[error("token carries an unknown role")]
    UnknownRole,
    /// Issuing failed inside the server; not the caller's fault.
    #[error("token could not be signed")]
    Signing,
}

/// Why the signing key could not be had. Paths only, never key material.
#[derive(Debug, Error)]
pub enum KeyError {
    #[error("signing key {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("signing key {0}: not an Ed25519 PKCS#8 key")]
    Invalid(PathBuf),
    #[error("signing key: generating a key pair failed")]
    Generate,
}

/// The server's Ed25519 signing key and its key id: the first 16 hex digits of the SHA-256
/// of the public key, so a token names the key that signed it.
#[derive(Clone)]
pub struct SigningKey {
    kid: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A fresh key, kept only in memory: its tokens die with the process.
    pub fn generate() -> Result<Self, KeyError> {
        let document =
            Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).map_err(|_| KeyError::Generate)?;
        Self::from_pkcs8(document.as_ref()).ok_or(KeyError::Generate)
    }

    /// The key in PKCS#8 DER, or `None` when it is not an Ed25519 key.
    pub fn from_pkcs8(der: &[u8]) -> Option<Self> {
        let pair = Ed25519KeyPair::from_pkcs8(der).ok()?;
        let public = pair.public_key().as_ref();
        let hash = digest::digest(&digest::SHA256, public);
        let kid = hash.as_ref()[..8]
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect();
        Some(Self {
            kid,
            encoding: EncodingKey::from_ed_der(der),
            decoding: DecodingKey::from_ed_der(public),
        })
    }

    /// With a directory, the key in `<dir>/signing-key.pk8`, created there on first use and
    /// read on later starts so that tokens outlive a restart; without one, a fresh key.
    pub fn load_or_create(dir: Option<&Path>) -> Result<Self, KeyError> {
        let Some(dir) = dir else {
            return Self::generate();
        };
        let path = dir.join(KEY_FILE);
        match fs::read(&path) {
            Ok(der) => Self::from_pkcs8(&der).ok_or(KeyError::Invalid(path)),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Self::create(dir, path),
            Err(source) => Err(KeyError::Io { path, source }),
        }
    }

    fn create(dir: &Path, path: PathBuf) -> Result<Self, KeyError> {
        let io_error = |source| KeyError::Io {
            path: path.clone(),
            source,
        };
        let document =
            Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).map_err(|_| KeyError::Generate)?;
        let key = Self::from_pkcs8(document.as_ref()).ok_or(KeyError::Generate)?;
        fs::create_dir_all(dir).map_err(io_error)?;
        // Written whole under a temporary name, then renamed: a crash leaves no half key.
        let temp = dir.join(format!("{KEY_FILE}.{}.tmp", uuid::Uuid::new_v4()));
        let written = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)
            .and_then(|mut file| {
                file.write_all(document.as_ref())?;
                file.sync_all()
            })
            .and_then(|()| fs::rename(&temp, &path));
        if let Err(error) = written {
            let _ = fs::remove_file(&temp);
            return Err(io_error(error));
        }
        // The rename itself survives a crash once the directory is synced.
        File::open(dir)
            .and_then(|dir| dir.sync_all())
            .map_err(io_error)?;
        Ok(key)
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }
}

#[derive(Serialize, Deserialize)]
struct Claims {
    iss: String,
    aud: String,
    sub: String,
    roles: Vec<String>,
    ver: u64,
    iat: u64,
    exp: u64,
    jti: String,
}

/// Issues and checks access tokens with one key.
#[derive(Debug, Clone)]
pub struct TokenIssuer {
    config: TokenConfig,
    key: SigningKey,
    validation: Validation,
}

impl TokenIssuer {
    pub fn new(config: TokenConfig, key: SigningKey) -> Self {
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[&config.issuer]);
        validation.set_audience(&[&config.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        // Expiry is checked against the caller's `now_secs`, not the library's own clock.
        validation.validate_exp = false;
        validation.leeway = 0;
        Self {
            config,
            key,
            validation,
        }
    }

    pub fn config(&self) -> &TokenConfig {
        &self.config
    }

    pub fn kid(&self) -> &str {
        self.key.kid()
    }

    /// A token for `actor` with `roles`, valid from `now_secs` for the configured time and
    /// only while the principal's credential version stays `credential_version`.
    pub fn issue(
        &self,
        actor: &Actor,
        roles: &BTreeSet<Role>,
        credential_version: u64,
        now_secs: u64,
    ) -> Result<AccessToken, TokenError> {
        if *actor == Actor::Engine {
            return Err(TokenError::Subject);
        }
        let expires_at_secs = now_secs.saturating_add(self.config.ttl_secs);
        let claims = Claims {
            iss: self.config.issuer.clone(),
            aud: self.config.audience.clone(),
            sub: actor.to_string(),
            roles: roles.iter().map(|role| role.claim().to_owned()).collect(),
            ver: credential_version,
            iat: now_secs,
            exp: expires_at_secs,
            jti: uuid::Uuid::new_v4().to_string(),
        };
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.key.kid.clone());
        let token = jsonwebtoken::encode(&header, &claims, &self.key.encoding)
            .map_err(|_| TokenError::Signing)?;
        Ok(AccessToken {
            token,
            expires_at_secs,
        })
    }

    /// The principal `token` names, if this server signed it, it is meant for this issuer and
    /// audience, and it has not expired at `now_secs`.
    pub fn verify(&self, token: &str, now_secs: u64) -> Result<VerifiedToken, TokenError> {
        // The header first: refuse a foreign key or algorithm before any signature work.
        let header = jsonwebtoken::decode_header(token).map_err(refusal)?;
        if header.alg != Algorithm::EdDSA {
            return Err(TokenError::Algorithm);
        }
        match header.kid.as_deref() {
            None => return Err(TokenError::MissingKeyId),
            Some(kid) if kid != self.key.kid => return Err(TokenError::UnknownKey),
            Some(_) => {}
        }
        let claims = jsonwebtoken::decode::<Claims>(token, &self.key.decoding, &self.validation)
            .map_err(refusal)?
            .claims;
        if now_secs >= claims.exp {
            return Err(TokenError::Expired);
        }
        let actor = Actor::parse(&claims.sub).map_err(|_| TokenError::Subject)?;
        if actor == Actor::Engine {
            return Err(TokenError::Subject);
        }
        let roles = claims
            .roles
            .iter()
            .map(|claim| Role::from_claim(claim).ok_or(TokenError::UnknownRole))
            .collect::<Result<BTreeSet<Role>, TokenError>>()?;
        Ok(VerifiedToken {
            principal: Principal { actor, roles },
            credential_version: claims.ver,
            expires_at_secs: claims.exp,
        })
    }
}

/// The refusal a library error stands for; its own text is dropped.
fn refusal(error: jsonwebtoken::errors::Error) -> TokenError {
    match error.kind() {
        ErrorKind::InvalidSignature => TokenError::Signature,
        ErrorKind::InvalidAlgorithm
        | ErrorKind::UnsupportedAlgorithm
        | ErrorKind::InvalidAlgorithmName => TokenError::Algorithm,
        ErrorKind::InvalidIssuer => TokenError::Issuer,
        ErrorKind::InvalidAudience => TokenError::Audience,
        ErrorKind::ExpiredSignature => TokenError::Expired,
        _ => TokenError::Malformed,
    }
}

#[cfg(test)]
#[path = "tokens_tests.rs"]
mod tests;
