"""Every call the agent makes to the collector carries a deadline: a hung collector must never
hang the agent. Read from the source, so a new call without one fails here."""

from __future__ import annotations

import ast
from pathlib import Path

AGENT = Path(__file__).resolve().parents[2] / "agent"
RPCS = {"Enroll", "Report", "ReportBatch", "Renew", "Reestablish"}


def _rpc_calls() -> list[tuple[str, int, ast.Call]]:
    found = []
    for path in sorted(AGENT.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in RPCS
            ):
                found.append((path.name, node.lineno, node))
    return found


def test_every_agent_rpc_has_a_timeout() -> None:
    calls = _rpc_calls()
    assert {c.func.attr for _, _, c in calls if isinstance(c.func, ast.Attribute)} == RPCS
    missing = [
        f"{name}:{line}" for name, line, call in calls
        if not any(k.arg == "timeout" for k in call.keywords)
    ]  # fmt: skip
    assert missing == []
