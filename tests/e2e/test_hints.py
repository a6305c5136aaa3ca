"""Error messages that name the actual problem and its fix, with real processes: enrolling at
the report port, or by a name the collector's certificate does not list; verifying an audit
bundle that is not there; a revoked device's `once`."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.databases import init_arguments
from tests.e2e.conftest import (
    AGENT,
    COLLECTOR,
    CollectorProcess,
    enroll,
    enrolled_state,
    run,
)


def _token_file(c: CollectorProcess, tmp_path: Path) -> Path:
    path = tmp_path / "token.txt"
    path.write_text(c.token())
    return path


def _enroll_at(
    c: CollectorProcess, target: str, tmp_path: Path
) -> subprocess.CompletedProcess[str]:
    """`devposture-agent enroll` at `target` with a fresh token of `c`."""
    return run(
        AGENT, "enroll", "--collector", target, "--token-file", str(_token_file(c, tmp_path)),
        "--ca-fingerprint", c.fingerprint, "--state", str(tmp_path / "agent"),
    )  # fmt: skip


def test_enrolling_at_the_report_port_says_to_use_the_enrollment_port(
    collector_process: CollectorProcess, tmp_path: Path
) -> None:
    c = collector_process
    done = _enroll_at(c, f"127.0.0.1:{c.report_port}", tmp_path)
    assert done.returncode == 1
    assert f"127.0.0.1:{c.report_port} asks for a device certificate, so it is probably the" \
        " collector's report port" in done.stderr  # fmt: skip
    assert "enrollment port instead: 7443 by default" in done.stderr
    assert "--collector 127.0.0.1:7443" in done.stderr
    assert "init --san" not in done.stderr  # refused on an existing folder: never the fix
    assert not (tmp_path / "agent" / "agent.json").exists()
    # And at the enrollment port the same token works (it was not spent).
    assert enroll(c, tmp_path / "agent", _token_file(c, tmp_path)).returncode == 0


@pytest.fixture
def collector_on_second_address(tmp_path: Path) -> Iterator[tuple[CollectorProcess, int]]:
    """A collector made for 127.0.0.1 (its certificate lists that, not 127.0.0.2) serving on
    127.0.0.2, as one moved to an address it was not set up for; and its admin port."""
    data, ready = tmp_path / "collector", tmp_path / "ready.json"
    assert run(COLLECTOR, "init", "--data", str(data), *init_arguments()).returncode == 0
    fingerprint = run(COLLECTOR, "ca", "fingerprint", "--data", str(data)).stdout.strip()
    config = data / "collector.toml"  # the admin port moves with it
    admin = 'host = "127.0.0.1"\nport = 7445'
    moved = config.read_text().replace(admin, 'host = "127.0.0.2"\nport = 0')
    assert moved != config.read_text()
    config.write_text(moved)
    server = subprocess.Popen(
        [COLLECTOR, "serve", "--drain-seconds", "0", "--data", str(data), "--listen",
         "127.0.0.2", "--enroll-port", "0", "--report-port", "0", "--admin-port", "0",
         "--metrics-port", "0", "--web-port", "0", "--ready-file", str(ready)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not ready.exists():
            assert server.poll() is None and time.monotonic() < deadline, "collector did not start"
            time.sleep(0.05)
        ports = json.loads(ready.read_text())
        process = CollectorProcess(data, ports["enroll_port"], ports["report_port"], fingerprint)
        yield process, ports["admin_port"]
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(20) == 0


def test_enrolling_by_a_name_the_certificate_does_not_list_says_tls_rotate_san(
    collector_on_second_address: tuple[CollectorProcess, int], tmp_path: Path
) -> None:
    c, _admin_port = collector_on_second_address
    done = _enroll_at(c, f"127.0.0.2:{c.enroll_port}", tmp_path)
    assert done.returncode == 1
    assert "the collector's certificate does not list '127.0.0.2'" in done.stderr
    assert re.search(r"it lists [^)]*127\.0\.0\.1", done.stderr)
    assert "`devposture-collector tls rotate --san 127.0.0.2`" in done.stderr
    assert "init --san" not in done.stderr


def _remote_admin(c: CollectorProcess, target: str, tmp_path: Path) -> (
    subprocess.CompletedProcess[str]
):  # fmt: skip
    """`report fleet` run over the network at `target`, with a real admin credential."""
    added = run(COLLECTOR, "admin", "add", "IT", "--role", "admin", "--data", str(c.data))
    assert added.returncode == 0, added.stderr
    credential = tmp_path / "credential"
    credential.write_text(added.stdout.strip())
    credential.chmod(0o600)
    return run(
        COLLECTOR, "report", "fleet", "--collector", target, "--ca-fingerprint", c.fingerprint,
        "--credential-file", str(credential),
    )  # fmt: skip


def test_an_admin_command_at_the_report_port_says_to_give_the_admin_port(
    collector_process: CollectorProcess, tmp_path: Path
) -> None:
    c = collector_process
    done = _remote_admin(c, f"127.0.0.1:{c.report_port}", tmp_path)
    assert done.returncode == 1
    assert f"127.0.0.1:{c.report_port} does not serve administration (it asks for a device" \
        " certificate): give the admin port ([admin] port in collector.toml, 7445 by" \
        " default)" in done.stderr, done.stderr  # fmt: skip
    assert "init --san" not in done.stderr


def test_an_admin_command_by_a_name_the_certificate_does_not_list_says_tls_rotate_san(
    collector_on_second_address: tuple[CollectorProcess, int], tmp_path: Path
) -> None:
    c, admin_port = collector_on_second_address
    done = _remote_admin(c, f"127.0.0.2:{admin_port}", tmp_path)
    assert done.returncode == 1
    assert "the collector's certificate does not list '127.0.0.2'" in done.stderr, done.stderr
    assert "`devposture-collector tls rotate --san 127.0.0.2`" in done.stderr
    assert "init --san" not in done.stderr


def test_verifying_a_bundle_that_is_not_there_says_so_not_that_it_was_changed(
    tmp_path: Path,
) -> None:
    data = tmp_path / "collector"
    assert run(COLLECTOR, "init", "--data", str(data), *init_arguments()).returncode == 0
    key = tmp_path / "evidence.pem"
    exported = run(COLLECTOR, "audit", "public-key", "--data", str(data))
    assert exported.returncode == 0, exported.stderr
    key.write_text(exported.stdout)
    missing = tmp_path / "2026-10.zip"
    done = run(COLLECTOR, "audit", "verify", str(missing), "--public-key", str(key))
    assert done.returncode == 1
    assert done.stderr == (
        f"devposture-collector: error: {missing} does not exist: check the file name and"
        " folder (the bundle is the file `audit export --out` wrote). Nothing was verified\n"
    )
    assert done.stdout == ""  # no verdict at all: not VERIFIED, not NOT VERIFIED
    # The same for the earlier bundle of --after, and for a folder given by mistake.
    done = run(COLLECTOR, "audit", "verify", str(tmp_path), "--public-key", str(key))
    assert f"{tmp_path} is a folder: give the bundle file itself" in done.stderr
    assert "被修改" not in done.stdout + done.stderr and "changed" not in done.stderr


def test_a_revoked_device_s_once_says_it_is_revoked_and_how_to_come_back(
    collector_process: CollectorProcess, tmp_path: Path
) -> None:
    c = collector_process
    state = enrolled_state(c, tmp_path)
    device_id = json.loads((state / "agent.json").read_text())["device_id"]
    assert run(AGENT, "once", "--state", str(state)).returncode == 0
    revoked = run(COLLECTOR, "device", "revoke", device_id, "--reason", "laptop stolen",
                  "--data", str(c.data))  # fmt: skip
    assert revoked.returncode == 0, revoked.stderr
    done = run(AGENT, "once", "--state", str(state))
    assert done.returncode == 1
    assert f"the collector refuses this device: device {device_id} was revoked by IT" \
        in done.stderr  # fmt: skip
    assert "will not be, nor any other from this device" in done.stderr
    assert (
        "enroll it again with a new token from them: devposture-agent enroll --force"
        f" --collector 127.0.0.1:{c.enroll_port} --ca-fingerprint {c.fingerprint}"
        f" --token-file NEW-TOKEN-FILE --state {state}"
    ) in done.stderr
    assert "next time" not in done.stderr
