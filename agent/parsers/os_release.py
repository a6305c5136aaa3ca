"""/etc/os-release (freedesktop os-release(5)): KEY=value lines, shell-style quoting."""

from __future__ import annotations

import shlex

from devposture.agent.parsers.errors import ParseError


def parse_os_release(text: str) -> dict[str, str]:
    """All assignments in the file. Raises ParseError when there are none, because every real
    os-release has at least NAME or ID and an empty map would read as "unknown Linux"."""
    values: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        key = key.strip()
        if not key.replace("_", "").isalnum():
            continue
        try:
            parts = shlex.split(value, posix=True)
        except ValueError as exc:
            raise ParseError(f"os-release: unbalanced quoting in {key}") from exc
        values[key] = " ".join(parts)
    if "NAME" not in values and "ID" not in values:
        raise ParseError("os-release: neither NAME nor ID is set")
    return values
