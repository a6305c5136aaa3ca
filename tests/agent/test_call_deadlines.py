"""Every call the agent makes to the collector carries a deadline: a hung collector must never
hang the agent. Read from the source, so a new call without one fails here."""

from __future__ import annotations

import ast
from pathlib import Path

AGENT = Path(__file__).resolve().parents[2] / "agent"
RPCS = {"Enroll", "Report", "ReportBatch", "Renew", "Reestablish"}


def _rpc_name(call: ast.Call) -> str | None:
    """`stub.Report(...)` and `stub.Report.future(...)` both call Report."""
    func = call.func
    if isinstance(func, ast.Attribute) and func.attr == "future":
        func = func.value
    if isinstance(func, ast.Attribute) and func.attr in RPCS:
        return func.attr
    return None


def _rpc_calls() -> list[tuple[str, int, ast.Call]]:
    found = []
    for path in sorted(AGENT.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and _rpc_name(node) is not None:
                found.append((path.name, node.lineno, node))
    return found


def test_every_agent_rpc_has_a_timeout() -> None:
    calls = _rpc_calls()
    assert {_rpc_name(c) for _, _, c in calls} == RPCS
    missing = [
        f"{name}:{line}" for name, line, call in calls
        if not any(k.arg == "timeout" for k in call.keywords)
    ]  # fmt: skip
    assert missing == []
