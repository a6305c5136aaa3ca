"""The common API: dispatch, error isolation, classification, and a live run."""

from __future__ import annotations

from devposture.agent.host import LiveHost
from devposture.agent.probes import ProbeConfig, classify_network, collect_facts, host_facts
from devposture.agent.probes import facts as fact_table
from devposture.agent.probes.outcome import FactOutcome, ProbeContext
from devposture.agent.probes.runner import run_probe
from devposture.v1 import devposture_pb2 as pb
from tests.agent.replay import ReplayHost


def test_every_fact_is_either_present_or_explained_on_this_machine() -> None:
    report = pb.PostureReport()
    collect_facts(LiveHost(), ProbeConfig(), report)
    assert report.host.hostname and report.host.os_family != pb.OS_FAMILY_UNSPECIFIED
    explained = {e.fact for e in report.errors}
    present = {descriptor.name for descriptor, _ in report.ListFields()}
    for fact, field in fact_table.FIELDS.items():
        assert field in present or fact in explained, f"{field} silently missing"
    for err in report.errors:
        assert err.code != pb.PROBE_ERROR_CODE_UNSPECIFIED and err.message
        assert err.code != pb.PROBE_ERROR_CODE_INTERNAL, err.message


def test_windows_host_replays_through_windows_probes() -> None:
    # A replayed Windows machine with no tools at all: the Windows probes run (on Linux),
    # and every fact is present or explained, none by a crash.
    host = ReplayHost(os_family=pb.OS_FAMILY_WINDOWS)
    report = pb.PostureReport()
    collect_facts(host, ProbeConfig(), report)
    assert report.host.os_family == pb.OS_FAMILY_WINDOWS
    assert any(call[0] == "netsh" for call in host.calls), host.calls
    explained = {e.fact for e in report.errors}
    present = {descriptor.name for descriptor, _ in report.ListFields()}
    for fact, field in fact_table.FIELDS.items():
        assert field in present or fact in explained, f"{field} silently missing"
    assert all(e.code != pb.PROBE_ERROR_CODE_INTERNAL for e in report.errors)
    missing_tools = {
        e.fact for e in report.errors if e.code == pb.PROBE_ERROR_CODE_COMMAND_NOT_FOUND
    }
    assert pb.FACT_WIFI in missing_tools and pb.FACT_ANTIVIRUS in missing_tools


def test_a_crashing_probe_is_internal_and_the_rest_still_run() -> None:
    def broken(_ctx: ProbeContext) -> FactOutcome:
        raise KeyError("boom")

    ctx = ProbeContext(ReplayHost(), ProbeConfig(), pb.PostureReport())
    outcome = run_probe(pb.FACT_VPN, broken, ctx)
    (err,) = outcome.errors
    assert err.fact == pb.FACT_VPN and err.code == pb.PROBE_ERROR_CODE_INTERNAL
    assert "KeyError" in err.message and "test_collect.py" in err.message

    report = pb.PostureReport()
    collect_facts(ReplayHost(), ProbeConfig(), report)  # a host with nothing on it
    assert report.HasField("vpn") and not report.vpn.active  # no interfaces: a fact
    codes = {e.fact: e.code for e in report.errors}
    assert codes[pb.FACT_FIREWALL] == pb.PROBE_ERROR_CODE_COMMAND_NOT_FOUND
    assert codes[pb.FACT_DISK_ENCRYPTION] == pb.PROBE_ERROR_CODE_COMMAND_NOT_FOUND


def test_probe_returning_nothing_is_reported() -> None:
    ctx = ProbeContext(ReplayHost(), ProbeConfig(), pb.PostureReport())
    outcome = run_probe(pb.FACT_WIFI, lambda _ctx: FactOutcome(), ctx)
    assert outcome.errors[0].code == pb.PROBE_ERROR_CODE_INTERNAL


def test_host_facts_from_replay() -> None:
    host = ReplayHost()
    host.files["/etc/os-release"] = b'NAME="Fedora Linux"\nVERSION_ID=40\n'
    info = host_facts(host)
    assert (info.os_name, info.os_version, info.os_build) == (
        "Fedora Linux",
        "40",
        "6.1.0-18-amd64",
    )


def test_classification_rules() -> None:
    config = ProbeConfig(
        trusted_networks=("Corp",),
        public_network_patterns=("Starbucks*",),
        network_hash_key=b"secret",
    )
    assert classify_network("Cafe", pb.WIFI_SECURITY_OPEN, config) == (
        "Cafe", pb.NETWORK_CLASS_PUBLIC,
    )  # fmt: skip
    assert classify_network("Old", pb.WIFI_SECURITY_WEP, config)[1] == pb.NETWORK_CLASS_PUBLIC
    assert classify_network("Lib", pb.WIFI_SECURITY_OWE, config)[1] == pb.NETWORK_CLASS_PUBLIC
    assert classify_network("Starbucks WiFi", pb.WIFI_SECURITY_WPA2_PERSONAL, config)[1] == (
        pb.NETWORK_CLASS_PUBLIC
    )
    assert classify_network("Corp", pb.WIFI_SECURITY_WPA2_PERSONAL, config) == (
        "Corp", pb.NETWORK_CLASS_TRUSTED,
    )  # fmt: skip
    assert classify_network("Corp", pb.WIFI_SECURITY_OPEN, config)[1] == pb.NETWORK_CLASS_TRUSTED
    network_id, klass = classify_network("MyHome-5G", pb.WIFI_SECURITY_WPA2_PERSONAL, config)
    assert klass == pb.NETWORK_CLASS_OTHER
    assert network_id.startswith("h:") and len(network_id) == 34
    assert "MyHome" not in network_id
    other_key = classify_network("MyHome-5G", pb.WIFI_SECURITY_WPA2_PERSONAL, ProbeConfig())[0]
    assert other_key != network_id  # the key matters
