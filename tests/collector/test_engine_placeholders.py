"""The store's placeholders (`?` and `:name`) as PostgreSQL's own `$1`, `$2` … sent by raw
cursors (`store/engine.to_postgresql`): psycopg's `%s` were parsed again at every execution of
a group's long statements. Pure conversion, then the same statements run on the PostgreSQL
leg: literals, casts and `%` untouched, names put in their order, values going where they
went before."""

from __future__ import annotations

from pathlib import Path

import pytest

from devposture.collector.store import engine
from devposture.collector.store.engine import to_postgresql
from tests.databases import fresh_database, on_postgresql, raw


def test_question_marks_become_numbered_placeholders_outside_literals() -> None:
    text, names = to_postgresql(
        "SELECT ?, 'it''s ? and :x and 50%', x::text, ? FROM t WHERE a LIKE 'a%' AND b = ?"
    )
    assert text == ("SELECT $1, 'it''s ? and :x and 50%', x::text, $2 FROM t WHERE a LIKE 'a%'"
                    " AND b = $3")  # fmt: skip
    assert names == ()


def test_names_become_numbered_placeholders_with_their_order() -> None:
    text, names = to_postgresql("UPDATE t SET a = :a, b = :b WHERE id = :id AND a <> :a")
    assert text == "UPDATE t SET a = $1, b = $2 WHERE id = $3 AND a <> $4"
    assert names == ("a", "b", "id", "a")
    assert engine._statement(text, None) == (text, None)
    assert engine._statement("UPDATE t SET a = :a, b = :b WHERE id = :id AND a <> :a",
                             {"a": 1, "b": 2, "id": 3}) == (text, [1, 2, 3, 1])  # fmt: skip


def test_a_statement_mixing_both_kinds_is_refused() -> None:
    with pytest.raises(ValueError, match="either"):
        to_postgresql("SELECT ? WHERE x = :x")


def test_statements_run_with_their_values_where_they_went(tmp_path: Path) -> None:
    """On either engine (on SQLite the store's own placeholders, as always): positional and
    named values, a `%` in a literal and in a LIKE, a `?` in a literal, a cast, executemany."""
    database = raw(fresh_database(tmp_path))
    try:
        with database.transaction() as cur:
            cur.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, a TEXT, b INTEGER)")
            cur.executemany("INSERT INTO t (id, a, b) VALUES (?, ?, ?)",
                            [(1, "50% off?", 5), (2, "plain", 7)])  # fmt: skip
            cur.executemany("UPDATE t SET b = :b + b WHERE id = :id",
                            [{"id": 1, "b": 10}, {"id": 2, "b": 20}])  # fmt: skip
        rows = database.execute(
            "SELECT id, a, b, 'a ? and 100%' FROM t WHERE a LIKE '%\\%%' ESCAPE '\\' OR b = :b"
            " ORDER BY id", {"b": 27},
        ).fetchall()  # fmt: skip
        assert [tuple(r) for r in rows] == [(1, "50% off?", 15, "a ? and 100%"),
                                            (2, "plain", 27, "a ? and 100%")]  # fmt: skip
        cast = "CAST(? AS TEXT)" if not on_postgresql() else "?::text"
        (value,) = database.execute(f"SELECT {cast} || ?", ("x", "y")).fetchone()
        assert value == "xy"
    finally:
        database.close()
