"""Running the notifiers' commands (`commands.py`): a list argv, no shell, bounded in time,
output captured (never shown: it may name the user). A tool that is missing or hangs is a
NotifyError, which the notifier logs and retries at the next round."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Mapping

# Short: the service waits for it between sending reports (its watchdog allows 2 minutes).
COMMAND_TIMEOUT = 10.0
Completed = subprocess.CompletedProcess[str]
Run = Callable[[list[str], Mapping[str, str] | None], Completed]


class NotifyError(Exception):
    """A notice could not be shown; the message says why, without names or paths."""


def run_command(argv: list[str], env: Mapping[str, str] | None = None) -> Completed:
    try:
        return subprocess.run(
            argv, capture_output=True, text=True, timeout=COMMAND_TIMEOUT, check=False,
            env=None if env is None else dict(env),
        )  # fmt: skip
    except FileNotFoundError:
        raise NotifyError(f"{argv[0]} is not installed") from None
    except subprocess.TimeoutExpired:
        raise NotifyError(f"{argv[0]} did not finish within {COMMAND_TIMEOUT:g} s") from None


def checked(done: Completed) -> Completed:
    if done.returncode != 0:
        first = (done.stderr or done.stdout).strip().splitlines()[:1]
        raise NotifyError(f"{done.args[0]} failed ({done.returncode}): {' '.join(first)}")
    return done
