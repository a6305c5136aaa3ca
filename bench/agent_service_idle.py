"""Benchmark: the real agent service (`devposture-agent run`) between collections.

Targets: under 0.2 % of a core when idle, under 50 MB resident. Starts a collector process in
a temporary folder, enrolls an agent through the CLI, runs `devposture-agent run --interval
3600` against it, waits for its start-up reports (the start-up one and the one after the
first acknowledgement brought the fleet's configuration), lets it settle, then reads the
service's CPU time and resident memory (psutil) over `--seconds` while nothing happens: the
network watcher polls every 2 s, the backup watcher waits on inotify, the loop sleeps.

    .venv/bin/python bench/agent_service_idle.py [--seconds 60]
    .venv/bin/python bench/agent_service_idle.py --agent DIR/devposture-agent/devposture-agent

`--agent`: another agent program to measure, such as the frozen one the packages carry
(`installers/python/freeze.py agent --build-wheels --wheels W --out DIR`), whose own Python,
libraries and bytecode (without docstrings: installers/python/freeze/devposture.spec) differ
from this checkout's virtual environment.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.e2e.fleet

from tests.e2e.fleet import AGENT, CollectorServer, run

IDLE_TARGET = 0.2
RSS_TARGET_MB = 50.0


def _enroll(collector: CollectorServer, state: Path, agent: str) -> None:
    token = state.parent / "token"
    token.write_text(collector.token())
    done = run(agent, "enroll", "--collector", f"127.0.0.1:{collector.enroll_port}",
               "--token-file", str(token), "--ca-fingerprint", collector.fingerprint,
               "--state", str(state))  # fmt: skip
    assert done.returncode == 0, done.stderr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--agent", default=AGENT, help="the agent program (this checkout's)")
    args = parser.parse_args()
    seconds, agent = args.seconds, args.agent
    with tempfile.TemporaryDirectory(prefix="devposture-idle-") as tmp:
        root = Path(tmp)
        collector = CollectorServer.create(root)
        collector.start()
        service: subprocess.Popen[bytes] | None = None
        try:
            state = root / "agent"
            _enroll(collector, state, agent)
            service = subprocess.Popen(
                [agent, "run", "--state", str(state), "--interval", "3600"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            deadline = time.monotonic() + 120
            while len(collector.stored_ids()) < 2:
                assert service.poll() is None, "the agent service exited"
                assert time.monotonic() < deadline, "the start-up reports did not arrive"
                time.sleep(0.5)
            time.sleep(5.0)  # the second round's commands finish; the loop goes quiet
            process = psutil.Process(service.pid)
            before, wall = process.cpu_times(), time.monotonic()
            peak_rss = 0
            end = wall + seconds
            while time.monotonic() < end:
                peak_rss = max(peak_rss, process.memory_info().rss)
                time.sleep(min(5.0, max(0.0, end - time.monotonic())))
            after, wall = process.cpu_times(), time.monotonic() - wall
        finally:
            if service is not None:
                service.terminate()
                service.wait(30)
            collector.stop()
            collector.close()
    cpu = (after.user - before.user) + (after.system - before.system)
    share = 100 * cpu / wall
    rss_mb = peak_rss / (1024 * 1024)
    print(f"agent: {agent}")
    print(f"agent service idle: {cpu:.3f} s CPU over {wall:.1f} s = {share:.3f} % of one core")
    print(f"peak resident memory while idle: {rss_mb:.1f} MB")
    print(f"target: idle CPU < {IDLE_TARGET} % of a core -> "
          f"{'met' if share < IDLE_TARGET else 'NOT met'}")  # fmt: skip
    print(f"target: resident memory < {RSS_TARGET_MB:g} MB -> "
          f"{'met' if rss_mb < RSS_TARGET_MB else 'NOT met'}")  # fmt: skip


if __name__ == "__main__":
    main()
