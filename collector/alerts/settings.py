"""The `[alerts]` section of collector.toml: where digests go, how often, and what counts as a
collector problem.

Secrets are never in the file or on the command line: the WeCom robot's webhook URL carries
its `key=` (anyone holding it posts to the group), so the URL itself is read from a file, as
are the webhook's signing secret and the SMTP password, each when a message is sent (a file
fixed while the collector runs is used at the next attempt). With no `[alerts]` section, or
no channel set in it, nothing is sent and nothing is composed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from devposture.config_file import ConfigFile, Setting, example
from devposture.policy.cli_messages import enumeration, said

SECTION = "alerts"
SMTP_SECURITY = ("starttls", "tls", "none")
DEFAULT_SIGNATURE_HEADER = "X-Devposture-Signature"

KEYS: dict[str, Setting] = {
    "digest_minutes": Setting(int, 15),
    "repeat_hours": Setting(int, 24),
    "certificate_warning_days": Setting(int, 30),
    "disk_warning_percent": Setting(int, 90),
    "wecom_webhook_file": Setting(str, "", sample="secrets/wecom-webhook.url"),
    "webhook_url": Setting(str, "", sample="https://alerts.example.com/devposture"),
    "webhook_secret_file": Setting(str, "", sample="secrets/webhook.key"),
    "webhook_signature_header": Setting(str, DEFAULT_SIGNATURE_HEADER),
    "smtp_host": Setting(str, "", sample="smtp.example.com"),
    "smtp_port": Setting(int, 587),
    "smtp_security": Setting(str, "starttls"),
    "smtp_user": Setting(str, ""),
    "smtp_password_file": Setting(str, "", sample="secrets/smtp.password"),
    "smtp_from": Setting(str, "", sample="devposture@example.com"),
    "smtp_to": Setting(list, (), sample=("it-team@example.com",)),
}

TEMPLATE = """
[alerts]
# IT 告警，每 digest_minutes 分钟汇总一次：超过宽限期仍失败、失联或疑似克隆的设备，
# 以及本采集器的问题（证书在 certificate_warning_days 天内到期、
# 数据文件夹所在磁盘使用率达到 disk_warning_percent）。
# 下面的通道都未设置时不发送任何消息。消息从不包含无线网络名称或检查原因。
# IT alerts, as a digest every digest_minutes: devices failing past their grace, gone STALE or
# suspected clones, and this collector's problems (certificates expiring within
# certificate_warning_days, the data folder's disk disk_warning_percent full). Nothing is
# sent until a channel below is set. Messages never carry Wi-Fi names or check reasons.
digest_minutes = 15
# 仍未解决的事项在这么多小时后再次提醒。
# An item still open is told again after this many hours.
repeat_hours = 24
certificate_warning_days = 30
disk_warning_percent = 90
# 企业微信群机器人：保存其 webhook 地址的文件（地址中的 key= 是密钥），只有采集器账户可读。
# WeCom group robot (企业微信群机器人): a file holding its webhook URL (the URL's key= is a
# secret), readable by the collector's account only.
wecom_webhook_file = ""
# 接收 JSON 的通用 webhook；给出保存密钥的文件时用 HMAC-SHA256 签名。
# A generic webhook receiving JSON (README: Alerts), signed with HMAC-SHA256 when a file
# holding the secret is given.
webhook_url = ""
webhook_secret_file = ""
webhook_signature_header = "X-Devposture-Signature"
# 电子邮件。smtp_security："starttls"、"tls"（隐式 TLS，端口 465）或 "none"（本地中继）。
# Email. smtp_security: "starttls", "tls" (implicit, port 465) or "none" (a local relay).
smtp_host = ""
smtp_port = 587
smtp_security = "starttls"
smtp_user = ""
smtp_password_file = ""
smtp_from = ""
smtp_to = []
"""


@dataclass(frozen=True)
class AlertSettings:
    """The `[alerts]` settings, paths made absolute (relative ones are in the data folder)."""

    digest_minutes: int = 15
    repeat_hours: int = 24
    certificate_warning_days: int = 30
    disk_warning_percent: int = 90
    wecom_webhook_file: Path | None = None
    webhook_url: str = ""
    webhook_secret_file: Path | None = None
    webhook_signature_header: str = DEFAULT_SIGNATURE_HEADER
    smtp_host: str = ""
    smtp_port: int = 587
    smtp_security: str = "starttls"
    smtp_user: str = ""
    smtp_password_file: Path | None = None
    smtp_from: str = ""
    smtp_to: tuple[str, ...] = ()

    @property
    def channels(self) -> tuple[str, ...]:
        """The channels set, in the order messages are sent."""
        named = (
            ("wecom", self.wecom_webhook_file is not None),
            ("webhook", bool(self.webhook_url)),
            ("email", bool(self.smtp_host)),
        )
        return tuple(name for name, on in named if on)


def _file(f: ConfigFile, key: str, data_dir: Path) -> Path | None:
    value = f.text(SECTION, key)
    return data_dir / value if value else None


def read(f: ConfigFile, data_dir: Path) -> AlertSettings:
    """The section's settings; every mistake recorded in `f` with its line and its fix."""
    minutes = f.whole(SECTION, "digest_minutes")
    f.at_least(SECTION, "digest_minutes", minutes, 1)
    repeat = f.whole(SECTION, "repeat_hours")
    f.at_least(SECTION, "repeat_hours", repeat, 1)
    days = f.whole(SECTION, "certificate_warning_days")
    f.at_least(SECTION, "certificate_warning_days", days, 1)
    percent = f.whole(SECTION, "disk_warning_percent")
    if not 1 <= percent <= 100:
        f.problem((SECTION, "disk_warning_percent"), said(
            "[alerts] disk_warning_percent must be between 1 and 100, not {value}; write e.g."
            " disk_warning_percent = 90",
            value=percent,
        ))  # fmt: skip
    settings = AlertSettings(
        digest_minutes=minutes, repeat_hours=repeat, certificate_warning_days=days,
        disk_warning_percent=percent,
        wecom_webhook_file=_file(f, "wecom_webhook_file", data_dir),
        webhook_url=f.text(SECTION, "webhook_url"),
        webhook_secret_file=_file(f, "webhook_secret_file", data_dir),
        webhook_signature_header=f.text(SECTION, "webhook_signature_header"),
        smtp_host=f.text(SECTION, "smtp_host"), smtp_port=f.port(SECTION, "smtp_port"),
        smtp_security=f.text(SECTION, "smtp_security"), smtp_user=f.text(SECTION, "smtp_user"),
        smtp_password_file=_file(f, "smtp_password_file", data_dir),
        smtp_from=f.text(SECTION, "smtp_from"), smtp_to=f.texts(SECTION, "smtp_to"),
    )  # fmt: skip
    _check(f, settings)
    return settings


def one_address(value: str) -> bool:
    """Whether `value` is one email address ("it@example.com", "IT <it@example.com>"): no
    line break or other control character (the email's From or To would carry it into a
    header of its own; Python refuses such a header, and every email failed), and one
    mailbox with a local part and a domain (not two run together with a comma, not a name
    without "@", which the mail server refuses and the digest is lost)."""
    if any(not c.isprintable() for c in value):
        return False
    # Imported here: the email package is about 10 ms of every command's start, and only a
    # settings file that names an address needs it.
    from email.utils import getaddresses  # noqa: PLC0415

    found = getaddresses([value])
    if len(found) != 1:
        return False
    local, at, domain = found[0][1].rpartition("@")
    return bool(at and local and domain) and not any(c.isspace() or c in ",;<>" for c in domain)


def _check(f: ConfigFile, s: AlertSettings) -> None:
    """What each channel needs besides its own key."""
    if s.webhook_url:
        parts = urlsplit(s.webhook_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            f.problem((SECTION, "webhook_url"), said(
                "[alerts] webhook_url must be an http:// or https:// address, not {value}",
                value=repr(s.webhook_url),
            ))  # fmt: skip
        if parts.password or "key=" in parts.query:
            f.problem((SECTION, "webhook_url"), said(
                "[alerts] webhook_url holds a secret: put the signing secret in"
                " webhook_secret_file (a WeCom robot's URL goes in wecom_webhook_file)"
            ))  # fmt: skip
    if not s.webhook_signature_header.strip() or any(
        c in s.webhook_signature_header for c in " :\r\n"
    ):
        f.problem((SECTION, "webhook_signature_header"), said(
            "[alerts] webhook_signature_header must be an HTTP header name, e.g."
            ' webhook_signature_header = "{default}"',
            default=DEFAULT_SIGNATURE_HEADER,
        ))  # fmt: skip
    if s.smtp_security not in SMTP_SECURITY:
        f.problem((SECTION, "smtp_security"), said(
            "[alerts] smtp_security must be {choices}, not {value}",
            choices=enumeration(map(repr, SMTP_SECURITY)), value=repr(s.smtp_security),
        ))  # fmt: skip
    if s.smtp_host:
        for key, value in (("smtp_from", s.smtp_from), ("smtp_to", s.smtp_to)):
            if not value:
                f.problem((SECTION, key), said(
                    "[alerts] smtp_host is set, so {key} is needed too: write e.g. `{example}`",
                    key=key, example=example(key, KEYS[key]),
                ))  # fmt: skip
    for key, values in (("smtp_from", (s.smtp_from,)), ("smtp_to", s.smtp_to)):
        for value in values:
            if value and not one_address(value):
                f.problem((SECTION, key), said(
                    "[alerts] {key} has {value}, which is not one email address: write one"
                    " address in each text, e.g. `{example}`",
                    key=key, value=repr(value), example=example(key, KEYS[key]),
                ))  # fmt: skip
    if s.smtp_user and s.smtp_password_file is None:
        f.problem((SECTION, "smtp_password_file"), said(
            "[alerts] smtp_user is set, so smtp_password_file is needed too: a file"
            " holding the password, readable by the collector's account only"
        ))  # fmt: skip
