"""Diagnostic bundles: record everything the probes saw on one computer, replay it anywhere.

`RecordingHost` wraps the live host and notes every call the probes make and what came back
(command outputs, file bytes, process and interface lists, errors). `BundleHost` answers the
same calls from the recording, so `devposture-agent collect --replay BUNDLE` rebuilds the same
facts on any machine and OS. IT uses it to see why a device fails; the tests use it to replay
recorded systems. Principle 4: one room touches the OS, and it can run live, record or replay.

The format is one JSON document (see docs/bundle-format.md):

    {"format": "devposture-bundle", "version": 2, "os_family": "OS_FAMILY_LINUX",
     "recorded_at": "...", "agent_version": "...", "probe_config": {...},
     "calls": [{"method": "run", "args": {"argv": [...]}, "result": {...}} | "error": {...}]}

Bytes are base64. File samples read with `read_sample` (chat backups) are redacted before they
are written (agent.host.redact): a bundle holds no chat content. `probe_config` is what the
probes were told (the policy's backup folders and Wi-Fi rules): a replay uses it, so it asks
for the same folders and classifies the same networks on any machine. Version 1 bundles had
none; they replay with the replaying agent's own configuration.

File names need not be valid text (agent.host.paths): a lone surrogate in a name or path is
written as a JSON "\\udcXX" escape, which JSON readers give back as the same character.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Collection, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar, cast

from devposture.agent.host.errors import (
    CommandFailedError,
    CommandNotFoundError,
    CommandTimeoutError,
    HostError,
    HostPermissionError,
    OutputTooLargeError,
    SourceMissingError,
    require_exit,
)
from devposture.agent.host.protocol import OK_ONLY, Host
from devposture.agent.host.redact import redact_end_header, redact_ppp_options, redact_sample
from devposture.agent.host.types import (
    CommandResult,
    FileEntry,
    FileStat,
    NetInterface,
    PlatformInfo,
    ProcessInfo,
    WalkResult,
)
from devposture.agent.probes.config import ProbeConfig
from devposture.agent.state import write_atomic
from devposture.policy.cli_messages import Worded, enumeration, said
from devposture.policy.os_errors import os_error
from devposture.v1 import devposture_pb2 as pb

FORMAT = "devposture-bundle"
VERSION = 2
READABLE_VERSIONS = frozenset({1, 2})
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
# What the Linux VPN probe reads of pppd (agent/probes/linux/ppp_links.py): its peer files and
# its command line, which may hold a dial-up or VPN account and password (redact_ppp_options).
_PPP_OPTIONS = re.compile(r"/etc/ppp/|/proc/\d+/cmdline$")
T = TypeVar("T")
_ERRORS: dict[str, type[HostError]] = {
    cls.__name__: cls
    for cls in (
        HostError,
        CommandNotFoundError,
        HostPermissionError,
        CommandTimeoutError,
        SourceMissingError,
        OutputTooLargeError,
    )
}


_NOT_A_BUNDLE = said("this file is not a devposture diagnostic bundle")


class BundleError(Worded):
    """The file is not a bundle this agent can replay; the message says why (worded in the
    reader's language by `collect --replay`)."""


class NotRecordedError(HostError):
    """The replayed probes asked for something the bundle does not hold (a newer agent asks
    more than the recording one did). The fact becomes an error, never a guess."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"))


def _key(method: str, args: dict[str, Any]) -> str:
    return json.dumps([method, args], sort_keys=True)


def dumps(document: object) -> bytes:
    """JSON in UTF-8, readable (Chinese stays Chinese), with lone surrogates escaped: UTF-8
    cannot hold them, and a name that is not valid text must replay under the same name."""
    text = json.dumps(document, indent=1, ensure_ascii=False)
    return _LONE_SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text).encode("utf-8")


def config_document(config: ProbeConfig) -> dict[str, Any]:
    return {
        "backup_folders": list(config.backup_folders),
        "trusted_networks": list(config.trusted_networks),
        "public_network_patterns": list(config.public_network_patterns),
        "network_hash_key": _b64(config.network_hash_key),
        "command_timeout": config.command_timeout,
        "time_zone": config.time_zone,
    }


def config_from_document(data: dict[str, Any]) -> ProbeConfig:
    def strings(key: str) -> tuple[str, ...]:
        value = data.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise BundleError(
                "the bundle is damaged (probe_config.{key} is not a list of text)", key=key
            )
        return tuple(value)

    try:
        return ProbeConfig(
            backup_folders=strings("backup_folders"),
            trusted_networks=strings("trusted_networks"),
            public_network_patterns=strings("public_network_patterns"),
            network_hash_key=_unb64(str(data.get("network_hash_key", ""))),
            command_timeout=float(data.get("command_timeout", ProbeConfig.command_timeout)),
            time_zone=str(data.get("time_zone", "")),  # recorded since it was added
        )
    except (TypeError, ValueError) as exc:
        raise BundleError("the bundle is damaged (probe_config: {problem})", problem=exc) from exc


# --- how each method's result is written and read ---------------------------------------

Codec = tuple[Callable[[Any], Any], Callable[[Any], Any]]


def _command(result: CommandResult) -> dict[str, Any]:
    return {
        "argv": list(result.argv),
        "returncode": result.returncode,
        "stdout": _b64(result.stdout),
        "stderr": _b64(result.stderr),
    }


def _command_back(data: dict[str, Any]) -> CommandResult:
    return CommandResult(
        tuple(data["argv"]), int(data["returncode"]), _unb64(data["stdout"]), _unb64(data["stderr"])
    )


def _same(value: object) -> object:
    return value


_CODECS: dict[str, Codec] = {
    "run": (_command, _command_back),
    "run_cached": (_command, _command_back),
    "which": (_same, _same),
    "read_bytes": (_b64, _unb64),
    "read_tail": (_b64, _unb64),
    # Redacted by RecordingHost.read_sample before encoding (it knows the offset).
    "read_sample": (_b64, _unb64),
    "exists": (_same, bool),
    "real_path": (_same, str),
    "list_dir": (list, list),
    "stat": (
        lambda s: [s.size, s.mtime, s.is_dir],
        lambda d: FileStat(int(d[0]), float(d[1]), bool(d[2])),
    ),
    "walk_files": (
        lambda w: {"files": [[f.path, f.size, f.mtime] for f in w.files], "truncated": w.truncated},
        lambda d: WalkResult(
            tuple(FileEntry(p, int(s), float(m)) for p, s, m in d["files"]), bool(d["truncated"])
        ),
    ),
    "processes": (
        lambda ps: [[p.pid, p.name, p.exe_name] for p in ps],
        lambda d: [ProcessInfo(int(pid), name, exe) for pid, name, exe in d],
    ),
    "net_interfaces": (
        lambda ns: [[n.name, n.is_up, n.mtu, list(n.flags), list(n.addresses)] for n in ns],
        lambda d: [NetInterface(a, bool(b), int(c), tuple(f), tuple(x)) for a, b, c, f, x in d],
    ),
    "host_info": (
        lambda i: [i.hostname, i.system, i.release, i.version, i.machine, i.console_encoding],
        lambda d: PlatformInfo(*d),
    ),
    "home_dirs": (list, list),
    "now": (lambda t: t.isoformat(), datetime.fromisoformat),
}


class RecordingHost:
    """A Host that passes every call to `inner` and keeps what it answered."""

    def __init__(self, inner: Host) -> None:
        self._inner = inner
        self._calls: dict[str, dict[str, Any]] = {}

    @property
    def os_family(self) -> pb.OsFamily.ValueType:
        return self._inner.os_family

    def _record(
        self,
        method: str,
        args: dict[str, Any],
        call: Callable[[], T],
        stored: Callable[[T], T] | None = None,
    ) -> T:
        """Call, note the answer (passed through `stored` first, for redaction), return it."""
        key = _key(method, args)
        entry: dict[str, Any] = {"method": method, "args": args}
        try:
            result = call()
        except CommandFailedError as exc:
            # Recorded as what the command printed; replay applies the caller's exit codes.
            failed = CommandResult(tuple(args["argv"]), exc.returncode, exc.stdout, exc.stderr)
            entry["result"] = _CODECS[method][0](failed)
            self._calls.setdefault(key, entry)
            raise
        except HostError as exc:
            entry["error"] = {"type": type(exc).__name__, "message": str(exc)}
            self._calls.setdefault(key, entry)
            raise
        entry["result"] = _CODECS[method][0](stored(result) if stored else result)
        self._calls.setdefault(key, entry)
        return result

    def run(
        self, argv: Sequence[str], timeout: float, ok_codes: Collection[int] = OK_ONLY
    ) -> CommandResult:
        return self._record(
            "run", {"argv": list(argv)}, lambda: self._inner.run(argv, timeout, ok_codes)
        )

    def run_cached(
        self, argv: Sequence[str], timeout: float, depends_on: Sequence[str]
    ) -> CommandResult:
        # Recorded as a plain run: a bundle must hold the output even when a cache answered.
        return self._record(
            "run", {"argv": list(argv)}, lambda: self._inner.run_cached(argv, timeout, depends_on)
        )

    def which(self, name: str) -> str | None:
        return self._record("which", {"name": name}, lambda: self._inner.which(name))

    def read_bytes(self, path: str, limit: int) -> bytes:
        return self._record(
            "read_bytes",
            {"path": path, "limit": limit},
            lambda: self._inner.read_bytes(path, limit),
            redact_ppp_options if _PPP_OPTIONS.match(path) else None,
        )

    def read_tail(self, path: str, limit: int) -> bytes:
        return self._record(
            "read_tail",
            {"path": path, "limit": limit},
            lambda: self._inner.read_tail(path, limit),
        )

    def read_sample(self, path: str, limit: int, offset: int = 0) -> bytes:
        return self._record(
            "read_sample",
            {"path": path, "limit": limit, "offset": offset},
            lambda: self._inner.read_sample(path, limit, offset),
            redact_sample if offset == 0 else redact_end_header,
        )

    def exists(self, path: str) -> bool:
        return self._record("exists", {"path": path}, lambda: self._inner.exists(path))

    def real_path(self, path: str) -> str:
        return self._record("real_path", {"path": path}, lambda: self._inner.real_path(path))

    def list_dir(self, path: str) -> list[str]:
        return self._record("list_dir", {"path": path}, lambda: self._inner.list_dir(path))

    def stat(self, path: str) -> FileStat:
        return self._record("stat", {"path": path}, lambda: self._inner.stat(path))

    def walk_files(self, path: str, max_files: int) -> WalkResult:
        return self._record(
            "walk_files",
            {"path": path, "max_files": max_files},
            lambda: self._inner.walk_files(path, max_files),
        )

    def processes(self) -> list[ProcessInfo]:
        return self._record("processes", {}, self._inner.processes)

    def net_interfaces(self) -> list[NetInterface]:
        return self._record("net_interfaces", {}, self._inner.net_interfaces)

    def host_info(self) -> PlatformInfo:
        return self._record("host_info", {}, self._inner.host_info)

    def home_dirs(self) -> list[str]:
        return self._record("home_dirs", {}, self._inner.home_dirs)

    def now(self) -> datetime:
        return self._record("now", {}, self._inner.now)

    def bundle(self, agent_version: str, config: ProbeConfig) -> dict[str, Any]:
        recorded_at = next(
            (c["result"] for c in self._calls.values() if c["method"] == "now"), None
        )
        return {
            "format": FORMAT,
            "version": VERSION,
            "os_family": pb.OsFamily.Name(self.os_family),
            "recorded_at": recorded_at,
            "agent_version": agent_version,
            "probe_config": config_document(config),
            "calls": list(self._calls.values()),
        }

    def save(self, path: Path, agent_version: str, config: ProbeConfig) -> None:
        write_atomic(path, dumps(self.bundle(agent_version, config)), 0o600)


class BundleHost:
    """A Host that answers from a recorded bundle, on any machine."""

    def __init__(self, document: dict[str, Any]) -> None:
        if document.get("format") != FORMAT:
            raise BundleError(_NOT_A_BUNDLE)
        if document.get("version") not in READABLE_VERSIONS:
            raise BundleError(
                "bundle format version {version} is not supported (this agent reads versions"
                " {readable}); replay it with a matching agent",
                version=document.get("version"),
                readable=enumeration(map(str, sorted(READABLE_VERSIONS))),
            )
        try:
            self._family = pb.OsFamily.Value(document["os_family"])
            self._calls = {_key(c["method"], c["args"]): c for c in document["calls"]}
        except (KeyError, TypeError, ValueError) as exc:
            raise BundleError(
                "the bundle is damaged ({kind}: {problem})", kind=type(exc).__name__, problem=exc
            ) from exc
        # An agent older than real_path asked for none: it judged every volume by the path as
        # spelled, and so does the replay (see real_path).
        self._resolves = any(c["method"] == "real_path" for c in self._calls.values())
        self.recorded_at: str | None = document.get("recorded_at")
        self.agent_version: str = str(document.get("agent_version", ""))
        # What the recording agent's probes were told; None in a version 1 bundle.
        recorded = document.get("probe_config")
        if recorded is not None and not isinstance(recorded, dict):
            raise BundleError("the bundle is damaged (probe_config is not an object)")
        self.probe_config: ProbeConfig | None = (
            config_from_document(recorded) if recorded is not None else None
        )

    @classmethod
    def load(cls, path: Path) -> BundleHost:
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise BundleError(
                "cannot read {path}: {problem}", path=path, problem=os_error(exc, exc.strerror)
            ) from exc
        except ValueError as exc:
            raise BundleError(
                "{path} is not valid JSON: {problem}", path=path, problem=exc
            ) from exc
        if not isinstance(document, dict):
            raise BundleError(_NOT_A_BUNDLE)
        return cls(document)

    @property
    def os_family(self) -> pb.OsFamily.ValueType:
        return self._family

    def _answer(self, method: str, args: dict[str, Any]) -> object:
        entry = self._calls.get(_key(method, args))
        if entry is None:
            shown = args.get("argv") or args.get("path") or args.get("name") or ""
            raise NotRecordedError(f"the bundle does not hold {method} {shown}".rstrip())
        if "error" in entry:
            error = entry["error"]
            raise _ERRORS.get(error.get("type"), HostError)(str(error.get("message", "")))
        return _CODECS[method][1](entry["result"])

    def run(
        self, argv: Sequence[str], timeout: float, ok_codes: Collection[int] = OK_ONLY
    ) -> CommandResult:
        answer = cast("CommandResult", self._answer("run", {"argv": list(argv)}))
        return require_exit(answer, ok_codes)

    def run_cached(
        self, argv: Sequence[str], timeout: float, depends_on: Sequence[str]
    ) -> CommandResult:
        return self.run(argv, timeout)

    def which(self, name: str) -> str | None:
        return cast("str | None", self._answer("which", {"name": name}))

    def read_bytes(self, path: str, limit: int) -> bytes:
        return cast("bytes", self._answer("read_bytes", {"path": path, "limit": limit}))

    def read_tail(self, path: str, limit: int) -> bytes:
        return cast("bytes", self._answer("read_tail", {"path": path, "limit": limit}))

    def read_sample(self, path: str, limit: int, offset: int = 0) -> bytes:
        args = {"path": path, "limit": limit, "offset": offset}
        return cast("bytes", self._answer("read_sample", args))

    def exists(self, path: str) -> bool:
        return cast("bool", self._answer("exists", {"path": path}))

    def real_path(self, path: str) -> str:
        """The recorded real location. A bundle that holds none was recorded by an agent that
        did not ask (before links were followed to their volume): the path is answered as it
        is, so that the replay judges the volume as that agent did. One the bundle lacks when
        it holds others is NotRecordedError, as for every call."""
        if not self._resolves:
            return path
        return cast("str", self._answer("real_path", {"path": path}))

    def list_dir(self, path: str) -> list[str]:
        return cast("list[str]", self._answer("list_dir", {"path": path}))

    def stat(self, path: str) -> FileStat:
        return cast("FileStat", self._answer("stat", {"path": path}))

    def walk_files(self, path: str, max_files: int) -> WalkResult:
        return cast(
            "WalkResult", self._answer("walk_files", {"path": path, "max_files": max_files})
        )

    def processes(self) -> list[ProcessInfo]:
        return cast("list[ProcessInfo]", self._answer("processes", {}))

    def net_interfaces(self) -> list[NetInterface]:
        return cast("list[NetInterface]", self._answer("net_interfaces", {}))

    def host_info(self) -> PlatformInfo:
        return cast("PlatformInfo", self._answer("host_info", {}))

    def home_dirs(self) -> list[str]:
        return cast("list[str]", self._answer("home_dirs", {}))

    def now(self) -> datetime:
        return cast("datetime", self._answer("now", {}))
