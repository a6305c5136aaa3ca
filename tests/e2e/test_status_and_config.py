"""The employee's view and the policy reaching agents, with real processes."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from devposture.agent.state import AgentState
from devposture.agent.status import EXIT_FAILING, EXIT_NOT_JUDGED, exit_code
from tests import warm_commands
from tests.e2e.conftest import AGENT, CollectorProcess, enroll, run


def status(state_dir: Path, lang: str) -> subprocess.CompletedProcess[str]:
    """`status` as the employee runs it, in a terminal whose locale is `lang`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LC_", "LANG"))}
    warm_commands.seed(state_dir)  # its local check, before the collector judged, runs apt
    return subprocess.run(
        [AGENT, "status", "--state", str(state_dir)], env={**env, "LANG": lang},
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_status_shows_the_collectors_judgment_and_policy_changes_reach_the_agent(
    collector_process: CollectorProcess, tmp_path: Path
) -> None:
    token = tmp_path / "token"
    token.write_text(collector_process.token())
    state_dir = tmp_path / "agent"
    assert enroll(collector_process, state_dir, token).returncode == 0
    before = status(state_dir, "zh_CN.UTF-8")
    assert before.returncode in (EXIT_FAILING, EXIT_NOT_JUDGED), before.stderr
    assert "本地检查" in before.stdout and "local check" not in before.stdout

    assert run(AGENT, "once", "--state", str(state_dir)).returncode == 0
    state = AgentState(state_dir)
    config = state.load_config()
    assert config is not None and "*Guest*" in config.public_network_patterns
    assert oct(state.config_path.stat().st_mode & 0o777) == "0o600"
    judged = state.load_verdicts()
    assert judged is not None
    zh, en = status(state_dir, "zh_CN.UTF-8"), status(state_dir, "en_US.UTF-8")
    assert zh.returncode == en.returncode == exit_code(list(judged.verdicts), judged=True)
    assert "公司服务器于" in zh.stdout and "as the company's collector judged it" in en.stdout
    for clause in ("6.3.1", "6.3.2", "6.2.1"):
        assert clause in zh.stdout and clause in en.stdout
    failing = any(v.state != "PASS" for v in judged.verdicts)
    assert ("怎么办" in zh.stdout) == failing and ("What to do" in en.stdout) == failing

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
