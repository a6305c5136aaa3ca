"""Backup encryption by header sample, on files made here by the real tools and libraries."""

from __future__ import annotations

import gzip
import os
import shutil
import sqlite3
import subprocess
import zipfile
from pathlib import Path

import pytest

from agent.parsers.file_headers import SAMPLE_SIZE, HeaderVerdict, combine, sniff
from devposture.v1 import devposture_pb2 as pb

ENC = pb.ENCRYPTION_STATE_ENCRYPTED
PLAIN = pb.ENCRYPTION_STATE_NOT_ENCRYPTED
UNKNOWN = pb.ENCRYPTION_STATE_UNKNOWN


def head(path: Path) -> bytes:
    return path.read_bytes()[:SAMPLE_SIZE]


def test_sqlite_database_is_plain(tmp_path: Path) -> None:
    db = tmp_path / "msg.db"
    with sqlite3.connect(db) as conn:
        conn.execute("create table t (x)")
    assert sniff(head(db)).state == PLAIN


def test_zip_without_password_is_plain(tmp_path: Path) -> None:
    archive = tmp_path / "backup.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("a.txt", "x" * 100)
    assert sniff(head(archive)).state == PLAIN


def test_gzip_is_compressed_not_encrypted(tmp_path: Path) -> None:
    target = tmp_path / "b.gz"
    target.write_bytes(gzip.compress(b"x" * 100))
    assert sniff(head(target)).state == PLAIN


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed on this machine (.ci/run installs it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def test_zip_with_password_is_encrypted(tmp_path: Path) -> None:
    zip_tool = _tool("zip")
    (tmp_path / "a.txt").write_text("x" * 100)
    subprocess.run([zip_tool, "-q", "-P", "pw", "enc.zip", "a.txt"], cwd=tmp_path, check=True)
    verdict = sniff(head(tmp_path / "enc.zip"))
    assert verdict.state == ENC and "encrypted entries" in verdict.evidence


def test_gpg_symmetric_is_encrypted(tmp_path: Path) -> None:
    gpg = _tool("gpg")
    (tmp_path / "a.txt").write_text("x" * 100)
    subprocess.run(
        [gpg, "--homedir", str(tmp_path), "--batch", "--pinentry-mode", "loopback",
         "--passphrase", "pw", "-c", "-o", "a.gpg", "a.txt"],
        cwd=tmp_path, check=True, capture_output=True,
    )  # fmt: skip
    verdict = sniff(head(tmp_path / "a.gpg"))
    assert verdict.state == ENC and "symmetric" in verdict.evidence


def test_7z_cannot_be_judged_from_its_start(tmp_path: Path) -> None:
    seven = _tool("7z")
    (tmp_path / "a.txt").write_text("x" * 100)
    subprocess.run([seven, "a", "-ppw", "-mhe=on", "a.7z", "a.txt"], cwd=tmp_path,
                   check=True, capture_output=True)  # fmt: skip
    verdict = sniff(head(tmp_path / "a.7z"))
    assert verdict.state == UNKNOWN and "7z" in verdict.evidence


def test_unrecognised_and_empty() -> None:
    assert sniff(bytes(range(64))).state == UNKNOWN
    assert sniff(b"").state == UNKNOWN
    # A byte with the OpenPGP high bit but no valid packet version is not taken for one.
    assert sniff(b"\x8c\x0d\x63rest").state == UNKNOWN


def test_combine_needs_every_sample_encrypted() -> None:
    enc = HeaderVerdict(ENC, "age encrypted file")
    plain = HeaderVerdict(PLAIN, "SQLite format 3 header: plain database")
    odd = HeaderVerdict(UNKNOWN, "unrecognised file header")
    assert combine([enc, enc]).state == ENC
    assert combine([enc, plain]).state == PLAIN
    assert combine([enc, odd]).state == UNKNOWN
    assert combine([]).state == UNKNOWN
