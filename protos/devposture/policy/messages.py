"""The messages of the shared package the catalogs must hold, from where each is declared: the
reasons (with their terms, optional parts and states), the agent's phrases inside them and the
per-OS steps. The agent's own
frame words (`devposture.agent.employee.words.every_message`) are added to them by
`make catalogs` (scripts/catalogs.py), which writes the `.po` files, and by the tests that
hold each catalog to the list; the arrows stay one way (nothing here imports the agent)."""

from __future__ import annotations

from devposture.policy import os_steps, phrases, reasons


def all_messages() -> list[tuple[str, str]]:
    """(context, English msgid) of every message, in a stable order."""
    return reasons.every_message() + phrases.every_message() + os_steps.every_message()
