"""Dashboard logins are throttled per client address, over real HTTP and HTTPS: parallel wrong
credentials from one address are taken one at a time and slowed down (past a bounded queue,
turned away at once with Retry-After), while another address logs in at once.

The throttle's time is given as data (`HeldTime`): its clock moves only by the waits it asks
for, held at a gate, so the test reads the server's own record of turns and its audit log and
never measures a duration."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import pytest

from devposture.collector.throttle import FREE_FAILURES, MAX_QUEUED, Turn, backoff
from devposture.collector.web.server import DashboardServer, start_dashboard
from tests.throttling import SECOND_SOURCE, HeldTime, post_login
from tests.waiting import wait_until
from tests.web.conftest import Fleet

# The guesser's own loopback address: the other tests of the package log in wrongly from
# 127.0.0.1 on the wall clock, and the failures are counted in the database they share, so a
# guesser there would start with their failures (run after them in one process, it did).
GUESSER = "127.0.0.3"


@dataclass
class Board:
    fleet: Fleet
    server: DashboardServer
    time: HeldTime

    def post(self, credential: str, source: str = GUESSER) -> tuple[int, str, str]:
        """POST /login from `source`: the status, the Retry-After header and the page."""
        ca = self.fleet.collector.config.ca_cert if self.server.tls else None
        return post_login(self.server.port, credential, source=source, ca_cert=ca)

    def turns(self, address: str) -> list[Turn]:
        return [t for t in self.server.dashboard.throttle.turns if t.address == address]

    def denied_logins(self) -> int:
        store = self.fleet.store()
        try:
            return sum(
                1 for e in store.admin.audit_entries()
                if e.command == "dashboard login" and e.outcome == "denied"
            )  # fmt: skip
        finally:
            store.close()


@pytest.fixture(params=[False, True], ids=["http", "https"])
def board(fleet: Fleet, request: pytest.FixtureRequest) -> Iterator[Board]:
    """A dashboard of its own (the shared one keeps its throttle's turns clean), on held
    time. The failures are counted in the database, which every dashboard of the collector
    shares: each board's time starts an hour after the one before, past the throttle's
    window, so the earlier board's failures have aged out as they would have."""
    server = start_dashboard(fleet.collector.config, "127.0.0.1", 0, tls=request.param)
    time = HeldTime(start=1000.0 + 3600.0 * request.param)  # False: 0, True: 1
    throttle = server.dashboard.throttle
    throttle.clock, throttle.sleep = time.clock, time.sleep
    try:
        yield Board(fleet, server, time)
    finally:
        time.release()
        server.stop()


def _wrong(fleet: Fleet) -> str:
    real = fleet.viewer
    return real[:-4] + ("AAAA" if not real.endswith("AAAA") else "BBBB")


def test_parallel_wrong_logins_are_serialised_and_slowed_and_another_address_logs_in(
    board: Board,
) -> None:
    wrong = _wrong(board.fleet)
    denied_before = board.denied_logins()
    for _ in range(FREE_FAILURES):  # a few mistakes: answered at once
        assert board.post(wrong)[0] == 401
    assert [t.waited for t in board.turns(GUESSER)] == [0.0] * FREE_FAILURES

    board.time.hold()  # the guesser's waits now stay in progress until released
    extra = 4
    with ThreadPoolExecutor(MAX_QUEUED + extra) as pool:
        posts: list[Future[tuple[int, str, str]]] = [
            pool.submit(board.post, wrong) for _ in range(MAX_QUEUED + extra)
        ]
        wait_until(lambda: sum(p.done() for p in posts) == extra, "the turned-away answers")
        turned_away = [p for p in posts if p.done()]
        for post in turned_away:
            status, retry_after, page = post.result()
            assert status == 429 and retry_after == str(int(backoff(FREE_FAILURES)))
            assert "Too many login attempts from your address" in page
        assert board.server.dashboard.throttle.turned_away == extra
        wait_until(lambda: board.time.waits == [1.0], "the first queued login to be held")

        # 127.0.0.3 is held in its wait with fifteen more queued; 127.0.0.2 is served at once,
        # a wrong credential as well as the right one.
        assert board.post(wrong, SECOND_SOURCE)[0] == 401
        status, _, _ = board.post(board.fleet.viewer, SECOND_SOURCE)
        assert status == 303
        neighbour = [Turn(SECOND_SOURCE, 0, 0.0), Turn(SECOND_SOURCE, 1, 0.0)]
        assert board.turns(SECOND_SOURCE) == neighbour  # no wait: one failure is free
        assert not any(p.done() for p in posts if p not in turned_away)
        assert board.time.waits == [1.0]

        board.time.release()
        answered = [p.result()[0] for p in posts if p not in turned_away]
    assert answered == [401] * MAX_QUEUED
    guesses = board.turns(GUESSER)[FREE_FAILURES:]
    # One at a time: each attempt saw every failure before it and waited what they earned.
    assert [t.failures for t in guesses] == list(range(FREE_FAILURES, FREE_FAILURES + MAX_QUEUED))
    assert [t.waited for t in guesses] == [backoff(t.failures) for t in guesses]
    assert [t.waited for t in guesses][:5] == [1.0, 2.0, 4.0, 8.0, 16.0]
    assert board.time.waits == [t.waited for t in guesses]
    # Every attempt that was examined is audited; those turned away were never examined.
    assert board.denied_logins() - denied_before == FREE_FAILURES + MAX_QUEUED + 1
