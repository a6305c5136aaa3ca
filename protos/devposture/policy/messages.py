"""Every message the catalogs must hold, from where each is declared: the reasons (with their
terms, optional parts and states) and the per-OS steps. `make catalogs` writes the `.po`
files from this list and the tests hold each catalog to it."""

from __future__ import annotations

from devposture.policy import os_steps, reasons


def all_messages() -> list[tuple[str, str]]:
    """(context, English msgid) of every message, in a stable order."""
    return reasons.every_message() + os_steps.every_message()
