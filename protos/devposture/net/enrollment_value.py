"""The one enrollment value IT puts on every computer: where the collector is, which CA it
must show, and the token, in one opaque string (`devposture-collector token create --bundle`).

Three values typed separately are three chances to get one wrong on a thousand machines; one
string copied whole is not. It reads `dpe1.<base64url>`: the version, then a JSON object

    {"collectors": ["host:port", ...], "ca": "sha256:<64 hex>", "token": "dpt_…",
     "expires": "2026-12-09T12:00:00+08:00", "uses": 50}

with a SHA-256 check of the JSON at its end (the last 8 bytes), so a value cut short or
mangled in a copy is refused as such, not half-used. `expires` and `uses` are for the person
reading `token list` or an installer's log; the collector decides. The string holds the secret:
it goes in a file (0600), never on a command line or into a log.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
from dataclasses import dataclass

from devposture.net.address import CollectorAddress, normalize_fingerprint
from devposture.policy.cli_messages import BadValue

PREFIX = "dpe1."
_CHECK_BYTES = 8
# The time the people rolling agents out read expiries in (the collector's CLI and the agent's
# log say it the same way).
BEIJING = dt.timezone(dt.timedelta(hours=8))
_TOKEN_PREFIX = "dpt_"  # noqa: S105 (the form of a token, not a secret)


# The most a file holding an enrollment value may hold (a value is a few hundred bytes): read
# no more of one, whoever reads it (the service's first start, `devposture-agent setup`).
MAX_FILE_BYTES = 64 * 1024


class EnrollmentValueError(BadValue):
    """The text is not an enrollment value; the message says what to do (never echoes it)."""


@dataclass(frozen=True)
class EnrollmentValue:
    """Everything an agent needs to enroll, from one string."""

    collectors: tuple[CollectorAddress, ...]
    ca_fingerprint: str
    token: str
    expires: dt.datetime
    uses: int

    def encode(self) -> str:
        body = json.dumps(
            {
                "collectors": [c.target() for c in self.collectors],
                "ca": self.ca_fingerprint,
                "token": self.token,
                "expires": self.expires.isoformat(timespec="seconds"),
                "uses": self.uses,
            },
            separators=(",", ":"),
        ).encode("utf-8")
        check = hashlib.sha256(body).digest()[:_CHECK_BYTES]
        return PREFIX + base64.urlsafe_b64encode(body + check).decode("ascii").rstrip("=")


def beijing_time(moment: dt.datetime) -> str:
    """`2026-12-09 20:00 (UTC+08:00)`: a value's expiry as the collector's CLI prints it."""
    return f"{moment.astimezone(BEIJING):%Y-%m-%d %H:%M} (UTC+08:00)"


def looks_like_value(text: str) -> bool:
    """Whether `text` is meant as an enrollment value (and not, say, a bare token)."""
    return text.strip().startswith(PREFIX)


def parse_enrollment_value(text: str) -> EnrollmentValue:
    """The value in `text`, or EnrollmentValueError naming what is wrong."""
    cleaned = "".join(text.split())
    if not cleaned.startswith(PREFIX):
        raise EnrollmentValueError(
            "this is not a devposture enrollment value (it starts with dpe1.): save exactly what"
            " `devposture-collector token create --bundle` printed"
        )
    encoded = cleaned[len(PREFIX) :]
    try:
        raw = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
    except (binascii.Error, ValueError) as exc:
        raise _damaged() from exc
    body, check = raw[:-_CHECK_BYTES], raw[-_CHECK_BYTES:]
    if len(raw) <= _CHECK_BYTES or hashlib.sha256(body).digest()[:_CHECK_BYTES] != check:
        raise _damaged()
    try:
        fields = json.loads(body)
        value = EnrollmentValue(
            collectors=tuple(CollectorAddress.parse(c) for c in fields["collectors"]),
            ca_fingerprint=normalize_fingerprint(fields["ca"]),
            token=str(fields["token"]),
            expires=dt.datetime.fromisoformat(fields["expires"]),
            uses=int(fields["uses"]),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise EnrollmentValueError(
            "the enrollment value was made by another version or is not one:"
            " make a new one with `devposture-collector token create --bundle`"
        ) from exc
    if not value.collectors or not value.token.startswith(_TOKEN_PREFIX):
        raise EnrollmentValueError(
            "the enrollment value names no collector or no token: make a new one with"
            " `devposture-collector token create --bundle`"
        )
    if value.expires.tzinfo is None:
        raise EnrollmentValueError("the enrollment value's expiry has no time zone")
    return value


def _damaged() -> EnrollmentValueError:
    return EnrollmentValueError(
        "the enrollment value is damaged (cut short or changed in a copy): copy it again,"
        " whole, from what `devposture-collector token create --bundle` printed"
    )
