"""A result's cells that are sentences (`Told`: a device's clock, its outbox), worded in the
reader's language in a table, on the collector machine and over the admin port alike.

A row keeps such a cell as its English `str`, which JSON and CSV carry and scripts read (and
which `rows_json` sends to an older command line). The admin port sends the sentences beside
the rows (`AdminResult.worded_cells_json`: per row, the worded cells' templates and parameters
by column), and the command line puts them back into its rows (`with_cells`), so that `present`
words a remote table in its reader's language as it does a local one.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from devposture.collector.render import Row
from devposture.policy.catalogs import Lang
from devposture.policy.cli_messages import Said, Told


def cells_json(rows: Sequence[Row]) -> str:
    """The rows' worded cells as JSON (one object a row, by column); empty when none is."""
    cells = [{c: v.said.data() for c, v in row.items() if isinstance(v, Told)} for row in rows]
    return json.dumps(cells, ensure_ascii=False) if any(cells) else ""


def with_cells(rows: list[Row], text: str) -> list[Row]:
    """`rows` with the worded cells of `cells_json` put back; as they are when there are none
    (an older collector) or they do not fit (the English stays, as that collector meant it)."""
    try:
        cells = json.loads(text) if text else []
    except ValueError:
        return rows
    if not isinstance(cells, list) or len(cells) != len(rows):
        return rows
    found = []
    for given, worded in zip(rows, cells, strict=True):
        row = dict(given)
        for column, data in worded.items() if isinstance(worded, dict) else ():
            sentence = Said.of_data(data)
            if sentence is not None and column in row:
                # Its `str` stays what the rows carried (JSON and CSV read it here as on the
                # collector machine), though the sentence may word it otherwise (a time).
                row[column] = Told.keeping(str(row[column]), sentence)
        found.append(row)
    return found


def in_language(rows: Sequence[Row], lang: Lang) -> list[Row]:
    """The rows for a person's table: each worded cell in `lang`."""
    return [{c: v.worded(lang) if isinstance(v, Told) else v for c, v in row.items()}
            for row in rows]  # fmt: skip
