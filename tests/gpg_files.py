"""A file encrypted by the real gpg, as an employee's encrypted backup is, for the tests.

gpg starts an agent for its home folder and leaves it running as a daemon of its own (no
longer the test's child, so `tests/leftovers.py` cannot see it): each run of the suite left
four behind. The agent is ended here once the file is made.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

PASSPHRASE = "pw"


def encrypt_symmetric(gpg: str, home: Path, source: Path, out: Path) -> None:
    """`source` encrypted with a passphrase into `out` (OpenPGP), gpg's state in `home`."""
    try:
        subprocess.run(
            [gpg, "--homedir", str(home), "--batch", "--pinentry-mode", "loopback",
             "--passphrase", PASSPHRASE, "--symmetric", "-o", str(out), str(source)],
            check=True, capture_output=True,
        )  # fmt: skip
    finally:
        end_agent(home)


def end_agent(home: Path) -> None:
    """End the gpg agent of `home`, if one runs (gpgconf waits for it to go)."""
    gpgconf = shutil.which("gpgconf")
    if gpgconf is not None:
        subprocess.run([gpgconf, "--homedir", str(home), "--kill", "gpg-agent"],
                       check=False, capture_output=True)  # fmt: skip
