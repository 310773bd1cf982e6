//! The registry behind `/metrics`: one per server, never the process-wide recorder, so that
//! several servers in one process (tests, a cluster on one machine) keep their figures apart.
//! Each metric's name, help text, kind and buckets are declared next to the code that
//! records it (`Metric` lists in `grpc`, `contact_center`, `platform`); this file registers
//! them all, so a histogram is always rendered with buckets, never as a summary.

use metrics::{Counter, Gauge, Histogram, Key, Label, Level, Metadata, Recorder};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

/// What a metric is, as Prometheus' `# TYPE` line says.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    Counter,
    Gauge,
    /// With the upper bounds of its buckets.
    Histogram(&'static [f64]),
}

/// One metric the server exports: its name, its `# HELP` text and its kind.
#[derive(Debug, Clone, Copy)]
pub struct Metric {
    pub name: &'static str,
    pub help: &'static str,
    pub kind: Kind,
}

/// Every metric the server exports, in the order the README lists them.
pub fn catalog() -> impl Iterator<Item = &'static Metric> {
    super::grpc::METRICS
        .iter()
        .chain(super::contact_center::METRICS)
        .chain(super::platform::METRICS)
        .chain(super::process::METRICS)
}

const METADATA: Metadata<'static> = Metadata::new("switchboard", Level::INFO, None);

/// A server's registry: handles to record through, and the text a scrape answers.
pub struct Registry {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
}

impl Registry {
    pub fn new() -> Self {
        let mut builder = PrometheusBuilder::new();
        for metric in catalog() {
            if let Kind::Histogram(buckets) = metric.kind {
                builder = builder
                    .set_buckets_for_metric(Matcher::Full(metric.name.into()), buckets)
                    // Every bucket list is a non-empty constant (checked by a test below).
                    .expect("a histogram's buckets are not empty");
            }
        }
        let recorder = builder.build_recorder();
        for metric in catalog() {
            let (name, help) = (metric.name.into(), metric.help.into());
            match metric.kind {
                Kind::Counter => recorder.describe_counter(name, None, help),
                Kind::Gauge => recorder.describe_gauge(name, None, help),
                Kind::Histogram(_) => recorder.describe_histogram(name, None, help),
            }
        }
        let handle = recorder.handle();
        Self { recorder, handle }
    }

    pub fn counter(&self, name: &'static str, labels: Vec<Label>) -> Counter {
        self.recorder
            .register_counter(&Key::from_parts(name, labels), &METADATA)
    }

    pub fn gauge(&self, name: &'static str, labels: Vec<Label>) -> Gauge {
        self.recorder
            .register_gauge(&Key::from_parts(name, labels), &METADATA)
    }

    pub fn histogram(&self, name: &'static str, labels: Vec<Label>) -> Histogram {
        self.recorder
            .register_histogram(&Key::from_parts(name, labels), &METADATA)
    }

    /// The Prometheus text exposition of everything recorded.
    pub fn render(&self) -> String {
        self.handle.render()
    }

    /// Folds histogram samples recorded since the last scrape into their buckets, so that a
    /// server nobody scrapes does not keep them all.
    pub fn upkeep(&self) {
        self.handle.run_upkeep();
    }
}

/// A label whose value is a borrowed name (an MRD's, a queue's).
pub fn label(key: &'static str, value: &str) -> Label {
    Label::new(key, value.to_owned())
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn every_metric_is_named_once_with_sorted_buckets() {
        let mut seen = HashSet::new();
        for metric in catalog() {
            assert!(seen.insert(metric.name), "{} is listed twice", metric.name);
            assert!(!metric.help.is_empty(), "{} has no help", metric.name);
            if let Kind::Histogram(buckets) = metric.kind {
                assert!(!buckets.is_empty(), "{}", metric.name);
                assert!(buckets.windows(2).all(|w| w[0] < w[1]), "{}", metric.name);
            }
        }
    }

    #[test]
    fn histograms_render_with_buckets() {
        let registry = Registry::new();
        registry
            .histogram("grpc_server_handling_seconds", Vec::new())
            .record(0.2);
        let text = registry.render();
        assert!(
            text.contains("# TYPE grpc_server_handling_seconds histogram"),
            "{text}"
        );
        assert!(
            text.contains("grpc_server_handling_seconds_bucket{le=\"0.25\"} 1"),
            "{text}"
        );
    }
}
