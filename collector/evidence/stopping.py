"""An export told to stop because nobody waits for its bundle any more.

A remote `audit export` is made inside the collector for a caller on the admin port. When that
caller goes (a Ctrl-C, its deadline passed, its connection dropped), the admin service sets
the export's `Stop` (a `threading.Event`, set from the event loop's thread). The export looks
at it between its steps and while it waits for a worker process (`check_pool`), and raises
`Stopped`: its workers are ended, its partial bundle removed, and its command audited as
cancelled. Without it, a quarter's export went on for minutes on every core, for nobody, and
the auditor trying again started a second one beside it.
"""

from __future__ import annotations

import threading

from devposture.policy.cli_messages import Worded, said

Stop = threading.Event

# How often an export waiting for a worker's answer looks whether it was told to stop: the
# longest a stopped export keeps its workers busy (a worker's run takes up to a few seconds).
LOOK_SECONDS = 0.1


class Stopped(Worded, RuntimeError):
    """The export's caller went away: the export stopped, written nowhere."""


def check(stop: Stop | None) -> None:
    """Raise `Stopped` once `stop` is set (never without one: an export on the command line
    is stopped by its Ctrl-C)."""
    if stop is not None and stop.is_set():
        raise Stopped(said(
            "cancelled: the caller of this export went away before its bundle was sent (a"
            " Ctrl-C, its deadline passed or its connection dropped); the export stopped, its"
            " processes were ended and nothing of it was kept"))  # fmt: skip
