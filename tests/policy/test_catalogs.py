"""The catalogs hold a word for every message in both languages, with the same placeholders as
the English, and the committed `.mo` files are the `.po` files compiled."""

from __future__ import annotations

import ast
import gettext
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po

from devposture.agent import cli_words as agent_cli
from devposture.agent.employee import words
from devposture.collector import cli_words as collector_cli
from devposture.collector import column_words
from devposture.collector.web import i18n as dashboard
from devposture.policy import catalogs, cli_messages
from devposture.policy.catalogs import DOMAIN, LANGS, LOCALE_DIR, LOCALES, Lang, translate
from devposture.policy.cli_help import printf_placeholders
from devposture.policy.messages import all_messages
from devposture.policy.reasons import CODES, placeholders


def _po(lang: Lang) -> Catalog:
    path = LOCALE_DIR / LOCALES[lang] / "LC_MESSAGES" / f"{DOMAIN}.po"
    with path.open("rb") as handle:
        return read_po(handle, locale=LOCALES[lang])


def problems(catalog: Catalog, messages: list[tuple[str, str]]) -> list[str]:
    """What is wrong with `catalog` against the declared `messages`."""
    found = []
    for context, english in messages:
        entry = catalog.get(english, context=context)
        if entry is None or not entry.string:
            found.append(f"{context}: {english!r} has no translation")
        elif placeholders(str(entry.string)) != placeholders(english) or printf_placeholders(
            str(entry.string)
        ) != printf_placeholders(english):
            found.append(f"{context}: {entry.string!r} has other placeholders than {english!r}")
    declared = set(messages)
    found += [f"{m.context}: {m.id!r} is not declared" for m in catalog
              if m.id and (m.context, m.id) not in declared]  # fmt: skip
    return found


@pytest.mark.parametrize("lang", LANGS)
def test_every_declared_message_is_translated_with_the_same_placeholders(lang: Lang) -> None:
    declared = (all_messages() + words.every_message() + dashboard.every_message()
                + column_words.every_message() + collector_cli.every_message()
                + agent_cli.every_message())  # fmt: skip
    assert problems(_po(lang), declared) == []


def test_the_command_lines_errors_and_help_are_collected() -> None:
    """The catalog test above holds what these find: they must find the errors where they
    are raised and the help where the parsers declare it, for both command lines."""
    collector, agent = collector_cli.every_message(), agent_cli.every_message()
    assert ("cli", "no device {device_id}: see the ids in `devposture-collector device list`"
            ) in collector  # fmt: skip
    assert ("cli.help", "who is accountable for the exemption") in collector
    assert ("cli", "cannot read the token file {path}: {problem}; check the path") in agent
    assert ("cli.help", "enroll this computer with a collector") in agent
    assert ("argparse", "argument %(argument_name)s: %(message)s") in agent
    assert ("argparse", "%(heading)s:") in agent
    # Other modules' errors that reach a person through them, and the shared ones in both.
    for shared in ("{path}:{line}: {problem}", "the pinned certificate is not a CA certificate",
                   "the HTTPS proxy {proxy} broke off ({problem})", "no names"):  # fmt: skip
        assert ("cli", shared) in agent and ("cli", shared) in collector, shared
    assert ("cli", "the collector refused the token: {detail}") in agent
    assert ("cli", "{file} is missing from the state folder: enroll again with --force") in agent
    assert ("cli", "{path} is far too large to hold an enrollment value") in agent
    assert ("cli", "must not be empty") in agent
    assert ("cli", "{path} exists and is not empty: give an empty or new folder") in collector
    assert ("cli", "retired") in collector
    # The outcome lines (issue 19), the errors of the ports, the policy file, the database,
    # setup and a replayed bundle, the enrollment port's refusals, the system's errno words.
    for outcome in ("Created collector data folder {path}", "CA fingerprint: {fingerprint}",
                    "{file}: OK: {clauses} clause(s), {count} check(s) ({checks})",
                    "Staged CA {generation}: {fingerprint}", "waiver {waiver_id} revoked",
                    "Moved {total} rows in {tables} tables; every table read back identical.",
                    "the enrollment token was already used up: ask IT for a new one"
                    " (`devposture-collector token create`)"):  # fmt: skip
        assert ("cli", outcome) in collector, outcome
    for outcome in ("Enrolled: this computer is device {device_id}",
                    "Report {report_id} acknowledged by the collector.",
                    "Certificate {outcome} ({detail}); valid until {until}.",
                    "Diagnostic bundle written to {path}",
                    "this file is not a devposture diagnostic bundle",
                    "{name}: {path} is empty: put the enrollment value in it"):  # fmt: skip
        assert ("cli", outcome) in agent, outcome
    for shared in ("connection refused: nothing listens on that port", "no such file or folder",
                   "must be a table", "unknown key (expected one of: {keys})"):  # fmt: skip
        assert ("cli", shared) in agent and ("cli", shared) in collector, shared
    assert ("cli", "the {listener} {port} is already in use (another collector, or another"
            " program, listens there): stop it, or {fix}") in collector
    assert ("cli", "the database was written by a newer collector (schema {version}); upgrade"
            " devposture before opening it") in collector
    # What a sweep of every command found in English inside Chinese (or in both languages at
    # once): a file that is no admin credential, a report a bundle has no body for, a remote
    # export's download, a waiver's log, agent.toml that setup cannot edit.
    for found in ("this is not a devposture admin credential: expected dpa_<16 hex>_<43"
                  " characters>, as printed by `devposture-collector admin add`",
                  "{bundle} holds no body for report {report_id}: check the id (the chain's"
                  " report entries name every report of the period), or its body was pruned"
                  " under the retention policy (the bundle's manifest says so).",
                  "audit export: downloaded {received}/{size} bytes ({percent}%)",
                  "device {device_id}, check {check}, owner {owner}, expires {expires}:"
                  " {reason}", "revoked early", "added", "ran to its end date"):  # fmt: skip
        assert ("cli", found) in collector, found
    assert ("cli", "{table} is a value, not a table: make it the table [{table}]") in agent


def test_the_auditors_findings_and_setups_lines_are_collected() -> None:
    """The verifier's, the cross-check's and the continuation's findings, an export refused,
    a move refused (collector) and setup's and cleanup's lines (agent) are in the catalogs:
    the test above fails until each has its Chinese."""
    collector, agent = collector_cli.every_message(), agent_cli.every_message()
    for finding in ("{entry} does not match its hash: edited",
                    "member {member} was added to the bundle",
                    "NOT VERIFIED: {count} problem(s): {failed}",
                    "{table} row [{key}] ({entry}): {problem}. {chinese}{gloss}。",
                    "differs from its chain entry: {differences}",
                    "{older} is not older than {newer}: {exported}; {swap}",
                    "audit export refused: the tables no longer hold {total} record(s) of the"
                    " period as they were written (导出被拒绝：本期记录与数据表不一致):",
                    "audit export stopped: the retention policy pruned reports while the export"
                    " began (导出已停止：导出开始时保留期清理删除了上报内容). Run the same"
                    " `audit export` again.",
                    "the PostgreSQL database already holds collector data (table {table} is not"
                    " empty): give an empty database, made for this site"):  # fmt: skip
        assert ("cli", finding) in collector, finding
    for line in ("{path}: [{table}] {key} = {value}", "nothing to change", "deleted {folder}",
                 "kept {folder} (the device's identity and unsent reports): {hint}"):
        assert ("cli", line) in agent, line


def _tells(path: Path) -> bool:
    """Whether `path` words a text with `told("…")` (a finding, a line of outcome)."""
    return any(isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
               and node.func.id == "told" and node.args and isinstance(node.args[0], ast.Constant)
               for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))))  # fmt: skip


def test_every_module_that_words_a_finding_is_read_for_the_catalogs() -> None:
    """A new module with findings (`told`) that neither command line names would print them in
    English to everyone, with no catalog test failing: it must be among the sources read."""
    root = Path(__file__).resolve().parents[2]
    read = {p.resolve() for p in (*collector_cli.SOURCES, *agent_cli.SOURCES)}
    telling = [p for folder in ("collector", "agent") for p in (root / folder).rglob("*.py")
               if _tells(p)]  # fmt: skip
    assert telling and [p for p in telling if p.resolve() not in read] == []


def test_a_finding_is_found_where_it_is_written(tmp_path: Path) -> None:
    source = tmp_path / "module.py"
    source.write_text('problems.append(told("{entry} was inserted", entry=name))\n'
                      'problems.append(told(f"{name} was inserted"))\n')
    assert cli_messages.extract([source], set()) == (["{entry} was inserted"], ["module.py:2"])


def test_no_line_is_printed_with_its_english_written_in_place() -> None:
    """A line a person reads goes through `say` (or `said(…).worded(…)`), so that the catalog
    holds it and the test above fails until its Chinese is written; a `print(f"Created …")`
    would reach a Chinese reader in English."""
    assert collector_cli.raw_lines() == []
    assert agent_cli.raw_lines() == []


def test_the_scan_finds_a_line_printed_in_english(tmp_path: Path) -> None:
    source = tmp_path / "module.py"
    source.write_text('print(f"Moved {n} rows")\nprint(fingerprint)\nsys.stderr.write("\\n")\n'
                      'sys.stdout.write(f"{a}{b}")\nsys.stderr.write("problem: " + text)\n')
    assert cli_messages.raw_lines([source]) == ["module.py:1", "module.py:5"]


def test_no_command_line_message_is_put_together_at_run_time() -> None:
    """An f-string (or `+`, `str(exc)`) raised as a worded error has no msgid a catalog can
    hold: it must be a template with parameters, or `as_is` for another module's text."""
    assert collector_cli.mistakes() == []
    assert agent_cli.mistakes() == []


def test_the_check_finds_a_missing_entry_and_a_wrong_placeholder() -> None:
    broken = Catalog(locale="zh_CN")
    broken.add("{product}: disabled", "{产品}：已停用", context="av.disabled")
    broken.add("obsolete", "过时", context="av.gone")
    messages = [("av.disabled", "{product}: disabled"), ("av.none", "no antivirus")]
    assert problems(broken, messages) == [
        "av.disabled: '{产品}：已停用' has other placeholders than '{product}: disabled'",
        "av.none: 'no antivirus' has no translation",
        "av.gone: 'obsolete' is not declared",
    ]


@pytest.mark.parametrize("lang", LANGS)
def test_the_committed_mo_is_the_po_compiled(lang: Lang) -> None:
    """`make catalogs` was run after the last edit of the .po (compared as catalogs, so that
    another Babel version's byte order does not matter)."""
    po = _po(lang)
    expected = {
        (f"{m.context}\x04{m.id}" if m.context else str(m.id)): str(m.string)
        for m in po
        if m.id and m.string
    }
    assert _compiled(lang) == expected


def _compiled(lang: Lang) -> dict[str, str]:
    """The committed `.mo` of `lang` as gettext reads it, less its header."""
    mo = LOCALE_DIR / LOCALES[lang] / "LC_MESSAGES" / f"{DOMAIN}.mo"
    with mo.open("rb") as handle:
        compiled = gettext.GNUTranslations(handle)
    return {k: v for k, v in compiled._catalog.items() if k != ""}  # type: ignore[attr-defined]


def test_the_english_catalog_words_every_message_as_its_msgid() -> None:
    """What lets `translate` answer English without loading its catalog: a message worded
    otherwise in the English catalog would be lost, and this fails first."""
    table = _compiled("en")
    assert len(table) > 1000
    assert {key: text for key, text in table.items() if key.split("\x04", 1)[-1] != text} == {}


def test_english_is_worded_without_loading_a_catalog() -> None:
    catalogs.catalog.cache_clear()
    assert translate("en", "state", "compliant") == "compliant"
    assert catalogs.catalog.cache_info().currsize == 0
    assert translate("zh", "state", "compliant") == "合规"
    assert catalogs.catalog.cache_info().currsize == 1


def test_chinese_is_chinese_and_english_is_the_msgid() -> None:
    for code, message in CODES.items():
        assert translate("en", code, message.english) == message.english
    zh = translate("zh", "av.none", CODES["av.none"].english)
    assert zh == "未发现已安装或正在运行的杀毒软件"
    assert translate("zh", "state", "compliant") == "合规"


def test_the_catalogs_are_package_data_of_the_shared_wheel() -> None:
    """pyproject's package data (the checkout's and the shared wheel's) carries the .mo files."""
    root = Path(__file__).resolve().parents[2]
    for pyproject in (root / "pyproject.toml", root / "installers/python/common/pyproject.toml"):
        assert "locale/*/LC_MESSAGES/*.mo" in pyproject.read_text(encoding="utf-8"), pyproject
