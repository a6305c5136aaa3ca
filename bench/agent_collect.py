"""Benchmark: CPU time and resident memory of one full agent collection on this machine.

Targets (README of bench/): under 0.3 s of CPU for a full collection, under 50 MB resident.
CPU includes the child processes the probes run (nft, apt, lsblk ...), because the computer
pays for them too. Each run is a fresh interpreter, as a scheduler would start `once`.

    .venv/bin/python bench/agent_collect.py [--runs N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

_CHILD = """
import json, resource, time
import psutil
start = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
from agent.collect import build_report
from agent.host import LiveHost
from agent.probes.config import ProbeConfig
imported = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
wall = time.perf_counter()
report = build_report(LiveHost(), ProbeConfig())
wall = time.perf_counter() - wall
end = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
def cpu(a, b):
    return sum(x.ru_utime + x.ru_stime for x in b) - sum(x.ru_utime + x.ru_stime for x in a)
print(json.dumps({
    "collect_cpu_s": cpu(imported, end),
    "import_cpu_s": cpu(start, imported),
    "wall_s": wall,
    "rss_mb": psutil.Process().memory_info().rss / 2**20,
    "peak_rss_mb": end[0].ru_maxrss / 1024,
    "errors": len(report.errors),
}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    samples = []
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-c", _CHILD], capture_output=True, text=True, check=True
        )
        samples.append(json.loads(out.stdout.strip().splitlines()[-1]))
    for key in ("collect_cpu_s", "import_cpu_s", "wall_s", "rss_mb", "peak_rss_mb"):
        values = [s[key] for s in samples]
        print(f"{key:14} median {statistics.median(values):8.3f}  max {max(values):8.3f}")
    cpu = statistics.median(s["collect_cpu_s"] for s in samples)
    rss = max(s["peak_rss_mb"] for s in samples)
    print(f"target: collection CPU < 0.300 s -> {'met' if cpu < 0.3 else 'NOT met'} ({cpu:.3f} s)")
    print(f"target: resident memory < 50 MB -> {'met' if rss < 50 else 'NOT met'} ({rss:.1f} MB)")


if __name__ == "__main__":
    main()
