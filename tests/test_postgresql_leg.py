"""Every end-to-end module with a test that runs only on PostgreSQL is in `make test`'s
PostgreSQL leg.

The SQLite leg skips such a module (it has no server to fault); the PostgreSQL leg runs
tests/collector, tests/web and the end-to-end modules the Makefile lists in
E2E_ON_POSTGRESQL. A PostgreSQL-only module left off that list would be skipped by both legs,
and CI would pass without ever running it: tests/e2e/test_database_faults.py for one commit,
and the refused move into a database in use (tests/e2e/test_audit_language.py) since it was
written.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _listed() -> set[str]:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    found = re.search(r"^E2E_ON_POSTGRESQL = ((?:.*\\\n)*.*)$", makefile, re.MULTILINE)
    assert found, "the Makefile has no E2E_ON_POSTGRESQL list"
    return set(found.group(1).replace("\\\n", " ").split())


def test_every_postgresql_only_end_to_end_module_is_in_the_postgresql_leg() -> None:
    listed = _listed()
    assert listed and all((ROOT / name).is_file() for name in listed), listed
    only_there = {
        str(path.relative_to(ROOT))
        for path in (ROOT / "tests" / "e2e").glob("test_*.py")
        if re.search(r"skipif\(\s*not on_postgresql\(\)", path.read_text(encoding="utf-8"))
    }
    assert "tests/e2e/test_database_faults.py" in only_there  # the search finds them
    assert only_there <= listed, f"never run by CI: {sorted(only_there - listed)}"


def test_a_test_marked_engine_free_that_reaches_the_engine_fails_and_one_that_does_not_passes(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The PostgreSQL leg leaves engine_free tests out (Makefile, unit-postgresql): the mark
    must be true, or a test whose outcome depends on the engine would run on SQLite only."""
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    pytester.makeconftest("from tests.conftest import pytest_runtest_protocol  # noqa: F401\n")
    pytester.makeini("[pytest]\nmarkers =\n    engine_free: see pyproject.toml\n")
    pytester.makepyfile(
        test_marked="""
        import pytest
        from tests.databases import collector_database, fresh_database

        pytestmark = pytest.mark.engine_free

        @pytest.fixture
        def database(tmp_path):
            return fresh_database(tmp_path)

        def test_parses():
            assert int("7") == 7

        def test_asks_in_its_body():
            collector_database()

        def test_asks_in_a_fixture(database):
            pass
        """,
        test_unmarked="""
        from tests.databases import fresh_database

        def test_may_ask(tmp_path):
            assert fresh_database(tmp_path) is not None
        """,
    )
    result = pytester.runpytest_subprocess("-p", "no:randomly", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, failed=1, errors=1)
    for name in ("test_asks_in_its_body", "test_asks_in_a_fixture"):
        result.stdout.fnmatch_lines(
            [f"test_marked.py::{name} is marked engine_free but uses the test run's database*"]
        )
