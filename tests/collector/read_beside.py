"""What the tests of a bundle member read beside `audit verify`'s walk share, whichever member
it is (`evidence/body_lines.py`: the report bodies; `evidence/member_bytes.py`: the chain's
bytes): the verdict read both ways and held the same (as exported, tampered and signed again,
damaged), a member whose deflate stream is damaged, and an auditor's script without the main
guard. Each module has a `BESIDE_FROM` size and an `opened` that
picks where the member is read."""

from __future__ import annotations

import struct
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from devposture.collector.evidence import signing, verify
from tests.collector.bundle_members import members_of, resigned


def verdicts_two_ways(
    path: Path, key_folder: Path, monkeypatch: pytest.MonkeyPatch, module: ModuleType,
    here: type, beside: type,
) -> list[tuple[Any, ...]]:  # fmt: skip
    """The verdict with `module`'s member read in the walk's process (as `here`), then beside
    it (as `beside`): each as whether it passed, its problems, notes and summary, and its
    words in Chinese."""
    key = signing.load_or_create(key_folder).public_key()
    found: list[tuple[Any, ...]] = []
    real = module.opened
    for beside_from, reader in ((1 << 62, here), (0, beside)):
        monkeypatch.setattr(module, "BESIDE_FROM", beside_from)
        started: list[type] = []

        def opened(*args: Any, started: list[type] = started) -> object:
            made = real(*args)
            started.append(type(made))
            return made

        monkeypatch.setattr(module, "opened", opened)
        verdict = verify.verify_bundle(path, key)
        monkeypatch.setattr(module, "opened", real)
        assert started == [reader]  # the member was read where this round says
        found.append((verdict.ok, verdict.problems, verdict.notes, verdict.summary,
                      verdict.worded("zh")))  # fmt: skip
    return found


# A test module's `verdicts_two_ways` of its member: (bundle, key folder, monkeypatch).
Verdicts = Callable[[Path, Path, pytest.MonkeyPatch], list[tuple[Any, ...]]]


def alike(
    verdicts: Verdicts, path: Path, key_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[Any, ...]:  # fmt: skip
    """The verdict of the bundle at `path`, held the same read in the walk's process and
    beside it (asserted here): for the caller to say what it must be."""
    here, beside = verdicts(path, key_folder, monkeypatch)
    assert here == beside
    return here


def forged_alike(
    verdicts: Verdicts, path: Path, key_folder: Path, monkeypatch: pytest.MonkeyPatch,
    tamper: Callable[[dict[str, bytes]], None], out: Path,
) -> tuple[Any, ...]:  # fmt: skip
    """`alike` of the bundle at `path` with its members changed by `tamper` and signed again
    with the key in `key_folder` (only the records' own checks can tell), written to `out`."""
    members = members_of(path)
    tamper(members)
    return alike(verdicts, resigned(members, key_folder, out), key_folder, monkeypatch)


def damaged(path: Path, member: str, out: Path) -> Path:
    """The bundle at `path` with eight bytes flipped in the middle of `member`'s deflate
    stream, written to `out`: its inflate or its CRC-32 fails."""
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(member)
    name_length, extra_length = struct.unpack_from("<HH", data, info.header_offset + 26)
    at = info.header_offset + 30 + name_length + extra_length + info.compress_size // 2
    data[at : at + 8] = bytes(b ^ 0xA5 for b in data[at : at + 8])
    out.write_bytes(bytes(data))
    return out


# An auditor's script that calls verify_bundle at its top level, without the guard that
# multiprocessing's spawn asks for: the reading process runs it again and cannot start one of
# its own, so it exits before sending anything. What was read where is printed.
_UNGUARDED = """
import sys
from pathlib import Path
from devposture.collector.evidence import {module}, signing, verify
{module}.BESIDE_FROM = 0
real = {module}.opened
def opened(*args):
    made = real(*args)
    print("reader", type(made).__name__, flush=True)
    return made
{module}.opened = opened
key = signing.load_or_create(Path(sys.argv[1])).public_key()
verdict = verify.verify_bundle(Path(sys.argv[2]), key)
print("verdict", verdict.ok, len(verdict.problems), flush=True)
"""


def unguarded_run(module: str, key_folder: Path, path: Path, tmp_path: Path) -> list[str]:
    """What such a script, reading `module`'s member beside the walk, prints: it must end
    well (asserted here)."""
    script = tmp_path / "check_bundle.py"
    script.write_text(_UNGUARDED.format(module=module), encoding="utf-8")
    done = subprocess.run([sys.executable, str(script), str(key_folder), str(path)],
                          capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()
