"""Slowing down guessing, per source address: enrollments and reestablishments on the
enrollment port, and logins to the dashboard.

A token and an admin credential hold 256 bits of secret, so guessing cannot succeed; what the
throttle stops is a script hammering a port (and the log and audit noise it makes), without
letting one address lock out another. Per address:

* **One at a time.** An address's attempts are taken in turn, first come first served, so
  forty guesses sent at once are forty guesses in a row, each one seeing the failures before
  it. Without this, parallel guesses would all start before the first failure was counted.
* **Failures make it wait.** After `FREE_FAILURES` failures within `WINDOW_SECONDS`, the
  address's next attempt starts only 1, 2, 4 … up to `MAX_DELAY_SECONDS` after its last
  failure. A success counts nothing, and a person who mistyped waits only if they try again
  sooner than that.
* **A bounded queue.** At most `MAX_QUEUED` attempts of one address are in progress or waiting
  their turn; more are turned away at once (`Busy`, with a retry hint), which costs nothing.
  With `max_line_seconds` (the enrollment port: `MAX_LINE_SECONDS`), an attempt whose wait in
  line would pass it is turned away too: the gRPC server closes every connection at its age
  (50 s), leaving a call in flight 10 s of grace, and an attempt still waiting then ended
  UNAVAILABLE ("max connection age") with no hint of when to come back. The age counts from
  the connection's start, not the attempt's: a client that keeps its channel (grpc-js shares
  one connection between its clients) may send an attempt a moment before it, so the line is
  bounded by the grace, not by the age.

Another address has its own turn, failures and queue: it is served at once, whatever the first
one does. The wait is an asyncio sleep, so a waiting caller holds no thread.

The clock (monotonic seconds) and the sleep are injectable, so tests give time as data. Each
turn is recorded (`turns`, the latest `RECORDED_TURNS`): the server's own account of who
waited how long after how many failures, for tests and for whoever investigates a flood.

The failures can be kept in the database instead of in memory (`ledger`: store/guesses.py),
as the collector does: then every collector and worker on the database counts the same
failures, read at each turn and written at each failure (on the caller's database thread,
`run`), so a source gains nothing by spreading its guesses over them; the clock is then the
wall clock, the same on every collector. The turns and queues stay each process's own.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Protocol, TypeVar
from urllib.parse import unquote

T = TypeVar("T")

FREE_FAILURES = 5
WINDOW_SECONDS = 600.0
MAX_DELAY_SECONDS = 30.0
MAX_ADDRESSES = 10_000
# Attempts of one address in progress or waiting at once; a NAT's honest rollout stays under it.
MAX_QUEUED = 16
# The longest an enrollment attempt may be kept waiting for its turn and delay: under the
# 10 s the collector's gRPC server leaves a call in flight on a connection that reached its
# age (server.py, CONNECTION_AGE_GRACE_MS), whenever in the connection's life it came.
MAX_LINE_SECONDS = 8.0
RECORDED_TURNS = 1000


def peer_address(peer: str) -> str:
    """The address part of gRPC's peer string ("ipv4:10.0.0.5:51234" -> "10.0.0.5").

    gRPC gives an IPv6 peer as a URI, its brackets percent-encoded ("ipv6:%5B::1%5D:47148"
    from grpcio 1.85); read as it was, every address of a /64 was a source of its own, so a
    host taking a new address for each guess was never slowed down."""
    kind, _, rest = peer.partition(":")
    if kind == "ipv6":
        rest = unquote(rest)
        return rest.rpartition(":")[0].strip("[]") or rest
    if kind == "ipv4":
        return rest.rpartition(":")[0] or rest
    return peer


def source(address: str) -> str:
    """What counts as one source: an IPv4 address, or an IPv6 address's /64 (one site's
    network, where a single host may take any of 2^64 addresses at will)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        if not ip.is_loopback:
            return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def backoff(failures: int) -> float:
    """How long after its last failure an address with `failures` recent failures waits."""
    if failures < FREE_FAILURES:
        return 0.0
    return min(MAX_DELAY_SECONDS, 2.0 ** (failures - FREE_FAILURES))


@dataclass(frozen=True)
class Turn:
    """One attempt that got its turn: its address, the address's failures within the window
    when the turn came, and the seconds it was then made to wait."""

    address: str
    failures: int
    waited: float


class Busy(Exception):
    """Too many attempts of one address at once: this one was turned away unexamined."""

    def __init__(self, address: str, retry_after: float, first: bool) -> None:
        super().__init__(f"too many attempts from {address} at once")
        self.address = address
        self.retry_after = retry_after
        # The first turned away while this address's queue is full: the one to log.
        self.first = first


class FailureLedger(Protocol):
    """Where a source's failures are kept when several processes share them (seconds on the
    throttle's clock; each list within the window, oldest first)."""

    def recent(self, source: str, now: float) -> list[float]: ...

    def add(self, source: str, now: float) -> list[float]: ...


async def _call(work: Callable[[], T]) -> T:
    return work()


@dataclass
class _Line:
    """An address's queue: its turn (a FIFO lock) and how many attempts hold or await it."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    queued: int = 0
    turned_away: int = 0


@dataclass
class FailureThrottle:
    """Failures, turns and queues by source, in memory (a restart forgives everyone, which
    is harmless), or the failures in a shared `ledger`. One event loop uses one throttle."""

    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    max_queued: int = MAX_QUEUED
    # When set, an attempt that would wait longer than this in line is turned away (`Busy`).
    max_line_seconds: float | None = None
    ledger: FailureLedger | None = None
    # How the ledger is called from the event loop (the owner's database thread).
    run: Callable[[Callable[[], list[float]]], Awaitable[list[float]]] = _call
    turns: deque[Turn] = field(default_factory=lambda: deque(maxlen=RECORDED_TURNS))
    # Attempts turned away because their address had `max_queued` at once.
    turned_away: int = 0
    _failures: OrderedDict[str, list[float]] = field(default_factory=OrderedDict)
    _lines: dict[str, _Line] = field(default_factory=dict)

    def _recent(self, address: str) -> list[float]:
        address = source(address)
        now = self.clock()
        kept = [t for t in self._failures.get(address, []) if now - t < WINDOW_SECONDS]
        if kept:
            self._failures[address] = kept
        else:
            self._failures.pop(address, None)
        return kept

    def delay(self, address: str) -> float:
        """Seconds the next attempt from `address` must wait (0 when it has not failed much,
        or its last failure is long enough ago)."""
        recent = self._recent(address)
        if not recent:
            return 0.0
        return max(0.0, recent[-1] + backoff(len(recent)) - self.clock())

    async def record_failure(self, address: str) -> int:
        """Count a failure (in the ledger when there is one); returns how many `address` has
        within the window."""
        if self.ledger is None:
            return self.failed(address)
        ledger, address, now = self.ledger, source(address), self.clock()
        recent = await self.run(lambda: ledger.add(address, now))
        self._remember(address, recent)
        return len(recent)

    async def _refresh(self, address: str) -> None:
        """Read `address`'s failures from the ledger (any collector's), when there is one."""
        if self.ledger is not None:
            ledger, now = self.ledger, self.clock()
            self._remember(address, await self.run(lambda: ledger.recent(address, now)))

    def _remember(self, address: str, recent: list[float]) -> None:
        if recent:
            self._failures[address] = recent
            self._failures.move_to_end(address)
            while len(self._failures) > MAX_ADDRESSES:
                self._failures.popitem(last=False)
        else:
            self._failures.pop(address, None)

    def failed(self, address: str) -> int:
        """Count a failure in memory; returns how many `address` has within the window."""
        recent = self._recent(address)
        recent.append(self.clock())
        self._remember(source(address), recent)
        return len(recent)

    def _line_wait(self, address: str, queued: int) -> float:
        """About how long an attempt joining `queued` others of `address` would wait for its
        turn: the current delay, then each attempt ahead failing in turn (as a guesser's do)."""
        failures = len(self._recent(address))
        return self.delay(address) + sum(backoff(failures + k) for k in range(1, queued + 1))

    @asynccontextmanager
    async def attempt(self, address: str) -> AsyncIterator[Turn]:
        """Hold `address`'s turn for one attempt: wait for the attempts before it, then out
        its delay. Raises `Busy` at once when `max_queued` attempts of it are already in."""
        address = source(address)
        line = self._lines.get(address)
        if line is None:
            line = self._lines[address] = _Line()
        # The line's wait only where it is bounded (the enrollment port's, not the dashboard's).
        bound = self.max_line_seconds
        ahead = None if bound is None else self._line_wait(address, line.queued)
        if line.queued >= self.max_queued or (ahead is not None and bound is not None
                                               and ahead > bound):  # fmt: skip
            self.turned_away += 1
            line.turned_away += 1
            wait = max(1.0, self.delay(address), backoff(len(self._recent(address))))
            if line.queued < self.max_queued and ahead is not None:  # the line's length
                wait = ahead
            raise Busy(address, wait, first=line.turned_away == 1)
        line.queued += 1
        try:
            async with line.lock:
                await self._refresh(address)
                wait = self.delay(address)
                if bound is not None and wait > bound:
                    # Failures counted by another collector or worker (the ledger), unseen
                    # when the line was measured: the wait they earned is past the bound too.
                    self.turned_away += 1
                    line.turned_away += 1
                    raise Busy(address, wait, first=line.turned_away == 1)
                turn = Turn(address, len(self._recent(address)), wait)
                self.turns.append(turn)
                if wait > 0:
                    await self.sleep(wait)
                yield turn
        finally:
            line.queued -= 1
            if line.queued == 0 and self._lines.get(address) is line:
                del self._lines[address]
