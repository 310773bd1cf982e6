//! How a deployment configures a server: flags (with environment fallbacks) for `serve`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use thiserror::Error;
use uuid::Uuid;

use crate::domain::ServiceDirectory;
use crate::domain::ids::validate_name;
use crate::domain::workflow::{ModelCatalog, ModelError, WorkflowModel};

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("--{flag}: {reason}")]
    Invalid { flag: &'static str, reason: String },
    #[error("reading models from {path}: {source}")]
    ModelsDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Model { path: PathBuf, source: ModelError },
}

#[derive(Debug, Clone, clap::Args)]
pub struct ServerConfig {
    /// Address to serve gRPC on.
    #[arg(long, env = "SWITCHBOARD_LISTEN", default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,

    /// The pool of servers this one belongs to; desktops balance across one domain.
    #[arg(long, env = "SWITCHBOARD_INSTANCE_DOMAIN", default_value = "default")]
    pub instance_domain: String,

    /// The processor service's name; session ids are `<name>-<agent id>`.
    #[arg(
        long,
        env = "SWITCHBOARD_PROCESSOR_NAME",
        default_value = "Switchboard"
    )]
    pub processor_name: String,

    /// The processor service's id. Defaults to a UUID derived from the instance domain and the
    /// processor name, so it stays the same across restarts.
    #[arg(long, env = "SWITCHBOARD_PROCESSOR_ID")]
    pub processor_id: Option<Uuid>,

    /// A directory of workflow models (`*.json`), added to the built-in `default` model.
    #[arg(long, env = "SWITCHBOARD_MODELS_DIR")]
    pub models_dir: Option<PathBuf>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 50051)),
            instance_domain: "default".into(),
            processor_name: "Switchboard".into(),
            processor_id: None,
            models_dir: None,
        }
    }
}

impl ServerConfig {
    pub fn directory(&self) -> Result<ServiceDirectory, ConfigError> {
        validate_name("processor_name", &self.processor_name).map_err(|e| {
            ConfigError::Invalid {
                flag: "processor-name",
                reason: e.to_string(),
            }
        })?;
        validate_name("instance_domain", &self.instance_domain).map_err(|e| {
            ConfigError::Invalid {
                flag: "instance-domain",
                reason: e.to_string(),
            }
        })?;
        let id = self.processor_id.unwrap_or_else(|| {
            ServiceDirectory::derived_processor_id(&self.instance_domain, &self.processor_name)
        });
        Ok(ServiceDirectory::new(id, self.processor_name.clone()))
    }

    /// The built-in model plus every `*.json` model in `--models-dir`.
    pub fn load_models(&self) -> Result<ModelCatalog, ConfigError> {
        let mut catalog = ModelCatalog::default();
        if let Some(dir) = &self.models_dir {
            for path in model_files(dir)? {
                let read =
                    std::fs::read_to_string(&path).map_err(|source| ConfigError::ModelsDir {
                        path: path.clone(),
                        source,
                    })?;
                let model = WorkflowModel::parse(&read)
                    .and_then(|model| catalog.add(model, true))
                    .map_err(|source| ConfigError::Model {
                        path: path.clone(),
                        source,
                    });
                model?;
            }
        }
        Ok(catalog)
    }
}

fn model_files(dir: &Path) -> Result<Vec<PathBuf>, ConfigError> {
    let io_error = |source| ConfigError::ModelsDir {
        path: dir.to_owned(),
        source,
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_error)? {
        let path = entry.map_err(io_error)?.path();
        if path.extension().is_some_and(|ext| ext == "json") {
            files.push(path);
        }
    }
    // A stable order makes "two models share a name" name the same file every time.
    files.sort();
    Ok(files)
}
