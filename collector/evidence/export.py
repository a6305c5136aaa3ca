"""Write a signed audit bundle for a period (`devposture-collector audit export`).

The period is the entries the collector *wrote* from `start` to `end` (its clock; entries'
`at_us` never go back, so that is one run of sequence numbers). Everything is read in one
read transaction, so the head in the manifest is the chain as it stood at that moment.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import hashlib
import json
import os
import socket
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from devposture.collector import __version__, gc_settle, new_file
from devposture.collector.company_time import zone_of
from devposture.collector.evidence import (
    batch_work,
    batches,
    bundle,
    chain,
    check_pool,
    crosscheck,
    deflate,
    fact_shipping,
    html,
    member_runs,
    signing,
    spooled,
    stopping,
    summary,
)
from devposture.collector.evidence.crosscheck import Findings, PeriodCheck
from devposture.collector.evidence.opening import Opening
from devposture.collector.pki import fingerprint
from devposture.collector.store import Store
from devposture.collector.store.base import to_us
from devposture.policy import Policy
from devposture.policy.cli_messages import Told, said
from devposture.policy.reasons import render

Progress = Callable[[int, int], None]
# zlib's fastest level, where zipfile deflates a member itself: the members are deflated by
# ISA-L (evidence/deflate.py), zlib only if a later zipfile would not take its compressor.
COMPRESSION = 1


class TablesDisagree(ValueError):
    """The tables do not answer to the chain for records of the period: the export is
    refused, naming them (the dashboard and reports show what the evidence does not)."""

    def __init__(self, findings: Findings, zone: dt.tzinfo | None = None) -> None:
        """`zone`: the company's, in which a person reads each finding's times (UTC kept in
        the exception's English text, as scripts read it)."""
        whole = said("audit export refused: the tables no longer hold {total} record(s) of the"
                     " period as they were written (导出被拒绝：本期记录与数据表不一致):",
                     total=findings.total)
        for finding in findings.found:  # each worded too, for the reader's command line
            whole = said("{above}\n{indent}{line}", above=whole, indent="  ",
                         line=finding.text(zone))
        whole = said("{above}\n{indent}{line}", above=whole, indent="", line=said(
            "Run `devposture-collector audit check` for every difference, and restore the"
            " rows from a backup or find out who changed them before exporting again."))
        super().__init__(Told(whole))
        self.findings = findings


@dataclass(frozen=True)
class Exported:
    path: Path
    first_seq: int | None
    last_seq: int | None
    counts: dict[str, int]
    signing_key: str


class _Digesting(member_runs.Runs):
    """A zip member being written, hashed as it goes (beside the pass, given `beside`)."""

    def __init__(self, handle: IO[bytes], beside: member_runs.Beside | None = None) -> None:
        super().__init__(self._take, beside)
        self._handle = handle
        self.sha = hashlib.sha256()

    def _take(self, run: bytes) -> None:
        self._handle.write(run)
        self.sha.update(run)


def _member_info(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED
    # What ZipFile.open reads for a ZipInfo (named compress_level from Python 3.13).
    setattr(info, "compress_level" if hasattr(info, "compress_level") else "_compresslevel",
            COMPRESSION)  # fmt: skip
    return info


@contextlib.contextmanager
def _member(
    archive: zipfile.ZipFile, name: str, digests: dict[str, str],
    beside: member_runs.Beside | None = None,
) -> Iterator[_Digesting]:  # fmt: skip
    # Zip64 whatever the size: a quarter's members pass the 2 GiB a plain zip member can hold,
    # and a streamed member's size is not known when its header is written.
    info = _member_info(name)
    with deflate.compressing(archive.open(info, "w", force_zip64=True), info) as handle:
        writer = _Digesting(handle, beside)
        try:
            yield writer
            writer.flush()
        except BaseException:
            if beside is not None:
                beside.abandon()  # the thread is done with the handle before it is closed
            raise
        if beside is not None:
            beside.drain()  # every run in the member before it is closed
    digests[name] = writer.sha.hexdigest()


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat(timespec="seconds")


# An export that folded more entries than this past the latest checkpoint records one at its
# period's start, so that the next export of a later period starts there.
CHECKPOINT_AFTER = 10_000


def _opening(
    store: Store, boundary: int, start_us: int
) -> tuple[Iterator[chain.Entry], Opening | None]:
    """How things stood when the period began (`evidence.opening`), from the latest
    checkpoint before it, read as it is used; and the opening to record as a checkpoint,
    when one is worth it."""
    opening, folded = store.checkpoints.forward(boundary - 1)
    entries = store.evidence.chain_at(opening.seqs(start_us))
    return entries, (opening if folded > CHECKPOINT_AFTER else None)


def _fold_opening(
    stack: contextlib.ExitStack[bool | None], entries: Iterator[chain.Entry],
    figures: summary.Summary, stop: stopping.Stop | None,
) -> spooled.Spooled:  # fmt: skip
    """Fold the opening into the report's figures, writing each entry as it passes to a
    temporary file (the member goes in after the period, a zip taking one member at a time),
    never holding them: each device's latest report is an entry of a group that seals a few
    dozen to a thousand, and an hourly fleet's opening held 100 MB."""
    out = stack.enter_context(spooled.Spooled())

    def written() -> Iterator[chain.Entry]:
        for entry in entries:
            stopping.check(stop)  # a large fleet's opening is read for seconds
            out.write(bundle.entry_jsonl(entry))
            yield entry

    figures.opening(written())
    return out


def export_bundle(
    store: Store, policy: Policy, data_dir: Path, *, start: dt.datetime, end: dt.datetime,
    out: Path, progress: Progress | None = None, stop: stopping.Stop | None = None,
) -> Exported:  # fmt: skip
    """Write the bundle to `out` (refusing to replace a file); signed with the data folder's
    evidence key, made now if there is none. Once `stop` is set (a remote caller went away),
    the export stops at its next step, its workers ended, and raises `stopping.Stopped`,
    leaving nothing."""
    if end <= start:
        raise ValueError("--to must be after --from")
    if out.exists():
        raise FileExistsError(f"{out} exists already: give a new file name")
    key = signing.load_or_create(data_dir)
    partial = new_file.partial_beside(out)
    try:
        with gc_settle.batch():  # a quarter's runs of rows, thousands of tuples at once
            return _export(store, policy, data_dir, key, start, end, out, partial,
                           progress, stop)  # fmt: skip
    except FileExistsError as exc:
        if exc.filename != str(out):
            raise
        # Made by someone else while this export ran: theirs is kept, this one is dropped.
        raise FileExistsError(f"{out} exists already: give a new file name") from None
    finally:
        partial.unlink(missing_ok=True)


def _export(  # noqa: PLR0917 - the one caller passes what it checked
    store: Store, policy: Policy, data_dir: Path, key: Ed25519PrivateKey, start: dt.datetime,
    end: dt.datetime, out: Path, partial: Path, progress: Progress | None,
    stop: stopping.Stop | None,
) -> Exported:  # fmt: skip
    public = key.public_key()
    ca_cert = data_dir / "ca" / "ca.crt"
    digests: dict[str, str] = {}
    # Every report acknowledged so far into the chain (store/sealing.py). A period holds the
    # entries written in it: a report is in the period its seal was written in, at most
    # SEAL_AFTER_US after it was received.
    store.sealing.seal_all()
    with store.snapshot(), contextlib.ExitStack() as stack:
        head = store.evidence.chain_head()
        span = store.evidence.chain_period(start, end)
        boundary = span[0] if span else store.evidence.chain_first_written_from(start)
        if boundary is None:
            boundary = (head.seq + 1) if head else 1
        # A large period's rows are checked by processes beside this one (check_pool),
        # started now to be ready when the period's pass begins. Large by its records, a
        # report group counted as its reports: an hourly fleet's three days are 720,000
        # reports in 8,800 entries, which the export made alone, its second core idle.
        count = check_pool.workers_for(0 if span is None else store.evidence.chain_records(*span))
        workers = (stack.enter_context(check_pool.Workers(
            store.target, store.shared_snapshot(), count, stop)) if count else None)  # fmt: skip
        anchor = store.evidence.chain_entries(boundary - 1, boundary - 1)
        prev_hash = anchor[0].hash if anchor else chain.GENESIS
        opening, checkpoint = _opening(store, boundary, to_us(start))
        context = _context(store, policy, start)
        period = {"from_us": to_us(start), "to_us": to_us(end)}
        figures = summary.Summary({"period": period, "report_layout": html.LAYOUT}, context)
        opening_spool = _fold_opening(stack, opening, figures, stop)
        with zipfile.ZipFile(partial, "x", compression=zipfile.ZIP_DEFLATED, allowZip64=True,
                             compresslevel=COMPRESSION) as archive:  # fmt: skip
            checked = PeriodCheck(store.crosscheck)
            checked.opened_from(boundary - 1)
            counts, last_hash, pruned, fact_groups_written = _write_period(
                archive, store, span, digests, figures=figures, progress=progress,
                checked=checked, workers=workers, stop=stop,
            )
            if not checked.findings().ok:
                raise TablesDisagree(checked.findings(), zone_of(policy))
            # The prunings that took the period's bodies that are gone (every one received
            # before their time): the verifier tells them from bodies deleted otherwise.
            covering = [] if not pruned[0] else store.retention.covering(pruned[1])
            prunes = list(store.evidence.chain_at([c.seq for c in covering]))
            figures.finish()
            # Each reason the report shows, worded now, in the company's zone: the report is
            # drawn from the bundle alone (a verifier's catalogs may word it otherwise).
            zone = figures.zone.tzinfo  # as the report draws every time
            context["reason_words"] = {
                r: [render(r, "zh", zone), render(r, "en", zone)]
                for r in sorted(figures.reasons_shown())
            }  # fmt: skip
            last_hash = last_hash or prev_hash
            digests[bundle.OPENING] = opening_spool.put(archive, _member_info(bundle.OPENING))
            with _member(archive, bundle.PRUNED, digests) as pruned_out:
                for entry in prunes:
                    pruned_out.write(bundle.entry_jsonl(entry))
            with _member(archive, bundle.CONTEXT, digests) as context_out:
                context_out.write(json.dumps(context, ensure_ascii=False, sort_keys=True,
                                             indent=1).encode("utf-8"))  # fmt: skip
            manifest = _manifest(
                start,
                end,
                ca_cert=ca_cert,
                public=public,
                span=span,
                hashes=(prev_hash, last_hash),
                head=head,
                prev_seq=boundary - 1,
                facts=fact_groups_written > 0,
            )
            manifest["counts"] = counts
            manifest["pruned"] = bundle.pruned_claim(prunes, pruned[0])
            with _member(archive, bundle.HTML, digests) as html_out:
                html_out.write(html.draw(html.header_of(manifest), context, figures))
            manifest["members"] = digests
            manifest_bytes = json.dumps(manifest, ensure_ascii=False, sort_keys=True,
                                        indent=1).encode("utf-8")  # fmt: skip
            archive.writestr(zipfile.ZipInfo(bundle.MANIFEST, (1980, 1, 1, 0, 0, 0)),
                             manifest_bytes)  # fmt: skip
            archive.writestr(zipfile.ZipInfo(bundle.SIGNATURE, (1980, 1, 1, 0, 0, 0)),
                             _b64(signing.sign(key, manifest_bytes)))  # fmt: skip
    with open(partial, "rb") as handle:  # noqa: PTH123 - fsync needs the descriptor
        os.fsync(handle.fileno())
    new_file.put_in_place(partial, out)
    if checkpoint is not None and anchor:
        # Where the period begins: the next export of a later period opens from here.
        store.checkpoints.record(checkpoint, anchor[0].at_us)
    return Exported(out, span[0] if span else None, span[1] if span else None, counts,
                    signing.fingerprint(public))  # fmt: skip


def _write_period(
    archive: zipfile.ZipFile, store: Store, span: tuple[int, int] | None,
    digests: dict[str, str], *, figures: summary.Summary, progress: Progress | None,
    checked: PeriodCheck, workers: check_pool.Workers | None, stop: stopping.Stop | None,
) -> tuple[dict[str, int], bytes | None, tuple[int, int], int]:  # fmt: skip
    """Write the period's entries, their index and the report bodies, batch by batch, and
    fold each into the report's figures: nothing of the period is kept in memory. Returns
    the counts, the last hash, the pruned bodies (how many, the last received) and how many
    format-5 groups' lines were written."""
    # Records by kind: a report group counts as its reports.
    counts = dict.fromkeys((k for k in chain.KINDS if k != chain.REPORT_GROUP), 0)
    last_hash: bytes | None = None
    # How many report entries' bodies the retention policy deleted, and the last received.
    pruned, last_pruned = 0, 0
    # A zip takes one member at a time: the index and the bodies wait in temporary files,
    # deflated as they are made, and go in after the chain as they are (spooled). Their lines
    # are hashed, deflated and written by a thread beside the pass (member_runs).
    with (
        member_runs.Beside() as beside, spooled.Spooled(beside) as index_out,
        spooled.Spooled(beside) as reports_out,
    ):  # fmt: skip
        with _member(archive, bundle.CHAIN, digests, beside) as chain_out:
            checker = _checker(store, checked, workers, figures.week_ends())
            fact_lines = fact_shipping.FactLines(store.crosscheck.fact_parts)

            def take(done: batch_work.RunDone) -> None:
                nonlocal pruned, last_pruned, last_hash
                checked.sealed(done.seals, done.entries)
                checked.take(done.findings, done.found)
                chain_out.write(done.chain_lines)
                index_out.write(done.index_lines)
                # The bodies as read to check them against the chain: written as checked;
                # format 5's groups' lines in their places, from what the window lacks.
                if done.fact_lines:
                    fact_lines.write(reports_out, done.report_lines, done.fact_lines)
                    if fact_lines.unstored:  # the export refuses the period, naming them
                        found = crosscheck.unstored_named(store.crosscheck, fact_lines.unstored)
                        checked.take(found, len(found))
                        fact_lines.unstored.clear()
                else:
                    reports_out.write(done.report_lines)
                for kind, count in done.counts.items():
                    counts[kind] = counts.get(kind, 0) + count
                pruned += done.pruned
                last_pruned = max(last_pruned, done.last_pruned)
                for figure in done.figures:
                    if isinstance(figure, chain.Entry):
                        figures.add(figure)
                    else:
                        figures.add_heard(figure)
                last_hash = done.last_hash or last_hash
                if progress is not None and span is not None:
                    progress(done.last_seq - span[0] + 1, span[1] - span[0] + 1)

            for first, last in _runs(store, span, check_pool.RUN_REPORTS if workers else None):
                stopping.check(stop)
                checker.submit(first, last)
                for done in checker.ready():
                    take(done)
            for done in checker.rest():
                take(done)
        for name, spool in ((bundle.INDEX, index_out), (bundle.REPORTS, reports_out)):
            stopping.check(stop)  # each a copy of hundreds of MB for a quarter
            digests[name] = spool.put(archive, _member_info(name))
    stopping.check(stop)  # the opening's member, as large, goes in next (`_export`)
    # A body pruned whose facts the bundle holds for another report is not missing from it.
    return counts, last_hash, (pruned - fact_lines.pruned_held, last_pruned), fact_lines.groups


def _checker(
    store: Store, checked: PeriodCheck, workers: check_pool.Workers | None, ends: list[int]
) -> check_pool.Checker:  # fmt: skip
    """Who holds the batches to their rows: the workers started for a large period, opened
    on this export's state, or this process."""
    terms = batch_work.Terms(checked.pruned_before, checked.limit, ends,
                             store.crosscheck.last_pruning())  # fmt: skip
    if workers is None:
        return check_pool.InProcess(store.crosscheck, terms)
    workers.opened(terms)
    return workers


def _runs(
    store: Store, span: tuple[int, int] | None, reports: int | None
) -> Iterator[tuple[int, int]]:  # fmt: skip
    if span is None:
        return
    yield from batches.runs(store.evidence.chain_index, *span, reports=reports)


def _manifest(
    start: dt.datetime, end: dt.datetime, *, ca_cert: Path, public: Ed25519PublicKey,
    span: tuple[int, int] | None, hashes: tuple[bytes, bytes], head: chain.Entry | None,
    prev_seq: int, facts: bool = False,
) -> dict[str, Any]:  # fmt: skip
    """`facts`: the period holds format 5's groups, whose lines a verifier must read."""
    return {
        "format": bundle.FACTS_FORMAT if facts else bundle.FORMAT,
        "report_layout": html.LAYOUT,
        "period": {"from": _iso(start), "to": _iso(end), "from_us": to_us(start),
                   "to_us": to_us(end)},
        "generated_at": _iso(dt.datetime.now(dt.UTC)),
        "collector": {"hostname": socket.gethostname(), "version": __version__,
                      "ca_fingerprint": _ca_fingerprint(ca_cert)},
        "signing_key": signing.fingerprint(public),
        "chain": {
            "first_seq": span[0] if span else None,
            "last_seq": span[1] if span else None,
            # Where the period links into the chain (0: the genesis), even when it is empty:
            # what `audit verify NEW --after OLD` needs to place a bundle against another.
            "prev_seq": prev_seq,
            "prev_hash": hashes[0].hex(), "last_hash": hashes[1].hex(),
            "head_seq": head.seq if head else 0,
            "head_hash": head.hash.hex() if head else chain.GENESIS.hex(),
        },
    }  # fmt: skip


def _b64(data: bytes) -> bytes:
    return base64.b64encode(data) + b"\n"


def _ca_fingerprint(ca_cert: Path) -> str:
    try:
        cert = x509.load_pem_x509_certificate(ca_cert.read_bytes())
    except (OSError, ValueError):
        return ""
    return fingerprint(cert)


def _context(store: Store, policy: Policy, start: dt.datetime) -> dict[str, Any]:
    """What the report needs beside the records: the policy's clauses, checks, grace periods
    and silence window, device names and groups (as they stand at export), the time zone."""
    devices = store.identity.names()
    zone = summary.fixed_zone(policy.time_zone, start)  # the policy's, as the report draws it
    return {
        "clauses": [{"clause_id": c.clause_id, "title_zh": c.title_zh, "title_en": c.title_en}
                    for c in policy.clauses],
        "checks": [{"check_id": c.check_id, "clause": c.clause, "title_zh": c.title_zh,
                    "title_en": c.title_en, "grace_hours": c.grace_hours}
                   for c in policy.checks],
        "stale_after_hours": policy.stale_after_hours,
        "devices": {device_id: hostname for device_id, hostname, _ in devices},
        "groups": {device_id: group for device_id, _, group in devices if group},
        "time_zone": {"name": zone.name, "utc_offset_minutes": zone.offset_minutes},
    }  # fmt: skip
