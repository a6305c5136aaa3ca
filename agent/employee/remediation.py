"""What to do on *this* computer, per check and per OS, in the computer's language.

The steps are declared in English in `devposture.policy.os_steps` and read in Chinese or
English from the catalogs: a Linux PC is never sent to Windows Security or Microsoft Defender,
nor a Mac to BitLocker. A check without steps for an OS shows the policy's remedy alone.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from devposture.agent.employee.language import Lang
from devposture.policy.catalogs import translate
from devposture.policy.os_steps import STEPS as _ENGLISH
from devposture.policy.os_steps import OsName, context

__all__ = ["STEPS", "OsName", "Steps", "steps_for", "this_os"]


@dataclass(frozen=True)
class Steps:
    check_id: str
    os_name: OsName

    def text(self, lang: Lang) -> str:
        english = _ENGLISH[(self.check_id, self.os_name)]
        return translate(lang, context(self.check_id, self.os_name), english)

    @property
    def zh(self) -> str:
        return self.text("zh")

    @property
    def en(self) -> str:
        return self.text("en")


def this_os(platform: str = sys.platform) -> OsName:
    if platform == "win32":
        return "windows"
    return "macos" if platform == "darwin" else "linux"


STEPS: dict[tuple[str, OsName], Steps] = {key: Steps(*key) for key in _ENGLISH}


def steps_for(check_id: str, os_name: OsName) -> Steps | None:
    return STEPS.get((check_id, os_name))
