"""Start-up time: `clapper --help` and `clapper probe --json VIDEO` against importing torch + transformers.

Each command runs several times as a fresh process; the table shows the median wall time and
how many times faster than `python -c "import torch, transformers"` measured in the same run.
Targets: `--help` under 0.3 s and at least 10x faster than the torch + transformers import.

    python bench/startup.py [--repeats 7] [--video ../shared/videos/nasa_13013.mp4]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_VIDEO = REPO.parent / "shared" / "videos" / "nasa_13013.mp4"


def clapper() -> list[str]:
    exe = shutil.which("clapper")
    return [exe] if exe else [sys.executable, "-m", "clapper_cli.main"]


def wall(cmd: list[str], repeats: int) -> tuple[list[float], list[float]]:
    """Wall and CPU (user + system) seconds of each run; CPU time barely moves on a busy machine."""
    times, cpu = [], []
    for _ in range(repeats):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, cwd=REPO)
        times.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return times, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--video", type=Path, default=DEFAULT_VIDEO)
    args = parser.parse_args()

    wall([sys.executable, "-c", "import torch, transformers"], 1)  # warm the file cache once
    rows = [
        ("python -c 'import torch, transformers'", [sys.executable, "-c", "import torch, transformers"]),
        ("clapper --help", clapper() + ["--help"]),
        ("clapper --version", clapper() + ["--version"]),
        (f"clapper probe --json {args.video.name}", clapper() + ["probe", "--json", str(args.video)]),
        ("python -c pass (interpreter alone)", [sys.executable, "-c", "pass"]),
    ]
    measured = {name: wall(cmd, args.repeats) for name, cmd in rows}
    results = {name: statistics.median(w) for name, (w, _) in measured.items()}
    cpu = {name: statistics.median(c) for name, (_, c) in measured.items()}
    baseline = results[rows[0][0]]
    print(f"median of {args.repeats} runs each, fresh processes, {sys.platform}, Python {sys.version.split()[0]}, "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"{'command':<48} {'wall s':>8} {'cpu s':>7} {'wall vs torch+transformers':>27}")
    for name, seconds in results.items():
        print(f"{name:<48} {seconds:>8.3f} {cpu[name]:>7.3f} {baseline / seconds:>26.1f}x")
    help_s = results["clapper --help"]
    ok = help_s < 0.3 and baseline / help_s >= 10
    print(f"target --help < 0.300 s and >= 10x: {'met' if ok else 'NOT met'} "
          f"({help_s:.3f} s, {baseline / help_s:.1f}x)")


if __name__ == "__main__":
    main()
