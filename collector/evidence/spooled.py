"""A bundle member made before its turn in the zip: deflated into a temporary file as its
lines come, and put in as it is when its turn comes.

Why: a zip takes one member at a time, but the export makes `index.jsonl` and
`reports.jsonl` in the same pass as `chain.jsonl`, and folds the opening before the period.
Those members wait on disk, deflated (a tenth of their size: an hourly quarter's bodies are
28 GB whole), never in memory. Each one repeats the same steps: a temporary file, its
compressor and digests (`deflate.Deflated`), lines gathered into runs (`member_runs.Runs`,
taken beside the pass when given a thread), then flush, wait for the thread, end the stream
and copy it into the zip. This class owns that sequence, so no member can skip a step.
"""

from __future__ import annotations

import tempfile
import zipfile
from types import TracebackType

from devposture.collector.evidence import deflate, member_runs


class Spooled:
    """A member's lines, deflated into a temporary file until `put` copies them into the
    zip. Use as a context manager: leaving it removes the temporary file, once `beside`'s
    thread is done with it."""

    def __init__(self, beside: member_runs.Beside | None = None) -> None:
        self._beside = beside
        self._file = tempfile.TemporaryFile()  # noqa: SIM115 - closed by __exit__
        self._deflated = deflate.Deflated(self._file)
        self._runs = member_runs.Runs(self._deflated.write, beside)

    def write(self, line: bytes) -> None:
        self._runs.write(line)

    def put(self, archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> str:
        """Finish the member and put it into `archive` as `info` (a deflated member); its
        SHA-256 (hex), for the manifest. Nothing may be written after."""
        self._runs.flush()
        if self._beside is not None:
            self._beside.drain()  # every run deflated before the stream ends
        self._deflated.finish()
        with archive.open(info, "w", force_zip64=True) as handle:
            deflate.put_deflated(handle, info, self._deflated)
        return self._deflated.sha.hexdigest()

    def __enter__(self) -> Spooled:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:  # fmt: skip
        try:
            if self._beside is not None:
                # The thread is done with this file before it closes: on a failure, what
                # waits is dropped (the bundle is never finished); else every run is taken.
                if kind is None:
                    self._beside.drain()
                else:
                    self._beside.abandon()
        finally:
            self._file.close()
