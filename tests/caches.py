"""Where the tests keep what outlives one run (Debian root filesystems, PyInstaller's
bootloaders, the agent's warm apt cache): never inside the repository. The same folder as
the package build's (`installers/python/lock.py`), so that CI keeps one cache."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """DEVPOSTURE_CACHE where set, else /var/cache/devposture-ci for root (CI), else the
    user's ~/.cache/devposture."""
    configured = os.environ.get("DEVPOSTURE_CACHE")
    if configured:
        return Path(configured)
    return Path("/var/cache/devposture-ci") if os.geteuid() == 0 else (
        Path.home() / ".cache" / "devposture")  # fmt: skip
