"""The agent's outbox: every report is on disk before it is sent, and leaves only when acknowledged.

At-least-once delivery (DESIGN principle 5): a report is written and fsynced first; a crash
before the acknowledgement means it is sent again after restart, and the collector stores its
id once. A report the collector will never accept (malformed, too large) is set aside in
`rejected/` with the reason, so it cannot block the reports behind it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from google.protobuf.message import DecodeError

from agent.state import ensure_private_dir, fsync_dir, write_atomic
from devposture.v1 import devposture_pb2 as pb

log = logging.getLogger(__name__)

SUFFIX = ".report"


@dataclass(frozen=True)
class Pending:
    path: Path
    report: pb.PostureReport


class Outbox:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.rejected_dir = directory / "rejected"

    def put(self, report: pb.PostureReport) -> Path:
        """Durably store a report; returns once it is on disk."""
        ensure_private_dir(self.directory)
        # Names sort by collection time, so the oldest report is sent first.
        micros = report.collected_at.seconds * 1_000_000 + report.collected_at.nanos // 1000
        path = self.directory / f"{micros:020d}-{report.report_id}{SUFFIX}"
        write_atomic(path, report.SerializeToString(deterministic=True), 0o600)
        return path

    def pending(self) -> list[Pending]:
        """Every stored report, oldest first. An unreadable file is set aside, not retried."""
        if not self.directory.is_dir():
            return []
        items = []
        for path in sorted(self.directory.glob(f"*{SUFFIX}")):
            report = pb.PostureReport()
            try:
                report.ParseFromString(path.read_bytes())
            except DecodeError:
                self.set_aside(path, "the file is corrupt and cannot be decoded")
                continue
            items.append(Pending(path, report))
        return items

    def remove(self, item: Pending) -> None:
        """Forget a report the collector acknowledged."""
        item.path.unlink(missing_ok=True)
        fsync_dir(self.directory)

    def set_aside(self, path: Path, reason: str) -> None:
        ensure_private_dir(self.rejected_dir)
        target = self.rejected_dir / path.name
        path.replace(target)
        write_atomic(target.with_suffix(".reason"), reason.encode("utf-8"), 0o600)
        fsync_dir(self.directory)
        log.warning("report %s set aside: %s", path.stem, reason)

    def rejected_count(self) -> int:
        if not self.rejected_dir.is_dir():
            return 0
        return sum(1 for _ in self.rejected_dir.glob(f"*{SUFFIX}"))
