"""The service's code path does not load the cryptography package: it is needed only to
enroll and to renew, and would keep about 9 MB resident in every agent for nothing
(bench/agent_service_idle.py measures the service). Nor protobuf's JSON format (only `collect
--json` prints it: +0.4 MB) or plistlib and its XML parser (only macOS's managed preferences
need it: +0.3 MB): the agent's memory target is 50 MB, and it runs close to it."""

from __future__ import annotations

import subprocess
import sys

SERVICE_MODULES = tuple(
    f"devposture.agent.{name}"
    for name in ("cli", "deliver", "service", "transport", "renewal", "outbox", "probes")
)


def test_the_service_runs_without_loading_cryptography() -> None:
    code = (
        "import sys\n"
        + "".join(f"import {m}\n" for m in SERVICE_MODULES)
        + "print(sorted(m for m in sys.modules if m.split('.')[0] == 'cryptography'))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "[]", done.stdout


def test_the_service_runs_without_json_format_or_plistlib() -> None:
    code = (
        "import sys\n"
        + "".join(f"import {m}\n" for m in SERVICE_MODULES)
        + "print(sorted(m for m in ('google.protobuf.json_format', 'plistlib', 'pyexpat')"
        " if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "[]", done.stdout


def test_enrolling_and_renewing_still_load_it() -> None:
    """The check above must be able to fail: the exchange modules do import it."""
    code = "import sys, devposture.agent.renewal_exchange; print('cryptography' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "True"
