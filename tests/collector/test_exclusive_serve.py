"""One collector per port and per data folder (issue 14, item 2).

gRPC turns SO_REUSEPORT on by default: a second collector then listened on the agent ports
beside the first and agents reached either at random. Here a second collector, real gRPC
servers over real sockets, is refused on every gRPC port with a message naming the port and
the fix; a second collector on the same data folder is refused naming the process that serves
it; the lock goes with its collector, by `stop` or by SIGKILL (tests/e2e/test_cli.py-style
processes); and sharing the agent ports stays possible on purpose (`share_agent_ports`).
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from devposture.collector import server as collector_server
from devposture.collector.config import CollectorConfig
from devposture.collector.datadir import LOCK_NAME, DataFolderInUse, initialize
from devposture.collector.ports import PortUnavailable
from tests.databases import collector_database, init_arguments
from tests.ports import free_ports

COLLECTOR = str(Path(sys.executable).parent / "devposture-collector")


def _folder(path: Path) -> CollectorConfig:
    config, _ = initialize(path, "127.0.0.1", database=collector_database())
    return config


async def _start(
    config: CollectorConfig, enroll_port: int = 0, report_port: int = 0, **kwargs: Any
) -> collector_server.RunningServer:
    return await collector_server.start(config, enroll_port, report_port, "127.0.0.1", **kwargs)


def _shareable(port: int) -> OSError | None:
    """Whether a socket asking to share `port` (SO_REUSEPORT, as gRPC's default asks) can
    bind it: None when it can, else the error."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as exc:
            return exc
    return None


def test_the_agent_and_admin_ports_are_not_shared_with_a_later_listener(tmp_path: Path) -> None:
    async def scenario() -> list[OSError | None]:
        running = await _start(_folder(tmp_path / "one"), admin_port=0)
        try:
            assert running.admin_port is not None
            ports = (running.enroll_port, running.report_port, running.admin_port)
            return [_shareable(port) for port in ports]
        finally:
            await running.stop(0, drain=0)

    for refused in asyncio.run(scenario()):
        assert refused is not None and refused.errno == errno.EADDRINUSE, refused


@pytest.mark.parametrize("taken", ["enroll", "report"])
def test_a_second_collector_on_an_agent_port_is_refused_naming_it(
    tmp_path: Path, taken: str
) -> None:
    first_config, second_config = _folder(tmp_path / "one"), _folder(tmp_path / "two")

    async def scenario() -> str:
        first = await _start(first_config)
        try:
            port = first.enroll_port if taken == "enroll" else first.report_port
            with pytest.raises(PortUnavailable) as refused:
                await _start(second_config, **{f"{taken}_port": port})
            assert str(port) in str(refused.value)
            return str(refused.value)
        finally:
            await first.stop(0, drain=0)

    message = asyncio.run(scenario())
    name = "enrollment" if taken == "enroll" else "report"
    assert re.search(rf"the {name} port \d+ is already in use", message), message
    assert "another collector, or another program, listens there" in message
    assert "stop it, or choose other ports with --enroll-port/--report-port" in message
    # The refused collector let go of its own data folder: it can serve now.
    asyncio.run(_start_and_stop(second_config))


async def _start_and_stop(config: CollectorConfig) -> None:
    running = await _start(config)
    await running.stop(0, drain=0)


@pytest.mark.parametrize(
    ("server", "name", "option"),
    [("admin", "administration", "--admin-port"), ("web", "dashboard", "--web-port")],
)
def test_a_second_collector_on_the_admin_or_dashboard_port_is_refused_naming_it(
    tmp_path: Path, server: str, name: str, option: str
) -> None:
    """The administration port (gRPC, shareable by default too) and the dashboard's (which
    used to be reported as "the dashboard could not listen" only)."""
    first_config, second_config = _folder(tmp_path / "one"), _folder(tmp_path / "two")

    async def scenario() -> tuple[int, str]:
        first = await _start(first_config, **{f"{server}_port": 0})
        try:
            port = first.admin_port if server == "admin" else first.web_port
            assert port is not None
            with pytest.raises(PortUnavailable) as refused:
                await _start(second_config, **{f"{server}_port": port})
            return port, str(refused.value)
        finally:
            await first.stop(0, drain=0)

    port, message = asyncio.run(scenario())
    assert f"the {name} port {port} is already in use" in message, message
    assert option in message
    asyncio.run(_start_and_stop(second_config))  # its folder and agent ports were let go


def test_an_address_not_of_this_machine_is_named_as_such(tmp_path: Path) -> None:
    config = _folder(tmp_path / "one")
    # TEST-NET-1 (RFC 5737): never an address of this machine.
    with pytest.raises(PortUnavailable, match=r"192\.0\.2\.1 is not an address of this machine"):
        asyncio.run(collector_server.start(config, 0, 0, "192.0.2.1"))


def test_sharing_the_agent_ports_is_possible_on_purpose(tmp_path: Path) -> None:
    """The one switch a collector's workers (`serve --workers`, a later issue) will use."""
    first_config, second_config = _folder(tmp_path / "one"), _folder(tmp_path / "two")

    async def scenario() -> tuple[tuple[int, int], tuple[int, int]]:
        first = await _start(first_config, share_agent_ports=True)
        try:
            second = await _start(
                second_config, first.enroll_port, first.report_port, share_agent_ports=True
            )
            try:
                both = (first.enroll_port, first.report_port)
                return both, (second.enroll_port, second.report_port)
            finally:
                await second.stop(0, drain=0)
        finally:
            await first.stop(0, drain=0)

    ours, theirs = asyncio.run(scenario())
    assert ours == theirs


def test_a_data_folder_is_served_by_one_collector_at_a_time(tmp_path: Path) -> None:
    config = _folder(tmp_path / "one")

    async def scenario() -> DataFolderInUse:
        first = await _start(config)
        try:
            with pytest.raises(DataFolderInUse) as refused:
                await _start(config)
            return refused.value
        finally:
            await first.stop(0, drain=0)

    refused = asyncio.run(scenario())
    assert refused.pid == os.getpid()
    assert str(refused) == (
        f"the data folder {config.data_dir} is in use by another devposture-collector"
        f" (pid {os.getpid()}): stop it first, or serve another data folder"
    )
    # Once stopped, the folder is free again (and the lock file names no one).
    asyncio.run(_start_and_stop(config))
    assert (config.data_dir / LOCK_NAME).read_text() == ""


_INHERITANCE = """
import subprocess, sys
from pathlib import Path
from devposture.collector.datadir import lock_data_folder
folder = Path(sys.argv[1])
lock = lock_data_folder(folder)
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], close_fds=False)
try:
    lock.release()
    lock_data_folder(folder).release()  # free although the child still runs
    print("free")
finally:
    child.kill()
    child.wait(30)
"""


def test_the_lock_is_not_inherited_by_child_processes(tmp_path: Path) -> None:
    """A process the collector starts must not keep the folder locked after the collector
    itself has gone, even one started without closing descriptors (the worst case). Run in a
    fresh interpreter: in this one, another test's thread forking at the same moment would
    hold the descriptor until its own exec, and the lock with it."""
    folder = tmp_path / "data"
    folder.mkdir()
    done = subprocess.run(
        [sys.executable, "-c", _INHERITANCE, str(folder)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0 and done.stdout.strip() == "free", done.stderr


# --- real `serve` processes ------------------------------------------------------------------


def _configure(folder: Path, ports: list[int]) -> None:
    """`init` a data folder whose collector.toml names these five ports (enrollment, reports,
    administration, metrics, dashboard), as two folders made with the defaults would."""
    enroll, report, admin, metrics, web = ports
    done = subprocess.run(
        [COLLECTOR, "init", "--data", str(folder), "--enroll-port", str(enroll),
         "--report-port", str(report), *init_arguments()],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    config = folder / "collector.toml"
    text = config.read_text(encoding="utf-8")
    for section, port in (("admin", admin), ("metrics", metrics), ("web", web)):
        text, found = re.subn(
            rf"(?ms)^(\[{section}\].*?^port = )\d+$", rf"\g<1>{port}", text, count=1
        )
        assert found == 1, f"collector.toml has no [{section}] port"
    text = re.sub(r"(?m)^drain_seconds = \d+$", "drain_seconds = 0", text)
    config.write_text(text, encoding="utf-8")


def _serve(folder: Path, ready: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [COLLECTOR, "serve", "--data", str(folder), "--ready-file", str(ready)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _serving(folder: Path, ready: Path) -> subprocess.Popen[str]:
    """A `serve` process on `folder`, once it has bound its ports (its ready file)."""
    process = _serve(folder, ready)
    deadline = time.monotonic() + 60
    while not ready.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"the collector did not start: {process.communicate()[1]}")
        time.sleep(0.05)
    return process


@pytest.fixture
def first(tmp_path: Path) -> Iterator[tuple[Path, list[int], subprocess.Popen[str]]]:
    """A `serve` process on five fixed ports of its folder's collector.toml."""
    ports = free_ports(5)
    folder, ready = tmp_path / "first", tmp_path / "first.json"
    _configure(folder, ports)
    process = _serving(folder, ready)
    try:
        assert json.loads(ready.read_text())["enroll_port"] == ports[0]
        yield folder, ports, process
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=30)


def _refused(folder: Path, ready: Path) -> str:
    """Start `serve` on `folder`; it must refuse: its error line."""
    second = _serve(folder, ready)
    try:
        _, err = second.communicate(timeout=60)
    finally:
        if second.poll() is None:  # it serves: the test fails below; leave nothing behind
            second.kill()
            second.communicate(timeout=30)
    assert second.returncode == 1, err[-3000:]
    assert not ready.exists()
    errors = [line for line in err.splitlines() if line.startswith("devposture-collector: error:")]
    assert len(errors) == 1, err[-3000:]
    return errors[0]


def _served_certificate(port: int) -> bytes:
    """The certificate the TLS server on `port` presents to a new connection (a plain
    socket and TLS: no gRPC)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["h2"])
    with (
        socket.create_connection(("127.0.0.1", port), timeout=20) as raw,
        context.wrap_socket(raw) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return der


def test_a_second_serve_with_the_same_ports_names_the_agent_port_and_agents_reach_the_first(
    first: tuple[Path, list[int], subprocess.Popen[str]], tmp_path: Path
) -> None:
    """Two folders made with the same ports (as with the defaults): the second `serve` names
    the enrollment port, the first it binds, not the dashboard; and every new connection
    still reaches the first collector."""
    folder, ports, _ = first
    second = tmp_path / "second"
    _configure(second, ports)
    line = _refused(second, tmp_path / "second.json")
    assert f"the enrollment port {ports[0]} is already in use" in line, line
    assert "stop it, or choose other ports with --enroll-port/--report-port" in line
    assert "dashboard" not in line
    ours = x509.load_pem_x509_certificate((folder / "tls" / "server.crt").read_bytes())
    expected = ours.public_bytes(Encoding.DER)
    # Thirty new connections: with two listeners each would reach the second one at random.
    for port in ports[:2]:
        assert all(_served_certificate(port) == expected for _ in range(30))


def test_a_second_serve_on_the_same_folder_names_the_serving_process(
    first: tuple[Path, list[int], subprocess.Popen[str]], tmp_path: Path
) -> None:
    folder, _, process = first
    line = _refused(folder, tmp_path / "again.json")
    assert line == (
        f"devposture-collector: error: the data folder {folder} is in use by another"
        f" devposture-collector (pid {process.pid}): stop it first, or serve another data folder"
    )


def test_a_collector_killed_with_sigkill_leaves_no_stale_lock(
    first: tuple[Path, list[int], subprocess.Popen[str]], tmp_path: Path
) -> None:
    folder, _, process = first
    process.send_signal(signal.SIGKILL)
    process.wait(30)
    # The lock file still names the dead process; the kernel has released the lock itself.
    assert (folder / LOCK_NAME).read_text().strip() == str(process.pid)
    again = _serving(folder, tmp_path / "after-kill.json")
    try:
        assert (folder / LOCK_NAME).read_text().strip() == str(again.pid)
    finally:
        again.send_signal(signal.SIGTERM)
        assert again.wait(30) == 0
