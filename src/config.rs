//! How a deployment configures a server: flags (with environment fallbacks) for `serve`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use thiserror::Error;
use uuid::Uuid;

use crate::cluster::LeaseSettings;
use crate::credentials::LoginConfig;
use crate::domain::ServiceDirectory;
use crate::domain::bounds::check_id;
use crate::domain::state::DEFAULT_PRESENCE_GRACE_MS;
use crate::domain::workflow::{ModelCatalog, ModelError, WorkflowModel};
use crate::engine::{DEFAULT_INBOX_DEPTH, EngineConfig};
use crate::telemetry::TelemetryConfig;
use crate::tls::{self, ClientAuth, ServerTls, TlsError, TlsFiles};
use crate::watch::WatchConfig;

/// A cluster node's settings, from `ServerConfig::cluster`.
#[derive(Clone)]
pub struct ClusterSettings {
    /// May hold a password: never logged.
    pub journal_url: String,
    pub lease: LeaseSettings,
}

/// gRPC's customary limit, tonic's default.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 4 << 20;

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

    /// Serve Prometheus metrics (`GET /metrics`, plain HTTP) on this address too; port 0
    /// picks a free one. Off unless set.
    #[arg(long, env = "SWITCHBOARD_METRICS_LISTEN", value_name = "ADDR")]
    pub metrics_listen: Option<SocketAddr>,

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

    /// Where the journal (a SQLite file) lives. Created if missing; one server per directory.
    #[arg(
        long,
        env = "SWITCHBOARD_DATA_DIR",
        default_value = "./switchboard-data"
    )]
    pub data_dir: PathBuf,

    /// Keep the journal in memory only: everything is gone when the server stops.
    #[arg(long, env = "SWITCHBOARD_IN_MEMORY", conflicts_with = "data_dir")]
    pub in_memory: bool,

    /// A PostgreSQL journal shared by the nodes of a cluster (`postgres://user@host:port/db`)
    /// instead of the SQLite file in the data directory, which then holds only this node's
    /// first admin secret. One node leads, the others follow (README "Several nodes").
    #[arg(long, env = "SWITCHBOARD_JOURNAL", conflicts_with = "in_memory")]
    pub journal: Option<String>,

    /// This node's name within its cluster. Defaults to its advertised address.
    #[arg(long, env = "SWITCHBOARD_NODE_ID")]
    pub node_id: Option<String>,

    /// Where the other nodes of the cluster reach this one (`host:port`) to forward commands
    /// while it leads. Defaults to the address it listens on, which must then be a specific
    /// one (not 0.0.0.0).
    #[arg(long, env = "SWITCHBOARD_ADVERTISE")]
    pub advertise: Option<String>,

    /// With TLS: the CA (PEM) that signs the other nodes' certificates, trusted when this node
    /// forwards commands to the leader. Defaults to `--client-ca`, else `--tls-cert`.
    #[arg(long, env = "SWITCHBOARD_CLUSTER_CA")]
    pub cluster_ca: Option<PathBuf>,

    /// With TLS: the name the leader's certificate must carry when this node forwards to it
    /// (every node's certificate names it).
    #[arg(
        long,
        env = "SWITCHBOARD_CLUSTER_TLS_NAME",
        default_value = "localhost"
    )]
    pub cluster_tls_name: String,

    /// How long the leader's lease lasts without renewal: the most a dead leader costs
    /// before another node takes over.
    #[arg(long, env = "SWITCHBOARD_LEASE_TTL_MS", default_value_t = 5_000,
          value_parser = clap::value_parser!(u64).range(300..))]
    pub lease_ttl_ms: u64,

    /// How often the leader renews its lease and followers look at it; under a third of the
    /// lease's time to live, so that a renewal or two may fail without a hand-over.
    #[arg(long, env = "SWITCHBOARD_LEASE_RENEW_MS", default_value_t = 1_000,
          value_parser = clap::value_parser!(u64).range(50..))]
    pub lease_renew_ms: u64,

    /// Take a snapshot after this many events, which bounds how much start-up replays.
    #[arg(long, env = "SWITCHBOARD_SNAPSHOT_EVERY", default_value_t = 100_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub snapshot_every: u64,

    /// Events kept in the journal behind the latest snapshot, for watches to resume from;
    /// an older `start_revision` gets OUT_OF_RANGE.
    #[arg(long, env = "SWITCHBOARD_RETAIN_EVENTS", default_value_t = 1_000_000)]
    pub retain_events: u64,

    /// Request ids remembered at most; past it the oldest are forgotten before the window
    /// ends (said once in the log). About 1 KB of memory each.
    #[arg(long, env = "SWITCHBOARD_MAX_REMEMBERED_REQUESTS", default_value_t = 1_000_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub max_remembered_requests: u64,

    /// Open tasks (waiting, offered or in hand) held at most; past it `NewTask` is
    /// `RESOURCE_EXHAUSTED`.
    #[arg(long, env = "SWITCHBOARD_MAX_OPEN_TASKS", default_value_t = 100_000,
          value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub max_open_tasks: u64,

    /// How long a closed task stays in memory (and in snapshots), in seconds. After that
    /// `GetTaskState` and `ListTasks` answer it from the journal's history.
    #[arg(
        long,
        env = "SWITCHBOARD_CLOSED_TASK_RETENTION_SECS",
        default_value_t = 900
    )]
    pub closed_task_retention_secs: u64,

    /// How long the journal keeps a closed task in its history, in seconds (default: 7
    /// days); at least the closed-task retention.
    #[arg(long, env = "SWITCHBOARD_TASK_HISTORY_SECS", default_value_t = 604_800)]
    pub task_history_secs: u64,

    /// How long a `request_id` is remembered, across restarts too, in seconds.
    #[arg(long, env = "SWITCHBOARD_REQUEST_WINDOW_SECS", default_value_t = 3_600)]
    pub request_window_secs: u64,

    /// How long a client stays registered after its last stream closed or its last call,
    /// in milliseconds. Its sessions then log out.
    #[arg(long, env = "SWITCHBOARD_PRESENCE_GRACE_MS", default_value_t = DEFAULT_PRESENCE_GRACE_MS)]
    pub presence_grace_ms: u64,

    /// How often an idle watch gets a progress notice with the current revision, in
    /// milliseconds.
    #[arg(long, env = "SWITCHBOARD_WATCH_PROGRESS_MS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub watch_progress_ms: u64,

    /// Live events buffered for watches; a watch further behind is ended with the revision
    /// to resume from.
    #[arg(long, env = "SWITCHBOARD_WATCH_BUFFER", default_value_t = 4096,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub watch_buffer: u64,

    /// The server's TLS certificate chain (PEM, leaf first). With `--tls-key`, gRPC is served
    /// over TLS only.
    #[arg(
        long,
        env = "SWITCHBOARD_TLS_CERT",
        value_name = "PEM_FILE",
        requires = "tls_key"
    )]
    pub tls_cert: Option<PathBuf>,

    /// The private key of `--tls-cert` (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(
        long,
        env = "SWITCHBOARD_TLS_KEY",
        value_name = "PEM_FILE",
        requires = "tls_cert"
    )]
    pub tls_key: Option<PathBuf>,

    /// CA certificates (PEM) that client certificates must chain to: asks clients for a
    /// certificate (mTLS). Needs `--tls-cert` and `--tls-key`.
    #[arg(
        long,
        env = "SWITCHBOARD_CLIENT_CA",
        value_name = "PEM_FILE",
        requires = "tls_cert"
    )]
    pub client_ca: Option<PathBuf>,

    /// With `--client-ca`: `required` (the default) refuses clients without a certificate;
    /// `optional` lets them in. A certificate from another CA is refused either way.
    #[arg(
        long,
        env = "SWITCHBOARD_CLIENT_AUTH",
        value_enum,
        requires = "client_ca"
    )]
    pub client_auth: Option<ClientAuth>,

    /// Serve plaintext gRPC on a non-loopback address. Without TLS the server otherwise
    /// listens on loopback (127.0.0.0/8, ::1) only.
    #[arg(long, env = "SWITCHBOARD_INSECURE", conflicts_with = "tls_cert")]
    pub insecure: bool,

    /// Threads that hash and check passwords, each holding about 19 MiB once used; 0 picks
    /// the number of cores, from 2 to 8.
    #[arg(long, env = "SWITCHBOARD_LOGIN_WORKERS", default_value_t = 0)]
    pub login_workers: usize,

    /// Password checks that may wait for a thread; one more is refused at once with
    /// RESOURCE_EXHAUSTED.
    #[arg(long, env = "SWITCHBOARD_LOGIN_QUEUE", default_value_t = 64)]
    pub login_queue: usize,

    /// After 5 failed logins for an agent (50 from one address), the next attempt waits this
    /// long, in milliseconds, doubled per further failure.
    #[arg(long, env = "SWITCHBOARD_LOGIN_BACKOFF_MS", default_value_t = 1_000)]
    pub login_backoff_ms: u64,

    /// After 10 failed logins for an agent (100 from one address), every attempt is refused
    /// for this long, in seconds, the right password too.
    #[arg(long, env = "SWITCHBOARD_LOGIN_LOCKOUT_SECS", default_value_t = 300)]
    pub login_lockout_secs: u64,

    /// Where the first start writes the first admin's one-time secret (mode 0600). Defaults
    /// to `bootstrap-admin.secret` in the data directory.
    #[arg(long, env = "SWITCHBOARD_BOOTSTRAP_SECRET_FILE", value_name = "FILE")]
    pub bootstrap_secret_file: Option<PathBuf>,

    /// How long an access token is valid, in seconds; refresh before it runs out.
    #[arg(long, env = "SWITCHBOARD_ACCESS_TOKEN_TTL_SECS", default_value_t = 300,
          value_parser = clap::value_parser!(u64).range(10..=86_400))]
    pub access_token_ttl_secs: u64,

    /// How long a refresh token is valid, in seconds (default: a 12-hour shift).
    #[arg(long, env = "SWITCHBOARD_REFRESH_TOKEN_TTL_SECS", default_value_t = 43_200,
          value_parser = clap::value_parser!(u64).range(60..=2_592_000))]
    pub refresh_token_ttl_secs: u64,

    /// Commands that may wait for the engine, writes and reads each; one more write is
    /// refused at once with UNAVAILABLE ("the server is overloaded") while reads go on.
    #[arg(long, env = "SWITCHBOARD_INBOX_DEPTH", default_value_t = DEFAULT_INBOX_DEPTH,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1_000_000))]
    pub inbox_depth: usize,

    /// The largest request message taken, in bytes; a larger one is refused with
    /// RESOURCE_EXHAUSTED naming the limit, before its body is read.
    #[arg(long, env = "SWITCHBOARD_MAX_MESSAGE_BYTES", default_value_t = DEFAULT_MAX_MESSAGE_BYTES,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1024..=(256 << 20)))]
    pub max_message_bytes: usize,

    /// Streams (calls in flight) one HTTP/2 connection may have open at once, advertised as
    /// SETTINGS_MAX_CONCURRENT_STREAMS: a client's further calls wait for one to end.
    #[arg(long, env = "SWITCHBOARD_MAX_STREAMS_PER_CONNECTION", default_value_t = 256,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_streams_per_connection: u32,

    /// Watches (WatchRoutingEvents, WatchSessionState) one principal may have open at once;
    /// one more is refused with RESOURCE_EXHAUSTED.
    #[arg(long, env = "SWITCHBOARD_MAX_WATCHES_PER_PRINCIPAL", default_value_t = 256,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1_000_000))]
    pub max_watches_per_principal: usize,

    /// Put reflection behind authentication too (it is open by default, so that grpcurl can
    /// list and describe the services before signing in).
    #[arg(long, env = "SWITCHBOARD_REFLECTION_REQUIRES_AUTH")]
    pub reflection_requires_auth: bool,

    /// The servers a browser desktop compares to pick the least-loaded one, as origins
    /// (`http://host:port` or `https://...`), comma-separated; calls from pages those serve
    /// are let through here (CORS). Empty: the desktop uses the server that served it.
    #[arg(long, env = "SWITCHBOARD_WEB_SERVERS", value_delimiter = ',')]
    pub web_servers: Vec<String>,

    /// Serve the browser pages from this folder (a `web/dist` built with `npm run build`)
    /// instead of the copy built into the binary: page changes show on reload.
    #[arg(long, env = "SWITCHBOARD_WEB_DIR")]
    pub web_dir: Option<PathBuf>,

    #[command(flatten)]
    pub telemetry: TelemetryConfig,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 50051)),
            metrics_listen: None,
            instance_domain: "default".into(),
            processor_name: "Switchboard".into(),
            processor_id: None,
            models_dir: None,
            data_dir: PathBuf::from("./switchboard-data"),
            in_memory: false,
            journal: None,
            node_id: None,
            advertise: None,
            cluster_ca: None,
            cluster_tls_name: "localhost".into(),
            lease_ttl_ms: 5_000,
            lease_renew_ms: 1_000,
            snapshot_every: 100_000,
            retain_events: 1_000_000,
            max_remembered_requests: 1_000_000,
            max_open_tasks: 100_000,
            closed_task_retention_secs: 900,
            task_history_secs: 604_800,
            request_window_secs: 3_600,
            presence_grace_ms: DEFAULT_PRESENCE_GRACE_MS,
            watch_progress_ms: 10_000,
            watch_buffer: 4096,
            tls_cert: None,
            tls_key: None,
            client_ca: None,
            client_auth: None,
            insecure: false,
            login_workers: 0,
            login_queue: 64,
            login_backoff_ms: 1_000,
            login_lockout_secs: 300,
            bootstrap_secret_file: None,
            access_token_ttl_secs: 300,
            refresh_token_ttl_secs: 43_200,
            reflection_requires_auth: false,
            inbox_depth: DEFAULT_INBOX_DEPTH,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            max_streams_per_connection: 256,
            max_watches_per_principal: 256,
            web_servers: Vec::new(),
            web_dir: None,
            telemetry: TelemetryConfig::default(),
        }
    }
}

impl ServerConfig {
    /// A throwaway configuration: journal in memory, on a free loopback port.
    pub fn in_memory() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            in_memory: true,
            ..Self::default()
        }
    }

    /// Where the first admin's secret goes.
    pub fn bootstrap_secret_path(&self) -> PathBuf {
        self.bootstrap_secret_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("bootstrap-admin.secret"))
    }

    /// How long a closed task stays in memory.
    pub fn closed_task_retention_ms(&self) -> u64 {
        self.closed_task_retention_secs.saturating_mul(1000)
    }

    pub fn engine(&self) -> EngineConfig {
        EngineConfig {
            snapshot_every: self.snapshot_every,
            retain_events: self.retain_events,
            request_window_ms: self.request_window_secs.saturating_mul(1000),
            task_history_ms: self.task_history_secs.saturating_mul(1000),
            max_remembered_requests: usize::try_from(self.max_remembered_requests)
                .unwrap_or(usize::MAX),
            inbox_depth: self.inbox_depth,
        }
    }

    pub fn watch(&self) -> WatchConfig {
        WatchConfig {
            progress_every: std::time::Duration::from_millis(self.watch_progress_ms),
            live_buffer: usize::try_from(self.watch_buffer).unwrap_or(4096),
            max_per_principal: self.max_watches_per_principal,
        }
    }

    pub fn logins(&self) -> LoginConfig {
        LoginConfig::new(
            self.login_workers,
            self.login_queue,
            self.login_backoff_ms,
            self.login_lockout_secs.saturating_mul(1000),
        )
    }

    /// The cluster this node joins, if `--journal` names a PostgreSQL journal. `bound` is
    /// the address the node listens on, which it advertises unless told otherwise.
    pub fn cluster(&self, bound: SocketAddr) -> Result<Option<ClusterSettings>, ConfigError> {
        let Some(url) = &self.journal else {
            return Ok(None);
        };
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(ConfigError::Invalid {
                flag: "journal",
                // The URL may hold a password: never repeated.
                reason: "must be a PostgreSQL URL (postgres://user@host:port/database)".into(),
            });
        }
        if self.lease_renew_ms.saturating_mul(3) > self.lease_ttl_ms {
            return Err(ConfigError::Invalid {
                flag: "lease-renew-ms",
                reason: format!(
                    "{} is more than a third of --lease-ttl-ms {}: one late renewal would hand                      the lease over",
                    self.lease_renew_ms, self.lease_ttl_ms
                ),
            });
        }
        let advertise = match &self.advertise {
            Some(advertise) => advertise.clone(),
            None if bound.ip().is_unspecified() => {
                return Err(ConfigError::Invalid {
                    flag: "advertise",
                    reason: format!(
                        "needed when listening on {bound}: where do the other nodes reach this one?"
                    ),
                });
            }
            None => bound.to_string(),
        };
        let node_id = self.node_id.clone().unwrap_or_else(|| advertise.clone());
        Ok(Some(ClusterSettings {
            journal_url: url.clone(),
            lease: LeaseSettings {
                node_id,
                advertise,
                ttl: Duration::from_millis(self.lease_ttl_ms),
                renew_every: Duration::from_millis(self.lease_renew_ms),
            },
        }))
    }

    pub fn directory(&self) -> Result<ServiceDirectory, ConfigError> {
        check_id("processor_name", &self.processor_name).map_err(|e| ConfigError::Invalid {
            flag: "processor-name",
            reason: e.to_string(),
        })?;
        check_id("instance_domain", &self.instance_domain).map_err(|e| ConfigError::Invalid {
            flag: "instance-domain",
            reason: e.to_string(),
        })?;
        if self.task_history_secs < self.closed_task_retention_secs {
            return Err(ConfigError::Invalid {
                flag: "task-history-secs",
                reason: format!(
                    "{} is shorter than --closed-task-retention-secs {}: a closed task would \
                     leave memory after it left the history",
                    self.task_history_secs, self.closed_task_retention_secs
                ),
            });
        }
        let id = self.processor_id.unwrap_or_else(|| {
            ServiceDirectory::derived_processor_id(&self.instance_domain, &self.processor_name)
        });
        Ok(ServiceDirectory::new(id, self.processor_name.clone()))
    }

    /// The listener's transport security: TLS from the PEM files (read and checked now), or
    /// `None` for plaintext, which is refused on a non-loopback address without `insecure`.
    pub fn tls(&self) -> Result<Option<ServerTls>, TlsError> {
        let (cert, key) = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => (cert, key),
            (Some(_), None) => {
                return Err(TlsError::Incomplete {
                    given: "tls-cert",
                    missing: "tls-key",
                });
            }
            (None, Some(_)) => {
                return Err(TlsError::Incomplete {
                    given: "tls-key",
                    missing: "tls-cert",
                });
            }
            (None, None) => {
                if self.client_ca.is_some() {
                    return Err(TlsError::NeedsTls { flag: "client-ca" });
                }
                if self.client_auth.is_some() {
                    return Err(TlsError::NeedsTls {
                        flag: "client-auth",
                    });
                }
                tls::check_plaintext(self.listen, self.insecure)?;
                return Ok(None);
            }
        };
        if self.client_auth.is_some() && self.client_ca.is_none() {
            return Err(TlsError::ClientAuthWithoutCa);
        }
        ServerTls::load(TlsFiles {
            cert,
            key,
            client_ca: self.client_ca.as_deref(),
            client_auth: self.client_auth.unwrap_or(ClientAuth::Required),
        })
        .map(Some)
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
