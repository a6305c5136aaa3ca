"""The files in which WeChat for Windows records a data folder the user moved.

WeChat 3.x: Settings > Files > "文件管理" lets the user move "WeChat Files" to another folder;
the choice is kept in `%APPDATA%\\Tencent\\WeChat\\All Users\\config\\3ebffe94.ini`, whose whole
content is the folder (the app makes "WeChat Files" inside it), or "MyDocument:" for the default
Documents folder (xaoyaoo/PyWxDump, wx_core/wx_info.py, which reads the same file).
WeChat 4.x keeps the same choice in an .ini under `%APPDATA%\\Tencent\\xwechat\\config`.

Pure functions of the file's bytes; they never guess: a value that is not an absolute path is
None (the app's default stands).
"""

from __future__ import annotations

import re

_DEFAULT_MARKERS = ("MyDocument:", "")
_ABSOLUTE = re.compile(r"^(?:[A-Za-z]:[\\/]|\\\\|/)")


def _text(data: bytes) -> str:
    """The file as text: UTF-8 (with or without BOM), else the Chinese ANSI code page."""
    if data.startswith(b"\xff\xfe"):
        return data[2:].decode("utf-16-le", errors="replace")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("gb18030", errors="replace")


def _absolute(value: str) -> str | None:
    value = value.strip().strip("\x00").strip()
    if value in _DEFAULT_MARKERS or not _ABSOLUTE.match(value):
        return None
    return value.replace("\\", "/").rstrip("/")


def wechat3_file_save_path(data: bytes) -> str | None:
    """The folder named by 3ebffe94.ini, or None for the default (Documents)."""
    lines = [line for line in _text(data).splitlines() if line.strip()]
    return _absolute(lines[0]) if lines else None


def xwechat_root_path(data: bytes) -> str | None:
    """The folder named by a WeChat 4.x config .ini, or None for the default."""
    lines = [line for line in _text(data).splitlines() if line.strip()]
    return _absolute(lines[0]) if lines else None
