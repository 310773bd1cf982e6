//! The OTLP exporter. The SDK's batch processor exports from a thread of its own, outside any
//! tokio runtime, while the tonic exporter needs one for its connection: the exporter here
//! brings a one-worker runtime and runs each export on it.

use std::fmt;
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use tokio::runtime::Runtime;

use super::TelemetryError;

/// A collector that does not take a batch in this long fails the export (the spans are lost,
/// the server carries on).
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// A tracer provider batching spans to the collector at `endpoint`.
pub(super) fn provider(endpoint: &str) -> Result<SdkTracerProvider, TelemetryError> {
    if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
        return Err(TelemetryError::Exporter(format!(
            "'{endpoint}' must be a URL such as http://127.0.0.1:4317"
        )));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("otlp-export")
        .enable_all()
        .build()
        .map_err(|e| TelemetryError::Exporter(format!("starting its runtime: {e}")))?;
    // The channel is made (lazily) inside the runtime that will drive it.
    let inner = {
        let _inside = runtime.enter();
        opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint)
            .with_timeout(EXPORT_TIMEOUT)
            .build()
            .map_err(|e| TelemetryError::Exporter(e.to_string()))?
    };
    let resource = Resource::builder()
        .with_service_name("switchboard")
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .build();
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(OnItsRuntime { inner, runtime })
        .with_resource(resource)
        .build())
}

/// The tonic exporter with the runtime it runs on.
struct OnItsRuntime {
    inner: opentelemetry_otlp::SpanExporter,
    runtime: Runtime,
}

impl fmt::Debug for OnItsRuntime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OnItsRuntime").finish_non_exhaustive()
    }
}

impl SpanExporter for OnItsRuntime {
    fn export(&self, batch: Vec<SpanData>) -> impl Future<Output = OTelSdkResult> + Send {
        // Called on the batch processor's own thread, where blocking is what it expects.
        let done = if tokio::runtime::Handle::try_current().is_ok() {
            Err(OTelSdkError::InternalFailure(
                "a span batch was exported from inside a tokio runtime".into(),
            ))
        } else {
            self.runtime.block_on(self.inner.export(batch))
        };
        std::future::ready(done)
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}
