"""Each device certificate records the CA that signed it (schema 28), and `ca rollover finish`
waits by that CA, not by when a certificate was issued: a collector that still signs with the
previous CA after another activated the new one (several collectors on one PostgreSQL, its
`ca/` folder not copied yet) issues certificates dated after the activation that only the
previous CA verifies, and finishing then cut those devices off.

Real CAs and certificates, a real collector over real mutual TLS (the in-process one, and on
PostgreSQL a second `serve` process joined to the first), both database engines."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import pytest
from cryptography import x509

from devposture.agent.enroll import enroll
from devposture.agent.renewal import Outcome, ensure_fresh_certificate
from devposture.agent.state import AgentState
from devposture.collector import cli_pki
from devposture.collector.cli import main as collector_cli
from devposture.collector.clock import utcnow
from devposture.collector.config import load
from devposture.collector.issuing_ca import short_fingerprint
from devposture.collector.pki import Authority, fingerprint
from devposture.collector.store import Store
from devposture.collector.store.identity import REVOKED, DeviceRecord, HeldBack
from devposture.collector.store.schema import SCHEMA_VERSION
from devposture.collector.tokens import new_token
from devposture.collector.trust import Stage, Trust, TrustError
from devposture.net.address import CollectorAddress
from devposture.net.pinning import fingerprint as pin_of
from tests.collector.joined_collectors import copy_ca, rollover, second_serving
from tests.collector.test_trust import connect, device_cert, report_ok, wait_for
from tests.conftest import EnrolledAgent, LiveCollector, enroll_agent, host_info
from tests.databases import fresh_database, on_postgresql, raw
from tests.waiting import wait_until

T0 = dt.datetime(2026, 12, 1, 8, 0, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)
# Two real CAs, as `init` and `ca rollover stage` make them.
OLD_FP = fingerprint(Authority.create("devposture collector CA").cert)
NEW_FP = fingerprint(Authority.create("devposture collector CA 2").cert)


def _issuer(store: Store, device_id: str, generation: int) -> str | None:
    row = store._db.execute(
        "SELECT issuer FROM device_certificates WHERE device_id = ? AND generation = ?",
        (device_id, generation),
    ).fetchone()
    return None if row[0] is None else str(row[0])


def _cert(agent: EnrolledAgent) -> x509.Certificate:
    return x509.load_pem_x509_certificate(agent.state.cert_path.read_bytes())


def _renew_and_use(agent: EnrolledAgent) -> x509.Certificate:
    """Renew as the agent does by itself, then report with the new certificate."""
    renewed = ensure_fresh_certificate(agent.state, agent.enrollment, utcnow(), force=True)
    assert renewed.outcome is Outcome.RENEWED
    assert report_ok(agent)
    return _cert(agent)


# --- the store: what each certificate records, and what `finish` waits for ---------------


def _enroll(store: Store, device_id: str, serial: str, at: dt.datetime, issuer: str | None,
            days: int = 14) -> None:  # fmt: skip
    token = new_token()
    store.identity.add_token(token, at, at + DAY, 1)
    store.identity.enroll(
        token,
        at,
        DeviceRecord(device_id, serial, at + days * DAY, hostname=f"pc-{device_id}", issuer=issuer),
    )


def _renew(store: Store, device_id: str, serial: str, at: dt.datetime, issuer: str | None,
           used: bool = True, days: int = 14) -> None:  # fmt: skip
    store.identity.record_renewal(device_id, serial, at + days * DAY, at, action="renewed",
                                  issuer=issuer)  # fmt: skip
    if used:
        store.identity.admit(device_id, serial, at + dt.timedelta(minutes=1))


def test_finish_waits_for_every_certificate_the_new_ca_did_not_sign_by_its_recorded_ca(
    store: Store,
) -> None:
    """Activated at T0 + 1 day; asked at T0 + 3 days. A device is through once it has used a
    certificate of a later generation that the new CA signed; anything else that has not
    expired holds finish back, whenever it was issued."""
    activated = T0 + DAY
    now = T0 + 3 * DAY
    after = activated + dt.timedelta(hours=2)
    for device in ("through", "waiting", "stale", "stale-unused", "unknown", "unknown-through",
                   "revoked", "expired", "new-unused"):  # fmt: skip
        # Each enrolled from the previous CA before the activation (or, for the unknown ones,
        # before schema 28: the database holds no CA for them).
        issuer = None if device.startswith("unknown") else OLD_FP
        days = 1 if device == "expired" else 14
        _enroll(store, device, f"{device}-1", T0, issuer, days=days)
        store.identity.admit(device, f"{device}-1", T0 + dt.timedelta(minutes=1))
    _renew(store, "through", "through-2", after, NEW_FP)
    _renew(store, "unknown-through", "unknown-through-2", after, NEW_FP)
    # A collector still signing with the previous CA after the activation: its certificate
    # is dated after it, and the previous CA signed it.
    _renew(store, "stale", "stale-2", after, NEW_FP)
    _renew(store, "stale", "stale-3", after + DAY, OLD_FP)
    # The same, never used (its answer may have been lost, or the agent holds it still).
    _renew(store, "stale-unused", "stale-unused-2", after, NEW_FP)
    _renew(store, "stale-unused", "stale-unused-3", after + DAY, OLD_FP, used=False)
    _renew(store, "new-unused", "new-unused-2", after, NEW_FP, used=False)
    assert store.identity.set_device_status("revoked", REVOKED, after, "lost")

    held = store.identity.held_by_other_cas(NEW_FP, now)
    assert held == [
        HeldBack("stale", "pc-stale", after + DAY + 14 * DAY, OLD_FP, after + DAY),
        HeldBack("stale-unused", "pc-stale-unused", after + DAY + 14 * DAY, OLD_FP, after + DAY),
        HeldBack("new-unused", "pc-new-unused", T0 + 14 * DAY, OLD_FP, T0),
        HeldBack("unknown", "pc-unknown", T0 + 14 * DAY, None, T0),
        HeldBack("waiting", "pc-waiting", T0 + 14 * DAY, OLD_FP, T0),
    ]
    # By the time of issue alone (how finish judged before schema 28), the stale devices
    # pass: each used a certificate issued after the activation.
    by_time = {n.device_id for n in store.identity.not_renewed_since(activated, now)}
    assert by_time == {"new-unused", "unknown", "waiting"}
    # Once every certificate held back has expired, nothing is.
    assert store.identity.held_by_other_cas(NEW_FP, after + 16 * DAY) == []


def test_a_certificate_recorded_before_schema_28_gets_its_ca_when_its_device_presents_it(
    store: Store,
) -> None:
    """The database kept serials only: the CA of an older row is told from the certificate
    the device presents, once; an allowed device is then answered without asking again."""
    _enroll(store, "d1", "s1", T0, None)
    store.identity.admit("d1", "s1", T0 + dt.timedelta(minutes=1))  # in use before the upgrade
    asked: list[str] = []

    def verified() -> str | None:
        asked.append("asked")
        return OLD_FP

    # A reading connection leaves the write to the writer's.
    assert store.identity.admit("d1", "s1", T0 + DAY, read_only=True, issuer=verified) is None
    admitted = store.identity.admit("d1", "s1", T0 + DAY, issuer=verified)
    assert admitted.verdict.value == "allowed"
    assert _issuer(store, "d1", 1) == OLD_FP
    asked.clear()
    again = store.identity.admit("d1", "s1", T0 + DAY, read_only=True, issuer=verified)
    assert again is not None and again.verdict.value == "allowed" and asked == []
    # One no CA verifies stays not recorded, and is not a write to wait for.
    _enroll(store, "d2", "s2", T0, None)
    store.identity.admit("d2", "s2", T0 + dt.timedelta(minutes=1))
    unverified = store.identity.admit("d2", "s2", T0 + DAY, read_only=True, issuer=lambda: None)
    assert unverified is not None and unverified.verdict.value == "allowed"
    assert _issuer(store, "d2", 1) is None


def test_a_database_of_schema_27_is_upgraded_with_every_certificate_s_ca_not_recorded(
    tmp_path: Path,
) -> None:
    """Schema 27 had no column for it; the upgrade adds it (SQLite by its step 28, PostgreSQL
    by its schema run again) and claims nothing for the rows already there."""
    target = fresh_database(tmp_path)
    store = Store.open(target)
    try:
        _enroll(store, "d1", "s1", T0, OLD_FP)
    finally:
        store.close()
    older = raw(target)
    try:
        with older.transaction() as cursor:
            cursor.execute("ALTER TABLE device_certificates DROP COLUMN issuer")
            cursor.execute("UPDATE schema_version SET version = 27")
    finally:
        older.close()
    store = Store.open(target)
    try:
        (version,) = store._db.execute("SELECT version FROM schema_version").fetchone()
        assert version == SCHEMA_VERSION
        assert _issuer(store, "d1", 1) is None
        (device,) = store.identity.devices()
        assert device.issuer is None
        assert [h.device_id for h in store.identity.held_by_other_cas(NEW_FP, T0)] == ["d1"]
        _renew(store, "d1", "s2", T0 + DAY, NEW_FP)
        assert _issuer(store, "d1", 2) == NEW_FP
        assert store.identity.held_by_other_cas(NEW_FP, T0 + DAY) == []
    finally:
        store.close()


# --- one collector, over real mutual TLS ---------------------------------------------------


def _device_json(live: LiveCollector, device_id: str, capsys: pytest.CaptureFixture[str],
                 *command: str) -> list[dict[str, object]]:  # fmt: skip
    data = str(live.config.data_dir)
    assert collector_cli([*command, "--data", data, "--format", "json"]) == 0
    rows: list[dict[str, object]] = json.loads(capsys.readouterr().out)
    return [r for r in rows if r["device"] == device_id]


def _edit(live: LiveCollector, sql: str, parameters: tuple[object, ...]) -> None:
    """A row changed beside the collector, as an operator's SQL (or an upgrade) leaves it."""
    database = raw(live.config.database)
    try:
        with database.transaction() as cursor:
            cursor.execute(sql, parameters)
    finally:
        database.close()


def _table(live: LiveCollector, capsys: pytest.CaptureFixture[str], *command: str) -> str:
    assert collector_cli([*command, "--data", str(live.config.data_dir)]) == 0
    return capsys.readouterr().out


def test_each_certificate_records_the_ca_that_signed_it_and_device_list_names_it(
    live_collector: LiveCollector, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trust = Trust(live_collector.config)
    first_ca = fingerprint(trust.signing_authority().cert)
    agent = enroll_agent(live_collector, tmp_path / "agent", "pc-1")
    device_id = agent.enrollment.device_id
    assert report_ok(agent)
    generation, new_ca = trust.stage_rollover()
    staged = Authority.load(trust.key_path(generation).read_bytes(),
                            trust.cert_path(generation).read_bytes())  # fmt: skip
    wait_for(lambda: connect(live_collector.report_port, device_cert(staged), tmp_path).accepted)
    _renew_and_use(agent)
    trust.activate_rollover()
    _renew_and_use(agent).verify_directly_issued_by(new_ca)
    store = live_collector.store()
    try:
        issuers = [_issuer(store, device_id, g) for g in (1, 2, 3)]
    finally:
        store.close()
    assert issuers == [first_ca, first_ca, fingerprint(new_ca)]

    # JSON keeps the whole fingerprint; a person's table names the CA and a short one.
    (row,) = _device_json(live_collector, device_id, capsys, "device", "list")
    assert row["certificate_ca"] == fingerprint(new_ca)
    short = short_fingerprint(fingerprint(new_ca))
    assert re.fullmatch(r"sha256:[0-9a-f]{8}…", short)
    assert f"CA 2 ({short})" in _table(live_collector, capsys, "device", "list")
    assert f"CA 2 ({short})" in _table(live_collector, capsys, "device", "show", device_id)
    status = cli_pki.main(
        ["ca", "rollover", "status", "--data", str(live_collector.config.data_dir)]
    )
    assert status == 0
    assert "Every active device uses a certificate from the new CA" in capsys.readouterr().out
    trust.finish_rollover()  # every certificate the previous CA signed has been replaced
    assert trust.authorities().stage == Stage.STEADY
    # Retired, the previous CA is still named by its generation.
    _edit(live_collector, "UPDATE device_certificates SET issuer = ? WHERE device_id = ?"
          " AND generation = 3", (first_ca, device_id))  # fmt: skip
    old_short = short_fingerprint(first_ca)
    assert f"CA 1 ({old_short})" in _table(live_collector, capsys, "device", "show", device_id)


def test_an_older_row_gets_its_ca_from_the_certificate_the_device_presents(
    live_collector: LiveCollector, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A row as an upgrade from schema 27 leaves it: `device show` says the CA is not
    recorded; at the device's next call the collector verifies the certificate it presents
    against its CAs and records the one that signed it."""
    agent = enroll_agent(live_collector, tmp_path / "agent", "pc-1")
    device_id = agent.enrollment.device_id
    _edit(live_collector, "UPDATE device_certificates SET issuer = NULL WHERE device_id = ?",
          (device_id,))  # fmt: skip
    (row,) = _device_json(live_collector, device_id, capsys, "device", "show", device_id)
    assert row["certificate_ca"] == ""
    shown = _table(live_collector, capsys, "device", "show", device_id)
    assert "not recorded (issued before this collector version recorded it)" in shown
    assert "not recorded" in _table(live_collector, capsys, "device", "list")

    assert report_ok(agent)
    (row,) = _device_json(live_collector, device_id, capsys, "device", "show", device_id)
    assert row["certificate_ca"] == live_collector.ca_fingerprint


# --- a collector that still signs with the previous CA (several on one PostgreSQL) ----------

@pytest.mark.skipif(
    not on_postgresql(), reason="several collectors share PostgreSQL: the PostgreSQL leg runs it"
)
def test_finish_refuses_while_a_collector_still_signs_with_the_previous_ca_after_activate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Collector A runs the rollover; collector B, a `serve` process joined to it, answers
    the agent. B's `ca/` is copied after `stage` but not after `activate`, so B goes on
    signing with the previous CA: the agent's renewal after the activation is the previous
    CA's, and `finish` names the device and what to do. Once B has the folder, the agent's
    next renewal is the new CA's, and `finish` goes on."""
    with second_serving(tmp_path) as pair:
        first, first_ca, second = pair.first, pair.first_ca, pair.second
        enroll_port, report_port = pair.enroll_port, pair.report_port
        token = new_token()
        store = Store.open(first.database)
        try:
            store.identity.add_token(token, utcnow(), utcnow() + DAY, 1)
        finally:
            store.close()
        state = AgentState(tmp_path / "agent")
        agent = EnrolledAgent(
            state,
            enroll(
                state,
                CollectorAddress("127.0.0.1", enroll_port),
                str(token),
                pin_of(first_ca),
                host_info("pc-li"),
            ),
        )
        device_id = agent.enrollment.device_id
        assert report_ok(agent)

        assert rollover("stage", first, capsys)[0] == 0
        copy_ca(first, second)
        new_ca = x509.load_pem_x509_certificate((first.data_dir / "ca" / "ca-2.crt").read_bytes())
        # B trusts both now; the agent renews through it and receives both.
        wait_for(lambda: connect(report_port, device_cert(Authority.load(
            (first.data_dir / "ca" / "ca-2.key").read_bytes(),
            (first.data_dir / "ca" / "ca-2.crt").read_bytes())), tmp_path).accepted)  # fmt: skip
        _renew_and_use(agent)
        # B says what its folder holds within a second or two of the copy (ca_holdings).
        wait_until(lambda: all(fingerprint(new_ca) in h.trusted
                               for h in Trust(first).other_collectors(utcnow())[0]),
                   "b saying it trusts the new CA")  # fmt: skip
        code, _, err = rollover("activate", first, capsys)
        assert code == 0, err
        # B was not given the new folder: it still signs with the previous CA.
        _renew_and_use(agent).verify_directly_issued_by(first_ca)

        code, _, err = rollover("finish", first, capsys)
        assert code == 1
        assert "1 active device may still be using a certificate signed by the previous CA" in err
        (line,) = [line for line in err.splitlines() if device_id in line]
        assert re.fullmatch(
            rf"  {device_id}  test-host  certificate from CA 1 \(sha256:[0-9a-f]{{8}}…\) issued"
            r" .+, after `activate`, valid until .+", line,
        ), line  # fmt: skip
        assert (
            "1 of them got a certificate from the previous CA after `activate`: a collector"
            " still signs with it. Copy this collector's ca/ folder to every other collector" in err
        )
        assert Trust(first).authorities().stage == Stage.ACTIVATED
        with pytest.raises(TrustError, match=device_id):
            Trust(first).finish_rollover()
        code, out, _ = rollover("status", first, capsys, "--devices")
        assert code == 0 and "1 of them got a certificate from the previous CA" in out
        assert any(device_id in line and "after `activate`" in line for line in out.splitlines())

        # IT copies the folder; the agent's next renewal is the new CA's.
        copy_ca(first, second)
        _renew_and_use(agent).verify_directly_issued_by(new_ca)
        # B's server certificate is still the previous CA's (ca_holdings): `tls rotate` there.
        assert cli_pki.main(["tls", "rotate", "--data", str(second.data_dir)]) == 0
        wait_until(lambda: all(h.server_issuer == fingerprint(new_ca)
                               for h in Trust(first).other_collectors(utcnow())[0]),
                   "b saying its server certificate is the new CA's")  # fmt: skip
        code, out, err = rollover("finish", first, capsys)
        assert code == 0, err
        assert Trust(first).authorities().stage == Stage.STEADY
    store = Store.open(load(first.data_dir).database)
    try:
        issuers = [_issuer(store, device_id, g) for g in (1, 2, 3, 4)]
    finally:
        store.close()
    old = fingerprint(first_ca)
    assert issuers == [old, old, old, fingerprint(new_ca)]


def test_a_reestablishment_records_the_ca_of_the_certificate_it_presents(
    live_collector: LiveCollector, tmp_path: Path
) -> None:
    """An agent back after its certificate expired presents that certificate on the
    enrollment port; a row whose CA is not recorded (issued before schema 28) gets it there,
    as a renewal's or a report's presented certificate does on the report port."""
    from tests.collector.test_identity_lifecycle import _expire_certificate  # noqa: PLC0415

    agent = enroll_agent(live_collector, tmp_path / "agent", "pc-1")
    device_id = agent.enrollment.device_id
    _expire_certificate(live_collector, agent)  # recorded as an older row: CA not recorded
    store = live_collector.store()
    try:
        assert _issuer(store, device_id, 2) is None
    finally:
        store.close()
    result = ensure_fresh_certificate(agent.state, agent.enrollment, utcnow())
    assert result.outcome is Outcome.REESTABLISHED, result.detail
    store = live_collector.store()
    try:
        presented, issued = _issuer(store, device_id, 2), _issuer(store, device_id, 3)
    finally:
        store.close()
    assert presented == live_collector.ca_fingerprint
    assert issued == live_collector.ca_fingerprint
