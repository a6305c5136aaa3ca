"""Benchmark: ReportBatch server CPU per report, this checkout's collector against another
checkout's, side by side on one machine (issue 17, item 5: the "before and after" of a change).

Why: on a shared VM the same code's figure drifts by a fifth within an hour, more than most
changes to ingest are worth, so a "before" run an hour ago says little about an "after" run
now. Here the fleet is enrolled once and its data folder copied, and both collectors serve at
once: the other checkout's with `PYTHONPATH=<tree>/protos:<tree>` (a `git worktree add` of the
commit before), this one's as installed. Their phases alternate (old then new, then new then
old, ...), with `ingest_vs_echo.py`'s own load and CPU accounting (the report writer's share
beside), and the medians are printed with every round's pair.

    git worktree add /tmp/before HEAD~1
    .venv/bin/python bench/ingest_ab.py /tmp/before --rounds 6 --seconds 6
"""

from __future__ import annotations

import argparse
import dataclasses
import multiprocessing
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench, tests.e2e.fleet

from bench import ingest_vs_echo as bench
from tests.e2e.fleet import CollectorServer, enroll_fleet
from tests.ports import free_ports


def _beside(collector: CollectorServer, root: Path, tree: Path) -> CollectorServer:
    """A copy of `collector`'s data folder served by the code of `tree`, on ports of its own."""
    shutil.copytree(collector.data, root / "collector")
    enroll, report, admin = free_ports(3)
    other = dataclasses.replace(
        collector, data=root / "collector", enroll_port=enroll, report_port=report,
        admin_port=admin, process=None, _log=None,
    )  # fmt: skip
    saved = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = f"{tree}/protos:{tree}"
    try:
        other.start()
    finally:
        if saved is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = saved
    return other


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("old", type=Path, help="the other checkout (a git worktree)")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=64, help="reports per call (0: unary Report)")
    args = parser.parse_args()
    load = argparse.Namespace(seconds=args.seconds, clients=2, inflight=32, batch_inflight=4,
                              devices=args.devices, batch=args.batch)  # fmt: skip
    spawn = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="devposture-ab-") as folder:
        root = Path(folder)
        new = CollectorServer.create(root)
        new.start()
        states = [a.state.directory for a in enroll_fleet(new, root / "agents", args.devices)]
        assert new.stop() == 0
        (root / "old").mkdir()
        old = _beside(new, root / "old", args.old.resolve())
        try:
            new.start()
            for collector in (old, new):  # each certificate's first use, written once
                first = spawn.Process(target=bench.first_reports,
                                      args=(collector.report_port, states))  # fmt: skip
                first.start()
                first.join()
            figures: dict[str, list[tuple[float, float, float]]] = {"old": [], "new": []}
            for r in range(args.rounds):
                pair = [("old", old), ("new", new)]
                for name, collector in pair if r % 2 == 0 else pair[::-1]:
                    assert collector.process is not None
                    totals = bench.measure(collector.report_port, states, load, args.batch,
                                           collector.process.pid)  # fmt: skip
                    us = bench.server_us(totals, "reports")
                    writer = totals["children_cpu"] / max(1.0, totals["reports"]) * 1e6
                    rate = totals["reports"] / args.seconds
                    figures[name].append((us, writer, rate))
                    print(f"round {r + 1} {name}: server CPU per report {us:.0f} us"
                          f" (its writer {writer:.0f} us), {rate:.0f} reports/s",
                          flush=True)  # fmt: skip
        finally:
            for collector in (old, new):
                if collector.process is not None:
                    collector.stop()
                collector.close()
    for name in ("old", "new"):
        server = statistics.median(us for us, _, _ in figures[name])
        writer = statistics.median(w for _, w, _ in figures[name])
        rate = statistics.median(rate for _, _, rate in figures[name])
        print(
            f"{name}: median {server:.0f} us per report (its writer {writer:.0f} us),"
            f" {rate:.0f} reports/s"
        )


if __name__ == "__main__":
    main()
