"""Logs of the collector and the agent: text for people (the default) or JSON lines for log
pipelines.

`--log-format json` writes one JSON object per line to stderr: time (UTC, ISO 8601), level,
logger, message, and any structured extras a call passed (`extra={...}`), plus the traceback
when there is one. In both formats a filter replaces anything shaped like an enrollment token,
an admin credential secret or an enrollment value (`dpt_…`, `dpa_…`, `dpe1.…`) before the line
is written: a secret that reaches a log by mistake still does not reach the journal.

What both log is chosen to carry no personal data: device ids (hashes of the devices' public
keys) and token ids, never hostnames, user names or Wi-Fi network names.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import sys
from pathlib import Path
from typing import TextIO

FORMATS = ("text", "json")
# A log file rotates at this size, keeping this many old ones (agent.log.1 …): 60 MB at most.
LOG_FILE_BYTES = 10 * 1024 * 1024
LOG_FILE_BACKUPS = 5
LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
          "error": logging.ERROR}  # fmt: skip
# A token's or credential's secret (`dpt_<id>_<secret>`, `dpa_…`), or a whole enrollment value.
SECRET_RE = re.compile(r"dp[at]_[0-9a-f]{16}_[A-Za-z0-9_-]{43}|dpe1\.[A-Za-z0-9_-]{16,}")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# Attributes every LogRecord has: anything else on a record came from `extra=`.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message", "asctime", "taskName",
}  # fmt: skip


def redact(text: str) -> str:
    """The text with every token, credential or enrollment value in it replaced."""
    return SECRET_RE.sub("<redacted secret>", text)


def _scrub(value: object) -> object:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {str(k): _scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v) for v in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    return redact(str(value))


class RedactSecrets(logging.Filter):
    """Replace token and credential secrets in a record's message, extras and traceback.

    On a handler, it sees every record that handler writes, from any logger."""

    _formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        for key, value in list(vars(record).items()):
            if key not in _STANDARD:
                setattr(record, key, _scrub(value))
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in line:
                line[key] = _scrub(value)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = record.stack_info
        # Secrets are already gone (RedactSecrets); once more, over the whole line, for a
        # record that reached this formatter some other way.
        return redact(json.dumps(line, ensure_ascii=False, default=str))


def configure(
    log_format: str = "text", verbose: bool = False, stream: TextIO | None = None,
    *, replace: bool = False, level: int | None = None, file: Path | None = None,
) -> None:  # fmt: skip
    """Send every log record to stderr (or `stream`, or the rotated `file`) in `log_format`,
    secrets redacted, from `level` up (default: DEBUG when `verbose`, else INFO).

    A file (a service without a journal: launchd, Windows) rotates at LOG_FILE_BYTES, keeping
    LOG_FILE_BACKUPS old ones, so a computer nobody watches never fills its disk with logs.
    Like logging.basicConfig, nothing changes when the root logger already has a handler (an
    embedding program's, or pytest's), unless `replace` is given."""
    if log_format not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}, not {log_format!r}")
    handler: logging.Handler
    if file is not None:
        # Imported here: logging.handlers loads socket and pickle (about 10 ms of every
        # command's start on a slow VM), and only a service without a journal logs to a file.
        from logging.handlers import RotatingFileHandler  # noqa: PLC0415

        file.parent.mkdir(parents=True, exist_ok=True)
        handler = RotatingFileHandler(
            file, maxBytes=LOG_FILE_BYTES, backupCount=LOG_FILE_BACKUPS, encoding="utf-8"
        )
    else:
        handler = logging.StreamHandler(sys.stderr if stream is None else stream)
    handler.addFilter(RedactSecrets())
    formatter = JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)
    handler.setFormatter(formatter)
    if level is None:
        level = logging.DEBUG if verbose else logging.INFO
    logging.basicConfig(level=level, handlers=[handler], force=replace)
