"""The policy file: the bundled one is valid, and every kind of mistake is refused with its line."""

from __future__ import annotations

import datetime as dt
import re
import subprocess
import sys
from pathlib import Path

import pytest

from devposture.collector.agent_config import agent_config
from devposture.policy import (
    TEN_YEARS,
    PolicyError,
    default_policy,
    default_policy_text,
    load_policy,
    parse_policy,
)
from devposture.policy.check_parameters import PARAMETERS
from devposture.policy.checks import CHECK_FUNCTIONS, CHECKS, CheckParameters, evaluate
from devposture.v1 import devposture_pb2 as pb

# Never reaches the run's database engine: the PostgreSQL leg leaves it out (Makefile).
pytestmark = pytest.mark.engine_free

BIN = Path(sys.executable).parent


def test_bundled_policy_covers_the_three_clauses_in_both_languages() -> None:
    policy = default_policy()
    assert [c.clause_id for c in policy.clauses] == ["6.3.1", "6.3.2", "6.2.1"]
    assert "杀毒软件和防火墙" in policy.clause("6.3.1").text_zh
    assert "antivirus software and a firewall" in policy.clause("6.3.1").text_en
    assert {c.check_id for c in policy.checks} == {c.check_id for c in CHECKS}
    for check in policy.checks:
        assert check.remediation_zh and check.remediation_en and check.severity
    assert policy.check("antivirus") is not None
    assert policy.check("antivirus").parameters == {"signature_max_age_days": 7}  # type: ignore[union-attr]


def test_the_bundled_policys_chinese_takes_full_width_punctuation() -> None:
    """IT and auditors read the clauses' Chinese on the dashboard, in `report` files and in
    the audit report: "六(三)2 安全防护:网络" and "…设备的安全,安装杀毒软件…" had ASCII marks
    after Chinese words where every other Chinese text takes its full-width ones."""
    policy = default_policy()
    texts = [t for c in policy.clauses for t in (c.title_zh, c.text_zh)]
    texts += [t for c in policy.checks for t in (c.title_zh, c.remediation_zh)]
    ascii_mark = re.compile(r"[\u4e00-\u9fff][,:;!?()]|[,:;!?()][\u4e00-\u9fff]")
    assert [t for t in texts if ascii_mark.search(t)] == []
    assert policy.clause("6.3.2").title_zh == "六（三）2 安全防护：网络"


def _problems(text: str) -> list[tuple[int | None, str]]:
    with pytest.raises(PolicyError) as caught:
        parse_policy(text, "policy.toml")
    return caught.value.problems


def _line(text: str, needle: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), 1) if needle in line)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("signature_max_age_days = 7", 'signature_max_age_days = "seven"', "whole number"),
        ("signature_max_age_days = 7", "signature_max_age_dayz = 7", "unknown key"),
        ('severity = "medium"', 'severity = "urgent"', "must be one of low, medium, high"),
        ('clause = "6.2.1"', 'clause = "6.2.9"', "no [[clauses]] entry has id '6.2.9'"),
        ('id = "firewall"', 'id = "firewal"', "no check named 'firewal'"),
        ("stale_after_hours = 48", "stale_after_hours = 0", "at least 1"),
        ("grace_hours = 4", "grace_hours = -1", "at least 0"),
        ("outbox_max_mb = 32", "outbox_max_mb = 0", "at least 1"),
        ("outbox_max_mb = 32", "outbox_max_mb = 4096", "at most 1024"),
    ],
)
def test_a_mistake_is_refused_naming_its_line(old: str, new: str, message: str) -> None:
    text = default_policy_text().replace(old, new, 1)
    assert text != default_policy_text()
    problems = _problems(text)
    assert any(message in m for _, m in problems), problems
    (line,) = [ln for ln, m in problems if message in m]
    assert line == _line(text, new)


def test_a_missing_parameter_is_named() -> None:
    text = default_policy_text().replace("backup_max_age_days = 30\n", "")
    problems = _problems(text)
    assert any("backup_max_age_days: is missing" in m for _, m in problems), problems


def test_broken_toml_names_the_problem() -> None:
    problems = _problems('stale_after_hours = 48\nreport_interval_minutes = "60\n')
    assert problems[0][1].startswith("not valid TOML")


def test_every_problem_is_reported_at_once() -> None:
    text = default_policy_text().replace('severity = "high"', 'severity = "loud"')
    assert len(_problems(text)) == default_policy_text().count('severity = "high"')


def test_parameters_and_check_list_come_from_the_policy() -> None:
    text = default_policy_text().replace("backup_max_age_days = 30", "backup_max_age_days = 5")
    policy = parse_policy(text)
    params = CheckParameters.from_values({c.check_id: c.parameters for c in policy.checks})
    assert params.backup_max_age == dt.timedelta(days=5)
    now = dt.datetime(2026, 11, 24, tzinfo=dt.UTC)
    judged = evaluate(pb.PostureReport(), now, params, {"firewall"})
    assert [c.check_id for c, _ in judged] == ["firewall"]


def test_cli_policy_check(tmp_path: Path) -> None:
    collector = str(BIN / "devposture-collector")
    good = tmp_path / "good.toml"
    good.write_text(subprocess.run([collector, "policy", "default"], capture_output=True,
                                   text=True, check=True).stdout)  # fmt: skip
    ok = subprocess.run(
        [collector, "policy", "check", str(good)], capture_output=True, text=True, check=False
    )
    assert ok.returncode == 0 and "OK: 3 clauses, 6 checks" in ok.stdout
    bad = tmp_path / "bad.toml"
    bad_text = good.read_text().replace("vpn_grace_seconds = 120", "vpn_grace_seconds = 2.5")
    bad.write_text(bad_text)
    refused = subprocess.run(
        [collector, "policy", "check", str(bad)], capture_output=True, text=True, check=False
    )
    assert refused.returncode == 1
    line = _line(bad_text, "vpn_grace_seconds")
    assert f"{bad}:{line}: checks[3].parameters.vpn_grace_seconds" in refused.stderr
    assert f"{bad}: 1 problem; the policy was not accepted" in refused.stderr


def test_the_outbox_bound_is_optional_and_reaches_the_agents() -> None:
    without = "\n".join(
        line for line in default_policy_text().splitlines() if not line.startswith("outbox_max_mb")
    )
    assert parse_policy(without).outbox_max_mb == 32
    edited = default_policy_text().replace("outbox_max_mb = 32", "outbox_max_mb = 5")
    assert agent_config(parse_policy(edited), b"k" * 32).outbox_max_bytes == 5 * 1024 * 1024


# --- text parameters: a minimum version per chat app (chat-app-updates) -------------------


def test_minimum_versions_are_read_as_text() -> None:
    policy = default_policy()
    spec = policy.check("chat-app-updates")
    assert spec is not None and spec.clause == "6.3.1"
    assert spec.parameters == {"min_version_wechat": "4.0.0", "min_version_wecom": "4.1.30"}
    old, new = 'min_version_wecom = "4.1.30"', 'min_version_wecom = "5.0"'
    edited = parse_policy(default_policy_text().replace(old, new))
    params = CheckParameters.from_values({c.check_id: c.parameters for c in edited.checks})
    assert (params.min_version_wechat, params.min_version_wecom) == ("4.0.0", "5.0")


@pytest.mark.parametrize(
    "new",
    [
        "min_version_wechat = 4",  # a number, not the text of a version
        'min_version_wechat = "latest"',
        'min_version_wechat = "4.0.x"',
        'min_version_wechat = "v4.0.0"',
        'min_version_wechat = ""',
    ],
)
def test_a_minimum_that_is_not_a_version_is_refused_naming_its_line(new: str) -> None:
    text = default_policy_text().replace('min_version_wechat = "4.0.0"', new, 1)
    assert text != default_policy_text()
    problems = _problems(text)
    (line, message), *_ = [(ln, m) for ln, m in problems if "min_version_wechat" in m]
    assert "must be a dotted version number in quotes" in message, problems
    assert line == _line(text, new)


def test_a_whole_number_parameter_still_refuses_text_and_a_missing_minimum_is_named() -> None:
    text = default_policy_text().replace('min_version_wecom = "4.1.30"\n', "")
    problems = _problems(text)
    assert any("min_version_wecom: is missing" in m and '"4.1.30"' in m for _, m in problems)
    text = default_policy_text().replace("vpn_grace_seconds = 120", 'vpn_grace_seconds = "120"')
    assert any("whole number" in m for _, m in _problems(text))


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("grace_hours = 72", "grace_hours = 9223372036854775807"),
        ("stale_after_hours = 48", "stale_after_hours = 87601"),
        ("report_interval_minutes = 60", "report_interval_minutes = 99999999999"),
        ("backup_max_age_days = 30", "backup_max_age_days = 3651"),
        ("vpn_grace_seconds = 120", "vpn_grace_seconds = 315360001"),
    ],
)
def test_a_number_past_ten_years_is_refused_naming_its_line(old: str, new: str) -> None:
    """A huge number was accepted, published as the policy in force, and then overflowed
    what the collector builds from it (a date, the agents' configuration) at every poll."""
    text = default_policy_text().replace(old, new, 1)
    assert text != default_policy_text()
    problems = _problems(text)
    assert [line for line, m in problems if "must be at most" in m] == [_line(text, new)]


def test_ten_years_is_still_accepted() -> None:
    text = default_policy_text().replace("grace_hours = 72", "grace_hours = 87600", 1)
    assert parse_policy(text).check("chat-backup").grace_hours == 87600  # type: ignore[union-attr]


def test_a_list_too_long_for_the_agents_acknowledgements_is_refused() -> None:
    """300,000 public names made every acknowledgement bigger than gRPC's 4 MB."""
    names = ", ".join(f'"Hotspot-{i}"' for i in range(1001))
    text = default_policy_text().replace("public_patterns = [", f"public_patterns = [{names}, ", 1)
    problems = _problems(text)
    assert [m for _, m in problems] == [
        "networks.public_patterns: must list at most 1000 names of at most 256 characters each"
    ]
    long_name = default_policy_text().replace('"CMCC"', '"' + "C" * 257 + '"', 1)
    assert "must list at most" in _problems(long_name)[0][1]


def test_an_entry_that_is_not_a_table_is_named_not_a_crash() -> None:
    text = "clauses = [1]\n" + default_policy_text().replace("[[clauses]]", "[[unused]]")
    problems = _problems(text)
    assert "clauses[0]: must be a table" in [m for _, m in problems]


def test_a_byte_order_mark_and_crlf_are_accepted(tmp_path: Path) -> None:
    """Notepad saves "UTF-8 with BOM" and CRLF: TOML refused the mark at line 1, column 1."""
    file = tmp_path / "policy.toml"
    file.write_bytes(b"\xef\xbb\xbf" + default_policy_text().replace("\n", "\r\n").encode())
    assert load_policy(file) == default_policy()


def test_a_file_saved_as_gbk_is_named_with_its_line(tmp_path: Path) -> None:
    text = default_policy_text()
    file = tmp_path / "policy.toml"
    file.write_bytes(text.encode("gbk"))
    first = next(n for n, line in enumerate(text.splitlines(), 1) if not line.isascii())
    with pytest.raises(PolicyError) as caught:
        load_policy(file)
    assert caught.value.problems == [
        (first, "the file is not UTF-8 text (saved as GBK?): save it as UTF-8")
    ]
    assert f"{file}:{first}: " in str(caught.value)


def test_the_parameters_name_every_check_and_only_the_checks() -> None:
    """A policy's check ids are read against the parameters' table (`check_parameters`,
    which reading a policy loads instead of the checks): it must list each check there is."""
    assert set(PARAMETERS) == set(CHECK_FUNCTIONS)
    assert [c.check_id for c in default_policy().checks] == list(CHECK_FUNCTIONS)


def test_every_whole_number_parameter_names_a_unit_the_ten_year_bound_knows() -> None:
    """A check's number is bounded by ten years in the unit its name ends with (`_days`,
    `_hours`, `_minutes`, `_seconds`): a new parameter named otherwise (a count) would fail
    every policy with a KeyError instead of a bound. Name its unit, or give it a bound."""
    numbers = [(check, key) for check, schema in PARAMETERS.items()
               for key, value in schema.items() if isinstance(value, int)]  # fmt: skip
    assert numbers, "the checks have whole-number parameters"
    for check, key in numbers:
        assert key.rsplit("_", 1)[-1] in TEN_YEARS, f"{check}.{key}"
