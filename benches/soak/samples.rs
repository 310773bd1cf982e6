//! Once a second: the server's resident memory, the journal's size and the tasks closed so
//! far, into a CSV file and kept for the verdicts.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::load::{Counters, Day};
use crate::procs::rss_kib;
use crate::server::journal_bytes;

pub const CSV_HEADER: &str = "elapsed_s,rss_kib,journal_bytes,tasks_submitted,tasks_closed";

#[derive(Clone, Debug)]
pub struct Sample {
    pub elapsed: f64,
    pub rss_kib: u64,
    pub journal_bytes: u64,
    pub submitted: u64,
    pub closed: u64,
    /// The last task closed by then, to find one closed long enough ago later.
    pub last_closed: Option<String>,
}

/// Samples until the day is done; returns the samples. Prints a progress line every
/// `progress_every` samples.
pub async fn sample(
    day: Arc<Day>,
    pid: u32,
    data_dir: PathBuf,
    csv: PathBuf,
    started: Instant,
    progress_every: usize,
) -> Vec<Sample> {
    if let Some(parent) = csv.parent() {
        std::fs::create_dir_all(parent).expect("the CSV's directory is created");
    }
    let mut file = std::io::BufWriter::new(std::fs::File::create(&csv).expect("the CSV opens"));
    writeln!(file, "{CSV_HEADER}").expect("the CSV is written");
    let mut tick = tokio::time::interval_at(
        tokio::time::Instant::from_std(started),
        Duration::from_secs(1),
    );
    let mut samples = Vec::new();
    while !day.is_done() {
        tick.tick().await;
        let c = &day.counters;
        let s = Sample {
            elapsed: started.elapsed().as_secs_f64(),
            rss_kib: rss_kib(pid),
            journal_bytes: journal_bytes(&data_dir),
            submitted: Counters::get(&c.submitted),
            closed: Counters::get(&c.closed),
            last_closed: c.last_closed.lock().expect("not poisoned").clone(),
        };
        writeln!(
            file,
            "{:.1},{},{},{},{}",
            s.elapsed, s.rss_kib, s.journal_bytes, s.submitted, s.closed
        )
        .expect("the CSV is written");
        file.flush().expect("the CSV is written");
        if samples.len() % progress_every == 0 {
            println!(
                "  {:>6.0} s  RSS {:>7.1} MiB  journal {:>7.1} MiB  submitted {:>9}  closed {:>9}",
                s.elapsed,
                s.rss_kib as f64 / 1024.0,
                s.journal_bytes as f64 / (1024.0 * 1024.0),
                s.submitted,
                s.closed
            );
        }
        samples.push(s);
    }
    samples
}

/// The median of `value` over the samples within `half_width` seconds of `at`.
pub fn median_around(
    samples: &[Sample],
    at: f64,
    half_width: f64,
    value: fn(&Sample) -> u64,
) -> u64 {
    let mut near: Vec<u64> = samples
        .iter()
        .filter(|s| (s.elapsed - at).abs() <= half_width)
        .map(value)
        .collect();
    if near.is_empty() {
        // Fewer samples than the window: the one nearest to `at`.
        near = samples
            .iter()
            .min_by(|a, b| (a.elapsed - at).abs().total_cmp(&(b.elapsed - at).abs()))
            .map(value)
            .into_iter()
            .collect();
    }
    near.sort_unstable();
    near.get(near.len() / 2).copied().unwrap_or(0)
}

/// The largest `value` at or after `from` seconds.
pub fn max_from(samples: &[Sample], from: f64, value: fn(&Sample) -> u64) -> u64 {
    samples
        .iter()
        .filter(|s| s.elapsed >= from)
        .map(value)
        .max()
        .unwrap_or(0)
}

/// Where the CSV goes: `<target dir>/soak/`.
pub fn csv_path(name: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("soak").join(name)
}
