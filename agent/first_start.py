"""First start: enroll from the enrollment file IT put on the computer, then delete it.

IT puts one file on every computer (`/etc/devposture/enroll.token`, owner root, mode 0600),
holding the enrollment value `devposture-collector token create --bundle` printed (the
collector's addresses, its CA fingerprint and the token, `devposture.net.enrollment_value`), or
a bare token when agent.toml names the collector and its CA. The service (`devposture-agent
run`), started by the package before or after the file arrives, enrolls with it:

* the file is read only if it is private: a regular file (not a link), readable by its owner
  only (0600 or 0400), owned by root or by the agent's own account. A file others can read is
  refused (its secret may be copied), with the fix;
* each of the collector's addresses is tried in turn; while none answers, the service tries
  again on a backoff (5 s, doubling to 15 min, with jitter), without exiting;
* a value that is damaged, or a token the collector refuses (expired, used up, revoked), is
  logged once, and the service waits for a new file, looking again every minute;
* the file is deleted after the enrollment succeeded, and only then (a failed enrollment keeps
  it for the next try); one that cannot be deleted is named in the log, to delete by hand.

The value and the token never reach a command line or a log: only the token's id (public, as
`token list` shows it) may appear in the collector's answers.
"""

from __future__ import annotations

import datetime as dt
import errno
import hashlib
import logging
import os
import stat
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from devposture.agent.backoff import Backoff
from devposture.agent.deliver import readdress_queue
from devposture.agent.enroll import EnrollError, TryLater, Unreachable, enroll_first
from devposture.agent.service_manager import ServiceManager
from devposture.agent.state import AgentState, Enrollment
from devposture.net.address import CollectorAddress
from devposture.net.enrollment_value import (
    MAX_FILE_BYTES,
    EnrollmentValue,
    EnrollmentValueError,
    beijing_time,
    looks_like_value,
    parse_enrollment_value,
)
from devposture.policy.cli_messages import Said, Worded, said
from devposture.policy.os_errors import os_error
from devposture.v1 import devposture_pb2 as pb

log = logging.getLogger(__name__)

# How often to look at the enrollment file while waiting for one (or for a new one).
CHECK_SECONDS = 60.0

EnrollFunction = Callable[
    [AgentState, Sequence[CollectorAddress], str, str, pb.HostInfo], Enrollment
]


class FileRefused(Worded):
    """The enrollment file exists but must not be used as it is; the message says the fix
    (worded in the reader's language; the service logs the English)."""


class PlanError(Worded):
    """What the file holds cannot be enrolled with; the message says what to put there."""


@dataclass(frozen=True)
class SecretFile:
    text: str
    # What the file holds, as a digest: a new value differs, the same one written again does
    # not (whatever its time stamps say: they are too coarse to tell two quick writes apart).
    stamp: bytes


def _owner(uid: int) -> str:
    """`li.wei (uid 1000)`, or `uid 1000` for an account without a name: the same in every
    language."""
    try:
        import pwd  # noqa: PLC0415 (POSIX only)

        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except (ImportError, KeyError):
        return f"uid {uid}"


def _check_private(path: Path, st: os.stat_result) -> None:
    if not stat.S_ISREG(st.st_mode):
        raise FileRefused("{path} is not a regular file: put the enrollment value in a file",
                          path=path)  # fmt: skip
    if os.name != "posix":
        return  # Windows: the folder's ACL guards it (the Windows package sets it)
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o077:
        raise FileRefused(
            "{path} can be read or changed by other users (mode {mode}), and it holds the"
            " enrollment secret: it was not used. Make it private with `chmod 600 {path}`"
            " (if others may have copied it, revoke the token and make a new value)",
            path=path, mode=f"{mode:04o}",
        )
    if st.st_uid not in (0, os.geteuid()):
        raise FileRefused(
            "{path} belongs to {owner}, not to root or the agent's account: it was not used."
            " Make root its owner: `chown root {path}`",
            path=path, owner=_owner(st.st_uid),
        )


def read_secret_file(path: Path) -> SecretFile | None:
    """The enrollment file's text, or None when there is no file. Raises FileRefused when it
    is not private (see the module's docstring). Opened without following a link, and
    checked on the opened file itself, so what is checked is what is read."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        return None
    except PermissionError:
        raise FileRefused(
            "cannot read {path} (permission denied): the agent's service runs as root; make"
            " root its owner (`chown root {path}`)",
            path=path,
        ) from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise FileRefused(
                "{path} is a symbolic link: put the enrollment value in the file itself",
                path=path,
            ) from None
        raise FileRefused("cannot read {path} ({problem})", path=path,
                          problem=os_error(exc, exc.strerror)) from None  # fmt: skip
    try:
        st = os.fstat(fd)
        _check_private(path, st)
        data = b""
        while len(data) <= MAX_FILE_BYTES:
            chunk = os.read(fd, MAX_FILE_BYTES + 1 - len(data))
            if not chunk:
                break
            data += chunk
    finally:
        os.close(fd)
    if len(data) > MAX_FILE_BYTES:
        raise FileRefused("{path} is far too large to hold an enrollment value", path=path)
    return SecretFile(data.decode("utf-8", errors="replace"), hashlib.sha256(data).digest())


@dataclass(frozen=True)
class Plan:
    """Where to enroll and with what, from the file and the settings."""

    addresses: tuple[CollectorAddress, ...]
    ca_fingerprint: str
    token: str
    value: EnrollmentValue | None = None


def plan(
    text: str, where: str, collectors: Sequence[CollectorAddress], ca_fingerprint: str | None
) -> Plan:
    """What to enroll with. An enrollment value names its collector; addresses configured
    (agent.toml, the environment, --collector) are tried before its own. A bare token needs
    them, and the CA fingerprint. Never echoes the secret."""
    if looks_like_value(text):
        try:
            value = parse_enrollment_value(text)
        except EnrollmentValueError as exc:
            raise PlanError("{where}: {problem}", where=where, problem=exc) from None
        if ca_fingerprint is not None and ca_fingerprint != value.ca_fingerprint:
            raise PlanError(
                "{where}: the enrollment value is for the collector whose CA is {theirs}, but"
                " this agent is configured for {ours}: use a value from your collector, or"
                " correct ca_fingerprint in agent.toml",
                where=where, theirs=value.ca_fingerprint, ours=ca_fingerprint,
            )
        addresses = tuple(dict.fromkeys((*collectors, *value.collectors)))
        return Plan(addresses, value.ca_fingerprint, value.token, value)
    token = text.strip()
    if not token.startswith("dpt_") or len(token.split()) != 1:
        raise PlanError(
            "{where} holds neither an enrollment value (dpe1.…) nor a token (dpt_…): put in it"
            " exactly what `devposture-collector token create --bundle` printed",
            where=where,
        )
    if not collectors or ca_fingerprint is None:
        raise PlanError(
            "{where} holds a bare token, which does not say where to enroll: give {missing},"
            " or put the enrollment value from `devposture-collector token create --bundle` in"
            " the file instead (it names both)",
            where=where, missing=_missing(bool(collectors), ca_fingerprint is not None),
        )
    return Plan(tuple(collectors), ca_fingerprint, token)


_ADDRESS = said("the collector's address (--collector, [collector] addresses in agent.toml)")
_PIN = said("its CA fingerprint (--ca-fingerprint, [collector] ca_fingerprint)")


def _missing(have_address: bool, have_pin: bool) -> Said:
    """What a bare token lacks: the address, the CA fingerprint, or both."""
    if have_address:
        return _PIN
    return _ADDRESS if have_pin else said("{first} and {second}", first=_ADDRESS, second=_PIN)


def remove_used_file(path: Path, used: SecretFile) -> None:
    """Delete the enrollment file now that it did its work, if it is still the one used."""
    try:
        current = read_secret_file(path)
    except FileRefused:
        current = None
    if current is not None and current.stamp != used.stamp:
        log.warning(
            "enrolled; %s changed while enrolling and was left in place: delete it, it is not"
            " needed any more", path,
        )  # fmt: skip
        return
    try:
        path.unlink(missing_ok=True)
    except OSError as exc:
        log.error(
            "enrolled, but %s could not be deleted (%s): delete it by hand, it holds the"
            " enrollment secret", path, exc.strerror,
        )  # fmt: skip


@dataclass
class FirstStart:
    """The service's wait for its enrollment (see the module's docstring)."""

    state: AgentState
    path: Path
    collectors: tuple[CollectorAddress, ...]
    ca_fingerprint: str | None
    manager: ServiceManager
    stop: threading.Event
    host: Callable[[], pb.HostInfo]
    check_seconds: float = CHECK_SECONDS
    enroll: EnrollFunction = enroll_first
    backoff: Backoff = field(default_factory=Backoff)
    # Wait this long or until stopped; True when stopped (tests give the time as data).
    wait: Callable[[float], bool] | None = None
    # Problems already logged: each once, until it changes.
    _said: set[str] = field(default_factory=set, init=False)
    # The version of the file a lasting refusal (damaged, refused by the collector) was for.
    _refused: bytes | None = field(default=None, init=False)

    def run(self) -> Enrollment | None:
        """The enrollment once there is one; None when the service was stopped first."""
        self.manager.ready("waiting for enrollment")
        while not self.stop.is_set():
            outcome = self._step()
            if isinstance(outcome, Enrollment):
                return outcome
            stopped = self.wait(outcome) if self.wait else self.manager.wait(self.stop, outcome)
            if stopped:
                break
        return None

    def _once(self, level: int, message: str) -> None:
        if message not in self._said:
            self._said.add(message)
            log.log(level, "%s", message)

    def _step(self) -> Enrollment | float:
        """One look at the file, and one enrollment when there is something new to try: the
        enrollment, or the seconds to wait before looking again."""
        if self.state.is_enrolled():  # `devposture-agent enroll` was run meanwhile
            return self.state.load()
        try:
            secret = read_secret_file(self.path)
        except FileRefused as exc:
            self._once(logging.ERROR, f"not enrolled: {exc}")
            self.manager.status("waiting for enrollment: the enrollment file is refused")
            return self.check_seconds
        if secret is None:
            self._once(logging.WARNING,
                       f"not enrolled, and there is no enrollment file at {self.path}: waiting"
                       " for one (the value `devposture-collector token create --bundle`"
                       " printed, owner root, mode 0600)")  # fmt: skip
            self.manager.status(f"waiting for enrollment: no file at {self.path}")
            return self.check_seconds
        if secret.stamp == self._refused:
            log.debug("the enrollment file has not changed since it was refused; waiting")
            return self.check_seconds
        try:
            enrollment = self._attempt(secret)
        except PlanError as exc:
            self._once(logging.ERROR, f"cannot enroll: {exc}. Waiting for a new enrollment file")
            self._refused = secret.stamp
            self.manager.status("waiting for enrollment: the enrollment file is unusable")
            return self.check_seconds
        except (Unreachable, TryLater) as exc:
            delay = self.backoff.failed(exc.retry_after if isinstance(exc, TryLater) else None)
            log.warning("cannot enroll yet: %s; trying again in %.0f s", exc, delay)
            self.manager.status(
                f"waiting for enrollment: the collector cannot be reached; trying again in"
                f" {delay:.0f} s"
            )
            return delay
        except EnrollError as exc:
            self._once(logging.ERROR, f"enrollment refused: {exc}. Waiting for a new enrollment"
                       f" file at {self.path}")  # fmt: skip
            self._refused = secret.stamp
            self.manager.status("waiting for enrollment: the collector refused the token")
            return self.check_seconds
        remove_used_file(self.path, secret)
        log.info("enrolled as device %s; the enrollment file was used and removed",
                 enrollment.device_id)  # fmt: skip
        moved = readdress_queue(self.state, enrollment.device_id)
        if moved:
            log.info("%d report(s) collected under the previous enrollment go with this one",
                     moved)  # fmt: skip
        return enrollment

    def _attempt(self, secret: SecretFile) -> Enrollment:
        found = plan(secret.text, str(self.path), self.collectors, self.ca_fingerprint)
        targets = ", ".join(a.target() for a in found.addresses)
        self.manager.status(f"enrolling with {targets}")
        log.info("enrolling with the collector at %s", targets)
        try:
            return self.manager.run_beating(
                lambda: self.enroll(
                    self.state, found.addresses, found.token, found.ca_fingerprint, self.host()
                )
            )
        except EnrollError as exc:
            expires = found.value.expires if found.value is not None else None
            if type(exc) is EnrollError and expires and expires <= dt.datetime.now(dt.UTC):
                raise EnrollError("{problem} (the value expired {when})", problem=exc,
                                  when=beijing_time(expires)) from exc  # fmt: skip
            raise
