"""The policy in force is read by the admin commands and the dashboard without the server: they
import `collector.policy`, never `collector.server`, which starts them (no import circle)."""

from __future__ import annotations

import subprocess
import sys

import pytest

# Never reaches the run's database engine: the PostgreSQL leg leaves it out (Makefile).
pytestmark = pytest.mark.engine_free


def test_the_admin_commands_and_the_dashboard_do_not_import_the_server() -> None:
    probe = (
        "import sys\n"
        "import devposture.collector.admin.commands, devposture.collector.web.views\n"
        "print('devposture.collector.server' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=120, check=True)  # fmt: skip
    assert done.stdout.strip() == "False"
