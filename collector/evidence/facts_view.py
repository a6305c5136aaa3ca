"""`audit facts`: a bundle's report bodies as JSON, for an auditor who wants to read what a
device said. Format 3 bundles keep each body once, as the protobuf the agent sent (converting
every body to JSON was most of a quarter's export time); this shows them on demand.

It reads, it does not verify: `audit verify` says whether the bodies are the collector's.
A format-5 bundle keeps each body as its record's own bytes and its fact set (`fact_groups`):
the bodies are rebuilt here, the chain's groups read beside the lines and the window of fact
sets and parts replayed as the verifier replays it.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from devposture.collector.evidence import bundle, chain, deflate, fact_groups, fact_sets
from devposture.policy.cli_messages import Worded


class NoSuchReport(Worded):
    """The bundle holds no body for the report asked for: said in the auditor's language
    (it said it in both, English then Chinese, whatever the reader's)."""


def report_facts(path: Path, report_id: str | None = None) -> Iterator[dict[str, Any]]:
    """Each report body of the bundle (or only `report_id`'s) as {seq, report_id, facts},
    streamed from the member: a quarter's bodies are never held at once."""
    found = False
    with (zipfile.ZipFile(path) as archive,
          deflate.inflating(archive.open(bundle.REPORTS)) as member,
          deflate.inflating(archive.open(bundle.CHAIN)) as chain_member):  # fmt: skip
        groups = _FactGroups(chain_member)
        for raw in member:
            if not raw.strip():
                continue
            try:
                line = json.loads(raw)
                fact_line = isinstance(line, dict) and "sets" in line
                seq, bodies = groups.bodies(line) if fact_line else _bodies(line)
            except (ValueError, KeyError, bundle.Malformed):
                continue  # `audit verify` names a malformed line
            for key, body in bodies:
                if report_id is not None and key != report_id:
                    continue
                found = True
                yield {"seq": seq, "report_id": key, "facts": bundle.facts_of(body)}
    if report_id is not None and not found:
        raise NoSuchReport(
            "{bundle} holds no body for report {report_id}: check the id (the chain's report"
            " entries name every report of the period), or its body was pruned under the"
            " retention policy (the bundle's manifest says so).",
            bundle=path.name, report_id=report_id,
        )


class _FactGroups:
    """The chain's format-5 groups, read as far as the lines of `reports.jsonl` have come,
    and the window of fact sets and parts replayed over them (every group entry moves it on,
    its line read or not; each report's fact set marked used, as the verifier marks it)."""

    def __init__(self, chain_member: Iterator[bytes]) -> None:
        self._entries = self._groups(chain_member)
        self._replay = fact_groups.Replay()
        self._next: chain.Entry | None = next(self._entries, None)

    @staticmethod
    def _groups(chain_member: Iterator[bytes]) -> Iterator[chain.Entry]:
        for raw in chain_member:
            if raw.strip():
                item = json.loads(raw)
                if isinstance(item, dict) and item.get("kind") == fact_groups.REPORT_FACTS:
                    yield bundle.parse_entry(item)

    def bodies(self, line: object) -> tuple[int, list[tuple[str, bytes]]]:
        """(seq, [(report id, body)]) of a format-5 line: each report of its group whose
        fact set the window holds, rebuilt (the others' bodies were pruned)."""
        seq, sets, parts = fact_groups.parse_line(line)
        while self._next is not None and self._next.seq < seq:  # groups without a line
            self._named(self._next)
            self._replay.done()
            self._next = next(self._entries, None)
        entry = self._next
        if entry is None or entry.seq != seq:
            return seq, []  # a line for no group: `audit verify` names it
        self._replay.take(sets, parts)
        cut = fact_groups.ids_cut(entry)
        out: list[tuple[str, bytes]] = []
        for record in self._named(entry):
            held = self._replay.window.sets.get(str(record.get("fact_set")))
            if held is not None:
                own = fact_groups.own_bytes(record, cut)
                body = fact_sets.rebuild(own, held, self._replay.part)
                out.append((str(record.get("report_id")), body))
        self._replay.done()
        self._next = next(self._entries, None)
        return seq, out

    def _named(self, entry: chain.Entry) -> list[dict[str, object]]:
        """A group's records, each one's fact set marked used in the window."""
        records = fact_groups.records(entry)
        for record in records:
            self._replay.named(record.get("fact_set"))
        return records


def _bodies(line: object) -> tuple[int, list[tuple[str, bytes]]]:
    """(seq, [(report id, body)]) of a line: one report's, or a report group's (format 4)."""
    if isinstance(line, dict) and "reports" in line:
        return bundle.parse_group_bodies(line)
    seq, key, body = bundle.parse_report(line)
    return seq, [(key, body)]
