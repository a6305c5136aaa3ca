"""Serving the dashboard: uvicorn on its own thread and event loop, beside the collector.

`start_dashboard` returns once the port is bound (so `.port` is real, also for port 0) and
`stop()` returns once the server has closed its connections and the dashboard its database
connections. Over a non-loopback address the dashboard serves TLS with the collector's server
certificate, so the credential posted at login never crosses the network in the clear, and
follows `tls rotate` as the agent ports do: new connections get the new certificate within
seconds, without a restart.
"""

from __future__ import annotations

import ipaddress
import logging
import ssl
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import uvicorn
from starlette.applications import Starlette

from devposture.collector.config import CollectorConfig
from devposture.collector.trust import RELOAD_CHECK_SECONDS
from devposture.collector.trust import _stamp as file_stamp
from devposture.collector.web.app import Dashboard, create_app, dashboard_of

log = logging.getLogger(__name__)

START_TIMEOUT_SECONDS = 15.0
STOP_TIMEOUT_SECONDS = 10.0

# What the certificate and key files looked like (None: missing) when last read.
_Stamps = tuple[tuple[int, int, int] | None, tuple[int, int, int] | None]


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class FollowedCertificate:
    """The dashboard's TLS context, following the server certificate files on disk.

    OpenSSL calls the listening context's servername callback at every new connection's
    ClientHello, with or without a server name (browsers send none for an address); it hands
    the connection the context of the newest good pair. The files are looked at (two stats)
    at most once every RELOAD_CHECK_SECONDS, and a changed pair is loaded into a fresh
    context that replaces the one in use only once it loaded whole: a half-written or
    mismatched pair keeps the previous certificate, logged once until the files change again.
    All of it runs on the dashboard's one event loop thread.
    """

    def __init__(self, cert: Path, key: Path) -> None:
        self._cert, self._key = cert, key
        # Stamps before contents: a change made while loading is then seen at the next check.
        self._stamps = self._read_stamps()
        self.listening = self._load()  # raises at start: there is nothing older to keep
        self.listening.sni_callback = self._choose
        self._current = self.listening
        self._refused: _Stamps | None = None
        self._checked = time.monotonic()

    def _read_stamps(self) -> _Stamps:
        return file_stamp(self._cert), file_stamp(self._key)

    def _load(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self._cert, self._key)
        return context

    def current(self) -> ssl.SSLContext:
        """The context of the newest good pair, reloading it if the files changed."""
        now = time.monotonic()
        if now - self._checked < RELOAD_CHECK_SECONDS:
            return self._current
        self._checked = now
        stamps = self._read_stamps()
        if stamps in (self._stamps, self._refused):
            return self._current
        try:
            context = self._load()
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
            self._refused = stamps
            log.warning(
                "dashboard: the server certificate files changed but cannot be used (%s);"
                " still serving the previous certificate",
                exc,
            )
            return self._current
        self._stamps, self._refused, self._current = stamps, None, context
        log.info("dashboard: serving the new server certificate to new connections")
        return context

    def _choose(
        self, connection: ssl.SSLObject, server_name: str | None, listening: ssl.SSLContext
    ) -> None:
        try:
            current = self.current()
            if current is not listening:
                connection.context = current
        except Exception:  # raising here would fail the handshake
            log.exception("dashboard: certificate reload failed; keeping the previous one")


@dataclass
class DashboardServer:
    host: str
    port: int
    tls: bool
    _server: uvicorn.Server
    _thread: threading.Thread
    _app: Starlette

    @property
    def dashboard(self) -> Dashboard:
        """The application's state: its sessions and its login throttle."""
        return dashboard_of(self._app)

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
    )  # fmt: skip
    if use_tls:
        try:
            certificate = FollowedCertificate(config.server_cert, config.server_key)
        except (OSError, ValueError) as exc:
            dashboard_of(app).close()
            raise OSError(
                f"the dashboard cannot use {config.server_cert} and {config.server_key} ({exc});"
                " run `devposture-collector tls rotate` to issue a matching pair"
            ) from exc
        settings.load()  # what serving would do first; then our context in place of its own
        settings.ssl = certificate.listening
    try:
        dashboard_of(app).prepare()
    except Exception as exc:  # each page says what is wrong; serving starts anyway
        log.warning("dashboard: could not prepare its database connections: %s", exc)
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
