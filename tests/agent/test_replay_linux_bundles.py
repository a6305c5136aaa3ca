"""Real diagnostic bundles recorded on Linux (tests/fixtures/linux/bundles) replay to the facts
a person reading them would state."""

from __future__ import annotations

from pathlib import Path

import pytest

from devposture.agent.collect import build_report
from devposture.agent.host.bundle import BundleHost
from devposture.agent.probes import ProbeConfig
from devposture.agent.probes.facts import FIELDS
from devposture.v1 import devposture_pb2 as pb

BUNDLES = Path(__file__).resolve().parent.parent / "fixtures" / "linux" / "bundles"


def replay(name: str) -> pb.PostureReport:
    return build_report(BundleHost.load(BUNDLES / name), ProbeConfig())


@pytest.mark.parametrize("name", sorted(p.name for p in BUNDLES.glob("*.json")))
def test_every_fact_is_collected_or_explained(name: str) -> None:
    report = replay(name)
    assert report.host.os_family == pb.OS_FAMILY_LINUX
    present = {field.name for field, _ in report.ListFields()}
    explained = {e.fact for e in report.errors}
    for fact, field in FIELDS.items():
        assert field in present or fact in explained, field


def test_no_vpn() -> None:
    vpn = replay("netns-no-vpn.json").vpn
    assert not vpn.active and list(vpn.interfaces) == []


def test_tun_that_no_client_holds_is_not_an_active_vpn() -> None:
    vpn = replay("netns-tun-idle.json").vpn
    assert not vpn.active
    assert [(i.name, i.kind, i.up) for i in vpn.interfaces] == [("tun0", "tun", False)]


def test_tun_held_by_a_client_is_an_active_vpn() -> None:
    vpn = replay("netns-tun-connected.json").vpn
    assert vpn.active
    assert [(i.name, i.kind, i.up) for i in vpn.interfaces] == [("tun0", "tun", True)]
