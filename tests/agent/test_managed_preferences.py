"""macOS managed preferences (a configuration profile pushed by MDM for the domain
com.devposture.agent): read as strictly as agent.toml, stronger than it, weaker than the
environment and the command line; Payload bookkeeping ignored; only on macOS.

The plists are written with plistlib in the binary and XML forms macOS itself writes to
/Library/Managed Preferences (cfprefsd writes binary plists there)."""

from __future__ import annotations

import plistlib
from collections.abc import Mapping
from pathlib import Path

import pytest

from devposture.agent.settings import ConfigError, Overrides, load
from devposture.net.address import CollectorAddress
from devposture.net.proxy import HttpsProxy

PIN = "sha256:" + "ab" * 32
PROFILE = {
    "PayloadUUID": "8F1C5B1E-6A34-4C6B-9B51-2B3F7F9D2C11",  # written by macOS beside the keys
    "collector": {"addresses": ["mdm.corp.example:7443"], "ca_fingerprint": PIN},
    "logging": {"level": "debug"},
    "network": {"https_proxy": "http://proxy.corp.example:3128"},
    "backups": {"folders": ["~/Documents/微信备份"]},
}
TOML = """\
[collector]
addresses = ["file.corp.example:7443"]

[logging]
format = "json"
level = "error"
"""


def _plist(
    tmp_path: Path, data: Mapping[str, object] | list[str],
    fmt: plistlib.PlistFormat = plistlib.FMT_BINARY,
) -> Path:  # fmt: skip
    path = tmp_path / "com.devposture.agent.plist"
    path.write_bytes(plistlib.dumps(data, fmt=fmt))
    return path


def _toml(tmp_path: Path) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(TOML, encoding="utf-8")
    return path


@pytest.mark.parametrize("fmt", [plistlib.FMT_BINARY, plistlib.FMT_XML])
def test_the_profile_wins_over_agent_toml_key_by_key(
    tmp_path: Path, fmt: plistlib.PlistFormat
) -> None:
    managed = _plist(tmp_path, PROFILE, fmt)
    settings = load(Overrides(config=_toml(tmp_path)), {}, "darwin", managed_preferences=managed)
    assert settings.collectors == (CollectorAddress("mdm.corp.example", 7443),)
    assert settings.ca_fingerprint == PIN
    assert settings.log_level == "debug"
    assert settings.log_format == "json"  # not in the profile: agent.toml's
    assert settings.https_proxy == HttpsProxy("proxy.corp.example", 3128)
    assert settings.backup_folders == ("~/Documents/微信备份",)
    assert settings.origins["collectors"] == f"{managed} (collector.addresses)"
    assert settings.origins["log_format"].startswith(f"{tmp_path / 'agent.toml'}:")


def test_the_environment_and_command_line_win_over_the_profile(tmp_path: Path) -> None:
    managed = _plist(tmp_path, PROFILE)
    settings = load(
        Overrides(log_level="warning"), {"DEVPOSTURE_AGENT_COLLECTORS": "env.example:1"},
        "darwin", managed_preferences=managed,
    )  # fmt: skip
    assert settings.collectors == (CollectorAddress("env.example", 1),)
    assert settings.log_level == "warning"


def test_only_macos_reads_it(tmp_path: Path) -> None:
    managed = _plist(tmp_path, PROFILE)
    settings = load(Overrides(config=_toml(tmp_path)), {}, "linux", managed_preferences=managed)
    assert settings.collectors == (CollectorAddress("file.corp.example", 7443),)


def test_no_profile_is_fine(tmp_path: Path) -> None:
    settings = load(
        Overrides(config=_toml(tmp_path)), {}, "darwin",
        managed_preferences=tmp_path / "absent.plist",
    )  # fmt: skip
    assert settings.collectors == (CollectorAddress("file.corp.example", 7443),)


def test_a_mistake_in_the_profile_is_refused_naming_the_key(tmp_path: Path) -> None:
    bad = {"collector": {"adresses": ["x:1"]}, "logging": {"level": 3}}
    managed = _plist(tmp_path, bad)
    with pytest.raises(ConfigError) as refused:
        load(Overrides(), {}, "darwin", managed_preferences=managed)
    message = str(refused.value)
    assert "did you mean addresses?" in message
    assert "[logging] level must be" in message
    assert str(managed) in message


def test_a_bad_value_in_the_profile_is_refused(tmp_path: Path) -> None:
    managed = _plist(tmp_path, {"network": {"https_proxy": "https://proxy:3128"}})
    with pytest.raises(ConfigError, match=r"\[network\] https_proxy: the proxy's scheme"):
        load(Overrides(), {}, "darwin", managed_preferences=managed)


def test_a_file_that_is_not_a_plist_is_refused_with_the_fix(tmp_path: Path) -> None:
    managed = tmp_path / "com.devposture.agent.plist"
    managed.write_text("[collector]\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"not a property list.*MDM"):
        load(Overrides(), {}, "darwin", managed_preferences=managed)
    _plist(tmp_path, ["not", "a", "dictionary"])
    with pytest.raises(ConfigError, match="must hold a dictionary"):
        load(Overrides(), {}, "darwin", managed_preferences=managed)
