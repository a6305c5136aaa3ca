"""Running the independent client (tests/interop/client.js: grpc-js under Node.js) and the
openssl CLI, for the interop tests (test_interop_node*.py).

Node.js and the two packages (tests/interop/package.json, pinned by its lock file) are
installed by .ci/run (the packages into its cache, named by DEVPOSTURE_NODE_MODULES). A test
that needs them is skipped without them on a developer machine, and fails in CI (CI set)
instead, so that it cannot silently stop running. openssl likewise (`installed_tool`).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from devposture.collector.store import Store
from devposture.v1 import devposture_pb2 as pb
from tests.conftest import installed_tool
from tests.e2e.fleet import CollectorServer

ROOT = Path(__file__).resolve().parents[2]
CLIENT = ROOT / "tests" / "interop" / "client.js"
NODE_MODULES = Path(
    os.environ.get("DEVPOSTURE_NODE_MODULES") or ROOT / "tests" / "interop" / "node_modules"
)
# An argument longer than this goes to client.js in a file (a command line has a limit).
_LONGEST_ARGUMENT = 64 * 1024
# What `openssl genpkey` is told for each kind of key a device may (or may not) have.
KEYS = {
    "P-256": ("-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"),
    "P-384": ("-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"),
    "RSA": ("-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"),
    "Ed25519": ("-algorithm", "ed25519"),
}


@pytest.fixture(scope="module", name="node")
def node_fixture() -> str:
    """The node program (import `node_fixture` to use the fixture `node`)."""
    found = shutil.which("node")
    if found is None or not (NODE_MODULES / "@grpc" / "grpc-js").is_dir():
        why = (f"needs node and tests/interop's packages in {NODE_MODULES}"
               " (cd tests/interop && npm ci)")  # fmt: skip
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)
    return found


@dataclass(frozen=True)
class Node:
    """client.js aimed at one address: `call` runs one call and gives its answer, or its status
    (code, name, details)."""

    node: str
    address: str
    ca: Path | str = ""
    cert: Path | str = ""
    key: Path | str = ""

    def argv(self, call: str, argument: str) -> list[str]:
        return [self.node, str(CLIENT), str(ROOT / "protos"), self.address, str(self.ca),
                str(self.cert), str(self.key), call, argument]  # fmt: skip

    def call(self, call: str, argument: Mapping[str, Any] | None = None,
             **env: str) -> dict[str, Any]:  # fmt: skip
        """`env`: the client's settings (DEVPOSTURE_GRPC_COMPRESSION, DEVPOSTURE_TLS_MAX, ...)."""
        with _argument(argument or {}) as text:
            done = subprocess.run(
                self.argv(call, text), check=False, capture_output=True, text=True, timeout=60,
                env=_environment(env),
            )  # fmt: skip
        assert done.returncode == 0, done.stderr
        answer: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
        return answer

    def while_frozen(self, collector: CollectorServer, call: str, argument: Mapping[str, Any],
                     deadline_ms: int = 500) -> dict[str, Any]:  # fmt: skip
        """The answer to a call made with `deadline_ms` to live while `collector` is frozen
        (SIGSTOP) after the client connected: it cannot be answered in time, however fast the
        machine. The collector is thawed before this returns."""
        with _argument(argument) as text:
            process = subprocess.Popen(
                self.argv(call, text), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                env=_environment({"DEVPOSTURE_CALL_ON_STDIN": "1",
                                 "DEVPOSTURE_DEADLINE_MS": str(deadline_ms)}),
            )  # fmt: skip
            assert process.stdin is not None and process.stdout is not None
            try:
                assert json.loads(process.stdout.readline()) == {"connected": True}
                collector.pause()
                try:
                    process.stdin.write("go\n")
                    process.stdin.flush()
                    answer: dict[str, Any] = json.loads(process.stdout.readline())
                finally:
                    collector.resume()
            finally:
                process.kill()
                process.wait(30)
        return answer


def _environment(settings: Mapping[str, str]) -> dict[str, str]:
    return {**os.environ, "NODE_PATH": str(NODE_MODULES), **settings}


@contextmanager
def _argument(argument: Mapping[str, Any]) -> Iterator[str]:
    """The argument as client.js takes it: its JSON, or `@FILE` when long."""
    text = json.dumps(argument)
    if len(text) <= _LONGEST_ARGUMENT:
        yield text
        return
    with tempfile.NamedTemporaryFile("w", suffix=".json", encoding="utf-8") as file:
        file.write(text)
        file.flush()
        yield f"@{file.name}"


# -- messages as a JavaScript program builds them, and as the collector stored them --------


def plain(message: Message) -> dict[str, Any]:
    """A message as protobuf.js takes it (proto field names, enum names, timestamps as
    seconds and nanos, bytes in base64): what a JavaScript program would build."""
    plain: dict[str, Any] = {}
    for field, value in message.ListFields():
        if field.is_repeated:
            plain[field.name] = [_value(field, v) for v in value]
        else:
            plain[field.name] = _value(field, value)
    return plain


def _value(field: Any, value: Any) -> Any:
    if isinstance(value, Timestamp):
        return {"seconds": str(value.seconds), "nanos": value.nanos}
    if isinstance(value, Message):
        return plain(value)
    if field.type == field.TYPE_ENUM:
        return field.enum_type.values_by_number[value].name
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if field.type in (field.TYPE_INT64, field.TYPE_UINT64, field.TYPE_SINT64,
                      field.TYPE_FIXED64, field.TYPE_SFIXED64):  # fmt: skip
        return str(value)
    return value


def stored(collector: CollectorServer, report_id: str) -> pb.PostureReport:
    """The report's body as the collector keeps it (put together from its fact parts)."""
    reader = Store.open_reader(collector.database)
    try:
        body = reader.reports.report_body(report_id)
    finally:
        reader.close()
    assert body is not None, f"report {report_id} is not stored"
    return pb.PostureReport.FromString(body)


# -- what another team's agent makes with the openssl CLI -----------------------------------


def openssl(*argv: str, stdin: bytes | None = None) -> bytes:
    done = subprocess.run([installed_tool("openssl"), *argv], input=stdin, capture_output=True,
                          check=False, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    return done.stdout


def new_key(path: Path, kind: str) -> Path:
    """A private key of `kind` (KEYS), PEM, made by `openssl genpkey`."""
    openssl("genpkey", *KEYS[kind], "-out", str(path))
    return path


def csr_of(key: Path, *options: str) -> str:
    """A PKCS#10 request over `key`, PEM, made by `openssl req` (its subject is ignored: the
    collector names the device by its key)."""
    return openssl("req", "-new", "-key", str(key), "-subj", "/O=another team/CN=laptop",
                   *options).decode("ascii")  # fmt: skip


def id_of_key(key: Path) -> str:
    """The device id the contract derives from a key: the first 128 bits of SHA-256 over its
    SubjectPublicKeyInfo (as openssl writes it), in hex."""
    spki = openssl("pkey", "-in", str(key), "-pubout", "-outform", "DER")
    return hashlib.sha256(spki).hexdigest()[:32]
