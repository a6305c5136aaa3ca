"""Benchmark: the footprint of the installed packages, measured in a Debian root filesystem.

Targets (issue 15): agent steady RSS <= 50 MB, CPU for one collection <= 0.3 s, idle <= 0.2 %
of a core. Builds the packages (`make packages`' cache), unpacks the cached Debian root
(installers/linux/make-rootfs.sh, default bookworm), installs both .debs with dpkg, serves the
collector with its unit's ExecStart= line, puts an enrollment file in place and starts the
agent with its unit's ExecStart= line (as tests/packaging/test_linux_packages.py does). Then:

* installed size: dpkg's Installed-Size and the bytes under /opt/devposture-*;
* one collection: the CPU time (user + system, the tools it runs included) of the installed
  `devposture-agent collect --json` as a whole process, warm command cache, and of
  `devposture-agent --version` (the frozen program's start alone) for comparison;
* the service: resident memory (peak over the window, and USS) and CPU over `--seconds` of
  nothing happening, after its start-up reports.

The root is a minimal Debian: probes whose tools are missing (no ClamAV, NetworkManager, ufw)
report errors quickly, so a PC with them pays more per collection (bench/agent_collect.py
measures this machine's full collection from the checkout). Needs root (chroot, mount).

    .venv/bin/python bench/package_footprint.py [--seconds 60] [--suite bookworm] [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.packaging

from tests.packaging.linux_root import (
    DebianRoot,
    NotifySocket,
    Unit,
    debian_root,
    set_collector_ports,
)
from tests.ports import free_ports

REPO = Path(__file__).resolve().parents[1]
DATA = "/var/lib/devposture-collector"
RSS_TARGET_MB, COLLECT_TARGET_S, IDLE_TARGET = 50.0, 0.3, 0.2


def build(out: Path) -> dict[str, Path]:
    subprocess.run([sys.executable, str(REPO / "installers/linux/packages.py"), "--out", str(out)],
                   check=True, stdout=subprocess.DEVNULL)  # fmt: skip
    return {p.name.split("_")[0]: p for p in out.glob("*.deb")}


def install(root: DebianRoot, deb: Path) -> None:
    (root.file("/tmp") / deb.name).write_bytes(deb.read_bytes())
    root.run("dpkg", "-i", f"/tmp/{deb.name}")


def sizes(root: DebianRoot, package: str) -> tuple[float, float]:
    """(dpkg's Installed-Size, bytes under /opt/PACKAGE) in MiB."""
    kib = root.run("dpkg-query", "-W", "-f=${Installed-Size}", package).stdout
    on_disk = sum(p.stat().st_size for p in root.file(f"/opt/{package}").rglob("*")
                  if p.is_file() and not p.is_symlink())  # fmt: skip
    return int(kib) / 1024, on_disk / 2**20


def cpu_of(root: DebianRoot, *argv: str) -> float:
    """CPU seconds (user + system) of one command in the root, its children included."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    root.run(*argv)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def start_collector(root: DebianRoot) -> int:
    enroll, report, admin, metrics, web = free_ports(5)
    user = "devposture-collector"
    root.run("devposture-collector", "init", "--data", DATA, "--listen", "127.0.0.1",
             "--enroll-port", str(enroll), "--report-port", str(report), user=user)  # fmt: skip
    set_collector_ports(root.file(f"{DATA}/collector.toml"), admin, metrics, web)
    unit = Unit.parse(root.file("/usr/lib/systemd/system/devposture-collector.service").read_text())
    notify = NotifySocket(root.file("/run/bench/collector.sock"))
    notify.wait_for("READY=1", root.start(unit, "collector", notify), 180)
    return enroll


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="idle window")
    parser.add_argument("--suite", default="bookworm", choices=["bookworm", "trixie"])
    parser.add_argument("--runs", type=int, default=5, help="collections to time")
    args = parser.parse_args()
    tarball = Path("/var/cache/devposture-ci/rootfs") / f"{args.suite}.tar"
    if not tarball.exists():
        raise SystemExit(f"no {tarball}: run installers/linux/make-rootfs.sh {args.suite}")
    with tempfile.TemporaryDirectory(prefix="devposture-footprint-") as tmp:
        debs = build(Path(tmp) / "dist")
        with debian_root(tarball, Path(tmp) / "root") as root:
            for name in ("devposture-collector", "devposture-agent"):
                install(root, debs[name])
            figures = {name: sizes(root, name) for name in ("devposture-agent",
                                                            "devposture-collector")}  # fmt: skip
            enroll = start_collector(root)
            value = root.run("devposture-collector", "token", "create", "--bundle", "--data",
                             DATA, "--enroll-address", f"127.0.0.1:{enroll}",
                             user="devposture-collector").stdout.split()[-1]  # fmt: skip
            token = root.file("/etc/devposture/enroll.token")
            token.write_text(value + "\n")
            token.chmod(0o600)
            unit = Unit.parse(root.file("/usr/lib/systemd/system/devposture-agent.service")
                              .read_text())  # fmt: skip
            notify = NotifySocket(root.file("/run/bench/agent.sock"))
            agent = root.start(unit, "agent", notify)
            notify.wait_for("READY=1", agent, 180)
            deadline = time.monotonic() + 180
            while not root.file("/var/lib/devposture-agent/last-verdicts.pb").exists():
                assert time.monotonic() < deadline, "the agent's first report was not acknowledged"
                time.sleep(0.5)
            first = idle(agent, args.seconds)  # enrolled in this process: cryptography loaded
            root.stop(agent)
            # Every later start (each boot): already enrolled.
            verdicts = root.file("/var/lib/devposture-agent/last-verdicts.pb")
            acked = verdicts.stat().st_mtime_ns
            notify = NotifySocket(root.file("/run/bench/agent-2.sock"))
            agent = root.start(unit, "agent-2", notify)
            notify.wait_for("READY=1", agent, 180)
            at_ready = psutil.Process(agent.pid).cpu_times()
            deadline = time.monotonic() + 180
            while verdicts.stat().st_mtime_ns == acked:
                assert time.monotonic() < deadline, "the restarted agent's report was not acked"
                time.sleep(0.2)
            at_ack = psutil.Process(agent.pid).cpu_times()
            steady = idle(agent, args.seconds)
            root.stop(agent)
            agent_cmd = "/usr/bin/devposture-agent"
            startup = [cpu_of(root, agent_cmd, "--version") for _ in range(args.runs)]
            cpu_of(root, agent_cmd, "collect", "--json")  # fills the command cache
            collect = [cpu_of(root, agent_cmd, "collect", "--json") for _ in range(args.runs)]
            report = json.loads(root.run(agent_cmd, "collect", "--json").stdout)
    # The service's own CPU and that of the tools its probes ran, from READY to the ack.
    round_cpu = sum(after - before for before, after in zip(at_ready[:4], at_ack[:4],
                                                              strict=True))  # fmt: skip
    for name, (declared, on_disk) in figures.items():
        print(f"{name:21} installed size {declared:6.1f} MiB (dpkg), /opt {on_disk:6.1f} MiB")
    print(f"agent start-up alone (--version)     median {statistics.median(startup):.3f} s CPU")
    print(f"agent collect --json, whole process  median {statistics.median(collect):.3f} s CPU"
          f"  max {max(collect):.3f}  ({len(report.get('errors', []))} probe errors in this root)")
    print(f"agent service, READY to its report acknowledged: {round_cpu:.3f} s CPU")
    for label, (share, peak, uss) in (("first start (enrolled in it)", first),
                                      ("later starts (steady)", steady)):  # fmt: skip
        print(f"agent service idle, {label:28}: {share:.3f} % of one core,"
              f" RSS peak {peak:.1f} MB, USS {uss:.1f} MB")
    share, rss, _ = steady
    print(f"target: resident memory <= {RSS_TARGET_MB:g} MB -> "
          f"{'met' if rss <= RSS_TARGET_MB else 'NOT met'} ({rss:.1f} MB steady,"
          f" {first[1]:.1f} MB after enrolling in the same process)")  # fmt: skip
    print(f"target: one collection <= {COLLECT_TARGET_S} s CPU -> "
          f"{'met' if round_cpu <= COLLECT_TARGET_S else 'NOT met'} ({round_cpu:.3f} s in the"
          f" service; a command pays {statistics.median(startup):.3f} s of start-up on top)")
    print(f"target: idle <= {IDLE_TARGET} % of a core -> "
          f"{'met' if share <= IDLE_TARGET else 'NOT met'} ({share:.3f} %)")


def idle(agent: subprocess.Popen[bytes], seconds: float) -> tuple[float, float, float]:
    """(% of one core, peak RSS MB, USS MB) of the service over `seconds` of nothing."""
    time.sleep(5.0)  # the start-up rounds finish; the loop goes quiet
    process = psutil.Process(agent.pid)
    before, wall, peak, uss = process.cpu_times(), time.monotonic(), 0, 0.0
    end = wall + seconds
    while time.monotonic() < end:
        peak = max(peak, process.memory_info().rss)
        uss = process.memory_full_info().uss
        time.sleep(min(5.0, max(0.0, end - time.monotonic())))
    after, wall = process.cpu_times(), time.monotonic() - wall
    used = (after.user - before.user) + (after.system - before.system)
    return 100 * used / wall, peak / 2**20, uss / 2**20


if __name__ == "__main__":
    main()
