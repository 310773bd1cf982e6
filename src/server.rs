//! Wiring: journal, engine, API, health and reflection on one listener (TLS or plaintext, see
//! `tls`), with a graceful stop.

use std::net::SocketAddr;
use std::sync::Arc;

use std::path::PathBuf;
use thiserror::Error;
use tokio::net::TcpListener;

use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tonic::transport::server::TcpIncoming;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;
use tracing::{info, warn};

use crate::api::{Api, AuthSettings, CardinalityLayer, NodeInfo};
use crate::auth::{AuthLayer, KeyError, SigningKey, TokenCache, TokenConfig, TokenIssuer};
use crate::bootstrap::{BootstrapError, ensure_admin};
use crate::cluster::ClientTls;
use crate::cluster::ForwardLayer;
use crate::cluster::{ClusterError, ClusterNode, Keeper, NodeRole, NodeView};
use crate::config::{ConfigError, ServerConfig};
use crate::credentials::Logins;
use crate::domain::State;
use crate::engine::{Engine, EngineHandle, EngineStatus, RecoveryError, SystemClock};
use crate::lifecycle::Lifecycle;
use crate::metrics::Metrics;
use crate::pb;
use crate::store::{Journal, MemoryJournal, SqliteJournal, StoreError};
use crate::telemetry::RpcSpanLayer;
use crate::tls::TlsError;
use crate::web::{PageSource, PagesLayer, WebOrigins};

/// The gRPC services health reports on, besides the server as a whole ("").
const SERVICE_NAMES: [&str; 6] = [
    "switchboard.v1.AuthService",
    "switchboard.v1.CoreService",
    "switchboard.v1.ProcessorService",
    "switchboard.v1.WorkflowService",
    "switchboard.v1.AdminService",
    "switchboard.v1.RoutingService",
];

#[derive(Debug, Error)]
pub enum ServerError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("opening the journal: {0}")]
    Store(#[from] StoreError),
    #[error("recovering from the journal: {0}")]
    Recovery(#[from] RecoveryError),
    #[error("listening on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Bootstrap(#[from] BootstrapError),
    #[error("the token signing key: {0}")]
    SigningKey(#[from] KeyError),
    #[error("reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("starting the metrics: {0}")]
    Metrics(crate::domain::DomainError),
    #[error("joining the cluster: {0}")]
    Cluster(#[from] ClusterError),
    #[error("serving: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("the server task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// A running server. Dropping it without `shutdown` leaves it running until the runtime ends.
pub struct Server {
    addr: SocketAddr,
    /// Where `/metrics` is served, with `--metrics-listen`.
    metrics_addr: Option<SocketAddr>,
    /// The metrics and the task serving `/metrics`; ended at shutdown.
    metrics: Option<(Metrics, JoinHandle<()>)>,
    lifecycle: Lifecycle,
    health: HealthReporter,
    engine: EngineHandle,
    /// A cluster node's lease keeper: released after the engine closes.
    keeper: Option<Keeper>,
    /// Turns health NOT_SERVING while the journal cannot be written; stopped at shutdown.
    health_follower: JoinHandle<()>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), tonic::transport::Error>>,
}

impl Server {
    /// Checks the TLS files (or that plaintext may listen where asked), recovers state, binds
    /// `config.listen` (port 0 picks a free port) and starts serving.
    pub async fn start(config: ServerConfig) -> Result<Self, ServerError> {
        Self::start_on(config, None, None).await
    }

    /// `start` with `forward` in front of every service, outside authentication: calls only
    /// the leader may serve go where its route says, reads wait for the revision they ask for.
    pub async fn start_with_forwarding(
        config: ServerConfig,
        forward: ForwardLayer,
    ) -> Result<Self, ServerError> {
        Self::start_on(config, None, Some(forward)).await
    }

    /// `start` with this journal instead of the one `config` names (the data directory still
    /// holds the signing key): for a journal that fails when told to, in tests.
    pub async fn start_with_journal(
        config: ServerConfig,
        journal: Arc<dyn Journal>,
    ) -> Result<Self, ServerError> {
        Self::start_on(config, Some(journal), None).await
    }

    async fn start_on(
        config: ServerConfig,
        given: Option<Arc<dyn Journal>>,
        forward: Option<ForwardLayer>,
    ) -> Result<Self, ServerError> {
        // First, so a bad certificate or an exposed plaintext listener touches no journal.
        let tls = config.tls()?;
        let directory = config.directory()?;
        let models = Arc::new(config.load_models()?);
        let lifecycle = Lifecycle::default();

        let state = State::new(directory.clone(), models)
            .with_presence_grace(config.presence_grace_ms)
            .with_closed_task_retention(config.closed_task_retention_ms())
            .with_max_open_tasks(usize::try_from(config.max_open_tasks).unwrap_or(usize::MAX));

        // Bound before the journal is opened: a cluster node advertises the address.
        let (listener, addr) = bind(config.listen).await?;
        let metrics_listener = match config.metrics_listen {
            Some(at) => Some(bind(at).await?),
            None => None,
        };
        let metrics_addr = metrics_listener.as_ref().map(|(_, bound)| *bound);
        let cluster = config.cluster(addr)?;
        let (engine, signing_key, keeper, peer_seal) = match &cluster {
            Some(cluster) => {
                let node = ClusterNode::join(&config, cluster, state).await?;
                let seal = Some(node.peer_seal);
                (node.engine, node.signing_key, Some(node.keeper), seal)
            }
            None => {
                let (engine, key) = open_single(&config, given, state).await?;
                (engine, key, None, None)
            }
        };
        let node = match &keeper {
            Some(keeper) => NodeInfo {
                view: keeper.view(),
                desktop_streams: Arc::default(),
            },
            None => NodeInfo::standalone(),
        };
        // Counting starts from the state recovered, before any call is served.
        let metrics = match metrics_listener {
            Some((listener, _)) => {
                let metrics = Metrics::new(keeper.is_some());
                metrics
                    .follow(&engine, node.view.clone())
                    .await
                    .map_err(ServerError::Metrics)?;
                Some((metrics, listener))
            }
            None => None,
        };
        // A cluster node forwards what only the leader may serve; a test may give its own.
        let forward = match (&keeper, &cluster, peer_seal) {
            (Some(keeper), Some(cluster), Some(seal)) => Some(
                ForwardLayer::new(keeper.route(), engine.applied(), tls_to_leader(&config)?)
                    .with_node_name(&cluster.lease.node_id)
                    .map_err(|_| ConfigError::Invalid {
                        flag: "node-id",
                        reason: "must be printable ASCII".into(),
                    })?
                    .counting_desktop_streams(Arc::clone(&node.desktop_streams))
                    .with_peer_seal(seal),
            ),
            _ => forward,
        };
        match &keeper {
            // Whichever node leads first makes the first admin; the others find it there.
            Some(_) => {
                tokio::spawn(ensure_admin_once_leading(
                    engine.clone(),
                    node.view.clone(),
                    config.bootstrap_secret_path(),
                ));
            }
            None => ensure_admin(&engine, &config.bootstrap_secret_path()).await?,
        }
        let issuer = Arc::new(TokenIssuer::new(
            TokenConfig {
                issuer: "switchboard".into(),
                // Tokens of one instance domain are good on any of its servers, and no other.
                audience: format!("switchboard:{}", config.instance_domain),
                ttl_secs: config.access_token_ttl_secs,
            },
            signing_key,
        ));
        let auth = AuthLayer::new(
            Arc::clone(&issuer),
            engine.standings().clone(),
            Arc::new(TokenCache::default()),
            config.reflection_requires_auth,
        );

        let (health, health_service) = tonic_health::server::health_reporter();
        for name in SERVICE_NAMES {
            health
                .set_service_status(name, ServingStatus::Serving)
                .await;
        }
        let health_follower = tokio::spawn(follow_engine_status(health.clone(), engine.status()));
        let reflection = || {
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
                // Each version lists both, so `list` names both whichever one a client speaks.
                .register_encoded_file_descriptor_set(tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(
                    tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
                )
        };

        let api = Api::new(
            engine.clone(),
            directory.clone(),
            config.instance_domain.clone(),
            lifecycle.clone(),
            AuthSettings {
                issuer,
                refresh_ttl_secs: config.refresh_token_ttl_secs,
            },
            node.clone(),
        );
        // Streams per connection are bounded by HTTP/2's own setting: a client waits for a
        // stream to end before it opens one more.
        // HTTP/1.1 too: browsers speak gRPC-web over it to a plaintext server.
        let mut builder = tonic::transport::Server::builder()
            .accept_http1(true)
            .max_concurrent_streams(Some(config.max_streams_per_connection));
        if let Some(tls) = &tls {
            builder = builder.tls_config(tls.tonic_config())?;
        }
        // Every service sits behind the one policy table, health and reflection included;
        // answers a call without its one request message as gRPC's status table says, and an
        // oversized one RESOURCE_EXHAUSTED.
        let limit = config.max_message_bytes;
        let forward = forward.map(|forward| forward.ending_on(lifecycle.clone()));
        let origins = WebOrigins::parse(&config.web_servers).map_err(|e| ConfigError::Invalid {
            flag: "web-servers",
            reason: e.to_string(),
        })?;
        let pages = match &config.web_dir {
            Some(dir) => PageSource::Folder(dir.clone()),
            None => PageSource::Embedded,
        };
        let router = builder
            // Browsers first: CORS preflights, then the pages (GETs), then gRPC-web calls
            // turned into gRPC ones, so that everything inside sees only gRPC.
            .layer(tower::util::option_layer(crate::web::cors(&origins)))
            .layer(PagesLayer::new(pages, &origins))
            .layer(tonic_web::GrpcWebLayer::new())
            // A span per call when traces or JSON logs want one.
            .layer(tower::util::option_layer(
                config.telemetry.rpc_spans().then_some(RpcSpanLayer),
            ))
            // Every gRPC call once, forwarded or served here, refused or not.
            .layer(tower::util::option_layer(
                metrics.as_ref().map(|(metrics, _)| metrics.grpc_layer()),
            ))
            // A forwarded call is authenticated by the leader, not here.
            .layer(tower::util::option_layer(forward))
            .layer(auth)
            .layer(CardinalityLayer)
            .layer(tower::util::MapResponseLayer::new(
                crate::api::oversize::relabel_response,
            ))
            .add_service(health_service)
            .add_service(reflection().build_v1()?)
            .add_service(reflection().build_v1alpha()?)
            .add_service(
                pb::auth_service_server::AuthServiceServer::new(api.clone())
                    .max_decoding_message_size(limit),
            )
            .add_service(
                pb::core_service_server::CoreServiceServer::new(api.clone())
                    .max_decoding_message_size(limit),
            )
            .add_service(
                pb::processor_service_server::ProcessorServiceServer::new(api.clone())
                    .max_decoding_message_size(limit),
            )
            .add_service(
                pb::workflow_service_server::WorkflowServiceServer::new(api.clone())
                    .max_decoding_message_size(limit),
            )
            .add_service(
                pb::admin_service_server::AdminServiceServer::new(api.clone())
                    .max_decoding_message_size(limit),
            )
            .add_service(
                pb::routing_service_server::RoutingServiceServer::new(api)
                    .max_decoding_message_size(limit),
            );

        let (stop, stopped) = oneshot::channel::<()>();
        // No Nagle delay: a small frame (an answer, an event) leaves at once instead of
        // waiting up to 40 ms for the peer's delayed ACK.
        let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
        let task = tokio::spawn(router.serve_with_incoming_shutdown(incoming, async move {
            let _ = stopped.await;
        }));
        let metrics = metrics.map(|(metrics, listener)| {
            let exporter = metrics.serve(listener);
            (metrics, exporter)
        });
        lifecycle.mark_in_service();
        info!(
            %addr,
            metrics = ?metrics_addr,
            transport = %tls.as_ref().map_or("plaintext", |tls| tls.mode()),
            processor_id = %directory.processor_id,
            processor_name = %directory.processor_name,
            instance_domain = %config.instance_domain,
            "switchboard serving"
        );
        Ok(Self {
            addr,
            metrics_addr,
            metrics,
            lifecycle,
            health,
            engine,
            keeper,
            health_follower,
            stop,
            task,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where `/metrics` is served (`--metrics-listen`, with port 0 resolved), if it is.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// Stops taking clients at once (status STOPPING), ends open streams with a status that
    /// tells desktops to reconnect elsewhere, lets in-flight requests finish, then writes a
    /// last snapshot and closes the journal.
    pub async fn shutdown(mut self) -> Result<(), ServerError> {
        info!("switchboard stopping");
        self.lifecycle.begin_stopping();
        // From here on health says NOT_SERVING, whatever the journal does.
        self.health_follower.abort();
        for name in SERVICE_NAMES.into_iter().chain([""]) {
            self.health
                .set_service_status(name, ServingStatus::NotServing)
                .await;
        }
        let _ = self.stop.send(());
        let served = self.task.await;
        self.engine.close().await;
        if let Some(keeper) = &mut self.keeper {
            keeper.stop().await;
        }
        if let Some((metrics, exporter)) = self.metrics.take() {
            exporter.abort();
            let _ = exporter.await;
            metrics.release();
        }
        served??;
        info!("switchboard stopped");
        Ok(())
    }
}

/// Binds `addr` (port 0 picks a free port); answers the listener and the address it got.
async fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), ServerError> {
    let failed = |source| ServerError::Bind { addr, source };
    let listener = TcpListener::bind(addr).await.map_err(failed)?;
    let bound = listener.local_addr().map_err(failed)?;
    Ok((listener, bound))
}

/// Opens the single node's journal (or the one given) and starts its engine; reads the
/// signing key from the data directory.
async fn open_single(
    config: &ServerConfig,
    given: Option<Arc<dyn Journal>>,
    state: State,
) -> Result<(EngineHandle, SigningKey), ServerError> {
    // Opening the journal and replaying it read the disk: off the async workers.
    let recovery = config.clone();
    tokio::task::spawn_blocking(move || -> Result<_, ServerError> {
        // The token signing key is read (or made) here too, for the same reason.
        let key_dir = (!recovery.in_memory).then_some(recovery.data_dir.as_path());
        let signing_key = SigningKey::load_or_create(key_dir)?;
        let journal: Arc<dyn Journal> = if let Some(journal) = given {
            journal
        } else if recovery.in_memory {
            Arc::new(MemoryJournal::new())
        } else {
            let journal = SqliteJournal::open(&recovery.data_dir)?;
            info!(path = %journal.path().display(), "journal opened");
            Arc::new(journal)
        };
        let clock = Arc::new(SystemClock);
        let engine = Engine::start(
            state,
            journal,
            clock.clone(),
            recovery.engine(),
            recovery.watch(),
        )?
        .with_logins(Logins::new(&recovery.logins(), clock));
        Ok((engine, signing_key))
    })
    .await?
}

/// How a cluster node reaches the leader: plaintext when it serves plaintext itself, else
/// TLS trusting the CA that signs the nodes' certificates (`--client-ca`, else the
/// certificate chain it serves with), expecting the name its own certificate carries.
fn tls_to_leader(config: &ServerConfig) -> Result<Option<ClientTls>, ServerError> {
    let Some(cert) = &config.tls_cert else {
        return Ok(None);
    };
    let ca = config
        .cluster_ca
        .as_ref()
        .or(config.client_ca.as_ref())
        .unwrap_or(cert);
    let ca_pem = std::fs::read(ca).map_err(|e| ConfigError::Invalid {
        flag: "cluster-ca",
        reason: format!("{}: {e}", ca.display()),
    })?;
    Ok(Some(ClientTls {
        ca_pem,
        domain: config.cluster_tls_name.clone(),
    }))
}

/// On a cluster node: makes the first admin, if none exists, once this node first leads.
async fn ensure_admin_once_leading(
    engine: EngineHandle,
    mut view: watch::Receiver<NodeView>,
    secret_file: PathBuf,
) {
    let leading = view
        .wait_for(|view| view.role == NodeRole::Leader { ready: true })
        .await
        .is_ok();
    if !leading {
        return;
    }
    if let Err(e) = ensure_admin(&engine, &secret_file).await {
        warn!(error = %e, "making the first admin failed");
    }
}

/// Health follows the engine: NOT_SERVING for the server and every service while the journal
/// cannot be written (reads are still answered) or a cluster node rebuilds its state, SERVING
/// again once it can (a follower serves: it answers reads and forwards the rest), and
/// NOT_SERVING for good if the engine stops.
async fn follow_engine_status(
    health: HealthReporter,
    mut status: tokio::sync::watch::Receiver<EngineStatus>,
) {
    loop {
        let running = status.changed().await.is_ok();
        let now = *status.borrow_and_update();
        let to = if running && now.serves_reads() && now != EngineStatus::Degraded {
            info!(status = ?now, "health SERVING");
            ServingStatus::Serving
        } else {
            warn!(status = ?now, "health NOT_SERVING: the journal cannot be written, or this node rebuilds its state");
            ServingStatus::NotServing
        };
        for name in SERVICE_NAMES.into_iter().chain([""]) {
            health.set_service_status(name, to).await;
        }
        if !running {
            return;
        }
    }
}
