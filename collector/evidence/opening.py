"""How things stood when a period began: the chain entries an audit bundle opens with.

For each device and check its last state; for each device its last report (silence is judged
from it; since schema 14 the group entry that sealed it) and its revocation or retirement, if
any; and the events of every waiver not expired by the period's start. Folded from the chain
in sequence order, keeping only the latest entry per key: bounded by the fleet and its
waivers, however long the history.

A checkpoint (`store/checkpoints.py`) is the list of these entries' sequence numbers as of one
entry of the chain. An export starts from the latest checkpoint before its period and folds
only the entries after it, instead of every state change since the first.

Pure: no database.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from devposture.collector.evidence.chain import (
    DEVICE,
    REPORT,
    REPORT_GROUP,
    STATE,
    WAIVER,
    Entry,
    group_records,
)
from devposture.collector.evidence.fact_groups import REPORT_FACTS, columns

# The kinds an opening is folded from (admin entries say nothing about a standing).
KINDS = (REPORT, REPORT_GROUP, REPORT_FACTS, STATE, WAIVER, DEVICE)
# Identity events after which a device no longer counts (its status never returns to active).
GONE = ("revoked", "retired")


@dataclass
class _Waiver:
    expires_us: int
    seqs: list[int] = field(default_factory=list)


class Opening:
    """The opening entries' sequence numbers as of the last entry folded (`through`)."""

    def __init__(self, through: int = 0) -> None:
        self.through = through
        self._states: dict[tuple[str, str], int] = {}
        self._reports: dict[str, int] = {}
        self._gone: dict[str, int] = {}
        self._waivers: dict[str, _Waiver] = {}

    def fold(self, entries: Iterable[Entry]) -> int:
        """Fold entries after `through`, in sequence order; returns how many."""
        count = 0
        for entry in entries:
            count += 1
            self.through = max(self.through, entry.seq)
            if entry.kind not in KINDS:
                continue
            record = entry.record()
            if entry.kind == STATE:
                self._states[(str(record["device_id"]), str(record["check_id"]))] = entry.seq
            elif entry.kind == REPORT:
                self._reports[str(record["device_id"])] = entry.seq
            elif entry.kind == REPORT_GROUP:  # the group stands for each of its reports
                for report in group_records(entry):
                    self._reports[str(report["device_id"])] = entry.seq
            elif entry.kind == REPORT_FACTS:  # its devices, one column
                self._reports.update(dict.fromkeys(map(str, columns(entry)["device_id"]),
                                                   entry.seq))  # fmt: skip
            elif entry.kind == DEVICE and record.get("action") in GONE:
                self._gone.setdefault(str(record["device_id"]), entry.seq)
            elif entry.kind == WAIVER:
                waiver = self._waivers.setdefault(
                    str(record["waiver_id"]), _Waiver(int(str(record["expires_us"])))
                )
                waiver.seqs.append(entry.seq)
        return count

    def forget_expired(self, at_us: int) -> None:
        """Drop the waivers expired by `at_us`: no opening from then on holds them."""
        self._waivers = {k: w for k, w in self._waivers.items() if w.expires_us > at_us}

    def seqs(self, start_us: int | None = None) -> list[int]:
        """The opening's entries, in sequence order; waivers expired by `start_us` left out."""
        waivers = [s for w in self._waivers.values()
                   if start_us is None or w.expires_us > start_us for s in w.seqs]  # fmt: skip
        # A report group holds the last reports of several devices: named once.
        return sorted({*self._states.values(), *self._reports.values(), *self._gone.values(),
                       *waivers})  # fmt: skip
