"""Sending one message on one channel, and telling what a failure means: worth retrying (the
receiver is away, busy or rate-limiting) or not (it refused the message: retrying would not
help until IT fixes the settings).

Retried: a connection refused or timed out, a receiver too slow (an attempt has
`Limits.attempt`, 30 s, in all: `deadline`), HTTP 5xx and 429, a WeCom `errcode` other than 0
(45009 is its rate limit), an SMTP 4xx answer, a secret file that cannot be read (IT may fix
it). Not retried: HTTP 4xx but 429, a redirect (3xx: not followed, the URL is to be fixed),
an SMTP 5xx answer, a receiver's TLS certificate that does not verify, a mail server without
the STARTTLS or AUTH the settings ask for (each a setting to fix, not an outage). A mail
server that refuses some recipients and takes the others has the digest: the log names the
refusals. A problem's text never holds the
WeCom URL (its key= is a secret), a password or a signing secret.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import smtplib
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Protocol

from devposture.collector.alerts import payloads
from devposture.collector.alerts.deadline import (
    DEFAULT_LIMITS,
    SMTP,
    SMTP_SSL,
    Deadline,
    HTTPHandler,
    HTTPSHandler,
    Limits,
)
from devposture.collector.alerts.settings import AlertSettings
from devposture.collector.alerts.urgent import Urgent
from devposture.collector.store.alerts import Delivery
from devposture.policy.time_zone import DEFAULT_TIME_ZONE

log = logging.getLogger(__name__)
WECOM_PER_MINUTE = 20  # WeCom's limit for one group robot
# What a WeCom errcode means for IT, in the log. 93000 answers (with HTTP 200) a robot's URL
# whose key is wrong, or a robot removed from its group: still retried, since the URL file is
# read at each attempt and one fixed meanwhile gets the digest through.
WECOM_ERRCODES = {
    45009: " (rate limit)",
    93000: " (the robot's webhook URL is not valid: check the URL in [alerts]"
    " wecom_webhook_file, or whether the robot was removed from the group)",
}


@dataclass(frozen=True)
class Attempt:
    delivered: bool
    retry: bool = False
    problem: str = ""  # what went wrong, for the log and the outbox (never a secret)


SENT = Attempt(delivered=True)


def retry(problem: str) -> Attempt:
    return Attempt(delivered=False, retry=True, problem=problem)


def refused(problem: str) -> Attempt:
    return Attempt(delivered=False, retry=False, problem=problem)


class Channel(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def per_minute(self) -> int | None:
        """Most messages a minute the receiver takes; None: no limit."""

    @property
    def fix(self) -> str:
        """What IT checks when the receiver refuses."""

    def send(self, d: Delivery) -> Attempt: ...

    def send_urgent(self, n: Urgent) -> Attempt:
        """An urgent alert, sent as it is made (`unrecorded`): no outbox holds it."""


def _secret(path: Path, key: str) -> str | Attempt:
    """A secret file's text, stripped; or, when it cannot be read, an attempt to retry (IT may
    fix the file meanwhile) naming the setting, never the content."""
    try:
        return path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        return retry(f"cannot read [alerts] {key} ({reason})")


class _Unfollowed(urllib.request.HTTPRedirectHandler):
    """A redirect answered is not followed: urllib turned the POST into a GET without its
    body (the digest lost, yet counted sent) and carried the signature header to wherever
    the Location pointed. The 3xx is the answer: refused, the log naming the setting."""

    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def _opener(deadline: Deadline) -> urllib.request.OpenerDirector:
    """urllib's usual opener (proxies from the environment, certificates verified), following
    no redirect, each connection within `deadline`."""
    return urllib.request.build_opener(_Unfollowed, HTTPHandler(deadline), HTTPSHandler(deadline))


def _post(
    url: str, body: bytes, headers: dict[str, str], limits: Limits
) -> tuple[int, bytes] | Attempt:
    """POST `body` within `limits`; the status and the answer (at most 64 KiB of it), or the
    attempt's outcome when none came."""
    if not url.startswith(("http://", "https://")):  # never file: or another scheme
        return refused("the URL is not an http:// or https:// address")
    request = urllib.request.Request(url, data=body, method="POST", headers={  # noqa: S310
        "Content-Type": "application/json; charset=utf-8", **headers,
    })  # fmt: skip
    deadline = Deadline(limits)
    try:
        with _opener(deadline).open(request) as response:
            return int(response.status), response.read(65536)
    except urllib.error.HTTPError as exc:
        return int(exc.code), b""
    except (urllib.error.URLError, OSError) as exc:
        if deadline.hit:
            return retry(deadline.problem)
        reason = getattr(exc, "reason", exc)
        if isinstance(reason, ssl.SSLCertVerificationError):  # a setting, not an outage
            return refused(
                f"the receiver's TLS certificate does not verify ({reason.verify_message})"
            )
        return retry(f"no answer ({type(reason).__name__}: {getattr(reason, 'strerror', '')})")
    except ValueError:  # its text would show the URL
        return refused("the URL is not a valid http:// or https:// address")


def _http_outcome(status: int) -> Attempt | None:
    """None for a 2xx; else retry (5xx, 429) or refused (other 4xx)."""
    if 200 <= status < 300:
        return None
    if status >= 500 or status == 429:
        return retry(f"HTTP {status}")
    return refused(f"HTTP {status}")


@dataclass(frozen=True)
class WeCom:
    """A WeCom group robot (企业微信群机器人): its webhook URL is read from a file."""

    url_file: Path
    name: str = "wecom"
    per_minute: int | None = WECOM_PER_MINUTE
    fix: str = "check the robot's webhook URL in [alerts] wecom_webhook_file"
    time_zone: str = DEFAULT_TIME_ZONE  # the policy's: the digest's times are in it
    limits: Limits = DEFAULT_LIMITS

    def send(self, d: Delivery) -> Attempt:
        return self._post(payloads.wecom(d, self.time_zone))

    def send_urgent(self, n: Urgent) -> Attempt:
        return self._post(payloads.urgent_wecom(n, self.time_zone))

    def _post(self, body: bytes) -> Attempt:
        url = _secret(self.url_file, "wecom_webhook_file")
        if isinstance(url, Attempt):
            return url
        answer = _post(url, body, {}, self.limits)
        if isinstance(answer, Attempt):
            return answer
        status, body = answer
        failed = _http_outcome(status)
        if failed is not None:
            return failed
        try:
            code = json.loads(body).get("errcode")
        except (ValueError, AttributeError):
            return retry(f"HTTP {status} with an answer that is not WeCom's JSON")
        if code == 0:
            return SENT
        return retry(f"WeCom errcode {code}" + WECOM_ERRCODES.get(code, ""))


@dataclass(frozen=True)
class Webhook:
    """A generic webhook, the body signed with HMAC-SHA256 when a secret file is set."""

    url: str
    secret_file: Path | None
    header: str
    name: str = "webhook"
    per_minute: int | None = None
    fix: str = "check [alerts] webhook_url and what the receiver expects"
    time_zone: str = DEFAULT_TIME_ZONE
    limits: Limits = DEFAULT_LIMITS

    def send(self, d: Delivery) -> Attempt:
        return self._post(payloads.webhook(d, self.time_zone))

    def send_urgent(self, n: Urgent) -> Attempt:
        return self._post(payloads.urgent_webhook(n, self.time_zone))

    def _post(self, body: bytes) -> Attempt:
        headers = {}
        if self.secret_file is not None:
            key = _secret(self.secret_file, "webhook_secret_file")
            if isinstance(key, Attempt):
                return key
            headers[self.header] = (
                "sha256=" + hmac.new(key.encode(), body, hashlib.sha256).hexdigest()
            )
        answer = _post(self.url, body, headers, self.limits)
        if isinstance(answer, Attempt):
            return answer
        return _http_outcome(answer[0]) or SENT


@dataclass(frozen=True)
class Email:
    """SMTP: STARTTLS, implicit TLS, or none (a local relay)."""

    settings: AlertSettings
    name: str = "email"
    per_minute: int | None = None
    fix: str = "check the [alerts] smtp_ settings (server, account, sender, recipients)"
    time_zone: str = DEFAULT_TIME_ZONE
    limits: Limits = DEFAULT_LIMITS

    def send(self, d: Delivery) -> Attempt:
        s = self.settings
        return self._mail(payloads.email(d, s.smtp_from, s.smtp_to, self.time_zone))

    def send_urgent(self, n: Urgent) -> Attempt:
        s = self.settings
        return self._mail(payloads.urgent_email(n, s.smtp_from, s.smtp_to, self.time_zone))

    def _mail(self, message: EmailMessage) -> Attempt:
        s = self.settings
        password = ""
        if s.smtp_user and s.smtp_password_file is not None:
            read = _secret(s.smtp_password_file, "smtp_password_file")
            if isinstance(read, Attempt):
                return read
            password = read
        deadline = Deadline(self.limits)
        try:
            with self._connect(deadline) as smtp:
                if s.smtp_user:
                    smtp.login(s.smtp_user, password)
                refusals = smtp.send_message(message)
        except (smtplib.SMTPException, OSError) as exc:
            # smtplib makes a read the deadline cut a disconnection: the deadline tells
            return retry(deadline.problem) if deadline.hit else _smtp_failure(exc)
        if refusals:  # some recipients took it: sent, and the refused ones are named in the log
            log.warning("alerts: the mail server refused %d recipient(s) of an alert (SMTP"
                        " %s): check [alerts] smtp_to", len(refusals),
                        ", ".join(str(code) for code, _ in refusals.values()))  # fmt: skip
        return SENT

    def _connect(self, deadline: Deadline) -> smtplib.SMTP:
        s = self.settings
        if s.smtp_security == "tls":
            return SMTP_SSL(s.smtp_host, s.smtp_port, deadline)
        smtp = SMTP(s.smtp_host, s.smtp_port, deadline)
        if s.smtp_security == "starttls":
            try:
                smtp.starttls(context=deadline.tls())
            except BaseException:
                smtp.close()
                raise
        return smtp


def _smtp_failure(exc: smtplib.SMTPException | OSError) -> Attempt:
    """What an SMTP exchange that failed in time means."""
    if isinstance(exc, ssl.SSLCertVerificationError):  # a setting (the server's name, its CA)
        return refused(f"the mail server's TLS certificate does not verify"
                       f" ({exc.verify_message})")  # fmt: skip
    if isinstance(exc, smtplib.SMTPNotSupportedError):  # AUTH or STARTTLS it does not offer
        return refused("the mail server does not offer what [alerts] smtp_security or"
                       " smtp_user asks for (STARTTLS, AUTH)")  # fmt: skip
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        problem = f"every recipient refused (SMTP {', '.join(map(str, codes))})"
        return retry(problem) if all(400 <= c < 500 for c in codes) else refused(problem)
    if isinstance(exc, smtplib.SMTPResponseException):
        problem = f"SMTP {exc.smtp_code}"
        return retry(problem) if 400 <= exc.smtp_code < 500 else refused(problem)
    return retry(f"no answer ({type(exc).__name__})")


def configured(
    settings: AlertSettings, time_zone: str = DEFAULT_TIME_ZONE, limits: Limits = DEFAULT_LIMITS
) -> dict[str, Channel]:
    """The channels `settings` sets, by name, writing times in `time_zone` (the policy's),
    each attempt within `limits`."""
    found: list[Channel] = []
    if settings.wecom_webhook_file is not None:
        found.append(WeCom(settings.wecom_webhook_file, time_zone=time_zone, limits=limits))
    if settings.webhook_url:
        found.append(Webhook(settings.webhook_url, settings.webhook_secret_file,
                             settings.webhook_signature_header,
                             time_zone=time_zone, limits=limits))  # fmt: skip
    if settings.smtp_host:
        found.append(Email(settings, time_zone=time_zone, limits=limits))
    return {c.name: c for c in found}
