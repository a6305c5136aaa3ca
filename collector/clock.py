"""The collector's clock: the current moment, timezone-aware in UTC.

In a module of its own so that code needing only the time (the admin commands, the reports)
does not import the PKI code and, with it, cryptography.
"""

from __future__ import annotations

import datetime as dt


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
