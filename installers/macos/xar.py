"""A xar archive, the container of a flat package (what pkgbuild and productbuild write and
`pkgutil --expand`, the macOS installer and libarchive's bsdtar read).

    header (28 bytes)  "xar!", header size 28, version 1, the table of contents' compressed
                       and plain lengths, checksum algorithm 1 (SHA-1)
    TOC                XML, zlib-compressed: every file and folder, and where its data lies
    heap               first the SHA-1 of the compressed TOC (the TOC's <checksum> points
                       there), then each file's data

A member is stored compressed with zlib (xar calls that "application/x-gzip") or as it is
("application/octet-stream", for what is already compressed: a Payload), with the SHA-1 of
the stored bytes (archived-checksum) and of the file (extracted-checksum), as pkgbuild's
packages have. Every member is owned by root:wheel, and the creation time is given, so the
same input gives the same bytes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import shutil
import struct
import xml.etree.ElementTree as ET
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

MAGIC = b"xar!"
HEADER_SIZE = 28
CKSUM_SHA1 = 1
SHA1_SIZE = 20
ZLIB = "application/x-gzip"  # xar's name for a zlib stream
STORED = "application/octet-stream"


@dataclass(frozen=True)
class Member:
    """A file of the archive: its path inside (folders implied), where its bytes are, and
    whether to store them compressed."""

    path: str
    source: Path
    compress: bool = True
    mode: int = 0o644


@dataclass
class _Stored:
    member: Member
    offset: int
    length: int
    size: int
    archived_sha1: str
    extracted_sha1: str
    data: bytes | None  # the compressed bytes; None: copy the source as it is


def _sha1_of(path: Path) -> str:
    digest = hashlib.sha1(usedforsecurity=False)
    with path.open("rb") as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _owner(element: ET.Element, mode: int, when: str) -> None:
    """Owner, mode and dates of a member (all times the archive's creation time)."""
    for tag, text in (("ctime", when), ("mtime", when), ("atime", when), ("uid", "0"),
                      ("gid", "0"), ("user", "root"), ("group", "wheel"),
                      ("mode", f"{mode:04o}")):  # fmt: skip
        ET.SubElement(element, tag).text = text


def _toc(stored: list[_Stored], created: int) -> bytes:
    xar = ET.Element("xar")
    toc = ET.SubElement(xar, "toc")
    when = dt.datetime.fromtimestamp(created, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    ET.SubElement(toc, "creation-time").text = when
    checksum = ET.SubElement(toc, "checksum", style="sha1")
    ET.SubElement(checksum, "offset").text = "0"
    ET.SubElement(checksum, "size").text = str(SHA1_SIZE)
    folders: dict[str, ET.Element] = {"": toc}
    next_id = 1

    def file_element(parent: str, name: str) -> ET.Element:
        nonlocal next_id
        element = ET.SubElement(folders[parent], "file", id=str(next_id))
        next_id += 1
        return element

    for item in stored:
        parts = PurePosixPath(item.member.path).parts
        for depth in range(1, len(parts)):
            folder = "/".join(parts[:depth])
            if folder not in folders:
                element = file_element("/".join(parts[: depth - 1]), parts[depth - 1])
                _owner(element, 0o755, when)
                ET.SubElement(element, "type").text = "directory"
                ET.SubElement(element, "name").text = parts[depth - 1]
                folders[folder] = element
        element = file_element("/".join(parts[:-1]), parts[-1])
        data = ET.SubElement(element, "data")
        ET.SubElement(data, "length").text = str(item.length)
        ET.SubElement(data, "offset").text = str(item.offset)
        ET.SubElement(data, "size").text = str(item.size)
        ET.SubElement(data, "encoding", style=ZLIB if item.data is not None else STORED)
        ET.SubElement(data, "archived-checksum", style="sha1").text = item.archived_sha1
        ET.SubElement(data, "extracted-checksum", style="sha1").text = item.extracted_sha1
        _owner(element, item.member.mode, when)
        ET.SubElement(element, "type").text = "file"
        ET.SubElement(element, "name").text = parts[-1]
    ET.indent(xar, space=" ")
    text: bytes = ET.tostring(xar, encoding="utf-8", xml_declaration=False)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + text


def write(members: list[Member], out: BinaryIO, *, created: int) -> None:
    """The archive of `members` (in this order in the TOC and the heap) into `out`."""
    stored: list[_Stored] = []
    offset = SHA1_SIZE
    for member in members:
        extracted = _sha1_of(member.source)
        size = member.source.stat().st_size
        if member.compress:
            data = zlib.compress(member.source.read_bytes(), 9)
            archived, length = hashlib.sha1(data, usedforsecurity=False).hexdigest(), len(data)
        else:
            data, archived, length = None, extracted, size
        stored.append(_Stored(member, offset, length, size, archived, extracted, data))
        offset += length
    toc = _toc(stored, created)
    packed = zlib.compress(toc, 9)
    out.write(MAGIC + struct.pack(">HHQQI", HEADER_SIZE, 1, len(packed), len(toc), CKSUM_SHA1))
    out.write(packed)
    out.write(hashlib.sha1(packed, usedforsecurity=False).digest())
    for item in stored:
        if item.data is not None:
            out.write(item.data)
        else:
            with item.member.source.open("rb") as stream:
                shutil.copyfileobj(stream, out)
