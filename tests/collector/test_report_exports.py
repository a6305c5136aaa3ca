"""Every report view in JSON and CSV carries each row's clause id and the clause's and check's
texts in Chinese and English, so a spreadsheet needs no other source; the terminal table leaves
the long texts out."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from pathlib import Path

import pytest

from devposture.agent.transport import open_channel, send_report
from devposture.collector.compliance import Waiver
from devposture.collector.render import FILE_ONLY_COLUMNS, Row, render
from devposture.collector.reports import (
    DEVICE_COLUMNS,
    FAILING_COLUMNS,
    FLEET_COLUMNS,
    HISTORY_COLUMNS,
    device_rows,
    failing_rows,
    fleet_rows,
    history_rows,
)
from devposture.policy import default_policy
from tests.conftest import EnrolledAgent, LiveCollector, enroll_agent, make_report

VIEWS = ("fleet", "device", "failing", "history")


@pytest.fixture
def reported(live_collector: LiveCollector, agent: EnrolledAgent) -> LiveCollector:
    """A device whose firewall has been off for a week (failing past its grace), reporting."""
    week_ago = dt.datetime.now(dt.UTC) - dt.timedelta(days=7)
    with open_channel(agent.state, agent.enrollment) as channel:
        for at in (week_ago, None):
            send_report(
                channel, make_report(agent.enrollment.device_id, at, firewall_enabled=False)
            )
    return live_collector


def _view(
    collector: LiveCollector, view: str, device_id: str
) -> tuple[list[Row], tuple[str, ...]]:
    policy, at = default_policy(), dt.datetime.now(dt.UTC)
    store = collector.store()
    try:
        if view == "fleet":
            return fleet_rows(store, policy, at), FLEET_COLUMNS
        if view == "device":
            return device_rows(store, policy, at), DEVICE_COLUMNS
        if view == "failing":
            return failing_rows(store, policy, at), FAILING_COLUMNS
        return history_rows(store, device_id, at, policy), HISTORY_COLUMNS
    finally:
        store.close()


@pytest.mark.parametrize("view", VIEWS)
def test_json_and_csv_rows_carry_the_clause_and_its_texts(
    reported: LiveCollector, agent: EnrolledAgent, view: str
) -> None:
    rows, columns = _view(reported, view, agent.enrollment.device_id)
    assert rows, f"the {view} view is empty: the test proves nothing"
    policy = default_policy()
    for row in json.loads(render(rows, columns, "json")):
        check = policy.check(row["check"])
        assert check is not None
        clause = policy.clause(check.clause)
        assert row["clause"] == check.clause
        assert (row["clause_text_zh"], row["clause_text_en"]) == (clause.text_zh, clause.text_en)
        assert (row["clause_title_zh"], row["check_title_en"]) == (clause.title_zh, check.title_en)
    text = render(rows, columns, "csv")
    assert text.startswith("\ufeff")  # Excel's BOM
    header, *lines = list(csv.reader(io.StringIO(text.removeprefix("\ufeff"))))
    assert set(FILE_ONLY_COLUMNS) <= set(header) and "clause" in header
    assert all(line[header.index("clause_text_en")] for line in lines)


def test_the_table_leaves_the_long_texts_out(reported: LiveCollector, agent: EnrolledAgent) -> None:
    rows, columns = _view(reported, "device", agent.enrollment.device_id)
    table = render(rows, columns, "table")
    assert "CLAUSE" in table.splitlines()[0]
    assert not any(c.upper() in table for c in FILE_ONLY_COLUMNS)
    assert default_policy().clause("6.3.2").text_en not in table


def test_the_current_fleet_counted_in_sql_equals_the_one_judged_from_history(
    reported: LiveCollector, agent: EnrolledAgent
) -> None:
    policy, at = default_policy(), dt.datetime.now(dt.UTC)
    store = reported.store()
    try:
        fast = fleet_rows(store, policy, at, current=True)
        exact = fleet_rows(store, policy, at, exact=True)
    finally:
        store.close()
    assert fast == exact
    assert any(row["fail"] for row in exact), "nothing failing: the comparison proves little"


def _failing_keys(rows: list[Row]) -> list[tuple[object, object, object]]:
    return [(r["device"], r["check"], r["failing_since"]) for r in rows]


def test_failing_now_read_in_sql_equals_failing_judged_from_history(
    reported: LiveCollector, agent: EnrolledAgent, tmp_path: Path
) -> None:
    """The same devices, checks and since-when, in the same order, whether read from the
    current verdicts or judged from the history; a waived failure is in neither."""
    second = enroll_agent(reported, tmp_path / "second", "second-host")
    week_ago = dt.datetime.now(dt.UTC) - dt.timedelta(days=7)
    with open_channel(second.state, second.enrollment) as channel:
        for at in (week_ago, None):
            send_report(
                channel, make_report(second.enrollment.device_id, at, firewall_enabled=False)
            )
    policy, now = default_policy(), dt.datetime.now(dt.UTC)
    store = reported.store()
    try:
        before = failing_rows(store, policy, now, current=True)
        assert _failing_keys(before) == _failing_keys(failing_rows(store, policy, now))
        assert {r["device"] for r in before} == {
            agent.enrollment.device_id, second.enrollment.device_id
        }
        store.waivers.add_waiver(
            Waiver("w-test0002", second.enrollment.device_id, "firewall", "IT", "replacing it",
                   now, now + dt.timedelta(days=3)),
            now,
        )  # fmt: skip
        fast = failing_rows(store, policy, now, current=True)
        assert _failing_keys(fast) == _failing_keys(failing_rows(store, policy, now))
        assert second.enrollment.device_id not in {r["device"] for r in fast}
    finally:
        store.close()
