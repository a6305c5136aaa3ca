"""On this machine: real NetworkManager behind a real (namespaced) captive portal, read by the
parser and the Linux probe as the agent reads it.

Runs tests/fixtures/linux/nmcli/record-connectivity.sh into a temporary folder: NetworkManager
on its own D-Bus bus inside throwaway network namespaces, a Python HTTP server playing the
hotspot. Needs root, iproute2, dbus-daemon and Debian's network-manager; where those are
missing (`.ci/run` does not install network-manager) it is skipped with the reason, and the
recorded copies of the same outputs are replayed by tests/agent/test_wifi_linux.py instead.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from devposture.agent.parsers.nmcli import parse_connectivity
from devposture.agent.probes import ProbeConfig
from devposture.agent.probes import commands as cmd
from devposture.agent.probes.linux import wifi
from devposture.agent.probes.outcome import ProbeContext
from devposture.agent.probes.runner import run_probe
from devposture.v1 import devposture_pb2 as pb
from tests.agent.replay import FIXTURES, ok
from tests.agent.test_probes_linux import wifi_host

SCRIPT = FIXTURES / "nmcli" / "record-connectivity.sh"
TOOLS = ("ip", "unshare", "dbus-daemon", "nmcli", "NetworkManager")


def _require_networkmanager() -> None:
    missing = [t for t in TOOLS if shutil.which(t, path="/usr/sbin:/usr/bin:/sbin:/bin") is None]
    if os.geteuid() != 0:
        pytest.skip("NetworkManager in network namespaces needs root")
    if missing:
        pytest.skip(f"not installed here: {', '.join(missing)} (Debian: network-manager)")


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Path:
    _require_networkmanager()
    out = tmp_path_factory.mktemp("nmcli")
    done = subprocess.run(
        ["bash", str(SCRIPT), str(out)], capture_output=True, text=True, timeout=240, check=False
    )
    assert done.returncode == 0, done.stderr
    return out


def output(folder: Path, state: str) -> str:
    return (folder / f"nmcli-device-connectivity-{state}-netns.out").read_text()


def test_real_networkmanager_reports_the_portal_and_nothing_else(live: Path) -> None:
    assert parse_connectivity(output(live, "portal"))["wlo1"] is True
    assert parse_connectivity(output(live, "full"))["wlo1"] is False
    assert parse_connectivity(output(live, "limited"))["wlo1"] is None
    assert parse_connectivity(output(live, "checks-off"))["wlo1"] is None


def test_the_probe_makes_the_live_portal_a_public_network(live: Path) -> None:
    host = wifi_host()
    host.commands[cmd.NMCLI_CONNECTIVITY] = ok(output(live, "portal"))
    ctx = ProbeContext(host, ProbeConfig(network_hash_key=b"k"), pb.PostureReport())
    fact = run_probe(pb.FACT_WIFI, wifi.probe, ctx).fact
    assert isinstance(fact, pb.WifiFact)
    (session,) = fact.sessions
    assert session.classification == pb.NETWORK_CLASS_PUBLIC
    assert list(session.classification_reasons) == ["captive portal"]
