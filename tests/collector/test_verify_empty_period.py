"""`audit verify` of a bundle whose period holds no chain entry at all: a real export of a
period before anything was written, by a collector whose chain holds entries since. The
verdict line said "chain seq —–—" (an em dash, an en dash and an em dash) and a "last hash"
that was the hash before the period, the export "0 records (no records)"; both say in words
that the chain holds nothing for it."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from devposture.collector.evidence import bundle
from tests.collector.cli_fleet import CliFleet, cli_fleet
from tests.collector.test_company_time_cli import Run, run

__all__ = ["cli_fleet", "run"]  # fixtures, used here too


@pytest.fixture
def empty_bundle(cli_fleet: CliFleet, run: Run, tmp_path: Path) -> tuple[Path, Path]:
    """The export of 2026-01-01 (Beijing), before the fleet's reports, and the public key."""
    out = tmp_path / "new-year.zip"
    code, said, err = run("audit", "export", "--data", str(cli_fleet.data), "--from",
                          "2026-01-01", "--to", "2026-01-02", "--out", str(out))  # fmt: skip
    assert code == 0, err
    # It said "0 records (no records)".
    assert said.startswith(f"wrote {out}: 0 records (the evidence chain holds no entry for this"
                           " period) written 2026-01-01 00:00 (UTC+08:00) – "), said
    with zipfile.ZipFile(out) as archive:
        chain = json.loads(archive.read(bundle.MANIFEST))["chain"]
    assert chain["first_seq"] is None and chain["last_seq"] is None and chain["head_seq"] > 0
    key = tmp_path / "key.pem"
    code, pem, err = run("audit", "public-key", "--data", str(cli_fleet.data))
    assert code == 0, err
    key.write_text(pem, encoding="utf-8")
    return out, key


def test_an_empty_period_is_verified_saying_the_chain_holds_nothing_for_it(
    empty_bundle: tuple[Path, Path], run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    out, key = empty_bundle
    monkeypatch.setenv("LANG", "C.UTF-8")
    monkeypatch.delenv("LANGUAGE", raising=False)
    code, english, err = run("audit", "verify", str(out), "--public-key", str(key))
    assert code == 0, err
    line = english.splitlines()[0]
    assert line.startswith(
        "VERIFIED: 0 records (the evidence chain holds no entry for this period) written"
        " 2026-01-01 00:00 (UTC+08:00) – 2026-01-02 00:00 (UTC+08:00), signed by sha256:"
    ), line
    assert "—" not in english and "last hash" not in english
    monkeypatch.setenv("LANG", "zh_CN.UTF-8")
    code, chinese, err = run("audit", "verify", str(out), "--public-key", str(key))
    assert code == 0, err
    assert chinese.startswith("已验证：") and "—" not in chinese, chinese
    assert "2026-01-01 00:00（UTC+08:00）" in chinese, chinese
