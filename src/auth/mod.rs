//! Who is calling and what they may call: access tokens signed by this server (`tokens`), a
//! cache of tokens already verified (`cache`), the one table of which roles may call which
//! RPC (`policy`), and the tower layer that applies both at the edge (`layer`).

pub mod cache;
pub mod layer;
pub mod policy;
pub mod tokens;

#[cfg(test)]
mod testing;

pub use cache::TokenCache;
pub use layer::{
    AuthGuard, AuthLayer, Authenticated, CredentialStanding, ForwardedCertificate, authorize,
};
pub use policy::{Access, POLICY, access, denied_message};
pub use tokens::{
    AccessToken, KeyError, SigningKey, TokenConfig, TokenError, TokenIssuer, VerifiedToken,
};
