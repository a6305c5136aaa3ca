"""An auditor's own verifier: tests/interop/verify_bundle.js, written in Node.js from
docs/audit-evidence.md alone with Node's built-ins (crypto, zlib), on bundles the collector
really exports. If the document stops saying enough to verify a bundle, or the bundle stops
being what it says, this fails.

Node.js is installed by .ci/run; the test is skipped without it on a developer machine and
fails in CI (CI set) instead, so that it cannot silently stop running."""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import hashlib
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from devposture.collector.evidence import export, signing
from devposture.collector.store import CheckResult, Store
from devposture.collector.store.report_format import FORMAT_5
from devposture.collector.store.target import SqliteTarget
from devposture.policy import default_policy
from tests.collector.bundle_members import members_of, resigned
from tests.collector.enrolled import enroll
from tests.collector.test_fact_parts import DAY, HOUR, T0, _record, _report
from tests.e2e.fleet import COLLECTOR, run

ROOT = Path(__file__).resolve().parents[2]
VERIFIER = ROOT / "tests" / "interop" / "verify_bundle.js"
FACT_DEVICES = ("dev-0", "dev-1", "dev-2")


@pytest.fixture(scope="module")
def node() -> str:
    found = shutil.which("node")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("needs node")
        pytest.skip("needs node")
    return found


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(bundle, public key, signing key) of a small fleet's store, built by the benchmark's
    builder through the collector's own store code."""
    root = tmp_path_factory.mktemp("auditor")
    data = root / "store"
    built = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "audit_quarter.py"), "--devices", "6",
         "--days", "3", "--build-only", "--folder", str(data)],
        check=False, capture_output=True, text=True, timeout=300, cwd=ROOT,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    key = root / "key.pem"
    shown = run(COLLECTOR, "audit", "public-key", "--data", str(data))
    assert shown.returncode == 0, shown.stderr
    key.write_text(shown.stdout)
    out = root / "all.zip"
    exported = run(COLLECTOR, "audit", "export", "--data", str(data), "--from", "2000-01-01",
                   "--to", "2100-01-01", "--out", str(out))  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    return out, key, data / "evidence-signing.key"


def _verify(node: str, bundle: Path, key: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([node, str(VERIFIER), str(bundle), str(key)], check=False,
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def _tampered(source: Path, out: Path, member: str, signer: Ed25519PrivateKey | None) -> Path:
    """A copy with `member`'s first report group's first body changed; with `signer`, its
    digest updated and the manifest signed again (a forger holding the key)."""
    with zipfile.ZipFile(source) as z:
        members = {i.filename: z.read(i.filename) for i in z.infolist()}
    lines = members[member].decode().splitlines(keepends=True)
    for i, line in enumerate(lines):
        row = json.loads(line)
        if row.get("reports"):
            body = bytearray(base64.b64decode(row["reports"][0][1]))
            body[-1] ^= 1
            row["reports"][0][1] = base64.b64encode(bytes(body)).decode()
            lines[i] = json.dumps(row) + "\n"
            break
    members[member] = "".join(lines).encode()
    if signer is not None:
        manifest = json.loads(members["manifest.json"])
        manifest["members"][member] = hashlib.sha256(members[member]).hexdigest()
        members["manifest.json"] = json.dumps(manifest).encode()
        signed = b"devposture-audit-bundle/v1\n" + members["manifest.json"]
        members["manifest.sig"] = base64.b64encode(signer.sign(signed)) + b"\n"
    with zipfile.ZipFile(out, "w") as z:
        for name, data in members.items():
            z.writestr(name, data, zipfile.ZIP_DEFLATED)
    return out


def test_an_auditors_verifier_from_the_document_verifies_a_real_bundle(
    node: str, bundle: tuple[Path, Path, Path]
) -> None:
    out, key, _ = bundle
    done = _verify(node, out, key)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines()[-1].startswith("VERIFIED")


def test_an_auditors_verifier_refuses_an_edited_report_body(
    node: str, bundle: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    out, key, signing = bundle
    edited = _verify(node, _tampered(out, tmp_path / "edited.zip", "reports.jsonl", None), key)
    assert edited.returncode == 1
    assert "member reports.jsonl was changed" in edited.stdout, edited.stdout
    signer = load_pem_private_key(signing.read_bytes(), None)
    assert isinstance(signer, Ed25519PrivateKey)
    forged = _verify(node, _tampered(out, tmp_path / "forged.zip", "reports.jsonl", signer), key)
    assert forged.returncode == 1
    assert "does not match its record: edited" in forged.stdout, forged.stdout


@pytest.fixture(scope="module")
def facts_bundle(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(bundle, public key, data folder) of a format-5 store (`report_facts` groups): three
    laptops' real reports, hourly for ten days (240 groups: the window swept three times)."""
    root = tmp_path_factory.mktemp("facts")
    target = SqliteTarget(root / "collector.sqlite")
    with contextlib.closing(Store.open(target)) as store:
        for device_id in FACT_DEVICES:
            enroll(store, device_id, T0 - DAY)
        store.report_format.write(FORMAT_5)
    with contextlib.closing(Store.open(target)) as store:
        verdicts = [CheckResult("firewall", "PASS", "on")]
        for hour in range(240):
            at = T0 + hour * HOUR
            store.reports.store_reports([
                (_record(d, at, _report(d, at, host=f"PC-{n}")), verdicts)
                for n, d in enumerate(FACT_DEVICES)
            ])  # fmt: skip
        store.sealing.seal_all()
        now = dt.datetime.now(dt.UTC)
        out = export.export_bundle(store, default_policy(), root, start=T0 - DAY, end=now,
                                   out=root / "facts.zip").path  # fmt: skip
    key = root / "key.pem"
    key.write_bytes(signing.load_or_create(root).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))  # fmt: skip
    return out, key, root


def test_an_auditors_verifier_replays_format_5s_window_of_fact_sets(
    node: str, facts_bundle: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    out, key, data = facts_bundle
    assert json.loads(zipfile.ZipFile(out).read("manifest.json"))["format"].endswith("/5")
    done = _verify(node, out, key)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines()[-1].startswith("VERIFIED")
    # A forger with the key takes a part off the first line: a fact set names what is gone.
    members = members_of(out)
    lines = [json.loads(line) for line in members["reports.jsonl"].splitlines()]
    lines[0]["parts"] = lines[0]["parts"][1:]
    members["reports.jsonl"] = b"".join(json.dumps(line).encode() + b"\n" for line in lines)
    forged = _verify(node, resigned(members, data, tmp_path / "forged.zip"), key)
    assert forged.returncode == 1
    assert "which the bundle does not hold: deleted" in forged.stdout, forged.stdout
    assert "is missing: deleted" in forged.stdout, forged.stdout


def test_an_auditors_verifier_counts_the_pruned_bodies_a_bundle_lacks_as_the_manifest_does(
    node: str, tmp_path: Path
) -> None:
    """Retention prunes a format-5 store's old bodies but keeps a device's current report,
    whose twin an hour before (the same facts, in its group) is pruned: the bundle holds that
    fact set, so the twin's body is not missing, and both verifiers count the pruned bodies
    the bundle lacks as the manifest does."""
    target = SqliteTarget(tmp_path / "collector.sqlite")
    with contextlib.closing(Store.open(target)) as store:
        for device_id in FACT_DEVICES[:2]:
            enroll(store, device_id, T0 - DAY)
        for day in range(12):  # dev-0, twice a day: sealed as format 5
            for at in (T0 + day * DAY, T0 + day * DAY + HOUR):
                body = _report("dev-0", at, pending=5 if day < 10 else 0)
                store.reports.store_reports([(_record("dev-0", at, body), [])])
        for at in (T0, T0 + HOUR):  # dev-1's, the second current (its verdicts name it)
            body = _report("dev-1", at, pending=9, host="PC-1")
            store.reports.store_reports(
                [(_record("dev-1", at, body), [CheckResult("firewall", "PASS", "on")])]
            )
        store.sealing.seal_all(int((T0 + 12 * DAY).timestamp() * 1_000_000))
        head = store.evidence.chain_head()
        assert head is not None and store.checkpoints.advance(head.at_us) is not None
        now_us = int((T0 + 411 * DAY).timestamp() * 1_000_000)
        pruned = store.retention.prune(retention_days=400, now_us=now_us)
        assert pruned is not None and pruned.reports >= 20
        out = export.export_bundle(store, default_policy(), tmp_path, start=T0 - DAY,
                                   end=dt.datetime.now(dt.UTC),
                                   out=tmp_path / "p.zip").path  # fmt: skip
    key = tmp_path / "key.pem"
    key.write_bytes(signing.load_or_create(tmp_path).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))  # fmt: skip
    manifest = json.loads(zipfile.ZipFile(out).read("manifest.json"))
    assert manifest["format"].endswith("/5")
    lacking = pruned.reports - 1  # all but the kept report's twin
    assert manifest["pruned"]["bodies"] == lacking
    done = _verify(node, out, key)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines()[-1].startswith("VERIFIED"), done.stdout
    assert f"{lacking} report bodies were deleted" in done.stdout, done.stdout
    mine = run(COLLECTOR, "audit", "verify", str(out), "--public-key", str(key))
    assert mine.returncode == 0 and "\nVERIFIED: " in mine.stdout, mine.stdout
    assert f"note: {lacking} report bodies of this period were deleted" in mine.stdout
