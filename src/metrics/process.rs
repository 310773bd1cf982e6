//! The process's CPU time, memory, threads and file descriptors, read from `/proc/self` at
//! each scrape, under the names every Prometheus client library uses. Linux only (elsewhere
//! they are not shown). No crate for it: a handful of numbers from five small files, where a
//! crate would bring a /proc parser and its dependencies.

use std::fs;

use metrics::Gauge;

use super::recorder::{Kind, Metric, Registry};

const CPU: &str = "process_cpu_seconds_total";
const RESIDENT: &str = "process_resident_memory_bytes";
const VIRTUAL: &str = "process_virtual_memory_bytes";
const THREADS: &str = "process_threads";
const OPEN_FDS: &str = "process_open_fds";
const MAX_FDS: &str = "process_max_fds";
const START: &str = "process_start_time_seconds";

pub const METRICS: &[Metric] = &[
    Metric {
        name: CPU,
        help: "CPU time used, user and system, in seconds (a gauge, to keep its fractions; \
               rate() applies as to a counter).",
        kind: Kind::Gauge,
    },
    Metric {
        name: RESIDENT,
        help: "Resident memory, in bytes.",
        kind: Kind::Gauge,
    },
    Metric {
        name: VIRTUAL,
        help: "Virtual memory, in bytes.",
        kind: Kind::Gauge,
    },
    Metric {
        name: THREADS,
        help: "Threads of the process.",
        kind: Kind::Gauge,
    },
    Metric {
        name: OPEN_FDS,
        help: "Open file descriptors (sockets included).",
        kind: Kind::Gauge,
    },
    Metric {
        name: MAX_FDS,
        help: "The most file descriptors the process may open (soft limit).",
        kind: Kind::Gauge,
    },
    Metric {
        name: START,
        help: "When the process started, in seconds since the Unix epoch.",
        kind: Kind::Gauge,
    },
];

/// Clock ticks per second of /proc's times when the auxiliary vector does not say (Linux's
/// USER_HZ on every mainstream architecture).
const DEFAULT_TICKS: f64 = 100.0;
/// The auxiliary vector's entry for clock ticks per second.
const AT_CLKTCK: usize = 17;

pub struct Process {
    cpu: Gauge,
    resident: Gauge,
    virtual_bytes: Gauge,
    threads: Gauge,
    open_fds: Gauge,
    max_fds: Gauge,
    start: Gauge,
    ticks: f64,
}

impl Process {
    /// Handles for a process with /proc; `None` elsewhere.
    pub fn new(registry: &Registry) -> Option<Self> {
        fs::metadata("/proc/self/stat").ok()?;
        let gauge = |name| registry.gauge(name, Vec::new());
        Some(Self {
            cpu: gauge(CPU),
            resident: gauge(RESIDENT),
            virtual_bytes: gauge(VIRTUAL),
            threads: gauge(THREADS),
            open_fds: gauge(OPEN_FDS),
            max_fds: gauge(MAX_FDS),
            start: gauge(START),
            ticks: clock_ticks().unwrap_or(DEFAULT_TICKS),
        })
    }

    /// Reads the figures now; one that cannot be read keeps its last value.
    pub fn show(&self) {
        if let Some(stat) = Stat::read() {
            self.cpu.set((stat.utime + stat.stime) as f64 / self.ticks);
            self.threads.set(stat.threads as f64);
            self.virtual_bytes.set(stat.vsize as f64);
            if let Some(boot) = boot_time() {
                self.start
                    .set(boot as f64 + stat.starttime as f64 / self.ticks);
            }
        }
        if let Some(kib) = status_field("VmRSS:") {
            self.resident.set(kib as f64 * 1024.0);
        }
        if let Ok(fds) = fs::read_dir("/proc/self/fd") {
            self.open_fds.set(fds.count() as f64);
        }
        if let Some(max) = max_open_files() {
            self.max_fds.set(max as f64);
        }
    }
}

/// The fields of `/proc/self/stat` shown here (see proc(5)).
struct Stat {
    utime: u64,
    stime: u64,
    threads: u64,
    starttime: u64,
    vsize: u64,
}

impl Stat {
    fn read() -> Option<Self> {
        Self::parse(&fs::read_to_string("/proc/self/stat").ok()?)
    }

    fn parse(text: &str) -> Option<Self> {
        // The command name may hold spaces and parentheses: fields start after the last ')'.
        let rest = &text[text.rfind(')')? + 1..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // `fields[0]` is field 3 (the state) of proc(5).
        let field = |number: usize| fields.get(number - 3)?.parse::<u64>().ok();
        Some(Self {
            utime: field(14)?,
            stime: field(15)?,
            threads: field(20)?,
            starttime: field(22)?,
            vsize: field(23)?,
        })
    }
}

/// A `kB` figure of `/proc/self/status`.
fn status_field(name: &str) -> Option<u64> {
    let text = fs::read_to_string("/proc/self/status").ok()?;
    let line = text.lines().find(|l| l.starts_with(name))?;
    line[name.len()..].split_whitespace().next()?.parse().ok()
}

/// When the machine booted, in seconds since the Unix epoch.
fn boot_time() -> Option<u64> {
    let text = fs::read_to_string("/proc/stat").ok()?;
    let line = text.lines().find(|l| l.starts_with("btime "))?;
    line["btime ".len()..].trim().parse().ok()
}

/// The soft limit on open files (`unlimited` shows as none).
fn max_open_files() -> Option<u64> {
    let text = fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Clock ticks per second, from the auxiliary vector the kernel gave the process.
fn clock_ticks() -> Option<f64> {
    let auxv = fs::read("/proc/self/auxv").ok()?;
    let word = std::mem::size_of::<usize>();
    auxv.chunks_exact(2 * word).find_map(|entry| {
        let (key, value) = entry.split_at(word);
        let read =
            |bytes: &[u8]| -> Option<usize> { Some(usize::from_ne_bytes(bytes.try_into().ok()?)) };
        (read(key)? == AT_CLKTCK).then(|| read(value).map(|v| v as f64))?
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_read_after_the_command_name() {
        let line = "4242 (sw (x) y) S 1 4242 4242 0 -1 4194560 900 0 0 0 250 50 0 0 20 0 \
                    7 0 123456 987654321 5000 18446744073709551615";
        let stat = Stat::parse(line).expect("parsed");
        assert_eq!(
            (
                stat.utime,
                stat.stime,
                stat.threads,
                stat.starttime,
                stat.vsize
            ),
            (250, 50, 7, 123456, 987654321)
        );
    }

    #[test]
    fn this_process_is_read() {
        if fs::metadata("/proc/self/stat").is_err() {
            return;
        }
        assert!(Stat::read().is_some_and(|s| s.threads >= 1));
        assert!(status_field("VmRSS:").is_some_and(|kib| kib > 0));
        assert!(clock_ticks().is_some_and(|t| t > 0.0));
        assert!(boot_time().is_some());
    }
}
