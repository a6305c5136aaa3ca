"""The agent configuration derived from the policy, and its version."""

from __future__ import annotations

from pathlib import Path

import pytest

from devposture.collector.agent_config import (
    add_verdicts,
    agent_config,
    network_hash_key,
    verdict_templates,
)
from devposture.collector.store import CheckResult
from devposture.policy import default_policy, default_policy_text, parse_policy
from devposture.v1 import devposture_pb2 as pb

# Never reaches the run's database engine: the PostgreSQL leg leaves it out (Makefile).
pytestmark = pytest.mark.engine_free

KEY = b"k" * 32


def test_config_carries_what_agents_use() -> None:
    policy = default_policy()
    config = agent_config(policy, KEY)
    assert config.report_interval_seconds == policy.report_interval_minutes * 60
    assert list(config.public_network_patterns) == list(policy.public_network_patterns)
    assert config.network_hash_key == KEY and config.version != 0


def test_version_changes_only_with_what_agents_use() -> None:
    base = agent_config(default_policy(), KEY).version
    threshold = default_policy_text().replace("backup_max_age_days = 30", "backup_max_age_days = 9")
    assert agent_config(parse_policy(threshold), KEY).version == base
    trusted = default_policy_text().replace("trusted = []", 'trusted = ["CorpWiFi"]')
    assert agent_config(parse_policy(trusted), KEY).version != base
    assert agent_config(default_policy(), b"x" * 32).version != base


def test_hash_key_is_made_once_and_private(tmp_path: Path) -> None:
    first = network_hash_key(tmp_path)
    assert len(first) == 32 and network_hash_key(tmp_path) == first
    assert oct((tmp_path / "network-hash.key").stat().st_mode & 0o777) == "0o600"


def test_verdicts_carry_clause_titles_and_remedies() -> None:
    ack = pb.ReportAck()
    results = [CheckResult("firewall", "FAIL", "off"), CheckResult("no-such-check", "PASS", "")]
    add_verdicts(verdict_templates(default_policy()), results, ack.verdicts)
    (verdict,) = ack.verdicts  # a check the policy does not have is left out
    assert (verdict.clause, verdict.state, verdict.reason) == ("6.3.1", "FAIL", "off")
    assert verdict.title_zh == "防火墙已开启" and "firewall" in verdict.remediation_en.lower()
