"""The standing rule is written once (collector/standing_rule.py): the Python decision and the
SQL CASE the store judges with are walked from the same steps, and here the CASE, evaluated by
the engine (SQLite or PostgreSQL, by the leg), gives the Python answer for every combination
of facts."""

from __future__ import annotations

import itertools
from pathlib import Path

from devposture.collector.standing_rule import Conditions, Facts, decide, sql_case
from devposture.collector.store import Store
from tests.databases import fresh_database

LATEST = (None, "PASS", "FAIL", "UNKNOWN")


def _sql(value: bool) -> str:
    return "TRUE" if value else "FALSE"


def test_the_sql_case_decides_as_the_rule_for_every_combination(tmp_path: Path) -> None:
    store = Store.open(fresh_database(tmp_path))
    try:
        checked = 0
        for silent, waived, latest, in_grace in itertools.product(
            (False, True), (False, True), LATEST, (False, True)
        ):
            facts = Facts(silent=silent, waived=waived, latest=latest, in_grace=in_grace)
            case = sql_case(Conditions(
                silent=_sql(silent), waived=_sql(waived), latest=":latest",
                in_grace=_sql(in_grace),
            ))  # fmt: skip
            (got,) = store._db.execute(
                f"SELECT {case}",
                {"latest": latest},
            ).fetchone()
            assert got == decide(facts), facts
            checked += 1
        assert checked == 32
    finally:
        store.close()


def test_the_steps_come_in_the_rule_s_order() -> None:
    stale = Facts(silent=True, waived=True, latest="FAIL", in_grace=True)
    assert decide(stale) == "STALE"  # silent beats a waiver
    assert decide(Facts(silent=False, waived=True, latest="FAIL", in_grace=True)) == "EXEMPT"
    assert decide(Facts(silent=False, waived=False, latest="FAIL", in_grace=True)) == "GRACE"
    assert decide(Facts(silent=False, waived=False, latest="FAIL", in_grace=False)) == "FAIL"
    assert decide(Facts(silent=False, waived=False, latest="UNKNOWN", in_grace=True)) == "UNKNOWN"
    assert decide(Facts(silent=False, waived=False, latest=None, in_grace=False)) == "UNKNOWN"
    # A check without a waiver in force leaves the EXEMPT step out of the SQL.
    assert "EXEMPT" not in sql_case(Conditions("s", None, "l", "g"))
