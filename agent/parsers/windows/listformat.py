"""PowerShell's list format ("Name : value" lines, one block per object).

This is what `Get-MpComputerStatus`, `Get-CimInstance`, `Get-NetFirewallProfile` and
`Get-NetConnectionProfile` print when their output is captured. Property names are never
translated, so they can be matched exactly. A value longer than the console is wrapped onto the
next line, indented to the value column and cut anywhere (".../pf" + "irewall.log"), so a line
without a "name :" head continues the previous value. A published copy may be indented as a
whole (Markdown lists); indentation is therefore ignored.
"""

from __future__ import annotations

import re

from devposture.agent.parsers.errors import ParseError

_PROPERTY = re.compile(r"^\s*(?P<name>[A-Za-z_][A-Za-z0-9_]*)\s*:(?: (?P<value>.*))?$")

Record = dict[str, str]


def parse_list(text: str) -> list[Record]:
    """The objects in `text`, each as {property: value} (values stripped). Blank lines separate
    objects. Raises ParseError when a line continues nothing, or an object repeats a property
    (two objects printed without the blank line between them)."""
    records: list[Record] = []
    current: Record = {}
    last = ""
    for line in text.split("\n"):
        if not line.strip():
            if current:
                records.append(current)
                current, last = {}, ""
            continue
        match = _PROPERTY.match(line)
        if match is None:
            if not last:
                raise ParseError("PowerShell list output: a line belongs to no property")
            current[last] = current[last] + line.strip()
            continue
        name = match.group("name")
        if name in current:
            raise ParseError(f"PowerShell list output: property {name} repeated in one object")
        current[name] = (match.group("value") or "").strip()
        last = name
    if current:
        records.append(current)
    return records


def parse_bool(record: Record, name: str) -> bool | None:
    """A True/False property; None when the object does not have it (older Windows, or a
    published copy cut short). Anything else is a ParseError, never a guess."""
    if name not in record:
        return None
    value = record[name]
    if value == "True":
        return True
    if value == "False":
        return False
    raise ParseError(f"{name}: expected True or False")
