"""Per-device rate limiting for the report port: one token bucket per device, in memory.

Why a token bucket: an agent normally reports every few minutes, but after a day offline it
drains its outbox in one go, so a burst must pass; a device stuck in a loop (or a stolen key)
must not, and it must not slow anyone else down. Each device has its own bucket holding up to
`burst` calls, refilled at `calls_per_minute`; a call with no token left is refused with how
long until one will be there, which the agent uses to back off.

Why in memory: the limit protects this process (its event loop, its single database thread),
and a call must not cost a database write. A restart forgives every device, which is harmless.

Several collectors (or `serve --workers`) on one database: the limit is the fleet's, per
device, not each process's. Each process counts the processes serving (`Coordination.present`,
every half minute) and keeps its share (`share`): the rate divided among them, the burst too
(rounded up). Agents spread their calls over the collectors (gRPC's round_robin over several
addresses, or a load balancer per connection), so a device's calls over all of them stay
within the limit, give or take the rounding; a device pinned to one collector gets that one's
share only: stricter, never looser.

Memory stays bounded: a bucket that has been idle long enough to be full again is exactly
like a new one, so it is dropped. Buckets are kept in least-recently-used order, so those are
found at the front in amortized constant time. If more than `max_devices` devices are active
within one refill period anyway, the least recently seen bucket is dropped early; that device
merely gets a fresh burst.

The clock is injectable (monotonic seconds) so tests need not sleep. The service calls the
limiter from its event loop only; the lock makes it safe from threads too.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

DEFAULT_MAX_DEVICES = 100_000


@dataclass
class _Bucket:
    tokens: float
    updated_at: float


class DeviceRateLimiter:
    """Token buckets keyed by device id."""

    def __init__(
        self,
        calls_per_minute: float,
        burst: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_devices: int = DEFAULT_MAX_DEVICES,
    ) -> None:
        if calls_per_minute <= 0 or burst < 1 or max_devices < 1:
            raise ValueError("calls_per_minute must be positive, burst and max_devices >= 1")
        self._limit = (calls_per_minute, burst)  # the whole fleet's, per device
        self.serving = 1  # processes that share the limit (`share`)
        self._keep(calls_per_minute, burst)
        self._clock = clock
        self._max_devices = max_devices
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        self._lock = threading.Lock()

    def acquire(self, device_id: str) -> float:
        """Take one call for `device_id`. Returns 0.0 when the call may go on, else the
        seconds until one will be accepted (the call is not counted then)."""
        with self._lock:
            now = self._clock()
            self._evict_idle(now)
            bucket = self._buckets.get(device_id)
            if bucket is None:
                bucket = _Bucket(float(self.burst), now)
                self._buckets[device_id] = bucket
                while len(self._buckets) > self._max_devices:
                    self._buckets.popitem(last=False)
            else:
                elapsed = max(0.0, now - bucket.updated_at)
                bucket.tokens = min(float(self.burst), bucket.tokens + elapsed * self._rate)
                bucket.updated_at = now
                self._buckets.move_to_end(device_id)
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return 0.0
            return (1.0 - bucket.tokens) / self._rate

    def _keep(self, calls_per_minute: float, burst: int) -> None:
        """This process's limit, and what follows from it."""
        self.calls_per_minute = calls_per_minute
        self.burst = burst
        self._rate = calls_per_minute / 60.0  # tokens per second
        self._refill_seconds = burst / self._rate  # from empty to full

    def share(self, serving: int) -> None:
        """Keep this process's share of the limit when `serving` processes share it: the
        rate divided by them, the burst too (rounded up, at least one call). A bucket that
        holds more than the new burst keeps only that."""
        serving = max(1, serving)
        with self._lock:
            if serving == self.serving:
                return
            calls_per_minute, burst = self._limit
            self.serving = serving
            self._keep(calls_per_minute / serving, max(1, math.ceil(burst / serving)))
            for bucket in self._buckets.values():
                bucket.tokens = min(bucket.tokens, float(self.burst))

    def __len__(self) -> int:
        """How many devices have a bucket (for tests and metrics)."""
        return len(self._buckets)

    def _evict_idle(self, now: float) -> None:
        while self._buckets:
            _, oldest = next(iter(self._buckets.items()))
            if now - oldest.updated_at < self._refill_seconds:
                return
            self._buckets.popitem(last=False)


def retry_after_ms(wait_seconds: float) -> int:
    """The `retry-after-ms` hint for a wait: rounded up, so a retry at the hint succeeds."""
    return max(1, math.ceil(wait_seconds * 1000))
