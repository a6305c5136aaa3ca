"""`devposture-agent`'s entry point: the command line loaded with Python's garbage collector
paused (`devposture.command_start`: 40 ms less CPU for every start) and without Python's
bindings of the system's OpenSSL, then run."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

from devposture.command_start import loading

# Python's modules that load the system's OpenSSL (libcrypto, libssl), each imported where it
# is found by modules that do without it where it is not (`try: import ... except ImportError`).
OPENSSL_BINDINGS = ("ssl", "_hashlib")


@contextlib.contextmanager
def without_python_openssl() -> Iterator[None]:
    """Import what the block imports with Python's OpenSSL bindings left out; afterwards they
    load as usual for what asks for them.

    Why: the agent's service does not use them, and they cost it 4.8 MB of the 50 MB it may
    keep resident (`bench/agent_service_idle.py`, 2026-12-08: 51.0 -> 46.2 MB), for the system's
    libcrypto mapped, OpenSSL's start and the `ssl` module's tables. gRPC carries its own TLS
    (BoringSSL), and cryptography its own OpenSSL. `ssl` came only through asyncio, which
    gRPC's extension imports and which takes `ssl` where it can, for TLS on asyncio's own
    connections: the agent opens none (its calls are gRPC's synchronous ones). `_hashlib` came
    through hashlib, which then takes Python's built-in SHA-256 instead (the same digests; the
    agent hashes a few kilobytes a report). Both modules are written for a Python built
    without OpenSSL. Marked absent only while the block imports: enrolling, which pins the
    collector's CA over a TLS connection of Python's own, imports `ssl` later, as usual."""
    left_out = [name for name in OPENSSL_BINDINGS if name not in sys.modules]
    for name in left_out:  # loaded already (a test's process): nothing to spare
        sys.modules[name] = None  # type: ignore[assignment]  # import -> ImportError
    try:
        yield
    finally:
        for name in left_out:
            if name in sys.modules and sys.modules[name] is None:
                del sys.modules[name]


def main(argv: list[str] | None = None) -> int:
    with loading(), without_python_openssl():
        from devposture.agent.cli import main as command_line  # noqa: PLC0415 (paused)
    return command_line(argv)
