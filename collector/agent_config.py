"""What agents need from the policy, as one versioned message.

The version is a hash of the content, so it changes exactly when something an agent uses
changes (a threshold only the collector uses does not make every agent re-download). Agents
say which version they have in each report; the acknowledgement carries the new one when it
differs. The Wi-Fi hashing key is the fleet's, kept in the data folder (0600), so the same
private network hashes alike on every device without its name ever leaving one.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import secrets
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

from google.protobuf.internal.containers import RepeatedCompositeFieldContainer

from devposture.policy import Policy
from devposture.policy.reasons import render
from devposture.policy.time_zone import company_zone
from devposture.v1 import devposture_pb2 as pb

HASH_KEY_FILE = "network-hash.key"


def network_hash_key(data_dir: Path) -> bytes:
    """The fleet's key for hashing private network names; made once, readable by owner only."""
    path = data_dir / HASH_KEY_FILE
    try:
        key = path.read_bytes()
    except FileNotFoundError:
        key = b""
    if len(key) < 32:
        key = secrets.token_bytes(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(key)
    return key


def agent_config(policy: Policy, hash_key: bytes) -> pb.AgentConfig:
    config = pb.AgentConfig(
        report_interval_seconds=policy.report_interval_minutes * 60,
        trusted_networks=policy.trusted_networks,
        public_network_patterns=policy.public_network_patterns,
        backup_folders=policy.backup_folders,
        network_hash_key=hash_key,
        outbox_max_bytes=policy.outbox_max_mb * 1024 * 1024,
        # The employee's status and notifications show times in it (agent/status.py).
        time_zone=policy.time_zone,
    )
    digest = hashlib.sha256(config.SerializeToString(deterministic=True)).digest()
    # Never 0: an agent with no configuration yet says 0.
    config.version = int.from_bytes(digest[:8], "big") or 1
    return config


def verdict_templates(policy: Policy) -> dict[str, pb.CheckVerdict]:
    """Per check, the employee's view without its state: clause, titles and remedies. Made
    once per policy; each acknowledgement copies them (they are most of its bytes)."""
    return {
        spec.check_id: pb.CheckVerdict(
            check_id=spec.check_id,
            clause=spec.clause,
            title_zh=spec.title_zh,
            title_en=spec.title_en,
            remediation_zh=spec.remediation_zh,
            remediation_en=spec.remediation_en,
        )
        for spec in policy.checks
    }


class Judged(Protocol):
    """One check's verdict on a report (`store.CheckResult`)."""

    @property
    def check_id(self) -> str: ...
    @property
    def state(self) -> str: ...
    @property
    def reason(self) -> str: ...


def add_verdicts(
    templates: dict[str, pb.CheckVerdict], results: Iterable[Judged],
    into: RepeatedCompositeFieldContainer[pb.CheckVerdict], zone: dt.tzinfo | None = None,
) -> None:  # fmt: skip
    """Each result as the employee sees it (clause, titles and remedies from its template)
    appended to `into` (an acknowledgement's `verdicts`): copied once, straight into place.
    A check the policy no longer has is left out. The stored reason code goes as it is
    (`reason_code`: the agent words it in its own language); `reason` holds it in English,
    times in the company's time zone `zone`, for agents older than reason codes, which show
    `reason` as it is."""
    zone = company_zone() if zone is None else zone
    for result in results:
        template = templates.get(result.check_id)
        if template is not None:
            verdict = into.add()
            verdict.CopyFrom(template)
            verdict.state, verdict.reason_code = result.state, result.reason
            verdict.reason = render(result.reason, "en", zone)


def verdicts_digest(encoded: bytes, deadlines: dict[str, dt.datetime]) -> bytes:
    """Names an acknowledgement's verdicts: `encoded` (the verdicts field as sent, titles and
    remedies included, so a policy's new wording is a new digest) and each FAIL's grace
    deadline, to the microsecond. The agent sends it back as `verdicts_held`, and is sent the
    verdicts again only when this changes: exactly when `status` would show something else."""
    digest = hashlib.sha256(encoded)
    for check_id in sorted(deadlines):
        moment = deadlines[check_id]
        micros = (moment - _EPOCH) // dt.timedelta(microseconds=1)
        digest.update(b"\0%s=%d" % (check_id.encode("utf-8"), micros))
    return digest.digest()


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
