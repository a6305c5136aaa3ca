"""An audit bundle taken apart and put back together, as the tests that tamper with one do.

`resigned` is the strongest forger the verifier faces: one who holds the collector's signing
key and ships changed members with their digests and signature made again, so that only the
records' own checks (the chain, the index, the bodies against their records) can tell.
`written` ships the members as they are (the signature then no longer matches them)."""

from __future__ import annotations

import base64
import hashlib
import json
import zipfile
from pathlib import Path

from devposture.collector.evidence import bundle, signing


def members_of(path: Path) -> dict[str, bytes]:
    """Every member of the bundle at `path`, by name, in the order stored."""
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def written(members: dict[str, bytes], out: Path) -> Path:
    """`members` zipped as they are into `out`."""
    with zipfile.ZipFile(out, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return out


def resigned(members: dict[str, bytes], data_dir: Path, out: Path) -> Path:
    """`members` zipped into `out` with the manifest's digest of every member it names made
    again from the members as they are now, and the manifest signed again with the evidence
    key of the collector's data folder `data_dir`. `members` is updated to what was written."""
    manifest = json.loads(members[bundle.MANIFEST])
    for name in manifest["members"]:
        manifest["members"][name] = hashlib.sha256(members[name]).hexdigest()
    members[bundle.MANIFEST] = json.dumps(manifest, sort_keys=True, indent=1).encode()
    private = signing.load_or_create(data_dir)
    members[bundle.SIGNATURE] = base64.b64encode(signing.sign(private, members[bundle.MANIFEST]))
    return written(members, out)
