"""The audit bundle's members are deflated and inflated by ISA-L (collector/evidence/deflate.py):
plain deflate streams that any zip reader opens, and zip members written by zlib that ISA-L
reads alike. The swap of zipfile's own compressor is held here, so that a Python whose
zipfile keeps it elsewhere fails this test instead of quietly exporting at zlib's speed."""

from __future__ import annotations

import hashlib
import re
import subprocess
import tempfile
import zipfile
import zlib
from pathlib import Path

import pytest

from devposture.collector.evidence import deflate
from tests.conftest import installed_tool

# Lines like a bundle's: repeated JSON with what varies between devices (a day of a fleet).
LINES = b"".join(
    b'{"seq": %d, "device_id": "%032x", "body_sha256": "%s", "state": "PASS"}\n'
    % (n, n * 7919, hashlib.sha256(b"%d" % n).hexdigest().encode())
    for n in range(40_000)
)


def _write(path: Path, name: str, data: bytes) -> bool:
    """`data` as a streamed member, as the export writes one; whether ISA-L deflated it."""
    with zipfile.ZipFile(path, "w") as archive:
        info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
        info.compress_type = zipfile.ZIP_DEFLATED
        with deflate.compressing(archive.open(info, "w", force_zip64=True), info) as handle:
            swapped = deflate.by_isal(handle)
            for at in range(0, len(data), 1 << 16):
                handle.write(data[at : at + (1 << 16)])
    return swapped


def test_isal_deflates_what_zlib_reads_back_byte_for_byte(tmp_path: Path) -> None:
    out = tmp_path / "members.zip"
    assert _write(out, "chain.jsonl", LINES)
    with zipfile.ZipFile(out) as archive:
        info = archive.getinfo("chain.jsonl")
        assert info.compress_type == zipfile.ZIP_DEFLATED
        assert info.compress_size < len(LINES) // 3  # deflated, not stored
        assert archive.testzip() is None  # zlib inflates it and its CRC-32 holds
        assert archive.read("chain.jsonl") == LINES


def test_isal_inflates_what_zlib_deflated(tmp_path: Path) -> None:
    out = tmp_path / "zlib.zip"
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
        archive.writestr("reports.jsonl", LINES)
    with zipfile.ZipFile(out) as archive, deflate.inflating(archive.open("reports.jsonl")) as mem:
        assert deflate.by_isal(mem)
        read = b"".join(iter(lambda: mem.read(1 << 15), b""))
    assert read == LINES


def test_a_member_whose_bytes_break_its_crc_is_refused_at_its_end(tmp_path: Path) -> None:
    """The CRC-32 is checked by ISA-L's in place of zipfile's: a member whose entry names
    another CRC-32 (bytes changed under an intact deflate stream) fails as zipfile's own
    check fails, and the right one passes."""
    out = tmp_path / "crc.zip"
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("chain.jsonl", LINES)
    with zipfile.ZipFile(out) as archive, deflate.inflating(archive.open("chain.jsonl")) as mem:
        assert type(mem._update_crc).__name__ == "_IsalCrc"  # type: ignore[attr-defined]
        assert b"".join(iter(lambda: mem.read(1 << 15), b"")) == LINES
    data = bytearray(out.read_bytes())
    crc = zlib.crc32(LINES).to_bytes(4, "little")
    assert data.count(crc) == 2  # in the local header and the central directory
    data[:] = data.replace(crc, (int.from_bytes(crc, "little") ^ 1).to_bytes(4, "little"))
    out.write_bytes(bytes(data))
    refused = pytest.raises(
        zipfile.BadZipFile, match=re.escape("Bad CRC-32 for file 'chain.jsonl'")
    )
    with (
        zipfile.ZipFile(out) as archive,
        deflate.inflating(archive.open("chain.jsonl")) as mem,
        refused,
    ):
        while mem.read(1 << 15):
            pass


def test_a_member_not_deflated_is_read_as_it_is(tmp_path: Path) -> None:
    out = tmp_path / "stored.zip"
    with zipfile.ZipFile(out, "w") as archive:  # ZIP_STORED: a manifest, a signature
        archive.writestr("manifest.json", b"{}")
    with zipfile.ZipFile(out) as archive, deflate.inflating(archive.open("manifest.json")) as mem:
        assert not deflate.by_isal(mem)
        assert mem.read() == b"{}"


def test_a_member_deflated_beforehand_is_put_in_as_it_is_and_reads_back_whole(
    tmp_path: Path,
) -> None:
    """The export's index and report bodies wait deflated in a temporary file and go into the
    zip as they are: the entry must carry the size and CRC-32 of the bytes themselves, which
    zipfile (it checks the CRC-32 as it reads) and 7-Zip both hold it to."""
    out = tmp_path / "spooled.zip"
    with tempfile.TemporaryFile() as spool:
        deflated = deflate.Deflated(spool)
        for at in range(0, len(LINES), 1 << 20):
            deflated.write(LINES[at : at + (1 << 20)])
        deflated.finish()
        assert spool.tell() < len(LINES) // 3  # it waited deflated, not whole
        with zipfile.ZipFile(out, "w") as archive:
            info = zipfile.ZipInfo("reports.jsonl", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            with archive.open(info, "w", force_zip64=True) as handle:
                deflate.put_deflated(handle, info, deflated)
            archive.writestr("manifest.json", b"{}")  # a member after it lands where it should
    assert deflated.sha.hexdigest() == hashlib.sha256(LINES).hexdigest()
    with zipfile.ZipFile(out) as archive:
        entry = archive.getinfo("reports.jsonl")
        assert (entry.file_size, entry.CRC) == (len(LINES), zlib.crc32(LINES))
        assert archive.testzip() is None
        assert archive.read("reports.jsonl") == LINES
        assert archive.read("manifest.json") == b"{}"
    seven = installed_tool("7z")
    tested = subprocess.run([seven, "t", str(out)], capture_output=True, text=True, check=False)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "Everything is Ok" in tested.stdout


def test_a_member_not_deflated_is_never_put_in_as_deflated(tmp_path: Path) -> None:
    with tempfile.TemporaryFile() as spool, zipfile.ZipFile(tmp_path / "s.zip", "w") as archive:
        deflated = deflate.Deflated(spool)
        deflated.write(b"{}")
        deflated.finish()
        info = zipfile.ZipInfo("manifest.json")  # ZIP_STORED
        with archive.open(info, "w") as handle, pytest.raises(TypeError, match="deflated"):
            deflate.put_deflated(handle, info, deflated)
