"""The two command-line tools as real processes against a real collector process."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from devposture.agent import cli as agent_cli
from devposture.agent.outbox import Outbox
from devposture.collector.config import load
from devposture.collector.store import Store
from devposture.policy import default_policy
from devposture.v1 import devposture_pb2 as pb
from tests.e2e.conftest import (
    AGENT,
    COLLECTOR,
    CollectorProcess,
    enroll,
    enrolled_state,
    run,
    serving_collector,
)

CHECK_COUNT = len(default_policy().checks)  # every check of the bundled policy is reported


def test_enroll_once_and_fleet_report_in_every_format(
    collector_process: CollectorProcess, tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(collector_process.token())
    state = tmp_path / "agent"
    done = enroll(collector_process, state, token_file)
    assert done.returncode == 0, done.stderr
    assert "Enrolled: this computer is device" in done.stdout
    once = run(AGENT, "once", "--state", str(state))
    assert once.returncode == 0, once.stderr
    assert "acknowledged by the collector" in once.stdout
    assert list((state / "outbox").glob("*.report")) == []
    data = str(collector_process.data)
    device = json.loads(
        run(COLLECTOR, "report", "device", "--data", data, "--format", "json").stdout
    )
    assert len(device) == CHECK_COUNT == 6
    assert {r["state"] for r in device} <= {"PASS", "FAIL", "GRACE", "UNKNOWN"}
    assert all(r["reason"] for r in device)
    fleet = run(COLLECTOR, "report", "fleet", "--data", data, "--format", "csv").stdout
    assert fleet.startswith("\ufeff")  # the byte order mark Excel needs to read UTF-8
    header, *rows = list(csv.reader(io.StringIO(fleet.removeprefix("\ufeff"))))
    assert header == [
        "clause", "check", "devices", "pass", "grace", "fail", "unknown", "exempt", "stale",
        "pass_rate_percent", "clause_title_zh", "clause_title_en", "clause_text_zh",
        "clause_text_en", "check_title_zh", "check_title_en",
    ]  # fmt: skip
    assert len(rows) == CHECK_COUNT
    assert all(row[2] == "1" for row in rows)
    # A spreadsheet needs no other source: each row carries its clause's words, both languages.
    by_check = {row[1]: dict(zip(header, row, strict=True)) for row in rows}
    assert by_check["public-wifi"]["clause"] == "6.3.2"
    assert "VPN" in by_check["public-wifi"]["clause_text_en"]
    assert "公共" in by_check["public-wifi"]["clause_text_zh"] + by_check["public-wifi"][
        "check_title_zh"
    ]
    table = run(COLLECTOR, "report", "fleet", "--data", data).stdout
    assert "CLAUSE_TEXT_EN" not in table and "PASS_RATE_PERCENT" in table


def test_once_keeps_the_report_when_the_collector_is_gone(
    collector_process: CollectorProcess, tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(collector_process.token())
    state = tmp_path / "agent"
    assert enroll(collector_process, state, token_file).returncode == 0
    agent_json = json.loads((state / "agent.json").read_text())
    agent_json["report_port"] = 1  # nothing listens there
    (state / "agent.json").write_text(json.dumps(agent_json))
    once = run(AGENT, "once", "--state", str(state))
    assert once.returncode == 1
    assert "kept on disk and will be sent next time" in once.stderr
    assert len(list((state / "outbox").glob("*.report"))) == 1


def _queue_one_while_unreachable(state: Path) -> None:
    """One report left in `state`'s outbox: `once` while the agent points at a port nothing
    listens on, then its enrollment as it was."""
    genuine = (state / "agent.json").read_text()
    (state / "agent.json").write_text(json.dumps(json.loads(genuine) | {"report_port": 1}))
    assert run(AGENT, "once", "--state", str(state)).returncode == 1
    (state / "agent.json").write_text(genuine)


def test_a_damaged_key_or_certificate_is_named_and_the_report_kept(
    collector_process: CollectorProcess, tmp_path: Path
) -> None:
    # An empty device.key made gRPC abort the agent (SIGABRT, "Check failed: private_key !=
    # nullptr"); garbage in a key or certificate failed every call as a passing network
    # problem ("Failed to create security handshaker ... will be sent next time").
    enrolled = enrolled_state(collector_process, tmp_path, "enrolled")
    _queue_one_while_unreachable(enrolled)
    for name, damage in (("device.key", b""), ("device.key", b"not a key\n"),
                         ("device.crt", b"-----BEGIN CERTIFICATE-----\n@@@\n"),
                         ("ca.crt", b"\x00" * 64)):  # fmt: skip
        state = tmp_path / f"{name}-{len(damage)}"
        shutil.copytree(enrolled, state)
        (state / name).write_bytes(damage)
        once = run(AGENT, "once", "--state", str(state))
        assert once.returncode == 1, (name, once.returncode, once.stderr)
        assert f"{name} in the state folder is damaged" in once.stderr, once.stderr
        assert "enroll again with --force" in once.stderr and "Traceback" not in once.stderr
        assert len(list((state / "outbox").glob("*.report"))) == 1  # the queued one kept


def test_reports_queued_before_enrolling_again_go_with_the_new_enrollment(
    collector_process: CollectorProcess, tmp_path: Path
) -> None:
    # agent.json damaged, the agent's advice followed ("enroll again with --force"): the
    # reports queued under the old device were refused on the new certificate and set aside
    # for good, and `once` said all was well.
    state = enrolled_state(collector_process, tmp_path)
    old_device = json.loads((state / "agent.json").read_text())["device_id"]
    _queue_one_while_unreachable(state)
    (queued,) = [item.report.report_id for item in Outbox(state / "outbox").pending()]
    (state / "agent.json").write_text("")  # damaged
    damaged = run(AGENT, "once", "--state", str(state))
    assert damaged.returncode == 1 and "enroll again with --force" in damaged.stderr
    token = tmp_path / "again.token"
    token.write_text(collector_process.token())
    again = run(AGENT, "enroll", "--force", "--collector",
                f"127.0.0.1:{collector_process.enroll_port}", "--token-file", str(token),
                "--ca-fingerprint", collector_process.fingerprint,
                "--state", str(state))  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert ("1 report collected before and not yet sent will go with this enrollment"
            in again.stdout)
    new_device = json.loads((state / "agent.json").read_text())["device_id"]
    assert new_device != old_device
    once = run(AGENT, "once", "--state", str(state))
    assert once.returncode == 0, once.stderr
    assert "and 1 queued earlier" in once.stdout, once.stdout
    assert not list((state / "outbox").glob("**/*.report"))
    assert not (state / "outbox" / "rejected").exists() or not any(
        (state / "outbox" / "rejected").iterdir()
    )
    store = Store.open(load(collector_process.data).database)
    try:  # stored, under the device that enrolled again
        body = store.reports.report_body(queued)
    finally:
        store.close()
    assert body is not None and pb.PostureReport.FromString(body).device_id == new_device


def test_a_collector_set_up_again_is_told_as_such_not_as_a_passing_outage(
    collector_process: CollectorProcess, tmp_path: Path
) -> None:
    # The agent's collector address now answers with another CA's certificate (the collector
    # made again with `init`): it said "kept on disk and will be sent next time", which it
    # never would be, between gRPC's own log lines ("I1205 ... Handshake failed").
    state = enrolled_state(collector_process, tmp_path)
    with serving_collector(tmp_path / "another") as other:
        enrollment = json.loads((state / "agent.json").read_text())
        enrollment["report_port"] = other.report_port
        (state / "agent.json").write_text(json.dumps(enrollment))
        once = run(AGENT, "once", "--state", str(state))
    assert once.returncode == 1
    assert "CERTIFICATE_VERIFY_FAILED" in once.stderr, once.stderr
    assert "does not show a certificate of the CA this computer pinned" in once.stderr
    assert "will be sent next time" not in once.stderr
    assert "Handshake failed" not in once.stderr and "ssl_transport_security" not in once.stderr
    assert len(list((state / "outbox").glob("*.report"))) == 1


def test_the_advice_for_a_clock_behind_or_ahead_of_the_collectors_certificate() -> None:
    # The statuses gRPC gave a real agent (the tester's runs under faketime, 2026-12-05).
    behind = ("UNAVAILABLE: failed to connect to all addresses; last error: UNKNOWN:"
              " ipv4:127.0.0.1:31444: Ssl handshake failed (TSI_PROTOCOL_FAILURE):"
              " SSL_ERROR_SSL: error:1000007d:SSL routines:OPENSSL_internal:"
              "CERTIFICATE_VERIFY_FAILED: certificate is not yet valid")  # fmt: skip
    advice = agent_cli._tls_advice(behind)
    assert advice is not None and "clock is behind" in str(advice)
    assert agent_cli._tls_advice("UNAVAILABLE: failed to connect to all addresses") is None


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("chattr") is None,
                    reason="an immutable folder, made by root with chattr")  # fmt: skip
def test_root_refused_by_the_folders_attributes_is_not_told_to_run_as_root(
    collector_process: CollectorProcess, tmp_path: Path
) -> None:
    # Root is refused a folder only by its mode or attributes (here: `chattr +i` on the
    # outbox): "run it as root" was the advice, to root.
    state = enrolled_state(collector_process, tmp_path)
    outbox = state / "outbox"
    outbox.mkdir(exist_ok=True)
    if subprocess.run(["chattr", "+i", str(outbox)], check=False).returncode != 0:
        pytest.skip("this file system keeps no immutable attribute")
    try:
        once = run(AGENT, "once", "--state", str(state))
    finally:
        subprocess.run(["chattr", "-i", str(outbox)], check=True)
    assert once.returncode == 1, once.stderr
    assert "Operation not permitted" in once.stderr and "run it as root" not in once.stderr
    assert "forbid it (check them with `ls -ld` and `lsattr -d`)" in once.stderr, once.stderr


def test_cli_errors_name_the_problem_and_the_fix(
    collector_process: CollectorProcess, tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(collector_process.token())
    wrong = enroll(collector_process, tmp_path / "a", token_file, "sha256:" + "ab" * 32)
    assert wrong.returncode == 1 and "did not present the CA with fingerprint" in wrong.stderr
    malformed = enroll(collector_process, tmp_path / "a", token_file, "12345")
    assert malformed.returncode == 1 and "64 hexadecimal digits" in malformed.stderr
    missing = enroll(collector_process, tmp_path / "a", tmp_path / "nope")
    assert missing.returncode == 1 and "cannot read the token file" in missing.stderr
    not_enrolled = run(AGENT, "once", "--state", str(tmp_path / "never"))
    assert (
        not_enrolled.returncode == 1
        and "run `devposture-agent enroll` first" in not_enrolled.stderr
    )
    # A state folder that cannot be made (here: under a file; in the field, an account that
    # may not write /var/lib) is found before the token is spent, which it was before.
    (tmp_path / "a-file").write_text("")
    unwritable = enroll(collector_process, tmp_path / "a-file" / "state", token_file)
    assert unwritable.returncode == 1 and "cannot be written" in unwritable.stderr
    assert "the token was not used" in unwritable.stderr
    no_data = run(COLLECTOR, "report", "fleet", "--data", str(tmp_path / "nodata"))
    assert no_data.returncode == 1 and "devposture-collector init --data" in no_data.stderr
    # A data folder whose database file is gone: refused, never made anew and empty (which
    # would go on with no history and a second evidence chain under the same key).
    copy = tmp_path / "copy"
    shutil.copytree(collector_process.data, copy, ignore=shutil.ignore_patterns("devposture.db*"))
    lost = run(COLLECTOR, "report", "fleet", "--data", str(copy))
    assert lost.returncode == 1 and "restore it from your backup" in lost.stderr
    assert not (copy / "devposture.db").exists()
    # A damaged one: said so, and what to do (it said "run as the service account").
    damaged = tmp_path / "damaged"
    shutil.copytree(collector_process.data, damaged, ignore=shutil.ignore_patterns("*.db-*"))
    with (damaged / "devposture.db").open("r+b") as database:
        database.seek(100)
        database.write(b"\xff" * 32_000)
    broken = run(COLLECTOR, "report", "fleet", "--data", str(damaged))
    assert broken.returncode == 1 and "the collector database is damaged" in broken.stderr
    assert "from your last backup" in broken.stderr
    stdin_token = run(
        AGENT,
        "enroll",
        "--collector",
        f"127.0.0.1:{collector_process.enroll_port}",
        "--token-file",
        "-",
        "--ca-fingerprint",
        collector_process.fingerprint,
        "--state",
        str(tmp_path / "b"),
        stdin=token_file.read_text(),
    )
    assert stdin_token.returncode == 0, stdin_token.stderr
    again = enroll(collector_process, tmp_path / "b", token_file)
    assert (
        again.returncode == 1 and "already enrolled" in again.stderr and "--force" in again.stderr
    )
