"""The remote admin CLI gives up on a hung collector (threat model row 18): a real listening
socket that never answers; the deadline is given as data, and the test asserts the error,
not the time it took."""

from __future__ import annotations

import inspect
import socket

import pytest

from devposture.collector.admin.client import ADMIN_DEADLINE_SECONDS, RemoteError, run_remote
from devposture.collector.credentials import new_credential

# Never reaches the run's database engine: the PostgreSQL leg leaves it out (Makefile).
pytestmark = pytest.mark.engine_free


def test_the_admin_client_gives_up_on_a_silent_collector() -> None:
    assert ADMIN_DEADLINE_SECONDS == 60.0
    assert inspect.signature(run_remote).parameters["timeout"].default == ADMIN_DEADLINE_SECONDS
    with socket.create_server(("127.0.0.1", 0)) as server:
        target = f"127.0.0.1:{server.getsockname()[1]}"
        with pytest.raises(RemoteError, match="cannot reach the collector"):
            run_remote(target, "sha256:" + "0" * 64, str(new_credential()), ["report", "fleet"],
                       {}, timeout=0.2)  # fmt: skip
