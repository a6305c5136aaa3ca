"""Check an audit bundle with only the collector's public key (`audit verify`): no database.

Every check runs even after one fails, so the verdict names each record that was changed,
removed, moved or added, not only the first problem.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import datetime as dt
import functools
import hashlib
import json
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Generic, TypeVar, cast

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from devposture.collector import gc_settle
from devposture.collector.evidence import (
    body_lines,
    bundle,
    deflate,
    fact_groups,
    html,
    member_bytes,
    signing,
)
from devposture.collector.evidence.body_lines import NO_FACTS, Bodies, FactLine, Value
from devposture.collector.evidence.chain import (
    PRUNE,
    REPORT,
    REPORT_GROUP,
    Entry,
    SealOrder,
    group_range,
    group_records,
)
from devposture.collector.evidence.member_lines import BundleUnreadable, MemberLines
from devposture.collector.evidence.summary import Summary, zone_of
from devposture.policy.catalogs import Lang
from devposture.policy.cli_messages import Said, Told, enumeration, told
from devposture.policy.moments import moment as shown

V = TypeVar("V")


@dataclass
class Verdict:
    problems: list[str] = field(default_factory=list)
    # What could not be checked, without being wrong (printed as "note:" lines).
    notes: list[str] = field(default_factory=list)
    summary: str = ""
    # What the verdict line says after the summary, or after the count of problems (the
    # check that bundles continue each other says its own).
    # Both languages in the English (`text()`, as it always was); a Chinese reader's copy
    # has the Chinese alone (the catalog's entry).
    passed: str = told(
        "Nothing was changed, removed or reordered.\n验证通过：证据完整，未被修改、删除或重排。"
    )
    failed: str = told(
        "this bundle is not the evidence the collector signed with this key."
        " 验证失败：证据被修改，或签名密钥不符。"
    )

    @property
    def ok(self) -> bool:
        return not self.problems

    def text(self) -> str:
        """In English, as scripts and older tests read it."""
        return self.worded("en")

    def worded(self, lang: Lang) -> str:
        """The notes, the problems and the verdict line, in `lang` (each finding worded where
        it carries its template; the English is `text()`, byte for byte)."""
        lines = [told("note: {note}", note=n).worded(lang) for n in self.notes]
        if self.ok:
            return "".join(line + "\n" for line in lines) + told(
                "VERIFIED: {summary}. {passed}", summary=self.summary, passed=self.passed
            ).worded(lang) + "\n"
        lines += [told("problem: {problem}", problem=p).worded(lang) for p in self.problems]
        lines.append(told("NOT VERIFIED: {count} problem(s): {failed}",
                          count=len(self.problems), failed=self.failed).worded(lang))
        return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Checked:
    """A bundle verified alone, and what was read from it (for `--after`): its opening
    records (bounded by the fleet); its period's entries are streamed again (`entries`)."""

    verdict: Verdict
    manifest: dict[str, Any]
    opening: list[Entry]
    path: Path | None = None
    context: bytes | None = None  # context.json as the bundle holds it

    def local(self, moment: object) -> str:
        """A manifest's time as the company reads it, in the bundle's own time zone."""
        return _local(moment, self.context)

    def entries(self) -> Iterator[Entry]:
        """The period's entries as the bundle holds them, in its order (one pass over the
        member; after a verdict without problems, these are the signed entries)."""
        if self.path is None:
            return
        with zipfile.ZipFile(self.path) as archive:
            member = MemberLines(archive, bundle.CHAIN, [])
            for _, line in member.lines():
                with contextlib.suppress(bundle.Malformed):
                    yield bundle.parse_entry(line)


def _name(entry: Entry) -> str:
    return told("{kind} record seq {seq} ({key})", kind=entry.kind, seq=entry.seq, key=entry.key)


def _bodies_of(entry: Entry) -> str:
    """Worded only for a problem: a quarter has hundreds of thousands of groups."""
    return told("the bodies of {entry}", entry=_name(entry))


# (records checked, records the manifest names): called every PROGRESS_EVERY records.
Progress = Callable[[int, int], None]
PROGRESS_EVERY = 20_000


def verify_bundle(
    path: Path, public_key: Ed25519PublicKey, progress: Progress | None = None
) -> Verdict:
    return check_bundle(path, public_key, progress).verdict


def _open(path: Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except FileNotFoundError:
        # Not a verdict on the evidence: the auditor must not read "changed" into a typo.
        raise BundleUnreadable(told(
            "{path} does not exist: check the file name and folder (the bundle is the file"
            " `audit export --out` wrote)", path=path
        )) from None
    except IsADirectoryError:
        raise BundleUnreadable(told(
            "{path} is a folder: give the bundle file itself (the .zip `audit export` wrote)",
            path=path,
        )) from None
    except PermissionError:
        raise BundleUnreadable(told(
            "{path} cannot be read (permission denied): copy it somewhere you may read, or"
            " run as a user who may", path=path
        )) from None


# What reading a damaged or truncated bundle raises: the bundle is named unreadable.
_UNREADABLE: tuple[type[Exception], ...] = (OSError, zipfile.BadZipFile, EOFError, *deflate.ERRORS)


def check_bundle(
    path: Path, public_key: Ed25519PublicKey, progress: Progress | None = None
) -> Checked:
    verdict = Verdict()
    try:
        with _open(path) as archive, gc_settle.batch():  # a quarter's lines, parsed in runs
            return _check(archive, path, public_key, verdict, progress)
    except _UNREADABLE as exc:
        verdict.problems.append(told('{path} is not a readable audit bundle ({problem})',
                                     path=path, problem=str(exc)))
        if _cut_short(path):
            verdict.problems.append(told(
                "{path} ends before the zip's end record: the file is incomplete (a copy or"
                " download cut short); copy it again from where it was exported", path=path,
            ))  # fmt: skip
        return Checked(verdict, {}, [])


def _small(archive: zipfile.ZipFile, name: str) -> bytes | None:
    """A member bounded by the fleet, not the period, read whole (manifest, context,
    report)."""
    return archive.read(name) if name in archive.NameToInfo else None


def _container(archive: zipfile.ZipFile, path: Path, verdict: Verdict) -> None:
    """The zip around the members holds them and nothing else. A name twice is a forgery no
    key is needed for: this reader (Python's) reads the last copy, which the signature
    covers, while `unzip -n` or 7-Zip keeping the first would show the auditor the other.
    Bytes before the first member or after the zip's end record are no member, and no
    signature covers them."""
    seen: set[str] = set()
    for info in archive.infolist():
        if info.filename in seen:
            verdict.problems.append(told(
                "member {member} appears more than once in the bundle: another unzip tool may"
                " show a copy the signature does not cover", member=info.filename,
            ))  # fmt: skip
        seen.add(info.filename)
    first = min((info.header_offset for info in archive.infolist()), default=0)
    size = path.stat().st_size
    with path.open("rb") as raw:
        raw.seek(max(0, size - _TAIL))
        tail = raw.read()
    end = tail.rfind(_END_RECORD)
    if first != 0 or end < 0 or end + _END_SIZE + _comment_size(tail, end) != len(tail):
        verdict.problems.append(told(
            "the bundle holds bytes outside its members (before the first or after the zip's"
            " end): no signature covers them"
        ))
    elif _comment_size(tail, end):
        verdict.problems.append(told(
            "the bundle carries a zip comment ({size} bytes), which no signature covers and"
            " the collector never writes", size=_comment_size(tail, end),
        ))  # fmt: skip
    with path.open("rb") as raw:
        hidden = _between_members(archive, raw)
    if hidden is not None:
        verdict.problems.append(told(
            "the bundle holds {size} bytes between its members, at offset {offset}: an entry"
            " hidden there (which a tool reading the zip from its start would show) is covered"
            " by no signature", size=hidden[1], offset=hidden[0],
        ))  # fmt: skip


def _between_members(archive: zipfile.ZipFile, raw: IO[bytes]) -> tuple[int, int] | None:
    """(offset, size) of the first bytes between one member's data and the next member's
    header, or between the last member and the central directory; None when the members
    follow each other with nothing between. Each member's end is read from its local header
    (its name and extra fields may differ from the central directory's) and its data
    descriptor, when it has one."""
    at = 0
    for info in sorted(archive.infolist(), key=lambda i: i.header_offset):
        if info.header_offset != at:
            return (at, info.header_offset - at) if info.header_offset > at else None
        raw.seek(info.header_offset)
        header = raw.read(_LOCAL_SIZE)
        if len(header) < _LOCAL_SIZE or header[:4] != _LOCAL_RECORD:
            return None  # not a member's header: zipfile itself refuses to read it
        flags = int.from_bytes(header[6:8], "little")
        name_size, extra_size = (int.from_bytes(header[n : n + 2], "little") for n in (26, 28))
        raw.seek(info.header_offset + _LOCAL_SIZE + name_size)
        extra = raw.read(extra_size)
        at = info.header_offset + _LOCAL_SIZE + name_size + extra_size + info.compress_size
        if flags & _HAS_DESCRIPTOR:
            raw.seek(at)
            signed = raw.read(4) == _DESCRIPTOR_RECORD
            at += (4 if signed else 0) + 4 + (16 if _has_zip64(extra) else 8)
    directory = archive.start_dir
    return (at, directory - at) if directory > at else None


def _has_zip64(extra: bytes) -> bool:
    """Whether a local header's extra fields hold Zip64 sizes (its data descriptor then holds
    8-byte sizes)."""
    at = 0
    while at + 4 <= len(extra):
        kind, size = (int.from_bytes(extra[at + n : at + n + 2], "little") for n in (0, 2))
        if kind == _ZIP64_EXTRA:
            return True
        at += 4 + size
    return False


_LOCAL_RECORD, _LOCAL_SIZE, _DESCRIPTOR_RECORD = b"PK\x03\x04", 30, b"PK\x07\x08"
_HAS_DESCRIPTOR, _ZIP64_EXTRA = 0x08, 0x0001


def _cut_short(path: Path) -> bool:
    """Whether the file begins as a zip (a member's header) but has no end record: the rest
    of a bundle that was cut off."""
    try:
        with path.open("rb") as raw:
            start = raw.read(4)
            raw.seek(max(0, path.stat().st_size - _TAIL))
            tail = raw.read()
    except OSError:
        return False
    return start == _LOCAL_RECORD and _END_RECORD not in tail


# The zip's end of central directory record: its signature, its size without the comment,
# and how far from the end it may be (its comment is at most 64 KiB).
_END_RECORD, _END_SIZE, _TAIL = b"PK\x05\x06", 22, 22 + 65_535


def _comment_size(tail: bytes, end: int) -> int:
    return int.from_bytes(tail[end + 20 : end + 22], "little")


def _check(
    archive: zipfile.ZipFile, path: Path, public_key: Ed25519PublicKey, verdict: Verdict,
    progress: Progress | None = None,
) -> Checked:  # fmt: skip
    _container(archive, path, verdict)
    manifest_bytes = _small(archive, bundle.MANIFEST) or b""
    try:
        manifest = json.loads(manifest_bytes)
        assert isinstance(manifest, dict) and manifest.get("format") in bundle.FORMATS
    except (ValueError, AssertionError):
        verdict.problems.append(told('{member} is missing or not a {format} manifest',
                                     member=bundle.MANIFEST, format=bundle.FORMAT))
        return Checked(verdict, {}, [])
    try:  # as the exporter writes it: base64, one newline; nothing else may ride along
        text = _small(archive, bundle.SIGNATURE) or b""
        signature = base64.b64decode(text.removesuffix(b"\n"), validate=True)
    except binascii.Error:
        signature = b""
    if bundle.SIGNATURE not in archive.NameToInfo:
        verdict.problems.append(told(
            "member {member} is missing: the bundle carries no signature, so nothing in it can"
            " be trusted", member=bundle.SIGNATURE,
        ))  # fmt: skip
    elif not signing.signature_holds(public_key, manifest_bytes, signature):
        verdict.problems.append(
            told('the signature does not match: the manifest was changed, or the bundle '
                 'was signed by another key (this key is {key}, the manifest names '
                 '{named})',
                 key=signing.fingerprint(public_key), named=manifest.get('signing_key'))
        )
    members: dict[str, str] = manifest.get("members", {})
    small = {name: _small(archive, name) for name in (bundle.CONTEXT, bundle.HTML)}
    opening_verdict = Verdict()
    # The opening and the prunings, line by line (a fleet's opening is tens of megabytes).
    bounded = {name: MemberLines(archive, name, opening_verdict.problems)
               for name in (bundle.OPENING, bundle.PRUNED)}  # fmt: skip
    opening = _opening(bounded[bundle.OPENING], opening_verdict)
    prunes = _prunes(bounded[bundle.PRUNED], manifest, opening_verdict)
    streamed = Verdict()
    layout = html.layout_of(manifest)
    figures = _figures(manifest, small[bundle.CONTEXT], opening) if layout in html.DRAWS else None
    # The chain's bytes inflated and hashed beside the walk when the member is large.
    chain_bytes = member_bytes.opened(archive, path, bundle.CHAIN)
    try:
        readers = {
            bundle.CHAIN: MemberLines(archive, bundle.CHAIN, streamed.problems, chain_bytes),
            bundle.INDEX: MemberLines(archive, bundle.INDEX, streamed.problems),
        }
        walk, digests = _walked(archive, path, streamed, functools.partial(
            _Walk, manifest, readers, streamed, figures, prunes, progress=progress))  # fmt: skip
    finally:
        chain_bytes.close()
    digests |= {name: reader.digest() for name, reader in bounded.items()}
    count = walk.records
    _pruned_bodies(manifest, walk.pruned, prunes, verdict, small[bundle.CONTEXT])
    for name, data in small.items():
        if data is not None:
            digests[name] = hashlib.sha256(data).hexdigest()
    for name, digest in sorted(members.items()):
        if name not in archive.NameToInfo:
            verdict.problems.append(told('member {member} was removed from the bundle',
                                         member=name))
        elif (digests[name] if name in digests else _digest_of(archive, name)) != digest:
            verdict.problems.append(told('member {member} was changed after the collector '
                                         'signed it',
                                         member=name))
    for name in sorted(set(archive.NameToInfo) - set(members) -
                       {bundle.MANIFEST, bundle.SIGNATURE}):  # fmt: skip
        verdict.problems.append(told('member {member} was added to the bundle', member=name))
    verdict.problems += streamed.problems + opening_verdict.problems
    figures = walk.figures  # the walk's, or why it could not go on folding
    if figures is None:
        # Signed, so unchanged; but drawn by another version's layout, which this one
        # cannot redraw to compare with the records.
        verdict.notes.append(
            told('{member} was drawn by report layout {layout}, this devposture draws '
                 'layout {html_layout}: its bytes are checked against the signature, but '
                 'it was not redrawn from the records (verify with the devposture version '
                 'named in the manifest to check that too)',
                 member=bundle.HTML, layout=layout, html_layout=html.LAYOUT)
        )
    else:
        _redraw(small[bundle.HTML], manifest, small[bundle.CONTEXT], figures, verdict)
    context = small[bundle.CONTEXT]
    verdict.summary = _summary(manifest, count, context, signing.fingerprint(public_key))
    return Checked(verdict, manifest, opening, path, context)


def _walked(
    archive: zipfile.ZipFile, path: Path, verdict: Verdict, walk_with: Callable[..., _Walk]
) -> tuple[_Walk, dict[str, str]]:  # fmt: skip
    """The walk over the chain, the index and the report bodies (those read in a process
    beside this one when the member is large: `body_lines`), run; and the three members'
    digests. `walk_with(bodies=...)` makes the walk, which names what it finds in `verdict`
    (and the body reader too: what it finds comes between the bodies it reads)."""
    bodies = body_lines.opened(archive, path, verdict.problems)
    try:
        walk = walk_with(bodies=bodies)
        walk.run()
        digests = {name: reader.digest() for name, reader in walk.readers.items()}
        digests[bundle.REPORTS] = bodies.digest()
    finally:
        bodies.close()
    return walk, digests


def _summary(manifest: dict[str, Any], count: int, context: bytes | None, key: str) -> Told:
    """What the bundle holds, for the verdict line. A period in which nothing was written is
    said in words, as the export says it: its range of sequence numbers read "chain seq —–—"
    (three dashes nobody could read) and its "last hash" was the hash before the period."""
    chain, period = manifest.get("chain", {}), manifest.get("period", {})
    start, end = _local(period.get("from"), context), _local(period.get("to"), context)
    if count == 0 and chain.get("first_seq") is None and chain.get("last_seq") is None:
        return told("{count} records ({span}) written {start} – {end}, signed by {key}",
                    count=count, span=told("the evidence chain holds no entry for this period"),
                    start=start, end=end, key=key)  # fmt: skip
    return told(
        "{count} records (chain seq {first}–{last}, last hash {hash}…) written {start} –"
        " {end}, signed by {key}",
        count=count, first=_seq(chain.get("first_seq")), last=_seq(chain.get("last_seq")),
        hash=str(chain.get("last_hash"))[:16], start=start, end=end, key=key,
    )


def _local_us(value: object, context: bytes | None) -> str:
    """A record's time (microseconds since 1970, UTC) as the company reads it (`_local`); as
    written when it is not one."""
    if isinstance(value, bool) or not isinstance(value, int):
        return str(value)
    try:
        moment = dt.datetime.fromtimestamp(0, dt.UTC) + dt.timedelta(microseconds=value)
    except OverflowError:
        return str(value)
    return _local(moment.isoformat(), context)


def _seq(value: object) -> object:
    """A signed range's end, "—" for a period in which nothing was written (null)."""
    return "—" if value is None else value


def _local(moment: object, context: bytes | None) -> str:
    """A manifest's time (UTC) as the company reads it, "2026-09-02 08:00 (UTC+08:00)" (in
    Chinese "2026-09-02 08:00（UTC+08:00）"), in the zone the bundle's context records (Beijing
    when it records none); as written when it is not a time."""
    try:
        zone = zone_of(json.loads(context or b"{}"))
        at = dt.datetime.fromisoformat(str(moment))
        return shown(at, zone.tzinfo)
    except (ValueError, TypeError, AttributeError):
        return str(moment)


def _digest_of(archive: zipfile.ZipFile, name: str) -> str:
    """The SHA-256 of a member the checks above did not read (one the manifest names beside
    the usual ones)."""
    return MemberLines(archive, name, []).digest()


def _figures(
    manifest: dict[str, Any], context_bytes: bytes | None, opening: list[Entry]
) -> Summary | Exception:
    """The summary the report was drawn from, fed as the walk reads the period; or why it
    cannot be made (a context that is not the collector's)."""
    try:
        figures = Summary(html.header_of(manifest), html.load_context(context_bytes or b"{}"))
        figures.opening(opening)
    except (ValueError, KeyError, TypeError, AssertionError, AttributeError) as exc:
        return exc
    return figures


def _redraw(
    page: bytes | None, manifest: dict[str, Any], context_bytes: bytes | None,
    figures: Summary | Exception, verdict: Verdict,
) -> None:  # fmt: skip
    """The report drawn again from the records must be the bundle's, byte for byte."""
    try:
        if isinstance(figures, Exception):
            raise figures
        figures.finish()
        context = html.load_context(context_bytes or b"{}")
        again = html.draw(html.header_of(manifest), context, figures, html.layout_of(manifest))
    except (ValueError, KeyError, TypeError, AssertionError, AttributeError) as exc:
        verdict.problems.append(told('the report cannot be made again from the records '
                                     '({problem})',
                                     problem=str(exc)))
    else:
        if again != page:
            verdict.problems.append(
                told('{member} does not show what the records say (edited or replaced)',
                     member=bundle.HTML)
            )


class _Walk:
    """One pass over the period's entries, their index and the report bodies together (each
    in sequence order): every entry recomputed and linked to the one before, named when
    edited, removed, moved or added; memory bounded by the damage found, not the period."""

    def __init__(
        self, manifest: dict[str, Any], readers: dict[str, MemberLines], verdict: Verdict,
        figures: Summary | Exception | None, prunes: list[Entry], *,
        bodies: body_lines.InProcess | body_lines.Beside, progress: Progress | None = None,
    ) -> None:  # fmt: skip
        self.claims: dict[str, Any] = manifest.get("chain", {})
        self.progress = progress
        self.verdict, self.figures = verdict, figures
        first, last = self.claims.get("first_seq"), self.claims.get("last_seq")
        self.ranged = isinstance(first, int) and isinstance(last, int)
        self.first: int = first if isinstance(first, int) else 0
        self.last: int = last if isinstance(last, int) else -1
        self.readers = readers
        self.chain = readers[bundle.CHAIN]
        self.index = _Ahead(readers[bundle.INDEX].lines(), self._index_line)
        self.bodies: _Ahead[Bodies] = _Ahead(enumerate(bodies.values()), _as_read)
        self.gaps: list[list[int]] = []  # [from, to] runs of expected seqs not seen yet
        self.next_seq = self.first  # every expected seq below this was seen or is a gap
        self.previous: Entry | None = None
        self.pending: dict[int, Entry] = {}  # report entries whose body was not read yet
        self.count = 0  # entries
        self.records = 0  # records: a report group counts as its reports
        self.sealed = SealOrder()  # each report group seals numbers after the one before
        # Format 5's window of fact sets and parts, replayed as the exporter shipped them.
        self.replay = fact_groups.Replay()
        # Bodies received before this were pruned under the retention policy (signed claims:
        # the prune entries in pruned.jsonl); those missing are counted, not deleted.
        self.pruned_before = max((_number(p, "before_us") for p in prunes), default=0)
        self.pruned = 0
        # A pruning written within the period is the chain's own entry at its seq, not a
        # record only pruned.jsonl holds (one made up to excuse deleted bodies).
        self.prune_claims = {p.seq: p for p in prunes if self.first <= p.seq <= self.last}

    def _index_line(self, number: int, item: object) -> tuple[int, tuple[str, str, str]] | None:
        del number
        try:
            assert isinstance(item, list)
            return int(item[0]), (str(item[1]), str(item[2]), str(item[3]))
        except (IndexError, TypeError, ValueError, KeyError, AssertionError):
            self.verdict.problems.append(told('{member} has a malformed line (edited)',
                                              member=bundle.INDEX))
            return None

    def run(self) -> int:
        for number, line in self.chain.lines():
            try:
                entry = bundle.parse_entry(line)
            except bundle.Malformed as exc:
                self.verdict.problems.append(told("{member} line {number}: {problem} (edited)",
                                                  member=bundle.CHAIN, number=number,
                                                  problem=str(exc)))
                continue
            if len(line) != len(_CHAIN_FIELDS):  # what the hash does not cover rides along
                self.verdict.problems.append(told(
                    "{member} line {number}: fields other than a chain entry's {fields}"
                    " (edited)", member=bundle.CHAIN, number=number,
                    fields=enumeration(_CHAIN_FIELDS),
                ))  # fmt: skip
            self.count += 1
            if self.progress is not None and self.count % PROGRESS_EVERY == 0:
                self.progress(self.count, self._expected())
            self._place(entry)
            self._link(entry)
            claim = self.prune_claims.pop(entry.seq, None)
            if claim is not None and (claim.hash, claim.kind) != (entry.hash, entry.kind):
                self._made_up(claim)
            if entry.kind == REPORT:
                self._body_of(entry)
            elif entry.kind == REPORT_GROUP:
                self._group_bodies(entry)
            elif entry.kind == fact_groups.REPORT_FACTS:
                self._fact_group(entry)
            else:
                self.records += 1
            if isinstance(self.figures, Summary):
                try:
                    self.figures.add(entry)
                except (ValueError, KeyError, TypeError, AttributeError) as exc:
                    # An edited record the report cannot be drawn from (named above, as
                    # not matching its hash): the redraw says so, the walk goes on.
                    self.figures = exc
        if self.progress is not None:
            self.progress(self.count, max(self.count, self._expected()))
        if self.ranged and self.next_seq <= self.last:
            self.gaps.append([self.next_seq, self.last])
        for claim in self.prune_claims.values():  # its seq is in the period, not in the chain
            self._made_up(claim)
        self._missing()
        self._ends()
        self._leftover_bodies()
        _range(self.claims, self.verdict)
        return self.count

    def _made_up(self, claim: Entry) -> None:
        self.verdict.problems.append(told(
            "the pruning seq {seq} in {member} is not the chain's entry at seq {seq}:"
            " fabricated, to excuse deleted report bodies", seq=claim.seq, member=bundle.PRUNED,
        ))  # fmt: skip

    def _expected(self) -> int:
        """How many records the signed range names (what progress counts towards)."""
        return self.last - self.first + 1 if self.ranged else 0

    def _place(self, entry: Entry) -> None:
        """Where the entry falls against the signed range and the entries seen before it."""
        seq = entry.seq
        if not self.ranged or not self.first <= seq <= self.last:
            self.verdict.problems.append(told('{entry} is outside the signed range: '
                                              'inserted',
                                              entry=_name(entry)))
            return
        first_time = True
        if seq >= self.next_seq:
            if seq > self.next_seq:
                self.gaps.append([self.next_seq, seq - 1])
            self.next_seq = seq + 1
        elif not self._fill(seq):
            first_time = False
            self.verdict.problems.append(told('record seq {seq} appears more than once: '
                                              'inserted',
                                              seq=seq))
        indexed = self.index.get(seq)
        if indexed is None and first_time:  # the index names every entry of the period
            self.verdict.problems.append(told(
                "{entry} has no line in {member}: the index was edited",
                entry=_name(entry), member=bundle.INDEX,
            ))  # fmt: skip
        elif indexed != (entry.kind, entry.key, entry.hash.hex()) and (
            entry.recomputed() == entry.hash
        ):  # fmt: skip
            self.verdict.problems.append(
                told('{entry} is not the entry the index names: replaced', entry=_name(entry))
            )

    def _fill(self, seq: int) -> bool:
        """Take `seq` out of the gaps (an entry that came late); False when it was no gap."""
        for i, (low, high) in enumerate(self.gaps):
            if low <= seq <= high:
                self.gaps[i : i + 1] = [r for r in ([low, seq - 1], [seq + 1, high])
                                        if r[0] <= r[1]]  # fmt: skip
                return True
        return False

    def _link(self, entry: Entry) -> None:
        if entry.recomputed() != entry.hash:
            self.verdict.problems.append(told('{entry} does not match its hash: edited',
                                              entry=_name(entry)))
        previous = self.previous
        if previous is not None and entry.seq < previous.seq:
            self.verdict.problems.append(
                told('{entry} comes after {previous}: reordered',
                     entry=_name(entry), previous=_name(previous))
            )
        elif previous is not None and entry.seq == previous.seq + 1 and (
            entry.prev_hash != previous.hash
        ):
            self.verdict.problems.append(
                told('{entry} does not link to {previous}: edited or replaced',
                     entry=_name(entry), previous=_name(previous))
            )
        if entry.seq == self.first and entry.prev_hash.hex() != self.claims.get("prev_hash"):
            self.verdict.problems.append(
                told('{entry} does not link to the signed hash before the period: edited',
                     entry=_name(entry))
            )
        self.previous = entry

    def _group_bodies(self, entry: Entry) -> None:
        """Match each report of a group entry with its body on the group's line."""
        try:
            records = group_records(entry)
        except ValueError:
            self.verdict.problems.append(
                told('{entry} does not hold a list of reports: edited', entry=_name(entry))
            )
            return
        self.records += len(records)
        self._sealed_once(entry)
        found = self.bodies.get(entry.seq)
        if found is None and all(self._was_pruned(r) for r in records):
            self.pruned += len(records)
            return
        if found is None:
            self.pending[entry.seq] = entry
            return
        self._compare_group(entry, found)

    def _fact_group(self, entry: Entry) -> None:
        """A format-5 group: its line's fact sets and parts into the window (each hashed, and
        every part a fact set names held), then each report's fact set looked up in it: so
        each body is in the bundle, every byte pinned by the chain (`fact_groups`). The
        window moves on with every group entry, its line read or not, as the exporter's."""
        try:
            found_columns = fact_groups.columns(entry)
        except ValueError:
            self.verdict.problems.append(
                told('{entry} does not hold a list of reports: edited', entry=_name(entry))
            )
            self.replay.done()
            return
        self.records += len(found_columns["report_id"])
        self._sealed_once(entry)
        found = self.bodies.get(entry.seq)
        if isinstance(found, FactLine):
            for what, digest in self.replay.take_hashed(found.sets, found.parts):
                self.verdict.problems.append(
                    told("a fact set on the line of {entry} cannot be read ({digest}…): edited",
                         entry=_name(entry), digest=digest[:16])
                    if what == "unreadable" else
                    told("a fact set on the line of {entry} names a part the bundle does not"
                         " hold ({digest}…): deleted", entry=_name(entry), digest=digest[:16])
                )  # fmt: skip
        elif found is not None:
            self.verdict.problems.append(told("{where} are not on a group's line: edited",
                                              where=_bodies_of(entry)))  # fmt: skip
        received, ids = found_columns["received_us"], found_columns["report_id"]
        for k in self.replay.unnamed(found_columns["fact_set"]):
            if self._was_pruned({"received_us": received[k]}):
                self.pruned += 1
            else:
                self.verdict.problems.append(
                    told('the body of {kind} record seq {seq} ({report_id}) is '
                         'missing: deleted',
                         kind=REPORT, seq=entry.seq, report_id=str(ids[k]))
                )  # fmt: skip
        self.replay.done()

    def _sealed_once(self, entry: Entry) -> None:
        """Report groups seal numbers in increasing order, each once (`SealOrder`)."""
        span = group_range(entry.key)
        earlier = None if span is None else self.sealed.resealed(entry.seq, span)
        if span is not None and earlier is not None:
            self.verdict.problems.append(told(
                "{entry} seals reports {first}–{last}, but seq {earlier} sealed them up to"
                " {through} already: reports counted twice",
                entry=_name(entry), first=span[0], last=span[1], earlier=earlier[0],
                through=earlier[1],
            ))  # fmt: skip

    def _was_pruned(self, record: dict[str, object]) -> bool:
        received = record.get("received_us")
        return isinstance(received, int) and 0 <= received < self.pruned_before

    def _compare_group(self, entry: Entry, found: Bodies) -> None:
        if not isinstance(found, list):
            self.verdict.problems.append(told("{where} are not on a group's line: edited",
                                              where=_bodies_of(entry)))
            return
        bodies = dict(found)  # report id -> its body's SHA-256
        if len(bodies) != len(found):
            self.verdict.problems.append(told('{where} name a report twice: inserted',
                                              where=_bodies_of(entry)))
        for record in group_records(entry):
            report_id = str(record.get("report_id"))
            body = bodies.pop(report_id, None)
            if body is None and self._was_pruned(record):
                self.pruned += 1
            elif body is None:
                self.verdict.problems.append(
                    told('the body of {kind} record seq {seq} ({report_id}) is '
                         'missing: deleted',
                         kind=REPORT, seq=entry.seq, report_id=report_id)
                )
            elif body != record.get("body_sha256"):  # `body_lines` hashed it
                self.verdict.problems.append(
                    told('report body seq {seq} ({report_id}) does not match its '
                         'chain entry: edited',
                         seq=entry.seq, report_id=report_id)
                )
        for report_id in bodies:
            self.verdict.problems.append(
                told('report body seq {seq} ({report_id}) has no report in its '
                     'group: inserted',
                     seq=entry.seq, report_id=report_id)
            )

    def _body_of(self, entry: Entry) -> None:
        """Match a report entry with its body line (both in sequence order)."""
        self.records += 1
        found = self.bodies.get(entry.seq)
        if found is None and 0 <= _number(entry, "received_us") < self.pruned_before:
            self.pruned += 1
            return
        if found is None:
            self.pending[entry.seq] = entry
            return
        self._compare_body(entry, found)

    def _compare(self, entry: Entry, found: Bodies) -> None:
        if entry.kind == REPORT_GROUP:
            self._compare_group(entry, found)
        else:
            self._compare_body(entry, found)

    def _compare_body(self, entry: Entry, found: Bodies) -> None:
        if isinstance(found, list | FactLine):
            self.verdict.problems.append(
                told("the body of {entry} is on a report group's line: edited", entry=_name(entry))
            )
            return
        report_id, body, facts = found
        where = told("report body seq {seq} ({report_id})", seq=entry.seq, report_id=report_id)
        if entry.key != report_id:
            self.verdict.problems.append(told('{where} has no report entry in the chain: '
                                              'inserted',
                                              where=where))
            self.verdict.problems.append(told('the body of {entry} is missing: deleted',
                                              entry=_name(entry)))
        elif hashlib.sha256(body).hexdigest() != _field(entry, "body_sha256"):
            self.verdict.problems.append(told('{where} does not match its chain entry: '
                                              'edited',
                                              where=where))
        elif facts is not NO_FACTS and facts != bundle.facts_of(body):
            self.verdict.problems.append(told('the facts shown for {where} are not its '
                                              'body: edited',
                                              where=where))

    def _leftover_bodies(self) -> None:
        """Bodies read past with no entry yet, and report entries whose body never came."""
        self.bodies.drain()
        for seq, entry in sorted(self.pending.items()):
            found = self.bodies.ahead.pop(seq, None)
            if found is not None:
                self._compare(entry, found)
            elif entry.kind == REPORT_GROUP:  # the group's line is gone: each report named
                self._compare_group(entry, [])
            else:
                self.verdict.problems.append(told('the body of {entry} is missing: deleted',
                                                  entry=_name(entry)))
        for seq, found in sorted(self.bodies.ahead.items()):
            named: str | Said
            if isinstance(found, FactLine):
                named = told("{sets} fact sets, {parts} parts", sets=len(found.sets),
                             parts=len(found.parts))  # fmt: skip
            else:
                named = enumeration(r for r, _ in found) if isinstance(found, list) else found[0]
            self.verdict.problems.append(
                told('report body seq {seq} ({named}) has no report entry in the chain: '
                     'inserted',
                     seq=seq, named=named)
            )
        for seq in self.bodies.repeated:
            self.verdict.problems.append(
                told('report body seq {seq} has no report entry in the chain: inserted', seq=seq)
            )
        for seq, previous in self.bodies.backwards:
            self.verdict.problems.append(
                told('report body seq {seq} comes after seq {previous}: reordered',
                     seq=seq, previous=previous)
            )

    def _missing(self) -> None:
        """Name each expected entry never seen, by what the index says it was."""
        if not self.gaps:
            return
        self.index.drain_to(self.last)
        for low, high in self.gaps:
            for seq in range(low, min(high, low + LISTED_MISSING - 1) + 1):
                kind, key, _ = self.index.ahead.get(seq, ("?", "?", ""))
                self.verdict.problems.append(told('{kind} record seq {seq} ({key}) is '
                                                  'missing: deleted',
                                                  kind=kind, seq=seq, key=key))
            if high - low + 1 > LISTED_MISSING:
                self.verdict.problems.append(
                    told('… and seq {from_seq}–{high} are missing too: deleted',
                         from_seq=low + LISTED_MISSING, high=high)
                )

    def _ends(self) -> None:
        previous = self.previous
        if previous is not None and previous.seq == self.last and (
            previous.hash.hex() != self.claims.get("last_hash")
        ):  # fmt: skip
            self.verdict.problems.append(
                told('{previous} is not the signed last entry of the period: edited',
                     previous=_name(previous))
            )


def _pruned_claim(manifest: dict[str, Any]) -> dict[str, Any]:
    claim = manifest.get("pruned")
    return claim if isinstance(claim, dict) else {}


def _field(entry: Entry, name: str) -> object:
    """A field of an entry's payload, or None when the payload (edited: its hash says so)
    is not a JSON object."""
    try:
        return entry.record().get(name)
    except (ValueError, AssertionError):
        return None


def _number(entry: Entry, name: str) -> int:
    """A whole-number field of an entry's payload; -1 when it has none."""
    value = _field(entry, name)
    return value if isinstance(value, int) and not isinstance(value, bool) else -1


# The fields of a line of chain.jsonl (bundle.entry_jsonl), each covered by the entry's hash.
_CHAIN_FIELDS = ("at_us", "hash", "key", "kind", "payload", "prev_hash", "seq")
LISTED_MISSING = 1000  # missing entries named one by one in a run; the rest as a range


def _as_read(number: int, value: object) -> Value:
    """A body's line as `body_lines` gives it: parsed already."""
    del number
    return cast("Value", value)


class _Ahead(Generic[V]):
    """Lines of a member in sequence order, read only as far as the walk has come: a line
    for a later seq waits in `ahead` until its entry comes (or the end)."""

    def __init__(
        self, lines: Iterator[tuple[int, Any]],
        parse: Callable[[int, object], tuple[int, V] | None],
    ) -> None:  # fmt: skip
        self._lines, self._parse = lines, parse
        self.ahead: dict[int, V] = {}
        self.repeated: list[int] = []
        self.backwards: list[tuple[int, int]] = []
        self._last = -1
        self._done = False

    def _read(self) -> bool:
        for number, raw in self._lines:
            parsed = self._parse(number, raw)
            if parsed is None:
                continue
            seq, value = parsed
            if seq < self._last:
                self.backwards.append((seq, self._last))
            self._last = max(self._last, seq)
            if seq in self.ahead:
                self.repeated.append(seq)
            self.ahead[seq] = value
            return True
        self._done = True
        return False

    def get(self, seq: int) -> V | None:
        """The line for `seq`, reading on while the member is behind it."""
        while not self._done and self._last < seq:
            self._read()
        return self.ahead.pop(seq, None)

    def drain_to(self, seq: int) -> None:
        while not self._done and self._last < seq:
            self._read()

    def drain(self) -> None:
        while not self._done:
            self._read()


def _range(claims: dict[str, Any], verdict: Verdict) -> None:
    """The signed range agrees with itself: the period links in just before its first entry
    (format 2 says where), and the head at export is not before the period's end."""
    first, last, prev_seq = claims.get("first_seq"), claims.get("last_seq"), claims.get("prev_seq")
    head_seq = claims.get("head_seq")
    if "prev_seq" in claims and isinstance(first, int) and prev_seq != first - 1:
        verdict.problems.append(
            told('the manifest links the period in at seq {prev_seq}, not just before its '
                 'first entry (seq {first}): edited',
                 prev_seq=prev_seq, first=first)
        )
    end = last if isinstance(last, int) else prev_seq
    behind = isinstance(end, int) and isinstance(head_seq, int) and head_seq < end
    other = head_seq == end and claims.get("head_hash") != claims.get("last_hash")
    if isinstance(end, int) and (behind or other):
        verdict.problems.append(
            told("the manifest's chain head (seq {head_seq}) is not at or after the "
                 "period's last entry (seq {end}): edited",
                 head_seq=head_seq, end=end)
        )


def _prunes(member: MemberLines, manifest: dict[str, Any], verdict: Verdict) -> list[Entry]:
    """The prune entries the bundle names, each against its own hash and the manifest."""
    entries = [e for e in _opening(member, verdict) if e.kind == PRUNE]
    prunes = _pruned_claim(manifest).get("prunes")
    claimed = [p.get("seq") if isinstance(p, dict) else None
               for p in (prunes if isinstance(prunes, list) else [])]  # fmt: skip
    if [e.seq for e in entries] != claimed:
        verdict.problems.append(
            told('{member} does not hold the prunings the manifest names (seq '
                 '{claimed}): edited',
                 member=bundle.PRUNED, claimed=claimed)
        )
    for entry in entries:  # a pruning deletes what was received before it ran, never after
        at_us, before_us = _number(entry, "at_us"), _number(entry, "before_us")
        if min(at_us, before_us) < 0 or before_us > at_us:
            verdict.problems.append(told(
                "the pruning seq {seq} deletes bodies received up to {before_us}, after it ran"
                " ({at_us}): fabricated", seq=entry.seq, before_us=before_us, at_us=at_us,
            ))  # fmt: skip
    return entries


def _pruned_bodies(
    manifest: dict[str, Any], found: int, prunes: list[Entry], verdict: Verdict,
    context: bytes | None,
) -> None:  # fmt: skip
    """The count of pruned bodies is the manifest's, and the auditor is told plainly, with
    the pruning's times in the company's time zone (they were microseconds since 1970)."""
    claimed = _pruned_claim(manifest).get("bodies", 0)
    if found != claimed:
        verdict.problems.append(
            told('the manifest says {claimed} report bodies of the period were pruned '
                 'under the retention policy, but {found} are missing under a pruning: '
                 'edited',
                 claimed=claimed, found=found)
        )
    if found and prunes:
        last = prunes[-1]
        verdict.notes.append(
            told("{found} report bodies of this period were deleted under the retention policy "
                 "({days} days; the last pruning, at {at}, of everything received before "
                 "{before}): their chain entries, with each body's SHA-256, remain and verify.",
                 found=found, days=_field(last, 'retention_days'),
                 at=_local_us(_field(last, 'at_us'), context),
                 before=_local_us(_field(last, 'before_us'), context))
        )


def _opening(member: MemberLines, verdict: Verdict) -> list[Entry]:
    """Entries of a member bounded by the fleet (the opening, the prunings), each against
    its own hash."""
    entries: list[Entry] = []
    for number, line in member.lines():
        try:
            entries.append(bundle.parse_entry(line))
        except bundle.Malformed as exc:
            verdict.problems.append(told('{member} line {number}: {problem} (edited)',
                                         member=member.name, number=number, problem=str(exc)))
    for entry in entries:
        if entry.recomputed() != entry.hash:
            where = told("opening") if member.name == bundle.OPENING else told("pruning")
            verdict.problems.append(told('{where} {entry} does not match its hash: edited',
                                         where=where, entry=_name(entry)))
    return entries
