"""The policy file is applied once an edit has settled (collector/server.py, watch_policy):
an editor that saves in two steps leaves a first step the collector must not judge by."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace

import pytest

from devposture.collector import server
from devposture.collector.config import load
from devposture.collector.datadir import initialize
from devposture.collector.policy import in_force
from devposture.collector.store import Store
from devposture.policy import PolicyError


def test_an_edit_saved_in_two_steps_is_applied_once_whole(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # What each poll finds: the first step of a save (its own stamp, a file cut after a whole
    # `[[checks]]` table, valid on its own), then the whole file, unchanged for the polls after.
    polls = iter([(1, 100), (2, 180), (2, 180), (2, 180), (2, 180)])
    texts = {(1, 100): "first step", (2, 180): "whole file"}
    now = {"stamp": (0, 0)}
    applied: list[str] = []
    stop = asyncio.Event()

    def stamp(path: object) -> tuple[int, int]:
        try:
            now["stamp"] = next(polls)
        except StopIteration:
            stop.set()
        return now["stamp"]

    async def apply(config: object, running: object, text: str) -> int:
        applied.append(text)
        return len(applied)

    async def in_db(work: object) -> int:
        return 0

    monkeypatch.setattr(server, "POLICY_POLL_SECONDS", 0)
    monkeypatch.setattr(server, "policy_stamp", stamp)
    monkeypatch.setattr(server, "edited", lambda config: texts[now["stamp"]])
    monkeypatch.setattr(server, "_apply_edit", apply)
    parts = SimpleNamespace(in_db=in_db, version=None, latest=None)
    running = SimpleNamespace(service=parts, store=SimpleNamespace(policies=parts))
    config = SimpleNamespace(policy="policy.toml")
    asyncio.run(server.watch_policy(config, running, stop))  # type: ignore[arg-type]
    assert applied == ["whole file"]


def test_a_policy_the_collector_cannot_use_is_never_published(tmp_path: Path) -> None:
    # A valid file whose values the service could not build its answers from (a number past
    # the acknowledgement's field) was published first: an append-only version every
    # collector then failed to follow, logging "could not follow the policy in force".
    config, _ = initialize(tmp_path / "collector", "127.0.0.1")
    config = load(config.data_dir)
    store = Store.open(config.database)
    try:
        in_force.keep_in_force(config, store)
        before = store.policies.version()
        text = config.policy.read_text(encoding="utf-8").replace(
            "report_interval_minutes = 60", "report_interval_minutes = 61"
        )
        assert "report_interval_minutes = 61" in text

        def unusable(policy: object) -> None:
            raise ValueError("Value out of range: 5999999999940")

        with pytest.raises(PolicyError, match=r"cannot use this policy \(Value out of range"):
            in_force.apply_edit(config, store, text, usable=unusable)
        assert store.policies.version() == before
        _, version = in_force.apply_edit(config, store, text)  # usable: published
        assert version.version == before + 1
    finally:
        store.close()
