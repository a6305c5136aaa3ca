"""A file replaced whole and on disk before it is used (collector/new_file.py): the server's
certificate, the CA list and the copy of the policy in force. Written to a temporary name,
synced, renamed, and the folder synced: a power cut leaves the old file or the new, never an
empty one (the policy's copy was renamed unsynced), and a write the disk refuses leaves the
old file as it was."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from devposture.collector import new_file
from devposture.collector.config import load
from devposture.collector.datadir import initialize
from devposture.collector.policy import in_force
from devposture.collector.store import Store


def test_the_data_and_then_the_rename_are_synced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[str] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    target = tmp_path / "policy-in-force.toml"
    new_file.write_atomic(target, b"new")
    assert target.read_bytes() == b"new"
    assert synced == [str(tmp_path / ".policy-in-force.toml.tmp"), str(tmp_path)]


def test_a_write_the_disk_refuses_leaves_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "authorities.json"
    target.write_bytes(b"old")

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError, match="No space left"):
        new_file.write_atomic(target, b"new")
    assert target.read_bytes() == b"old"


def test_the_policy_in_force_is_kept_through_a_synced_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config, _ = initialize(tmp_path / "collector", "127.0.0.1")
    config = load(config.data_dir)
    written: list[Path] = []
    real = new_file.write_atomic

    def watched(path: Path, data: bytes, mode: int = 0o644) -> None:
        written.append(path)
        real(path, data, mode)

    monkeypatch.setattr(in_force, "write_atomic", watched)
    store = Store.open(config.database)
    try:
        policy = in_force.keep_in_force(config, store)
    finally:
        store.close()
    assert policy.checks
    assert config.data_dir / in_force.IN_FORCE in written
