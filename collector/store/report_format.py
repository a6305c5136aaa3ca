"""Which records the seal writes and how report bodies are stored: bundle format 4 or 5
(schema 30; docs/audit-evidence.md, "Format 5").

Format 4 seals each group of reports as a `reports` chain entry holding every body's SHA-256,
and stores a body as its own bytes and a recipe of the parts a fleet repeats. Format 5 seals
a group as a `report_facts` entry holding each report's own bytes and the SHA-256 of its fact
set (`evidence/fact_groups.py`), and stores a body as those own bytes and a reference to
that fact set (`fact_parts.cut_facts`): an export and a verifier then work once per fact set
and once per part, never per body, which an hourly quarter of 10,000 devices needs.

In format 5 a report is still stored as format 4 where its collector met neither its fact
set nor its device's reports repeating their facts lately (`fact_parts.cut_chosen`), and
each group sealed in the format of
at least half its reports (`sealing.as_facts`): a fleet reporting daily, every report a fact
set of its own, stays format 4, which exports it faster.

One decision for the whole installation, so it lives in the database (`report_format`, one
row at most). No row means format 5 since schema 31 (format 4 before: every store that had
set none turned to 5 as it was opened at 31); a store set to 4 stays so. Either kind of row
can be sealed in either kind of entry: a store that changes format seals on without a gap,
and an export of a period across the change reads both.
"""

from __future__ import annotations

from devposture.collector.store.base import Part
from devposture.collector.store.engine import AnyDatabase, Cursor

FORMAT_4, FORMAT_5 = 4, 5
FORMATS = (FORMAT_4, FORMAT_5)


def records_of(db: AnyDatabase | Cursor) -> int:
    """The format the store seals and stores reports in."""
    row = db.execute("SELECT records FROM report_format").fetchone()
    return FORMAT_5 if row is None else int(row[0])


class ReportFormat(Part):
    """`Store.report_format`: which records the seal writes from now on."""

    def records(self) -> int:
        return records_of(self._db)

    def write(self, records: int) -> None:
        """Seal and store reports in format `records` (4 or 5) from the next write on
        (every collector of the database: each reads it when it opens the store)."""
        if records not in FORMATS:
            raise ValueError(f"no report format {records}: {FORMATS}")
        with self._write() as cur:
            cur.execute(
                "INSERT INTO report_format(only_row, records) VALUES (1, ?)"
                " ON CONFLICT (only_row) DO UPDATE SET records = excluded.records",
                (records,),
            )
