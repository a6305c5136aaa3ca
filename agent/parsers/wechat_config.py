"""The files in which WeChat records a data folder the user moved (docs/chat-backups.md).

WeChat 3.x for Windows: `%APPDATA%\\Tencent\\WeChat\\All Users\\config\\3ebffe94.ini`.
WeChat 4.x (Windows, and Linux under `~/.xwechat/config`): `51a1fffea11325a1e4104c6b3de47af7.ini`
(the MD5 of "KEY_LAST_XWEACHAT_FILE_DIR"). The whole file is one value:

  * `MyDocument:` (or `MyDocument:\\`): the default, the Documents folder;
  * an absolute path: the **parent** of the app's data folder ("E:\\data" + CRLF; the app puts
    "WeChat Files" or "xwechat_files" inside), sometimes the data folder itself;
  * `MyDocument:<relative>`: a folder relative to the Documents folder (Windows, Chunyu33/viap)
    or, as Linux packagers write it, relative to the home folder.

Sources: xaoyaoo/PyWxDump wx_core/wx_info.py (whole-file compare with "MyDocument:", then
join "WeChat Files"); LifeArchiveProject/WeChatDataAnalysis PR #130; jackwener/wx-cli
src/config.rs; Chunyu33/viap. Anything else (e.g. `Appdata:.xwechat`, seen in a user's notes,
meaning undocumented) raises ValueError: never guessed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

_DOCUMENTS = "MyDocument:"
_WINDOWS_ABSOLUTE = re.compile(r"^(?:[A-Za-z]:[\\/]|\\\\[^\\/]+[\\/])")
MAX_VALUE = 1024


@dataclass(frozen=True)
class DataFolderRef:
    """Where a moved data folder's parent is: an absolute path, or a path relative to the
    user's Documents folder or home folder."""

    base: Literal["absolute", "documents", "home"]
    path: str  # "/"-separated; "" for the base itself


def _text(data: bytes) -> str:
    """UTF-8 (PyWxDump opens the file so), with a BOM allowed; UTF-16 LE when it has that BOM."""
    if data.startswith(b"\xff\xfe"):
        return data[2:].decode("utf-16-le")
    return data.decode("utf-8-sig")


def parse_data_folder(data: bytes, family: Literal["windows", "posix"]) -> DataFolderRef | None:
    """The folder named by a WeChat config file, or None for the default (Documents).

    Raises ValueError, naming the problem, for a value that is not one of the known forms."""
    try:
        value = _text(data[: MAX_VALUE + 1]).strip().strip("\x00").strip()
    except UnicodeDecodeError as exc:
        raise ValueError("the value is not UTF-8 text") from exc
    if len(value) > MAX_VALUE or "\n" in value:
        raise ValueError("the value is not a single line")
    if value.startswith(_DOCUMENTS):
        rest = value[len(_DOCUMENTS) :].replace("\\", "/").strip("/")
        if not rest:
            return None
        base: Literal["documents", "home"] = "documents" if family == "windows" else "home"
        return DataFolderRef(base, rest)
    if family == "windows" and _WINDOWS_ABSOLUTE.match(value):
        return DataFolderRef("absolute", value.replace("\\", "/").rstrip("/"))
    if family == "posix" and value.startswith("/"):
        return DataFolderRef("absolute", value.rstrip("/") or "/")
    if not value:
        return None
    raise ValueError("the value is neither MyDocument: nor an absolute folder")
