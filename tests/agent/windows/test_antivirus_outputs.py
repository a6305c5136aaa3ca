"""Defender's status as real machines printed it in states the other fixtures do not show
(agent.parsers.windows.defender, agent.probes.windows.antivirus). Sources: the "defender"
table of tests/fixtures/windows/README.md."""

from __future__ import annotations

import datetime as dt

from devposture.agent.parsers.windows.defender import parse_mp_computer_status
from devposture.agent.parsers.windows.security_center import parse_antivirus_products
from devposture.agent.parsers.windows.text import decode_output
from devposture.agent.probes.windows import antivirus
from devposture.policy.checks import evaluate
from devposture.v1 import devposture_pb2 as pb
from tests.agent.windows.replay_windows import EN_US_CULTURE, PACIFIC, fixture, one_run


def test_a_recorded_edr_block_mode_defender_is_not_read_as_protecting() -> None:
    # A real machine with Defender in EDR block mode (passive beside another antivirus) says
    # AMServiceEnabled, AntivirusEnabled and RealTimeProtectionEnabled True; read alone, that
    # is a protecting Defender. The probe names the mode as what stands in its way, and the
    # clause fails on it rather than passing.
    status = parse_mp_computer_status(
        decode_output(fixture("defender/mpcomputerstatus-edr-block-mode-de-dates.txt"), "cp850")
    )
    assert (status.service_enabled, status.antivirus_enabled, status.real_time_protection) == (
        True,
        True,
        True,
    )
    assert status.running_mode == "EDR Block Mode"
    assert status.signature_version == "1.331.1839.0"
    # A German date ("25.02.2021 22:37:08") without the culture's patterns is kept as printed
    # and not read: the probe reports that as the defender source's PARSE_ERROR.
    assert status.signatures_updated == "25.02.2021 22:37:08"
    errors: list[pb.ProbeError] = []
    product = antivirus._defender_product(status, errors)
    assert list(product.health_issues) == ["AMRunningMode: EDR Block Mode"]
    assert not product.HasField("signatures_updated_at")
    assert [(e.source, e.code) for e in errors] == [("defender", pb.PROBE_ERROR_CODE_PARSE_ERROR)]
    report = pb.PostureReport()
    report.antivirus.products.append(product)
    verdict = evaluate(report, dt.datetime(2021, 2, 26, tzinfo=dt.UTC))
    (judged,) = [v for c, v in verdict if c.check_id == "antivirus"]
    assert judged.state.value == "FAIL", judged


def test_security_center_with_defender_off_and_nothing_else_fails() -> None:
    # A 2024 machine (host ROG) whose Security Center lists Windows Defender alone, 393472 =
    # 0x060100: Microsoft's product, scanner off. No other product protects it.
    (found,) = parse_antivirus_products(
        decode_output(
            fixture("security_center/cim-antivirusproduct-defender-only-off-2024.txt"), "cp437"
        )
    )
    assert (found.name, found.state.scanner, found.state.microsoft) == (
        "Windows Defender",
        "off",
        True,
    )
    product = antivirus.security_center_product(found)
    assert product.HasField("enabled") and not product.enabled
    assert not product.HasField("real_time_protection")
    report = pb.PostureReport()
    report.antivirus.products.append(product)
    verdict = evaluate(report, dt.datetime(2024, 3, 22, tzinfo=dt.UTC))
    (judged,) = [v for c, v in verdict if c.check_id == "antivirus"]
    assert judged.state.value == "FAIL", judged


def test_windows_server_2016_defender_without_the_newer_properties() -> None:
    # Defender platform 4.10.14393.2248 (Windows Server 2016, host WINLPE-SRV01): no
    # AMRunningMode, no DefenderSignaturesOutOfDate, RealTimeProtectionEnabled False. Read with
    # en-US patterns and a Pacific zone (composite, see one_run): on but not scanning on access.
    status = parse_mp_computer_status(
        decode_output(
            one_run(
                EN_US_CULTURE, PACIFIC, "defender/mpcomputerstatus-ws2016-14393-realtime-off.txt"
            )[1],
            "cp437",
        )
    )
    assert (status.service_enabled, status.antivirus_enabled, status.real_time_protection) == (
        True,
        True,
        False,
    )
    assert status.running_mode == "" and status.signatures_out_of_date is None
    errors: list[pb.ProbeError] = []
    product = antivirus._defender_product(status, errors)
    assert errors == [] and list(product.health_issues) == []
    assert product.enabled and not product.real_time_protection
    assert not product.HasField("signatures_up_to_date")  # the property is not printed
    assert product.signatures_updated_at.ToDatetime() == dt.datetime(2021, 3, 28, 10, 59, 12)
    report = pb.PostureReport()
    report.antivirus.products.append(product)
    verdict = evaluate(report, dt.datetime(2021, 3, 29, tzinfo=dt.UTC))
    (judged,) = [v for c, v in verdict if c.check_id == "antivirus"]
    assert judged.state.value == "FAIL", judged


def test_three_products_at_once_trend_micro_and_sophos_on_defender_off() -> None:
    # Trend Micro Antivirus+ 266240 (0x041000) and Sophos Home 331776 (0x051000: other
    # provider flags, scanner on, up to date), Windows Defender 393472 (off). The copy carries an
    # `enabled` line its author's function added; the parser reads displayName and productState.
    found = parse_antivirus_products(
        decode_output(
            fixture("security_center/cim-antivirusproduct-trend-sophos-defender-annotated.txt"),
            "cp437",
        )
    )
    assert [(p.name, p.state.scanner, p.state.microsoft) for p in found] == [
        ("Trend Micro Antivirus+", "on", False),
        ("Sophos Home", "on", False),
        ("Windows Defender", "off", True),
    ]
    report = pb.PostureReport()
    report.antivirus.products.extend(antivirus.security_center_product(p) for p in found)
    assert [p.real_time_protection for p in report.antivirus.products[:2]] == [True, True]
    verdict = evaluate(report, dt.datetime(2020, 4, 13, tzinfo=dt.UTC))
    (judged,) = [v for c, v in verdict if c.check_id == "antivirus"]
    assert judged.state.value == "PASS", judged
