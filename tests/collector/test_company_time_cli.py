"""The CLI in the company's time zone, end to end on a real data folder (either engine): a
typed date is a local calendar day, and every time it prints is local with its offset.

An expiry must lie in the future, so these use 2099's dates; the arithmetic of 2026-12-31 in
Beijing time is in test_company_time.py."""

from __future__ import annotations

import datetime as dt
import json
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from devposture.collector.cli import main as collector_cli
from devposture.collector.config import load
from devposture.collector.evidence import bundle
from tests.collector.cli_fleet import DEVICES, CliFleet, cli_fleet  # noqa: F401

DEVICE = DEVICES[1][0]
Run = Callable[..., tuple[int, str, str]]


def _utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, tzinfo=dt.UTC)


def _us(moment: dt.datetime) -> int:
    return int(moment.timestamp()) * 1_000_000


def _in_zone(data: Path, zone: str) -> None:
    """The data folder's policy set to `zone` (no collector ran: it is the policy in force)."""
    policy = load(data).policy
    text = policy.read_text(encoding="utf-8")
    policy.write_text(text.replace('"Asia/Shanghai"', f'"{zone}"'), encoding="utf-8")


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]) -> Run:
    """The CLI in this process: its exit status, standard output and standard error."""

    def running(*argv: str) -> tuple[int, str, str]:
        try:
            code = collector_cli(list(argv))
        except SystemExit as exit_:  # argparse refusing an option
            code = int(exit_.code or 0)
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return running


def _ahead(month: int, day: int) -> dt.date:
    """The next `month`/`day` at least two days from today: a waiver lasts at most a year
    (collector/admin/commands.py MAX_WAIVER), so the dates typed here are the coming ones."""
    today = dt.date.today()
    date = dt.date(today.year, month, day)
    return date if (date - today).days >= 2 else date.replace(year=today.year + 1)


def _cases() -> list[tuple[str, str, dt.datetime, str]]:
    summer, winter = _ahead(7, 31), _ahead(1, 31) if dt.date.today().month == 12 else _ahead(12, 31)
    after = winter + dt.timedelta(days=1)
    w = winter.isoformat()
    return [
        ("Asia/Shanghai", w, _utc(winter.year, winter.month, winter.day, 16),
         f"{after.isoformat()} 00:00 (UTC+08:00)"),
        # Summer time in Berlin: the end of 31 July is 22:00 UTC.
        ("Europe/Berlin", summer.isoformat(), _utc(summer.year, 7, 31, 22),
         f"{summer.year}-08-01 00:00 (UTC+02:00)"),
        ("Asia/Shanghai", f"{w}T18:00", _utc(winter.year, winter.month, winter.day, 10),
         f"{w} 18:00 (UTC+08:00)"),
        ("Europe/Berlin", f"{w}T18:00Z", _utc(winter.year, winter.month, winter.day, 18),
         f"{w} 19:00 (UTC+01:00)"),
    ]  # fmt: skip


@pytest.mark.parametrize(("zone", "typed", "ends", "shown"), _cases())
def test_a_waiver_lasts_to_the_end_of_the_local_day_typed(
    cli_fleet: CliFleet, run: Run,  # noqa: F811
    zone: str, typed: str, ends: dt.datetime, shown: str,
) -> None:  # fmt: skip
    data = str(cli_fleet.data)
    _in_zone(cli_fleet.data, zone)
    code, out, err = run("waiver", "add", "--data", data, "--device", DEVICE, "--check",
                          "firewall", "--owner", "Li Wei (IT)", "--reason", "rollout",
                          "--expires", typed)  # fmt: skip
    assert code == 0, err
    assert f"until {shown}" in out
    store = cli_fleet.store()
    try:
        (waiver,) = store.waivers.recorded()
        assert waiver.expires_at == ends  # stored in UTC
    finally:
        store.close()
    code, out, _ = run("waiver", "list", "--data", data, "--format", "json")
    (row,) = json.loads(out)
    assert dt.datetime.fromisoformat(row["expires"]) == ends
    assert row["expires"].endswith(shown[-7:-1])  # the zone's offset, e.g. +08:00
    # The fleet report's reason names the waiver's end in the same words.
    code, out, _ = run("report", "device", DEVICE, "--data", data, "--format", "json",
                       "--lang", "en")  # fmt: skip
    firewall = next(r for r in json.loads(out) if r["check"] == "firewall")
    assert f"until {shown}" in firewall["reason_text"]
    assert firewall["reason"].startswith("standing.exempt {")  # the code, for programs
    code, out, _ = run("report", "device", DEVICE, "--data", data, "--format", "json")
    firewall = next(r for r in json.loads(out) if r["check"] == "firewall")
    # Chinese unless told, the offset in the full-width brackets of a Chinese sentence
    assert f"有效至 {shown.replace(' (', '（').replace(')', '）')}" in firewall["reason_text"]


def test_listings_show_local_times_with_the_offset(
    cli_fleet: CliFleet, run: Run,  # noqa: F811
) -> None:
    code, out, _ = run("device", "list", "--data", str(cli_fleet.data), "--format", "json")
    assert code == 0
    rows = json.loads(out)
    enrolled = dt.datetime.fromisoformat(rows[0]["enrolled"])
    assert enrolled.utcoffset() == dt.timedelta(hours=8)
    assert abs(enrolled - (cli_fleet.now - dt.timedelta(days=4))) < dt.timedelta(seconds=1)
    _in_zone(cli_fleet.data, "Europe/Berlin")
    code, out, _ = run("token", "list", "--data", str(cli_fleet.data), "--format", "csv")
    assert code == 0 and ("+01:00" in out or "+02:00" in out) and "+08:00" not in out


def test_a_bad_date_is_refused_saying_which_zone_a_bare_date_means(
    cli_fleet: CliFleet, run: Run,  # noqa: F811
) -> None:
    code, _, err = run("report", "fleet", "--data", str(cli_fleet.data), "--as-of", "1/11/2026")
    assert code == 2
    assert "2026-11-01, 2026-11-01T09:30" in err and "the company's time zone" in err


def test_as_of_a_date_is_that_local_day_s_start(
    cli_fleet: CliFleet, run: Run,  # noqa: F811
) -> None:
    # The devices were enrolled four days ago: as of the local start of the day they were
    # enrolled, none was yet; as of the local start of today, all were.
    zone = dt.timezone(dt.timedelta(hours=8))
    enrolled_day = (cli_fleet.now - dt.timedelta(days=4)).astimezone(zone).date()
    for day, expected in ((enrolled_day, 0), (enrolled_day + dt.timedelta(days=2), 3)):
        code, out, _ = run("report", "fleet", "--data", str(cli_fleet.data), "--as-of",
                            day.isoformat(), "--format", "json")  # fmt: skip
        assert code == 0
        assert json.loads(out)[0]["devices"] == expected


def test_a_moment_still_to_come_is_a_projection_and_says_so(
    cli_fleet: CliFleet, run: Run,  # noqa: F811
    tmp_path: Path,
) -> None:  # fmt: skip
    # As of next year every device that stays silent is STALE: shown, and told as what the
    # records will say, not as what is. An export to 2100 ends now and says so: a bundle
    # signs only what has been written.
    code, shown, err = run("report", "fleet", "--data", str(cli_fleet.data), "--as-of",
                           (dt.date.today() + dt.timedelta(days=365)).isoformat())
    assert code == 0 and "still to come: what the records will say then" in shown + err
    out = tmp_path / "everything.zip"
    code, message, err = run("audit", "export", "--data", str(cli_fleet.data), "--from",
                             "2020-01-01", "--to", "2100-01-01", "--out", str(out))
    assert code == 0, err
    assert "(--to 2100-01-01 00:00 (UTC+08:00) is still to come: the period ends now" in message
    with zipfile.ZipFile(out) as archive:
        manifest = json.loads(archive.read(bundle.MANIFEST))
    assert manifest["period"]["to_us"] <= time.time_ns() // 1000  # not 2100
    code, _, err = run("audit", "export", "--data", str(cli_fleet.data), "--from",
                       "2026-11-02", "--to", "2026-11-01", "--out", str(tmp_path / "x.zip"))
    assert code == 1 and "--to (2026-11-01 00:00 (UTC+08:00)) must be after --from" in err


@pytest.mark.parametrize(
    ("zone", "start", "end"),
    [
        ("Asia/Shanghai", _utc(2026, 9, 30, 16), _utc(2026, 10, 31, 16)),
        # Berlin leaves summer time on 25 October: October is 31 days and an hour long.
        ("Europe/Berlin", _utc(2026, 9, 30, 22), _utc(2026, 10, 31, 23)),
    ],
)
def test_audit_export_covers_local_calendar_days(
    cli_fleet: CliFleet, run: Run,  # noqa: F811
    tmp_path: Path, zone: str, start: dt.datetime, end: dt.datetime,
) -> None:  # fmt: skip
    _in_zone(cli_fleet.data, zone)
    out = tmp_path / "october.zip"
    code, message, err = run("audit", "export", "--data", str(cli_fleet.data), "--from",
                              "2026-10-01", "--to", "2026-11-01", "--out", str(out))  # fmt: skip
    assert code == 0, err
    with zipfile.ZipFile(out) as archive:
        manifest = json.loads(archive.read(bundle.MANIFEST))
        context = json.loads(archive.read(bundle.CONTEXT))
        report = archive.read(bundle.HTML).decode()
    assert manifest["period"]["from_us"] == _us(start)
    assert manifest["period"]["to_us"] == _us(end)
    offset = 480 if zone == "Asia/Shanghai" else 120  # Berlin on 1 October: summer time
    # Berlin: October begins in summer time and ends in winter time.
    last = offset if zone == "Asia/Shanghai" else 60
    assert f"2026-10-01 00:00 (UTC+{offset // 60:02d}:00)" in message
    assert f"2026-11-01 00:00 (UTC+{last // 60:02d}:00)" in message
    # The printable report is drawn in the policy's zone, fixed as it stood at the period's
    # start and recorded in the bundle's context, from which any verifier redraws it.
    assert context["time_zone"] == {"name": zone, "utc_offset_minutes": offset}
    assert f"{zone} UTC+{offset // 60:02d}:00" in report
    key = tmp_path / "key.pem"
    code, pem, _ = run("audit", "public-key", "--data", str(cli_fleet.data))
    key.write_text(pem, encoding="utf-8")
    code, _, err = run("audit", "verify", str(out), "--public-key", str(key))
    assert code == 0, err


def test_certificate_ends_are_told_in_the_company_s_time_zone(
    cli_fleet: CliFleet, run: Run,  # noqa: F811
) -> None:
    """`ca fingerprint --all` and `tls rotate` said "valid until" a UTC date: a certificate
    ending at 20:00 UTC ends the next day in Beijing. They tell the moment, local, with its
    offset, as every other time the command line prints."""
    from cryptography import x509  # noqa: PLC0415

    from devposture.collector.company_time import shown, zone_of  # noqa: PLC0415

    data = cli_fleet.data
    beijing = zone_of(None)  # the default policy's: Asia/Shanghai
    code, out, err = run("ca", "fingerprint", "--all", "--data", str(data))
    assert code == 0, err
    ca = x509.load_pem_x509_certificate((data / "ca" / "ca.crt").read_bytes())
    assert f"valid until {shown(ca.not_valid_after_utc, beijing)}" in out
    code, out, err = run("tls", "rotate", "--data", str(data))
    assert code == 0, err
    server = x509.load_pem_x509_certificate((data / "tls" / "server.crt").read_bytes())
    assert f"Valid until {shown(server.not_valid_after_utc, beijing)}." in out


def test_the_fleet_as_of_tomorrow_in_beijing_is_shown_with_its_note(
    cli_fleet: CliFleet, run: Run,  # noqa: F811
) -> None:
    """`report fleet --as-of` a day still to come (tomorrow in Beijing, already today in UTC
    for eight hours) printed the projection's note alone, without the table it is about."""
    tomorrow = (dt.datetime.now(dt.timezone(dt.timedelta(hours=8))).date()
                + dt.timedelta(days=1)).isoformat()  # fmt: skip
    code, out, err = run("report", "fleet", "--data", str(cli_fleet.data), "--as-of", tomorrow)
    assert code == 0, err
    assert out.splitlines()[0].split()[:3] == ["CLAUSE", "CHECK", "DEVICES"], out
    assert "firewall" in out and "still to come: what the records will say then" in err
    code, out, err = run("report", "fleet", "--data", str(cli_fleet.data), "--group", "无此组")
    assert code == 0 and "CLAUSE" not in out and "no device is in group" in out + err
