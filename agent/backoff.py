"""When to try sending again after a failed delivery: exponential backoff with full jitter.

After the n-th failure in a row the wait is drawn uniformly from [floor, step], where the step
starts at `first` and doubles up to `longest` (or the reporting interval, if that is shorter:
the next collection tries anyway). Full jitter spreads a fleet that failed together (the
collector restarted) over the whole step, so it does not come back together.

The collector may say how long to wait (`retry-after-ms` on RESOURCE_EXHAUSTED or
UNAVAILABLE). Such a hint only ever lengthens the wait, never shortens it, and until it has
passed the agent sends nothing at all, not even a fresh report. A hint is capped at
`longest_hint` so a bogus one cannot silence an agent for good.

A success resets the schedule. Pure: the random source and the clock are injectable.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

FIRST_DELAY = 5.0
LONGEST_DELAY = 15 * 60.0
LONGEST_HINT = 60 * 60.0


@dataclass
class Backoff:
    first: float = FIRST_DELAY
    longest: float = LONGEST_DELAY
    longest_hint: float = LONGEST_HINT
    # Uniform in [0, 1).
    random: Callable[[], float] = field(default=random.random)
    clock: Callable[[], float] = field(default=time.monotonic)
    failures: int = 0
    # Monotonic time before which the collector asked for silence (0: none).
    hold_until: float = 0.0

    def step(self, cap: float | None = None) -> float:
        """The upper bound of the next wait, given the failures so far."""
        longest = self.longest if cap is None else max(self.first, min(self.longest, cap))
        exponent = min(max(0, self.failures - 1), 60)  # 2**60 s is long enough
        return float(min(longest, self.first * 2**exponent))

    def failed(self, hint: float | None = None, cap: float | None = None) -> float:
        """Count a failure; return the seconds to wait before the next attempt.

        `hint` is the collector's retry-after (seconds), `cap` the reporting interval."""
        self.failures += 1
        step = self.step(cap)
        floor = min(1.0, step)
        delay = floor + (step - floor) * self.random()
        if hint is not None:
            hint = min(max(0.0, hint), self.longest_hint)
            self.hold_until = max(self.hold_until, self.clock() + hint)
            delay = max(delay, hint)
        return delay

    def succeeded(self) -> None:
        self.failures = 0
        self.hold_until = 0.0

    def held(self) -> float:
        """Seconds left of the collector's requested silence (0 when none)."""
        return max(0.0, self.hold_until - self.clock())
