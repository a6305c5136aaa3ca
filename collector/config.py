"""The collector's data folder and its configuration file, `collector.toml`.

Everything one collector installation owns lives in one folder (made by `init`), so that a
backup or a move is one copy. Paths in the file are relative to that folder. The file is read
strictly (`SCHEMA`, `config_file`): an unknown key or a wrong value is refused with its line,
never ignored.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from devposture.collector.alerts import settings as alert_settings
from devposture.collector.alerts.settings import AlertSettings
from devposture.collector.store.target import (
    DatabaseTarget,
    DatabaseTargetError,
    PostgresTarget,
    SqliteTarget,
    database_target,
)
from devposture.config_file import ConfigError, ConfigFile, Setting
from devposture.policy.catalogs import LANGS, Lang
from devposture.policy.cli_messages import said
from devposture.policy.os_errors import os_error

__all__ = ["CONFIG_NAME", "SCHEMA", "CollectorConfig", "ConfigError", "load", "render_default"]

CONFIG_NAME = "collector.toml"

DEFAULT_ENROLL_PORT = 7443
DEFAULT_REPORT_PORT = 7444
DEFAULT_ADMIN_PORT = 7445
DEFAULT_METRICS_PORT = 9464
DEFAULT_WEB_PORT = 7446
LOG_FORMATS = ("text", "json")
REPORT_WRITERS = ("process", "thread")
DEFAULT_DRAIN_SECONDS = 5.0
# The drain and the shutdown after it must end before the service manager kills the process.
MAX_DRAIN_SECONDS = 60.0
# How often each serving process says so in the database ([server] presence_seconds): a
# process that dies is counted out of the per-device rate limit's shares after three of these.
DEFAULT_PRESENCE_SECONDS = 30.0
PRESENCE_SECONDS_RANGE = (1.0, 300.0)

_TEMPLATE = """\
# devposture 采集器配置。路径相对于本文件夹。
# devposture collector configuration. Paths are relative to this folder.

[listen]
# 客户端端口监听的地址；用 0.0.0.0 对整个网络提供服务。
# Address the agent ports listen on. Use 0.0.0.0 to serve the whole network.
host = "{host}"
# 注册端口（TLS，采集器证明自己的身份；客户端出示一次性令牌）。
# Enrollment (TLS, the collector proves itself; agents present a one-time token).
enroll_port = {enroll_port}
# 上报端口（双向 TLS：每个客户端用注册时得到的证书证明身份）。
# Reports (mutual TLS: each agent proves itself with the certificate it enrolled for).
report_port = {report_port}

[server]
# 收到 SIGTERM 后，健康检查先回答 NOT_SERVING 这么多秒，再停止接收上报、关闭端口，
# 以便负载均衡先把本采集器摘除。0 表示立即停止；最多 60。它加 5 秒须小于服务管理器的停止超时。
# On SIGTERM, health checks answer NOT_SERVING this many seconds before the collector stops
# taking reports and closes its ports, so a load balancer polling them takes it out of
# rotation first. 0 stops at once; at most 60. Keep it and 5 s more within the service
# manager's stop timeout (Kubernetes: terminationGracePeriodSeconds, 30 s by default).
drain_seconds = 5
# 谁把上报写入数据库："process"（独立进程，更快）或 "thread"（线程）。
# Who writes reports to the database: "process", a process of its own beside the one
# serving agents (faster: they do not take turns on one Python interpreter), or "thread".
report_writer = "process"
# 每个服务进程每隔这么多秒在数据库中登记一次（按服务进程数平分每台设备的调用频率限制）；
# 进程意外退出后，三个周期内不再计入。1 到 300。
# How often each serving process says so in the database, for its share of the per-device
# rate limit; one that dies is counted out after three of these. 1 to 300.
presence_seconds = 30

[database]
# 本文件夹中的 SQLite 文件：一个站点只有一个采集器时使用。
# A SQLite file in this folder: a site's one collector.
path = "devposture.db"
# 或者多个采集器共用的 PostgreSQL（此时不使用 path），密码不要写在 url 里：写在 password_file
# （只有采集器账户可读），或 PGPASSWORD、~/.pgpass 中。
# Or the PostgreSQL that several collectors share (then `path` is not used), e.g.
#   url = "postgresql://devposture@db.example.internal:5432/devposture"
# with no password in it: the password is in `password_file` (readable by the collector's
# account only), or in PGPASSWORD or ~/.pgpass.
url = ""
password_file = ""

[policy]
# 条款、检查项和阈值；修改后正在运行的采集器会自动加载。
# The clauses, checks and thresholds; edit it and the running collector picks it up.
path = "policy.toml"

[enrollment]
# 新注册令牌的有效时长（小时），除非 `token create --ttl` 另有指定。
# How long a new enrollment token stays valid unless `token create --ttl` says otherwise.
token_ttl_hours = 24
# 为设备签发的客户端证书的有效天数；剩余约三分之一时客户端自动续期。
# Lifetime of the client certificates signed for devices. Agents renew them by themselves
# when about a third of it is left; short lifetimes limit what a stolen key is worth.
device_certificate_days = 14

[admin]
# 管理端口（IT 在其他电脑上用命令行、看板）；需要管理凭据（`devposture-collector admin add`）。
# 请只在本机回环地址或管理网络上开放。
# The administration port (IT's CLI from another machine, the dashboard). It needs an admin
# credential (`devposture-collector admin add`); keep it on loopback or an admin network.
host = "127.0.0.1"
port = {admin_port}

[metrics]
# 通过 HTTP 在 /metrics 提供 Prometheus 指标（不含密钥和个人数据）；请只在本机或监控网络上开放。
# enabled = false 关闭。
# Prometheus metrics over plain HTTP at /metrics (reports received and refused, ingest
# latency, devices by state). No secrets or personal data, but keep it on loopback or a
# monitoring network. enabled = false turns it off.
enabled = true
host = "127.0.0.1"
port = {metrics_port}

[web]
# IT 看板（全部设备、单台设备、失败最久），中文和英文，需要管理凭据（查看者角色即可）。
# 在回环地址以外使用采集器的服务器证书以 TLS 提供服务。enabled = false 关闭。
# The dashboard for IT (fleet, devices, failing longest), in Chinese and English, behind an
# admin credential (the viewer role suffices). Served over TLS with the collector's server
# certificate on any address but loopback. enabled = false turns it off.
enabled = true
host = "127.0.0.1"
port = {web_port}
# 读者没有选择（中文 / English 切换）且浏览器语言也无法决定时看板使用的语言："zh" 或 "en"。
# The dashboard's language, "zh" (Chinese) or "en" (English), when the reader has not chosen
# one (the 中文 / English switch) and the browser's languages do not decide.
language = "zh"

[logging]
# "text" 供人阅读，"json" 每行一个 JSON 对象（供日志管道使用）。密钥总会被遮盖。
# "text" for people, "json" for one JSON object per line (log pipelines). Secrets are
# always redacted.
format = "text"

[limits]
# 可接受的最大上报字节数；更大的上报以 RESOURCE_EXHAUSTED 拒绝。
# Largest report accepted, in bytes; larger ones are refused with RESOURCE_EXHAUSTED.
max_report_bytes = 1048576
# 每台设备每分钟可调用的次数及突发上限；超出的以 RESOURCE_EXHAUSTED 回答并给出重试提示，
# 不影响其他设备。
# Calls one device may make per minute, and in a burst; more are answered RESOURCE_EXHAUSTED
# with a retry hint, without slowing other devices.
device_calls_per_minute = 60
device_call_burst = 30
# 每个客户端连接在这么多秒后（平稳地）关闭，使被吊销设备的连接在一分钟内结束；客户端自动重连。
# Every agent connection is closed (gracefully) after this many seconds, so a revoked
# device's open connections end within a minute; agents reconnect without noticing.
max_connection_age_seconds = 50
"""


@dataclass(frozen=True)
class CollectorConfig:
    data_dir: Path
    host: str
    enroll_port: int
    report_port: int
    database: DatabaseTarget
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
    # [web] language: the dashboard's when neither the reader nor the browser decides.
    web_language: Lang = "zh"
    drain_seconds: float = DEFAULT_DRAIN_SECONDS
    presence_seconds: float = DEFAULT_PRESENCE_SECONDS
    # "process" or "thread": see collector/report_writer.py.
    report_writer: str = "process"
    # [alerts]: IT alert digests (collector/alerts/); no channel set sends nothing.
    alerts: AlertSettings = field(default_factory=AlertSettings)

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
    metrics_port: int = DEFAULT_METRICS_PORT, *, database: PostgresTarget | None = None,
) -> str:  # fmt: skip
    text = _TEMPLATE.format(
        host=host, enroll_port=enroll_port, report_port=report_port, admin_port=admin_port,
        metrics_port=metrics_port, web_port=DEFAULT_WEB_PORT,
    ) + alert_settings.TEMPLATE  # fmt: skip
    if database is None:
        return text
    # TOML basic strings: JSON's string syntax is a subset of them.
    text = text.replace('url = ""\n', f"url = {json.dumps(database.url)}\n", 1)
    if database.password_file is not None:
        file = json.dumps(str(database.password_file))
        text = text.replace('password_file = ""\n', f"password_file = {file}\n", 1)
    return text


# Every section and key collector.toml may hold. A key added after the first release is
# optional (an older file lacks it); a key is never renamed or removed without a migration.
SCHEMA: dict[str, dict[str, Setting]] = {
    "listen": {
        "host": Setting(str, "127.0.0.1", required=True),
        "enroll_port": Setting(int, DEFAULT_ENROLL_PORT, required=True),
        "report_port": Setting(int, DEFAULT_REPORT_PORT, required=True),
    },
    "server": {
        "drain_seconds": Setting(float, DEFAULT_DRAIN_SECONDS),
        "report_writer": Setting(str, "process"),
        "presence_seconds": Setting(float, DEFAULT_PRESENCE_SECONDS),
    },
    "database": {
        "path": Setting(str, "devposture.db"),
        "url": Setting(str, ""),
        "password_file": Setting(str, ""),
    },
    "policy": {"path": Setting(str, "policy.toml")},
    "enrollment": {
        "token_ttl_hours": Setting(float, 24.0, required=True),
        "device_certificate_days": Setting(int, 14, required=True),
    },
    "admin": {"host": Setting(str, "127.0.0.1"), "port": Setting(int, DEFAULT_ADMIN_PORT)},
    "metrics": {
        "enabled": Setting(bool, True),
        "host": Setting(str, "127.0.0.1"),
        "port": Setting(int, DEFAULT_METRICS_PORT),
    },
    "web": {
        "enabled": Setting(bool, True),
        "host": Setting(str, "127.0.0.1"),
        "port": Setting(int, DEFAULT_WEB_PORT),
        "language": Setting(str, "zh"),
    },
    "logging": {"format": Setting(str, "text")},
    "limits": {
        "max_report_bytes": Setting(int, 1_048_576, required=True),
        "device_calls_per_minute": Setting(int, 60),
        "device_call_burst": Setting(int, 30),
        "max_connection_age_seconds": Setting(float, 50.0),
    },
    alert_settings.SECTION: alert_settings.KEYS,
}


class DataFolderError(ConfigError):
    """The data folder's configuration cannot be read at all (worded in the reader's
    language; a file's mistakes, line by line, are `config_file`'s)."""


def load(data_dir: Path, *, new_database: bool = False) -> CollectorConfig:
    """The data folder's configuration; `ConfigError` naming every mistake, with its line and
    its fix, when the file has any (see `config_file`).

    A data folder's SQLite file must exist (`new_database`: the folder is being made, by
    `init`): opened, a missing one would be made anew and empty, and the collector would go
    on with no history and a second evidence chain signed by the same key."""
    path = data_dir / CONFIG_NAME
    if not path.is_file():
        raise DataFolderError(
            "{path} not found: this is not a collector data folder. Create one with"
            " `devposture-collector init --data {data}`",
            path=path,
            data=data_dir,
        )
    try:
        f = ConfigFile(path, SCHEMA)
    except OSError as exc:
        raise DataFolderError("cannot read {path} ({problem})", path=path,
                              problem=os_error(exc, exc.strerror)) from exc  # fmt: skip
    max_bytes = f.whole("limits", "max_report_bytes")
    f.at_least("limits", "max_report_bytes", max_bytes, 4096)
    days = f.whole("enrollment", "device_certificate_days")
    f.at_least("enrollment", "device_certificate_days", days, 1)
    per_minute = f.whole("limits", "device_calls_per_minute")
    burst = f.whole("limits", "device_call_burst")
    max_age = f.number("limits", "max_connection_age_seconds")
    f.at_least("limits", "device_calls_per_minute", per_minute, 1)
    f.at_least("limits", "device_call_burst", burst, 1)
    f.at_least("limits", "max_connection_age_seconds", max_age, 1)
    log_format = _choice(f, "logging", "format", LOG_FORMATS)
    config = CollectorConfig(
        data_dir=data_dir,
        host=f.text("listen", "host"),
        enroll_port=f.port("listen", "enroll_port"),
        report_port=f.port("listen", "report_port"),
        database=_database(f, data_dir),
        token_ttl_hours=f.number("enrollment", "token_ttl_hours"),
        device_certificate_days=days,
        max_report_bytes=max_bytes,
        policy=data_dir / f.text("policy", "path"),
        admin_host=f.text("admin", "host"),
        admin_port=f.port("admin", "port"),
        device_calls_per_minute=per_minute,
        device_call_burst=burst,
        max_connection_age_seconds=max_age,
        metrics_enabled=f.flag("metrics", "enabled"),
        metrics_host=f.text("metrics", "host"),
        metrics_port=f.port("metrics", "port"),
        log_format=log_format,
        web_enabled=f.flag("web", "enabled"),
        web_host=f.text("web", "host"),
        web_port=f.port("web", "port"),
        web_language="en" if _choice(f, "web", "language", LANGS) == "en" else "zh",
        drain_seconds=_drain_seconds(f),
        presence_seconds=_presence_seconds(f),
        report_writer=_choice(f, "server", "report_writer", REPORT_WRITERS),
        alerts=alert_settings.read(f, data_dir),
    )
    f.check()
    database = config.database
    if not new_database and isinstance(database, SqliteTarget) and not database.path.exists():
        raise DataFolderError(
            "the database {path} is missing, though this data folder holds its configuration"
            " and keys: restore it from your backup, or make a new data folder with"
            " `devposture-collector init --data NEW_FOLDER`. Nothing was created in its place",
            path=database.path,
        )
    return config


def _database(f: ConfigFile, data_dir: Path) -> DatabaseTarget:
    """[database]: `url` (PostgreSQL) when given, else the SQLite file `path`."""
    url = f.text("database", "url")
    if not url:
        return SqliteTarget(data_dir / f.text("database", "path"))
    try:
        return database_target(url, data_dir, f.text("database", "password_file"))
    except DatabaseTargetError as exc:
        f.problem(("database", "url"), said("[database] url: {problem}", problem=exc))
        return SqliteTarget(data_dir / f.text("database", "path"))


def use_database(data_dir: Path, database: PostgresTarget) -> None:
    """Make collector.toml name `database` ([database] url and password_file), keeping every
    other line and comment as IT wrote it. Written whole to a new file, then renamed over."""
    path = data_dir / CONFIG_NAME
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    values = {"url": json.dumps(database.url)}
    if database.password_file is not None:
        values["password_file"] = json.dumps(str(database.password_file))
    section, header, seen = None, None, set()
    for index, line in enumerate(lines):
        stripped = line.strip()
        if stripped.startswith("[") and stripped.endswith("]"):
            section = stripped[1:-1].strip()
            if section == "database":
                header = index
            continue
        key = stripped.split("=", 1)[0].strip() if "=" in stripped else ""
        if section == "database" and key in values and not stripped.startswith("#"):
            lines[index] = f"{key} = {values[key]}\n"
            seen.add(key)
    missing = [f"{key} = {value}\n" for key, value in values.items() if key not in seen]
    if missing:
        if header is None:
            lines += ["\n[database]\n", *missing]
        else:
            lines[header + 1 : header + 1] = missing
    staged = path.with_name(path.name + ".new")
    staged.write_text("".join(lines), encoding="utf-8")
    staged.chmod(path.stat().st_mode & 0o777)
    staged.replace(path)
    load(data_dir, new_database=True)  # what was written must load


def _choice(f: ConfigFile, section: str, key: str, choices: tuple[str, ...]) -> str:
    """A setting that is one of `choices` ([logging] format, [server] report_writer,
    [web] language)."""
    value = f.text(section, key)
    if value not in choices:
        f.problem((section, key), said(
            "[{section}] {key} must be {choices}, not {value}", section=section, key=key,
            choices=" or ".join(map(repr, choices)), value=repr(value),
        ))  # fmt: skip
    return value


def _drain_seconds(f: ConfigFile) -> float:
    """[server] drain_seconds, within what a service manager's stop timeout allows."""
    drain = f.number("server", "drain_seconds")
    if not 0 <= drain <= MAX_DRAIN_SECONDS:
        f.problem(("server", "drain_seconds"), said(
            "[server] drain_seconds must be between 0 and {maximum} seconds, not {value}; set"
            " e.g. drain_seconds = {default} (0 stops at once)",
            maximum=f"{MAX_DRAIN_SECONDS:g}", value=f"{drain:g}",
            default=f"{DEFAULT_DRAIN_SECONDS:g}",
        ))  # fmt: skip
    return drain


def _presence_seconds(f: ConfigFile) -> float:
    """[server] presence_seconds: often enough that a dead process's share comes back within
    minutes, seldom enough that a large fleet of processes writes little."""
    every = f.number("server", "presence_seconds")
    low, high = PRESENCE_SECONDS_RANGE
    if not low <= every <= high:
        f.problem(("server", "presence_seconds"), said(
            "[server] presence_seconds must be between {low} and {high} seconds, not {value};"
            " set e.g. presence_seconds = {default}",
            low=f"{low:g}", high=f"{high:g}", value=f"{every:g}",
            default=f"{DEFAULT_PRESENCE_SECONDS:g}",
        ))  # fmt: skip
    return every
