"""Both ways `fleet_figures_as_of` counts the fleet at a moment (from the current verdicts,
looking up only those changed since; or from the history up to the moment), and the one it
chooses, give the counts of judging every device then through `compliance.standings`, for the
whole fleet and for a group, at moments before, during and after the waivers, grace periods
and silences of `tests.collector.mixed_fleet`; and each way is chosen when it reads fewer
rows."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest

from devposture.collector.compliance import STATES
from devposture.collector.reports import fleet_rows
from devposture.collector.store import Store
from devposture.collector.store.base import to_us
from devposture.collector.store.fleet import by_history, changed_since, fleet_figures_as_of
from devposture.policy import Policy
from tests.collector.mixed_fleet import NOW, mixed_fleet
from tests.databases import fresh_database

MOMENTS = [NOW - dt.timedelta(hours=h) for h in (0, 3, 29, 50, 100, 24 * 6, 24 * 19, 24 * 30)]


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Store, Policy]]:
    store, policy = mixed_fleet(fresh_database(tmp_path_factory.mktemp("ways")))
    yield store, policy
    store.close()


def _judged(
    store: Store, policy: Policy, at: dt.datetime, group: str | None
) -> dict[str, dict[str, int]]:
    return {
        str(row["check"]): {state: int(str(row[state.lower()])) for state in STATES}
        for row in fleet_rows(store, policy, at, exact=True, group=group)
    }


@pytest.mark.parametrize("group", [None, "财务部", "sales-eu", "nobody"])
@pytest.mark.parametrize("way", [None, "verdicts", "history"])
@pytest.mark.parametrize(
    "at", MOMENTS, ids=lambda at: f"now-{(NOW - at) / dt.timedelta(hours=1):g}h"
)
def test_each_way_counts_the_fleet_as_judged_then(
    fleet: tuple[Store, Policy], at: dt.datetime, way: str | None, group: str | None
) -> None:
    store, policy = fleet
    counted = fleet_figures_as_of(store._db, policy, at, group, way=way)
    assert counted == _judged(store, policy, at, group)


def test_the_way_chosen_reads_fewer_rows(fleet: tuple[Store, Policy]) -> None:
    """Now, few verdicts changed since and the whole history came before: from the verdicts.
    Before the first change, every verdict changed since and no history came before: from
    the history (nothing to read)."""
    store, _ = fleet
    db = store._db
    now = to_us(NOW)
    assert changed_since(db, now) == 0  # (then no verdict is looked up at all)
    assert not by_history(db, now, changed_since(db, now))
    first = db.execute("SELECT MIN(since_us) FROM state_changes").fetchone()[0]
    assert changed_since(db, first - 1) > 0
    assert by_history(db, first - 1, changed_since(db, first - 1))
