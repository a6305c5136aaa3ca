"""Waiting for an event a test caused: poll what can be observed until it holds. The timeout
only ends a hung test; it is never what a test measures, so a busy machine cannot fail it."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_until(
    condition: Callable[[], bool], what: str, timeout: float = 60.0, poll: float = 0.05
) -> None:
    """Return once `condition()` holds; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not seen within {timeout:g} s: {what}"
        time.sleep(poll)
