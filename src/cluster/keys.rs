//! The token signing key every node of a cluster shares: a token one node issued verifies on
//! every other. The first node to start stores a new key; two starting at once both offer one,
//! the database keeps the first, and both read back the same. The key is never logged.

use std::time::Duration;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::Ed25519KeyPair;

use crate::auth::tokens::SigningKey;
use crate::store::StoreError;
use crate::store::postgres::{error_text, no_answer, open, parse};

const OFFER: &str = "INSERT INTO cluster_secrets (name, value) VALUES ('token-signing-key', $1)
     ON CONFLICT (name) DO NOTHING";
const READ: &str = "SELECT value FROM cluster_secrets WHERE name = 'token-signing-key'";

/// The cluster's signing key (Ed25519, PKCS#8 in `cluster_secrets`), stored first if there is
/// none. Every call is within `timeout`.
pub async fn shared_signing_key(url: &str, timeout: Duration) -> Result<SigningKey, StoreError> {
    let config = parse(url, "switchboard-keys", timeout)?;
    let live = open(&config, timeout).await?;
    let offered = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
        .map_err(|_| StoreError::Write("generating a signing key failed".to_owned()))?;
    let offered: &[u8] = offered.as_ref();
    let stored: Vec<u8> = tokio::time::timeout(timeout, async {
        live.client
            .execute(OFFER, &[&offered])
            .await
            .map_err(|e| StoreError::Write(error_text(&e)))?;
        let row = live
            .client
            .query_one(READ, &[])
            .await
            .map_err(|e| StoreError::Read(error_text(&e)))?;
        Ok::<_, StoreError>(row.get(0))
    })
    .await
    .map_err(|_| StoreError::Read(no_answer(timeout)))??;
    SigningKey::from_pkcs8(&stored).ok_or_else(|| {
        StoreError::Read("the cluster's signing key is not an Ed25519 PKCS#8 key".to_owned())
    })
}
