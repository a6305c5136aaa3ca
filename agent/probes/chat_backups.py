"""Chat backups on every OS: WeChat/WeCom folders in every user's home, plus configured folders.

Each OS module passes its own default locations (agent.probes.backup_locations); the scan,
the counting and the encryption evidence are the same everywhere. Paths use "/" on every OS
(Windows accepts it), so a Windows location is "C:/Users/<name>/Documents/WeChat Files".

For each folder that exists: the newest file's time, how many files and bytes (a bounded
walk, at most MAX_FILES files: counts are then lower bounds), and whether it is encrypted.
Encrypted means: on an encrypted volume (from the disk-encryption fact), or every sampled file
among the newest few starts with an encrypted container's header. One sampled file that is
plainly readable (a SQLite database, an unencrypted ZIP) makes it NOT_ENCRYPTED; otherwise
UNKNOWN with the reason. Only the first 64 bytes of at most SAMPLE_FILES files are read;
messages are never opened (DESIGN principle 8). Paths leave the device with the home as "~".
"""

from __future__ import annotations

from datetime import UTC, datetime

from agent.host import Host, HostError, display_path
from agent.parsers.file_headers import (
    SAMPLE_SIZE,
    HeaderVerdict,
    combine,
    seven_zip_end_header,
    sniff,
    sniff_7z_end_header,
)
from agent.probes.outcome import FactOutcome, ProbeContext, source_error
from devposture.v1 import devposture_pb2 as pb

FACT = pb.FACT_CHAT_BACKUPS
MAX_FILES = 20_000
SAMPLE_FILES = 3


def expand(host: Host, pattern: str) -> list[str]:
    """Paths matching `pattern`, where a "*" segment matches any folder (via list_dir)."""
    paths = [""]
    for segment in pattern.split("/"):
        if segment == "":
            paths = [p + "/" for p in paths] if paths == [""] else paths
            continue
        next_paths: list[str] = []
        for base in paths:
            prefix = base if base.endswith("/") else base + "/"
            if segment == "*":
                try:
                    next_paths += [prefix + name for name in host.list_dir(base or "/")]
                except HostError:
                    continue
            else:
                next_paths.append(prefix + segment if base else segment)
        paths = next_paths
    return paths


Locations = tuple[tuple[pb.ChatApp.ValueType, str], ...]


def candidates(ctx: ProbeContext, defaults: Locations) -> list[tuple[pb.ChatApp.ValueType, str]]:
    """Default locations under every home, then the configured folders, each path once."""
    homes = ctx.host.home_dirs()
    found: list[tuple[pb.ChatApp.ValueType, str]] = []
    for home in homes:
        for app, relative in defaults:
            found += [(app, path) for path in expand(ctx.host, f"{home}/{relative}")]
    for folder in ctx.config.backup_folders:
        if folder.startswith("~"):
            for home in homes:
                found += [(pb.CHAT_APP_UNSPECIFIED, p) for p in expand(ctx.host, home + folder[1:])]
        else:
            found += [(pb.CHAT_APP_UNSPECIFIED, p) for p in expand(ctx.host, folder)]
    unique: dict[str, pb.ChatApp.ValueType] = {}
    for app, path in found:
        unique.setdefault(path.rstrip("/"), app)
    return [(app, path) for path, app in unique.items()]


def _volume_for(path: str, report: pb.PostureReport) -> pb.EncryptedVolume | None:
    if not report.HasField("disk_encryption"):
        return None
    best: pb.EncryptedVolume | None = None
    for vol in report.disk_encryption.volumes:
        mp = vol.mount_point
        inside = mp and (path == mp or path.startswith(mp.rstrip("/") + "/"))
        if inside and (best is None or len(mp) > len(best.mount_point)):
            best = vol
    return best


def _sample_verdict(ctx: ProbeContext, path: str) -> HeaderVerdict:
    """The verdict of one file's first bytes, or of its 7z end header when it is a 7z archive."""
    head = ctx.host.read_sample(path, SAMPLE_SIZE)
    end = seven_zip_end_header(head)
    if end is None:
        return sniff(head)
    offset, size = end
    return sniff_7z_end_header(ctx.host.read_sample(path, size, offset))


def _encryption(ctx: ProbeContext, root: str, newest: list[str]) -> HeaderVerdict:
    volume = _volume_for(root, ctx.report)
    if volume is not None and volume.HasField("encrypted") and volume.encrypted:
        method = volume.method or "encrypted"
        return HeaderVerdict(
            pb.ENCRYPTION_STATE_ENCRYPTED,
            f"on {method} volume {volume.device} mounted at {volume.mount_point}",
        )
    verdicts = []
    for relative in newest[:SAMPLE_FILES]:
        try:
            verdicts.append(_sample_verdict(ctx, f"{root}/{relative}"))
        except HostError:
            continue
    verdict = combine(verdicts)
    plain_volume = volume is not None and volume.HasField("encrypted") and not volume.encrypted
    if verdict.state == pb.ENCRYPTION_STATE_UNKNOWN and plain_volume:
        return HeaderVerdict(verdict.state, f"not on an encrypted volume; {verdict.evidence}")
    return verdict


def scan(ctx: ProbeContext, defaults: Locations) -> FactOutcome:
    """The chat-backup fact from `defaults` (relative to each home) and configured folders."""
    fact = pb.ChatBackupFact()
    errors: list[pb.ProbeError] = []
    homes = ctx.host.home_dirs()
    for app, path in candidates(ctx, defaults):
        fact.locations_checked += 1
        try:
            if not ctx.host.exists(path) or not ctx.host.stat(path).is_dir:
                continue
            walk = ctx.host.walk_files(path, MAX_FILES)
        except HostError as exc:
            errors.append(source_error(FACT, "backups", exc))
            continue
        files = sorted(walk.files, key=lambda f: f.mtime, reverse=True)
        backup = fact.backups.add(
            app=app,
            location=display_path(path, homes),
            file_count=len(files),
            total_bytes=sum(f.size for f in files),
        )
        if files:
            backup.newest_backup_at.FromDatetime(datetime.fromtimestamp(files[0].mtime, UTC))
        verdict = _encryption(ctx, path, [f.path for f in files])
        backup.encryption = verdict.state
        evidence = verdict.evidence
        if walk.truncated:
            evidence += f"; only the first {MAX_FILES} files were counted"
        backup.encryption_evidence = evidence
    return FactOutcome(fact, errors)
