"""Chat backups on every OS: backup sets, never the apps' own live data (clause 6.2.1).

WeChat keeps its chats in databases that the app encrypts and rewrites every minute. A probe
that counted those folders would report "a fresh encrypted backup" on every PC with WeChat
installed and none ever made. So the scan tells three things apart, from the layouts in
agent.probes.chat_layouts (each from a public source, docs/chat-backups.md):

  * **live data**: each account folder of an app's data root that holds the app's own store.
    Reported as `live_data` (IT sees the app is used), never walked or sampled. At most
    MAX_LIVE_DATA are reported (the collector refuses a whole report with more): on a shared
    computer logged into more accounts, the ones whose store changed last are kept and the
    others counted in an error of source "live_data" (`_keep_recent`);
  * **app backup sets**: folders the app's own backup feature wrote, recognised by their file
    names, each with its own newest time, size and encryption;
  * **archives**: each entry of a folder the policy names (a 7z, ZIP, OpenPGP or age file, a
    copied backup set, a folder of exported files), one set each.

A data root may be moved by the user; the file that records the move is read (RootPointer).
For each set: newest file time, file count and bytes (a bounded walk), whether its own files
are encrypted (at most SAMPLE_FILES files, 64 bytes each, plus a 7z end header: messages are
never opened, DESIGN principle 8), and separately whether the volume that really holds it (a
link followed: agent.probes.backup_volume) is encrypted, from the disk-encryption fact: the
"kept safe" half of the clause.

One entry that cannot be read costs that entry only: it is counted in `entries_skipped` with
its reason, and the rest of the fact stands. Names that are not valid text are shown escaped
(agent.host.paths.printable) and read under their real name. Paths leave the device with the
home as "~".
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from devposture.agent.host import HostError, HostPermissionError, display_path
from devposture.agent.host.types import FileEntry
from devposture.agent.parsers.file_headers import (
    SAMPLE_SIZE,
    ZIP_DIRECTORY_MOST,
    ZIP_END_TAIL,
    HeaderVerdict,
    combine,
    seven_zip_end_header,
    sniff,
    sniff_7z_end_header,
    sniff_zip_directory,
    zip_central_directory,
)
from devposture.agent.parsers.wechat_config import DataFolderRef, parse_data_folder
from devposture.agent.probes import backup_volume
from devposture.agent.probes.chat_layouts import BY_FAMILY, AppLayout, BackupLayout
from devposture.agent.probes.outcome import FactOutcome, ProbeContext, error, source_error
from devposture.agent.probes.report_room import keep
from devposture.v1 import devposture_pb2 as pb

FACT = pb.FACT_CHAT_BACKUPS
# Files walked per set (counts are lower bounds beyond it), sets reported (the collector
# accepts 256 items), and how deep below a container a backup set may lie.
MAX_FILES = 20_000
MAX_SETS = 200
MAX_SET_DEPTH = 3
SAMPLE_FILES = 3
MAX_SKIPPED_REASONS = 5
# Live data folders reported: collector/validation.py takes 64 (its default for a repeated
# field), and a text of at most 1024 characters (a deeper path is left out, and counted).
MAX_LIVE_DATA = 64
MAX_LIVE_CHARS = 1024
LIVE_DATA_SOURCE = "live_data"
# Config files naming a moved data root are small; read no more than this.
MAX_POINTER_BYTES = 4096

_GLOB = frozenset("*?[")


def _is_pattern(segment: str) -> bool:
    return any(char in _GLOB for char in segment)


def expand(ctx: ProbeContext, pattern: str) -> list[str]:
    """Paths matching `pattern` ("/"-separated), a segment with * or ? matching folder names.
    A folder that cannot be listed matches nothing."""
    paths = ["/"] if pattern.startswith("/") else [""]
    for segment in (part for part in pattern.split("/") if part):
        found: list[str] = []
        for base in paths:
            prefix = base if base in ("", "/") or base.endswith("/") else base + "/"
            if _is_pattern(segment):
                try:
                    names = ctx.host.list_dir(base or ".")
                except HostError:
                    continue
                found += [prefix + name for name in names if fnmatch.fnmatchcase(name, segment)]
            else:
                found.append(prefix + segment)
        paths = found
    return paths


@dataclass(frozen=True)
class DataRoot:
    layout: AppLayout
    path: str
    home: str


@dataclass(frozen=True)
class _Live:
    """A live data folder found, with what tells when its account was last used: the
    folder and the app's store in it (its markers), read only when there are too many."""

    folder: pb.ChatDataFolder
    path: str
    markers: tuple[str, ...]


@dataclass
class _Scan:
    ctx: ProbeContext
    fact: pb.ChatBackupFact = field(default_factory=pb.ChatBackupFact)
    errors: list[pb.ProbeError] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)
    real_homes: list[str] | None = None
    live: list[_Live] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.homes = self.ctx.host.home_dirs()
        # The mounts read again, at most once a scan, when the volumes need them.
        self.other_mounts = backup_volume.OtherMounts(self.ctx.host, self.shown_real)

    def shown(self, path: str) -> str:
        return display_path(path, self.homes)

    def shown_real(self, path: str) -> str:
        """A real location (agent.probes.backup_volume) as shown: a home is "~" under any of
        its names, asked of the host only when a set is judged."""
        if self.real_homes is None:
            self.real_homes = backup_volume.home_aliases(self.ctx.host, self.homes)
        return display_path(path, self.real_homes)

    def skip(self, path: str, reason: str) -> None:
        self.fact.entries_skipped += 1
        if len(self.fact.skipped_reasons) < MAX_SKIPPED_REASONS:
            self.fact.skipped_reasons.append(f"{self.shown(path)}: {reason}")

    def is_dir(self, path: str) -> bool:
        """Whether `path` is a folder; a folder that exists but cannot be inspected is skipped."""
        try:
            return self.ctx.host.exists(path) and self.ctx.host.stat(path).is_dir
        except HostError as exc:
            self.skip(path, exc.message)
            return False

    def readable_home(self, home: str) -> None:
        """A home the agent cannot read is skipped with its reason: its backups are unknown,
        not absent (the service needs CAP_DAC_READ_SEARCH or root; a terminal run by another
        user reads only its own home). Any other failure (a home gone since, a bundle made
        before this was asked) says nothing about backups and is left to the scan."""
        try:
            self.ctx.host.list_dir(home)
        except HostPermissionError as exc:
            self.skip(home, f"this home folder cannot be read ({exc.message}), so its chat"
                      " backups are unknown: run the agent as its service (root)")  # fmt: skip
        except HostError:
            return

    def names(self, path: str) -> list[str] | None:
        """The folder's entries, or None (and the folder skipped) when it cannot be listed."""
        try:
            return self.ctx.host.list_dir(path)
        except HostError as exc:
            self.skip(path, exc.message)
            return None

    # --- live data ---------------------------------------------------------------------

    def live_root(self, root: DataRoot) -> None:
        layout = root.layout
        for account in expand(self.ctx, f"{root.path}/{layout.accounts}"):
            try:
                markers = layout.live_markers
                live = (
                    any(self.ctx.host.exists(f"{account}/{m}") for m in markers)
                    if markers
                    else self.ctx.host.stat(account).is_dir
                )
            except HostError as exc:
                self.skip(account, exc.message)
                continue
            if live:
                folder = pb.ChatDataFolder(
                    app=layout.app,
                    location=self.shown(account),
                    account=self.shown(account.rsplit("/", 1)[-1]),
                    layout=layout.layout,
                )
                self.live.append(_Live(folder, account, markers))

    def last_used(self, live: _Live) -> float:
        """When the account was last used, as far as the folder and its store tell (the app
        rewrites its store while the account is logged in); -inf when neither can be read."""
        times = []
        for path in (live.path, *(f"{live.path}/{m}" for m in live.markers)):
            try:
                times.append(self.ctx.host.stat(path).mtime)
            except HostError:
                continue
        return max(times, default=float("-inf"))

    # --- app backup sets ---------------------------------------------------------------

    def app_backups(self, root: DataRoot) -> None:
        backups = root.layout.backups
        if backups is None:
            return
        for pattern in backups.containers:
            for container in expand(self.ctx, f"{root.path}/{pattern}"):
                self.fact.locations_checked += 1
                if not self.is_dir(container):
                    continue
                found = list(self._set_folders(backups, container, 0))
                for folder in found:
                    segments = folder[len(root.path) :].strip("/").split("/")
                    account = segments[backups.account_segment]
                    self.app_set(root.layout.app, backups, folder, account)
                if backups.unrecognised:
                    self._unrecognised(backups, container, found)

    def _set_folders(self, backups: BackupLayout, folder: str, depth: int) -> Iterator[str]:
        """Each backup set at or below `folder` (a container at depth 0)."""
        names = self.names(folder) or []
        if depth > 0 and any(backups.markers.match(name) for name in names):
            yield folder
            return
        if depth >= max(MAX_SET_DEPTH, backups.depth):
            return
        for name in names:
            path = f"{folder}/{name}"
            if self.is_dir(path):
                yield from self._set_folders(backups, path, depth + 1)

    def _unrecognised(self, backups: BackupLayout, container: str, found: list[str]) -> None:
        """Each folder just below `container` that holds files but none of the sets `found`
        is skipped with the layout's reason: it is not a backup set of the app's, and what it
        is cannot be told (an export kept there, a layout the app has changed since)."""
        for name in self.names(container) or []:
            path = f"{container}/{name}"
            if any(f.startswith(path + "/") for f in found) or not self.is_dir(path):
                continue
            try:
                holds = self.ctx.host.walk_files(path, 1).files
            except HostError as exc:
                self.skip(path, exc.message)
                continue
            if holds:
                self.skip(path, backups.unrecognised)

    def app_set(
        self, app: pb.ChatApp.ValueType, backups: BackupLayout, folder: str, account: str
    ) -> None:
        files = self.walk(folder)
        if files is None:
            return
        entries, truncated = files
        index = [f for f in entries if f.path == backups.index_file]
        # The set's index decides when the layout has one (the other files' headers are not
        # published); otherwise the newest of the files the layout samples.
        sampled = index or _newest([f for f in entries if _sampled(backups, f.path)])
        self.add_set(
            pb.BACKUP_KIND_APP_BACKUP,
            app,
            folder,
            entries,
            truncated,
            format_=backups.format,
            account=account,
            sample=[f"{folder}/{f.path}" for f in sampled[:SAMPLE_FILES]],
            evidence_prefix=f"{backups.index_file}: " if index else "",
            undated=backups.undated,
        )

    def walk(self, folder: str) -> tuple[list[FileEntry], bool] | None:
        try:
            walk = self.ctx.host.walk_files(folder, MAX_FILES)
        except HostError as exc:
            self.skip(folder, exc.message)
            return None
        return list(walk.files), walk.truncated

    # --- archives in the policy's folders ----------------------------------------------

    def archive_folder(self, folder: str) -> None:
        self.fact.locations_checked += 1
        if not self.is_dir(folder):
            return
        for name in self.names(folder) or []:
            path = f"{folder}/{name}"
            try:
                st = self.ctx.host.stat(path)
            except HostError as exc:
                self.skip(path, exc.message)
                continue
            if st.is_dir:
                self.archive_subfolder(path)
            else:
                entry = FileEntry(name, st.size, st.mtime)
                self.add_set(
                    pb.BACKUP_KIND_ARCHIVE, pb.CHAT_APP_UNSPECIFIED, path, [entry], False,
                    format_="", sample=[path], single_file=True,
                )  # fmt: skip

    def archive_subfolder(self, path: str) -> None:
        """A folder inside a policy folder: a copied app backup set, or a folder of files."""
        names = self.names(path)
        if names is None:
            return
        for layouts in BY_FAMILY.values():
            for layout in layouts:
                backups = layout.backups
                if backups and any(backups.markers.match(n) for n in names):
                    self.app_set(layout.app, backups, path, "")
                    return
        files = self.walk(path)
        if files is None:
            return
        entries, truncated = files
        self.add_set(
            pb.BACKUP_KIND_ARCHIVE, pb.CHAT_APP_UNSPECIFIED, path, entries, truncated,
            format_=f"folder of {len(entries)} file(s)",
            sample=[f"{path}/{f.path}" for f in _newest(entries)[:SAMPLE_FILES]],
        )  # fmt: skip

    # --- one set -----------------------------------------------------------------------

    def add_set(
        self,
        kind: pb.BackupKind.ValueType,
        app: pb.ChatApp.ValueType,
        path: str,
        entries: list[FileEntry],
        truncated: bool,
        *,
        format_: str,
        sample: list[str],
        account: str = "",
        single_file: bool = False,
        evidence_prefix: str = "",
        undated: frozenset[str] = frozenset(),
    ) -> None:
        """One set, dated by its newest file (but the `undated` ones)."""
        key = path.rstrip("/").lower() if ":" in path[:3] else path.rstrip("/")
        dated = [f.mtime for f in entries if _name(f.path) not in undated]
        if key in self.seen or not dated:
            return
        self.seen.add(key)
        verdicts = [v for v in (self.sample(p) for p in sample) if v is not None]
        verdict = combine(verdicts)
        backup = pb.ChatBackup(
            kind=kind,
            app=app,
            location=self.shown(path),
            account=self.shown(account) if account else "",
            file_count=len(entries),
            total_bytes=sum(f.size for f in entries),
            encryption=verdict.state,
            format=format_ or (verdicts[0].format if single_file and verdicts else ""),
        )
        backup.newest_backup_at.FromDatetime(datetime.fromtimestamp(max(dated), UTC))
        evidence = evidence_prefix + verdict.evidence
        if truncated:
            evidence += f"; only the first {MAX_FILES} files were counted"
        backup.encryption_evidence = evidence
        backup_volume.judge(
            backup, path, self.ctx.host, self.ctx.report, self.shown_real, others=self.other_mounts
        )
        self.fact.backups.append(backup)

    def sample(self, path: str) -> HeaderVerdict | None:
        """The verdict of one file's first bytes, of its 7z end header when it is a 7z, or of
        its central directory (every entry) when it is a ZIP."""
        try:
            head = self.ctx.host.read_sample(path, SAMPLE_SIZE)
            if head.startswith(b"PK\x03\x04"):
                return self._zip(path) or sniff(head)
            end = seven_zip_end_header(head)
            if end is None:
                return sniff(head)
            offset, size = end
            return sniff_7z_end_header(self.ctx.host.read_sample(path, size, offset))
        except HostError as exc:
            self.skip(path, exc.message)
            return None

    def _zip(self, path: str) -> HeaderVerdict | None:
        """A ZIP's verdict from its central directory, or None when that cannot be found (the
        first entry's header then says what it can)."""
        size = self.ctx.host.stat(path).size
        tail_offset = max(0, size - ZIP_END_TAIL)
        tail = self.ctx.host.read_sample(path, size - tail_offset, tail_offset)
        found = zip_central_directory(tail, tail_offset)
        if found is None:
            return None
        offset, length = found
        read = min(length, ZIP_DIRECTORY_MOST)
        directory = self.ctx.host.read_sample(path, read, offset)
        return sniff_zip_directory(directory, complete=read == length)


def _newest(entries: list[FileEntry]) -> list[FileEntry]:
    return sorted(entries, key=lambda f: f.mtime, reverse=True)


def _name(path: str) -> str:
    return path.rsplit("/", 1)[-1]


def _sampled(backups: BackupLayout, path: str) -> bool:
    """Whether the file at `path` in a set is one the layout samples for encryption."""
    if backups.samples is not None:
        return backups.samples.match(path) is not None
    return backups.markers.match(_name(path)) is not None


def _resolve(ref: DataFolderRef, home: str, subfolder: str) -> str:
    """The app's data folder from a pointer's value: the value names its parent (or, as some
    users write it, the data folder itself)."""
    base = {"absolute": "", "documents": f"{home}/Documents/", "home": f"{home}/"}[ref.base]
    named = f"{base}{ref.path}".rstrip("/")
    if named.rsplit("/", 1)[-1].lower() == subfolder.lower():
        return named
    return f"{named}/{subfolder}"


def data_roots(
    ctx: ProbeContext, layouts: tuple[AppLayout, ...], scan: _Scan | None = None
) -> list[DataRoot]:
    """Every app data root on this computer: the defaults under each home, and any folder a
    user moved it to (named by the layout's pointer files), each once. A pointer that cannot be
    understood is skipped with its reason (`scan`): the data it names may hold backups."""
    family: Literal["windows", "posix"] = (
        "windows" if ctx.host.os_family == pb.OS_FAMILY_WINDOWS else "posix"
    )
    roots: list[DataRoot] = []
    for home in ctx.host.home_dirs():
        for layout in layouts:
            for relative in layout.roots:
                roots += [DataRoot(layout, p, home) for p in expand(ctx, f"{home}/{relative}")]
            for pointer in layout.pointers:
                file = f"{home}/{pointer.file}"
                try:
                    if not ctx.host.exists(file):
                        continue
                    ref = parse_data_folder(ctx.host.read_bytes(file, MAX_POINTER_BYTES), family)
                except (HostError, ValueError) as exc:
                    if scan is not None:
                        reason = exc.message if isinstance(exc, HostError) else str(exc)
                        scan.skip(file, f"the moved data folder it names is unknown: {reason}")
                    continue
                if ref is not None:
                    roots.append(DataRoot(layout, _resolve(ref, home, pointer.subfolder), home))
    unique: dict[tuple[str, str], DataRoot] = {}
    for root in roots:
        key = root.path.lower() if ":" in root.path[:3] else root.path
        unique.setdefault((root.layout.layout, key), root)
    return list(unique.values())


def configured_folders(ctx: ProbeContext) -> list[str]:
    """The policy's backup folders, "~" expanded to every home."""
    folders: list[str] = []
    for folder in ctx.config.backup_folders:
        if folder.startswith("~"):
            folders += [p for home in ctx.host.home_dirs() for p in expand(ctx, home + folder[1:])]
        else:
            folders += expand(ctx, folder)
    return list(dict.fromkeys(p.rstrip("/") for p in folders))


def watch_folders(ctx: ProbeContext, layouts: tuple[AppLayout, ...]) -> list[str]:
    """Where a new backup appears: the apps' backup containers and the policy's folders.
    Never a live store, which the app writes every minute."""
    folders: list[str] = []
    for root in data_roots(ctx, layouts):
        backups = root.layout.backups
        for pattern in backups.containers if backups else ():
            if _is_pattern(pattern.split("/", 1)[0]):
                folders += expand(ctx, f"{root.path}/{pattern}")  # existing accounts' folders
            else:
                folders.append(f"{root.path}/{pattern}")
    return list(dict.fromkeys(folders + configured_folders(ctx)))


def scan(ctx: ProbeContext, layouts: tuple[AppLayout, ...]) -> FactOutcome:
    """The chat-backup fact for one computer."""
    state = _Scan(ctx)
    for home in state.homes:
        state.readable_home(home)
    for root in data_roots(ctx, layouts, state):
        state.fact.locations_checked += 1
        try:
            if not state.is_dir(root.path):
                continue
            state.live_root(root)
            state.app_backups(root)
        except HostError as exc:
            state.errors.append(source_error(FACT, "backups", exc))
    for folder in configured_folders(ctx):
        state.archive_folder(folder)
    _keep_recent(state)
    _keep_newest(state.fact)
    return FactOutcome(state.fact, state.errors)


def _keep_recent(state: _Scan) -> None:
    """At most MAX_LIVE_DATA live data folders, in the scan's order: the most recently used
    when there are more (then, and only then, each is timed). How many were left out is said
    in an error of source LIVE_DATA_SOURCE, which the check of clause 6.2.1 does not count as
    an unread place: an account left out hides no backup, its backups were looked for all the
    same."""
    found = state.live
    fitting = [live for live in found if _fits(live.folder)]
    fitting, _ = keep(fitting, lambda live: -state.last_used(live), MAX_LIVE_DATA)
    state.fact.live_data.extend(live.folder for live in fitting)
    left_out = len(found) - len(fitting)
    if left_out:
        message = (
            f"{left_out} of {len(found)} chat accounts' data folders left out of the report"
            f" (the collector takes {MAX_LIVE_DATA}): the most recently used are kept"
        )
        state.errors.append(error(FACT, pb.PROBE_ERROR_CODE_UNSPECIFIED, message,
                                  LIVE_DATA_SOURCE))  # fmt: skip


def _fits(folder: pb.ChatDataFolder) -> bool:
    return all(len(text) <= MAX_LIVE_CHARS for text in (folder.location, folder.account))


def _keep_newest(fact: pb.ChatBackupFact) -> None:
    """At most MAX_SETS sets: plain ones first (one plain backup decides the clause), then
    the newest."""
    if len(fact.backups) <= MAX_SETS:
        return
    ranked = sorted(
        fact.backups,
        key=lambda b: (
            b.encryption == pb.ENCRYPTION_STATE_NOT_ENCRYPTED,
            b.newest_backup_at.seconds,
        ),
        reverse=True,
    )
    left_out = len(ranked) - MAX_SETS
    del fact.backups[:]
    fact.backups.extend(ranked[:MAX_SETS])
    fact.entries_skipped += left_out
    if len(fact.skipped_reasons) < MAX_SKIPPED_REASONS:
        fact.skipped_reasons.append(f"{left_out} older backup set(s) not reported")
