"""`audit verify` has a large chain member inflated and hashed by a process beside its walk
(`collector/evidence/member_bytes.py`). Held here: the verdict is the same, word for word and
in the same order, whether the chain's bytes came from beside the walk or from its own
process, on a bundle as exported and on bundles whose `chain.jsonl` was tampered with by a
forger who holds the signing key; a damaged member is named unreadable alike; a reading
process that is killed stops the verification with an error that is not a verdict. Real
bundles of a real store (the fixture of `test_verify_beside`)."""

from __future__ import annotations

import base64
import json
import os
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from devposture.collector import child_start
from devposture.collector.evidence import bundle, member_bytes
from devposture.collector.evidence.member_lines import BundleUnreadable
from tests.collector.read_beside import (
    alike,
    damaged,
    forged_alike,
    unguarded_run,
    verdicts_two_ways,
)
from tests.collector.test_verify_beside import exported

__all__ = ["exported"]  # the module's fixture, used here


def _verdicts(path: Path, key_folder: Path, monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The verdict with the chain's bytes read in the walk's process, then beside it."""
    return verdicts_two_ways(path, key_folder, monkeypatch, member_bytes, member_bytes.Here,
                             member_bytes.Beside)  # fmt: skip


def _lines(members: dict[str, bytes]) -> list[bytes]:
    return members[bundle.CHAIN].splitlines(keepends=True)


def _edit_a_payload(members: dict[str, bytes]) -> None:
    lines = _lines(members)
    entry = json.loads(lines[30])
    entry["payload"] = entry["payload"].replace("PASS", "FAIL", 1).replace("FAIL", "PASS", 1)
    entry["at_us"] += 1
    lines[30] = bundle.jsonl(entry)
    members[bundle.CHAIN] = b"".join(lines)


def _drop_a_line(members: dict[str, bytes]) -> None:
    lines = _lines(members)
    del lines[50]
    members[bundle.CHAIN] = b"".join(lines)


def _swap_two_lines(members: dict[str, bytes]) -> None:
    lines = _lines(members)
    lines[60], lines[61] = lines[61], lines[60]
    members[bundle.CHAIN] = b"".join(lines)


def _not_json(members: dict[str, bytes]) -> None:
    lines = _lines(members)
    lines.insert(70, b"{not json\n")
    members[bundle.CHAIN] = b"".join(lines)


def _cut_off_the_end(members: dict[str, bytes]) -> None:
    members[bundle.CHAIN] = members[bundle.CHAIN][: len(members[bundle.CHAIN]) * 2 // 3]


TAMPERED = [_edit_a_payload, _drop_a_line, _swap_two_lines, _not_json, _cut_off_the_end]


def test_a_bundle_as_exported_verifies_alike_with_its_chain_read_beside_or_not(
    exported: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    folder, path = exported
    here = alike(_verdicts, path, folder, monkeypatch)
    assert here[0] is True, here


@pytest.mark.parametrize("tamper", TAMPERED, ids=lambda f: f.__name__.strip("_"))
def test_a_tampered_chain_gets_the_same_verdict_read_beside_or_not(
    exported: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
    tamper: Callable[[dict[str, bytes]], None],
) -> None:  # fmt: skip
    folder, path = exported
    here = forged_alike(_verdicts, path, folder, monkeypatch, tamper, tmp_path / "forged.zip")
    assert here[0] is False and here[1], f"{tamper.__name__} went unseen"


def test_a_damaged_chain_member_is_named_unreadable_alike(
    exported: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Bytes flipped inside the member's deflate stream: the inflate or the CRC-32 fails in
    the reading process, and the walk raises it after the bytes read before it."""
    folder, path = exported
    here = alike(_verdicts, damaged(path, bundle.CHAIN, tmp_path / "damaged.zip"), folder,
                 monkeypatch)  # fmt: skip
    assert any("is not a readable audit bundle" in p for p in here[1])


def test_a_chain_reading_process_killed_stops_the_verification_without_a_verdict(
    tmp_path: Path,
) -> None:
    """A member of 32 MB that the socket's buffers cannot hold: the process is still sending
    when it is killed, after its first chunk."""
    path = tmp_path / "large.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        archive.writestr(bundle.CHAIN, base64.b64encode(os.urandom(24 << 20)))
    with zipfile.ZipFile(path) as archive:
        reader = member_bytes.Beside(path, bundle.CHAIN, archive)
        try:
            assert reader.read()  # it started and sent its first chunk
            reader._process.kill()  # the fault this test is about
            reader._process.join()
            with pytest.raises(BundleUnreadable) as raised:
                while reader.read():
                    pass
        finally:
            reader.close()
    said = str(raised.value)
    assert "the process reading chain.jsonl beside the check ended (killed by SIGKILL)" in said
    assert "run `audit verify` again" in said


def test_the_chain_is_read_beside_only_when_large(exported: tuple[Path, Path]) -> None:
    _, path = exported
    with zipfile.ZipFile(path) as archive:
        assert archive.getinfo(bundle.CHAIN).file_size < member_bytes.BESIDE_FROM
        reader = member_bytes.opened(archive, path, bundle.CHAIN)
        assert isinstance(reader, member_bytes.Here)
        reader.close()


def test_the_bytes_from_beside_are_the_members_and_so_is_the_digest(
    exported: tuple[Path, Path],
) -> None:
    _, path = exported
    with zipfile.ZipFile(path) as archive:
        whole = archive.read(bundle.CHAIN)
        beside = member_bytes.Beside(path, bundle.CHAIN, archive)
        try:
            chunks = []
            while chunk := beside.read():
                chunks.append(bytes(chunk))
            digest = beside.digest()
        finally:
            beside.close()
        here = member_bytes.Here(archive, bundle.CHAIN)
        assert b"".join(chunks) == whole
        assert digest == here.digest()
        assert len(chunks) == -(-len(whole) // member_bytes.CHUNK)


def test_a_script_without_the_main_guard_gets_its_chain_read_in_its_own_process(
    exported: tuple[Path, Path], tmp_path: Path
) -> None:
    if child_start.cores_usable() < 2:
        pytest.skip("one core: the chain is read in the walk's process anyway")
    folder, path = exported
    lines = unguarded_run("member_bytes", folder, path, tmp_path)
    assert lines[0] == "reader Beside"  # a process beside was asked for
    assert lines[-1] == "verdict True 0"
