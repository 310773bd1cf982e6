//! The secrets every node of a cluster shares: the token signing key (a token one node issued
//! verifies on every other) and the key that seals a forwarded call's caller (`peer`). The first node to start stores a new key; two starting at once both offer one,
//! the database keeps the first, and both read back the same. The key is never logged.

use std::time::Duration;

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::signature::Ed25519KeyPair;

use crate::auth::tokens::SigningKey;
use crate::store::StoreError;
use crate::store::postgres::{error_text, no_answer, open, parse};

const OFFER: &str =
    "INSERT INTO cluster_secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING";
const READ: &str = "SELECT value FROM cluster_secrets WHERE name = $1";

/// The cluster's signing key (Ed25519, PKCS#8 in `cluster_secrets`), stored first if there is
/// none. Every call is within `timeout`.
pub async fn shared_signing_key(url: &str, timeout: Duration) -> Result<SigningKey, StoreError> {
    let offered = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
        .map_err(|_| StoreError::Write("generating a signing key failed".to_owned()))?;
    let stored = shared_secret(url, timeout, "token-signing-key", offered.as_ref()).await?;
    SigningKey::from_pkcs8(&stored).ok_or_else(|| {
        StoreError::Read("the cluster's signing key is not an Ed25519 PKCS#8 key".to_owned())
    })
}

/// The key nodes seal a forwarded call's caller with (`peer`): 32 random bytes, stored first
/// if there are none.
pub async fn shared_forwarding_key(url: &str, timeout: Duration) -> Result<[u8; 32], StoreError> {
    let mut offered = [0u8; 32];
    SystemRandom::new()
        .fill(&mut offered)
        .map_err(|_| StoreError::Write("generating a forwarding key failed".to_owned()))?;
    let stored = shared_secret(url, timeout, "forwarding-key", &offered).await?;
    stored
        .try_into()
        .map_err(|_| StoreError::Read("the cluster's forwarding key is not 32 bytes".to_owned()))
}

/// The secret stored under `name`, `offered` first if there is none: two nodes starting at
/// once both offer one, the database keeps the first, and both read back the same.
async fn shared_secret(
    url: &str,
    timeout: Duration,
    name: &str,
    offered: &[u8],
) -> Result<Vec<u8>, StoreError> {
    let config = parse(url, "switchboard-keys", timeout)?;
    let live = open(&config, timeout).await?;
    tokio::time::timeout(timeout, async {
        live.client
            .execute(OFFER, &[&name, &offered])
            .await
            .map_err(|e| StoreError::Write(error_text(&e)))?;
        let row = live
            .client
            .query_one(READ, &[&name])
            .await
            .map_err(|e| StoreError::Read(error_text(&e)))?;
        Ok::<_, StoreError>(row.get(0))
    })
    .await
    .map_err(|_| StoreError::Read(no_answer(timeout)))?
}
