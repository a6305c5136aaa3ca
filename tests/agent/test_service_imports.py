"""The service's code path does not load the cryptography package: it is needed only to
enroll and to renew, and would keep about 9 MB resident in every agent for nothing
(bench/agent_service_idle.py measures the service). Nor protobuf's JSON format (only `collect
--json` prints it: +0.4 MB) or plistlib and its XML parser (only macOS's managed preferences
need it: +0.3 MB), nor the other systems' probes and parsers (52 modules: 1.3 MB): the
agent's memory target is 50 MB, and it runs close to it."""

from __future__ import annotations

import functools

from tests.fresh_interpreter import modules_after

SERVICE_MODULES = tuple(
    f"devposture.agent.{name}"
    for name in ("cli", "deliver", "service", "transport", "renewal", "outbox", "probes")
)
_SERVICE_IMPORTS = "".join(f"import {m}\n" for m in SERVICE_MODULES)


@functools.cache
def _service_loaded() -> frozenset[str]:
    """What the service's modules load, imported plainly: one new interpreter for the tests
    that ask."""
    return frozenset(modules_after(_SERVICE_IMPORTS, timeout=60))


def test_the_service_runs_without_loading_cryptography() -> None:
    loaded = _service_loaded()
    assert sorted(m for m in loaded if m.split(".")[0] == "cryptography") == []


def test_the_service_runs_without_json_format_or_plistlib() -> None:
    loaded = _service_loaded()
    assert sorted({"google.protobuf.json_format", "plistlib", "pyexpat"} & loaded) == []


def test_enrolling_and_renewing_still_load_it() -> None:
    """The check above must be able to fail: the exchange modules do import it."""
    assert "cryptography" in modules_after("import devposture.agent.renewal_exchange", timeout=60)


_OTHER_SYSTEMS = (".probes.windows", ".probes.macos", ".parsers.windows", ".parsers.macos")
_COLLECTED_ON = (
    _SERVICE_IMPORTS
    + "from devposture.agent.probes.runner import probes_for\n"
    + "from devposture.v1 import devposture_pb2 as pb\n"
    + "probes_for(pb.OS_FAMILY_{family})\n"
)


def _of_other_systems(loaded: set[str]) -> list[str]:
    return sorted(m for m in loaded if any(f"devposture.agent{p}" in m for p in _OTHER_SYSTEMS))


def test_a_linux_agent_loads_no_other_systems_probes() -> None:
    """The service and the Linux probe table load neither Windows' nor macOS' probes and
    parsers; asking for Windows' table does load them (the check can fail)."""
    on_linux = modules_after(_COLLECTED_ON.format(family="LINUX"), timeout=60)
    assert "devposture.agent.probes.linux.firewall" in on_linux
    assert _of_other_systems(on_linux) == []
    on_windows = modules_after(_COLLECTED_ON.format(family="WINDOWS"), timeout=60)
    assert "devposture.agent.probes.windows.firewall" in on_windows
    assert "devposture.agent.probes.linux.firewall" not in on_windows


_OPENSSL = {"ssl", "_ssl", "_hashlib"}
_LAUNCHED = (
    "from devposture.agent.launch import loading, without_python_openssl\n"
    "with loading(), without_python_openssl():\n"
    "    import devposture.agent.cli\n"
)


def test_the_launch_loads_the_command_line_without_pythons_openssl() -> None:
    """agent/launch.py leaves Python's OpenSSL bindings out of the command line it loads (4.8 MB
    of the service's memory); imported plainly, the same modules do load them (the check can
    fail). Afterwards `ssl` loads as usual (enrolling needs it) and hashlib's SHA-256, now
    Python's built-in one, gives the same digests."""
    assert _OPENSSL & _service_loaded() == _OPENSSL
    assert _OPENSSL & modules_after(_LAUNCHED, timeout=60) == set()
    after = modules_after(
        _LAUNCHED
        + "import hashlib\n"
        + "assert hashlib.sha256(b'abc').hexdigest() == ("
        + "'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad')\n"
        + "import devposture.agent.enroll, ssl\n"
        + "assert ssl.create_default_context().verify_mode == ssl.CERT_REQUIRED\n",
        timeout=60,
    )
    assert {"ssl", "_ssl", "devposture.agent.enroll"} <= after
