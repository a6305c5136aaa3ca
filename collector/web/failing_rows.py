"""Failing-longest's rows, filtered, as `report failing` writes them (`FAILING_COLUMNS`, with
the clause texts): the page and its download carry the same columns as the CLI's file."""

from __future__ import annotations

import datetime as dt

from devposture.collector.company_time import stamp, zone_of
from devposture.collector.render import Row
from devposture.collector.reports import _Reasons  # the CLI's own reason columns
from devposture.collector.reports import _texts as clause_texts  # the CLI's own columns
from devposture.collector.store.fleet import Failure
from devposture.policy import Policy
from devposture.policy.catalogs import Lang


def failing_page_rows(
    policy: Policy, at: dt.datetime, failures: list[Failure], lang: Lang = "zh"
) -> list[Row]:
    """The rows, each reason also in words (`reason_text`, in `lang`), as the CLI's file has it:
    the download's column was empty."""
    zone, words = zone_of(policy), _Reasons(policy, lang)
    return [
        clause_texts(policy, f.check_id) | {
            "device": f.device_id, "hostname": f.hostname, "check": f.check_id,
            "failing_since": stamp(f.since, zone),
            "days": round((at - f.since).total_seconds() / 86400, 1), **words.columns(f.reason),
        }
        for f in failures
    ]  # fmt: skip
