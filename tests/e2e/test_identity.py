"""Clones against restarts, with real agent and collector processes: a state folder copied to
a second computer is flagged once the original has renewed; the original restarting (many
times, renewing in between) is never flagged."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.e2e.conftest import AGENT, CollectorProcess, enroll, open_store, run


def _clone_flags(c: CollectorProcess) -> list[object]:
    store = open_store(c.data)
    try:
        return [d.clone_suspected_at for d in store.identity.devices()]
    finally:
        store.close()


def test_a_copied_agent_is_flagged_and_a_restarted_one_is_not(
    collector_process: CollectorProcess, tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(collector_process.token())
    original, copy = tmp_path / "laptop", tmp_path / "second-laptop"
    assert enroll(collector_process, original, token_file).returncode == 0
    assert run(AGENT, "once", "--state", str(original)).returncode == 0
    shutil.copytree(original, copy)

    # The original restarts, renews and restarts again: ordinary life, never flagged.
    for step in ("once", "renew", "once", "once", "renew", "once"):
        done = run(AGENT, step, "--state", str(original))
        assert done.returncode == 0, (step, done.stderr)
    assert _clone_flags(collector_process) == [None]

    # The copy on the second computer still holds generation 1.
    copied = run(AGENT, "once", "--state", str(copy))
    assert copied.returncode == 1
    assert "in use on another computer" in copied.stderr
    assert _clone_flags(collector_process) != [None]
    assert run(AGENT, "once", "--state", str(original)).returncode == 0
