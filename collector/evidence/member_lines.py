"""A member of an audit bundle read once, line by line, and hashed as it is read, for the
verifier (`verify.py`) and the process that reads the report bodies beside it
(`body_lines.py`): a quarter's members are gigabytes, never held whole.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from typing import Any

from devposture.collector.evidence import bundle, member_bytes
from devposture.collector.evidence.member_bytes import BundleUnreadable
from devposture.policy.cli_messages import told

__all__ = ["BundleUnreadable", "MemberLines", "Source"]


# Where a member's bytes come from: inflated here, or by a process beside the walk.
Source = member_bytes.Here | member_bytes.Beside


class MemberLines:
    """The lines of one member, parsed as JSON; each line that is not JSON is named in
    `problems` as it is met, and the member's SHA-256 is taken of every byte read (by its
    `source`: `member_bytes.Here`, this process, unless given one beside it)."""

    def __init__(
        self, archive: zipfile.ZipFile, name: str, problems: list[str],
        source: Source | None = None,
    ) -> None:  # fmt: skip
        self.name, self._problems = name, problems
        self._loads = bundle.line_parser(name)
        self._source = source if source is not None else member_bytes.Here(archive, name)

    def lines(self) -> Iterator[tuple[int, Any]]:
        """(line number, parsed JSON) of each line that is JSON; names each that is not."""
        rest: member_bytes.Chunk = b""
        number = 0
        while chunk := self._source.read():
            # `rest + chunk` copied every megabyte once more
            pieces: list[member_bytes.Chunk] = [*chunk.split(b"\n")]
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

    def _parsed(self, raw: member_bytes.Chunk, number: int) -> tuple[Any] | None:
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
        return self._source.digest()
