"""The policy as data: which clauses the collector checks, with which thresholds, and what an
employee should do about a failure, in Chinese and English.

The bundled `default.toml` covers clauses 6.3.1, 6.3.2 and 6.2.1 of the WeChat management
measures. A company edits a copy to change a threshold; `load_policy` refuses a file with any
mistake, and every message names the line, so `devposture-collector policy check FILE` can
say exactly what to fix. Unknown keys are mistakes too: a misspelt threshold must not be
silently ignored.
"""

from __future__ import annotations

import functools
import tomllib
from dataclasses import dataclass
from pathlib import Path

from devposture.policy.check_parameters import PARAMETERS, ParameterValue, version_numbers
from devposture.policy.cli_messages import Said, Worded, enumeration, lines, said
from devposture.policy.os_errors import os_error
from devposture.policy.time_zone import DEFAULT_TIME_ZONE, UnknownZone, zone_named
from devposture.policy.toml_lines import Path_, line_of

SEVERITIES = ("low", "medium", "high", "critical")
_TOP_KEYS = {
    "stale_after_hours", "report_interval_minutes", "outbox_max_mb", "retention_days",
    "time_zone", "networks", "backups", "clauses", "checks",
}  # fmt: skip
_CLAUSE_KEYS = {"id", "title_zh", "title_en", "text_zh", "text_en"}
_CHECK_TEXTS = ("title_zh", "title_en", "remediation_zh", "remediation_en")
_CHECK_KEYS = {"id", "clause", "severity", "grace_hours", "parameters", *_CHECK_TEXTS}
_NETWORK_KEYS = {"trusted", "public_patterns"}


@dataclass(frozen=True)
class Clause:
    clause_id: str
    title_zh: str
    title_en: str
    text_zh: str
    text_en: str


@dataclass(frozen=True)
class CheckSpec:
    check_id: str
    clause: str
    severity: str
    grace_hours: int
    title_zh: str
    title_en: str
    remediation_zh: str
    remediation_en: str
    parameters: dict[str, ParameterValue]


DEFAULT_OUTBOX_MAX_MB = 32
MAX_OUTBOX_MAX_MB = 1024
# How long the collector keeps report bodies (the facts, Wi-Fi sessions among them): PIPL's
# minimum necessary. A year and a month by default, so a year's audit still has them. At
# least 7 days: a body is what a device's page and a re-judging read while it is current.
DEFAULT_RETENTION_DAYS = 400
MIN_RETENTION_DAYS = 7
# The most a whole number may be, per unit: ten years. A bigger one is a typo, and the
# collector cannot use it: a grace of 10**18 hours overflows a date, a report interval past
# 71 million minutes overflows the agents' configuration, and the policy was still published.
TEN_YEARS = {"days": 3650, "hours": 87_600, "minutes": 5_256_000, "seconds": 315_360_000}
# A Wi-Fi or folder list goes to every agent in each acknowledgement, which gRPC caps at
# 4 MB: 300,000 public names made every acknowledgement too big, so no report was accepted.
MAX_NAMES = 1000
MAX_NAME_CHARACTERS = 256


@dataclass(frozen=True)
class Policy:
    stale_after_hours: int
    report_interval_minutes: int
    trusted_networks: tuple[str, ...]
    public_network_patterns: tuple[str, ...]
    backup_folders: tuple[str, ...]
    clauses: tuple[Clause, ...]
    checks: tuple[CheckSpec, ...]
    # Most the agent's outbox holds while the collector is out of reach (optional key).
    outbox_max_mb: int = DEFAULT_OUTBOX_MAX_MB
    # Days report bodies are kept (optional key); older ones are pruned (store/retention.py).
    retention_days: int = DEFAULT_RETENTION_DAYS
    # The company's time zone (optional key): every time shown to a person, and every date a
    # person types, is in it (collector/company_time.py). Storage stays UTC.
    time_zone: str = DEFAULT_TIME_ZONE

    def clause(self, clause_id: str) -> Clause:
        return next(c for c in self.clauses if c.clause_id == clause_id)

    def check(self, check_id: str) -> CheckSpec | None:
        return self._checks_by_id.get(check_id)

    @functools.cached_property
    def _checks_by_id(self) -> dict[str, CheckSpec]:
        """The checks by id, made once per policy: every report's acknowledgement asks for
        the grace period of each failing check, on the collector's event loop."""
        by_id: dict[str, CheckSpec] = {}
        for spec in self.checks:
            by_id.setdefault(spec.check_id, spec)  # the first of an id, as a search finds
        return by_id


class PolicyError(Worded):
    """The policy file has mistakes; `problems` lists each as (line, its English). Worded:
    each problem on its line, in the reader's language where a person reads it (`policy
    check`, a command refused for it); the English in logs."""

    def __init__(self, source: str, problems: list[tuple[int | None, Said]]) -> None:
        self.source = source
        self.problems = [(line, str(message)) for line, message in problems]
        found = [
            said("{path}:{line}: {problem}", path=source, line=line, problem=message) if line
            else said("{path}: {problem}", path=source, problem=message)
            for line, message in problems
        ]  # fmt: skip
        super().__init__(lines(*found))


_MISSING = said("is missing")
_TABLE = said("must be a table")


class _Checker:
    """Collects every problem in one pass, so a person fixes the file in one go."""

    def __init__(self, source_text: str) -> None:
        self.source_text = source_text
        self.problems: list[tuple[int | None, Said]] = []

    def problem(self, path: Path_, message: Said) -> None:
        where = ".".join(str(p) if isinstance(p, str) else f"[{p}]" for p in path)
        where = where.replace(".[", "[")
        self.problems.append((line_of(self.source_text, path),
                              said("{key}: {problem}", key=where, problem=message)))

    def unknown_keys(self, table: dict[str, object], allowed: set[str], path: Path_) -> None:
        for key in sorted(set(table) - allowed):
            self.problem((*path, key), said("unknown key (expected one of: {keys})",
                                            keys=enumeration(sorted(allowed))))

    def text(self, table: dict[str, object], key: str, path: Path_) -> str:
        value = table.get(key)
        if key not in table:
            self.problem((*path, key), _MISSING)
            return ""
        if not isinstance(value, str) or not value.strip():
            self.problem((*path, key), said("must be a non-empty text"))
            return ""
        return value

    def whole(self, table: dict[str, object], key: str, path: Path_, minimum: int,
              maximum: int | None = None) -> int:
        value = table.get(key)
        if key not in table:
            self.problem((*path, key), _MISSING)
            return minimum
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            self.problem((*path, key), said(
                "must be a whole number of at least {minimum}, not {value}",
                minimum=minimum, value=repr(value),
            ))  # fmt: skip
            return minimum
        if maximum is not None and value > maximum:
            self.problem((*path, key), said("must be at most {maximum}, not {value}",
                                            maximum=maximum, value=value))
            return maximum
        return value

    def version(self, table: dict[str, object], key: str, path: Path_, example: str) -> str:
        """A dotted version number ("4.0.0"), for a parameter whose default is one."""
        value = table.get(key)
        if not isinstance(value, str) or version_numbers(value) is None:
            self.problem((*path, key), said(
                'must be a dotted version number in quotes, such as "{example}", not {value}',
                example=example, value=repr(value),
            ))  # fmt: skip
            return example
        return value.strip()

    def names(self, table: dict[str, object], key: str, path: Path_) -> tuple[str, ...]:
        value = table.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            self.problem((*path, key), said("must be a list of texts"))
            return ()
        if len(value) > MAX_NAMES or any(len(v) > MAX_NAME_CHARACTERS for v in value):
            self.problem((*path, key), said(
                "must list at most {maximum} names of at most {length} characters each",
                maximum=MAX_NAMES, length=MAX_NAME_CHARACTERS,
            ))  # fmt: skip
            return ()
        return tuple(value)

    def table(self, item: object, path: Path_) -> dict[str, object] | None:
        """An entry of [[clauses]] or [[checks]]: a table, or a problem (`clauses = [1]`
        stopped the checker with a TypeError, and the running collector logged only that)."""
        if isinstance(item, dict):
            return item
        self.problem(path, _TABLE)
        return None


def _clauses(c: _Checker, raw: object) -> list[Clause]:
    if not isinstance(raw, list) or not raw:
        c.problem(("clauses",), said("at least one [[clauses]] table is needed"))
        return []
    clauses = []
    for n, entry in enumerate(raw):
        path: Path_ = ("clauses", n)
        item = c.table(entry, path)
        if item is None:
            continue
        c.unknown_keys(item, _CLAUSE_KEYS, path)
        clauses.append(
            Clause(
                *(
                    c.text(item, k, path)
                    for k in ("id", "title_zh", "title_en", "text_zh", "text_en")
                )
            )
        )
    return clauses


def _checks(c: _Checker, raw: object, clause_ids: set[str]) -> list[CheckSpec]:
    if not isinstance(raw, list) or not raw:
        c.problem(("checks",), said("at least one [[checks]] table is needed"))
        return []
    checks: list[CheckSpec] = []
    for n, entry in enumerate(raw):
        path: Path_ = ("checks", n)
        item = c.table(entry, path)
        if item is None:
            continue
        c.unknown_keys(item, _CHECK_KEYS, path)
        check_id = c.text(item, "id", path)
        if check_id and check_id not in PARAMETERS:
            c.problem((*path, "id"), said("no check named {name} (known: {known})",
                                          name=repr(check_id),
                                          known=enumeration(sorted(PARAMETERS))))
        if check_id in {s.check_id for s in checks}:
            c.problem((*path, "id"), said("check {name} is listed twice", name=repr(check_id)))
        clause = c.text(item, "clause", path)
        if clause and clause not in clause_ids:
            c.problem((*path, "clause"),
                      said("no [[clauses]] entry has id {clause}", clause=repr(clause)))
        severity = c.text(item, "severity", path)
        if severity and severity not in SEVERITIES:
            c.problem((*path, "severity"), said("must be one of {choices}, not {value}",
                                                choices=enumeration(SEVERITIES),
                                                value=repr(severity)))
        grace = c.whole(item, "grace_hours", path, 0, TEN_YEARS["hours"])
        title_zh, title_en, remediation_zh, remediation_en = (
            c.text(item, key, path) for key in _CHECK_TEXTS
        )
        parameters = _parameters(c, item.get("parameters", {}), check_id, (*path, "parameters"))
        checks.append(
            CheckSpec(
                check_id,
                clause,
                severity,
                grace,
                title_zh,
                title_en,
                remediation_zh,
                remediation_en,
                parameters,
            )
        )
    return checks


def _parameters(c: _Checker, raw: object, check_id: str, path: Path_) -> dict[str, ParameterValue]:
    """The check's parameters, each of the type its default in PARAMETERS has: a whole number,
    or a text holding a dotted version number."""
    schema = PARAMETERS.get(check_id, {})
    if not isinstance(raw, dict):
        c.problem(path, _TABLE)
        return dict(schema)
    c.unknown_keys(raw, set(schema), path)
    values = dict(schema)
    for key, default in schema.items():
        if key not in raw:
            example = f'"{default}"' if isinstance(default, str) else str(default)
            c.problem((*path, key), said(
                "is missing (the check needs it; for example {example})", example=example
            ))
        elif isinstance(default, str):
            values[key] = c.version(raw, key, path, default)
        else:
            values[key] = c.whole(raw, key, path, 0, TEN_YEARS[key.rsplit("_", 1)[-1]])
    return values


def parse_policy(text: str, source: str = "policy") -> Policy:
    """The policy in `text`, or PolicyError listing every mistake with its line. A byte
    order mark (Notepad's "UTF-8 with BOM") is no mistake: TOML read it as one at line 1."""
    text = text.removeprefix("\ufeff")
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = getattr(exc, "lineno", None)
        message = getattr(exc, "msg", str(exc))
        raise PolicyError(source, [(line, said("not valid TOML: {problem}", problem=message))]
                          ) from exc
    c = _Checker(text)
    c.unknown_keys(raw, _TOP_KEYS, ())
    stale = c.whole(raw, "stale_after_hours", (), 1, TEN_YEARS["hours"])
    interval = c.whole(raw, "report_interval_minutes", (), 1, TEN_YEARS["minutes"])
    outbox_mb = DEFAULT_OUTBOX_MAX_MB
    if "outbox_max_mb" in raw:
        outbox_mb = c.whole(raw, "outbox_max_mb", (), 1)
        if outbox_mb > MAX_OUTBOX_MAX_MB:
            c.problem(("outbox_max_mb",), said("must be at most {maximum}, not {value}",
                                               maximum=MAX_OUTBOX_MAX_MB, value=outbox_mb))
    retention = DEFAULT_RETENTION_DAYS
    if "retention_days" in raw:
        retention = c.whole(raw, "retention_days", (), MIN_RETENTION_DAYS, TEN_YEARS["days"])
    time_zone = _time_zone(c, raw)
    networks = raw.get("networks", {})
    if not isinstance(networks, dict):
        c.problem(("networks",), _TABLE)
        networks = {}
    c.unknown_keys(networks, _NETWORK_KEYS, ("networks",))
    trusted = c.names(networks, "trusted", ("networks",))
    public = c.names(networks, "public_patterns", ("networks",))
    backups = raw.get("backups", {})
    if not isinstance(backups, dict):
        c.problem(("backups",), _TABLE)
        backups = {}
    c.unknown_keys(backups, {"folders"}, ("backups",))
    folders = c.names(backups, "folders", ("backups",))
    clauses = _clauses(c, raw.get("clauses"))
    checks = _checks(c, raw.get("checks"), {cl.clause_id for cl in clauses})
    if c.problems:
        raise PolicyError(source, c.problems)
    return Policy(
        stale, interval, trusted, public, folders, tuple(clauses), tuple(checks), outbox_mb,
        retention, time_zone,
    )


def _time_zone(c: _Checker, raw: dict[str, object]) -> str:
    """The `time_zone` key: an IANA zone name this machine's database knows (the default when
    the key is absent), so that a typo never silently shows every time in another zone."""
    value = raw.get("time_zone", DEFAULT_TIME_ZONE)
    if not isinstance(value, str):
        c.problem(("time_zone",), said('must be a text such as "{zone}", not {value}',
                                       zone=DEFAULT_TIME_ZONE, value=repr(value)))
        return DEFAULT_TIME_ZONE
    try:
        zone_named(value)
    except UnknownZone as exc:
        c.problem(("time_zone",), exc.said)
        return DEFAULT_TIME_ZONE
    return value


def policy_text(path: Path) -> str:
    """A policy file's text, read as `policy check` and the running collector both read it;
    PolicyError when it cannot be: a file saved as GBK is named with the line of its first
    byte that is not UTF-8 (the collector logged only Python's codec error, without file or
    line)."""
    source = str(path)  # PolicyError's first argument is its file, not a sentence
    try:
        data = path.read_bytes()
    except OSError as exc:
        problem = said("cannot read the file: {problem}", problem=os_error(exc, exc.strerror))
        raise PolicyError(source, [(None, problem)]) from exc
    try:
        return data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        problem = said("the file is not UTF-8 text (saved as GBK?): save it as UTF-8")
        raise PolicyError(source, [(line, problem)]) from exc


def load_policy(path: Path) -> Policy:
    return parse_policy(policy_text(path), str(path))


def default_policy_text() -> str:
    # Imported here: importlib.resources loads tempfile, shutil and more (about 20 ms of a
    # slow VM), and a command reads the policy in force from its database, not this file.
    from importlib import resources  # noqa: PLC0415

    return resources.files(__package__).joinpath("default.toml").read_text(encoding="utf-8")


def default_policy() -> Policy:
    return parse_policy(default_policy_text(), "default.toml")
