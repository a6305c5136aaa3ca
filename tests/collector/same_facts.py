"""Reports with the same facts as another, at other times: what the ingest's memories
(verdicts, validation) are keyed by, for their tests."""

from __future__ import annotations

import datetime as dt
import uuid

from devposture.collector.intake import facts_key
from devposture.v1 import devposture_pb2 as pb
from tests.e2e.fleet import timestamp


def again(template: pb.PostureReport, collected: dt.datetime) -> pb.PostureReport:
    """The same facts, another report id and collection time."""
    report = pb.PostureReport()
    report.CopyFrom(template)
    report.report_id = str(uuid.uuid4())
    report.collected_at.CopyFrom(timestamp(collected))
    return report


def key(report: pb.PostureReport) -> bytes | None:
    """The memories' key as the collector makes it, from the report's stored body."""
    return facts_key(report.SerializeToString(deterministic=True))
