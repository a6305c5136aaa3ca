"""What the employee was told, kept in the agent's state folder (`notified.json`).

Written whole and atomically (`state.write_atomic`), after a notice was shown: a crash
before the write can repeat a notice once, never lose one. A file that cannot be read is
treated as empty (again: a repeat rather than silence).
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from devposture.agent.notify.decide import Told
from devposture.agent.state import write_atomic

VERSION = 1


def load(path: Path) -> dict[str, Told]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return {
            check_id: Told(
                dt.datetime.fromisoformat(t["deadline"]) if t["deadline"] else None,
                dt.datetime.fromisoformat(t["told_at"]),
                bool(t["reminded"]),
            )
            for check_id, t in data["checks"].items()
        }
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


def save(path: Path, told: dict[str, Told]) -> None:
    checks = {
        check_id: {
            "deadline": t.deadline.isoformat() if t.deadline else None,
            "told_at": t.told_at.isoformat(),
            "reminded": t.reminded,
        }
        for check_id, t in sorted(told.items())
    }
    body = json.dumps({"version": VERSION, "checks": checks}, indent=1) + "\n"
    write_atomic(path, body.encode(), 0o600)
