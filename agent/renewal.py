"""Keep this computer's client certificate fresh, by itself.

Certificates are short-lived (the collector's setting, two weeks by default), so a stolen key is
worth little for long. When about a third of the certificate's lifetime is left, the agent asks
for a new one over its current mutual-TLS channel (Renew), with the same key. A renewal that
fails keeps the old certificate and is tried again later, backing off with jitter. An agent
whose certificate already expired (the laptop was away, the collector was down) proves its key
on the enrollment port instead (Reestablish) and needs no new token, unless IT revoked it.

The new certificate and trust bundle replace the old ones atomically: a crash at any point
leaves a working pair, and the collector never counts an unused renewal against the device.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import random
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import grpc

from devposture.agent.cert_dates import Validity, read_validity
from devposture.agent.employee.company_time import company_zone, stamp
from devposture.agent.state import AgentState, Enrollment, write_atomic
from devposture.net.rpc_status import described
from devposture.policy.cli_messages import Said, said
from devposture.policy.os_errors import os_error

log = logging.getLogger(__name__)

# Renew when this share of the certificate's lifetime is left.
RENEW_WHEN_LEFT = 1 / 3
FIRST_RETRY = dt.timedelta(minutes=5)
LONGEST_RETRY = dt.timedelta(hours=6)
RENEWAL_FILE = "renewal.json"


class Outcome(Enum):
    NOT_DUE = "not due"
    BACKING_OFF = "backing off"
    RENEWED = "renewed"
    REESTABLISHED = "reestablished"
    FAILED = "failed"


@dataclass(frozen=True)
class RenewalResult:
    outcome: Outcome
    # What happened besides (the generation, the next attempt, the failure), worded by `renew`
    # in the reader's language; the log has its English.
    detail: str | Said = ""
    expires_at: dt.datetime | None = None


def renewal_due(validity: Validity, now: dt.datetime) -> bool:
    return validity.not_after - now <= validity.lifetime * RENEW_WHEN_LEFT


def retry_delay(failures: int, rng: random.Random | None = None) -> dt.timedelta:
    """Exponential backoff with full jitter between half and all of the step, so a fleet that
    failed together (the collector was down) does not come back together."""
    step: dt.timedelta = min(LONGEST_RETRY, FIRST_RETRY * 2 ** max(0, failures - 1))
    jitter = 0.5 + 0.5 * (rng or random).random()
    return step * jitter


# The backoff of a state folder that could not keep it (a full or read-only disk), kept in
# this process meanwhile: without it every round asked the collector for a new certificate
# again, one more generation each time.
_UNSAVED: dict[Path, tuple[int, dt.datetime]] = {}


def _load_backoff(state: AgentState) -> tuple[int, dt.datetime | None]:
    try:
        data = json.loads((state.directory / RENEWAL_FILE).read_text(encoding="utf-8"))
        return int(data["failures"]), dt.datetime.fromisoformat(data["next_attempt"])
    except (OSError, ValueError, KeyError, TypeError):
        return _UNSAVED.get(state.directory, (0, None))


def _save_backoff(state: AgentState, failures: int, next_attempt: dt.datetime | None) -> None:
    path = state.directory / RENEWAL_FILE
    try:
        if next_attempt is None:
            _UNSAVED.pop(state.directory, None)
            path.unlink(missing_ok=True)
            return
        payload = {"failures": failures, "next_attempt": next_attempt.isoformat()}
        write_atomic(path, json.dumps(payload).encode("utf-8"), 0o600)
        _UNSAVED.pop(state.directory, None)
    except OSError as exc:
        log.warning("the renewal's next attempt cannot be kept in the state folder (%s)",
                    exc.strerror or exc)  # fmt: skip
        if next_attempt is not None:
            _UNSAVED[state.directory] = (failures, next_attempt)


def ensure_fresh_certificate(
    state: AgentState, enrollment: Enrollment, now: dt.datetime, *, force: bool = False
) -> RenewalResult:
    """Renew (or reestablish) the certificate when it is due; never raises for a failure to
    reach or convince the collector: the old certificate stays and the attempt is retried."""
    validity = read_validity(state.cert_path.read_bytes())
    expires_at = validity.not_after
    if not force and not renewal_due(validity, now):
        return RenewalResult(Outcome.NOT_DUE, expires_at=expires_at)
    failures, next_attempt = _load_backoff(state)
    if next_attempt is not None and next_attempt - now > LONGEST_RETRY:
        # No retry is set further ahead than the longest step: this one was set by a clock
        # that ran ahead (a wrong RTC at boot) and has been set back since. Obeyed, it held
        # renewal back by as much, then the reestablishment of an expired certificate, and
        # every report waited in the outbox.
        log.info("the next renewal attempt was set by a clock that ran ahead; trying now")
        next_attempt = None
    if not force and next_attempt is not None and now < next_attempt:
        return RenewalResult(
            Outcome.BACKING_OFF,
            said("next attempt after {time}",
                 time=stamp(next_attempt, company_zone(state.company_time_zone()))),
            expires_at,
        )  # fmt: skip
    expired = now >= expires_at
    # Only now the cryptography package: the service's every other round needs none of it.
    from devposture.agent.renewal_exchange import RenewalError, exchange  # noqa: PLC0415

    try:
        response, fresh_until = exchange(state, enrollment, now, expired=expired)
    except (grpc.RpcError, RenewalError, OSError) as exc:
        # An OSError: the new certificate could not be written (a full or read-only state
        # folder). It escaped, and the round stopped before sending: nothing was sent for as
        # long as the renewal stayed due, and the reports whose acknowledgement would have
        # freed a full disk stayed on it. The current certificate is whole (written
        # atomically) and still valid, or reestablishment follows.
        detail: str | Said = (
            described(exc) if isinstance(exc, grpc.RpcError)
            else exc.said if isinstance(exc, RenewalError)
            else said("the new certificate cannot be kept in the state folder ({problem})",
                      problem=os_error(exc, exc.strerror))
        )  # fmt: skip
        retry_at = now + retry_delay(failures + 1)
        _save_backoff(state, failures + 1, retry_at)
        log.warning(
            "certificate renewal failed (%s); keeping the current certificate,"
            " next attempt after %s", detail,
            stamp(retry_at, company_zone(state.company_time_zone())),
        )  # fmt: skip
        return RenewalResult(Outcome.FAILED, detail, expires_at)
    _save_backoff(state, 0, None)
    outcome = Outcome.REESTABLISHED if expired else Outcome.RENEWED
    log.info("certificate %s, generation %d, valid until %s", outcome.value,
             response.generation, fresh_until.isoformat())  # fmt: skip
    return RenewalResult(
        outcome, said("generation {generation}", generation=response.generation), fresh_until
    )
