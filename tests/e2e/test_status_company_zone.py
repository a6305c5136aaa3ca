"""The company's time zone and the reasons' words reach the employee through the real path:
the policy's `time_zone` goes from the collector to the agent with its configuration, and
`status` shows each reason code in the computer's language and each deadline in that zone."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

from devposture.agent.employee.company_time import moment_text
from devposture.agent.state import AgentState
from devposture.policy.reasons import parse, render
from tests.e2e.conftest import AGENT, run, serving_collector
from tests.e2e.conftest import enrolled_state as enrolled
from tests.e2e.test_status_and_config import status

# Far from Beijing and the machine's own zone, and without daylight saving time since 2019.
ZONE_NAME = "America/Sao_Paulo"


def _in_zone(data: Path) -> None:
    policy = data / "policy.toml"
    text = policy.read_text(encoding="utf-8")
    assert 'time_zone = "Asia/Shanghai"' in text
    policy.write_text(text.replace('time_zone = "Asia/Shanghai"', f'time_zone = "{ZONE_NAME}"'))


def test_status_words_reasons_and_deadlines_in_the_companys_zone(tmp_path: Path) -> None:
    zone = ZoneInfo(ZONE_NAME)
    with serving_collector(tmp_path, _in_zone) as collector:
        state_dir = enrolled(collector, tmp_path)
        assert run(AGENT, "once", "--state", str(state_dir)).returncode == 0
    state = AgentState(state_dir)
    config = state.load_config()
    assert config is not None and config.time_zone == ZONE_NAME
    assert state.company_time_zone() == ZONE_NAME
    judged = state.load_verdicts()
    assert judged is not None and judged.verdicts
    zh, en = status(state_dir, "zh_CN.UTF-8"), status(state_dir, "en_US.UTF-8")
    now = dt.datetime.now(dt.UTC)
    for verdict in judged.verdicts:
        # The code as stored, worded here; the English words beside it for older agents.
        assert parse(verdict.reason_code) is not None, verdict.reason_code
        assert render(verdict.reason_code, "zh", zone) in zh.stdout
        assert render(verdict.reason_code, "en", zone) in en.stdout
        assert verdict.reason == render(verdict.reason_code, "en", zone)
        assert verdict.reason_code not in zh.stdout
    deadlines = [v.grace_until.ToDatetime(dt.UTC) for v in judged.verdicts
                 if v.HasField("grace_until")]  # fmt: skip
    assert deadlines, "this machine fails no check with a grace period"
    for deadline in deadlines:
        assert moment_text(deadline, "zh", zone, now) in zh.stdout
        assert moment_text(deadline, "en", zone, now) in en.stdout
        beijing = moment_text(deadline, "zh", ZoneInfo("Asia/Shanghai"), now)
        assert beijing not in zh.stdout
    # The zone of those times said once, in the heading (it showed no zone at all).
    offset = zone.utcoffset(now.replace(tzinfo=None)) or dt.timedelta()
    hours, minutes = divmod(abs(int(offset.total_seconds())) // 60, 60)
    label = f"UTC{'+' if offset >= dt.timedelta() else '-'}{hours:02d}:{minutes:02d}"
    # In each language's own brackets (Chinese: full-width, after its own words).
    assert f"（{label}）" in zh.stdout.splitlines()[0] and f"({label})" in en.stdout.splitlines()[0]
