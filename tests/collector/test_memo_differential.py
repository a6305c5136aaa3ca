"""Differential tests of the ingest's two memories against judging and validating afresh.

Why: a verdict told from memory that differs from the check's own (a FAIL kept as PASS), or a
report accepted from memory that the whole validation refuses, is compliance evidence told
wrongly. The memories (policy/verdict_memo.py, validation._within) are keyed by a report's
facts (intake.facts_key) and by what was seen of the time, so these tests send the same facts
back at many times, chosen at, just before and just after every limit the facts and the
policies in play give, in random order, under several policies, and compare every answer
with the one made with no memory at all: state and reason text equal, refusal (or none)
equal.

Reports are generated from the proto's descriptor (every fact, every field, a field added
later included): each field absent or set, repeated fields empty or not, texts from the words
the checks look for, enums known and unknown, times from 0001 to 9999 and at the limits.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import uuid
from collections.abc import Callable, Iterator

import pytest
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devposture.collector import validation
from devposture.collector.intake import facts_key, refusal
from devposture.collector.store.reports import CheckResult
from devposture.collector.validation import FUTURE_TOLERANCE, MAX_REPORT_AGE
from devposture.policy import Policy, default_policy
from devposture.policy import verdict_memo as memo_module
from devposture.policy.checks import (
    CHECKS_BY_ID,
    Check,
    CheckParameters,
    State,
    Verdict,
    evaluate,
    judge,
    utc,
)
from devposture.policy.reasons import encode
from devposture.policy.verdict_memo import VerdictMemo
from devposture.v1 import devposture_pb2 as pb
from tests.collector.report_fields import PATHS, TIMESTAMP, fill
from tests.conftest import LiveCollector
from tests.e2e.fleet import posture_report

T0 = dt.datetime(2026, 11, 24, 9, 30, tzinfo=dt.UTC)
US = dt.timedelta(microseconds=1)
S = dt.timedelta(seconds=1)
DEVICE = "d" * 32

# Texts the checks compare with (firewall backends and families, firewalld's zones' actions,
# versions around the minimums, the live-data source, macOS in a reason), and others.
WORDS = [
    "", "x", "firewalld", "nftables", "iptables", "ip6tables-legacy", "ufw", "IPv4", "IPv6",
    "wlp2s0", "wlp2s0 (IPv6)", "eth0 (IPv4)", "Domain", "Public", "allow", "drop", "accept",
    "4.0.0", "3.9.12.17", "4.1.30", "4.1.30.6004", "4.1", "5", "abc", "live_data",
    "hidden by macOS", "微信备份", "Windows Defender", "mdatp", "clamav",
]  # fmt: skip

# Offsets of a fact's time from T0: at, just before and just after every limit of the
# policies drawn below (their limits are drawn from LIMIT_DAYS), and beyond.
LIMIT_DAYS = [1, 7, 14, 30]
FACT_OFFSETS = sorted(
    {dt.timedelta(0), US, -US, S, -S, dt.timedelta(days=400), -dt.timedelta(days=400)}
    | {sign * dt.timedelta(days=d) + e for d in LIMIT_DAYS for sign in (-1, 1)
       for e in (-US, 0 * US, US)}
)  # fmt: skip
# Times no offset from T0 gives: the first and last a Timestamp holds, the epoch and just
# before it, the earliest validation accepts and just before it.
WILD = [
    dt.datetime(1, 1, 1, tzinfo=dt.UTC),
    dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=dt.UTC),
    dt.datetime(1970, 1, 1, tzinfo=dt.UTC),
    dt.datetime(1970, 1, 1, tzinfo=dt.UTC) - US,
    dt.datetime(1990, 1, 1, tzinfo=dt.UTC),
    dt.datetime(1990, 1, 1, tzinfo=dt.UTC) - S,
    dt.datetime(2016, 12, 31, 23, 59, 59, tzinfo=dt.UTC),  # the last leap second's minute
    dt.datetime(2028, 2, 29, 12, tzinfo=dt.UTC),
]

SETTINGS = settings(
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _stamp(moment: dt.datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(moment)
    return ts


@st.composite
def _moment(draw: st.DrawFn) -> dt.datetime:
    if draw(st.integers(0, 5)) == 0:
        return draw(st.sampled_from(WILD))
    return T0 + draw(st.sampled_from(FACT_OFFSETS))


def _scalar(draw: st.DrawFn, fd: FieldDescriptor) -> object:
    if fd.type == FieldDescriptor.TYPE_STRING:
        return draw(st.sampled_from(WORDS))
    if fd.type == FieldDescriptor.TYPE_BYTES:
        return draw(st.sampled_from([b"", b"x"]))
    if fd.type == FieldDescriptor.TYPE_ENUM:
        assert fd.enum_type is not None
        known = sorted(fd.enum_type.values_by_number)
        return draw(st.sampled_from([*known, known[-1] + 1]))  # an unknown number too
    if fd.type == FieldDescriptor.TYPE_BOOL:
        return draw(st.booleans())
    if fd.cpp_type in (FieldDescriptor.CPPTYPE_FLOAT, FieldDescriptor.CPPTYPE_DOUBLE):
        return draw(st.sampled_from([0.0, 1.5, -0.0]))
    if fd.cpp_type in (FieldDescriptor.CPPTYPE_UINT32, FieldDescriptor.CPPTYPE_UINT64):
        return draw(st.sampled_from([0, 1, 2, 7, 2**32 - 1]))
    return draw(st.sampled_from([0, 1, 2, 7, -1]))


def _fill_random(draw: st.DrawFn, message: Message, depth: int = 0) -> None:
    """Each field of `message` absent or set, recursively; repeated ones with 0 to 2 items."""
    descriptor: Descriptor = message.DESCRIPTOR  # type: ignore[assignment]
    for fd in descriptor.fields:
        if depth == 0 and fd.number in (1, 4):  # the report's id and time: set per arrival
            continue
        if not draw(st.booleans()):
            continue
        count = draw(st.integers(0, 2)) if fd.is_repeated else 1
        for _ in range(count):
            if fd.type == FieldDescriptor.TYPE_MESSAGE:
                assert fd.message_type is not None
                child = (
                    getattr(message, fd.name).add() if fd.is_repeated else getattr(message, fd.name)
                )
                if fd.message_type.full_name == TIMESTAMP:
                    child.CopyFrom(_stamp(draw(_moment())))
                elif fd.message_type.GetOptions().map_entry:
                    continue
                else:
                    child.SetInParent()
                    _fill_random(draw, child, depth + 1)
            elif fd.is_repeated:
                getattr(message, fd.name).append(_scalar(draw, fd))
            else:
                setattr(message, fd.name, _scalar(draw, fd))


@st.composite
def _facts(draw: st.DrawFn) -> pb.PostureReport:
    """A report's facts (no id, no collection time), any OS family, any fact absent."""
    report = pb.PostureReport()
    _fill_random(draw, report)
    report.device_id = DEVICE
    return report


@st.composite
def _params(draw: st.DrawFn) -> CheckParameters:
    days = st.sampled_from(LIMIT_DAYS)
    return CheckParameters(
        signature_max_age=dt.timedelta(days=draw(days)),
        updates_check_max_age=dt.timedelta(days=draw(days)),
        backup_max_age=dt.timedelta(days=draw(days)),
        vpn_grace=dt.timedelta(seconds=draw(st.sampled_from([0, 1, 120, 600]))),
        min_version_wechat=draw(st.sampled_from(["4.0.0", "3.9", "5"])),
        min_version_wecom=draw(st.sampled_from(["4.1.30", "4.1.30.6004", "1"])),
    )


def _times(message: Message) -> Iterator[dt.datetime]:
    """Every Timestamp set in `message`, as an instant (those a datetime cannot hold left out)."""
    for fd, value in message.ListFields():
        items = value if fd.is_repeated else [value]
        kind = fd.message_type
        if kind is None:
            continue
        for one in items:
            if kind.full_name == TIMESTAMP:
                with contextlib.suppress(ValueError):  # a time no datetime holds
                    yield utc(one)
            elif not kind.GetOptions().map_entry:
                yield from _times(one)


def _crossings(report: pb.PostureReport, policies: list[CheckParameters]) -> list[dt.datetime]:
    """Collection times at, just before and just after each fact time plus each limit."""
    limits = {dt.timedelta(0)}
    for p in policies:
        limits |= {p.signature_max_age, p.updates_check_max_age, p.backup_max_age}
    out = []
    for t in _times(report):
        for limit in limits:
            for e in (-US, 0 * US, US):
                with contextlib.suppress(OverflowError):  # past year 9999
                    out.append(t + limit + e)
    return out


def _arrival(
    facts: pb.PostureReport, collected: dt.datetime, report_id: str | None = None
) -> pb.PostureReport:
    report = pb.PostureReport()
    report.CopyFrom(facts)
    report.report_id = report_id or str(uuid.uuid4())
    report.collected_at.CopyFrom(_stamp(collected))
    return report


def _fresh(
    report: pb.PostureReport, params: CheckParameters, ids: frozenset[str]
) -> list[CheckResult]:
    now = utc(report.collected_at)
    return [
        CheckResult(c.check_id, v.state.value, v.reason)
        for c, v in evaluate(report, now, params, ids)
    ]


def _memo(params: CheckParameters, ids: frozenset[str]) -> VerdictMemo[CheckResult]:
    """As the collector makes one per policy (service._Judging.memo)."""
    return VerdictMemo(params, ids, lambda c, v: CheckResult(c.check_id, v.state.value, v.reason))


ALL_CHECKS = frozenset(CHECKS_BY_ID)


@pytest.mark.engine_free  # the memo alone: no database
@settings(SETTINGS, max_examples=200)  # about 6 s of CPU under load
@given(
    templates=st.lists(_facts(), min_size=1, max_size=3),
    policies=st.lists(_params(), min_size=1, max_size=3),
    data=st.data(),
)
def test_verdicts_from_memory_equal_verdicts_judged_afresh(
    templates: list[pb.PostureReport], policies: list[CheckParameters], data: st.DataObject
) -> None:
    """The same facts at times on both sides of every limit, in random order, under several
    policies (a memo each, as the collector keeps one per policy in force) and some checks
    left out of one: each memo's verdicts are those of `evaluate` with no memo."""
    ids = [ALL_CHECKS, frozenset(data.draw(st.sets(st.sampled_from(sorted(ALL_CHECKS)))))]
    memos = {(i, j): _memo(p, ids[j]) for i, p in enumerate(policies) for j in range(2)}
    times: list[dt.datetime] = []
    for template in templates:
        times += _crossings(template, policies)
    times += [T0 + k * dt.timedelta(hours=13) for k in range(-80, 80, 7)] + WILD
    for _ in range(data.draw(st.integers(20, 60), label="arrivals")):
        which = data.draw(st.sampled_from(sorted(memos)))
        template = data.draw(st.sampled_from(templates))
        moment = data.draw(st.sampled_from(times))
        report = _arrival(template, moment)
        key = facts_key(report.SerializeToString(deterministic=True))
        got = memos[which].judge(report, key, utc(report.collected_at))
        want = _fresh(report, policies[which[0]], ids[which[1]])
        assert got == want, (which, moment)


# --- validation ------------------------------------------------------------------------------

# Every fact time (the report's own collection time is set per arrival).
TIMESTAMP_PATHS = [
    p for p in PATHS
    if p[-1].message_type is not None and p[-1].message_type.full_name == TIMESTAMP and len(p) > 1
    and not p[-1].is_repeated
]  # fmt: skip
STRING_PATHS = [
    p
    for p in PATHS
    if p[-1].type == FieldDescriptor.TYPE_STRING and len(p) > 1 and not p[-1].is_repeated
]
ENUM_PATHS = [p for p in PATHS if p[-1].type == FieldDescriptor.TYPE_ENUM and not p[-1].is_repeated]


def _at(report: Message, path: tuple[FieldDescriptor, ...]) -> Message:
    message = report
    for fd in path:
        value = getattr(message, fd.name)
        message = value[0] if fd.is_repeated else value
    return message


@st.composite
def _validation_facts(draw: st.DrawFn) -> pb.PostureReport:
    """Every field set (a valid report's facts), some fact times moved around the future and
    past limits of the arrivals below, and now and then one fact out of bounds for good."""
    report = pb.PostureReport()
    fill(report, int(T0.timestamp()))
    report.ClearField("report_id")
    report.ClearField("collected_at")
    report.device_id = DEVICE
    for path in draw(st.lists(st.sampled_from(TIMESTAMP_PATHS), max_size=4)):
        ts = getattr(_at(report, path[:-1]), path[-1].name)
        shift = draw(st.sampled_from([-1, 0, 1, 3600, 86_400, 2 * 86_400, -86_400 * 500]))
        ts.seconds = int(T0.timestamp()) + shift
        ts.nanos = draw(st.sampled_from([0, 1, 999_999_999]))
    spoil = draw(st.integers(0, 5))
    if spoil == 0:
        path = draw(st.sampled_from(STRING_PATHS))
        setattr(_at(report, path[:-1]), path[-1].name, "x" * 5000)
    elif spoil == 1:
        path = draw(st.sampled_from(ENUM_PATHS))
        setattr(_at(report, path[:-1]), path[-1].name, 999)
    elif spoil == 2:
        path = draw(st.sampled_from(TIMESTAMP_PATHS))
        getattr(_at(report, path[:-1]), path[-1].name).nanos = draw(
            st.sampled_from([-1, 1_000_000_000])
        )
    return report


def _fact_seconds(report: pb.PostureReport) -> list[int]:
    out = []
    for path in TIMESTAMP_PATHS:
        holder = _at(report, path[:-1])
        if holder.HasField(path[-1].name):
            out.append(getattr(holder, path[-1].name).seconds)
    return out


def _outcome(
    report: pb.PostureReport, received: dt.datetime, skew: dt.timedelta | None, key: bytes | None
) -> tuple[str, str] | None:
    refused = refusal(report, DEVICE, received, skew, key)
    return None if refused is None else (refused.code.name, refused.message)


@pytest.mark.engine_free  # the memo alone: no database
@settings(SETTINGS, max_examples=150)  # about 6 s of CPU under load
@given(
    templates=st.lists(_validation_facts(), min_size=1, max_size=3),
    data=st.data(),
)
def test_validation_from_memory_equals_the_whole_check(
    templates: list[pb.PostureReport], data: st.DataObject
) -> None:
    """The same facts arriving at times that put each fact time exactly at, a second before
    and after the future limit (on the agent's clock: received time less its skew), with
    collection times at and around their own bounds, odd nanos and bad ids: every outcome
    through the memory is the whole check's (accepted, or the same refusal)."""
    validation._found_within.clear()
    arrivals: list[dt.datetime] = [T0 + k * dt.timedelta(hours=5) for k in range(-30, 30)]
    for template in templates:
        for seconds in _fact_seconds(template):
            at = dt.datetime.fromtimestamp(seconds, dt.UTC) - FUTURE_TOLERANCE
            arrivals += [at + e for e in (-S, -dt.timedelta(milliseconds=500), 0 * S, US, S)]
    skews = [None, dt.timedelta(0), dt.timedelta(hours=3), -dt.timedelta(hours=3), -S]
    for _ in range(data.draw(st.integers(20, 60), label="arrivals")):
        template = data.draw(st.sampled_from(templates))
        received = data.draw(st.sampled_from(arrivals))
        skew = data.draw(st.sampled_from(skews))
        agent = received - (skew or dt.timedelta(0))
        collected = agent + data.draw(st.sampled_from([
            -MAX_REPORT_AGE - S, -MAX_REPORT_AGE, -dt.timedelta(minutes=5), 0 * S,
            FUTURE_TOLERANCE, FUTURE_TOLERANCE + S, dt.timedelta(days=3),
        ]))  # fmt: skip
        report = _arrival(template, collected.replace(microsecond=0))
        odd = data.draw(st.integers(0, 9))
        if odd == 0:
            report.collected_at.nanos = 1_000_000_000
        elif odd == 1:
            report.report_id = report.report_id.upper()
        elif odd == 2:
            report.collected_at.seconds = data.draw(st.sampled_from([0, -1, 631_152_000 - 1]))
        key = facts_key(report.SerializeToString(deterministic=True))
        assert key is not None
        got = _outcome(report, received, skew, key)
        assert got == _outcome(report, received, skew, None), (received, skew, collected)


# --- the collector's own path: key, validation, judging, the policy swapped ---------------------


def _policy_with(policy: Policy, days: dict[str, tuple[str, int]]) -> Policy:
    """`policy` with some checks' parameters replaced: {check id: (parameter, value)}."""
    checks = tuple(
        dataclasses.replace(c, parameters={**c.parameters, **dict([days[c.check_id]])})
        if c.check_id in days else c
        for c in policy.checks
    )  # fmt: skip
    return dataclasses.replace(policy, checks=checks)


def test_the_collectors_intake_judges_as_afresh_across_a_policy_swap(
    live_collector: LiveCollector,
) -> None:
    """Through the running collector's own intake (serialized, keyed, validated and judged
    from memory as on arrival): the same facts under the default policy, then a policy whose
    limits are shorter, then the default again, at times between the two limits. Each answer
    is what the policy then in force gives afresh; a verdict kept under one policy is never
    given under the other."""
    service = live_collector.service
    base = default_policy()
    short = _policy_with(base, {
        "antivirus": ("signature_max_age_days", 1), "os-updates": ("check_max_age_days", 2),
        "chat-backup": ("backup_max_age_days", 3),
    })  # fmt: skip
    facts = posture_report(DEVICE, T0, updates_pending=0)  # the benchmark's report
    facts.antivirus.products[0].real_time_protection = True
    facts.ClearField("report_id")
    facts.ClearField("collected_at")
    days = (0, 1, 2, 3, 5, 8, 15, 31, 40)
    moments = [T0 + dt.timedelta(days=d) + e for d in days for e in (-US, 0 * US, US)]
    states: dict[str, set[str]] = {}
    try:
        for policy in (base, short, base, short):
            service.use_policy(policy)
            params = CheckParameters.from_values({c.check_id: c.parameters for c in policy.checks})
            ids = frozenset(c.check_id for c in policy.checks)
            for moment in moments + moments[::-1]:
                report = _arrival(facts, moment)
                received = moment + dt.timedelta(minutes=1)
                intake = service._intake(report, DEVICE, received, None)
                assert _outcome(report, received, None, None) is None
                assert isinstance(intake, tuple), intake
                _, results = intake
                assert results == _fresh(report, params, ids), (policy is base, moment)
                for r in results:
                    states.setdefault(r.check_id, set()).add(r.state)
    finally:
        service.use_policy(base)
    for check_id in ("antivirus", "os-updates", "chat-backup"):  # the limits were crossed
        assert {"PASS", "FAIL"} <= states[check_id], (check_id, states[check_id])


# --- a known way a check may read the time that the memo's watch gets wrong -----------------


def _antivirus_by_deadline(
    report: pb.PostureReport, now: dt.datetime, p: CheckParameters
) -> Verdict:
    """The signature age judged as `updated < now - limit` instead of `now - updated > limit`:
    the same verdict, and a use of `now` the guard in test_verdict_memo accepts (`now` on the
    left of a subtraction whose result is compared)."""
    product = report.antivirus.products[0]
    updated = utc(product.signatures_updated_at)
    if updated < now - p.signature_max_age:
        return Verdict(State.FAIL, encode("av.signatures_old", product=product.name,
                                          date=product.signatures_updated_at.seconds,
                                          days=p.signature_max_age.days))  # fmt: skip
    return Verdict(State.PASS, encode("av.ok", product=product.name))


@pytest.mark.engine_free  # the memo alone: no database
def test_a_check_comparing_a_fact_time_with_now_less_a_limit_is_judged_as_afresh(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    variant = Check("antivirus", "6.3.1", "安装杀毒软件", "Antivirus", _antivirus_by_deadline)
    monkeypatch.setattr(memo_module, "CHECKS", (variant,))
    params = CheckParameters()
    memo = _memo(params, frozenset({"antivirus"}))
    facts = pb.PostureReport(device_id=DEVICE)
    product = facts.antivirus.products.add(name="Windows Defender")
    product.signatures_updated_at.CopyFrom(_stamp(T0))
    for moment in (T0 + dt.timedelta(days=1), T0 + dt.timedelta(days=9)):
        report = _arrival(facts, moment)
        afresh = judge(variant, report, moment, params)
        assert afresh.state in (State.PASS, State.FAIL)
        (got,) = memo.judge(report, facts_key(report.SerializeToString(deterministic=True)), moment)
        assert (got.state, got.reason) == (afresh.state.value, afresh.reason)


@pytest.mark.engine_free  # the memo alone: no database
def test_uses_of_the_time_the_watch_cannot_see_are_refused_by_the_guard_not_the_memo() -> None:
    """Calls that read a datetime's value in C without any method of it (an unbound method,
    `datetime.combine`) are not noticed by the watch: the memo would keep such a verdict for
    every time. What stands in the way is test_verdict_memo's reading of checks.py, which
    refuses `now` handed to any function not of checks.py. Pinned here, so that a change to
    either is seen."""
    limit = dt.timedelta(days=7)
    unseen: list[Callable[[dt.datetime], object]] = [
        dt.datetime.timestamp,
        lambda w: dt.datetime.combine(w, dt.time()),
        dt.date.weekday,
        lambda w: dt.datetime.__sub__(w, T0) > limit,
    ]
    for use in unseen:
        watched, watch = memo_module._watched(T0)
        use(watched)
        assert not watch.other and not watch.seen
