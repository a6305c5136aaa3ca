"""Probes for an OS whose readers are not written yet: every fact says NOT_SUPPORTED."""

from __future__ import annotations

from devposture.agent.probes.outcome import FactOutcome, Probe, ProbeContext, error
from devposture.v1 import devposture_pb2 as pb


def not_supported(fact: pb.Fact.ValueType, os_name: str) -> Probe:
    def probe(_ctx: ProbeContext) -> FactOutcome:
        name = pb.Fact.Name(fact).removeprefix("FACT_").lower()
        message = f"the {name} probe is not implemented for {os_name} yet"
        return FactOutcome(None, [error(fact, pb.PROBE_ERROR_CODE_NOT_SUPPORTED, message)])

    return probe


def all_not_supported(
    facts: tuple[pb.Fact.ValueType, ...], os_name: str
) -> dict[pb.Fact.ValueType, Probe]:
    return {fact: not_supported(fact, os_name) for fact in facts}
