"""Check an audit bundle with only the collector's public key (`audit verify`): no database.

Every check runs even after one fails, so the verdict names each record that was changed,
removed, moved or added, not only the first problem.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from devposture.collector.evidence import bundle, html, signing
from devposture.collector.evidence.chain import REPORT, Entry


class BundleUnreadable(Exception):
    """The file to verify cannot be read at all (missing, a folder, not permitted): nothing
    was verified, and nothing about the evidence can be said from it."""


@dataclass
class Verdict:
    problems: list[str] = field(default_factory=list)
    # What could not be checked, without being wrong (printed as "note:" lines).
    notes: list[str] = field(default_factory=list)
    summary: str = ""
    # What the verdict line says after the summary, or after the count of problems (the
    # check that bundles continue each other says its own).
    passed: str = (
        "Nothing was changed, removed or reordered.\n验证通过：证据完整，未被修改、删除或重排。"
    )
    failed: str = (
        "this bundle is not the evidence the collector signed with this key."
        " 验证失败：证据被修改，或签名密钥不符。"
    )

    @property
    def ok(self) -> bool:
        return not self.problems

    def text(self) -> str:
        notes = "".join(f"note: {n}\n" for n in self.notes)
        if self.ok:
            return f"{notes}VERIFIED: {self.summary}. {self.passed}\n"
        lines = [f"note: {n}" for n in self.notes] + [f"problem: {p}" for p in self.problems]
        lines.append(f"NOT VERIFIED: {len(self.problems)} problem(s): {self.failed}")
        return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Checked:
    """A bundle verified alone, and what was read from it (for `--after`)."""

    verdict: Verdict
    manifest: dict[str, Any]
    entries: list[Entry]
    opening: list[Entry]


def _name(entry: Entry) -> str:
    return f"{entry.kind} record seq {entry.seq} ({entry.key})"


def _lines(data: bytes, member: str, verdict: Verdict) -> list[Any]:
    out: list[Any] = []
    for number, line in enumerate(data.decode("utf-8", "replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except ValueError:
            verdict.problems.append(f"{member} line {number} is not JSON (edited)")
    return out


def verify_bundle(path: Path, public_key: Ed25519PublicKey) -> Verdict:
    return check_bundle(path, public_key).verdict


def check_bundle(path: Path, public_key: Ed25519PublicKey) -> Checked:
    verdict = Verdict()
    try:
        with zipfile.ZipFile(path) as archive:
            files = {name: archive.read(name) for name in archive.namelist()}
    except FileNotFoundError:
        # Not a verdict on the evidence: the auditor must not read "changed" into a typo.
        raise BundleUnreadable(
            f"{path} does not exist: check the file name and folder (the bundle is the file"
            " `audit export --out` wrote)"
        ) from None
    except IsADirectoryError:
        raise BundleUnreadable(
            f"{path} is a folder: give the bundle file itself (the .zip `audit export` wrote)"
        ) from None
    except PermissionError:
        raise BundleUnreadable(
            f"{path} cannot be read (permission denied): copy it somewhere you may read, or"
            " run as a user who may"
        ) from None
    except (OSError, zipfile.BadZipFile) as exc:
        verdict.problems.append(f"{path} is not a readable audit bundle ({exc})")
        return Checked(verdict, {}, [], [])
    manifest_bytes = files.get(bundle.MANIFEST, b"")
    try:
        manifest = json.loads(manifest_bytes)
        assert isinstance(manifest, dict) and manifest.get("format") in bundle.FORMATS
    except (ValueError, AssertionError):
        verdict.problems.append(f"{bundle.MANIFEST} is missing or not a {bundle.FORMAT} manifest")
        return Checked(verdict, {}, [], [])
    try:
        signature = base64.b64decode(files.get(bundle.SIGNATURE, b""), validate=False)
    except binascii.Error:
        signature = b""
    if not signing.signature_holds(public_key, manifest_bytes, signature):
        verdict.problems.append(
            "the signature does not match: the manifest was changed, or the bundle was signed"
            f" by another key (this key is {signing.fingerprint(public_key)}, the manifest"
            f" names {manifest.get('signing_key')})"
        )
    for name, digest in sorted(manifest.get("members", {}).items()):
        if name not in files:
            verdict.problems.append(f"member {name} was removed from the bundle")
        elif hashlib.sha256(files[name]).hexdigest() != digest:
            verdict.problems.append(f"member {name} was changed after the collector signed it")
    for name in sorted(set(files) - set(manifest.get("members", {})) -
                       {bundle.MANIFEST, bundle.SIGNATURE}):  # fmt: skip
        verdict.problems.append(f"member {name} was added to the bundle")

    entries = _chain(files, manifest, verdict)
    _reports(files, entries, verdict)
    opening = _opening(files, verdict)
    layout = html.layout_of(manifest)
    if layout != html.LAYOUT:
        # Signed, so unchanged; but drawn by another version's layout, which this one
        # cannot redraw to compare with the records.
        verdict.notes.append(
            f"{bundle.HTML} was drawn by report layout {layout}, this devposture draws"
            f" layout {html.LAYOUT}: its bytes are checked against the signature, but it"
            " was not redrawn from the records (verify with the devposture version named in"
            " the manifest to check that too)"
        )
    else:
        _redraw(files, manifest, opening, entries, verdict)
    chain = manifest.get("chain", {})
    period = manifest.get("period", {})
    verdict.summary = (
        f"{len(entries)} records (chain seq {chain.get('first_seq')}–{chain.get('last_seq')},"
        f" last hash {str(chain.get('last_hash'))[:16]}…) written {period.get('from')} –"
        f" {period.get('to')}, signed by {signing.fingerprint(public_key)}"
    )
    return Checked(verdict, manifest, entries, opening)


def _redraw(
    files: dict[str, bytes], manifest: dict[str, Any], opening: list[Entry],
    entries: list[Entry], verdict: Verdict,
) -> None:  # fmt: skip
    """The report drawn again from the records must be the bundle's, byte for byte."""
    try:
        context = html.load_context(files.get(bundle.CONTEXT, b"{}"))
        again = html.render(html.header_of(manifest), context, opening, entries)
    except (ValueError, KeyError, TypeError, AssertionError) as exc:
        verdict.problems.append(f"the report cannot be made again from the records ({exc})")
    else:
        if again != files.get(bundle.HTML):
            verdict.problems.append(
                f"{bundle.HTML} does not show what the records say (edited or replaced)"
            )


def _parse(lines: list[Any], member: str, verdict: Verdict) -> list[Entry]:
    out: list[Entry] = []
    for number, line in enumerate(lines, 1):
        try:
            out.append(bundle.parse_entry(line))
        except bundle.Malformed as exc:
            verdict.problems.append(f"{member} line {number}: {exc} (edited)")
    return out


def _chain(files: dict[str, bytes], manifest: dict[str, Any], verdict: Verdict) -> list[Entry]:
    """Recompute the chain link by link; name each entry edited, removed, moved or added."""
    claims = manifest.get("chain", {})
    entries = _parse(_lines(files.get(bundle.CHAIN, b""), bundle.CHAIN, verdict), bundle.CHAIN,
                     verdict)  # fmt: skip
    index: dict[int, tuple[str, str, str]] = {}
    for item in _lines(files.get(bundle.INDEX, b""), bundle.INDEX, verdict):
        try:
            index[int(item[0])] = (str(item[1]), str(item[2]), str(item[3]))
        except (IndexError, TypeError, ValueError):
            verdict.problems.append(f"{bundle.INDEX} has a malformed line (edited)")
    first, last = claims.get("first_seq"), claims.get("last_seq")
    expected = set(range(first, last + 1)) if isinstance(first, int) and isinstance(
        last, int) else set()  # fmt: skip
    present = [e.seq for e in entries]
    for seq in sorted(expected - set(present)):
        kind, key, _ = index.get(seq, ("?", "?", ""))
        verdict.problems.append(f"{kind} record seq {seq} ({key}) is missing: deleted")
    for seq in sorted({s for s in present if present.count(s) > 1}):
        verdict.problems.append(f"record seq {seq} appears more than once: inserted")
    for entry in entries:
        if entry.seq not in expected:
            verdict.problems.append(f"{_name(entry)} is outside the signed range: inserted")
    previous: Entry | None = None
    for entry in entries:
        if entry.recomputed() != entry.hash:
            verdict.problems.append(f"{_name(entry)} does not match its hash: edited")
        elif entry.seq in index and index[entry.seq][2] != entry.hash.hex():
            verdict.problems.append(f"{_name(entry)} is not the entry the index names: replaced")
        if previous is not None and entry.seq < previous.seq:
            verdict.problems.append(f"{_name(entry)} comes after {_name(previous)}: reordered")
        elif previous is not None and entry.seq == previous.seq + 1 and (
            entry.prev_hash != previous.hash
        ):
            verdict.problems.append(
                f"{_name(entry)} does not link to {_name(previous)}: edited or replaced"
            )
        previous = entry
    if entries and first == entries[0].seq and entries[0].prev_hash.hex() != claims.get(
        "prev_hash"
    ):  # fmt: skip
        verdict.problems.append(
            f"{_name(entries[0])} does not link to the signed hash before the period: edited"
        )
    if entries and last == entries[-1].seq and entries[-1].hash.hex() != claims.get("last_hash"):
        verdict.problems.append(
            f"{_name(entries[-1])} is not the signed last entry of the period: edited"
        )
    _range(claims, verdict)
    return sorted(entries, key=lambda e: e.seq)


def _range(claims: dict[str, Any], verdict: Verdict) -> None:
    """The signed range agrees with itself: the period links in just before its first entry
    (format 2 says where), and the head at export is not before the period's end."""
    first, last, prev_seq = claims.get("first_seq"), claims.get("last_seq"), claims.get("prev_seq")
    head_seq = claims.get("head_seq")
    if "prev_seq" in claims and isinstance(first, int) and prev_seq != first - 1:
        verdict.problems.append(
            f"the manifest links the period in at seq {prev_seq}, not just before its first"
            f" entry (seq {first}): edited"
        )
    end = last if isinstance(last, int) else prev_seq
    behind = isinstance(end, int) and isinstance(head_seq, int) and head_seq < end
    other = head_seq == end and claims.get("head_hash") != claims.get("last_hash")
    if isinstance(end, int) and (behind or other):
        verdict.problems.append(
            f"the manifest's chain head (seq {head_seq}) is not at or after the period's last"
            f" entry (seq {end}): edited"
        )


def _reports(files: dict[str, bytes], entries: list[Entry], verdict: Verdict) -> None:
    """Every report entry has its body, unchanged, and facts that are that body."""
    wanted = {e.seq: e for e in entries if e.kind == REPORT}
    seen: set[int] = set()
    previous = 0
    for line in _lines(files.get(bundle.REPORTS, b""), bundle.REPORTS, verdict):
        try:
            seq, report_id = int(line["seq"]), str(line["report_id"])
            body = base64.b64decode(line["body_base64"], validate=True)
            facts = line["facts"]
        except (KeyError, TypeError, ValueError, binascii.Error):
            verdict.problems.append(f"{bundle.REPORTS} has a malformed line (edited)")
            continue
        where = f"report body seq {seq} ({report_id})"
        if seq < previous:
            verdict.problems.append(f"{where} comes after seq {previous}: reordered")
        previous, entry = seq, wanted.get(seq)
        if entry is None or entry.key != report_id or seq in seen:
            verdict.problems.append(f"{where} has no report entry in the chain: inserted")
            continue
        seen.add(seq)
        if hashlib.sha256(body).hexdigest() != entry.record().get("body_sha256"):
            verdict.problems.append(f"{where} does not match its chain entry: edited")
        elif facts != bundle.facts_of(body):
            verdict.problems.append(f"the facts shown for {where} are not its body: edited")
    for seq in sorted(set(wanted) - seen):
        verdict.problems.append(f"the body of {_name(wanted[seq])} is missing: deleted")


def _opening(files: dict[str, bytes], verdict: Verdict) -> list[Entry]:
    entries = _parse(_lines(files.get(bundle.OPENING, b""), bundle.OPENING, verdict),
                     bundle.OPENING, verdict)  # fmt: skip
    for entry in entries:
        if entry.recomputed() != entry.hash:
            verdict.problems.append(f"opening {_name(entry)} does not match its hash: edited")
    return entries
