"""decode_output on the encodings Windows tools really print."""

from __future__ import annotations

from devposture.agent.parsers.windows.text import decode_output
from tests.agent.windows.replay_windows import fixture

ZH_UTF8 = "netsh_wlan/interfaces-zh-win11-ax211-wpa2.utf8.txt"
ZH_GBK = "netsh_wlan/interfaces-zh-win11-ax211-wpa2.cp936-crlf.txt"
SC = "security_center/cim-antivirusproduct-bitdefender-and-defender.txt"
SC_UTF16 = "security_center/cim-antivirusproduct-bitdefender-and-defender.utf16le-bom-crlf.txt"


def test_gbk_bytes_decode_with_the_console_code_page() -> None:
    data = fixture(ZH_GBK)
    assert b"\r\n" in data and "身份验证".encode("gbk") in data
    text = decode_output(data, "cp936")
    assert text == fixture(ZH_UTF8).decode("utf-8")
    assert "\r" not in text


def test_gbk_decoded_as_utf8_would_be_mojibake() -> None:
    # The trap the helper exists for: the same bytes are not valid UTF-8.
    data = fixture(ZH_GBK)
    assert "身份验证" not in data.decode("utf-8", errors="replace")
    assert "身份验证" in decode_output(data, "cp936")


def test_utf16le_with_bom_is_recognised_whatever_the_code_page() -> None:
    data = fixture(SC_UTF16)
    assert data.startswith(b"\xff\xfe")
    assert decode_output(data, "cp936") == fixture(SC).decode("utf-8")


def test_utf16le_without_bom_is_recognised_by_its_nul_bytes() -> None:
    data = fixture(SC_UTF16)[2:]
    assert decode_output(data, "cp437") == fixture(SC).decode("utf-8")


def test_utf8_output_stays_utf8_on_a_chinese_console() -> None:
    # Newer netsh builds print UTF-8 even where the OEM code page is cp936.
    assert decode_output(fixture(ZH_UTF8), "cp936") == fixture(ZH_UTF8).decode("utf-8")


def test_utf8_bom_and_crlf_and_unknown_code_page() -> None:
    assert decode_output(b"\xef\xbb\xbfState : ON\r\n", "cp437") == "State : ON\n"
    # An unknown code page name must not crash the probe: invalid bytes become U+FFFD.
    assert decode_output(b"\xb0\xa1", "no-such-codec") == "\ufffd\ufffd"
