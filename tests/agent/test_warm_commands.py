"""The tests' warm command cache (`tests/warm_commands.py`) is one the agent's own lookup
answers from, only an enrolled agent without a cache of its own is given it, and one cache
serves every test process."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from devposture.agent.host.command_cache import CommandCache, stamp_of
from devposture.agent.probes.commands import APT_SIMULATE
from devposture.agent.probes.linux.updates import APT_INPUTS
from devposture.agent.state import AGENT_FILE, AgentState
from tests import warm_commands

pytestmark = pytest.mark.skipif(shutil.which("apt-get") is None, reason="no apt-get here")


def test_an_enrolled_agent_is_answered_from_the_seeded_cache(tmp_path: Path) -> None:
    state = tmp_path / "agent"
    state.mkdir()
    (state / AGENT_FILE).write_text("{}")
    warm_commands.seed_for(["/x/bin/devposture-agent", "once", "--state", str(state)])
    cache = AgentState(state).command_cache_path
    assert cache.stat().st_mode & 0o777 == 0o600
    # What the agent's host looks up before it runs apt-get: the stamps of what apt reads now.
    found = CommandCache(cache).lookup(APT_SIMULATE, stamp_of(APT_INPUTS))
    assert found is not None
    assert found.returncode == 0
    assert b"Inst " in found.stdout or b"0 upgraded" in found.stdout


def test_an_agent_not_enrolled_or_with_its_own_cache_is_left_as_it_was(tmp_path: Path) -> None:
    never = tmp_path / "never"
    warm_commands.seed_for(["devposture-agent", "once", "--state", str(never)])
    assert not never.exists()
    own = tmp_path / "own"
    own.mkdir()
    (own / AGENT_FILE).write_text("{}")
    AgentState(own).command_cache_path.write_text("{}")
    warm_commands.seed(own)
    assert AgentState(own).command_cache_path.read_text() == "{}"
    collector = tmp_path / "c"
    warm_commands.seed_for(["devposture-collector", "serve", "--state", str(collector)])
    assert not collector.exists()


def test_one_cache_serves_every_test_process_and_apt_is_not_run_again() -> None:
    """Another test process (as xdist starts several) finds the cache this one brought up to
    date, and leaves it as it was: the agent's lookup answered, apt-get did not run again (a
    store writes the file anew, a new inode)."""
    first = warm_commands._warm_cache()
    assert first is not None
    before = first.stat()
    probe = "from tests import warm_commands; print(warm_commands._warm_cache())"
    other = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=Path(__file__).parents[2], capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    assert other.stdout.strip() == str(first)
    after = first.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
