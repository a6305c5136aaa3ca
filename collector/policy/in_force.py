"""The policy in force: the newest policy applied, kept in the database, so that every collector
sharing it judges by the same policy, and reports, admin commands and the dashboard judge by
what the collectors apply, never by a file on disk that may hold mistakes.

Each collector's data folder keeps its policy file (what IT edits), a copy of the policy it
judges by (`IN_FORCE`) and the SHA-256 of its file as last applied (`SEEN`). An edit is a
policy file that differs from that: at start, or while serving (`watch_policy` polls it), the
collector checks it, refuses it with every mistake logged, or applies it: publishes it as the
new version in force and judges by it at once. The other collectors see the new version within
seconds and judge by it from then on. The fleet is judged again under the newest version once,
by whichever collector takes the lease first (server._rejudge_owed: the version re-judged is
marked in the database, so an edit whose collector died first is still re-judged). A
collector started with an unedited file takes the version in force, which may be newer than
its file.

It lives here, not in the server, so that the admin commands and the dashboard can read it
without importing the server.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Callable
from pathlib import Path

from devposture.collector.clock import utcnow
from devposture.collector.company_time import zone_of
from devposture.collector.config import CollectorConfig
from devposture.collector.new_file import write_atomic
from devposture.collector.store import Store
from devposture.collector.store.policies import PolicyVersion, digest
from devposture.policy import (
    Policy,
    PolicyError,
    default_policy,
    load_policy,
    parse_policy,
    policy_text,
)
from devposture.policy.cli_messages import said

log = logging.getLogger(__name__)
IN_FORCE = "policy-in-force.toml"
# The SHA-256 of the policy file as this collector last applied or started with it.
SEEN = "policy-file.sha256"


def collector_name() -> str:
    """Who applied a policy or holds a lease: this host and process."""
    import socket  # noqa: PLC0415 - here: a command that reads the policy names no one (5 ms)

    return f"{socket.gethostname()}:{os.getpid()}"


def current_policy(config: CollectorConfig) -> Policy:
    """The data folder's policy; the bundled default when the folder has none (older init)."""
    if not config.policy.exists():
        log.warning("no policy file in the data folder: using the bundled default policy")
        return default_policy()
    return load_policy(config.policy)


def policy_in_force(config: CollectorConfig, store: Store | None = None) -> Policy:
    """The policy the collectors last applied, for reports: the newest version in the
    database; before any was applied there (a collector not started since the upgrade), the
    data folder's copy of what was applied, then its file."""
    if store is not None:
        latest = store.policies.latest()
        if latest is not None:
            return parse_policy(latest.text, f"the policy in force (version {latest.version})")
    copy = config.data_dir / IN_FORCE
    if copy.exists():
        return load_policy(copy)
    return current_policy(config)


def zone_in_force(config: CollectorConfig, store: Store | None = None) -> dt.tzinfo:
    """The company's time zone, from the policy in force, for showing times; Asia/Shanghai
    should that policy not load (a listing still shows; the reports say what is wrong)."""
    try:
        return zone_of(policy_in_force(config, store))
    except PolicyError:
        return zone_of(None)


def _keep_copy(config: CollectorConfig, text: str) -> None:
    """This collector's copy of the policy it judges by, written only when it changed: every
    start adopts the version in force, and a start on a full disk failed writing the same
    text again, so a collector restarted while its disk was full never came back."""
    copy = config.data_dir / IN_FORCE
    try:
        if copy.read_text(encoding="utf-8") == text:
            return
    except (OSError, UnicodeDecodeError):
        pass  # missing or unreadable: written anew
    write_atomic(copy, text.encode("utf-8"))


def _seen(config: CollectorConfig) -> str | None:
    """The SHA-256 of the policy file as this collector last applied or started with it (an
    older folder: of its copy of the policy it applied)."""
    mark = config.data_dir / SEEN
    if mark.exists():
        return mark.read_text(encoding="ascii").strip()
    copy = config.data_dir / IN_FORCE
    return digest(copy.read_text(encoding="utf-8")) if copy.exists() else None


def _mark_seen(config: CollectorConfig, text: str) -> None:
    write_atomic(config.data_dir / SEEN, (digest(text) + "\n").encode("ascii"))


def edited(config: CollectorConfig) -> str | None:
    """The policy file's text when IT changed it since this collector last applied or
    started with it (an edit to apply), else None. A collector judging by a newer version
    another one applied keeps its own file as it was: that is not an edit."""
    if not config.policy.exists():
        return None
    text = policy_text(config.policy)  # PolicyError for a file saved as GBK, with its line
    return None if digest(text) == _seen(config) else text


def apply_edit(
    config: CollectorConfig, store: Store, text: str,
    usable: Callable[[Policy], object] = lambda policy: None,
) -> tuple[Policy, PolicyVersion]:  # fmt: skip
    """Check an edited policy (PolicyError naming every mistake) and make it the policy in
    force for every collector on the database. `usable` builds what the collector judges and
    answers agents with from it (the running service's), before anything is published: a
    version in the append-only history that the collectors then cannot use stays there."""
    policy = parse_policy(text, str(config.policy))
    try:
        usable(policy)
    except (ValueError, OverflowError, TypeError) as exc:
        raise PolicyError(str(config.policy), [(None, said(
            "the collector cannot use this policy ({problem}): correct the value it names",
            problem=str(exc)))]) from exc  # fmt: skip
    version = store.policies.publish(text, utcnow(), collector_name())
    _keep_copy(config, text)
    _mark_seen(config, text)
    return policy, version


def adopt(config: CollectorConfig, version: PolicyVersion) -> Policy:
    """Judge by the version another collector applied (and keep it as this one's copy)."""
    policy = parse_policy(version.text, f"the policy in force (version {version.version})")
    _keep_copy(config, version.text)
    return policy


def keep_in_force(config: CollectorConfig, store: Store, *, file: bool = True) -> Policy:
    """The policy a collector starts with: an edited policy file is applied (a mistake in it
    stops the start, as before); an unedited one yields to the version in force. Without
    `file` (a worker of `serve --workers` other than worker 0, which alone follows the file)
    the version in force, the file unread: a worker started again in place of one that died
    read an edit with a mistake, which worker 0 had refused, and exited, again and again."""
    latest = store.policies.latest()
    if not file and latest is not None:
        log.info("policy version %d in force (applied by %s)", latest.version, latest.applied_by)
        return adopt(config, latest)
    text = edited(config)
    if text is None and latest is None:  # the first start on this database: the file as it is
        if not config.policy.exists():
            return current_policy(config)
        text = policy_text(config.policy)
    if text is not None:
        policy, version = apply_edit(config, store, text)
        log.info("policy version %d in force (applied by this collector)", version.version)
        return policy
    assert latest is not None
    log.info("policy version %d in force (applied by %s)", latest.version, latest.applied_by)
    if config.policy.exists() and _seen(config) is None:
        _mark_seen(config, policy_text(config.policy))
    return adopt(config, latest)


def policy_stamp(path: Path) -> tuple[int, int] | None:
    """What tells a changed policy file: its modification time and size (None: unreadable)."""
    try:
        info = path.stat()
    except OSError:
        return None
    return info.st_mtime_ns, info.st_size
