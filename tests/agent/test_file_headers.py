"""Backup encryption by header sample, on files made here by the real tools and libraries."""

from __future__ import annotations

import base64
import bz2
import functools
import gzip
import lzma
import os
import shutil
import sqlite3
import subprocess
import zipfile
from pathlib import Path

import psutil

from devposture.agent.parsers.file_headers import (
    SAMPLE_SIZE,
    ZIP_END_TAIL,
    HeaderVerdict,
    combine,
    seven_zip_end_header,
    sniff,
    sniff_7z_end_header,
    sniff_zip_directory,
    zip_central_directory,
)
from devposture.v1 import devposture_pb2 as pb
from tests.agent.rmfh import rmfh_bytes
from tests.conftest import installed_tool
from tests.gpg_files import encrypt_symmetric
from tests.waiting import wait_until

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


def test_zip_with_password_is_encrypted(tmp_path: Path) -> None:
    zip_tool = installed_tool("zip")
    (tmp_path / "a.txt").write_text("x" * 100)
    subprocess.run([zip_tool, "-q", "-P", "pw", "enc.zip", "a.txt"], cwd=tmp_path, check=True)
    verdict = sniff(head(tmp_path / "enc.zip"))
    assert verdict.state == ENC and "encrypted entries" in verdict.evidence


def test_gpg_symmetric_is_encrypted(tmp_path: Path) -> None:
    gpg = installed_tool("gpg")
    (tmp_path / "a.txt").write_text("x" * 100)
    encrypt_symmetric(gpg, tmp_path, tmp_path / "a.txt", tmp_path / "a.gpg")
    verdict = sniff(head(tmp_path / "a.gpg"))
    assert verdict.state == ENC and "symmetric" in verdict.evidence
    # gpg's agent for the folder, a daemon no longer the test's child, is gone too.
    wait_until(lambda: not _agents_of(tmp_path), what="gpg's agent to end")


def _agents_of(home: Path) -> list[psutil.Process]:
    agents = []
    for process in psutil.process_iter(["name", "cmdline"]):
        cmdline = process.info["cmdline"] or []
        if process.info["name"] == "gpg-agent" and str(home) in cmdline:
            agents.append(process)
    return agents


def test_random_looking_sample_is_weak_evidence_of_encryption() -> None:
    verdict = sniff(os.urandom(SAMPLE_SIZE))
    assert verdict.state == ENC and verdict.evidence.startswith("weak evidence")
    text = "员工应确保手机、电脑等设备的安全,安装杀毒软件和防火墙,定期更新系统和软件。".encode()
    # Chinese text is not random: it is readable, a plain export (a character may be cut).
    assert sniff(text[:SAMPLE_SIZE]) == HeaderVerdict(PLAIN, "readable text: a plain export",
                                                      "text file")  # fmt: skip
    assert sniff(base64.b64encode(os.urandom(48))).state == UNKNOWN  # encoded: may be ciphertext
    assert sniff(os.urandom(32)).state == UNKNOWN  # too short to tell


def test_sqlcipher_database_is_weak_evidence_of_encryption(tmp_path: Path) -> None:
    sqlcipher = installed_tool("sqlcipher")
    db = tmp_path / "msg.db"
    sql = "PRAGMA key = 'correct horse'; create table t (x); insert into t values ('hi');"
    subprocess.run([sqlcipher, str(db), sql], check=True, capture_output=True)
    verdict = sniff(head(db))
    assert verdict.state == ENC and "SQLCipher" in verdict.evidence


def test_wechat4_backup_file_is_encrypted_by_its_rmfh_header() -> None:
    """WeChat 4.x's backup files start with "RMFH" and hold AES-GCM ciphertext (52pojie thread
    2068774): made here in that shape by a real AES-GCM. Before, their zero-filled header read
    "unrecognised file header" (UNKNOWN) and a current backup could never pass."""
    for seed, plaintext in ((1, b"\x0a\xc9\x03" * 200), (2, bytes(16))):
        verdict = sniff(rmfh_bytes(plaintext, seed)[:SAMPLE_SIZE])
        assert verdict == HeaderVerdict(
            ENC, "RMFH header: a WeChat 4.x backup file, encrypted by WeChat (AES-GCM)",
            "WeChat 4.x backup file",
        )  # fmt: skip
    # Only at the start: the same letters elsewhere are not the header.
    assert sniff(b"\x00RMFH" + bytes(59)).state == UNKNOWN
    assert sniff(b"rmfh" + bytes(60)).state == UNKNOWN


def _seven_zip(tmp_path: Path, name: str, *options: str) -> Path:
    seven = installed_tool("7z")
    (tmp_path / "合同_张经理.txt").write_text("报价 38 万" * 50, encoding="utf-8")
    subprocess.run([seven, "a", *options, name, "合同_张经理.txt"], cwd=tmp_path,
                   check=True, capture_output=True)  # fmt: skip
    return tmp_path / name


def _end_header_verdict(archive: Path) -> HeaderVerdict:
    data = archive.read_bytes()
    location = seven_zip_end_header(data[:SAMPLE_SIZE])
    assert location is not None
    offset, size = location
    return sniff_7z_end_header(data[offset : offset + size])


def test_7z_with_encrypted_names_is_encrypted(tmp_path: Path) -> None:
    verdict = _end_header_verdict(_seven_zip(tmp_path, "a.7z", "-ppw", "-mhe=on"))
    assert verdict.state == ENC and "AES-256" in verdict.evidence


def test_7z_with_plain_header_shows_whether_contents_are_encrypted(tmp_path: Path) -> None:
    encrypted = _end_header_verdict(_seven_zip(tmp_path, "e.7z", "-ppw", "-mhc=off"))
    assert encrypted.state == ENC
    plain = _end_header_verdict(_seven_zip(tmp_path, "p.7z", "-mhc=off"))
    assert plain.state == PLAIN


def test_7z_with_password_only_is_encrypted(tmp_path: Path) -> None:
    # 7-Zip lists the AES coder in the (compressed) end header's own coders when a password
    # is set, even without -mhe.
    verdict = _end_header_verdict(_seven_zip(tmp_path, "d.7z", "-ppw"))
    assert verdict.state == ENC


def test_7z_without_password(tmp_path: Path) -> None:
    # A small archive gets a plain end header: every coder is listed, none is AES.
    assert _end_header_verdict(_seven_zip(tmp_path, "n.7z")).state == PLAIN
    # Many files make 7-Zip compress the end header: its coders are no longer visible.
    for i in range(60):
        (tmp_path / f"f{i}.txt").write_text(f"file {i}")
    seven = installed_tool("7z")
    subprocess.run([seven, "a", "many.7z", *(f"f{i}.txt" for i in range(60))], cwd=tmp_path,
                   check=True, capture_output=True)  # fmt: skip
    verdict = _end_header_verdict(tmp_path / "many.7z")
    assert verdict.state == UNKNOWN and "compressed header" in verdict.evidence


def test_7z_cannot_be_judged_from_its_start(tmp_path: Path) -> None:
    seven = installed_tool("7z")
    (tmp_path / "a.txt").write_text("x" * 100)
    subprocess.run([seven, "a", "-ppw", "-mhe=on", "a.7z", "a.txt"], cwd=tmp_path,
                   check=True, capture_output=True)  # fmt: skip
    verdict = sniff(head(tmp_path / "a.7z"))
    assert verdict.state == UNKNOWN and "7z" in verdict.evidence


def test_unrecognised_and_empty() -> None:
    assert sniff(b"MZ\x90\x00" + bytes(60)).state == UNKNOWN  # an unknown, low-entropy header
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


def test_exports_in_text_are_plain() -> None:
    for export in ("2026-11-20 10:02 张经理: 合同报价\n", "<html><body>聊天记录</body></html>",
                   "time,sender,message\r\n"):  # fmt: skip
        assert sniff(export.encode()).state == PLAIN, export
    assert sniff("chat".encode("utf-16-le")).state != PLAIN  # NUL bytes: not UTF-8 text


def test_openssl_enc_output_is_encrypted(tmp_path: Path) -> None:
    openssl = installed_tool("openssl")
    (tmp_path / "chats.txt").write_text("工作聊天记录" * 20, encoding="utf-8")
    for armor, name in (([], "binary"), (["-a"], "base64")):
        out = tmp_path / f"chats.{name}"
        subprocess.run([openssl, "enc", "-aes-256-cbc", "-pbkdf2", "-salt", *armor, "-pass",
                        "pass:pw", "-in", str(tmp_path / "chats.txt"), "-out", str(out)],
                       check=True, capture_output=True)  # fmt: skip
        verdict = sniff(head(out))
        assert verdict.state == ENC and verdict.format == "OpenSSL encrypted file", name


def test_compressed_streams_are_plain_not_taken_for_ciphertext(tmp_path: Path) -> None:
    # A plain chat.tar.xz read as ENCRYPTED ("the first bytes look random"): a false PASS of
    # 6.2.1 for a copy of work chats anyone can unpack. Made by the real libraries and tools.
    text = ("这是一段工作聊天记录 " * 50).encode()
    made = {"chat.txt.xz": lzma.compress(text), "chat.txt.bz2": bz2.compress(text)}
    for tool, suffix in (("zstd", "zst"), ("lz4", "lz4"), ("lzip", "lz")):
        if shutil.which(tool) is not None:
            made[f"chat.txt.{suffix}"] = subprocess.run(
                [tool, "-c"], input=text, capture_output=True, check=True
            ).stdout
    for name, data in made.items():
        verdict = sniff(data[:SAMPLE_SIZE])
        assert verdict.state == PLAIN, (name, verdict)
        assert "compressed, not encrypted" in verdict.evidence, name


def _zip_verdict(archive: Path) -> HeaderVerdict:
    """As the backup probe reads a ZIP: its end record, then its whole central directory."""
    data = archive.read_bytes()
    tail_offset = max(0, len(data) - ZIP_END_TAIL)
    found = zip_central_directory(data[tail_offset:], tail_offset)
    assert found is not None
    offset, size = found
    return sniff_zip_directory(data[offset : offset + size], complete=True)


def test_a_zip_is_judged_by_every_entry_not_its_first(tmp_path: Path) -> None:
    # An encrypted first entry and a plain chat file after it read ENCRYPTED (the first local
    # header alone): a false PASS; unzip -p printed the chats without a password.
    zip_tool = installed_tool("zip")
    (tmp_path / "folder").mkdir()
    for name in ("secret.txt", "chat.txt", "folder/more.txt"):
        (tmp_path / name).write_text("工作聊天 " * 40, encoding="utf-8")
    run = functools.partial(subprocess.run, cwd=tmp_path, check=True)
    run([zip_tool, "-q", "-P", "pw", "mixed.zip", "secret.txt"])
    run([zip_tool, "-q", "mixed.zip", "chat.txt"])  # appended without a password
    assert sniff(head(tmp_path / "mixed.zip")).state == ENC  # what the first entry says
    mixed = _zip_verdict(tmp_path / "mixed.zip")
    assert mixed.state == PLAIN and "not encrypted" in mixed.evidence
    run([zip_tool, "-q", "-r", "-P", "pw", "all.zip", "secret.txt", "folder"])  # a folder entry
    every = _zip_verdict(tmp_path / "all.zip")
    assert every.state == ENC and "all 2 entries encrypted" in every.evidence
