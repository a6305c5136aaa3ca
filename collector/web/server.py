"""Serving the dashboard: uvicorn on its own thread and event loop, beside the collector.

`start_dashboard` returns once the port is bound (so `.port` is real, also for port 0) and
`stop()` returns once the server has closed its connections and the dashboard its database
connections. Over a non-loopback address the dashboard serves TLS with the collector's server
certificate, so the credential posted at login never crosses the network in the clear.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
from dataclasses import dataclass

import uvicorn
from starlette.applications import Starlette

from collector.config import CollectorConfig
from collector.web.app import create_app, dashboard_of

log = logging.getLogger(__name__)

START_TIMEOUT_SECONDS = 15.0
STOP_TIMEOUT_SECONDS = 10.0


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass
class DashboardServer:
    host: str
    port: int
    tls: bool
    _server: uvicorn.Server
    _thread: threading.Thread
    _app: Starlette

    @property
    def url(self) -> str:
        scheme = "https" if self.tls else "http"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}"

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(STOP_TIMEOUT_SECONDS)
        dashboard_of(self._app).close()


def start_dashboard(
    config: CollectorConfig, host: str, port: int, *, tls: bool | None = None
) -> DashboardServer:
    """Serve the dashboard for `config`'s collector on `host`:`port` (0: any free port).
    `tls` defaults to on for any address but loopback."""
    use_tls = not is_loopback(host) if tls is None else tls
    app = create_app(config, secure_cookies=use_tls)
    settings = uvicorn.Config(
        app, host=host, port=port, log_config=None, access_log=False, lifespan="off",
        proxy_headers=False, server_header=False, timeout_graceful_shutdown=5,
        ssl_certfile=str(config.server_cert) if use_tls else None,
        ssl_keyfile=str(config.server_key) if use_tls else None,
    )  # fmt: skip
    server = uvicorn.Server(settings)
    failed: list[BaseException] = []

    def serve() -> None:
        try:
            server.run()
        except BaseException as exc:  # SystemExit on a bind failure: reported below
            failed.append(exc)

    thread = threading.Thread(target=serve, name="devposture-dashboard", daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while not server.started:
        if failed or not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            thread.join(STOP_TIMEOUT_SECONDS)
            dashboard_of(app).close()
            cause = failed[0] if failed else None
            raise OSError(f"the dashboard could not listen on {host}:{port}") from cause
        time.sleep(0.02)
    bound = server.servers[0].sockets[0].getsockname()[1]
    running = DashboardServer(host, int(bound), use_tls, server, thread, app)
    log.info("dashboard serving on %s", running.url)
    return running
