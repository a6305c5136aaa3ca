"""Remember the output of expensive commands while the files they read are unchanged.

`apt-get -s dist-upgrade` spends well over a second of CPU resolving dependencies, yet its answer
can only change when the package database, the package lists or apt's configuration change.
A command registered with the files it depends on is answered from here while the size and
modification time of every one of those files (or folders) are as they were, and for at most
`max_age`; otherwise it runs again. Only the raw output is kept: parsers still run every time.

The cache is a JSON file in the agent's state folder, replaced atomically; a damaged or
unreadable cache is simply ignored (the command runs), never an error.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path

from devposture.agent.host.types import CommandResult
from devposture.agent.state import write_atomic

log = logging.getLogger(__name__)

DEFAULT_MAX_AGE = 6 * 3600.0
Stamp = list[list[object]]


def stamp_of(paths: Sequence[str]) -> Stamp:
    """Size and mtime (ns) of each path, or None for a missing one: the cache key's inputs."""
    stamp: Stamp = []
    for path in paths:
        try:
            info = Path(path).stat()
        except OSError:
            stamp.append([path, None, None])
            continue
        stamp.append([path, info.st_size, info.st_mtime_ns])
    return stamp


class CommandCache:
    def __init__(self, path: Path | None, max_age: float = DEFAULT_MAX_AGE) -> None:
        self._path = path
        self._max_age = max_age
        self._entries: dict[str, dict[str, object]] = {}
        if path is not None:
            try:
                loaded = json.loads(path.read_text(encoding="utf-8"))
                if isinstance(loaded, dict):
                    self._entries = loaded
            except (OSError, ValueError):
                self._entries = {}

    @staticmethod
    def _key(argv: Sequence[str]) -> str:
        return json.dumps(list(argv))

    def lookup(self, argv: Sequence[str], stamp: Stamp) -> CommandResult | None:
        entry = self._entries.get(self._key(argv))
        if not isinstance(entry, dict) or entry.get("stamp") != stamp:
            return None
        saved_at = entry.get("saved_at")
        if not isinstance(saved_at, float) or not 0 <= time.time() - saved_at <= self._max_age:
            return None
        try:
            return CommandResult(
                argv=tuple(argv),
                returncode=int(entry["returncode"]),  # type: ignore[call-overload]
                stdout=base64.b64decode(str(entry["stdout"])),
                stderr=base64.b64decode(str(entry["stderr"])),
            )
        except (KeyError, ValueError, TypeError):
            return None

    def store(self, argv: Sequence[str], stamp: Stamp, result: CommandResult) -> None:
        self._entries[self._key(argv)] = {
            "stamp": stamp,
            "saved_at": time.time(),
            "returncode": result.returncode,
            "stdout": base64.b64encode(result.stdout).decode("ascii"),
            "stderr": base64.b64encode(result.stderr).decode("ascii"),
        }
        if self._path is None:
            return
        try:
            write_atomic(self._path, json.dumps(self._entries).encode("utf-8"), 0o600)
        except OSError as exc:
            log.warning("command cache not saved: %s", exc.strerror)
