"""The collector's data folder and its configuration file, `collector.toml`.

Everything one collector installation owns lives in one folder (made by `init`), so that a
backup or a move is one copy. Paths in the file are relative to that folder.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

CONFIG_NAME = "collector.toml"

DEFAULT_ENROLL_PORT = 7443
DEFAULT_REPORT_PORT = 7444
DEFAULT_ADMIN_PORT = 7445
DEFAULT_METRICS_PORT = 9464
DEFAULT_WEB_PORT = 7446
LOG_FORMATS = ("text", "json")
DEFAULT_DRAIN_SECONDS = 5.0
# The drain and the shutdown after it must end before the service manager kills the process.
MAX_DRAIN_SECONDS = 60.0

_TEMPLATE = """\
# devposture collector configuration. Paths are relative to this folder.

[listen]
# Address the agent ports listen on. Use 0.0.0.0 to serve the whole network.
host = "{host}"
# Enrollment (TLS, the collector proves itself; agents present a one-time token).
enroll_port = {enroll_port}
# Reports (mutual TLS: each agent proves itself with the certificate it enrolled for).
report_port = {report_port}

[server]
# On SIGTERM, health checks answer NOT_SERVING this many seconds before the collector stops
# taking reports and closes its ports, so a load balancer polling them takes it out of
# rotation first. 0 stops at once; at most 60. Keep it and 5 s more within the service
# manager's stop timeout (Kubernetes: terminationGracePeriodSeconds, 30 s by default).
drain_seconds = 5

[database]
path = "devposture.db"

[policy]
# The clauses, checks and thresholds; edit it and the running collector picks it up.
path = "policy.toml"

[enrollment]
# How long a new enrollment token stays valid unless `token create --ttl` says otherwise.
token_ttl_hours = 24
# Lifetime of the client certificates signed for devices. Agents renew them by themselves
# when about a third of it is left; short lifetimes limit what a stolen key is worth.
device_certificate_days = 14

[admin]
# The administration port (IT's CLI from another machine, the dashboard). It needs an admin
# credential (`devposture-collector admin add`); keep it on loopback or an admin network.
host = "127.0.0.1"
port = {admin_port}

[metrics]
# Prometheus metrics over plain HTTP at /metrics (reports received and refused, ingest
# latency, devices by state). No secrets or personal data, but keep it on loopback or a
# monitoring network. enabled = false turns it off.
enabled = true
host = "127.0.0.1"
port = {metrics_port}

[web]
# The dashboard for IT (fleet, devices, failing longest), in Chinese and English, behind an
# admin credential (the viewer role suffices). Served over TLS with the collector's server
# certificate on any address but loopback. enabled = false turns it off.
enabled = true
host = "127.0.0.1"
port = {web_port}

[logging]
# "text" for people, "json" for one JSON object per line (log pipelines). Secrets are
# always redacted.
format = "text"

[limits]
# Largest report accepted, in bytes; larger ones are refused with RESOURCE_EXHAUSTED.
max_report_bytes = 1048576
# Calls one device may make per minute, and in a burst; more are answered RESOURCE_EXHAUSTED
# with a retry hint, without slowing other devices.
device_calls_per_minute = 60
device_call_burst = 30
# Every agent connection is closed (gracefully) after this many seconds, so a revoked
# device's open connections end within a minute; agents reconnect without noticing.
max_connection_age_seconds = 50
"""


class ConfigError(Exception):
    """The data folder or its configuration cannot be used; the message says how to fix it."""


@dataclass(frozen=True)
class CollectorConfig:
    data_dir: Path
    host: str
    enroll_port: int
    report_port: int
    database: Path
    token_ttl_hours: float
    device_certificate_days: int
    max_report_bytes: int
    policy: Path
    admin_host: str = "127.0.0.1"
    admin_port: int = DEFAULT_ADMIN_PORT
    device_calls_per_minute: int = 60
    device_call_burst: int = 30
    max_connection_age_seconds: float = 50.0
    metrics_enabled: bool = True
    metrics_host: str = "127.0.0.1"
    metrics_port: int = DEFAULT_METRICS_PORT
    log_format: str = "text"
    web_enabled: bool = True
    web_host: str = "127.0.0.1"
    web_port: int = DEFAULT_WEB_PORT
    drain_seconds: float = DEFAULT_DRAIN_SECONDS

    @property
    def ca_key(self) -> Path:
        return self.data_dir / "ca" / "ca.key"

    @property
    def ca_cert(self) -> Path:
        return self.data_dir / "ca" / "ca.crt"

    @property
    def server_key(self) -> Path:
        return self.data_dir / "tls" / "server.key"

    @property
    def server_cert(self) -> Path:
        return self.data_dir / "tls" / "server.crt"


def render_default(
    host: str, enroll_port: int, report_port: int, admin_port: int = DEFAULT_ADMIN_PORT,
    metrics_port: int = DEFAULT_METRICS_PORT,
) -> str:  # fmt: skip
    return _TEMPLATE.format(
        host=host, enroll_port=enroll_port, report_port=report_port, admin_port=admin_port,
        metrics_port=metrics_port, web_port=DEFAULT_WEB_PORT,
    )  # fmt: skip


def _get(table: dict[str, object], section: str, key: str, kind: type) -> object:
    value = table.get(section, {})
    if not isinstance(value, dict) or key not in value:
        raise ConfigError(f"{CONFIG_NAME}: [{section}] {key} is missing; add it or re-run init")
    item = value[key]
    if kind is float and isinstance(item, int) and not isinstance(item, bool):
        item = float(item)
    if not isinstance(item, kind) or (isinstance(item, bool) and kind is not bool):
        raise ConfigError(
            f"{CONFIG_NAME}: [{section}] {key} must be a {kind.__name__}, not {item!r}"
        )
    return item


def _optional(
    table: dict[str, object], section: str, key: str, kind: type, default: object
) -> object:
    """A setting added after the first release: absent in an older collector.toml."""
    value = table.get(section, {})
    if not isinstance(value, dict) or key not in value:
        return default
    return _get(table, section, key, kind)


def _at_least(value: object, minimum: float, where: str) -> None:
    if not isinstance(value, int | float) or value < minimum:
        raise ConfigError(f"{CONFIG_NAME}: {where} must be at least {minimum}")


def load(data_dir: Path) -> CollectorConfig:
    path = data_dir / CONFIG_NAME
    if not path.is_file():
        raise ConfigError(
            f"{path} not found: this is not a collector data folder."
            f" Create one with `devposture-collector init --data {data_dir}`"
        )
    try:
        table = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    ports = []
    for key in ("enroll_port", "report_port"):
        port = _get(table, "listen", key, int)
        assert isinstance(port, int)
        if not 0 <= port <= 65535:
            raise ConfigError(f"{CONFIG_NAME}: [listen] {key} must be between 0 and 65535")
        ports.append(port)
    host, database = _get(table, "listen", "host", str), _get(table, "database", "path", str)
    ttl = _get(table, "enrollment", "token_ttl_hours", float)
    days = _get(table, "enrollment", "device_certificate_days", int)
    max_bytes = _get(table, "limits", "max_report_bytes", int)
    assert isinstance(host, str) and isinstance(database, str)
    assert isinstance(ttl, float) and isinstance(days, int) and isinstance(max_bytes, int)
    policy_table = table.get("policy", {})
    policy = policy_table.get("path", "policy.toml") if isinstance(policy_table, dict) else None
    if not isinstance(policy, str):
        raise ConfigError(f"{CONFIG_NAME}: [policy] path must be a text")
    if max_bytes < 4096:
        raise ConfigError(f"{CONFIG_NAME}: [limits] max_report_bytes must be at least 4096")
    _at_least(days, 1, "[enrollment] device_certificate_days")
    admin_host = _optional(table, "admin", "host", str, "127.0.0.1")
    admin_port = _optional(table, "admin", "port", int, DEFAULT_ADMIN_PORT)
    per_minute = _optional(table, "limits", "device_calls_per_minute", int, 60)
    burst = _optional(table, "limits", "device_call_burst", int, 30)
    max_age = _optional(table, "limits", "max_connection_age_seconds", float, 50.0)
    _at_least(per_minute, 1, "[limits] device_calls_per_minute")
    _at_least(burst, 1, "[limits] device_call_burst")
    _at_least(max_age, 1, "[limits] max_connection_age_seconds")
    assert isinstance(admin_host, str) and isinstance(admin_port, int)
    assert isinstance(per_minute, int) and isinstance(burst, int) and isinstance(max_age, float)
    if not 0 <= admin_port <= 65535:
        raise ConfigError(f"{CONFIG_NAME}: [admin] port must be between 0 and 65535")
    services = _side_services(table)
    return CollectorConfig(
        data_dir=data_dir,
        host=host,
        enroll_port=ports[0],
        report_port=ports[1],
        database=data_dir / database,
        token_ttl_hours=ttl,
        device_certificate_days=days,
        max_report_bytes=max_bytes,
        policy=data_dir / policy,
        admin_host=admin_host,
        admin_port=admin_port,
        device_calls_per_minute=per_minute,
        device_call_burst=burst,
        max_connection_age_seconds=max_age,
        drain_seconds=_drain_seconds(table),
        **services,
    )


def _drain_seconds(table: dict[str, object]) -> float:
    """[server] drain_seconds (absent in an older collector.toml: the default)."""
    drain = _optional(table, "server", "drain_seconds", float, DEFAULT_DRAIN_SECONDS)
    assert isinstance(drain, float)
    if not 0 <= drain <= MAX_DRAIN_SECONDS:
        raise ConfigError(
            f"{CONFIG_NAME}: [server] drain_seconds must be between 0 and {MAX_DRAIN_SECONDS:g}"
            f" seconds, not {drain:g}; set e.g. drain_seconds = {DEFAULT_DRAIN_SECONDS:g}"
            " (0 stops at once)"
        )
    return drain


class _SideServices(TypedDict):
    """The checked [metrics], [logging] and [web] settings, named as CollectorConfig's fields
    (so mypy checks the `**` that passes them on)."""

    metrics_enabled: bool
    metrics_host: str
    metrics_port: int
    log_format: str
    web_enabled: bool
    web_host: str
    web_port: int


def _side_services(table: dict[str, object]) -> _SideServices:
    """The optional [metrics], [logging] and [web] sections, checked, as config fields: an
    older collector.toml without them gets the defaults."""
    metrics_enabled = _optional(table, "metrics", "enabled", bool, True)
    metrics_host = _optional(table, "metrics", "host", str, "127.0.0.1")
    metrics_port = _optional(table, "metrics", "port", int, DEFAULT_METRICS_PORT)
    log_format = _optional(table, "logging", "format", str, "text")
    assert isinstance(metrics_enabled, bool) and isinstance(metrics_host, str)
    assert isinstance(metrics_port, int) and isinstance(log_format, str)
    if not 0 <= metrics_port <= 65535:
        raise ConfigError(f"{CONFIG_NAME}: [metrics] port must be between 0 and 65535")
    web_enabled = _optional(table, "web", "enabled", bool, True)
    web_host = _optional(table, "web", "host", str, "127.0.0.1")
    web_port = _optional(table, "web", "port", int, DEFAULT_WEB_PORT)
    assert isinstance(web_enabled, bool) and isinstance(web_host, str)
    assert isinstance(web_port, int)
    if not 0 <= web_port <= 65535:
        raise ConfigError(f"{CONFIG_NAME}: [web] port must be between 0 and 65535")
    if log_format not in LOG_FORMATS:
        raise ConfigError(
            f"{CONFIG_NAME}: [logging] format must be {' or '.join(map(repr, LOG_FORMATS))},"
            f" not {log_format!r}"
        )
    return _SideServices(
        metrics_enabled=metrics_enabled, metrics_host=metrics_host, metrics_port=metrics_port,
        log_format=log_format, web_enabled=web_enabled, web_host=web_host, web_port=web_port,
    )  # fmt: skip
