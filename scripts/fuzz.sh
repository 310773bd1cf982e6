#!/usr/bin/env bash
# Builds the fuzz targets (fuzz/, cargo-fuzz with libFuzzer) and runs each from its seed corpus
# for a fixed number of runs (CI: the default) or a time (a campaign), installing cargo-fuzz into
# target/test-tools when it is missing.
#
#   scripts/fuzz.sh                                        every target, -runs=2000 each (CI)
#   scripts/fuzz.sh --release -max_total_time=300 journal  one target for five minutes
#
# CI's short runs use an unoptimised build: about a third of the release build's compile time,
# and 2,000 runs take seconds either way. A campaign wants `--release` (many times the runs a
# second); the two builds live side by side under fuzz/target.
#
# An input is at most 64 KiB; one that makes the process hold 512 MiB, or run 10 s, is a crash.
# New inputs go to target/fuzz-corpus/<target>, which later runs start from as well; the seeds
# in fuzz/corpus/<target> are only read. A crash stops the run, leaves its input in
# fuzz/artifacts/<target>/ and fails the script.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tools="$root/target/test-tools"
cargo_fuzz="$tools/bin/cargo-fuzz"
cargo_fuzz_version=0.13.2

if [[ "$("$cargo_fuzz" --version 2>/dev/null)" != "cargo-fuzz $cargo_fuzz_version" ]]; then
  cargo install cargo-fuzz --version "$cargo_fuzz_version" --locked --root "$tools" --quiet
fi

build=(--sanitizer none --dev)
if [[ "${1:-}" == --release ]]; then
  build=(--sanitizer none)
  shift
fi
limit="-runs=2000"
if [[ "${1:-}" == -* ]]; then
  limit="$1"
  shift
fi
targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
  targets=(step_expr requests workflow_model journal)
fi

# cargo-fuzz passes unstable flags to rustc; the stable toolchain takes them under
# RUSTC_BOOTSTRAP. No AddressSanitizer: the code fuzzed is safe Rust, and ASan would make this
# second, instrumented build of the crate and every run slower for nothing it could find.
export RUSTC_BOOTSTRAP=1

cd "$root"
"$cargo_fuzz" build "${build[@]}"
for target in "${targets[@]}"; do
  work="$root/target/fuzz-corpus/$target"
  mkdir -p "$work"
  started=$SECONDS
  "$cargo_fuzz" run "${build[@]}" "$target" "$work" "$root/fuzz/corpus/$target" -- \
    "$limit" -max_len=65536 -rss_limit_mb=512 -timeout=10 -print_final_stats=1 \
    2>"$work.log" || { tail -n 60 "$work.log"; exit 1; }
  echo "fuzz $target: $(grep -o 'stat::number_of_executed_units: *[0-9]*' "$work.log" \
    | grep -o '[0-9]*$') runs, $(grep -Eo 'cov: [0-9]+ ft: [0-9]+' "$work.log" | tail -n 1),\
 $((SECONDS - started)) s"
done
