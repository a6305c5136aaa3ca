"""The report bodies of a bundle being verified (`reports.jsonl`), read in a process beside
the verifier's walk when the member is large.

Why: of `audit verify`'s time on a bundle of hourly reports, about half went to this member
alone (py-spy of the 2,000-device, 20-day hourly bundle of `bench/audit_quarter.py`: 1.3 GB
of lines in 140 MB): inflating it, hashing the member, cutting and parsing its lines,
decoding each body's base64 and hashing each body. None of that needs the chain, so on a
machine with two cores or more a large member is read by a process of its own, which sends
the walk, line by line in the member's order, only what the walk compares: for a report
group's line each report's id and its body's SHA-256 (hex, as the chain's records hold it).
The walk itself (`verify._Walk`) is the same either way: it takes these values in the same
order, with the same findings between them, whether they were read here or beside.

Findings met while reading (a line that is not JSON, a malformed line) travel in the same
stream, before the value that followed them, and are put in the verdict when the walk reads
that far: the verdict's words and their order do not depend on where the member was read
(`tests/collector/test_verify_beside.py` holds the two to each other on tampered bundles).
A damaged member (its inflate or CRC-32 fails) raises the same error in the walk as it
would have here; a reading process that ends before the member's end (killed) stops the
verification with `BundleUnreadable`, which is not a verdict. One that exits by itself before
sending anything could not start: multiprocessing's spawn runs the caller's main module again
in the child, and a script that calls `verify_bundle` without an `if __name__ == "__main__":`
guard ends the child there (Python refuses to start a process from one still starting). The
member is then read in the walk's own process, as on one core: slower, the same verdict.
"""

from __future__ import annotations

import contextlib
import hashlib
import multiprocessing
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any, Final

from devposture.collector.child_start import (
    ERROR,
    cores_usable,
    end_reader,
    ignore_interrupts,
    send_error,
    start_child,
)
from devposture.collector.evidence import bundle, fact_groups
from devposture.collector.evidence.member_bytes import reader_gone
from devposture.collector.evidence.member_lines import MemberLines
from devposture.collector.gc_settle import batch_process
from devposture.policy.cli_messages import told


class _NoFacts:
    """A body's line that shows no facts beside it (format 3): one object in every process."""

    def __reduce__(self) -> str:
        return "NO_FACTS"


NO_FACTS: Final = _NoFacts()


@dataclass(frozen=True)
class FactLine:
    """A format-5 group's line (`fact_groups.line`) as the walk takes it: the fact sets it
    ships, each with its SHA-256 in hex, and the parts, each with its SHA-256 (hashed here,
    beside the walk when the member is large)."""

    sets: list[tuple[str, bytes]]
    parts: list[tuple[bytes, bytes]]

    def __len__(self) -> int:
        return len(self.sets) + len(self.parts)


# A line of reports.jsonl as the walk compares it: a report's (id, body, facts shown: formats
# 1 and 2, else NO_FACTS), a report group's [(id, body SHA-256 in hex)] (format 4), or a
# format-5 group's fact sets and parts.
Bodies = tuple[str, bytes, object] | list[tuple[str, str]] | FactLine
Value = tuple[int, Bodies]

# A member at least this large (its bytes before compression) is read beside the walk, where
# the machine has two cores or more: starting a Python takes about a third of a second, which
# a member of tens of megabytes wins back.
BESIDE_FROM = 64 << 20
# Values the reading process sends at once: a group's line is one value of a thousand reports.
SEND_REPORTS = 4000

_VALUES, _END, _ERROR = "values", "end", ERROR


def line_value(line: object, problems: list[str]) -> Value | None:
    """(seq, bodies) of one parsed line; None, and the line named in `problems`, when it is
    not a body's line of any format."""
    try:
        if isinstance(line, dict) and "sets" in line:  # a format-5 group's
            seq, sets, parts = fact_groups.parse_line(line)
            return seq, FactLine([(hashlib.sha256(s).hexdigest(), s) for s in sets],
                                 [(hashlib.sha256(p).digest(), p) for p in parts])  # fmt: skip
        if isinstance(line, dict) and "reports" in line:  # a report group's (format 4)
            seq, bodies = bundle.parse_group_bodies(line)
            return seq, [(report_id, hashlib.sha256(body).hexdigest())
                         for report_id, body in bodies]  # fmt: skip
        seq, report_id, body = bundle.parse_report(line)
    except (bundle.Malformed, ValueError):
        problems.append(told("{member} has a malformed line (edited)", member=bundle.REPORTS))
        return None
    # Formats 1 and 2 show each body's facts as JSON too, checked against the body.
    assert isinstance(line, dict)
    return seq, (report_id, body, line.get("facts", NO_FACTS))


class InProcess:
    """The member read in the verifier's own process, as the walk asks for its lines."""

    def __init__(self, archive: zipfile.ZipFile, problems: list[str]) -> None:
        self._problems = problems
        self._member = MemberLines(archive, bundle.REPORTS, problems)

    def values(self) -> Iterator[Value]:
        for _, line in self._member.lines():
            if (value := line_value(line, self._problems)) is not None:
                yield value

    def digest(self) -> str:
        return self._member.digest()

    def close(self) -> None:
        """Nothing to end."""


class Beside:
    """The member read by a process of its own, its values taken in the member's order."""

    def __init__(
        self, path: Path, problems: list[str], archive: zipfile.ZipFile | None = None
    ) -> None:  # fmt: skip
        self._problems = problems
        self._archive = archive  # read here instead, should the process not start
        self._digest: str | None = None
        self._heard = False  # whether the process sent anything
        self._here: InProcess | None = None
        self._here_values: Iterator[Value] | None = None
        context = multiprocessing.get_context("spawn")
        mine, its = context.Pipe(duplex=False)
        self._connection = mine
        self._process: BaseProcess = context.Process(
            target=read_beside, args=(its, str(path)), name="devposture-verify-bodies",
            daemon=True,
        )  # fmt: skip
        start_child(self._process, its)

    def values(self) -> Iterator[Value]:
        while self._digest is None and self._here_values is None:
            message = self._receive()
            if message is None:  # it could not start: the member is read here instead
                assert self._archive is not None
                self._here = InProcess(self._archive, self._problems)
                self._here_values = self._here.values()
                break
            kind, payload = message
            if kind == _VALUES:
                for item in payload:
                    if isinstance(item, str):  # a finding met before the next value
                        self._problems.append(item)
                    else:
                        yield item
            elif kind == _END:
                self._digest = payload
            else:
                raise payload
        if self._here_values is not None:  # the same values, read one after the other
            yield from self._here_values

    def digest(self) -> str:
        for _ in self.values():  # the walk stopped short of the end: read on to the digest
            pass
        if self._here is not None:
            return self._here.digest()
        assert self._digest is not None
        return self._digest

    def _receive(self) -> tuple[str, Any] | None:
        """The next message; None where the process exited by itself (not killed) before
        sending any, having failed to start, and the member can be read here."""
        try:
            message: tuple[str, Any] = self._connection.recv()
            self._heard = True
        except (EOFError, OSError):
            self._process.join(5)
            code = self._process.exitcode
            if not self._heard and code is not None and code > 0 and self._archive is not None:
                return None
            raise reader_gone(bundle.REPORTS, self._process) from None
        return message

    def close(self) -> None:
        """End the reading process (at once where the walk stopped before the end)."""
        self._connection.close()
        end_reader(self._process, finished=self._digest is not None)


def opened(archive: zipfile.ZipFile, path: Path, problems: list[str]) -> InProcess | Beside:
    """The member's reader: beside the walk when it is large and a second core is there."""
    info = archive.NameToInfo.get(bundle.REPORTS)
    if info is None or info.file_size < BESIDE_FROM or cores_usable() < 2:
        return InProcess(archive, problems)
    return Beside(path, problems, archive)


def read_beside(connection: Connection, path: str) -> None:
    """The reading process's whole life: read the member, send its values in order with the
    findings between them, then its SHA-256; or the error that stopped the reading."""
    from devposture.collector.parent_death import die_with_parent  # noqa: PLC0415

    parent = multiprocessing.parent_process()
    die_with_parent(None if parent is None else parent.pid, "verifier's body reader")
    ignore_interrupts()
    batch_process()  # the member's values, parsed a batch at a time
    try:
        with zipfile.ZipFile(path) as archive:
            problems: list[str] = []
            reading = InProcess(archive, problems)
            batch: list[object] = []
            reports = 0
            for value in reading.values():
                batch += problems
                problems.clear()
                batch.append(value)
                reports += len(value[1]) if isinstance(value[1], list | FactLine) else 1
                if reports >= SEND_REPORTS:
                    connection.send((_VALUES, batch))
                    batch, reports = [], 0
            digest = reading.digest()
            connection.send((_VALUES, batch + problems))
            connection.send((_END, digest))
    except BrokenPipeError:  # the walk stopped first, and closed its end
        return
    except Exception as exc:  # raised again in the walk, as it would have been there
        # A damaged member (its inflate or CRC-32 fails) is then named unreadable by the
        # verifier, as when read in its own process.
        with contextlib.suppress(OSError):
            send_error(connection, exc)
