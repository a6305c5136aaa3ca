"""Prove that a later audit bundle continues an earlier one (`audit verify NEW --after OLD`),
offline, with only the collector's public key: the consistency check Certificate Transparency
runs between two heads of one log.

OLD committed, signed, to the chain's head when it was exported (`head_seq`, `head_hash`).
NEW continues OLD when NEW's own hash-linked chain passes through that head: NEW holds the
entry at `head_seq` with the same hash, or links to it as the entry just before its period.
Each hash covers the one before it, so one equal hash shows that every entry up to it is the
one OLD saw. Whoever runs the collector holds the database and the signing key, and can
rewrite rows, recompute the chain and sign a new bundle, but cannot make it agree with a head
an auditor already holds.

Only what NEW links by hashes counts as proof: its period's entries and the entry before them
(`prev_seq`, `prev_hash`). NEW's own head and its opening entries are signed claims, not linked
to the period. To say where the chains part, the check also compares every sequence number
both bundles hold a hash for, and every record both hold in full (period or opening).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from devposture.collector.evidence.chain import Entry
from devposture.collector.evidence.verify import Checked, Progress, Verdict, check_bundle
from devposture.policy.cli_messages import told

# Each in both languages, as the English has always been (`text()`); a Chinese reader's copy
# has the catalog's Chinese alone.
PASSED = told(
    "No record up to the earlier export was changed, removed or reordered since.\n"
    "验证通过：新证据包延续了旧证据包的哈希链，旧包导出前的记录此后未被改写。"
)
REWRITTEN = told(
    "the later bundle does not continue the earlier one: history the earlier bundle committed"
    " to was rewritten. 验证失败：两个证据包的哈希链不一致，旧包导出前的历史被改写。"
)
UNPROVEN = told(
    "these two bundles cannot show that the later continues the earlier (nothing was found"
    " changed). 验证失败：无法证明新证据包延续旧证据包。"
)
ALONE = told(
    "each bundle must verify alone before one can be shown to continue the other."
    " 验证失败：证据被修改，或签名密钥不符。"
)
LISTED = 10  # records named one by one when they differ; the rest are counted


class NotComparable(Exception):
    """The bundles cannot be compared (other collectors, or the wrong way round); the message
    says why and what to do."""


@dataclass(frozen=True)
class _Side:
    """What one bundle says about the chain. Its period's entries are streamed from the
    bundle when compared (`linked`), never held: a quarter is millions of them."""

    name: str
    checked: Checked
    opening: dict[int, Entry]  # seq -> opening records (bounded by the fleet)
    head: tuple[int, bytes]  # the chain's head when it was exported (signed)
    start: int | None  # the entry just before the period (None: a format-1 empty bundle)
    prev_hash: bytes
    first: int | None  # the period's first and last entries (None: an empty period)
    last: int | None
    generated: dt.datetime | None

    def exported_at(self) -> str:
        """When it was exported, as the company reads it (its context's time zone)."""
        return self.checked.local(self.checked.manifest.get("generated_at"))

    @property
    def end(self) -> int | None:
        """The last entry its linked chain reaches."""
        return self.last if self.last is not None else self.start

    def links(self, seq: int) -> bool:
        """Whether the bundle links `seq` into its period by hashes."""
        return seq == self.start or (
            self.first is not None and self.last is not None and self.first <= seq <= self.last
        )

    def linked(self, *, with_head: bool = False) -> Iterator[tuple[int, bytes, Entry | None]]:
        """(seq, hash, entry or None) of every hash it links, in sequence order; with its
        head at export too when asked (every hash it commits to)."""
        last = -1
        if self.start is not None:
            yield self.start, self.prev_hash, None
            last = self.start
        for entry in self.checked.entries():
            yield entry.seq, entry.hash, entry
            last = entry.seq
        if with_head and self.head[0] > last:
            yield self.head[0], self.head[1], None

    def role(self, seq: int) -> str:
        if seq == self.start:
            return told("the entry just before {bundle}'s period", bundle=self.name)
        if self.links(seq) and seq == self.head[0]:
            return told("{bundle}'s last entry, its chain head at export", bundle=self.name)
        if self.links(seq):
            return told("an entry of {bundle}'s period", bundle=self.name)
        return told("{bundle}'s chain head at export", bundle=self.name)


def verify_continuation(
    new: Path, old: Path, public_key: Ed25519PublicKey,
    progress: Callable[[Path], Progress] | None = None,
) -> Verdict:  # fmt: skip
    """Verify NEW and OLD alone, then that NEW's chain extends the head OLD committed to
    (`progress(path)` gives what shows each bundle's progress).

    Raises NotComparable when the bundles are from different collectors, are one and the same
    file, or OLD is not the older of the two."""
    if _one_file(new, old):
        raise NotComparable(told(
            "{new} and {old} are the same file: give the bundle exported before it after"
            " --after (`audit verify {new} --after EARLIER.zip`)", new=new.name, old=old.name,
        ))  # fmt: skip
    later = check_bundle(new, public_key, None if progress is None else progress(new))
    earlier = check_bundle(old, public_key, None if progress is None else progress(old))
    _same_collector(new.name, old.name, later, earlier)
    verdict = Verdict(passed=PASSED, failed=ALONE)
    for path, checked in ((old, earlier), (new, later)):
        verdict.problems += [told("{bundle}: {problem}", bundle=path.name, problem=p)
                             for p in checked.verdict.problems]
    if verdict.problems:
        return verdict
    o, n = _side(old.name, earlier), _side(new.name, later)
    verdict.problems += _order(o, n)
    compared = _compare(o, n)
    verdict.problems += _divergence(o, n, compared)
    verdict.failed = REWRITTEN
    if not verdict.problems:
        verdict.problems += _unproven(o, n)
        verdict.failed = UNPROVEN
    head_seq, head_hash = o.head
    both = compared.common
    span = (told("none") if not both else told("seq {first}", first=both[0])
            if both[1] <= both[0] else told("seq {first}–{last}", first=both[0], last=both[1]))
    verdict.summary = (
        told("{newer} continues {older}: {older}'s chain head at export (seq {head}, hash "
             "{hash}…) is {role}, with the same hash, and the two agree on every sequence "
             "number both hold ({span}). {newer} alone: {alone}",
             newer=n.name, older=o.name, head=head_seq, hash=head_hash.hex()[:16],
             role=n.role(head_seq), span=span, alone=later.verdict.summary)
    )
    return verdict


def _same_collector(new: str, old: str, later: Checked, earlier: Checked) -> None:
    keys = (earlier.manifest.get("signing_key"), later.manifest.get("signing_key"))
    if all(keys) and keys[0] != keys[1]:
        raise NotComparable(
            told("the bundles are from different collectors: {old} was signed by {key_old}, "
                 "{new} by {key_new}. Compare bundles of one collector, with its public key",
                 old=old, key_old=keys[0], new=new, key_new=keys[1])
        )


def _one_file(a: Path, b: Path) -> bool:
    try:
        return a.samefile(b)
    except OSError:  # one cannot be read: verifying it says so
        return False


def _side(name: str, checked: Checked) -> _Side:
    claims = checked.manifest.get("chain", {})
    first, last = claims.get("first_seq"), claims.get("last_seq")
    first = first if isinstance(first, int) else None
    last = last if isinstance(last, int) and first is not None and last >= first else None
    start = claims.get("prev_seq", None if first is None else first - 1)
    try:
        prev_hash = bytes.fromhex(str(claims["prev_hash"])) if isinstance(start, int) else b""
        head = (int(claims["head_seq"]), bytes.fromhex(str(claims["head_hash"])))
    except (KeyError, TypeError, ValueError) as exc:
        raise NotComparable(told("{bundle}: the manifest's chain cannot be read ({problem})",
                                 bundle=name, problem=str(exc))) from None
    try:
        generated: dt.datetime | None = dt.datetime.fromisoformat(
            str(checked.manifest.get("generated_at"))
        )
    except ValueError:
        generated = None  # then the heads alone say which is older
    return _Side(
        name, checked, {e.seq: e for e in checked.opening}, head,
        start if isinstance(start, int) else None, prev_hash,
        first if last is not None else None, last, generated,
    )  # fmt: skip


def _name(entry: Entry) -> str:
    return told("{kind} record seq {seq} ({key})", kind=entry.kind, seq=entry.seq, key=entry.key)


def _same(a: Entry, b: Entry) -> bool:
    return (a.kind, a.at_us, a.key, a.payload) == (b.kind, b.at_us, b.key, b.payload)


@dataclass
class _Compared:
    """What one pass over both bundles found (kept small: the first differences only)."""

    common: tuple[int, int] | None = None  # first and last seq both hold a hash for (not 0)
    differ: int | None = None  # the first seq whose hashes differ
    agreed_before: int | None = None  # the last seq both agree on before it
    hashes: tuple[bytes, bytes] = (b"", b"")  # OLD's and NEW's hash at `differ`
    changed: list[tuple[Entry, Entry]] = field(default_factory=list)  # first LISTED + 1
    changed_count: int = 0
    held: dict[int, Entry] = field(default_factory=dict)  # whole entries at `differ`

    def change(self, ours: Entry, theirs: Entry) -> None:
        self.changed_count += 1
        if len(self.changed) <= LISTED:
            self.changed.append((ours, theirs))


def _compare(o: _Side, n: _Side) -> _Compared:
    """One merge of OLD's committed hashes with NEW's linked ones, both in sequence order:
    where they agree and first differ, and which records both hold differ in content."""
    out = _Compared()
    theirs, ours = o.linked(with_head=True), n.linked()
    a, b = next(theirs, None), next(ours, None)
    while a is not None or b is not None:
        if b is None or (a is not None and a[0] < b[0]):
            assert a is not None
            if a[2] is not None and (other := n.opening.get(a[0])) and not _same(a[2], other):
                out.change(a[2], other)
            a = next(theirs, None)
            continue
        if a is None or b[0] < a[0]:
            if b[2] is not None and (mine := o.opening.get(b[0])) and not _same(mine, b[2]):
                out.change(mine, b[2])
            b = next(ours, None)
            continue
        seq = a[0]
        if seq:
            out.common = (seq, seq) if out.common is None else (out.common[0], seq)
        old_entry = a[2] or o.opening.get(seq)
        new_entry = b[2] or n.opening.get(seq)
        if a[1] != b[1] and out.differ is None:
            out.differ, out.hashes = seq, (a[1], b[1])
            out.held = {k: e for k, e in ((0, old_entry), (1, new_entry)) if e is not None}
        elif a[1] == b[1] and out.differ is None:
            out.agreed_before = seq
        if old_entry is not None and new_entry is not None and not _same(old_entry, new_entry):
            out.change(old_entry, new_entry)
        a, b = next(theirs, None), next(ours, None)
    for seq in sorted(set(o.opening) & set(n.opening)):
        if not _same(o.opening[seq], n.opening[seq]):
            out.change(o.opening[seq], n.opening[seq])
    out.changed.sort(key=lambda pair: pair[0].seq)
    return out


def _divergence(o: _Side, n: _Side, found: _Compared) -> list[str]:
    """Where the two bundles disagree on the chain, named by sequence number and bundle."""
    changed, total = found.changed, found.changed_count
    problems: list[str] = []
    d = found.differ
    if d is not None:
        before = found.agreed_before
        hashes = (told("{older_role} has hash {older_hash}…, {newer_role} {newer_hash}…",
                       older_role=o.role(d), older_hash=found.hashes[0].hex()[:16],
                       newer_role=n.role(d), newer_hash=found.hashes[1].hex()[:16]))  # fmt: skip
        if changed and changed[0][0].seq == d:
            problems.append(
                told("the chains diverge at seq {seq}: {older} holds {theirs}, {newer} holds "
                     "{ours} with other content ({hashes}): rewritten after {older} was "
                     "exported",
                     seq=d, older=o.name, theirs=_name(changed[0][0]), newer=n.name,
                     ours=_name(changed[0][1]), hashes=hashes)
            )
            changed, total = changed[1:], total - 1
        elif before == d - 1:
            entry = found.held.get(1) or found.held.get(0)
            what = _name(entry) if entry else told('the entry at seq {seq}', seq=d)
            problems.append(
                told('the chains diverge at seq {seq}: {what} differs although both '
                     'bundles agree on seq {before} before it ({hashes}): rewritten after '
                     '{older} was exported',
                     seq=d, what=what, before=before, hashes=hashes, older=o.name)
            )
        else:
            where = (told("at or before seq {seq}", seq=d) if before is None
                     else told("in seq {from_seq}–{seq}", from_seq=before + 1, seq=d))
            problems.append(
                told("the chains diverge {where}: {hashes}, so a record {where} was changed, "
                     "removed or inserted after {older} was exported",
                     where=where, hashes=hashes, older=o.name)
                + ("" if changed else " (neither bundle holds both versions of it in full)")
            )
    for theirs, ours in changed[:LISTED]:
        problems.append(
            told("{theirs} in {older} is not what {newer} holds at seq {theirs_seq} ({ours}, "
                 "other content): rewritten after {older} was exported",
                 theirs=_name(theirs), older=o.name, newer=n.name, theirs_seq=theirs.seq,
                 ours=_name(ours))
        )
    if total > LISTED:
        problems.append(told('… and {count} more records that differ between them',
                             count=total - LISTED))
    return problems


def _order(o: _Side, n: _Side) -> list[str]:
    """OLD must be the older export: raise when the arguments are the wrong way round; a
    problem when NEW, exported later, holds a shorter chain than OLD committed to."""
    swap = told("give the earlier bundle after --after: `audit verify {older} --after {newer}`",
                older=o.name, newer=n.name)
    exported = told("{older} was exported {older_at}, {newer} {newer_at}",
                    older=o.name, older_at=o.exported_at(), newer=n.name,
                    newer_at=n.exported_at())  # fmt: skip
    if o.head[0] > n.head[0]:
        if o.generated is not None and n.generated is not None and o.generated < n.generated:
            return [
                told("{newer}'s chain ends at seq {newer_head}, but {older}, exported before "
                     "it, committed to seq {older_head}: seq {first_gone}–{older_head} were "
                     "removed ({exported})",
                     newer=n.name, newer_head=n.head[0], older=o.name, older_head=o.head[0],
                     first_gone=n.head[0] + 1, exported=exported)
            ]
        raise NotComparable(
            told("{older} is not older than {newer}: its chain head at export is seq "
                 "{older_head}, {newer}'s seq {newer_head} ({exported}); {swap}",
                 older=o.name, newer=n.name, older_head=o.head[0], newer_head=n.head[0],
                 exported=exported, swap=swap)
        )
    if o.generated is not None and n.generated is not None and o.generated > n.generated:
        raise NotComparable(told("{older} is not older than {newer}: {exported}; {swap}",
                                 older=o.name, newer=n.name, exported=exported, swap=swap))
    return []


def _unproven(o: _Side, n: _Side) -> list[str]:
    """Nothing differs; say why, if so, NEW does not reach the head OLD committed to."""
    head = o.head[0]
    if n.links(head):
        return []
    if n.start is None:
        return [
            told("{newer} holds no records and, as a format-1 bundle, does not say where it "
                 "links into the chain: export its period again",
                 newer=n.name)
        ]
    if head < n.start:
        return [
            told("{newer}'s period links into the chain at seq {start}, after {older}'s head "
                 "(seq {head}): seq {after_head}–{start} are in neither bundle, so nothing "
                 "links the two. Check {newer} after the bundle(s) in between, or export a "
                 "period that starts before seq {after_head}",
                 newer=n.name, start=n.start, older=o.name, head=head, after_head=head + 1)
        ]
    return [
        told("{older}'s chain head at export (seq {head}) is past the end of {newer}'s period "
             "(seq {end}), so {newer} cannot show that it leads there. Check {older} again "
             "with a bundle whose period reaches seq {head}",
             older=o.name, head=head, newer=n.name, end=n.end)
    ]
