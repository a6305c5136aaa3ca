"""A member of an audit bundle read once, line by line, and hashed as it is read, for the
verifier (`verify.py`) and the process that reads the report bodies beside it
(`body_lines.py`): a quarter's members are gigabytes, never held whole.
"""

from __future__ import annotations

import hashlib
import zipfile
from collections.abc import Iterator
from typing import IO, Any

from devposture.collector.evidence import bundle, deflate
from devposture.policy.cli_messages import told


class BundleUnreadable(Exception):
    """The file to verify cannot be read at all (missing, a folder, not permitted): nothing
    was verified, and nothing about the evidence can be said from it."""


class MemberLines:
    """The lines of one member, parsed as JSON; each line that is not JSON is named in
    `problems` as it is met, and the member's SHA-256 is taken of every byte read."""

    CHUNK = 1 << 20

    def __init__(self, archive: zipfile.ZipFile, name: str, problems: list[str]) -> None:
        self.name, self._problems = name, problems
        self._loads = bundle.line_parser(name)
        self.sha = hashlib.sha256()
        self._handle: IO[bytes] | None = (
            deflate.inflating(archive.open(name)) if name in archive.NameToInfo else None
        )

    def lines(self) -> Iterator[tuple[int, Any]]:
        """(line number, parsed JSON) of each line that is JSON; names each that is not."""
        if self._handle is None:
            return
        rest, number = b"", 0
        while chunk := self._handle.read(self.CHUNK):
            self.sha.update(chunk)
            pieces = chunk.split(b"\n")  # `rest + chunk` copied every megabyte once more
            pieces[0] = rest + pieces[0]
            rest = pieces.pop()
            for raw in pieces:
                number += 1
                if parsed := self._parsed(raw, number):
                    yield number, parsed[0]
        if rest.strip():
            number += 1
            if parsed := self._parsed(rest, number):
                yield number, parsed[0]

    def _parsed(self, raw: bytes, number: int) -> tuple[Any] | None:
        if not raw.strip():
            return None
        try:
            return (self._loads(raw),)
        except ValueError:
            self._problems.append(told("{member} line {number} is not JSON (edited)",
                                       member=self.name, number=number))  # fmt: skip
            return None

    def digest(self) -> str:
        """The SHA-256 of the whole member (read to its end if it was not)."""
        if self._handle is not None:
            while chunk := self._handle.read(self.CHUNK):
                self.sha.update(chunk)
            self._handle.close()
            self._handle = None
        return self.sha.hexdigest()
