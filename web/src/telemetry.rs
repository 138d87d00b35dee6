//! Logging, and OpenTelemetry traces when asked for.
//!
//! Logs go to stderr (filtered by `RUST_LOG`, `info` by default). Traces are exported over
//! OTLP only when the standard `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) variable is set; the other standard variables
//! (`OTEL_EXPORTER_OTLP_PROTOCOL`, `_HEADERS`, `_TIMEOUT`, `OTEL_SERVICE_NAME`, ...) apply.
//! Spans exported: every HTTP request (`request`) and every replicated record set
//! (`replicate`, with flow, topic, partition, records and bytes).

use opentelemetry::trace::TracerProvider as _;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

/// Keeps the exporter alive; dropping it flushes the spans still buffered.
pub struct Telemetry {
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl Telemetry {
    pub fn exporting(&self) -> bool {
        self.provider.is_some()
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(p) = self.provider.take() {
            if let Err(e) = p.shutdown() {
                eprintln!("flushing traces: {e}");
            }
        }
    }
}

fn endpoint_configured() -> bool {
    ["OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"].iter().any(|v| std::env::var(v).is_ok_and(|s| !s.trim().is_empty()))
}

/// Installs the global subscriber: logs to stderr, plus the OTLP span exporter when an
/// endpoint is configured. A broken exporter configuration is reported and leaves logging on.
pub fn init(service_name: &str) -> Telemetry {
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        // Colours only on a terminal: log files and collectors get plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()));
    let mut problem = None;
    let provider = if endpoint_configured() {
        match opentelemetry_otlp::SpanExporter::builder().with_http().build() {
            Ok(exporter) => {
                let resource = opentelemetry_sdk::Resource::builder().with_service_name(std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| service_name.to_string())).build();
                Some(opentelemetry_sdk::trace::SdkTracerProvider::builder().with_batch_exporter(exporter).with_resource(resource).build())
            }
            Err(e) => {
                problem = Some(e.to_string());
                None
            }
        }
    } else {
        None
    };
    let otel = provider.as_ref().map(|p| {
        let spans = tracing_subscriber::filter::Targets::new()
            .with_target("tower_http", tracing::Level::INFO)
            .with_target("tern_mirror", tracing::Level::INFO)
            .with_target("tern_web", tracing::Level::INFO);
        tracing_opentelemetry::layer().with_tracer(p.tracer("tern")).with_filter(spans)
    });
    tracing_subscriber::registry().with(fmt).with(otel).init();
    if let Some(e) = problem {
        tracing::error!("OpenTelemetry: cannot set up the OTLP exporter ({e}); traces are not exported");
    } else if provider.is_some() {
        tracing::info!("exporting traces over OTLP");
    }
    Telemetry { provider }
}
