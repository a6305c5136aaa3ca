"""Classifying a network from every signal the OS gave, with the reason for each."""

from __future__ import annotations

import tomllib
from pathlib import Path

from devposture.agent.probes.config import ProbeConfig
from devposture.agent.probes.wifi_classify import (
    NetworkSignals,
    classify,
    hashed_network_id,
    matching_pattern,
)
from devposture.v1 import devposture_pb2 as pb

WPA2 = pb.WIFI_SECURITY_WPA2_PERSONAL
CONFIG = ProbeConfig(
    trusted_networks=("Corp",),
    public_network_patterns=("Starbucks*", "CMCC", "CMCC-WEB", "i-Shanghai"),
    network_hash_key=b"k",
)
POLICY = Path(__file__).resolve().parents[2] / "protos" / "devposture" / "policy" / "default.toml"


def test_each_public_signal_gives_its_reason() -> None:
    assert classify(NetworkSignals("Cafe", pb.WIFI_SECURITY_OPEN), CONFIG).reasons == (
        "open network",
    )
    assert classify(NetworkSignals("Old", pb.WIFI_SECURITY_WEP), CONFIG).reasons == ("WEP",)
    owe = classify(NetworkSignals("Lib", pb.WIFI_SECURITY_OWE), CONFIG)
    assert owe.classification == pb.NETWORK_CLASS_PUBLIC and "OWE" in owe.reasons[0]
    windows = classify(NetworkSignals("Tenda", WPA2, network_category="Public"), CONFIG)
    assert (windows.network_id, windows.classification, windows.reasons) == (
        "Tenda", pb.NETWORK_CLASS_PUBLIC, ("Windows network category Public",),
    )  # fmt: skip
    portal = classify(NetworkSignals("HomeNet", WPA2, captive_portal=True), CONFIG)
    assert (portal.classification, portal.reasons) == (pb.NETWORK_CLASS_PUBLIC, ("captive portal",))
    named = classify(NetworkSignals("CMCC-WEB", WPA2), CONFIG)
    assert named.reasons == ("name matches CMCC-WEB",) and named.network_id == "CMCC-WEB"


def test_several_signals_are_all_named() -> None:
    signals = NetworkSignals("CMCC", pb.WIFI_SECURITY_OPEN, "", "Public", True)
    assert classify(signals, CONFIG).reasons == (
        "open network",
        "Windows network category Public",
        "captive portal",
        "name matches CMCC",
    )


def test_no_public_signal_is_other_and_hashed() -> None:
    for signals in (
        NetworkSignals("MyHome-5G", WPA2),
        NetworkSignals("MyHome-5G", WPA2, network_category="Private", captive_portal=False),
        NetworkSignals("MyHome-5G", WPA2, network_category="DomainAuthenticated"),
    ):
        result = classify(signals, CONFIG)
        assert result.classification == pb.NETWORK_CLASS_OTHER and result.reasons == ()
        assert result.network_id == hashed_network_id("MyHome-5G", b"k")


def test_the_company_network_stays_trusted() -> None:
    # Windows files new networks as Public by default; the policy's own networks stay trusted.
    for signals in (
        NetworkSignals("Corp", WPA2, network_category="Public"),
        NetworkSignals("Corp", pb.WIFI_SECURITY_OPEN, captive_portal=True),
    ):
        result = classify(signals, CONFIG)
        assert (result.network_id, result.classification, result.reasons) == (
            "Corp", pb.NETWORK_CLASS_TRUSTED, ("company network",),
        )  # fmt: skip
    # A trusted name is exact: case or a suffix makes another network.
    assert classify(NetworkSignals("corp", WPA2), CONFIG).classification == pb.NETWORK_CLASS_OTHER


def test_a_hidden_name_is_unknown_never_trusted_or_other() -> None:
    hidden = NetworkSignals("", WPA2, hidden_reason="name hidden by macOS")
    result = classify(hidden, CONFIG)
    assert (result.network_id, result.classification, result.reasons) == (
        "", pb.NETWORK_CLASS_UNKNOWN, ("name hidden by macOS",),
    )  # fmt: skip
    # A pattern cannot match a name nobody saw, but open networks are public anyway.
    open_hidden = classify(
        NetworkSignals("", pb.WIFI_SECURITY_OPEN, hidden_reason="name hidden by macOS"), CONFIG
    )
    assert (open_hidden.network_id, open_hidden.classification) == ("", pb.NETWORK_CLASS_PUBLIC)
    assert open_hidden.reasons == ("open network", "name hidden by macOS")
    # An empty name from any OS is not a name either (and never the hash of "").
    nameless = classify(NetworkSignals("", WPA2), CONFIG)
    assert nameless.classification == pb.NETWORK_CLASS_UNKNOWN and nameless.network_id == ""


def test_patterns_ignore_case_and_full_width_and_keep_chinese() -> None:
    patterns = ("cmcc-web", "*免费*", "i-Shanghai", "Starbucks*")
    assert matching_pattern("CMCC-WEB", patterns) == "cmcc-web"
    assert matching_pattern("ＣＭＣＣ－ＷＥＢ", patterns) == "cmcc-web"  # full-width forms
    assert matching_pattern("I-SHANGHAI", patterns) == "i-Shanghai"
    assert matching_pattern("麦当劳免费WiFi", patterns) == "*免费*"
    assert matching_pattern("starbucks 上海", patterns) == "Starbucks*"
    assert matching_pattern("家里的网", patterns) is None
    assert matching_pattern("CMCC-WEB-5G", patterns) is None  # exact unless the pattern says *


def test_default_policy_names_operator_hotspots_not_operator_home_routers() -> None:
    """The bundled policy's patterns on names seen on real networks (see default.toml)."""
    policy = tomllib.loads(POLICY.read_text(encoding="utf-8"))
    patterns = tuple(policy["networks"]["public_patterns"])
    for hotspot in ("CMCC", "CMCC-WEB", "CMCC-EDU", "ChinaNet", "ChinaUnicom", "i-Shanghai"):
        assert matching_pattern(hotspot, patterns) is not None, hotspot
    assert matching_pattern("Airport Free", patterns) is not None  # Changsha airport
    assert matching_pattern("@Coffeebar Guest WiFi", patterns) is not None
    # Private networks under the operators' names, seen on real machines: "CMCC-Captain" filed
    # as Private on Chinese Windows (fixtures/windows), "ChinaNet-pfwQ-5G" a laptop's home
    # Wi-Fi, "CMCC-Q9RP" and "ChinaNet-7S27" in a scan and a profile list (public notes).
    for home in (
        "CMCC-Captain",
        "CMCC-Q9RP",
        "ChinaNet-pfwQ-5G",
        "ChinaNet-7S27",
        "TP-LINK_5G_D3DA",
    ):
        assert matching_pattern(home, patterns) is None, home
