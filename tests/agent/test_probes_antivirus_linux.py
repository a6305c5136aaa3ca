"""The Linux antivirus probe's new parts on replayed real recordings: freshclam's updater
state (its config, its log's end, the machine's zone) and Defender's health issues; then the
collector's verdict on what the probe reported.

Fixtures and their sources: tests/fixtures/linux/README.md.
"""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

from devposture.agent.host import ProcessInfo
from devposture.agent.probes import ProbeConfig
from devposture.agent.probes.commands import freshclam_conf_grep as conf_grep
from devposture.agent.probes.linux import antivirus
from devposture.agent.probes.linux.clamav_updates import LOG_TAIL_BYTES
from devposture.agent.probes.outcome import FactOutcome, ProbeContext
from devposture.agent.probes.runner import run_probe
from devposture.policy.checks import CheckParameters, State, evaluate
from devposture.policy.reasons import render
from devposture.v1 import devposture_pb2 as pb
from tests.agent.replay import ReplayHost, fixture_bytes, fixture_text, ok

CONF = "/etc/clamav/freshclam.conf"
LOG = "/var/log/clamav/freshclam.log"
DB = "/var/lib/clamav"
DAILY = "clamav/daily-27001-sigtool-unsigned.cud"  # built 2026-11-24 (sigtool's header)
NOW = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
# The recordings' dates are fixed (database built 2026-11-24, failure logged 2026-12-02): a
# policy that allows signatures 10 days old makes that database fresh on NOW.
POLICY = CheckParameters(signature_max_age=timedelta(days=10))


def _with_conf(host: ReplayHost, conf: bytes, tmp: Path) -> None:
    """freshclam.conf at CONF, and what the probe's grep prints for it: the real grep, run
    now on a copy of the file."""
    copy = tmp / "freshclam.conf"
    copy.write_bytes(conf)
    done = subprocess.run(conf_grep(str(copy)), capture_output=True, check=False)
    host.with_tool("grep")
    host.files[CONF] = conf
    host.commands[tuple(conf_grep(CONF))] = (done.returncode, done.stdout, done.stderr)


def _debian_clamav(
    tmp: Path, log: bytes | None, *, zone: str | None = "Asia-Shanghai"
) -> ReplayHost:
    """A Debian machine with ClamAV: Debian's freshclam.conf, one database, clamd and the
    on-access scanner clamonacc running (process list stated here)."""
    host = ReplayHost(clock=NOW).with_tool("clamscan").with_tool("freshclam")
    host.procs = [
        ProcessInfo(1, "systemd"),
        ProcessInfo(812, "clamd", "clamd"),
        ProcessInfo(813, "clamonacc", "clamonacc"),
    ]
    _with_conf(host, fixture_bytes("freshclam/freshclam-conf-debian12.conf"), tmp)
    host.dirs[DB] = ["daily.cud", "freshclam.dat"]
    host.files[f"{DB}/daily.cud"] = fixture_bytes(DAILY)
    if log is not None:
        host.files[LOG] = log
    if zone is not None:
        host.files["/etc/localtime"] = fixture_bytes(f"localtime/{zone}.tzif")
    return host


def _probe(host: ReplayHost) -> FactOutcome:
    ctx = ProbeContext(host, ProbeConfig(), pb.PostureReport())
    return run_probe(pb.FACT_ANTIVIRUS, antivirus.probe, ctx)


def _clamav(outcome: FactOutcome) -> pb.AntivirusProduct:
    assert isinstance(outcome.fact, pb.AntivirusFact)
    (clam,) = [p for p in outcome.fact.products if p.name == "ClamAV"]
    return clam


def _verdict(outcome: FactOutcome, now: datetime = NOW) -> tuple[State, str]:
    report = pb.PostureReport()
    assert isinstance(outcome.fact, pb.AntivirusFact)
    report.antivirus.CopyFrom(outcome.fact)
    report.errors.extend(outcome.errors)
    result = {c.check_id: v for c, v in evaluate(report, now, POLICY)}["antivirus"]
    return result.state, render(result.reason, "en", UTC)


def test_failed_update_in_the_log_read_in_the_machines_zone(tmp_path: Path) -> None:
    log = fixture_bytes("freshclam/freshclam-log-update-failed-offline-debian12.log")
    host = _debian_clamav(tmp_path, log)
    outcome = _probe(host)
    clam = _clamav(outcome)
    assert clam.signature_version == "27001"
    update = clam.signature_update
    assert update.outcome == pb.SIGNATURE_UPDATE_OUTCOME_FAILED
    assert update.detail == "Database update process failed: HTTP GET failed"
    assert update.attempted_at.ToDatetime(UTC) == datetime(2026, 12, 2, 12, 32, 22, tzinfo=UTC)
    assert not update.HasField("succeeded_at")
    assert outcome.errors == []
    # Signatures built 2026-11-24 are within 10 days on 2026-12-03: a PASS naming the failure.
    state, reason = _verdict(outcome)
    assert state is State.PASS
    assert "last signature update failed on 2026-12-02" in reason
    # A week later the files are stale: FAIL, on their age.
    assert _verdict(outcome, datetime(2026, 12, 9, tzinfo=UTC)) == (
        State.FAIL,
        "ClamAV: signatures from 2026-11-24, older than 10 days",
    )


def test_only_the_end_of_a_long_log_is_read(tmp_path: Path) -> None:
    # A week of hourly runs makes a log of hundreds of KiB: only its end is asked for.
    good = fixture_bytes("freshclam/freshclam-log-up-to-date-1.4-topgrade-1239.log")
    failed = fixture_bytes("freshclam/freshclam-log-update-failed-offline-debian12.log")
    host = _debian_clamav(tmp_path, good * (2 * LOG_TAIL_BYTES // len(good)) + failed)
    update = _clamav(_probe(host)).signature_update
    assert update.outcome == pb.SIGNATURE_UPDATE_OUTCOME_FAILED
    assert update.succeeded_at.ToDatetime(UTC) == datetime(2025, 7, 28, 9, 10, 45, tzinfo=UTC)


def test_a_log_just_rotated_is_read_from_the_previous_one(tmp_path: Path) -> None:
    host = _debian_clamav(tmp_path, b"", zone=None)  # no /etc/localtime: UTC, as for the C library
    host.files[f"{LOG}.1"] = fixture_bytes(
        "freshclam/freshclam-log-outdated-0.103.2-owncloud-docs-3963.log"
    )
    outcome = _probe(host)
    update = _clamav(outcome).signature_update
    assert update.outcome == pb.SIGNATURE_UPDATE_OUTCOME_ENGINE_OUTDATED
    assert update.attempted_at.ToDatetime(UTC) == datetime(2021, 8, 18, 12, 43, 12, tzinfo=UTC)
    state, reason = _verdict(outcome)
    assert state is State.FAIL
    assert "engine outdated (Local version: 0.103.2 Recommended version: 0.103.3)" in reason


def test_missing_log_and_missing_update_log_setting_are_said(tmp_path: Path) -> None:
    outcome = _probe(_debian_clamav(tmp_path, None))
    assert not _clamav(outcome).HasField("signature_update")
    assert [(e.source, e.code) for e in outcome.errors] == [
        ("freshclam-log", pb.PROBE_ERROR_CODE_NO_SOURCE)
    ]
    assert "freshclam.log does not exist" in outcome.errors[0].message
    host = _debian_clamav(tmp_path, None)
    conf = fixture_text("freshclam/freshclam-conf-debian12.conf")
    no_log = "\n".join(line for line in conf.splitlines() if not line.startswith("UpdateLogFile"))
    _with_conf(host, no_log.encode(), tmp_path)
    outcome = _probe(host)
    assert "sets no UpdateLogFile" in outcome.errors[0].message
    # Neither is a verdict by itself: the signatures' age decides (fresh on NOW).
    assert _verdict(outcome)[0] is State.PASS


def test_a_log_without_any_finished_attempt(tmp_path: Path) -> None:
    host = _debian_clamav(
        tmp_path, fixture_bytes("freshclam/freshclam-update-failed-offline-debian12.out")
    )
    outcome = _probe(host)
    assert not _clamav(outcome).HasField("signature_update")
    assert [e.message for e in outcome.errors] == [
        "freshclam's log holds no finished update attempt"
    ]


def test_the_recording_machine_replayed_whole(tmp_path: Path) -> None:
    # The config the failed run was recorded with: its DatabaseDirectory held only
    # freshclam.dat afterwards (no database was ever downloaded), its log the failure.
    host = ReplayHost().with_tool("clamscan").with_tool("freshclam")
    host.procs = [ProcessInfo(1, "systemd")]
    _with_conf(host, fixture_bytes("freshclam/freshclam-conf-recording.conf"), tmp_path)
    host.dirs["/tmp/dp-fc2/db"] = ["freshclam.dat"]
    host.files["/tmp/dp-fc2/freshclam.log"] = fixture_bytes(
        "freshclam/freshclam-log-update-failed-offline-debian12.log"
    )
    host.files["/etc/localtime"] = fixture_bytes("localtime/Asia-Shanghai.tzif")
    outcome = _probe(host)
    clam = _clamav(outcome)
    assert clam.signature_update.outcome == pb.SIGNATURE_UPDATE_OUTCOME_FAILED
    assert not clam.HasField("signatures_updated_at") and not clam.signatures_up_to_date
    state, reason = _verdict(outcome)
    assert state is State.FAIL
    assert "ClamAV: disabled" in reason and "no signature database" in reason


def test_defender_without_a_license_fails_naming_it() -> None:
    host = ReplayHost(procs=[ProcessInfo(90, "wdavdaemon")]).with_tool("mdatp")
    host.commands[("mdatp", "health")] = ok(
        fixture_text("mdatp/mdatp-health-missing-license-ubuntu.out")
    )
    outcome = _probe(host)
    assert isinstance(outcome.fact, pb.AntivirusFact)
    (mde,) = outcome.fact.products
    assert mde.enabled and not mde.HasField("real_time_protection")
    assert list(mde.health_issues) == ["missing license"]
    state, reason = _verdict(outcome)
    assert state is State.FAIL
    assert reason == "Microsoft Defender for Endpoint: health issues: missing license"


def test_a_time_after_the_machines_clock_is_left_unset(tmp_path: Path) -> None:
    # The log says 2026-12-02 but the machine's clock says 2026-01-15: the clock was ahead
    # when the line was written, or is behind now. Either way that time is no fact to send.
    host = _debian_clamav(
        tmp_path, fixture_bytes("freshclam/freshclam-log-update-failed-offline-debian12.log")
    )
    host.clock = datetime(2026, 1, 15, 9, 30, tzinfo=UTC)
    update = _clamav(_probe(host)).signature_update
    assert update.outcome == pb.SIGNATURE_UPDATE_OUTCOME_FAILED
    assert not update.HasField("attempted_at")


def test_a_proxy_password_in_freshclam_conf_is_never_read(tmp_path: Path) -> None:
    # freshclam.conf(5): HTTPProxyPassword. The probe's grep asks for its two options only,
    # so the password is not in what the host answered (nor in a bundle recording it).
    conf = fixture_bytes("freshclam/freshclam-conf-debian12.conf")
    conf += b"HTTPProxyServer proxy.example\nHTTPProxyPassword s3cret\n"
    host = _debian_clamav(tmp_path, b"")
    _with_conf(host, conf, tmp_path)
    rc, out, _ = host.commands[tuple(conf_grep(CONF))]
    assert rc == 0 and b"s3cret" not in out and b"UpdateLogFile" in out
    assert _probe(host).fact is not None
