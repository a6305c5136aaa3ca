"""The employee's view and the policy reaching agents, with real processes."""

from __future__ import annotations

import time
from pathlib import Path

from devposture.agent.state import AgentState
from tests.e2e.conftest import AGENT, CollectorProcess, enroll, run


def test_status_shows_the_collectors_judgment_and_policy_changes_reach_the_agent(
    collector_process: CollectorProcess, tmp_path: Path
) -> None:
    token = tmp_path / "token"
    token.write_text(collector_process.token())
    state_dir = tmp_path / "agent"
    assert enroll(collector_process, state_dir, token).returncode == 0
    before = run(AGENT, "status", "--state", str(state_dir))
    assert before.returncode == 0 and "本地检查" in before.stdout and "local check" in before.stdout

    assert run(AGENT, "once", "--state", str(state_dir)).returncode == 0
    state = AgentState(state_dir)
    config = state.load_config()
    assert config is not None and "*Guest*" in config.public_network_patterns
    assert oct(state.config_path.stat().st_mode & 0o777) == "0o600"
    status = run(AGENT, "status", "--state", str(state_dir))
    assert status.returncode == 0, status.stderr
    assert (
        "公司服务器于" in status.stdout and "as the company's collector judged it" in status.stdout
    )
    for clause in ("6.3.1", "6.3.2", "6.2.1"):
        assert clause in status.stdout
    assert ("怎么办" in status.stdout) == ("FAIL" in status.stdout or "UNKNOWN" in status.stdout)

    policy = collector_process.data / "policy.toml"
    policy.write_text(policy.read_text().replace("trusted = []", 'trusted = ["CorpWiFi"]'))
    deadline = time.monotonic() + 15
    while True:
        assert run(AGENT, "once", "--state", str(state_dir)).returncode == 0
        updated = state.load_config()
        assert updated is not None
        if list(updated.trusted_networks) == ["CorpWiFi"] or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert list(updated.trusted_networks) == ["CorpWiFi"]
    assert updated.version != config.version
