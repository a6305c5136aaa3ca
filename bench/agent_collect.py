"""Benchmark: CPU time and resident memory of one full agent collection on this machine.

Targets: under 0.3 s of CPU for a full collection, under 50 MB resident. CPU includes the
child processes the probes run (apt-get, lsblk, iptables ...), because the computer pays for
them too. Each run is a fresh interpreter, as a scheduler would start `once`.

Two figures: "cold" is a collection with an empty command cache (the first after install, or
after the package database or lists changed, or after 6 hours); "warm" is every other one.

    .venv/bin/python bench/agent_collect.py [--runs N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

_CHILD = """
import json, resource, sys, time
from pathlib import Path
import psutil
start = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
from devposture.agent.collect import build_report
from devposture.agent.host import LiveHost
from devposture.agent.host.command_cache import CommandCache
from devposture.agent.probes.config import ProbeConfig
from devposture.agent.probes.runner import probes_for
host = LiveHost(CommandCache(Path(sys.argv[1])))
probes_for(host.os_family)  # this system's probes, loaded where they are first asked for
imported = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
wall = time.perf_counter()
report = build_report(host, ProbeConfig())
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


def _sample(cache: Path) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, str(cache)], capture_output=True, text=True, check=True
    )
    sample: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return sample


def _summary(label: str, samples: list[dict[str, float]]) -> None:
    for key in ("collect_cpu_s", "wall_s", "peak_rss_mb"):
        values = [s[key] for s in samples]
        print(f"{label:5} {key:14} median {statistics.median(values):8.3f}  max {max(values):8.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    cold: list[dict[str, float]] = []
    warm: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for run in range(runs):
            cache = Path(tmp) / f"cache-{run}.json"
            cold.append(_sample(cache))
            warm.append(_sample(cache))
    _summary("cold", cold)
    _summary("warm", warm)
    cold_cpu = statistics.median(s["collect_cpu_s"] for s in cold)
    warm_cpu = statistics.median(s["collect_cpu_s"] for s in warm)
    rss = max(s["peak_rss_mb"] for s in cold + warm)
    print(
        f"target: collection CPU < 0.300 s: warm {warm_cpu:.3f} s"
        f" ({'met' if warm_cpu < 0.3 else 'NOT met'}), cold {cold_cpu:.3f} s"
        f" ({'met' if cold_cpu < 0.3 else 'NOT met'})"
    )
    print(f"target: resident memory < 50 MB: {rss:.1f} MB ({'met' if rss < 50 else 'NOT met'})")


if __name__ == "__main__":
    main()
