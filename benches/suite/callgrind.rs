//! A server's work counted in instructions, under `valgrind --tool=callgrind`. Unlike calls/s,
//! the count does not move with what the machine's other tenants do: the same binary, input
//! and settings give the same count, near enough, on a busy machine as on an idle one.

use std::path::{Path, PathBuf};

use crate::procs::{ServerChild, ServerKind};

/// A server running under callgrind, which writes its count when the server exits.
pub struct Counted {
    pub server: ServerChild,
    out_file: PathBuf,
}

impl Counted {
    /// Starts Switchboard on `data_dir` with `flags` under callgrind, on `core`. Its count
    /// goes to a file in `data_dir`.
    pub fn start(data_dir: &Path, flags: &[&str], core: Option<usize>) -> Self {
        let out_file = data_dir.join("callgrind.out");
        let under = [
            "valgrind".to_owned(),
            "--tool=callgrind".to_owned(),
            format!("--callgrind-out-file={}", out_file.display()),
        ];
        let server =
            ServerChild::start_under(&ServerKind::Switchboard { data_dir, flags }, core, &under);
        Self { server, out_file }
    }

    /// Stops the server gracefully and answers the instructions it executed in all.
    pub fn stop(self) -> u64 {
        self.server.terminate();
        let written = std::fs::read_to_string(&self.out_file).unwrap_or_else(|e| {
            panic!(
                "callgrind wrote {} (is valgrind installed?): {e}",
                self.out_file.display()
            )
        });
        // `totals:` (or `summary:`, in older files) holds the whole run's count of `Ir`.
        written
            .lines()
            .find_map(|l| l.strip_prefix("totals:").or(l.strip_prefix("summary:")))
            .and_then(|n| n.trim().parse().ok())
            .expect("callgrind's file has a total")
    }
}
