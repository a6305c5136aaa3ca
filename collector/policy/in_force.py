"""The policy in force: the copy of the policy file the collector last applied.

An edited policy file with mistakes is refused by the running collector, which keeps judging by
the policy it applied last; reports, admin commands and the dashboard must judge by that same
policy, not by the file on disk. The server keeps a copy of exactly what it applied in the data
folder (`keep_in_force`), and everything else reads that copy (`policy_in_force`).

It lives here, not in the server, so that the admin commands and the dashboard can read it
without importing the server, which imports them.
"""

from __future__ import annotations

import logging
from pathlib import Path

from devposture.collector.config import CollectorConfig
from devposture.policy import Policy, default_policy, load_policy, parse_policy

log = logging.getLogger(__name__)
IN_FORCE = "policy-in-force.toml"


def current_policy(config: CollectorConfig) -> Policy:
    """The data folder's policy; the bundled default when the folder has none (older init)."""
    if not config.policy.exists():
        log.warning("no policy file in the data folder: using the bundled default policy")
        return default_policy()
    return load_policy(config.policy)


def policy_in_force(config: CollectorConfig) -> Policy:
    """The policy the collector last applied, for reports: an edited file with mistakes is
    refused by the collector, so reports must not judge by it either."""
    copy = config.data_dir / IN_FORCE
    if copy.exists():
        return load_policy(copy)
    return current_policy(config)


def keep_in_force(config: CollectorConfig) -> Policy:
    """Load the policy file, and keep a copy of exactly what was applied."""
    if not config.policy.exists():
        return current_policy(config)
    text = config.policy.read_text(encoding="utf-8")
    policy = parse_policy(text, str(config.policy))
    temporary = config.data_dir / f".{IN_FORCE}.tmp"
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(config.data_dir / IN_FORCE)
    return policy


def policy_stamp(path: Path) -> tuple[int, int] | None:
    """What tells a changed policy file: its modification time and size (None: unreadable)."""
    try:
        info = path.stat()
    except OSError:
        return None
    return info.st_mtime_ns, info.st_size
