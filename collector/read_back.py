"""English texts the collector keeps or passes on as they are (the store's refusals, a device's
history) read back into the sentence they were written from, so that a person gets them in
their own language.

The store words such a text once, in English, and keeps it (`device_events` is append-only
and its text is chained into the audit evidence); what reads it knows the shapes it can have
as templates (the catalogs' msgids, `said`) and finds the template and parameters that write
it again, word for word.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import cache

from devposture.policy.cli_messages import Said


@cache
def _pattern(template: str) -> re.Pattern[str]:
    parts = re.split(r"\{(\w+)\}", template)
    regex = "".join(
        re.escape(part) if n % 2 == 0 else f"(?P<{part}>.+?)" for n, part in enumerate(parts)
    )
    return re.compile(regex, re.DOTALL)


def read_back(text: str, templates: Iterable[Said]) -> Said | None:
    """`text` as the first of `templates` that writes it (its parameters as text), or None.
    A parameter matches as little as it can: a template that extends another ("…, group
    {group}") goes before it."""
    for template in templates:
        found = _pattern(template.english).fullmatch(text)
        if found is not None:
            return Said(template.english, dict(found.groupdict()))
    return None
