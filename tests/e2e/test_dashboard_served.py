"""`devposture-collector serve` serves the dashboard on its [web] port: a stranger is sent to
the login page, and the port is in the ready file."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from tests.e2e.conftest import CollectorProcess


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def test_serve_starts_the_dashboard_behind_a_login(collector_process: CollectorProcess) -> None:
    ready = json.loads((collector_process.data.parent / "ready.json").read_text())
    port = ready["web_port"]
    assert isinstance(port, int) and port > 0
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        opener.open(f"http://127.0.0.1:{port}/", timeout=10)
        raise AssertionError("the overview was served without a login")
    except urllib.error.HTTPError as exc:
        assert exc.code in (302, 303, 307), exc.code
        assert "/login" in exc.headers["Location"]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=10) as page:
        assert page.status == 200
        assert "devposture" in page.read().decode("utf-8").lower()
