//! Logs and traces: how the binary sets up `tracing` (`init`), as text or JSON lines, with
//! OpenTelemetry export over OTLP/gRPC when `--otlp-endpoint` is set; and the span each RPC
//! runs in (`span`). The server's own code only writes `tracing` spans and events.

mod span;

use std::io::IsTerminal;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use thiserror::Error;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::{Layer as _, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;

pub use span::{RpcSpan, RpcSpanLayer};

/// How log lines are written to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// One line of text per event, for people.
    #[default]
    Text,
    /// One JSON object per line, with the fields of the event and its spans, for collectors.
    Json,
}

/// The settings of logs and traces (part of `serve`'s flags).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TelemetryConfig {
    /// Send traces (a span per RPC, with its method, request_id and outcome) over OTLP/gRPC
    /// to this collector (`http://host:4317`). Off unless set.
    #[arg(long, env = "SWITCHBOARD_OTLP_ENDPOINT", value_name = "URL")]
    pub otlp_endpoint: Option<String>,

    /// How log lines are written to stderr: `text` or `json` (one object per line).
    #[arg(
        long,
        env = "SWITCHBOARD_LOG_FORMAT",
        value_enum,
        default_value_t = LogFormat::Text
    )]
    pub log_format: LogFormat,
}

impl TelemetryConfig {
    /// Whether each RPC runs in a span of its own: when traces are exported, or JSON lines
    /// would carry the RPC's fields.
    pub fn rpc_spans(&self) -> bool {
        self.otlp_endpoint.is_some() || self.log_format == LogFormat::Json
    }
}

#[derive(Debug, Error)]
pub enum TelemetryError {
    #[error("--otlp-endpoint: {0}")]
    Exporter(#[from] opentelemetry_otlp::ExporterBuildError),
    #[error("setting up logs: {0}")]
    Init(#[from] tracing_subscriber::util::TryInitError),
}

/// What `init` set up; `shutdown` sends the spans still buffered.
pub struct Telemetry {
    traces: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Exports what is buffered and stops the exporter; called once the server has stopped.
    pub fn shutdown(self) {
        if let Some(traces) = self.traces
            && let Err(e) = traces.shutdown()
        {
            eprintln!("exporting the last traces failed: {e}");
        }
    }
}

/// Sets the process's `tracing` subscriber: lines go to stderr as `config.log_format` says,
/// filtered by `RUST_LOG` (default `info`), and spans at `info` and above (each RPC's) go to
/// the OTLP collector when one is set, whatever `RUST_LOG` says. Call once, inside the tokio
/// runtime (the exporter's connection lives on it).
pub fn init(config: &TelemetryConfig) -> Result<Telemetry, TelemetryError> {
    let filter = || EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let traces = match &config.otlp_endpoint {
        Some(endpoint) => {
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint.clone())
                .build()?;
            Some(
                SdkTracerProvider::builder()
                    .with_batch_exporter(exporter)
                    .with_resource(Resource::builder().with_service_name("switchboard").build())
                    .build(),
            )
        }
        None => None,
    };
    let otel = traces.as_ref().map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("switchboard"))
            .with_filter(LevelFilter::INFO)
    });
    let ansi = std::io::stderr().is_terminal();
    let text = (config.log_format == LogFormat::Text).then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(ansi)
            .with_filter(filter())
    });
    let json = (config.log_format == LogFormat::Json).then(|| {
        tracing_subscriber::fmt::layer()
            .json()
            .with_writer(std::io::stderr)
            .with_filter(filter())
    });
    tracing_subscriber::registry()
        .with(text)
        .with(json)
        .with(otel)
        .try_init()?;
    Ok(Telemetry { traces })
}
