"""The dashboard follows `devposture-collector tls rotate` without a restart.

A real collector and its dashboard over TLS, the real command in its own process (as IT runs
it beside `serve`), and a plain `ssl` client that trusts only the collector's CA and reads the
certificate each new connection is served.
"""

from __future__ import annotations

import http.client
import logging
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509

from devposture.collector.web.server import DashboardServer, start_dashboard
from tests.conftest import LiveCollector, running_collector
from tests.e2e.fleet import COLLECTOR, run

SERVED_WITHIN = 10.0
LOGGER = "devposture.collector.web.server"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[LiveCollector, DashboardServer]]:
    with running_collector(tmp_path / "collector") as live:
        dashboard = start_dashboard(live.config, "127.0.0.1", 0, tls=True)
        try:
            yield live, dashboard
        finally:
            dashboard.stop()


def _client(live: LiveCollector) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(live.config.ca_cert))


def _served_serial(live: LiveCollector, dashboard: DashboardServer) -> int:
    """The serial of the certificate a new connection is served (verified against the CA)."""
    with (
        socket.create_connection(("127.0.0.1", dashboard.port), timeout=10) as raw,
        _client(live).wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


def _on_disk_serial(live: LiveCollector) -> int:
    return x509.load_pem_x509_certificate(live.config.server_cert.read_bytes()).serial_number


def _rotate(live: LiveCollector) -> int:
    done = run(COLLECTOR, "tls", "rotate", "--data", str(live.config.data_dir))
    assert done.returncode == 0, done.stderr
    serial = _on_disk_serial(live)
    assert f"serial {serial:x}" in done.stdout
    return serial


def _wait_served(live: LiveCollector, dashboard: DashboardServer, serial: int) -> float:
    start = time.monotonic()
    while _served_serial(live, dashboard) != serial:
        assert time.monotonic() - start < SERVED_WITHIN, "the dashboard serves the old certificate"
        time.sleep(0.1)
    return time.monotonic() - start


def test_the_dashboard_serves_a_rotated_certificate_without_restart(
    served: tuple[LiveCollector, DashboardServer],
) -> None:
    live, dashboard = served
    before = _served_serial(live, dashboard)
    assert before == _on_disk_serial(live)

    new = _rotate(live)
    assert new != before
    took = _wait_served(live, dashboard, new)
    print(f"rotated certificate served after {took:.2f} s")

    # The page is served over the new certificate, by the same dashboard.
    connection = http.client.HTTPSConnection(
        "127.0.0.1", dashboard.port, context=_client(live), timeout=30
    )
    try:
        connection.request("GET", "/login")
        response = connection.getresponse()
        response.read()
        assert connection.sock is not None
        der = connection.sock.getpeercert(binary_form=True)
    finally:
        connection.close()
    assert response.status == 200
    assert der is not None and x509.load_der_x509_certificate(der).serial_number == new

    # And again: it follows every rotation, not just the first.
    again = _rotate(live)
    _wait_served(live, dashboard, again)


def test_a_bad_pair_keeps_the_previous_certificate_logged_once_until_repaired(
    served: tuple[LiveCollector, DashboardServer], caplog: pytest.LogCaptureFixture
) -> None:
    live, dashboard = served
    config = live.config
    serving = _served_serial(live, dashboard)
    good_key = config.server_key.read_bytes()
    caplog.set_level(logging.WARNING, logger=LOGGER)

    # A half-written certificate file (as if a copy were interrupted), then a key that does
    # not belong to the certificate: each checked at several new connections.
    config.server_cert.write_bytes(config.server_cert.read_bytes()[:200])
    for _ in range(3):
        time.sleep(1.1)  # past the check interval: every connection looks at the files
        assert _served_serial(live, dashboard) == serving
    refusals = [r for r in caplog.records if r.name == LOGGER and r.levelno == logging.WARNING]
    assert len(refusals) == 1, [r.getMessage() for r in refusals]
    assert "still serving the previous certificate" in refusals[0].getMessage()

    rotated = _rotate(live)  # `tls rotate` is also the repair
    _wait_served(live, dashboard, rotated)
    config.server_key.write_bytes(good_key)  # the old key: no longer the certificate's
    time.sleep(1.1)
    assert _served_serial(live, dashboard) == rotated
    refusals = [r for r in caplog.records if r.name == LOGGER and r.levelno == logging.WARNING]
    assert len(refusals) == 2, [r.getMessage() for r in refusals]

    repaired = _rotate(live)
    _wait_served(live, dashboard, repaired)
