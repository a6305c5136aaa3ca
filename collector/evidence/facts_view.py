"""`audit facts`: a bundle's report bodies as JSON, for an auditor who wants to read what a
device said. Format 3 bundles keep each body once, as the protobuf the agent sent (converting
every body to JSON was most of a quarter's export time); this shows them on demand.

It reads, it does not verify: `audit verify` says whether the bodies are the collector's.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from devposture.collector.evidence import bundle, deflate
from devposture.policy.cli_messages import Worded


class NoSuchReport(Worded):
    """The bundle holds no body for the report asked for: said in the auditor's language
    (it said it in both, English then Chinese, whatever the reader's)."""


def report_facts(path: Path, report_id: str | None = None) -> Iterator[dict[str, Any]]:
    """Each report body of the bundle (or only `report_id`'s) as {seq, report_id, facts},
    streamed from the member: a quarter's bodies are never held at once."""
    found = False
    with (zipfile.ZipFile(path) as archive,
          deflate.inflating(archive.open(bundle.REPORTS)) as member):  # fmt: skip
        for raw in member:
            if not raw.strip():
                continue
            try:
                seq, bodies = _bodies(json.loads(raw))
            except (ValueError, bundle.Malformed):
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


def _bodies(line: object) -> tuple[int, list[tuple[str, bytes]]]:
    """(seq, [(report id, body)]) of a line: one report's, or a report group's (format 4)."""
    if isinstance(line, dict) and "reports" in line:
        return bundle.parse_group_bodies(line)
    seq, key, body = bundle.parse_report(line)
    return seq, [(key, body)]
