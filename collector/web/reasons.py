"""Reasons as the page's reader reads them: a stored reason (a reason code with parameters,
issue 19 item 1) rendered in the page's language and the company's time zone by
`devposture.policy.reasons.render`; a legacy plain-English reason shows unchanged.

The renderer is looked up when a page asks, so the dashboard works the same before that
module lands (every stored reason is then shown as stored) and after.
"""

from __future__ import annotations

import datetime as dt
import importlib
from collections.abc import Callable
from typing import cast

Render = Callable[[str, str, dt.tzinfo], str]


def _renderer() -> Render | None:
    try:
        module = importlib.import_module("devposture.policy.reasons")
    except ImportError:
        return None
    found = getattr(module, "render", None)
    return cast("Render", found) if callable(found) else None


def reason_text(stored: str, lang: str, zone: dt.tzinfo) -> str:
    """A stored reason for a reader of `lang` in `zone`."""
    render = _renderer()
    if render is None or not stored:
        return stored
    return str(render(stored, lang, zone))
