//! What the process tells its operators besides metrics: logs, as text or JSON lines, and
//! traces, a span per RPC (`span`) exported over OTLP when a collector is configured
//! (`export`).

mod export;
mod span;

pub use span::{RpcSpanLayer, record_request_id};

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use thiserror::Error;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines (coloured on a terminal).
    Text,
    /// One JSON object per line, with the span's fields (method, request_id...), for log
    /// shippers.
    Json,
}

/// Logging and tracing settings of the process.
#[derive(Debug, Clone, clap::Args)]
pub struct TelemetryConfig {
    /// How logs are written to stderr: `text` or `json` (one object per line). `RUST_LOG`
    /// sets the level (default `info`).
    #[arg(long, env = "SWITCHBOARD_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Export traces (a span per RPC, with its method, request_id and outcome) over OTLP/gRPC
    /// to this collector, e.g. `http://127.0.0.1:4317`. Off unless set. The SDK's
    /// `OTEL_BSP_*` variables tune the batching.
    #[arg(long, env = "SWITCHBOARD_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
}

#[derive(Debug, Error)]
pub enum TelemetryError {
    #[error("--otlp-endpoint: {0}")]
    Exporter(String),
    #[error("installing the log and trace subscriber: {0}")]
    Subscriber(String),
}

/// The installed logging and tracing; `shutdown` sends the spans still batched.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Installs the process's subscriber: the `RUST_LOG` filter, the log format, and the
    /// OTLP exporter when an endpoint is set.
    pub fn install(config: &TelemetryConfig) -> Result<Self, TelemetryError> {
        let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
        let logs = match config.log_format {
            LogFormat::Text => tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .boxed(),
            LogFormat::Json => tracing_subscriber::fmt::layer()
                .json()
                .with_current_span(true)
                .with_span_list(false)
                .with_writer(std::io::stderr)
                .boxed(),
        };
        let provider = match &config.otlp_endpoint {
            Some(endpoint) => Some(export::provider(endpoint)?),
            None => None,
        };
        let traces = provider.as_ref().map(|provider| {
            tracing_opentelemetry::layer().with_tracer(provider.tracer("switchboard"))
        });
        Registry::default()
            .with(filter)
            .with(logs)
            .with(traces)
            .try_init()
            .map_err(|e| TelemetryError::Subscriber(e.to_string()))?;
        Ok(Self { provider })
    }

    /// Sends what is batched and stops the exporter. Blocks: call it off the async workers.
    pub fn shutdown(self) {
        if let Some(provider) = self.provider
            && let Err(e) = provider.shutdown()
        {
            eprintln!("stopping the trace exporter: {e}");
        }
    }
}
