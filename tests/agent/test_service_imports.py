"""The service's code path does not load the cryptography package: it is needed only to
enroll and to renew, and would keep about 9 MB resident in every agent for nothing
(bench/agent_service_idle.py measures the service). Nor protobuf's JSON format (only `collect
--json` prints it: +0.4 MB) or plistlib and its XML parser (only macOS's managed preferences
need it: +0.3 MB): the agent's memory target is 50 MB, and it runs close to it."""

from __future__ import annotations

from tests.fresh_interpreter import modules_after

SERVICE_MODULES = tuple(
    f"devposture.agent.{name}"
    for name in ("cli", "deliver", "service", "transport", "renewal", "outbox", "probes")
)
_SERVICE_IMPORTS = "".join(f"import {m}\n" for m in SERVICE_MODULES)


def test_the_service_runs_without_loading_cryptography() -> None:
    loaded = modules_after(_SERVICE_IMPORTS, timeout=60)
    assert sorted(m for m in loaded if m.split(".")[0] == "cryptography") == []


def test_the_service_runs_without_json_format_or_plistlib() -> None:
    loaded = modules_after(_SERVICE_IMPORTS, timeout=60)
    assert sorted({"google.protobuf.json_format", "plistlib", "pyexpat"} & loaded) == []


def test_enrolling_and_renewing_still_load_it() -> None:
    """The check above must be able to fail: the exchange modules do import it."""
    assert "cryptography" in modules_after("import devposture.agent.renewal_exchange", timeout=60)
