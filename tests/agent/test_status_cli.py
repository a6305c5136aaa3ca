"""`devposture-agent status` as a real process, on verdicts a real collector acknowledged:
the language from the locale, the grace deadline in Beijing time, the exit status, and no
traceback, neither on a closed pipe nor on an unexpected error."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

from devposture.agent.state import AgentState
from devposture.agent.status import EXIT_FAILING
from devposture.agent.transport import open_channel
from devposture.policy import default_policy
from devposture.policy.cli_messages import said
from devposture.v1 import devposture_pb2 as pb
from devposture.v1 import devposture_pb2_grpc as pb_grpc
from tests.conftest import EnrolledAgent, LiveCollector, make_report

BEIJING = dt.timezone(dt.timedelta(hours=8))


def _status(state: AgentState, lang: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LC_", "LANG"))}
    env["LANG"] = lang
    return subprocess.run(  # type: ignore[call-overload, no-any-return]
        [sys.executable, "-m", "devposture.agent", "status", "--state", str(state.directory)],
        env=env, text=True, timeout=120, check=False, **kwargs,
    )  # fmt: skip


def _failing_firewall(agent: EnrolledAgent) -> dt.datetime:
    """Send a report whose firewall is off, keep its acknowledgement as the agent does, and
    return the grace deadline IT reads."""
    began = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(hours=1)
    report = make_report(agent.enrollment.device_id, began, firewall_enabled=False)
    with open_channel(agent.state, agent.enrollment) as channel:
        ack = pb_grpc.CollectorStub(channel).Report(pb.ReportRequest(report=report), timeout=30)
    agent.state.save_verdicts(ack)
    grace = default_policy().check("firewall").grace_hours  # type: ignore[union-attr]
    return began + dt.timedelta(hours=grace)


def test_status_tells_the_grace_deadline_in_the_locales_language_and_exits_failing(
    live_collector: LiveCollector, agent: EnrolledAgent
) -> None:
    deadline = _failing_firewall(agent).astimezone(BEIJING)
    zh = _status(agent.state, "zh_CN.UTF-8", capture_output=True)
    assert zh.returncode == EXIT_FAILING, zh.stderr
    assert f"不合规，宽限期至 {deadline.month}月{deadline.day}日 {deadline:%H:%M}" in zh.stdout
    assert "公司服务器于" in zh.stdout and "What to do" not in zh.stdout
    en = _status(agent.state, "en_US.UTF-8", capture_output=True)
    assert en.returncode == EXIT_FAILING, en.stderr
    assert f"failing, grace until {deadline.day} {deadline:%b %H:%M}" in en.stdout
    assert "Defender" not in zh.stdout + en.stdout  # this is a Linux computer
    assert "sudo ufw enable" in en.stdout


def test_a_closed_pipe_ends_status_quietly_with_its_exit_status(
    live_collector: LiveCollector, agent: EnrolledAgent
) -> None:
    _failing_firewall(agent)
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first line: `status | head -0`
    try:
        done = _status(agent.state, "zh_CN.UTF-8", stdout=write_end, stderr=subprocess.PIPE)
    finally:
        os.close(write_end)
    assert done.stderr == ""
    assert done.returncode == EXIT_FAILING


def test_an_unexpected_error_is_one_line_not_a_traceback(
    live_collector: LiveCollector, agent: EnrolledAgent, tmp_path: Path
) -> None:
    agent.state.verdicts_path.mkdir()  # unreadable as a file
    done = _status(agent.state, "en_US.UTF-8", capture_output=True)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith("devposture-agent: error: unexpected IsADirectoryError")


def test_a_device_refused_before_it_was_ever_judged_is_not_told_of_verdicts_it_never_had(
    live_collector: LiveCollector, agent: EnrolledAgent
) -> None:
    """IT revoked the device before its first report: `status` said "the results below are
    the last it gave" above what was this computer's own check. It says that the collector
    never judged it, and the last verdicts' words only where there were verdicts."""
    revoked = said("device {device} was {status} by IT: it can no longer report. Ask IT; a new"
                   " enrollment needs a new token and a new key (enroll --force)",
                   device=agent.enrollment.device_id, status=said("revoked"))  # fmt: skip
    agent.state.save_refusal(revoked, 1_764_900_000_000_000)
    en = _status(agent.state, "en_US.UTF-8", capture_output=True)
    assert "and never judged it: the results below are this computer's own check" in en.stdout
    assert "the last it gave" not in en.stdout
    zh = _status(agent.state, "zh_CN.UTF-8", capture_output=True)
    assert "从未判定过本机" in zh.stdout and "最后一次给出" not in zh.stdout, zh.stdout
    _failing_firewall(agent)  # verdicts kept, then refused: the last it gave
    en = _status(agent.state, "en_US.UTF-8", capture_output=True)
    assert "the results below are the last it gave" in en.stdout and "never judged" not in (
        en.stdout
    )
