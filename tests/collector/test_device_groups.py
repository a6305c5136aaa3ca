"""Device groups over a real collector (either engine, admin port over TLS, the real CLI): a
token's group joins the devices it enrolls, IT sets and clears a device's group through the
command table (audited, admin role only), names are checked, `device list --group` filters,
and schema 7 upgrades a schema 6 (SQLite) database without losing anything."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from devposture.agent.enroll import enroll
from devposture.agent.state import AgentState
from devposture.agent.transport import open_channel, send_report
from devposture.collector import store as store_module
from devposture.collector.cli import main as collector_cli
from devposture.collector.clock import utcnow
from devposture.collector.credentials import ADMIN, VIEWER
from devposture.collector.store import DeviceRecord, Store
from devposture.collector.store.identity import GroupNameError, group_name
from devposture.collector.tokens import new_token
from tests.collector.test_admin import AdminCollector, admin_collector
from tests.collector.test_store import database_at_version
from tests.conftest import enroll_agent, host_info, make_report

FINANCE = "财务部"


@pytest.fixture
def collector(tmp_path: Path) -> Iterator[AdminCollector]:
    with admin_collector(tmp_path / "collector") as running:
        yield running


def _cli(collector: AdminCollector, capsys: pytest.CaptureFixture[str], *words: str) -> tuple[
    int, str, str
]:  # fmt: skip
    """Run `devposture-collector WORDS --data DIR` (the local CLI): exit code, out, err."""
    capsys.readouterr()
    code = collector_cli([*words, "--data", str(collector.live.config.data_dir)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _enroll_with(collector: AdminCollector, token: str, directory: Path, hostname: str) -> str:
    """A real agent enrolling over TLS with `token`: its device id."""
    state = AgentState(directory)
    enrollment = enroll(state, collector.live.enroll_address, token,
                        collector.live.ca_fingerprint, host_info(hostname))  # fmt: skip
    return enrollment.device_id


def _group_of(collector: AdminCollector, device_id: str) -> str:
    store = collector.store()
    try:
        device = store.identity.device(device_id)
        assert device is not None
        return device.group
    finally:
        store.close()


def _events(collector: AdminCollector, device_id: str) -> list[tuple[str, str]]:
    store = collector.store()
    try:
        return [
            (action, detail) for _, action, _, detail in store.identity.device_events(device_id)
        ]
    finally:
        store.close()


def _code(call: pytest.ExceptionInfo[grpc.RpcError]) -> grpc.StatusCode:
    error = call.value
    assert isinstance(error, grpc.Call)
    return error.code()


def test_a_tokens_group_is_joined_by_the_devices_it_enrolls(
    collector: AdminCollector, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, token, info = _cli(collector, capsys, "token", "create", "--uses", "2",
                             "--group", f"  {FINANCE} ")  # fmt: skip
    assert code == 0, info
    assert token.startswith("dpt_") and token.count("\n") == 1  # the secret alone on stdout
    assert f"enrolls 2 devices into group {FINANCE}," in info
    first = _enroll_with(collector, token.strip(), tmp_path / "a1", "fin-laptop-1")
    second = _enroll_with(collector, token.strip(), tmp_path / "a2", "fin-laptop-2")
    plain = enroll_agent(collector.live, tmp_path / "a3", "other-laptop").enrollment.device_id
    assert (_group_of(collector, first), _group_of(collector, second)) == (FINANCE, FINANCE)
    assert _group_of(collector, plain) == ""
    assert ("enrolled", f"token {token.split('_')[1]}, certificate generation 1,"
            f" group {FINANCE}") in _events(collector, first)  # fmt: skip
    code, out, _ = _cli(collector, capsys, "token", "list", "--format", "json")
    assert code == 0
    groups = {t["token"]: t["group"] for t in json.loads(out)}
    assert groups[token.split("_")[1]] == FINANCE
    code, out, _ = _cli(collector, capsys, "device", "show", first)
    assert code == 0
    assert any(line.split() == ["group", FINANCE] for line in out.splitlines())


def test_re_enrollment_keeps_the_tokens_group(collector: AdminCollector) -> None:
    """Enrolling the same key again: a token with a group moves the device into it; one
    without a group leaves the device's group (perhaps set by IT) alone."""
    store = collector.store()
    now = utcnow()
    expires = now + dt.timedelta(hours=1)
    try:
        tokens = {}
        for group in (FINANCE, "", "sales-eu"):
            tokens[group] = new_token()
            store.identity.add_token(tokens[group], now, expires, uses=1, group=group)
        store.identity.enroll(tokens[FINANCE], now, DeviceRecord("d1", "s1", expires))
        assert store.identity.devices(group=FINANCE)[0].device_id == "d1"
        store.identity.enroll(tokens[""], now, DeviceRecord("d1", "s2", expires))
        assert [d.group for d in store.identity.devices(only="d1")] == [FINANCE]
        store.identity.enroll(tokens["sales-eu"], now, DeviceRecord("d1", "s3", expires))
        assert [d.group for d in store.identity.devices(only="d1")] == ["sales-eu"]
    finally:
        store.close()


def test_an_admin_sets_and_clears_a_group_and_each_change_is_audited(
    collector: AdminCollector, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    device_id = enroll_agent(collector.live, tmp_path / "agent", "laptop-1").enrollment.device_id
    admin = collector.credential("Li Wei (IT)", ADMIN)
    done = collector.run(admin, "device", "group", device_id=device_id, group="sales-eu")
    assert done.message == f"device {device_id} is now in group sales-eu"
    assert _group_of(collector, device_id) == "sales-eu"
    # Locally, with the real CLI: a Chinese department name replaces it.
    code, out, err = _cli(collector, capsys, "device", "group", device_id, FINANCE)
    assert (code, err) == (0, "")
    assert out == f"device {device_id} is now in group {FINANCE} (was sales-eu)\n"
    again = collector.run(admin, "device", "group", device_id=device_id, group=FINANCE)
    assert "nothing changed" in again.message
    cleared = collector.run(admin, "device", "group", device_id=device_id, clear="true")
    assert cleared.message == f"device {device_id} is in no group now (was {FINANCE})"
    assert _group_of(collector, device_id) == ""
    assert [e for e in _events(collector, device_id) if e[0] == "group"] == [
        ("group", "group set to sales-eu"),
        ("group", f"group set to {FINANCE} (was sales-eu)"),
        ("group", f"group {FINANCE} cleared"),
    ]
    entries = [e for e in collector.audit() if e.command == "device group"]
    assert [(e.outcome, e.actor.split(":")[0]) for e in entries] == [
        ("ok", "Li Wei (IT)"), ("ok", "local"), ("ok", "Li Wei (IT)"), ("ok", "Li Wei (IT)"),
    ]  # fmt: skip
    assert json.loads(entries[1].arguments) == {"device_id": device_id, "group": FINANCE}
    assert entries[1].message == out.strip()
    assert json.loads(entries[3].arguments) == {"device_id": device_id, "clear": "true"}


def test_a_viewer_may_not_change_a_group(collector: AdminCollector, tmp_path: Path) -> None:
    device_id = enroll_agent(collector.live, tmp_path / "agent").enrollment.device_id
    viewer = collector.credential("Wang Fang (audit)", VIEWER)
    with pytest.raises(grpc.RpcError) as call:
        collector.run(viewer, "device", "group", device_id=device_id, group="sales-eu")
    assert _code(call) == grpc.StatusCode.PERMISSION_DENIED
    assert "needs the admin role" in str(call.value)
    assert _group_of(collector, device_id) == ""
    listed = json.loads(collector.run(viewer, "device", "list").rows_json)  # reading is allowed
    assert [d["group"] for d in listed] == [""]
    assert [(e.command, e.outcome) for e in collector.audit()] == [
        ("device group", "denied"), ("device list", "ok"),
    ]  # fmt: skip


REFUSED = [
    "", "   ", "a/b", "R&D", "x" * 65, "tab\there", "new\nline", "zero\u200bwidth", "\u0301x",
    "emoji\U0001f600", "bell\x07",
]  # fmt: skip


def test_refused_names_say_what_is_allowed(collector: AdminCollector, tmp_path: Path) -> None:
    device_id = enroll_agent(collector.live, tmp_path / "agent").enrollment.device_id
    admin = collector.credential("Li Wei (IT)", ADMIN)
    for name in REFUSED:
        with pytest.raises(grpc.RpcError) as call:
            collector.run(admin, "device", "group", device_id=device_id, group=name)
        assert _code(call) == grpc.StatusCode.INVALID_ARGUMENT, repr(name)
        assert "1 to 64 characters: letters or digits (any script" in str(call.value), repr(name)
        with pytest.raises(grpc.RpcError) as token:
            collector.run(admin, "token", "create", group=name)
        assert _code(token) == grpc.StatusCode.INVALID_ARGUMENT, repr(name)
    assert _group_of(collector, device_id) == ""
    store = collector.store()
    try:
        assert [t.group for t in store.identity.tokens()] == [""]  # only enroll_agent's own token
    finally:
        store.close()
    assert [e.outcome for e in collector.audit()] == ["error"] * 2 * len(REFUSED)


def test_names_of_any_script_are_accepted_trimmed_and_in_one_form() -> None:
    assert group_name(f"  {FINANCE}\t") == FINANCE
    assert group_name("sales-eu") == "sales-eu"
    assert group_name("Ventas 2026_v1.2") == "Ventas 2026_v1.2"
    assert group_name("ฝ่ายขาย") == "ฝ่ายขาย"  # Thai: letters with combining marks
    assert group_name("e\u0301quipe") == group_name("\u00e9quipe") == "\u00e9quipe"
    assert group_name("研" * 64) == "研" * 64
    with pytest.raises(GroupNameError, match="65 characters long"):
        group_name("研" * 65)
    with pytest.raises(GroupNameError, match="control or invisible"):
        group_name("a\x1bb")


def test_unknown_devices_and_a_missing_name_are_explained(
    collector: AdminCollector, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    device_id = enroll_agent(collector.live, tmp_path / "agent").enrollment.device_id
    admin = collector.credential("Li Wei (IT)", ADMIN)
    with pytest.raises(grpc.RpcError) as unknown:
        collector.run(admin, "device", "group", device_id="no-such-device", group="sales-eu")
    assert _code(unknown) == grpc.StatusCode.NOT_FOUND
    assert "no device no-such-device" in str(unknown.value)
    assert "devposture-collector device list" in str(unknown.value)
    code, _, err = _cli(collector, capsys, "device", "group", device_id)
    assert code == 1 and "give either the group NAME or --clear" in err
    code, _, err = _cli(collector, capsys, "device", "group", device_id, "sales-eu", "--clear")
    assert code == 1 and "give either the group NAME or --clear" in err
    code, _, err = _cli(collector, capsys, "device", "group", device_id, "a/b")
    assert code == 1 and "'/' (U+002F), which is not allowed" in err
    assert _group_of(collector, device_id) == ""


def test_device_list_filters_by_group_in_every_format(
    collector: AdminCollector, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = {
        host: enroll_agent(collector.live, tmp_path / host, host).enrollment.device_id
        for host in ("fin-1", "fin-2", "eu-1", "none-1")
    }
    for host, group in (("fin-1", FINANCE), ("fin-2", FINANCE), ("eu-1", "sales-eu")):
        assert _cli(collector, capsys, "device", "group", ids[host], group)[0] == 0
    code, out, _ = _cli(collector, capsys, "device", "list", "--group", FINANCE, "--format",
                        "json")  # fmt: skip
    assert code == 0
    assert [(d["hostname"], d["group"]) for d in json.loads(out)] == [
        ("fin-1", FINANCE), ("fin-2", FINANCE),
    ]  # fmt: skip
    code, out, _ = _cli(collector, capsys, "device", "list", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out.removeprefix("\ufeff"))))  # Excel's BOM
    assert list(rows[0])[:3] == ["device", "hostname", "group"]
    assert {r["hostname"]: r["group"] for r in rows} == {
        "fin-1": FINANCE, "fin-2": FINANCE, "eu-1": "sales-eu", "none-1": "",
    }  # fmt: skip
    code, out, _ = _cli(collector, capsys, "device", "list", "--group", " sales-eu ")
    assert code == 0
    header, *lines = out.splitlines()
    assert header.split()[:3] == ["DEVICE", "HOSTNAME", "GROUP"]
    assert [line.split()[:3] for line in lines] == [[ids["eu-1"], "eu-1", "sales-eu"]]
    code, out, err = _cli(collector, capsys, "device", "list", "--group", "hr")
    assert code == 0 and out.splitlines()[1:] == []
    assert f"no device is in group 'hr' (groups: sales-eu, {FINANCE})" in err
    viewer = collector.credential("Wang Fang (audit)", VIEWER)
    remote = collector.run(viewer, "device", "list", group=FINANCE)
    assert sorted(d["device"] for d in json.loads(remote.rows_json)) == sorted(
        [ids["fin-1"], ids["fin-2"]]
    )


def test_the_fleet_and_failing_reports_of_one_group(
    collector: AdminCollector, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`report fleet --group` counts only the group's devices, now and as of a date, and
    `report failing --group` lists only theirs; the viewer gets the same remotely."""
    agents = {host: enroll_agent(collector.live, tmp_path / host, host)
              for host in ("fin-1", "fin-2", "eu-1")}  # fmt: skip
    week_ago = dt.datetime.now(dt.UTC) - dt.timedelta(days=7)
    for host, agent in agents.items():
        with open_channel(agent.state, agent.enrollment) as channel:
            for at in (week_ago, None):  # fin-1's firewall has been off for a week
                send_report(channel, make_report(
                    agent.enrollment.device_id, at, firewall_enabled=host != "fin-1"))  # fmt: skip
    for host in ("fin-1", "fin-2"):
        assert _cli(collector, capsys, "device", "group",
                    agents[host].enrollment.device_id, FINANCE)[0] == 0  # fmt: skip

    def firewall(*extra: str) -> dict[str, object]:
        code, out, _ = _cli(collector, capsys, "report", "fleet", "--format", "json", *extra)
        assert code == 0
        rows: list[dict[str, object]] = json.loads(out)
        (row,) = [r for r in rows if r["check"] == "firewall"]
        return row

    assert (firewall()["devices"], firewall()["fail"], firewall()["pass"]) == (3, 1, 2)
    finance = firewall("--group", FINANCE)
    assert (finance["devices"], finance["fail"]) == (2, 1)
    assert firewall("--group", "sales-eu")["fail"] == 0
    then = firewall("--group", FINANCE, "--as-of", dt.datetime.now(dt.UTC).isoformat())
    assert (then["devices"], then["fail"]) == (2, 1)  # judged from the history
    code, out, _ = _cli(collector, capsys, "report", "failing", "--group", "sales-eu",
                        "--format", "json")  # fmt: skip
    assert code == 0 and json.loads(out) == []
    viewer = collector.credential("Wang Fang (audit)", VIEWER)
    remote = collector.run(viewer, "report", "failing", group=FINANCE)
    assert [r["device"] for r in json.loads(remote.rows_json)] == [
        agents["fin-1"].enrollment.device_id
    ]
    code, out, _ = _cli(collector, capsys, "report", "fleet", "--group", "hr")
    assert code == 0 and out.startswith("no device is in group 'hr'")  # not a table of zeros


# A SQLite file's migration from an older schema (PostgreSQL databases start at the current one).
@pytest.mark.sqlite_only
def test_schema_6_is_upgraded_keeping_everything_with_no_groups(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "db.sqlite"
    database_at_version(path, 6, monkeypatch)
    raw = sqlite3.connect(path)
    raw.execute(
        "INSERT INTO enrollment_tokens(token_id, secret_hash, created_us, expires_us, uses_left)"
        " VALUES ('t1', 'hash', 1, 2000000000000000, 3)"
    )
    raw.execute(
        "INSERT INTO devices(device_id, enrolled_us, token_id, cert_serial, cert_not_after_us,"
        " hostname, os_family) VALUES ('d1', 1, 't1', 'abc', 2000000000000000, 'laptop-1',"
        " 'linux')"
    )
    raw.commit()
    raw.close()
    upgraded = Store.open(path)
    try:
        version = upgraded._db.execute("SELECT version FROM schema_version").fetchone()[0]
        assert version == store_module.SCHEMA_VERSION == 32
        (device,) = upgraded.identity.devices()
        assert (device.device_id, device.hostname, device.os_family, device.group) == (
            "d1", "laptop-1", "linux", "",
        )  # fmt: skip
        (token,) = upgraded.identity.tokens()
        assert (token.token_id, token.uses_left, token.group) == ("t1", 3, "")
        assert upgraded.identity.set_device_group("d1", FINANCE, utcnow()) == ""
        assert [d.device_id for d in upgraded.identity.devices(group=FINANCE)] == ["d1"]
        plan = " ".join(str(row[3]) for row in upgraded._db.execute(
            "EXPLAIN QUERY PLAN SELECT device_id FROM devices WHERE device_group = ?"
            " ORDER BY device_id", (FINANCE,)))  # fmt: skip
        assert "devices_by_group" in plan
    finally:
        upgraded.close()
