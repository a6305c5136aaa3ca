"""An HTTPS proxy between the agent and a real collector (mutual TLS, loopback): CA pinning, the
TLS diagnosis and gRPC enrollment all go through its CONNECT tunnel; a proxy that refuses or is
not there is named as such. The proxy is a real one (tests/connect_proxy.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509

from devposture.agent.enroll import Unreachable, enroll
from devposture.agent.state import AgentState
from devposture.net.address import CollectorAddress
from devposture.net.pinning import PinningError, fetch_pinned_ca, fingerprint
from devposture.net.proxy import HttpsProxy, channel_options
from devposture.net.tls_probe import probe_tls
from tests.conftest import LiveCollector, host_info
from tests.connect_proxy import connect_proxy
from tests.ports import free_port


def _proxy(url: str) -> HttpsProxy:
    return HttpsProxy.parse(url)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("http://proxy.corp.example:3128", HttpsProxy("proxy.corp.example", 3128)),
        ("HTTP://10.0.0.1:8080/", HttpsProxy("10.0.0.1", 8080)),
        ("http://[fd00::1]:3128", HttpsProxy("fd00::1", 3128)),
    ],
)
def test_a_proxy_is_written_as_http_host_port(text: str, expected: HttpsProxy) -> None:
    assert HttpsProxy.parse(text) == expected
    assert HttpsProxy.parse(expected.url) == expected


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("proxy.corp.example:3128", "has no scheme"),
        ("https://proxy.corp.example:3128", "scheme must be http"),
        ("socks5://proxy.corp.example:1080", "scheme must be http"),
        ("http://li:secret@proxy.corp.example:3128", "user name and password is not supported"),
        ("http://proxy.corp.example", "names no host or port"),
        ("http://proxy.corp.example:99999", "names no host or port"),
        ("http://proxy.corp.example:3128/path", "has a path or query"),
    ],
)
def test_a_proxy_that_cannot_be_used_is_refused_with_the_form_to_write(
    text: str, says: str
) -> None:
    with pytest.raises(ValueError, match=says) as refused:
        HttpsProxy.parse(text)
    assert "http://HOST:PORT" in str(refused.value)
    assert "secret" not in str(refused.value)


def test_without_a_proxy_a_channel_has_no_proxy_option() -> None:
    assert channel_options(None) == ()
    assert channel_options(_proxy("http://p:1")) == (("grpc.http_proxy", "http://p:1"),)


def test_the_ca_is_pinned_through_the_proxy_tunnel(live_collector: LiveCollector) -> None:
    with connect_proxy() as proxy:
        pem = fetch_pinned_ca(
            "127.0.0.1", live_collector.enroll_port, live_collector.ca_fingerprint,
            proxy=_proxy(proxy.url),
        )  # fmt: skip
        assert proxy.opened() == [f"127.0.0.1:{live_collector.enroll_port}"]
    assert fingerprint(x509.load_pem_x509_certificate(pem)) == live_collector.ca_fingerprint


def test_the_diagnosis_sees_the_report_port_through_the_proxy(
    live_collector: LiveCollector,
) -> None:
    ca_pem = live_collector.config.ca_cert.read_bytes()
    with connect_proxy() as proxy:
        found = probe_tls(
            CollectorAddress("127.0.0.1", live_collector.report_port),
            ca_pem, proxy=_proxy(proxy.url),
        )  # fmt: skip
        assert proxy.opened() == [f"127.0.0.1:{live_collector.report_port}"]
    assert found is not None and found.asks_for_certificate


def test_enrollment_goes_through_the_proxy(live_collector: LiveCollector, tmp_path: Path) -> None:
    with connect_proxy() as proxy:
        state = AgentState(tmp_path / "agent", proxy=_proxy(proxy.url))
        done = enroll(
            state, live_collector.enroll_address, live_collector.token(),
            live_collector.ca_fingerprint, host_info(),
        )  # fmt: skip
        target = f"127.0.0.1:{live_collector.enroll_port}"
        # The pinning connection, then gRPC's channel for the Enroll call.
        assert proxy.opened() == [target, target]
    assert done.device_id and state.is_enrolled()


def test_a_proxy_that_refuses_the_tunnel_is_named_with_the_fix(
    live_collector: LiveCollector, tmp_path: Path
) -> None:
    with connect_proxy(refuse=True) as proxy:
        state = AgentState(tmp_path / "agent", proxy=_proxy(proxy.url))
        with pytest.raises(Unreachable) as refused:
            enroll(
                state, live_collector.enroll_address, live_collector.token(),
                live_collector.ca_fingerprint, host_info(),
            )  # fmt: skip
        assert proxy.requests == [f"CONNECT 127.0.0.1:{live_collector.enroll_port} HTTP/1.1"]
    text = str(refused.value)
    assert f"the HTTPS proxy {proxy.url} did not open a tunnel" in text
    assert "403 Forbidden" in text and "ask for CONNECT" in text
    assert not state.is_enrolled()


def test_a_proxy_that_is_not_there_is_named() -> None:
    port = free_port()  # nothing listens there
    with pytest.raises(PinningError) as refused:
        fetch_pinned_ca("127.0.0.1", 7443, "sha256:" + "ab" * 32, timeout=10,
                        proxy=_proxy(f"http://127.0.0.1:{port}"))  # fmt: skip
    assert f"cannot reach the HTTPS proxy http://127.0.0.1:{port}" in str(refused.value)
