#!/usr/bin/env python3
"""Plots the soak benchmark's samples: the server's resident memory and the journal's size over
the run, with the tasks closed so far.

    scripts/plot-soak.py [CSV] [PNG]

Defaults: target/soak/samples.csv (what `cargo bench --bench soak` writes) and
docs/soak-memory.png. Needs matplotlib; without it, the script makes a venv of its own in
target/soak/venv, installs matplotlib there and runs itself again with it.
"""

import csv
import os
import subprocess
import sys
import venv

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV = os.path.join(ROOT, "target", "soak", "venv")


def ensure_matplotlib():
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        python = os.path.join(VENV, "bin", "python")
        if os.path.realpath(sys.prefix) == os.path.realpath(VENV):
            sys.exit("matplotlib did not install into " + VENV)
        if not os.path.exists(python):
            venv.create(VENV, with_pip=True)
            subprocess.run([python, "-m", "pip", "install", "-q", "matplotlib"], check=True)
        os.execv(python, [python, *sys.argv])


def read(path):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        sys.exit(f"{path}: no samples")
    return {key: [float(row[key]) for row in rows] for key in rows[0]}


def main():
    ensure_matplotlib()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    source = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "target", "soak", "samples.csv")
    target = sys.argv[2] if len(sys.argv) > 2 else os.path.join(ROOT, "docs", "soak-memory.png")
    s = read(source)
    minutes = [t / 60 for t in s["elapsed_s"]]
    end = minutes[-1]

    fig, (memory, tasks) = plt.subplots(
        2, 1, figsize=(10, 6.5), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    memory.plot(minutes, [k / 1024 for k in s["rss_kib"]], color="tab:blue", label="server RSS (MiB)")
    memory.plot(
        minutes,
        [b / 2**20 for b in s["journal_bytes"]],
        color="tab:orange",
        label="journal + WAL + SHM (MiB)",
    )
    memory.axvline(end / 4, color="grey", linestyle="--", linewidth=1)
    memory.text(end / 4, 5, " a quarter of the run", va="bottom", color="grey")
    memory.set_ylabel("MiB")
    memory.set_ylim(bottom=0)
    memory.legend(loc="lower right")
    memory.grid(alpha=0.3)
    closed = s["tasks_closed"]
    memory.set_title(
        f"Soak: a compressed day, {int(closed[-1]):,} tasks in {end:.1f} min "
        f"({closed[-1] / s['elapsed_s'][-1]:.0f} tasks/s)"
    )

    tasks.plot(minutes, [c / 1e6 for c in closed], color="tab:green")
    tasks.set_ylabel("tasks closed (M)")
    tasks.set_xlabel("minutes since the first task")
    tasks.set_ylim(bottom=0)
    tasks.grid(alpha=0.3)

    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(target)), exist_ok=True)
    fig.savefig(target, dpi=100)
    print(f"{target}: {len(minutes)} samples")


if __name__ == "__main__":
    main()
