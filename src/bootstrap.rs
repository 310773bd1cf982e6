//! First start: with no admin in the directory, the server creates account `admin` with a
//! random one-time secret and writes the secret to a file only its owner can read. The log
//! names the file, never the secret. Sign in with it, create your own admins, then delete the
//! file (or the account).

use std::io::Write;
use std::path::{Path, PathBuf};

use tracing::{info, warn};

use crate::domain::commands::{BootstrapAdmin, HasAdmin};
use crate::domain::{DomainError, Principal};
use crate::engine::{EngineHandle, Password};

/// The first admin's account id.
pub const BOOTSTRAP_ACCOUNT: &str = "admin";

#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error("creating the first admin: {0}")]
    Engine(#[from] DomainError),
    #[error("writing the first admin's secret to {path}: {source}")]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Creates the first admin if there is none; its secret goes to `secret_file`.
pub async fn ensure_admin(engine: &EngineHandle, secret_file: &Path) -> Result<(), BootstrapError> {
    let system = Principal::engine();
    if engine.execute(&system, HasAdmin).await?.answer {
        return Ok(());
    }
    let secret = new_secret();
    // Written first: an admin whose secret nobody could read would lock everyone out.
    let (path, contents) = (secret_file.to_owned(), secret.clone());
    tokio::task::spawn_blocking(move || write_private(&path, &contents))
        .await
        .map_err(|e| DomainError::Internal(format!("writing the secret file: {e}")))?
        .map_err(|source| BootstrapError::File {
            path: secret_file.to_owned(),
            source,
        })?;
    let secret_hash = engine.hash_secret(Password::new(secret)).await?;
    let command = BootstrapAdmin {
        account_id: BOOTSTRAP_ACCOUNT.into(),
        secret_hash,
    };
    if engine.execute(&system, command).await?.answer {
        info!(
            account_id = BOOTSTRAP_ACCOUNT,
            secret_file = %secret_file.display(),
            "no admin existed: created the first admin; its one-time secret is in the file"
        );
    } else {
        warn!("an admin appeared while the first one was being created; none was added");
    }
    Ok(())
}

/// 32 random bytes as hex, from the operating system's generator.
fn new_secret() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// Writes `contents` to `path` readable only by this user (mode 0600), replacing any old file.
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let temporary = path.with_extension("tmp");
    let _ = std::fs::remove_file(&temporary);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temporary)?;
    file.write_all(contents.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()?;
    std::fs::rename(&temporary, path)
}
