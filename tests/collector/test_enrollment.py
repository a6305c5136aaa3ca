"""Enrollment over a real gRPC server with real TLS: what is accepted, what is refused, and why."""

from __future__ import annotations

import datetime as dt
import os
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from devposture.agent.enroll import EnrollError, common_name, enroll
from devposture.agent.state import AgentState
from devposture.collector.pki import device_id_for_certificate
from devposture.net.address import CollectorAddress
from devposture.net.pinning import fingerprint
from tests.conftest import LiveCollector, enroll_agent, host_info


def _device_count(collector: LiveCollector) -> int:
    store = collector.store()
    try:
        return len({row.device_id for row in store.reports.device_results()})
    finally:
        store.close()


def test_enrollment_issues_a_certificate_whose_identity_is_the_device_key(
    live_collector: LiveCollector, tmp_path: Path
) -> None:
    enrolled = enroll_agent(live_collector, tmp_path / "agent")
    cert = x509.load_pem_x509_certificate(enrolled.state.cert_path.read_bytes())
    assert device_id_for_certificate(cert) == enrolled.enrollment.device_id
    common_name = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert common_name == enrolled.enrollment.device_id
    assert enrolled.enrollment.report_port == live_collector.report_port
    assert _device_count(live_collector) == 1


def test_state_folder_is_private_and_key_is_owner_only(
    live_collector: LiveCollector, tmp_path: Path
) -> None:
    enrolled = enroll_agent(live_collector, tmp_path / "agent")
    assert stat.S_IMODE(os.stat(enrolled.state.directory).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(enrolled.state.key_path).st_mode) == 0o600
    assert b"PRIVATE KEY" in enrolled.state.key_path.read_bytes()


def test_malformed_token_is_refused(live_collector: LiveCollector, tmp_path: Path) -> None:
    with pytest.raises(EnrollError, match="not a devposture enrollment token"):
        enroll(
            AgentState(tmp_path / "a"),
            live_collector.enroll_address,
            "letmein",
            live_collector.ca_fingerprint,
            host_info(),
        )
    assert not AgentState(tmp_path / "a").is_enrolled()


def test_unknown_token_is_refused(live_collector: LiveCollector, tmp_path: Path) -> None:
    real = live_collector.token()
    forged = real[:-4] + ("AAAA" if not real.endswith("AAAA") else "BBBB")
    with pytest.raises(EnrollError, match="not known to this collector"):
        enroll(
            AgentState(tmp_path / "a"),
            live_collector.enroll_address,
            forged,
            live_collector.ca_fingerprint,
            host_info(),
        )
    assert _device_count(live_collector) == 0


def test_reused_token_is_refused(live_collector: LiveCollector, tmp_path: Path) -> None:
    token = live_collector.token()
    enroll(
        AgentState(tmp_path / "first"),
        live_collector.enroll_address,
        token,
        live_collector.ca_fingerprint,
        host_info("first"),
    )
    with pytest.raises(EnrollError, match="already used"):
        enroll(
            AgentState(tmp_path / "second"),
            live_collector.enroll_address,
            token,
            live_collector.ca_fingerprint,
            host_info("second"),
        )
    assert not AgentState(tmp_path / "second").is_enrolled()
    assert _device_count(live_collector) == 1


def test_expired_token_is_refused(live_collector: LiveCollector, tmp_path: Path) -> None:
    token = live_collector.token(ttl=dt.timedelta(seconds=-1))
    with pytest.raises(EnrollError, match="expired at"):
        enroll(
            AgentState(tmp_path / "a"),
            live_collector.enroll_address,
            token,
            live_collector.ca_fingerprint,
            host_info(),
        )
    assert _device_count(live_collector) == 0


def test_wrong_ca_fingerprint_is_refused_before_the_token_is_sent(
    live_collector: LiveCollector, tmp_path: Path
) -> None:
    token = live_collector.token()
    wrong = "sha256:" + "0" * 64
    with pytest.raises(EnrollError, match="did not present the CA with fingerprint"):
        enroll(AgentState(tmp_path / "a"), live_collector.enroll_address, token, wrong, host_info())
    assert not AgentState(tmp_path / "a").is_enrolled()
    # The token never left the agent, so it is still good for the real collector.
    enroll(
        AgentState(tmp_path / "b"),
        live_collector.enroll_address,
        token,
        live_collector.ca_fingerprint,
        host_info(),
    )
    assert _device_count(live_collector) == 1


def test_pinning_the_server_certificate_instead_of_the_ca_is_refused(
    live_collector: LiveCollector, tmp_path: Path
) -> None:
    leaf = x509.load_pem_x509_certificate(live_collector.config.server_cert.read_bytes())
    with pytest.raises(EnrollError, match="not a CA certificate"):
        enroll(
            AgentState(tmp_path / "a"),
            live_collector.enroll_address,
            live_collector.token(),
            fingerprint(leaf),
            host_info(),
        )


def test_unreachable_collector_is_explained(live_collector: LiveCollector, tmp_path: Path) -> None:
    closed = CollectorAddress("127.0.0.1", 1)
    with pytest.raises(EnrollError, match=r"cannot reach the collector at 127\.0\.0\.1:1 "):
        enroll(
            AgentState(tmp_path / "a"),
            closed,
            live_collector.token(),
            live_collector.ca_fingerprint,
            host_info(),
        )


def test_a_computer_with_a_long_chinese_name_enrolls(
    live_collector: LiveCollector, tmp_path: Path
) -> None:
    # A certificate name holds 64 bytes of UTF-8, not 64 characters: the name was cut at 64
    # characters, and a Chinese name past 21 of them ended enrollment in a traceback.
    name = "研发部-王小明的笔记本电脑-ThinkPad-X1-Carbon-第十一代-工作用机"
    agent = enroll_agent(live_collector, tmp_path / "agent", name)
    assert agent.state.is_enrolled()
    store = live_collector.store()
    try:
        device = store.identity.device(agent.enrollment.device_id)
    finally:
        store.close()
    assert device is not None
    cut = common_name(name)
    assert len(cut.encode("utf-8")) <= 64 and name.startswith(cut) and len(cut) > 10
