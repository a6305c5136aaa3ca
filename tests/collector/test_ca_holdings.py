"""Each collector says which CAs its `ca/` folder holds (schema 29), and a CA rollover run
from any collector sees the others: `activate` refuses while a serving collector does not
trust the new CA (it would hand agents only the previous one at renewal), `finish` while one
does not both sign with it and present a server certificate from it; `status` names them.

Real CAs and data folders on both database engines; on PostgreSQL a real `serve` process
joined to the collector that runs the rollover, whose `ca/` IT copies (or forgets to)."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from devposture.collector import cli_pki
from devposture.collector.ca_holdings import behind_by, collector_key
from devposture.collector.clock import utcnow
from devposture.collector.config import CollectorConfig
from devposture.collector.datadir import initialize
from devposture.collector.pki import fingerprint
from devposture.collector.store import Store
from devposture.collector.store.identity import CaHolding
from devposture.collector.trust import Stage, Trust, TrustError
from tests.collector.joined_collectors import COLLECTOR, rollover, second_serving
from tests.databases import collector_database, on_postgresql
from tests.waiting import wait_until


def _folder(tmp_path: Path) -> tuple[CollectorConfig, str]:
    config, ca = initialize(tmp_path / "a", "127.0.0.1", database=collector_database())
    return config, fingerprint(ca)


def _say(config: CollectorConfig, holding: CaHolding) -> None:
    store = Store.open(config.database)
    try:
        store.identity.keep_ca_holding(holding)
    finally:
        store.close()


def _other(name: str, trusted: tuple[str, ...], signing: str, server: str | None,
           seen: dt.datetime | None = None) -> CaHolding:  # fmt: skip
    return CaHolding(f"{name}/0123abcd", name, f"{name}:50052", signing, trusted, server,
                     seen or utcnow())  # fmt: skip


def _status(config: CollectorConfig, capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    assert cli_pki.main(["ca", "rollover", "status", "--data", str(config.data_dir)]) == 0
    return capsys.readouterr().out


def test_activate_and_finish_wait_for_each_serving_collector_that_lacks_the_new_ca(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, old = _folder(tmp_path)
    trust = Trust(config)
    _, staged = trust.stage_rollover()
    new = fingerprint(staged)
    # This collector's own row, stale: its folder is read directly instead.
    _say(config, CaHolding(collector_key(config), "self", "self:1", old, (old,), old, utcnow()))
    _say(config, _other("pc-b", (old,), old, old))
    # Stopped an hour ago: named by status, not waited for.
    _say(config, _other("pc-gone", (old,), old, old, utcnow() - dt.timedelta(hours=1)))

    with pytest.raises(TrustError) as refused:
        trust.activate_rollover()
    text = str(refused.value)
    assert "Not every collector on this database holds the new CA yet (1 without it)" in text
    assert "pc-b (pc-b:50052)" in text and "trusts CA 1 (sha256:" in text
    assert "pc-gone" not in text and "self" not in text
    assert "Copy this collector's ca/ folder to each of them" in text
    assert trust.authorities().stage == Stage.STAGED
    shown = _status(config, capsys)
    assert "Not every collector on this database holds the new CA yet (1 without it)" in shown
    assert "pc-b (pc-b:50052)" in shown
    assert "have not said which CAs they hold for over two minutes (stopped?): 1." in shown
    assert "pc-gone (pc-gone:50052), last said at" in shown

    # IT copied ca/ to it: it trusts both, still signs with the previous CA.
    _say(config, _other("pc-b", (old, new), old, old))
    trust.activate_rollover()
    assert trust.authorities().stage == Stage.ACTIVATED

    with pytest.raises(TrustError) as refused:
        trust.finish_rollover()
    text = str(refused.value)
    assert "presents a server certificate from it (1 not yet)" in " ".join(text.split())
    assert "pc-b (pc-b:50052)" in text and "signs with CA 1 (sha256:" in text
    assert "then run `devposture-collector tls rotate` there" in text
    # ca/ copied again after activate: it signs with the new CA, its server certificate is
    # still the previous CA's until `tls rotate` runs there.
    _say(config, _other("pc-b", (old, new), new, old))
    with pytest.raises(TrustError, match=r"its server certificate is from CA 1 \(sha256:"):
        trust.finish_rollover()
    assert "pc-b (pc-b:50052)" in _status(config, capsys)
    _say(config, _other("pc-b", (old, new), new, None))  # one no CA of its folder signed
    with pytest.raises(TrustError, match="its server certificate is from an unknown CA"):
        trust.finish_rollover()
    _say(config, _other("pc-b", (old, new), new, new))
    assert "pc-b (pc-b:50052)" not in _status(config, capsys)
    trust.finish_rollover()
    assert trust.authorities().stage == Stage.STEADY


def test_force_goes_past_the_collectors_as_past_the_devices(tmp_path: Path) -> None:
    config, old = _folder(tmp_path)
    trust = Trust(config)
    trust.stage_rollover()
    _say(config, _other("pc-b", (old,), old, old))
    trust.activate_rollover(force=True)
    trust.finish_rollover(force=True)
    assert trust.authorities().stage == Stage.STEADY


# --- real collectors on one PostgreSQL -------------------------------------------------------


def _said_or_none(first: CollectorConfig, second: CollectorConfig) -> CaHolding | None:
    others, _ = Trust(first).other_collectors(utcnow())
    return next((h for h in others if h.collector == collector_key(second)), None)


def _said(first: CollectorConfig, second: CollectorConfig) -> CaHolding:
    """What collector `second` said its folder holds, as `first` reads it."""
    found = _said_or_none(first, second)
    assert found is not None
    return found


@pytest.mark.skipif(
    not on_postgresql(), reason="several collectors share PostgreSQL: the PostgreSQL leg runs it"
)
def test_a_serving_collector_that_missed_the_ca_copy_holds_activate_and_finish_back(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Collector A runs the rollover; B, a `serve` process joined to it, says what its own
    folder holds. Without the copy after `stage`, activate names B; without the copy after
    `activate`, or without `tls rotate` on B, finish names B. B says each change it sees."""
    with second_serving(tmp_path) as pair:
        first, first_ca, second = pair.first, pair.first_ca, pair.second
        report_port = pair.report_port
        old = fingerprint(first_ca)
        wait_until(lambda: _said_or_none(first, second) is not None, "b saying what it holds")
        assert _said(first, second) == CaHolding(
            collector_key(second), _said(first, second).host, f"127.0.0.1:{report_port}",
            old, (old,), old, _said(first, second).seen,
        )  # fmt: skip

        assert rollover("stage", first, capsys)[0] == 0
        new = fingerprint(Trust(first).ca_cert(2))
        code, _, err = rollover("activate", first, capsys)
        assert code == 1
        assert "Not every collector on this database holds the new CA yet (1 without it)" in err
        assert f"(127.0.0.1:{report_port})" in err
        assert Trust(first).authorities().stage == Stage.STAGED
        shutil.copytree(first.data_dir / "ca", second.data_dir / "ca", dirs_exist_ok=True)
        wait_until(lambda: new in _said(first, second).trusted, "b saying it trusts the new CA")
        code, _, err = rollover("activate", first, capsys)
        assert code == 0, err

        code, _, err = rollover("finish", first, capsys)
        assert code == 1
        assert f"(127.0.0.1:{report_port})" in err and "signs with CA 1" in err
        shutil.copytree(first.data_dir / "ca", second.data_dir / "ca", dirs_exist_ok=True)
        wait_until(lambda: _said(first, second).signing == new, "b saying it signs with CA 2")
        code, _, err = rollover("finish", first, capsys)
        assert code == 1
        assert "its server certificate is from CA 1" in err
        assert cli_pki.main(["tls", "rotate", "--data", str(second.data_dir)]) == 0
        wait_until(lambda: _said(first, second).server_issuer == new, "b's new server cert")
        code, _, err = rollover("finish", first, capsys)
        assert code == 0, err
        assert Trust(first).authorities().stage == Stage.STEADY


# --- a collector started again after missing the others' rollover --------------------------


def test_behind_is_told_only_to_the_collector_holding_the_older_ca() -> None:
    # Generations as this folder knows them: CA 1 (retired after a finish) and CA 2.
    one, two, three = "sha256:" + "1" * 64, "sha256:" + "2" * 64, "sha256:" + "3" * 64
    known = {one: 1, two: 2}
    now = utcnow()

    def holding(trusted: tuple[str, ...], signing: str, server: str) -> CaHolding:
        return CaHolding("me/0123abcd", "me", "me:50052", signing, trusted, server, now)

    steady_on_two = _other("pc-b", (two,), two, two)
    # Stopped through a whole rollover elsewhere: it trusts and signs with CA 1 only.
    assert len(behind_by(holding((one,), one, one), [steady_on_two], known)) == 3
    # Its ca/ copied after `stage` but not after `activate`, and `finish` run with --force.
    told = behind_by(holding((one, two), one, one), [steady_on_two], known)
    assert [str(line).split(", ")[0] for line in told] == [
        "  pc-b (pc-b:50052) no longer trusts CA 1 (sha256:11111111…)"] * 2  # fmt: skip
    # Copied, but `tls rotate` not run: only its server certificate is behind.
    assert len(behind_by(holding((two,), two, one), [steady_on_two], known)) == 1
    # A CA this folder never had (a later rollover's): newer, so this one is behind.
    assert len(behind_by(holding((two,), two, two), [_other("pc-b", (three,), three, three)],
                         known)) == 3  # fmt: skip
    # Not behind: in step; mid-rollover (CA 2 staged elsewhere, or signing there and trusted
    # here); and the collector ahead, whose `activate --force` another missed.
    for mine, other in (
        (holding((two,), two, two), steady_on_two),
        (holding((one,), one, one), _other("pc-b", (one, two), one, one)),
        (holding((one, two), one, one), _other("pc-b", (one, two), two, two)),
        (holding((one, two), two, two), _other("pc-b", (one,), one, one)),
        (holding((two,), two, two), _other("pc-b", (one,), one, one)),
    ):
        assert behind_by(mine, [other], known) == [], (mine, other)
    # What could not be read is not taken for another CA.
    assert behind_by(holding((), one, one), [_other("pc-b", (two,), two, two)], {}) != []
    assert behind_by(holding((one,), one, one), [CaHolding(
        "pc-b/0", "pc-b", "pc-b:1", None, (), None, now)], known) == []  # fmt: skip


def _serve_refused(config: CollectorConfig, environment: dict[str, str]) -> str:
    """`serve` on `config`'s folder, which must refuse to start: its standard error."""
    ready = config.data_dir.parent / "ready.json"
    process = subprocess.run(
        [COLLECTOR, "serve", "--data", str(config.data_dir), "--ready-file", str(ready),
         "--enroll-port", "0", "--report-port", "0", "--admin-port", "0",
         "--metrics-port", "0", "--web-port", "0"],
        check=False, capture_output=True, text=True, timeout=120, env=environment,
    )  # fmt: skip
    assert process.returncode == 1, process.stderr[-3000:]
    assert not ready.exists()
    return process.stderr


def test_a_collector_whose_ca_missed_the_others_rollover_is_refused_at_start(
    tmp_path: Path,
) -> None:
    # Collector B was stopped while the others rolled the CA over to one it never got; they
    # serve now with it. Started again, B would refuse every agent they renewed and sign
    # certificates they refuse. It is refused at start, told what differs and the fix.
    config, old = _folder(tmp_path)
    _, elsewhere = initialize(tmp_path / "other", "127.0.0.1", database=collector_database())
    newer = fingerprint(elsewhere)  # a CA this folder never had
    _say(config, _other("pc-b", (newer,), newer, newer))
    english = _serve_refused(config, {**os.environ, "LANG": "C.UTF-8"})
    text = " ".join(english.split())
    assert "This collector's ca/ folder is behind the CA rollover of the other collectors" in text
    assert "pc-b (pc-b:50052) signs with sha256:" in text and "does not trust" in text
    assert "no longer trusts CA 1 (sha256:" in text
    assert f"Copy the ca/ folder of a collector serving now to {config.data_dir / 'ca'}" in text
    assert "`devposture-collector tls rotate --data" in text
    chinese = _serve_refused(config, {**os.environ, "LANG": "zh_CN.UTF-8"})
    assert "pc-b（pc-b:50052）用 sha256:" in chinese and "再重新启动本采集器" in chinese
    assert "behind the CA rollover" not in chinese

    # Stopped longer than two minutes ago, it is not serving: nothing to be behind.
    _say(config, _other("pc-b", (newer,), newer, newer, utcnow() - dt.timedelta(hours=1)))
    ready = tmp_path / "served.json"
    process = subprocess.Popen(
        [COLLECTOR, "serve", "--data", str(config.data_dir), "--ready-file", str(ready),
         "--enroll-port", "0", "--report-port", "0", "--admin-port", "0",
         "--metrics-port", "0", "--web-port", "0"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_until(lambda: ready.exists() or process.poll() is not None, "serving")
        assert process.poll() is None, process.communicate()[1][-3000:]
        assert _said_or_none(Trust(config).config, config) is None  # its own row is left out
        assert [h.signing for h in Trust(config).other_collectors(utcnow())[0]] == [newer]
    finally:
        process.terminate()
        _, err = process.communicate(timeout=60)
    assert process.returncode == 0, err[-3000:]
    assert old != newer
