"""Turning what a Windows tool printed into text.

Windows tools do not agree on an encoding: PowerShell's `>` redirection and WMIC write UTF-16 LE
(usually with a byte-order mark), cmd.exe tools (netsh, reg, manage-bde, ipconfig) write in the
console's OEM code page (cp936 = GBK on Chinese Windows, cp437 on US English), and newer builds
or a `chcp 65001` console write UTF-8. Guessing UTF-8 turns GBK into mojibake, so the order is:
a byte-order mark if there is one, UTF-16 LE recognised by its NUL bytes, UTF-8 when the bytes
are valid UTF-8, else the console code page. Line ends are normalised to "\\n" (Windows prints
CRLF), so parsers see one shape.
"""

from __future__ import annotations

import codecs

_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
# Bytes looked at to recognise UTF-16 LE without a mark: ASCII-heavy text in UTF-16 LE has a
# NUL in (almost) every odd position and (almost) none in the even ones.
_SNIFF = 512
_ODD_NUL_SHARE = 0.4
_EVEN_NUL_SHARE = 0.1


def _looks_utf16le(data: bytes) -> bool:
    sample = data[:_SNIFF]
    if len(sample) < 4:
        return False
    odd = sample[1::2]
    even = sample[0::2]
    return odd.count(0) >= _ODD_NUL_SHARE * len(odd) and even.count(0) <= _EVEN_NUL_SHARE * len(
        even
    )


def _codec(name: str) -> str:
    try:
        return codecs.lookup(name).name
    except LookupError:
        return "utf-8"


def decode_output(data: bytes, console_encoding: str) -> str:
    """`data` as text with "\\n" line ends. `console_encoding` is the machine's OEM code page
    (`PlatformInfo.console_encoding`, e.g. "cp936"); it is used only when the bytes are neither
    marked, UTF-16 LE nor valid UTF-8. Undecodable bytes become U+FFFD rather than an error:
    the parser then rejects what it cannot understand."""
    text: str | None = None
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            text = data[len(bom) :].decode(encoding, errors="replace")
            break
    if text is None and _looks_utf16le(data):
        text = data.decode("utf-16-le", errors="replace")
    if text is None:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = data.decode(_codec(console_encoding), errors="replace")
    return text.replace("\r\n", "\n").replace("\r", "\n")
