"""An MSI read back with msitools' own readers: msidump, msiinfo and msiextract.

Nothing here parses the MSI's compound file itself: the tables come from `msidump -t` (every
table as an .idt text archive, the format Windows Installer's MsiDatabaseExport writes) or
`msiinfo export`, the summary information from `msiinfo suminfo`, the streams from
`msiinfo streams`, and the installed files from `msiextract`, so what the tests check is what
those tools read out of the package.

An .idt archive: the column names, their types ("s72": string of 72, "i2": 16-bit integer,
upper case: may be null, "l": localizable), the table's name and its key columns, then one
tab-separated row per line; a null field is empty.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

TOOLS = ("wixl", "msibuild", "msiinfo", "msidump", "msiextract")


def run(*command: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(list(command), capture_output=True, timeout=120, check=False,
                          env=None if env is None else {**os.environ, **env})  # fmt: skip
    assert done.returncode == 0, f"{' '.join(command)}: {done.stderr.decode(errors='replace')}"
    return done.stdout.decode("utf-8")


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[str, ...]
    types: tuple[str, ...]
    keys: tuple[str, ...]
    rows: tuple[dict[str, str], ...]

    def by(self, column: str) -> dict[str, dict[str, str]]:
        """The rows by the value of `column` (which must be unique)."""
        found = {row[column]: row for row in self.rows}
        assert len(found) == len(self.rows), f"{self.name}.{column} is not unique"
        return found

    def column(self, name: str) -> list[str]:
        return [row[name] for row in self.rows]


def parse_idt(text: str) -> Table:
    lines = text.replace("\x00", "").split("\r\n")
    columns = tuple(lines[0].split("\t"))
    types = tuple(lines[1].split("\t"))
    name, *keys = lines[2].split("\t")
    rows = []
    for line in lines[3:]:
        if not line:
            continue
        fields = line.split("\t")
        assert len(fields) == len(columns), f"{name}: {line!r} has {len(fields)} fields"
        rows.append(dict(zip(columns, fields, strict=True)))
    return Table(name, columns, types, tuple(keys), tuple(rows))


def export(msi: Path, table: str, env: dict[str, str] | None = None) -> Table:
    """One table, with `msiinfo export`."""
    return parse_idt(run("msiinfo", "export", str(msi), table, env=env))


def dump(msi: Path, into: Path) -> dict[str, Table]:
    """Every table, with `msidump -t` into the folder `into`."""
    into.mkdir(parents=True, exist_ok=True)
    run("msidump", "--tables", "--directory", str(into), str(msi))
    found = {}
    for idt in sorted(into.glob("*.idt")):
        if idt.stem.startswith("_"):  # _ForceCodepage, _SummaryInformation: not tables
            continue
        table = parse_idt(idt.read_bytes().decode("utf-8"))
        found[table.name] = table
    return found


def table_names(msi: Path) -> set[str]:
    return {name for name in run("msiinfo", "tables", str(msi)).split() if not name.startswith("_")}


def streams(msi: Path) -> set[str]:
    return set(run("msiinfo", "streams", str(msi)).splitlines())


def codepage(msi: Path) -> int:
    """The code page of the tables' strings (the _ForceCodepage pseudo-table)."""
    value, name = run("msiinfo", "export", str(msi), "_ForceCodepage").strip("\r\n\x00").split("\t")
    assert name == "_ForceCodepage"
    return int(value)


def summary(msi: Path) -> dict[str, str]:
    """The summary information stream, as `msiinfo suminfo` names its properties."""
    found = {}
    for line in run("msiinfo", "suminfo", str(msi)).splitlines():
        key, _, value = line.partition(": ")
        found[key.strip()] = value.strip()
    return found


def extract(msi: Path, into: Path) -> Path:
    """The files as installed, under `into` (the folder below TARGETDIR's children)."""
    into.mkdir(parents=True, exist_ok=True)
    run("msiextract", "--directory", str(into), str(msi))
    return into
