"""Slowing down guessing: repeated failed enrollments from one address.

A token has 256 bits of secret, so guessing cannot succeed; what the throttle stops is a
script hammering the enrollment port (and the log noise it makes). After a few failures within
a window, each further attempt from that address waits, doubling up to a ceiling; other
addresses are not affected. The wait is an asyncio sleep, so a waiting caller holds no thread.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

FREE_FAILURES = 5
WINDOW_SECONDS = 600.0
MAX_DELAY_SECONDS = 30.0
MAX_ADDRESSES = 10_000


def peer_address(peer: str) -> str:
    """The address part of gRPC's peer string ("ipv4:10.0.0.5:51234" -> "10.0.0.5")."""
    kind, _, rest = peer.partition(":")
    if kind == "ipv6":
        return rest.rpartition(":")[0].strip("[]") or rest
    if kind == "ipv4":
        return rest.rpartition(":")[0] or rest
    return peer


@dataclass
class FailureThrottle:
    clock: Callable[[], float] = time.monotonic
    _failures: OrderedDict[str, list[float]] = field(default_factory=OrderedDict)

    def _recent(self, address: str) -> list[float]:
        now = self.clock()
        kept = [t for t in self._failures.get(address, []) if now - t < WINDOW_SECONDS]
        if kept:
            self._failures[address] = kept
        else:
            self._failures.pop(address, None)
        return kept

    def delay(self, address: str) -> float:
        """Seconds the next attempt from `address` must wait (0 when it has not failed much)."""
        count = len(self._recent(address))
        if count < FREE_FAILURES:
            return 0.0
        return min(MAX_DELAY_SECONDS, 2.0 ** (count - FREE_FAILURES))

    def failed(self, address: str) -> int:
        """Count a failure; returns how many `address` has within the window."""
        recent = self._recent(address)
        recent.append(self.clock())
        self._failures[address] = recent
        self._failures.move_to_end(address)
        while len(self._failures) > MAX_ADDRESSES:
            self._failures.popitem(last=False)
        return len(recent)
