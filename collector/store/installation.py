"""Which installation a database belongs to, so that a collector never serves another's.

An installation is one CA, one evidence-signing key and one database, shared by every
collector of it (`init --join` copies the keys). Nothing in the tables said whose they were:
a second `init --database` on the same PostgreSQL database, before the first collector had
stored anything, was accepted and made a second CA and signing key beside the first; agents
enrolled through one collector were then refused by the other, and the evidence would have
been signed by two keys. The database now keeps the fingerprint of the evidence-signing key
that made it (public; the key never changes, unlike the CA, which rolls over), written by
`init` and by a collector's first start on an older database, and compared at each start.
"""

from __future__ import annotations

from devposture.collector.store.base import Part


class Installation(Part):
    """The installation the database belongs to (`Store.installation`)."""

    def claim(self, evidence_key: str, now_us: int) -> str:
        """The evidence key the database belongs to: `evidence_key` when it belonged to none
        yet (it does from now on), else the one it holds. One statement each way, so that two
        collectors starting at once on a new database agree on the first."""
        with self._write() as cur:
            cur.execute(
                "INSERT INTO installation(only_row, evidence_key, claimed_us) VALUES (1, ?, ?)"
                " ON CONFLICT (only_row) DO NOTHING",
                (evidence_key, now_us),
            )
            (held,) = cur.execute("SELECT evidence_key FROM installation").fetchone()
        return str(held)

    def held(self) -> str | None:
        """The evidence key the database belongs to, None before any collector claimed it."""
        row = self._db.execute("SELECT evidence_key FROM installation").fetchone()
        return None if row is None else str(row[0])
