"""The verdict memo gives exactly what judging the report again gives: across reports with the
same facts at times on both sides of every limit, and never for a check that used the time in
a way it does not watch."""

from __future__ import annotations

import ast
import contextlib
import datetime as dt
import inspect
import random
import uuid

import pytest

from devposture.collector.intake import facts_key
from devposture.policy import checks, default_policy
from devposture.policy.checks import CheckParameters, State, evaluate, utc
from devposture.policy.verdict_memo import VerdictMemo, _watched
from devposture.v1 import devposture_pb2 as pb
from tests.collector.same_facts import again, key
from tests.e2e.fleet import posture_report, timestamp

# Never reaches the run's database engine: the PostgreSQL leg leaves it out (Makefile).
pytestmark = pytest.mark.engine_free

BASE = dt.datetime(2026, 11, 24, 9, 30, tzinfo=dt.UTC)
US = dt.timedelta(microseconds=1)


def _params() -> tuple[CheckParameters, frozenset[str]]:
    policy = default_policy()
    params = CheckParameters.from_values({c.check_id: c.parameters for c in policy.checks})
    return params, frozenset(c.check_id for c in policy.checks)


def _memo() -> VerdictMemo[tuple[str, str, str]]:
    params, ids = _params()
    return VerdictMemo(params, ids, lambda c, v: (c.check_id, v.state.value, v.reason))


def _judged_again(report: pb.PostureReport) -> list[tuple[str, str, str]]:
    params, ids = _params()
    now = utc(report.collected_at)
    return [(c.check_id, v.state.value, v.reason) for c, v in evaluate(report, now, params, ids)]


def _template() -> pb.PostureReport:
    """The benchmark's report, its antivirus and updates healthy but for their age."""
    report = posture_report("d" * 32, BASE, updates_pending=0)
    report.antivirus.products[0].real_time_protection = True
    return report


def _limits(report: pb.PostureReport) -> list[dt.datetime]:
    """The moments this report's time-judged facts cross their limits."""
    params, _ = _params()
    av = report.antivirus.products[0].signatures_updated_at
    backups = [b.newest_backup_at for b in report.chat_backups.backups]
    return [
        utc(av) + params.signature_max_age,
        utc(report.os_updates.last_checked) + params.updates_check_max_age,
        *(utc(b) + params.backup_max_age for b in backups if b.seconds),
    ]


def test_same_facts_on_both_sides_of_every_limit_are_judged_as_afresh() -> None:
    template = _template()
    moments = [BASE + k * dt.timedelta(hours=7) for k in range(-10, 120)]
    for limit in _limits(template):
        moments += [limit - US, limit, limit + US]
    random.Random(17).shuffle(moments)  # later and earlier times, in no order
    memo = _memo()
    states: dict[str, set[str]] = {}
    for moment in moments * 2:
        report = again(template, moment)
        got = memo.judge(report, key(report), moment)
        assert got == _judged_again(report), moment
        for check_id, state, _ in got:
            states.setdefault(check_id, set()).add(state)
    # The times crossed the limits: the time-judged checks both passed and failed.
    for check_id in ("antivirus", "os-updates", "chat-backup"):
        assert {"PASS", "FAIL"} <= states[check_id], (check_id, states[check_id])
    assert memo.hits > len(moments)


def test_a_kept_pass_is_not_given_once_the_signatures_are_past_their_limit() -> None:
    template = _template()
    params, _ = _params()
    limit = utc(template.antivirus.products[0].signatures_updated_at) + params.signature_max_age
    memo = _memo()

    def antivirus(moment: dt.datetime) -> str:
        report = again(template, moment)
        judged = memo.judge(report, key(report), moment)
        return next(state for check_id, state, _ in judged if check_id == "antivirus")

    assert antivirus(limit - dt.timedelta(days=1)) == "PASS"
    assert antivirus(limit) == "PASS"  # kept: the same side of the limit
    assert antivirus(limit + US) == "FAIL"
    assert antivirus(limit) == "PASS"


def test_other_facts_are_another_key() -> None:
    one = posture_report("d" * 32, BASE)
    same = again(one, BASE + dt.timedelta(days=3))
    other = again(one, BASE)
    other.firewall.profiles[0].enabled = False

    assert key(one) == key(same)
    assert key(one) != key(other)
    memo = _memo()
    for report in (one, other):
        assert memo.judge(report, key(report), BASE) == _judged_again(again(report, BASE))
        assert memo.judge(report, None, BASE) == _judged_again(again(report, BASE))
    assert facts_key(b"\x0a\xff") is None  # a length past the end: not walked, not kept
    assert facts_key(b"\x0a\x05abc") is None


def test_the_key_is_the_report_less_its_id_and_collection_time() -> None:
    plain = pb.PostureReport()
    long_version = again(_template(), BASE)
    long_version.agent_version = "版本" * 32  # 192 bytes: a two-byte length
    for report in (plain, _template(), long_version, pb.PostureReport(device_id="d" * 32)):
        less = pb.PostureReport()
        less.CopyFrom(report)
        less.ClearField("report_id")
        less.ClearField("collected_at")
        assert key(report) == less.SerializeToString(deterministic=True)


def test_any_other_use_of_the_time_is_noticed() -> None:
    limit = dt.timedelta(days=7)
    before = BASE - dt.timedelta(days=3)
    watched, watch = _watched(BASE)
    age = watched - before
    assert isinstance(age, dt.timedelta)  # the type alone: not a use
    assert (age > limit) is False
    assert watch.seen == [(before, ">", limit, False)] and not watch.other
    for use in (
        lambda w: w.year,
        str,
        lambda w: w < BASE,
        lambda w: w + limit,
        lambda w: BASE - w,
        hash,
        lambda w: (w - before).days,
        lambda w: bool(w - before),
        lambda w: w - before == limit,
        lambda w: w - limit,
        lambda w: (w - before) > 3,
    ):
        watched, watch = _watched(BASE)
        with contextlib.suppress(TypeError):  # as a plain datetime raises
            use(watched)
        assert watch.other, use


def test_a_check_uses_the_time_only_as_the_memo_watches() -> None:
    """In checks.py `now` is only subtracted from (`now - t`, then compared with a limit) or
    handed to another function of the module; and no check reads a report's id or collection
    time (the memo's key leaves them out)."""
    tree = ast.parse(inspect.getsource(checks))
    functions = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            assert node.attr not in ("report_id", "collected_at"), node.lineno
        if not (isinstance(node, ast.Name) and node.id == "now"):
            continue
        parent = parents[node]
        subtracted = (
            isinstance(parent, ast.BinOp) and isinstance(parent.op, ast.Sub) and parent.left is node
        )
        handed = isinstance(parent, ast.Call) and node in parent.args and (
            (isinstance(parent.func, ast.Name) and parent.func.id in functions)
            or (isinstance(parent.func, ast.Attribute) and parent.func.attr == "evaluate")
        )  # fmt: skip
        assert subtracted or handed, f"checks.py line {node.lineno} uses now otherwise"
        if subtracted:
            compared = parents[parent]
            assert isinstance(compared, ast.Compare), f"checks.py line {node.lineno}"


def test_an_empty_report_is_judged_as_evaluate_judges_it() -> None:
    report = pb.PostureReport(report_id=str(uuid.uuid4()))
    report.collected_at.CopyFrom(timestamp(BASE))
    memo = _memo()
    got = memo.judge(report, key(report), BASE)
    assert got == _judged_again(report)
    assert {state for _, state, _ in got} == {State.UNKNOWN.value}
