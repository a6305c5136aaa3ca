"""Runs every probe for the host's OS and files facts and errors into the report.

One probe's failure never stops another: a typed failure becomes a ProbeError with its own
code, anything else (a bug) becomes INTERNAL with the exception type and where it happened.
A probe that returns neither a fact nor an error for its fact is itself a bug and reported.

Each probe runs in a worker thread with a wall-clock deadline (PROBE_DEADLINE_SECONDS): one
that hangs (a stuck network mount, a tool waiting on a lock) costs only its own fact, as a
TIMEOUT error, and the round goes on. Python cannot kill a thread, so a hung one is left to
finish by itself; until it does, that probe is not started again (its fact reads TIMEOUT,
"still running since ...", the time in the company's zone: a phrase people read in their
language, `devposture.policy.phrases`), so hung threads cannot pile up round after round.
Probes run one after another, as before: some read facts collected before them. Each gets a
snapshot of the report so far, so a hung probe never reads a report that is being written.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field

from devposture.agent.employee.company_time import company_zone, stamp
from devposture.agent.host import Host, HostError
from devposture.agent.parsers import ParseError
from devposture.agent.probes import facts as fact_table
from devposture.agent.probes.config import ProbeConfig
from devposture.agent.probes.hostinfo import host_info_and_errors
from devposture.agent.probes.outcome import (
    FactOutcome,
    Probe,
    ProbeContext,
    ProbeFailure,
    code_of,
    describe,
    error,
)
from devposture.agent.probes.unsupported import all_not_supported
from devposture.v1 import devposture_pb2 as pb

logger = logging.getLogger(__name__)

# Wall-clock seconds one probe may take. Commands have their own, shorter, timeout
# (ProbeConfig.command_timeout); this bounds everything else too.
PROBE_DEADLINE_SECONDS = 60.0


def probes_for(os_family: pb.OsFamily.ValueType) -> dict[pb.Fact.ValueType, Probe]:
    """The probe table for an OS family; an unknown family gets NOT_SUPPORTED for all.

    Each family's probes (and the parsers they use) are imported when their table is first
    asked for, so an agent loads only its own system's: the Linux service had loaded the 52
    modules of Windows' and macOS' too, 1.3 MB of its resident memory. The imports are
    written out, not computed, so that a freezer (PyInstaller) still sees every one."""
    if os_family == pb.OS_FAMILY_LINUX:
        from devposture.agent.probes import linux  # noqa: PLC0415 (this system's only)

        return linux.PROBES
    if os_family == pb.OS_FAMILY_WINDOWS:
        from devposture.agent.probes import windows  # noqa: PLC0415

        return windows.PROBES
    if os_family == pb.OS_FAMILY_MACOS:
        from devposture.agent.probes import macos  # noqa: PLC0415

        return macos.PROBES
    return all_not_supported(fact_table.ORDER, "this operating system")


def _where(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return "?"
    last = frames[-1]
    module = last.filename.replace("\\", "/").rsplit("/", 1)[-1]
    return f"{module}:{last.lineno} in {last.name}"


def run_probe(fact: pb.Fact.ValueType, probe: Probe, ctx: ProbeContext) -> FactOutcome:
    name = pb.Fact.Name(fact)
    try:
        outcome = probe(ctx)
    except ProbeFailure as exc:
        return FactOutcome(None, [error(fact, exc.code, exc.message, exc.source)])
    except (HostError, ParseError) as exc:
        return FactOutcome(None, [error(fact, code_of(exc), describe(exc))])
    except Exception as exc:  # a bug in a probe must not cost the other facts
        where = _where(exc)
        logger.warning("probe %s failed with %s at %s", name, type(exc).__name__, where)
        message = f"probe failed: {type(exc).__name__} at {where}"
        return FactOutcome(None, [error(fact, pb.PROBE_ERROR_CODE_INTERNAL, message)])
    for err in outcome.errors:
        if err.fact == pb.FACT_UNSPECIFIED:
            err.fact = fact
    if outcome.fact is None and not any(e.fact == fact for e in outcome.errors):
        message = "probe returned neither a fact nor an error"
        outcome.errors.append(error(fact, pb.PROBE_ERROR_CODE_INTERNAL, message))
    return outcome


@dataclass
class _Running:
    """A probe's worker thread and what it handed back."""

    thread: threading.Thread
    started_at: dt.datetime
    done: threading.Event = field(default_factory=threading.Event)
    outcome: FactOutcome | None = None


# Probe threads that overran their deadline and have not finished yet, by (fact, probe).
_HUNG: dict[tuple[int, object], _Running] = {}
_HUNG_LOCK = threading.Lock()


def hung_probes() -> list[str]:
    """The facts whose probe thread is still hung from an earlier round."""
    with _HUNG_LOCK:
        for key in [k for k, r in _HUNG.items() if r.done.is_set()]:
            del _HUNG[key]
        return sorted(pb.Fact.Name(fact) for fact, _ in _HUNG)  # type: ignore[arg-type]


def _timeout(fact: pb.Fact.ValueType, message: str) -> FactOutcome:
    return FactOutcome(None, [error(fact, pb.PROBE_ERROR_CODE_TIMEOUT, message)])


def run_with_deadline(
    fact: pb.Fact.ValueType, name: str, work: Callable[[], FactOutcome], deadline: float,
    key: object, *, zone: dt.tzinfo | None = None,
) -> FactOutcome:  # fmt: skip
    """Run `work` in a worker thread; a TIMEOUT outcome if it does not finish in time.

    `work` must not raise (run_probe does not). `zone`: the company's, in which a hung probe's
    start is said (Asia/Shanghai when None)."""
    slot = (int(fact), key)
    with _HUNG_LOCK:
        hung = _HUNG.get(slot)
        if hung is not None and hung.done.is_set():
            del _HUNG[slot]
            hung = None
    if hung is not None:
        since = stamp(hung.started_at, zone or company_zone())
        return _timeout(
            fact, f"{name} probe still running since {since}: it did not finish within"
            f" {deadline:g} s then, and is not started again until it does",
        )  # fmt: skip
    running = _Running(threading.Thread(), dt.datetime.now(dt.UTC))

    def target() -> None:
        try:
            running.outcome = work()
        finally:
            running.done.set()

    running.thread = threading.Thread(target=target, name=f"probe-{name.lower()}", daemon=True)
    running.thread.start()
    if running.done.wait(deadline) and running.outcome is not None:
        return running.outcome
    if running.done.is_set():  # it finished, but raised anyway
        return FactOutcome(None, [error(fact, pb.PROBE_ERROR_CODE_INTERNAL, "probe failed")])
    with _HUNG_LOCK:
        _HUNG[slot] = running
    logger.warning("probe %s did not finish within %g s; going on without it", name, deadline)
    return _timeout(fact, f"{name} probe did not finish within {deadline:g} s")


def _snapshot(report: pb.PostureReport) -> pb.PostureReport:
    copy = pb.PostureReport()
    copy.CopyFrom(report)
    return copy


def collect_facts(
    host: Host, config: ProbeConfig, report: pb.PostureReport, *, deadline: float | None = None
) -> None:
    """Fill report.host, every fact message, and report.errors (one pb.ProbeError per fact or
    source that could not be read). Each probe gets `deadline` seconds (default
    PROBE_DEADLINE_SECONDS)."""
    limit = PROBE_DEADLINE_SECONDS if deadline is None else deadline
    zone = company_zone(config.time_zone)

    def host_work() -> FactOutcome:
        try:
            info, host_errors = host_info_and_errors(host)
            return FactOutcome(info, list(host_errors))
        except Exception as exc:  # host info must not cost the facts either
            message = f"host information failed: {type(exc).__name__} at {_where(exc)}"
            return FactOutcome(None, [error(pb.FACT_HOST, pb.PROBE_ERROR_CODE_INTERNAL, message)])

    host_outcome = run_with_deadline(pb.FACT_HOST, "FACT_HOST", host_work, limit, "host",
                                     zone=zone)
    if isinstance(host_outcome.fact, pb.HostInfo):
        report.host.CopyFrom(host_outcome.fact)
    else:
        report.host.os_family = host.os_family
    report.errors.extend(host_outcome.errors)
    probes = probes_for(host.os_family)
    for fact in fact_table.ORDER:
        probe = probes[fact]
        ctx = ProbeContext(host, config, _snapshot(report))
        outcome = run_with_deadline(
            fact, pb.Fact.Name(fact), functools.partial(run_probe, fact, probe, ctx), limit, probe,
            zone=zone,
        )
        if outcome.fact is not None:
            getattr(report, fact_table.FIELDS[fact]).CopyFrom(outcome.fact)
        report.errors.extend(outcome.errors)
