"""The command cache: reused only while the files the command depends on are unchanged."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from devposture.agent.host import CommandFailedError, LiveHost
from devposture.agent.host.command_cache import CommandCache

# Prints the shell's PID: different on every real run, so equal output means a cache hit.
PID = ["sh", "-c", "echo $$"]


@pytest.fixture
def inputs(tmp_path: Path) -> list[str]:
    status = tmp_path / "status"
    status.write_text("Package: a\n")
    lists = tmp_path / "lists"
    lists.mkdir()
    return [str(status), str(lists), str(tmp_path / "absent")]


def test_unchanged_inputs_reuse_the_output_across_processes(
    tmp_path: Path, inputs: list[str]
) -> None:
    cache_file = tmp_path / "cache.json"
    first = LiveHost(CommandCache(cache_file)).run_cached(PID, 5, inputs)
    # A new host and cache object, as the next `devposture-agent once` would have.
    second = LiveHost(CommandCache(cache_file)).run_cached(PID, 5, inputs)
    assert second.stdout == first.stdout
    assert oct(cache_file.stat().st_mode & 0o777) == "0o600"


def test_a_changed_file_or_folder_runs_the_command_again(tmp_path: Path, inputs: list[str]) -> None:
    host = LiveHost(CommandCache(tmp_path / "cache.json"))
    first = host.run_cached(PID, 5, inputs)
    Path(inputs[0]).write_text("Package: a\nPackage: b\n")
    second = host.run_cached(PID, 5, inputs)
    assert second.stdout != first.stdout
    (Path(inputs[1]) / "new_Packages").write_text("x")
    os.utime(inputs[1], ns=(0, 1))  # make sure the folder's mtime differs even on coarse clocks
    third = host.run_cached(PID, 5, inputs)
    assert third.stdout != second.stdout
    Path(inputs[2]).write_text("now present")
    assert host.run_cached(PID, 5, inputs).stdout != third.stdout


def test_entries_expire(tmp_path: Path, inputs: list[str]) -> None:
    host = LiveHost(CommandCache(tmp_path / "cache.json", max_age=0.0))
    first = host.run_cached(PID, 5, inputs)
    assert host.run_cached(PID, 5, inputs).stdout != first.stdout


def test_a_damaged_cache_file_is_ignored(tmp_path: Path, inputs: list[str]) -> None:
    cache_file = tmp_path / "cache.json"
    cache_file.write_text("{not json")
    result = LiveHost(CommandCache(cache_file)).run_cached(PID, 5, inputs)
    assert result.stdout.strip().isdigit()
    assert json.loads(cache_file.read_text())  # rewritten whole


def test_failures_are_not_cached(tmp_path: Path, inputs: list[str]) -> None:
    host = LiveHost(CommandCache(tmp_path / "cache.json"))
    with pytest.raises(CommandFailedError):
        host.run_cached(["false"], 5, inputs)
    assert not (tmp_path / "cache.json").exists()
