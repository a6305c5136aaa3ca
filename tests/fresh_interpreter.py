"""What a new Python interpreter has loaded once it has run a few statements: the tests that
hold a command, a service or a serving process to what it loads (its start-up time, its memory,
a dependency it must not need) ask this, each in a process of its own, since the test's own
process has loaded nearly everything."""

from __future__ import annotations

import json
import subprocess
import sys

# Read after the statements, before anything of its own is imported to print them.
_PRINT_LOADED = (
    "\nimport sys as _sys\n_loaded = sorted(_sys.modules)\n"
    "import json as _json\nprint(_json.dumps(_loaded))\n"
)


def modules_after(statements: str, timeout: float = 120) -> set[str]:
    """The names in `sys.modules` of a new interpreter (this one's Python) after `statements`."""
    done = subprocess.run(
        [sys.executable, "-c", statements + _PRINT_LOADED],
        capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout.strip().splitlines()[-1]))
