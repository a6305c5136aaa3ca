"""A bundle member's bytes as the verifier's walk reads them: inflated and hashed in the walk's
own process (`Here`), or, for a large member on a machine with a second core, by a process
beside it that sends the inflated bytes over a socket (`Beside`).

Why: of `audit verify`'s 61 s on the hourly quarter of 10,000 devices (21.6 million reports,
`bench/audit_quarter.py`), the chain's member alone is 5.5 GB of lines (2.35 GB deflated):
inflating it took the walk about 7 s of CPU and its SHA-256 about 3 s, work that needs
nothing the walk knows. Receiving the same bytes from a socket costs the walk about 0.7 s
(the kernel's copy into a fresh buffer, which the walk splits into lines as it did the
inflated chunk). Nothing is pickled: parsed entries sent beside the walk cost it more than
reading them had (bench/README.md, the fourteenth session).

The walk gets the same chunks either way, in the same order, so its findings are the same and
in the same order (`tests/collector/test_verify_chain_beside.py`). A damaged member (its
inflate or CRC-32 fails) raises the same error in the walk, after the bytes read before it, as
reading it there would have; a reading process that ends before the member's end (killed)
stops the verification with `BundleUnreadable`, which is not a verdict; one that exits by
itself before sending anything could not start (a script without the main guard, as
`body_lines` says), and the member is read in the walk's process.
"""

from __future__ import annotations

import contextlib
import hashlib
import multiprocessing
import os
import socket
import zipfile
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import IO

from devposture.collector.child_start import (
    ERROR,
    cores_usable,
    end_reader,
    ending,
    ignore_interrupts,
    received,
    received_into,
    send_error,
    socket_of,
    start_child,
)
from devposture.collector.evidence import deflate
from devposture.policy.cli_messages import told

# What the walk takes at once: a megabyte of inflated lines.
CHUNK = 1 << 20
# A member at least this large (before compression) is read beside the walk: starting a
# Python takes about a third of a second, which a member of tens of megabytes wins back.
BESIDE_FROM = 64 << 20
# The socket's buffers: a few chunks in flight, so neither side waits on the other's turn.
BUFFER_BYTES = 4 << 20
_HEADER = 8  # each chunk's length, big-endian; 0 ends the bytes (then a message follows)
_END, _ERROR = "end", ERROR

Chunk = bytes | bytearray


class BundleUnreadable(Exception):
    """The file to verify cannot be read at all (missing, a folder, not permitted, or a
    reading process gone): nothing was verified, and nothing about the evidence can be said
    from it."""


class Here:
    """The member inflated and hashed in this process, a chunk at a time."""

    def __init__(self, archive: zipfile.ZipFile, name: str) -> None:
        self._sha = hashlib.sha256()
        self._handle: IO[bytes] | None = (
            deflate.inflating(archive.open(name)) if name in archive.NameToInfo else None
        )

    def read(self) -> Chunk:
        """The next chunk; empty at the member's end (or where there is no such member)."""
        if self._handle is None:
            return b""
        chunk = self._handle.read(CHUNK)
        self._sha.update(chunk)
        return chunk

    def digest(self) -> str:
        """The SHA-256 of the whole member (read to its end if it was not)."""
        while self.read():
            pass
        self.close()
        return self._sha.hexdigest()

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


class Beside:
    """The member inflated and hashed by a process of its own, its chunks taken in order."""

    def __init__(self, path: Path, name: str, archive: zipfile.ZipFile) -> None:
        self._name, self._archive = name, archive  # read here instead, should it not start
        self._digest: str | None = None
        self._heard = False  # whether the process sent anything
        self._here: Here | None = None
        context = multiprocessing.get_context("spawn")
        mine, its = context.Pipe()  # a socket pair: the bytes go over it without a pickle
        self._connection = mine
        self._socket = socket_of(mine)
        with contextlib.suppress(OSError):  # the kernel's own bound, where it is lower
            self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, BUFFER_BYTES)
        self._process: BaseProcess = context.Process(
            target=inflate_beside, args=(its, str(path), name), daemon=True,
            name="devposture-verify-member",
        )  # fmt: skip
        start_child(self._process, its)

    def read(self) -> Chunk:
        """The next chunk as the process sent it; empty at the member's end. Raises what
        stopped the reading there (a damaged member), as `Here.read` would have."""
        if self._here is not None:
            return self._here.read()
        if self._digest is not None:
            return b""
        header = received(self._socket, _HEADER)
        if header is None:
            return self._gone()
        self._heard = True
        size = int.from_bytes(header, "big")
        if not size:
            return self._ended()
        chunk = received_into(self._socket, size)
        return self._gone() if chunk is None else chunk

    def _ended(self) -> Chunk:
        try:
            kind, payload = self._connection.recv()
        except (EOFError, OSError):
            return self._gone()
        if kind == _ERROR:
            raise payload
        self._digest = payload
        return b""

    def _gone(self) -> Chunk:
        """The process ended without the member's end: one that exited by itself before
        sending anything could not start, and the member is read here from its start;
        otherwise the verification stops."""
        self._process.join(5)
        code = self._process.exitcode
        if not self._heard and code is not None and code > 0:
            self._here = Here(self._archive, self._name)
            return self._here.read()
        raise reader_gone(self._name, self._process)

    def digest(self) -> str:
        while self.read():  # the walk stopped short of the end: read on to the digest
            pass
        if self._here is not None:
            return self._here.digest()
        assert self._digest is not None
        return self._digest

    def close(self) -> None:
        """End the reading process (at once where the walk stopped before the end)."""
        self._socket.close()
        self._connection.close()
        if self._here is not None:
            self._here.close()
        end_reader(self._process, finished=self._digest is not None)


def reader_gone(member: str, process: BaseProcess) -> BundleUnreadable:
    """What stops the verification where a process reading `member` beside it ended before
    the member's end (killed: out of memory, an operator): not a verdict on the evidence."""
    return BundleUnreadable(told(
        "the process reading {member} beside the check ended ({how}) before the"
        " member's end: run `audit verify` again; if it ends again, see the system"
        " log (out of memory?)", member=member, how=ending(process),
    ))  # fmt: skip


def opened(archive: zipfile.ZipFile, path: Path, name: str) -> Here | Beside:
    """The member's bytes: beside the walk when the member is large, a second core is there
    and the system passes bytes over a socket pair (not Windows' pipes)."""
    info = archive.NameToInfo.get(name)
    if info is None or info.file_size < BESIDE_FROM or cores_usable() < 2 or os.name != "posix":
        return Here(archive, name)
    return Beside(path, name, archive)


def inflate_beside(connection: Connection, path: str, name: str) -> None:
    """The reading process's whole life: inflate the member, send its chunks in order, then
    its SHA-256; or, after the chunks read before it, the error that stopped the reading."""
    from devposture.collector.parent_death import die_with_parent  # noqa: PLC0415

    parent = multiprocessing.parent_process()
    die_with_parent(None if parent is None else parent.pid, "verifier's member reader")
    ignore_interrupts()
    sock = socket_of(connection)
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, BUFFER_BYTES)
    try:
        with zipfile.ZipFile(path) as archive:
            reading = Here(archive, name)
            while chunk := reading.read():
                sock.sendall(len(chunk).to_bytes(_HEADER, "big"))
                sock.sendall(chunk)
            digest = reading.digest()
        sock.sendall(bytes(_HEADER))
        connection.send((_END, digest))
    except (BrokenPipeError, ConnectionResetError):  # the walk stopped first, and closed
        return
    except Exception as exc:  # raised again in the walk, after the chunks before it
        # A damaged member (its inflate or CRC-32 fails) is then named unreadable by the
        # verifier, as when read in its own process.
        with contextlib.suppress(OSError):
            sock.sendall(bytes(_HEADER))
            send_error(connection, exc)
