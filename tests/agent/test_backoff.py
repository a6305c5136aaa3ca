"""The service loop's retry schedule: exponential, fully jittered, reset by a success, and
never shorter than the collector asked."""

from __future__ import annotations

import random

from devposture.agent.backoff import FIRST_DELAY, LONGEST_DELAY, Backoff


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_steps_double_from_five_seconds_to_fifteen_minutes() -> None:
    backoff = Backoff(random=lambda: 0.999999)
    delays = [backoff.failed() for _ in range(12)]
    steps = [min(LONGEST_DELAY, FIRST_DELAY * 2**n) for n in range(12)]
    assert FIRST_DELAY == 5.0 and LONGEST_DELAY == 900.0
    for delay, step in zip(delays, steps, strict=True):
        assert step * 0.999 <= delay <= step
    assert max(delays) <= LONGEST_DELAY


def test_full_jitter_spans_the_whole_step() -> None:
    rng = random.Random(7)
    samples = []
    for _ in range(2000):
        backoff = Backoff(random=rng.random, failures=4)  # the 5th failure: step 80 s
        samples.append(backoff.failed())
    assert min(samples) >= 1.0 and max(samples) <= 80.0
    assert min(samples) < 5.0 and max(samples) > 75.0  # spread over the step, not clumped
    assert 30.0 < sum(samples) / len(samples) < 50.0


def test_the_lowest_draw_is_still_not_a_busy_loop() -> None:
    backoff = Backoff(random=lambda: 0.0)
    assert backoff.failed() == 1.0


def test_a_shorter_interval_caps_the_step() -> None:
    backoff = Backoff(random=lambda: 0.999999, failures=20)
    assert backoff.failed(cap=60.0) <= 60.0
    # but never below the first step
    assert Backoff(random=lambda: 0.999999).failed(cap=0.5) <= FIRST_DELAY


def test_success_resets_the_schedule() -> None:
    backoff = Backoff(random=lambda: 0.999999)
    for _ in range(6):
        backoff.failed()
    assert backoff.failed() > 300
    backoff.succeeded()
    assert backoff.failures == 0
    assert backoff.failed() <= FIRST_DELAY


def test_a_retry_hint_lengthens_the_wait_and_holds_all_sending() -> None:
    clock = Clock()
    backoff = Backoff(random=lambda: 0.0, clock=clock)
    assert backoff.failed(hint=42.0) == 42.0
    assert backoff.held() == 42.0
    clock.now += 40
    assert backoff.held() == 2.0
    clock.now += 5
    assert backoff.held() == 0.0


def test_a_hint_shorter_than_the_backoff_does_not_shorten_it() -> None:
    backoff = Backoff(random=lambda: 0.999999, failures=5)  # step 160 s
    assert backoff.failed(hint=2.0) > 150.0


def test_a_bogus_hint_is_capped_and_a_success_clears_the_hold() -> None:
    clock = Clock()
    backoff = Backoff(random=lambda: 0.0, clock=clock, longest_hint=3600.0)
    assert backoff.failed(hint=10 * 24 * 3600.0) == 3600.0
    assert backoff.held() == 3600.0
    backoff.succeeded()
    assert backoff.held() == 0.0
