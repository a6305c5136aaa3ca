"""Runs every probe for the host's OS and files facts and errors into the report.

One probe's failure never stops another: a typed failure becomes a ProbeError with its own
code, anything else (a bug) becomes INTERNAL with the exception type and where it happened.
A probe that returns neither a fact nor an error for its fact is itself a bug and reported.
"""

from __future__ import annotations

import logging
import traceback

from agent.host import Host, HostError
from agent.parsers import ParseError
from agent.probes import facts as fact_table
from agent.probes import linux, macos, windows
from agent.probes.config import ProbeConfig
from agent.probes.hostinfo import host_info_and_errors
from agent.probes.outcome import (
    FactOutcome,
    Probe,
    ProbeContext,
    ProbeFailure,
    code_of,
    describe,
    error,
)
from agent.probes.unsupported import all_not_supported
from devposture.v1 import devposture_pb2 as pb

logger = logging.getLogger(__name__)


_BY_FAMILY: dict[pb.OsFamily.ValueType, dict[pb.Fact.ValueType, Probe]] = {
    pb.OS_FAMILY_LINUX: linux.PROBES,
    pb.OS_FAMILY_WINDOWS: windows.PROBES,
    pb.OS_FAMILY_MACOS: macos.PROBES,
}


def probes_for(os_family: pb.OsFamily.ValueType) -> dict[pb.Fact.ValueType, Probe]:
    """The probe table for an OS family; an unknown family gets NOT_SUPPORTED for all."""
    table = _BY_FAMILY.get(os_family)
    if table is None:
        return all_not_supported(fact_table.ORDER, "this operating system")
    return table


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


def collect_facts(host: Host, config: ProbeConfig, report: pb.PostureReport) -> None:
    """Fill report.host, every fact message, and report.errors (one pb.ProbeError per fact or
    source that could not be read)."""
    try:
        info, host_errors = host_info_and_errors(host)
        report.host.CopyFrom(info)
        report.errors.extend(host_errors)
    except Exception as exc:  # host info must not cost the facts either
        report.host.os_family = host.os_family
        message = f"host information failed: {type(exc).__name__} at {_where(exc)}"
        report.errors.append(error(pb.FACT_HOST, pb.PROBE_ERROR_CODE_INTERNAL, message))
    probes = probes_for(host.os_family)
    ctx = ProbeContext(host, config, report)
    for fact in fact_table.ORDER:
        outcome = run_probe(fact, probes[fact], ctx)
        if outcome.fact is not None:
            getattr(report, fact_table.FIELDS[fact]).CopyFrom(outcome.fact)
        report.errors.extend(outcome.errors)
