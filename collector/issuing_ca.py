"""Which CA signed a device certificate, in IT's words.

The database records each certificate's CA by its fingerprint (schema 28); a person reads it
as the generation this data folder knows it by and a short fingerprint, "CA 2
(sha256:3f2a9c1e…)", the one `ca fingerprint --all` lists. `device list` and `device show`
show it; `ca rollover finish` and `ca rollover status` name each device the end of a
rollover waits for and why: an ordinary certificate of the previous CA, one a collector
still signed with the previous CA after `activate` (its `ca/` folder not copied yet), or one
whose CA is not recorded (issued before schema 28 and not presented since).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from devposture.collector.store.identity import HeldBack
from devposture.policy.cli_messages import Bracketed, Said, Told, lines, said

# A moment as the command line shows it (the company's time zone).
Day = Callable[[dt.datetime], "str | Said"]
# How many devices `finish` names in its refusal; `status --devices` lists every one.
NAMED_AT_MOST = 10
SHORT_FINGERPRINT_DIGITS = 8
# Where `ca rollover finish` moves the CAs it no longer trusts (trust.RETIRED_DIR).
RETIRED = "retired"
_PEM_CERTIFICATE = re.compile(
    rb"-----BEGIN CERTIFICATE-----\s*(.+?)\s*-----END CERTIFICATE-----", re.DOTALL
)


def short_fingerprint(full: str) -> str:
    """A fingerprint's first hex digits and an ellipsis ("sha256:3f2a9c1e…"), for a person's
    table: enough to tell a site's few CAs apart and to find one in `ca fingerprint --all`.
    What scripts read (JSON, CSV) keeps the whole fingerprint."""
    kind, _, digits = full.partition(":")
    if not digits or len(digits) <= SHORT_FINGERPRINT_DIGITS:
        return full
    return f"{kind}:{digits[:SHORT_FINGERPRINT_DIGITS]}…"


def ca_generations(ca_dir: Path) -> dict[str, int]:
    """Each CA certificate of a data folder's `ca/` (and `ca/retired/`) by its fingerprint,
    with the generation its file name gives (ca.crt is 1, ca-2.crt is 2). The fingerprint is
    `pki.fingerprint`'s, SHA-256 over the DER, read here from the PEM with the standard
    library: `device list` loads no cryptography (tests/collector/test_cli_imports.py). A
    file that cannot be read names nothing."""
    found: dict[str, int] = {}
    for folder in (ca_dir, ca_dir / RETIRED):
        for path in sorted(folder.glob("ca*.crt")):
            number = path.stem.removeprefix("ca").removeprefix("-") or "1"
            if not number.isdigit():
                continue
            try:
                block = _PEM_CERTIFICATE.search(path.read_bytes())
                der = base64.b64decode(block.group(1), validate=False) if block else b""
            except (OSError, binascii.Error):
                continue
            if der:
                found.setdefault("sha256:" + hashlib.sha256(der).hexdigest(), int(number))
    return found


def ca_named(issuer: str, generations: Mapping[str, int]) -> str | Said:
    """The CA as IT knows it, "CA 2 (sha256:3f2a9c1e…)", or the short fingerprint alone for
    a CA this data folder does not hold (another installation's, or a folder that lost it)."""
    short = short_fingerprint(issuer)
    generation = generations.get(issuer)
    return short if generation is None else Bracketed.of(f"CA {generation}", short)


def certificate_ca(issuer: str | None, generations: Mapping[str, int], *,
                   detailed: bool = False) -> Told:  # fmt: skip
    """A device's certificate's CA as a table's cell: its `str` the whole fingerprint ('' when
    not recorded), which JSON and CSV keep; a person's table names it (`ca_named`), or says
    it is not recorded (`detailed`, for `device show`: and when it will be)."""
    if issuer is None:
        if detailed:
            return Told.keeping("", said(
                "not recorded (issued before this collector version recorded it): verified"
                " against the collector's CAs when the device next connects"
            ))  # fmt: skip
        return Told.keeping("", said("not recorded"))
    named = ca_named(issuer, generations)
    return Told.keeping(issuer, named if isinstance(named, Said) else Said(named, as_is=True))


def after_activation(held: HeldBack, activated_at: dt.datetime | None) -> bool:
    """Whether the previous CA signed its certificate after `activate`: a collector still
    signs with it."""
    return held.issuer is not None and activated_at is not None and held.issued_at >= activated_at


def held_line(held: HeldBack, activated_at: dt.datetime | None, generations: Mapping[str, int],
              day: Day) -> Said:  # fmt: skip
    """One device `finish` waits for: its id, host and certificate."""
    until = day(held.valid_until)
    if held.issuer is None:
        certificate = said("certificate whose CA is not recorded, valid until {until}",
                           until=until)  # fmt: skip
    elif after_activation(held, activated_at):
        certificate = said(
            "certificate from {ca} issued {issued}, after `activate`, valid until {until}",
            ca=ca_named(held.issuer, generations), issued=day(held.issued_at), until=until,
        )  # fmt: skip
    else:
        certificate = said("certificate from {ca}, valid until {until}",
                           ca=ca_named(held.issuer, generations), until=until)  # fmt: skip
    return said("  {device_id}  {hostname}  {certificate}", device_id=held.device_id,
                hostname=held.hostname or "-", certificate=certificate)  # fmt: skip


def held_causes(held: Sequence[HeldBack], activated_at: dt.datetime | None) -> list[Said]:
    """What else IT must know of the devices `finish` waits for: a collector that still
    signs with the previous CA (waiting alone does not end that), certificates whose CA is
    not recorded."""
    causes = []
    stale = sum(1 for h in held if after_activation(h, activated_at))
    if stale:
        causes.append(said(
            "{count} of them got a certificate from the previous CA after `activate`: a"
            " collector still signs with it. Copy this collector's ca/ folder to every other"
            " collector now (docs/scaling.md); those devices move to the new CA when they"
            " next renew.", count=stale,
        ))  # fmt: skip
    unknown = sum(1 for h in held if h.issuer is None)
    if unknown:
        causes.append(said(
            "{count} of them use a certificate issued before the collectors recorded each"
            " certificate's CA: it is told when the device next connects, and until then it"
            " counts as the previous CA's.", count=unknown,
        ))  # fmt: skip
    return causes


def finish_refusal(held: Sequence[HeldBack], activated_at: dt.datetime | None,
                   generations: Mapping[str, int], day: Day) -> Said:  # fmt: skip
    """Why `finish` refuses: how many devices, which (the first `NAMED_AT_MOST`), why, and
    what to do."""
    until = day(held[0].valid_until)
    named = [held_line(h, activated_at, generations, day) for h in held[:NAMED_AT_MOST]]
    if len(held) > NAMED_AT_MOST:
        named.append(said("  … and {count} more", count=len(held) - NAMED_AT_MOST))
    return lines(
        said(
            "{count} active device(s) may still be using a certificate signed by the previous"
            " CA (the last of them is valid until {until}). Finishing now would cut them off:"
            " each would need a new enrollment token.", count=len(held), until=until,
        ),
        *named,
        *held_causes(held, activated_at),
        said(
            "Wait until they have renewed from the new CA (agents renew by themselves), at the"
            " latest until {until}; `devposture-collector ca rollover status --devices` lists"
            " them. --force finishes anyway, at that cost", until=until,
        ),
    )  # fmt: skip
