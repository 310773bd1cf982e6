//! A histogram of fixed buckets in plain atomics, for the one histogram sampled on every
//! call (`grpc_server_handling_seconds`): a sample is two relaxed additions, where the
//! registry's histograms keep every sample until the next upkeep folds it into its buckets.
//! It writes its own lines of the text format, since the registry never sees it.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use metrics::Label;

/// Counts per bucket (not cumulative: each sample lands in one), the `+Inf` one last.
pub struct AtomicHistogram {
    bounds: &'static [f64],
    buckets: Box<[AtomicU64]>,
    /// The samples' sum in nanoseconds: whole numbers add exactly in an atomic.
    sum_nanos: AtomicU64,
}

impl AtomicHistogram {
    /// `bounds`: the buckets' upper bounds in seconds, ascending.
    pub fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_nanos: AtomicU64::new(0),
        }
    }

    pub fn record(&self, took: std::time::Duration) {
        let seconds = took.as_secs_f64();
        let bucket = self
            .bounds
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(self.bounds.len());
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).sum()
    }

    /// Appends this histogram's `_bucket`, `_sum` and `_count` lines for `name` with
    /// `labels` (whose values need no escaping: they are method names) to `out`.
    pub fn render(&self, name: &str, labels: &[Label], out: &mut String) {
        let mut prefix = String::new();
        for label in labels {
            // Writing to a String cannot fail.
            let _ = write!(prefix, "{}=\"{}\",", label.key(), label.value());
        }
        let mut cumulative = 0;
        for (index, bucket) in self.buckets.iter().enumerate() {
            cumulative += bucket.load(Ordering::Relaxed);
            let le = match self.bounds.get(index) {
                Some(bound) => bound.to_string(),
                None => "+Inf".to_owned(),
            };
            let _ = writeln!(out, "{name}_bucket{{{prefix}le=\"{le}\"}} {cumulative}");
        }
        let sum = self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        let labels = match prefix.trim_end_matches(',') {
            "" => String::new(),
            some => format!("{{{some}}}"),
        };
        let _ = writeln!(out, "{name}_sum{labels} {sum}");
        // The count is the +Inf bucket's, so the two always agree within one scrape.
        let _ = writeln!(out, "{name}_count{labels} {cumulative}");
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn samples_land_in_cumulative_buckets() {
        let histogram = AtomicHistogram::new(&[0.01, 0.1]);
        histogram.record(Duration::from_millis(10));
        histogram.record(Duration::from_millis(50));
        histogram.record(Duration::from_secs(3));
        let mut text = String::new();
        let labels = [Label::from_static_parts("grpc_method", "NewTask")];
        histogram.render("took_seconds", &labels, &mut text);
        assert_eq!(
            text,
            "took_seconds_bucket{grpc_method=\"NewTask\",le=\"0.01\"} 1\n\
             took_seconds_bucket{grpc_method=\"NewTask\",le=\"0.1\"} 2\n\
             took_seconds_bucket{grpc_method=\"NewTask\",le=\"+Inf\"} 3\n\
             took_seconds_sum{grpc_method=\"NewTask\"} 3.06\n\
             took_seconds_count{grpc_method=\"NewTask\"} 3\n"
        );
        assert_eq!(histogram.count(), 3);
    }
}
