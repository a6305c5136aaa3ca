"""`flatpak list`: the version flatpak lists for one application id.

flatpak prints the same cells in two layouts (flatpak's common/flatpak-table-printer.c,
`flatpak_table_printer_print_full`): to a pipe, as the agent reads it, no title row and the
cells of each row joined by tabs; to a terminal, a table padded with spaces under a title row
in the user's language ("Name  Application ID  Version ..." or "名称  应用程序 ID  版本 ...").
The default columns start Name, Application ID, Version in both, so the version is the cell
after the application id.

A cell may be empty (a runtime without a version). With tabs that is an empty cell. In the
padded table the next word is then the next column's (the branch, which may be "44"), so the
words after the application id are counted against the titles after its title (titles are
split where two or more spaces separate them): as many words as titles, the first is the
version; one fewer, the version cell is empty; any other count is not guessed at. Positions
are not used: published copies of the table (and terminals) do not keep Chinese titles
aligned with the rows.
"""

from __future__ import annotations

import re

from devposture.agent.parsers.errors import ParseError

_TITLE_GAP = re.compile(r" {2,}")
_APP_ID_TITLE = 1  # Name, Application ID, Version ...


def _cells_after_app_id(title_row: str) -> int:
    titles = _TITLE_GAP.split(title_row.strip())
    if len(titles) <= _APP_ID_TITLE + 1:
        raise ParseError("flatpak list: the title row has no column after the application id")
    return len(titles) - _APP_ID_TITLE - 1


def flatpak_versions(text: str, app_id: str) -> list[str]:
    """One entry per row listing `app_id` (a system and a user installation give two): the
    version flatpak lists, or "" when the row has none or its cells cannot be told apart.
    Whether it is a dotted number is for the caller to judge."""
    lines = [line for line in text.split("\n") if line.strip()]
    versions: list[str] = []
    if any("\t" in line for line in lines):
        for line in lines:
            cells = [cell.strip() for cell in line.split("\t")]
            if app_id in cells:
                after = cells[cells.index(app_id) + 1 :]
                versions.append(after[0] if after else "")
        return versions
    if not lines:
        return versions
    expected = _cells_after_app_id(lines[0])
    for line in lines[1:]:
        words = line.split()
        if app_id in words:
            after = words[words.index(app_id) + 1 :]
            versions.append(after[0] if len(after) == expected else "")
    return versions
