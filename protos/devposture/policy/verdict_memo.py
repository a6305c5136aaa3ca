"""Verdicts kept by the facts they were judged on, and by what their check saw of the time.

Why: a device's reports repeat their facts (a backlog of 64 reports of one device, a steady
device hour after hour), and the collector judged each one again: 40 us a report, a fifth of
a batched report's CPU in the serving process.

What a check reads of a report is in the report's bytes less its id (field 1) and its
collection time (field 4), which no check reads (a test reads checks.py for them): the memo's
key. The time a check is given (`now`, the report's collection time) it may only subtract a
fact's time from and compare the age with a limit (`now - t > max_age`; a test reads
checks.py for every use of `now`). The check is run with a `now` that records each such
comparison and its outcome, and notes any other use. Its verdict is then kept with those
comparisons, and given again for a report with the same key whose time gives every one of
them the same outcome: the check, which depends on nothing else, would take the same path and
say the same. A verdict whose check used the time any other way is not kept. So an antivirus
signature one day from its limit is kept as PASS until a report's time is past the limit,
then judged again (FAIL), whatever the facts.

A memo belongs to one policy's parameters and checks (the collector makes one per policy in
force). Bounded: when full it is emptied and filled again as reports come.
"""

from __future__ import annotations

import datetime as dt
import operator
from collections.abc import Callable, Collection
from typing import Generic, TypeVar

from devposture.policy.checks import CHECKS, Check, CheckParameters, Verdict, judge
from devposture.v1 import devposture_pb2 as pb

T = TypeVar("T")

# Reports' facts kept (about 2 KB each).
MOST = 2048


_COMPARED: dict[str, Callable[[dt.timedelta, dt.timedelta], bool]] = {
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
}  # fmt: skip

# An age compared with a limit: (the fact's time, the comparison, the limit, its outcome).
Seen = tuple[dt.datetime, str, dt.timedelta, bool]


class _Watch:
    """What one check saw of the time: each age compared, and whether it used it otherwise."""

    __slots__ = ("other", "seen")

    def __init__(self) -> None:
        self.seen: list[Seen] = []
        self.other = False


def _watch_of(value: object) -> _Watch | None:
    """The watch of the time a check was given, or None for a value made from it (`now -
    limit`, `now.replace(...)`: datetime's arithmetic makes its subclass's instances). That
    value behaves as a plain one: its making was already noted as another use of the time."""
    try:
        watch: _Watch = object.__getattribute__(value, "_watch")
    except AttributeError:
        return None
    return watch


def _noted(base: type, name: str) -> Callable[..., object]:
    """`base`'s method `name`, noting that it was used (any use but the one watched)."""
    plain: Callable[..., object] = getattr(base, name)

    def method(self: object, *args: object) -> object:
        watch = _watch_of(self)
        if watch is not None:
            watch.other = True
        return plain(self, *args)

    method.__name__ = name
    return method


# Every operation of a datetime and a timedelta that can read their value (`__sub__` of the
# time and the comparisons of an age are watched instead).
_DATETIME_USES = (
    "__add__", "__radd__", "__rsub__", "__lt__", "__le__", "__gt__", "__ge__", "__eq__",
    "__ne__", "__hash__", "__str__", "__repr__", "__format__", "__getattribute__",
    "__reduce__", "__reduce_ex__",
)  # fmt: skip
_TIMEDELTA_USES = (
    "__add__", "__radd__", "__sub__", "__rsub__", "__mul__", "__rmul__", "__truediv__",
    "__rtruediv__", "__floordiv__", "__rfloordiv__", "__mod__", "__rmod__", "__divmod__",
    "__rdivmod__", "__neg__", "__pos__", "__abs__", "__bool__", "__eq__", "__ne__", "__hash__",
    "__str__", "__repr__", "__format__", "__getattribute__", "__reduce__", "__reduce_ex__",
)  # fmt: skip


class _Age(dt.timedelta):
    """`now - t`, whose comparisons with a limit are recorded in the watch."""

    def __lt__(self, limit: object) -> bool:
        return _compared(self, "<", limit)

    def __le__(self, limit: object) -> bool:
        return _compared(self, "<=", limit)

    def __gt__(self, limit: object) -> bool:
        return _compared(self, ">", limit)

    def __ge__(self, limit: object) -> bool:
        return _compared(self, ">=", limit)


def _compared(age: _Age, op: str, limit: object) -> bool:
    """`age op limit`, recorded when the limit is a plain timedelta (a policy's)."""
    watch = _watch_of(age)
    if watch is None:  # an age made from a watched one (its making was noted)
        return bool(_COMPARED[op](dt.timedelta(age.days, age.seconds, age.microseconds), limit))  # type: ignore[arg-type]
    plain = object.__getattribute__(age, "_plain")
    if type(limit) is not dt.timedelta:
        watch.other = True
        return bool(_COMPARED[op](plain, limit))  # type: ignore[arg-type] # raises as plain
    outcome = _COMPARED[op](plain, limit)
    watch.seen.append((object.__getattribute__(age, "_since"), op, limit, outcome))
    return outcome


class _Now(dt.datetime):
    """The time a check is given, whose every use is noted in the watch."""

    def __sub__(self, other: object) -> object:  # type: ignore[override]
        watch = _watch_of(self)
        if watch is None or type(other) is not dt.datetime:
            if watch is not None:
                watch.other = True
            return dt.datetime.__sub__(self, other)  # type: ignore[operator]
        plain = dt.datetime.__sub__(self, other)
        age = _Age(plain.days, plain.seconds, plain.microseconds)
        object.__setattr__(age, "_watch", watch)
        object.__setattr__(age, "_since", other)
        object.__setattr__(age, "_plain", plain)
        return age


for _name in _DATETIME_USES:
    setattr(_Now, _name, _noted(dt.datetime, _name))
for _name in _TIMEDELTA_USES:
    setattr(_Age, _name, _noted(dt.timedelta, _name))


def _watched(now: dt.datetime) -> tuple[_Now, _Watch]:
    watch = _Watch()
    watched = _Now(
        now.year, now.month, now.day, now.hour, now.minute, now.second, now.microsecond,
        now.tzinfo, fold=now.fold,
    )  # fmt: skip
    object.__setattr__(watched, "_watch", watch)
    return watched, watch


def _holds(seen: tuple[Seen, ...], now: dt.datetime) -> bool:
    """Whether every comparison `seen` has the same outcome at `now`."""
    return all(_COMPARED[op](now - since, limit) is outcome for since, op, limit, outcome in seen)


class VerdictMemo(Generic[T]):
    """Judges reports on the checks of `check_ids` (in CHECKS' order, as `evaluate`), each
    verdict made into a T by `made` (the collector's CheckResult); a verdict kept is the T
    made for the first report that gave it (the same object)."""

    def __init__(
        self, params: CheckParameters, check_ids: Collection[str],
        made: Callable[[Check, Verdict], T], most: int = MOST,
    ) -> None:  # fmt: skip
        self._params = params
        self._checks = [c for c in CHECKS if c.check_id in check_ids]
        self._made = made
        self._most = most
        # key -> check id -> (the comparisons its verdict holds under, the verdict)
        self._kept: dict[bytes, dict[str, tuple[tuple[Seen, ...], T]]] = {}
        self.hits = 0

    def judge(self, report: pb.PostureReport, key: bytes | None, now: dt.datetime) -> list[T]:
        """The verdicts of `report` judged at `now`. `key`: the report's bytes less its id and
        collection time (the collector's `intake.facts_key`), or None: judged, not kept."""
        if key is None:
            return [self._made(c, judge(c, report, now, self._params)) for c in self._checks]
        kept = self._kept.get(key)
        if kept is None:
            if len(self._kept) >= self._most:
                self._kept.clear()
            kept = self._kept[key] = {}
        out: list[T] = []
        for check in self._checks:
            found = kept.get(check.check_id)
            if found is not None and (not found[0] or _holds(found[0], now)):
                self.hits += 1
                out.append(found[1])
                continue
            watched, watch = _watched(now)
            made = self._made(check, judge(check, report, watched, self._params))
            if watch.other:
                kept.pop(check.check_id, None)
            else:
                kept[check.check_id] = (tuple(watch.seen), made)
            out.append(made)
        return out
