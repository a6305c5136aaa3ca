"""Pending Windows updates: what the Windows Update Agent search script prints.

The probe (agent.probes.windows.updates) asks the Windows Update Agent's COM API
(Microsoft.Update.Session, built into every Windows) for `IsInstalled=0 and Type='Software'`
and prints, through Windows PowerShell 5.1's ConvertTo-Json, one object per update with
UpdateID, RevisionNumber, Title, KBArticleIDs, MsrcSeverity, CategoryIDs (the update's
categories, its classification among them), SecurityBulletinIDs, CveIDs and RebootRequired
(whether installing *that* update needs a restart, not whether the machine owes one now).
How PowerShell 5.1 prints that list decides the parsing:

  * two or more updates: a JSON array; exactly one: a bare object (ConvertTo-Json unwraps a
    single input, dev-sec/windows-patch-baseline#10); none: nothing at all (no input object,
    nothing to convert). An empty stdout is therefore "nothing pending", but only together with
    an stderr that holds no error (next point).
  * a search that throws (no network: 0x8024401C, 0x8024402C, 0x80072EE2; the service disabled)
    is a *non-terminating* error: PowerShell writes it to stderr, still exits 0, and the script
    goes on with a null result, so it prints one object whose fields are all null
    (mondoohq/mql#10380 measured `{"UpdateID": null, "Title": null}`). Either sign, an error
    on stderr or an update without UpdateID and Title, is a failed search, reported with its
    reason and never read as "0 pending" or "1 pending".
  * stderr may also carry "#< CLIXML" progress records ("Preparing modules for first use.")
    on a run that worked (diyan/pywinrm#245); only records of the Error stream count.

Which pending updates are security updates (the rule, with its sources):
  * MsrcSeverity is Critical, Important, Moderate or Low: Microsoft documents these as the
    ratings "of a security issue that is fixed by an update" (IUpdate::MsrcSeverity); or
  * CategoryIDs contains 0FA1201D-4330-4FA8-8AE9-B877473B6441, the "SecurityUpdates"
    classification (Microsoft, "WSUS Classification GUIDs"). Monthly cumulative updates carry
    this classification with MsrcSeverity null, so the severity alone would miss them.
  Definition updates (Defender signatures, E0789628-...), update rollups (the Malicious
  Software Removal Tool) and plain "Updates" are not counted: their classification says they
  fix no security issue, or the list does not tell.

The output has no date: how long an update has been pending is not known from it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass

from devposture.agent.parsers.errors import ParseError

SECURITY_UPDATES = "0fa1201d-4330-4fa8-8ae9-b877473b6441"
MSRC_RATINGS = frozenset({"Critical", "Important", "Moderate", "Low"})

_CLIXML = "#< CLIXML"
_CLIXML_ERROR = re.compile(r'<S S="Error">(?P<text>.*?)</S>', re.DOTALL)
_CLIXML_ESCAPE = re.compile(r"_x(?P<hex>[0-9A-Fa-f]{4})_")
_HRESULT = re.compile(r"\b0x(?P<code>[0-9A-Fa-f]{8})\b")
_MAX_REASON = 200
# Codes a search commonly fails with, named as Microsoft does ("WUA Networking Error Codes";
# 0x8007xxxx carries a Win32/WinHTTP error xxxx).
_KNOWN_HRESULTS = {
    "8024401C": "WU_E_PT_HTTP_STATUS_REQUEST_TIMEOUT: the update server timed out",
    "8024402C": "WU_E_PT_WINHTTP_NAME_NOT_RESOLVED: the proxy or update server name"
    " cannot be resolved",
    "80072EE2": "ERROR_WINHTTP_TIMEOUT: the connection to the update server timed out",
    "80072EE7": "ERROR_WINHTTP_NAME_NOT_RESOLVED: the update server name cannot be resolved",
    "80070422": "the Windows Update service is disabled",
}


@dataclass(frozen=True)
class PendingUpdate:
    update_id: str
    title: str
    kb_ids: tuple[str, ...]
    msrc_severity: str | None  # None: the update has no MSRC rating
    category_ids: frozenset[str]  # lower case

    @property
    def security(self) -> bool:
        return self.msrc_severity is not None or SECURITY_UPDATES in self.category_ids

    @property
    def name(self) -> str:
        """ "KB4537759", or the title for an update without a KB article."""
        return f"KB{self.kb_ids[0]}" if self.kb_ids else self.title


@dataclass(frozen=True)
class UpdateSearch:
    updates: tuple[PendingUpdate, ...]
    failure: str = ""  # why the search gave no answer; "" when it answered


def security_updates(updates: Iterable[PendingUpdate]) -> list[PendingUpdate]:
    return [update for update in updates if update.security]


def _first_line(text: str) -> str:
    for line in text.split("\n"):
        if line.strip():
            return line.strip()[:_MAX_REASON]
    return ""


def _clixml_errors(stderr: str) -> str:
    """The Error-stream text in a CLIXML stderr ("_x000D__x000A_" is CR LF), "" when the
    stream holds only progress, verbose or debug records."""
    texts = [match.group("text") for match in _CLIXML_ERROR.finditer(stderr)]
    return _CLIXML_ESCAPE.sub(lambda m: chr(int(m.group("hex"), 16)), "".join(texts))


def search_failure(stderr: str) -> str:
    """Why the search failed, from what PowerShell printed on stderr; "" when stderr holds no
    error. An HRESULT is named when it is a known one."""
    text = stderr.strip()
    if text.startswith(_CLIXML):
        text = _clixml_errors(text).strip()
    if not text:
        return ""
    match = _HRESULT.search(text)
    if match is None:
        return f"the Windows Update Agent search failed: {_first_line(text)}"
    code = match.group("code").upper()
    meaning = _KNOWN_HRESULTS.get(code)
    detail = f" ({meaning})" if meaning else ""
    return f"the Windows Update Agent search failed with 0x{code}{detail}"


def _strings(entry: dict[str, object], key: str) -> tuple[str, ...]:
    """A list-of-strings property; null means none. The recordings print KBArticleIDs and
    CategoryIDs as lists even with one element; a bare string is taken as a list of one."""
    value = entry.get(key)
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(item, str | None) for item in value):
        return tuple(item for item in value if isinstance(item, str) and item)
    raise ParseError(f"update search: {key} is not a list of strings")


def _update(entry: object) -> PendingUpdate | None:
    """One update, or None for the all-null object a failed search leaves behind."""
    if not isinstance(entry, dict):
        raise ParseError("update search: an entry is not an object")
    update_id, title = entry.get("UpdateID"), entry.get("Title")
    if update_id is None and title is None:
        return None
    if not isinstance(update_id, str) or not isinstance(title, str) or not title:
        raise ParseError("update search: an update without UpdateID or Title")
    severity = entry.get("MsrcSeverity")
    if severity == "":  # an empty rating is no rating
        severity = None
    if severity is not None and severity not in MSRC_RATINGS:
        raise ParseError("update search: MsrcSeverity is not an MSRC rating")
    return PendingUpdate(
        update_id=update_id,
        title=title,
        kb_ids=_strings(entry, "KBArticleIDs"),
        msrc_severity=severity if isinstance(severity, str) else None,
        category_ids=frozenset(c.lower() for c in _strings(entry, "CategoryIDs")),
    )


def parse_update_search(stdout: str, stderr: str) -> UpdateSearch:
    """The pending updates, or the reason the search failed. Raises ParseError on output that
    is neither (not JSON, an entry of the wrong shape)."""
    failure = search_failure(stderr)
    if failure:
        return UpdateSearch((), failure)
    text = stdout.strip()
    if not text:
        return UpdateSearch(())
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ParseError("update search: the output is not JSON") from exc
    entries = data if isinstance(data, list) else [data]
    updates = [_update(entry) for entry in entries]
    if any(update is None for update in updates):
        return UpdateSearch(
            (),
            "the Windows Update Agent search failed: it returned an update without UpdateID"
            " or Title, what the search script prints when the search throws",
        )
    return UpdateSearch(tuple(update for update in updates if update is not None))
