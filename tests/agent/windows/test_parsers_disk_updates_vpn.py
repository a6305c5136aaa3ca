"""manage-bde, reg query, Get-HotFix (JSON), ipconfig and dates without a pattern, from real
outputs."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from devposture.agent.parsers import ParseError
from devposture.agent.parsers.windows.hotfix import parse_hotfixes
from devposture.agent.parsers.windows.ipconfig import parse_ipconfig
from devposture.agent.parsers.windows.local_dates import parse_local_datetime, slash_order
from devposture.agent.parsers.windows.manage_bde import parse_manage_bde_status
from devposture.agent.parsers.windows.reg_query import key_missing, parse_reg_query
from devposture.agent.parsers.windows.text import decode_output
from devposture.agent.parsers.windows.update_policy import automatic_updates
from devposture.agent.probes.windows.vpn_adapters import adapter_kind
from tests.agent.windows.replay_windows import fixture


def text(name: str, encoding: str = "cp437") -> str:
    return decode_output(fixture(name), encoding)


def test_bitlocker_fully_encrypted_with_protection_on() -> None:
    (c,) = parse_manage_bde_status(text("manage_bde/status-en-26100-encrypted.txt"))
    assert (c.mount_point, c.encrypted, c.algorithm) == ("C:", True, "XTS-AES 128")


def test_bitlocker_fully_decrypted_volumes_are_not_encrypted() -> None:
    volumes = parse_manage_bde_status(
        text("manage_bde/status-en-25267-three-volumes-decrypted.txt")
    )
    assert [(v.mount_point, v.encrypted, v.algorithm) for v in volumes] == [
        ("C:", False, ""),
        ("J:", False, ""),
        ("K:", False, ""),
    ]


def test_bitlocker_windows_11_22h2_aes_256_with_decimal_commas() -> None:
    # 10.0.22621 (22H2) with a comma-decimal locale ("69,13 GB", "100,0%") and the older
    # AES-CBC method "AES 256" (not XTS), protected by a password: encrypted.
    (volume,) = parse_manage_bde_status(text("manage_bde/status-en-22621-aes256-decimal-comma.txt"))
    assert (volume.mount_point, volume.conversion, volume.protection_on) == (
        "C:",
        "encrypted",
        True,
    )
    assert volume.algorithm == "AES 256" and volume.encrypted is True


def test_bitlocker_encryption_in_progress_is_not_yet_encrypted() -> None:
    (c,) = parse_manage_bde_status(text("manage_bde/status-en-26100-encryption-in-progress.txt"))
    assert (c.conversion, c.protection_on, c.encrypted) == ("in progress", False, False)


def test_bitlocker_german_and_russian() -> None:
    (de,) = parse_manage_bde_status(text("manage_bde/status-de-19041-decrypted.txt"))
    assert (de.mount_point, de.conversion, de.encrypted) == ("C:", "decrypted", False)
    (ru,) = parse_manage_bde_status(
        text("manage_bde/status-ru-19041-used-space-protection-off.txt")
    )
    # Used space encrypted but protection off (suspended): the key is in the clear.
    assert (ru.conversion, ru.protection_on, ru.encrypted) == ("encrypted", False, False)
    (ru_d,) = parse_manage_bde_status(text("manage_bde/status-ru-19041-encryption-in-progress.txt"))
    assert (ru_d.mount_point, ru_d.encrypted) == ("D:", False)


@pytest.mark.parametrize("copy", ["utf8", "cp936-crlf"])
def test_bitlocker_chinese_windows(copy: str) -> None:
    # Chinese Windows prints every label and state in Chinese ("卷 M: [WD]", 转换状态, 保护状态);
    # none of it was read, so every Chinese machine's disk encryption was a parse error.
    (m,) = parse_manage_bde_status(
        text(f"manage_bde/status-zh-18362-data-volume-used-space-encrypted.{copy}.txt", "cp936")
    )
    assert (m.mount_point, m.conversion, m.protection_on) == ("M:", "encrypted", True)
    assert (m.encrypted, m.algorithm) == (True, "XTS-AES 128")
    (c,) = parse_manage_bde_status(
        text(f"manage_bde/status-zh-26100-24h2-vm-decrypted.{copy}.txt", "cp936")
    )
    assert (c.mount_point, c.conversion, c.encrypted, c.algorithm) == ("C:", "decrypted", False, "")
    volumes = parse_manage_bde_status(
        text(f"manage_bde/status-zh-26100-two-volumes-decrypted.{copy}.txt", "cp936")
    )
    assert [(v.mount_point, v.protection_on, v.encrypted) for v in volumes] == [
        ("D:", False, False),
        ("C:", False, False),
    ]


def test_bitlocker_error_output_is_not_a_volume_list() -> None:
    with pytest.raises(ParseError):
        parse_manage_bde_status(text("manage_bde/status-en-26100-access-denied.txt"))
    with pytest.raises(ParseError):
        parse_manage_bde_status("Volume C: [OS]\n    Conversion Status:    Half Done\n")


def test_automatic_update_policy() -> None:
    notify = parse_reg_query(text("reg_query/au-policy-notify-install.txt"))
    assert automatic_updates(notify) is False  # AUOptions 3: a person must install
    scheduled = parse_reg_query(text("reg_query/au-policy-scheduled-install.txt"))
    assert automatic_updates(scheduled) is True  # AUOptions 4
    assert automatic_updates(None) is True  # no policy: Windows 10/11 default
    assert automatic_updates({"AUOptions": ("REG_DWORD", "0x5")}) is None
    assert automatic_updates({"NoAutoUpdate": ("REG_DWORD", "0x1")}) is False
    with pytest.raises(ParseError):
        automatic_updates({"AUOptions": ("REG_DWORD", "0x9")})


def test_missing_key_in_english_and_chinese() -> None:
    assert key_missing(text("reg_query/not-found-en.txt"))
    assert key_missing(text("reg_query/not-found-zh.cp936-crlf.txt", "cp936"))
    with pytest.raises(ParseError):
        parse_reg_query(text("reg_query/not-found-en.txt"))


def test_hotfix_json_as_cnquery_recorded_it() -> None:
    # Windows Server 2019 in UTC: InstalledOn objects {"value": "\/Date(ms)\/", "DateTime": ...}.
    fixes = parse_hotfixes(text("hotfix/get-hotfix-json-ws2019-cnquery.txt"))
    assert [f.hotfix_id for f in fixes][:2] == ["KB4486553", "KB4462930"] and len(fixes) == 6
    assert fixes[2].description == "Security Update"
    assert {f.installed_at for f in fixes} == {datetime(2020, 9, 9, tzinfo=UTC)}


def test_hotfix_json_newest_install() -> None:
    fixes = parse_hotfixes(text("hotfix/get-hotfix-json-ws2022-cnquery-reserialized.txt"))
    assert len(fixes) == 5
    assert max(f.installed_at for f in fixes if f.installed_at) == datetime(2026, 8, 12, tzinfo=UTC)


def test_hotfix_json_is_the_utc_instant_of_local_midnight() -> None:
    # One object, as ConvertTo-Json prints a single update (here of a remoting session on a
    # Spanish machine): InstalledOn is a bare "\/Date(ms)\/"; 7 September 2019 00:00 in Madrid
    # (UTC+2 in summer) is 6 September 22:00 UTC. The culture never enters into it.
    (fix,) = parse_hotfixes(text("hotfix/get-hotfix-json-es-remoting-one-object.txt"))
    assert (fix.hotfix_id, fix.description) == ("KB4512578", "Security Update")
    assert fix.installed_at == datetime(2019, 9, 6, 22, 0, tzinfo=UTC)


def test_hotfix_json_without_installed_on_and_odd_outputs() -> None:
    # What the parser must do with forms not recorded here: stated as inputs, not outputs.
    (fix,) = parse_hotfixes('{"HotFixId": "KB1", "Description": "Update", "InstalledOn": null}')
    assert fix.installed_at is None
    iso = '{"HotFixId": "KB2", "InstalledOn": "2024-06-04T00:00:00+08:00"}'  # PowerShell 7 form
    assert parse_hotfixes(iso)[0].installed_at == datetime(2024, 6, 3, 16, 0, tzinfo=UTC)
    with pytest.raises(ParseError, match="offset"):
        parse_hotfixes('{"HotFixId": "KB3", "InstalledOn": "2024-06-04T00:00:00"}')
    with pytest.raises(ParseError):
        parse_hotfixes('[{"Description": "Update"}]')
    with pytest.raises(ParseError):
        parse_hotfixes(text("hotfix/get-hotfix-k8s-node.txt"))  # the old table is not JSON


def test_date_order_is_never_guessed() -> None:
    # Dates without a printed pattern (macOS softwareupdate): deduced from the digits or refused.
    assert slash_order(["3/4/2020 10:00:00"]) is None
    with pytest.raises(ParseError):
        parse_local_datetime("3/4/2020 10:00:00", None)
    with pytest.raises(ParseError):
        slash_order(["13/1/2020", "1/13/2020"])
    assert parse_local_datetime("16.10.2025 15:07:35", None).isoformat() == "2025-10-16T15:07:35"
    assert parse_local_datetime("18-10-2022 09:18:29 AM", None) == datetime(2022, 10, 18, 9, 18, 29)
    # An English AM/PM marker is no evidence of month-first: en-IN prints day first with one.
    assert slash_order(["02-10-2023 12:11:37 PM"]) is None
    with pytest.raises(ParseError):
        parse_local_datetime("02-10-2023 12:11:37 PM", None)


def test_ipconfig_unknown_adapter_wireguard() -> None:
    tunnel, ethernet = parse_ipconfig(text("ipconfig/all-en-wireguard-unknown-adapter.txt"))
    assert (tunnel.kind, tunnel.name, tunnel.description) == (
        "unknown",
        "jimber",
        "WireGuard Tunnel #2",
    )
    assert tunnel.ipv4 == ("198.18.0.8",) and not tunnel.media_disconnected
    assert adapter_kind(tunnel) == "wireguard" and adapter_kind(ethernet) == ""


def test_ipconfig_tap_adapters_disconnected_and_isatap_is_not_a_vpn() -> None:
    adapters = parse_ipconfig(text("ipconfig/all-en-win7-tap-disconnected-mojibake.txt"))
    taps = [a for a in adapters if adapter_kind(a) == "tap"]
    assert len(taps) == 2 and all(a.media_disconnected for a in taps)
    tunnels = [a.description for a in adapters if a.kind == "tunnel"]
    assert tunnels[0] == "Microsoft ISATAP Adapter" and len(tunnels) == 5
    assert all(adapter_kind(a) == "" for a in adapters if a.kind == "tunnel")


def test_ipconfig_chinese_headers() -> None:
    adapters = parse_ipconfig(text("ipconfig/plain-zh-win7.cp936-crlf.txt", "cp936"))
    assert [(a.kind, a.name) for a in adapters] == [
        ("ethernet", "本地连接 5"),
        ("ethernet", "Npcap Loopback Adapter"),
        ("ethernet", "本地连接"),
    ]
    assert adapters[0].ipv4 == ("192.168.61.128",)


def test_hotfix_empty_output_and_garbage() -> None:
    assert parse_hotfixes("\n") == []
    with pytest.raises(ParseError):
        parse_hotfixes("Get-HotFix : Access denied\n")
