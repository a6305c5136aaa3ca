"""The Windows user's display language, through the API (GetUserDefaultUILanguage): the thin
ctypes glue behind `agent.employee.language.os_language`. A Chinese Windows sets no LANG, and
the console's code page says nothing about the language its user reads. Elsewhere it raises:
only Windows has the call. Type-checked as Windows code (`make typecheck`)."""

from __future__ import annotations

import sys

if sys.platform != "win32":

    def user_ui_langid() -> int:
        """Only Windows has a user interface language id."""
        raise OSError("GetUserDefaultUILanguage is a Windows call")

else:  # mypy checks this branch for Windows only
    import ctypes

    def user_ui_langid() -> int:
        """The LANGID of the user's display language (2052 on a Chinese Windows)."""
        return int(ctypes.windll.kernel32.GetUserDefaultUILanguage())
