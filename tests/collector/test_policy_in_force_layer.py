"""The policy in force is read by the admin commands and the dashboard without the server: they
import `collector.policy`, never `collector.server`, which starts them (no import circle)."""

from __future__ import annotations

import pytest

from tests.fresh_interpreter import modules_after

# Never reaches the run's database engine: the PostgreSQL leg leaves it out (Makefile).
pytestmark = pytest.mark.engine_free


def test_the_admin_commands_and_the_dashboard_do_not_import_the_server() -> None:
    loaded = modules_after(
        "import devposture.collector.admin.commands, devposture.collector.web.views"
    )
    assert "devposture.collector.server" not in loaded
