"""Admin commands as real processes: credentials made on the collector machine, used from the
command line against a real collector process's admin port."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from tests.e2e.conftest import AGENT, COLLECTOR, CollectorProcess, enroll, run


def _credential(c: CollectorProcess, path: Path, name: str, role: str) -> Path:
    done = run(COLLECTOR, "admin", "add", name, "--role", role, "--data", str(c.data))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("dpa_") and len(done.stdout.splitlines()) == 1
    assert "shown only this once" in done.stderr and "chmod 600" in done.stderr
    path.write_text(done.stdout)
    path.chmod(0o600)
    return path


def _remote(c: CollectorProcess, credential: Path | str, *argv: str,
            stdin: str | None = None) -> tuple[int, str, str]:  # fmt: skip
    done = run(
        COLLECTOR, *argv, "--collector", f"127.0.0.1:{c.admin_port}",
        "--ca-fingerprint", c.fingerprint, "--credential-file", str(credential), stdin=stdin,
    )  # fmt: skip
    return done.returncode, done.stdout, done.stderr


def _enrolled(c: CollectorProcess, tmp_path: Path, name: str) -> str:
    token = tmp_path / f"{name}.token"
    token.write_text(c.token())
    state = tmp_path / name
    assert enroll(c, state, token).returncode == 0
    assert run(AGENT, "once", "--state", str(state)).returncode == 0
    return str(json.loads((state / "agent.json").read_text())["device_id"])


def test_a_viewer_credential_reads_the_fleet_remotely(
    collector_process: CollectorProcess, tmp_path: Path
) -> None:
    _enrolled(collector_process, tmp_path, "agent")
    viewer = _credential(collector_process, tmp_path / "viewer", "Wang Fang (audit)", "viewer")
    assert stat.S_IMODE(os.stat(viewer).st_mode) == 0o600
    code, remote, err = _remote(collector_process, viewer, "report", "fleet", "--format", "csv")
    assert code == 0, err
    local = run(COLLECTOR, "report", "fleet", "--data", str(collector_process.data),
                "--format", "csv")  # fmt: skip
    assert remote == local.stdout and len(remote.splitlines()) == 7  # header and six checks
    code, piped, err = _remote(
        collector_process, "-", "device", "list", "--format", "json", stdin=viewer.read_text()
    )
    assert code == 0, err
    assert [d["status"] for d in json.loads(piped)] == ["active"]
    code, _, err = _remote(collector_process, viewer, "token", "create")
    assert code == 1 and "needs the admin role" in err and "admin add" in err


def test_an_admin_revokes_a_device_remotely(
    collector_process: CollectorProcess, tmp_path: Path
) -> None:
    device = _enrolled(collector_process, tmp_path, "agent")
    admin = _credential(collector_process, tmp_path / "admin", "Li Wei (IT)", "admin")
    code, out, err = _remote(
        collector_process, admin, "device", "revoke", device, "--reason", "laptop stolen"
    )
    assert code == 0, err
    assert f"device {device}" in out and "refused" in out
    code, out, err = _remote(collector_process, admin, "device", "list", "--format", "json")
    assert code == 0, err
    assert json.loads(out)[0]["status"].startswith("revoked")
    local = run(COLLECTOR, "device", "list", "--data", str(collector_process.data))
    assert "revoked" in local.stdout
    refused = run(AGENT, "once", "--state", str(tmp_path / "agent"))
    assert refused.returncode != 0
    # The employee's status says so at its top, above the last verdicts the collector gave
    # (they were shown as if still in force); not judged any more: exit 4 unless failing.
    status = run(AGENT, "status", "--state", str(tmp_path / "agent"))
    first = status.stdout.splitlines()[0]
    assert "refuses this computer" in first and "was revoked by IT" in first, status.stdout
    assert status.returncode in (3, 4), status.returncode
    code, out, err = _remote(collector_process, admin, "audit", "log", "--format", "json")
    assert code == 0, err
    log = json.loads(out)
    assert ("device revoke", "ok") in [(e["command"], e["outcome"]) for e in log]
    assert any(e["actor"].startswith("local:") for e in log)  # `token create` by the fixture
    assert all(admin.read_text().strip()[21:] not in json.dumps(e) for e in log)


def test_a_token_for_two_devices_enrolls_two_and_a_revoked_one_none(
    collector_process: CollectorProcess, tmp_path: Path
) -> None:
    data = str(collector_process.data)
    created = run(COLLECTOR, "token", "create", "--uses", "2", "--data", data)
    assert created.returncode == 0, created.stderr
    assert "enrolls 2 devices" in created.stderr
    token = tmp_path / "token"
    token.write_text(created.stdout)
    for name in ("one", "two"):
        done = enroll(collector_process, tmp_path / name, token)
        assert done.returncode == 0, done.stderr
    third = enroll(collector_process, tmp_path / "three", token)
    assert third.returncode == 1 and "used up" in third.stderr
    listing = json.loads(run(COLLECTOR, "token", "list", "--data", data, "--format", "json").stdout)
    token_id = created.stdout.split("_")[1]
    assert {"token": token_id, "uses_left": 0, "status": "used up"}.items() <= next(
        t for t in listing if t["token"] == token_id
    ).items()
    assert created.stdout.strip()[21:] not in json.dumps(listing)

    spare = run(COLLECTOR, "token", "create", "--data", data)
    spare_file = tmp_path / "spare"
    spare_file.write_text(spare.stdout)
    admin = _credential(collector_process, tmp_path / "admin", "Li Wei (IT)", "admin")
    code, out, err = _remote(
        collector_process, admin, "token", "revoke", spare.stdout.split("_")[1]
    )
    assert code == 0, err
    assert "revoked" in out
    refused = enroll(collector_process, tmp_path / "four", spare_file)
    assert refused.returncode == 1 and "revoked" in refused.stderr
