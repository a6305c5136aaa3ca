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
