"""The policy file is applied once an edit has settled (collector/server.py, watch_policy):
an editor that saves in two steps leaves a first step the collector must not judge by."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from devposture.collector import server


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

    async def apply(config: object, running: object, text: str, stopping: object) -> int:
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
