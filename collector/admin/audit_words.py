"""The audit log's explanation (its `message` column) in the reader's language.

Each entry keeps its message as the English it was written in: the evidence chain holds it
byte for byte, and scripts read it from JSON and CSV. That English was made from a sentence
of the catalogs (msgctxt "cli"): a command's refusal or error, the note of what it did, a
dashboard login's outcome (the sentences below). A person's table (`audit log`, locally and
over the admin port, and the dashboard's audit page) finds that sentence back and words it in
the reader's language, as `render.code_cell` does for a status: the cell's `str` stays the
stored English.

A sentence is taken only when its English, filled with the values found in the message,
is the stored message byte for byte; of those, the one with the most words of its own (the
most specific). A value that is itself one of our sentences (an error inside another's) is
worded too, but never one a person or a device typed (`TYPED`: a reason, an owner, a name, a
group, a hostname, a role's id as `--role` takes it). A name followed by its id in brackets
(a credential's holder, "Li Wei (fedcba9876543210)"; a device id and its host) reads in the
reader's brackets, "Li Wei（fedcba9876543210）", as the command line writes it
(`cli_messages.Bracketed`). A sentence with hardly any words of its own ("{first} and
{second}") is taken only when a value inside it is one of our sentences, so that "Li and Wang"
stays a name. Anything else (another version's message, a redacted or cut one) is shown as it
was written. Entries written before a kind was worded read in words as well: their English is
the same.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass

from devposture.policy.catalogs import Lang, catalog
from devposture.policy.cli_messages import (
    CONTEXT,
    Bracketed,
    Listed,
    Said,
    Told,
    told,
    told_in,
)
from devposture.policy.moments import read_back as moment_read_back

# What the dashboard writes into the audit log for a login and a logout.
SIGNED_IN = told("signed in")
SIGNED_OUT = told("signed out")


def not_a_credential() -> Told:
    return told("not an admin credential")


def unknown_credential(credential_id: str) -> Told:
    return told("admin credential {credential_id} is unknown or revoked",
                credential_id=credential_id)  # fmt: skip


def may_not_view(role: str) -> Told:
    return told("role {role} may not view the dashboard", role=repr(role))


# Parameters that hold what a person or a device typed: kept as they are, whatever they say.
# A role is its id, as `--role` takes it ("--role admin"), never its name in a language.
TYPED = frozenset({"reason", "owner", "name", "group", "hostname", "role"})
# A credential's holder and its id ("Li Wei (fedcba9876543210)", `Actor.label`); a device's id
# and its host, one after another ("3f2a… (laptop-li), 3f2b… (-)", a prefix's candidates).
_HOLDER = re.compile(r"(.+) \(([0-9a-f]{16})\)", re.DOTALL)
_DEVICE = re.compile(r"([0-9a-f]{32}) \(((?:[^()]|\([^()]*\))*)\)(?:, |$)")
# A sentence with parameters and fewer letters of its own than this ("{first} and
# {second}") only frames others.
_FRAME_LETTERS = 6
# How deep a value inside a value is looked into ("{before}; {after}" joins several notes).
_DEPTH = 12
_FIELD = re.compile(r"\{(\w+)\}")
_LEAD = 3  # the first characters a sentence is looked up by


@dataclass(frozen=True)
class _Sentence:
    english: str
    pattern: re.Pattern[str]
    names: tuple[str, ...]  # its parameters, in the order of the pattern's groups
    pieces: tuple[str, ...]  # texts of its own the message must hold, "(s)" left out
    longest: str  # the longest of them, looked for first
    lead: str  # its start, up to its first parameter or "(s)"
    letters: int


def _sentence(english: str) -> _Sentence | None:
    """`english` as a pattern; None for one a pattern cannot follow (a `{0}` or `{x:>5}`
    field, braces written double)."""
    parts = _FIELD.split(english)
    texts, names = parts[0::2], parts[1::2]
    if "{{" in english or "}}" in english or any("{" in t or "}" in t for t in texts):
        return None
    groups: dict[str, str] = {}
    pattern = ""
    for n, text in enumerate(texts):
        pattern += re.escape(text).replace(r"\(s\)", r"(?:\(s\)|s)?")
        if n < len(names):
            name = names[n]
            if name in groups:
                pattern += f"(?P={groups[name]})"
            else:
                groups[name] = f"g{len(groups)}"
                pattern += f"(?P<{groups[name]}>.*?)"
    pieces = tuple(p for t in texts for p in t.split("(s)") if p)
    lead = texts[0].split("(s)")[0]
    letters = sum(ch.isalpha() for t in texts for ch in t.replace("(s)", ""))
    longest = max(pieces, key=len, default="")
    return _Sentence(english, re.compile(pattern, re.DOTALL), tuple(groups), pieces, longest,
                     lead, letters)  # fmt: skip


class Sentences:
    """The catalogs' sentences: one without a parameter by its text, the others by how a
    message starts (the most specific first)."""

    def __init__(self, english: Iterable[str]) -> None:
        found = [s for s in map(_sentence, dict.fromkeys(english)) if s is not None]
        found.sort(key=lambda s: -s.letters)  # the most specific first
        self._exact = {s.english: s for s in found if not s.names and "(s)" not in s.english}
        self._by_lead: dict[str, list[_Sentence]] = {}
        self._any: list[_Sentence] = []
        for sentence in found:
            if sentence.english in self._exact:
                continue
            if len(sentence.lead) >= _LEAD:
                self._by_lead.setdefault(sentence.lead[:_LEAD], []).append(sentence)
            else:
                self._any.append(sentence)
        self._merged: dict[str, list[_Sentence]] = {}
        self.said = functools.lru_cache(maxsize=8192)(self._said)

    def _candidates(self, text: str) -> list[_Sentence]:
        lead = text[:_LEAD]
        merged = self._merged.get(lead)
        if merged is None:
            merged = sorted(self._by_lead.get(lead, []) + self._any, key=lambda s: -s.letters)
            self._merged[lead] = merged
        return merged

    def _said(self, text: str, depth: int = 0) -> Said | None:
        """The sentence `text` was written from, with its values; None for none."""
        if depth > _DEPTH or not text:
            return None
        if text in self._exact:
            return Said(text)
        for sentence in self._candidates(text):
            if sentence.longest not in text or not text.startswith(sentence.lead):
                continue
            if not all(p in text for p in sentence.pieces):
                continue
            match = sentence.pattern.fullmatch(text)
            if match is None:
                continue
            params: dict[str, str | Said] = {
                name: value if name in TYPED else self._value(value, depth)
                for name, value in zip(sentence.names, match.groups(), strict=True)
            }
            inner = any(isinstance(v, Said) for v in params.values())
            if sentence.names and sentence.letters < _FRAME_LETTERS and not inner:
                continue  # a frame around values none of which is ours
            found = Said(sentence.english, params)
            if str(found) == text:
                return found
        return None


    def _value(self, value: str, depth: int) -> str | Said:
        """A value found in a message: one of our sentences, a time (worded in the reader's
        brackets: "2026-12-07 03:07（UTC+08:00）"), a name and its id, or its text."""
        return (self.said(value, depth + 1) or moment_read_back(value) or _labelled(value)
                or value)  # fmt: skip


def _labelled(value: str) -> Said | None:
    """A name with its id in brackets, or devices with their hosts, as the command line wrote
    them (`Bracketed`, in a list `Listed`); None for any other text."""
    holder = _HOLDER.fullmatch(value)
    if holder is not None:
        return Bracketed.of(holder[1], holder[2])
    devices = list(_DEVICE.finditer(value))
    if not devices or "".join(found[0] for found in devices) != value:
        return None
    listed = [Bracketed.of(found[1], found[2]) for found in devices]
    return listed[0] if len(listed) == 1 else Listed.of(listed)


def known_sentences() -> list[str]:
    """Every sentence of the command lines: the msgids of msgctxt "cli", which the English
    catalog holds all of (`make catalogs` fills its English in)."""
    prefix = CONTEXT + "\x04"
    table: dict[object, object] = getattr(catalog("en"), "_catalog", {})
    return [key[len(prefix) :] for key in table if isinstance(key, str) and key.startswith(prefix)]


@functools.cache
def _sentences() -> Sentences:
    return Sentences(known_sentences())


def message_cell(stored: str) -> str:
    """An audit entry's message as a table's cell: its `str` the stored English (JSON and
    CSV keep it), worded in a person's table when it is one of our sentences."""
    found = _sentences().said(stored)
    if found is None:
        return stored
    return Told(Said(found.english, found.params, plain=stored))


def actor_cell(actor: str, credential_id: str | None) -> str:
    """Who ran a command, as a table's cell: the holder's name and the credential's id in
    brackets, "Li Wei (fedcba9876543210)" (its `str`, which JSON and CSV keep), in the reader's
    brackets in a person's table, "Li Wei（fedcba9876543210）"; a local user's name alone."""
    if not credential_id:
        return actor
    return Told(Bracketed.of(actor, credential_id))


def message_in(stored: str, lang: Lang) -> str:
    """An audit entry's message in `lang` (the dashboard's page)."""
    return told_in(message_cell(stored), lang)
