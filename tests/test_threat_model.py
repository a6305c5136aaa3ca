"""docs/threat-model.md stays true to the code: every row of its table names at least one test
that shows the protection works, every test it names exists, and every file it names as
"where in the code" exists. A test renamed or removed, or a row added without a test, fails
here instead of leaving a claim nobody checks."""

from __future__ import annotations

import ast
import functools
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "threat-model.md"
ROW = re.compile(r"^\| (\d+) \|")
# Phrases a row used to admit a missing test with; none may come back.
GAPS = re.compile(r"no (dedicated )?test|not tested|no equivalent test", re.IGNORECASE)


def _rows() -> list[tuple[str, str, str]]:
    """(number, where in the code, tests) of each row of the threats table."""
    rows = []
    for line in DOC.read_text(encoding="utf-8").splitlines():
        if ROW.match(line):
            cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
            assert len(cells) == 5, f"row {cells[0]} does not have five cells"
            rows.append((cells[0], cells[3], cells[4]))
    return rows


@functools.cache  # a file is named by many rows: parsed once (5.3 s -> 0.3 s)
def _test_names(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {
        n.name for n in ast.walk(tree)
        if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and n.name.startswith("test")
    }  # fmt: skip


def _references(cell: str) -> list[tuple[str, str | None]]:
    """`file::test`, `::test` (the file before) and `file` references, as (file, test)."""
    found: list[tuple[str, str | None]] = []
    current = ""
    for ref in re.findall(r"`([^`]+)`", cell):
        if ref.startswith("::"):
            found.append((current, ref[2:]))
        elif "::" in ref:
            current, name = ref.split("::", 1)
            found.append((current, name))
        else:
            current = ref
            found.append((ref, None))
    return found


def test_the_table_has_every_row_in_order() -> None:
    numbers = [int(n) for n, _, _ in _rows()]
    assert numbers == list(range(1, len(numbers) + 1)) and len(numbers) >= 35


def test_every_row_names_tests_that_exist() -> None:
    problems = []
    for number, _, tests in _rows():
        references = _references(tests)
        if not references:
            problems.append(f"row {number} names no test")
        if GAPS.search(tests):
            problems.append(f"row {number} admits a missing test: {tests}")
        for file, name in references:
            path = ROOT / "tests" / file
            if not file.endswith(".py") or not path.is_file():
                problems.append(f"row {number}: no test file tests/{file}")
            elif name is not None and name not in _test_names(path):
                problems.append(f"row {number}: no test {name} in tests/{file}")
    assert problems == []


def test_every_file_a_row_names_as_where_in_the_code_exists() -> None:
    problems = []
    for number, where, _ in _rows():
        for ref in re.findall(r"`([^`]+)`", where):
            if "/" in ref and not (ROOT / ref).exists():
                problems.append(f"row {number}: {ref} does not exist")
    assert problems == []
