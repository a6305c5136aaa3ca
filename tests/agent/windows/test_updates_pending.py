"""Pending Windows updates from the Windows Update Agent search: the parser on real recorded
outputs, then the probe on replayed ones (fixtures: tests/fixtures/windows/windows_update,
sources in tests/fixtures/windows/README.md)."""

from __future__ import annotations

import base64
import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

import pytest

from devposture.agent.host import OK_ONLY, CommandResult
from devposture.agent.parsers import ParseError
from devposture.agent.parsers.windows.text import decode_output
from devposture.agent.parsers.windows.update_search import (
    parse_update_search,
    search_failure,
    security_updates,
)
from devposture.agent.probes import ProbeConfig
from devposture.agent.probes import commands as cmd
from devposture.agent.probes.outcome import FactOutcome, ProbeContext
from devposture.agent.probes.runner import run_probe
from devposture.agent.probes.windows import updates
from devposture.v1 import devposture_pb2 as pb
from tests.agent.windows.machines import REG_MISSING
from tests.agent.windows.replay_windows import WindowsReplayHost, fixture, output

SIX = "windows_update/search-json-ws2019-six-pending.txt"
SIX_CRLF = "windows_update/search-json-ws2019-six-pending.crlf.txt"
TWO = "windows_update/search-json-ws2019-defender-and-cu.txt"
PHANTOM = "windows_update/search-json-failed-search-phantom.txt"
TIMEOUT_STDERR = "windows_update/search-stderr-8024401c.txt"
PROGRESS_STDERR = "windows_update/stderr-clixml-preparing-modules.txt"

# The command line recorded in mondoohq/cnquery lumi/resources/packages/testdata/
# windows_2019.toml (commits 850621ac and 2969506d), copied here character for character.
RECORDED = (
    "CgAkAFAAcgBvAGcAcgBlAHMAcwBQAHIAZQBmAGUAcgBlAG4AYwBlAD0AJwBTAGkAbABlAG4AdABsAHkAQwBvAG4A"
    "dABpAG4AdQBlACcAOwAKACQAdQBwAGQAYQB0AGUAUwBlAHMAcwBpAG8AbgAgAD0AIABuAGUAdwAtAG8AYgBqAGUA"
    "YwB0ACAALQBjAG8AbQAgACIATQBpAGMAcgBvAHMAbwBmAHQALgBVAHAAZABhAHQAZQAuAFMAZQBzAHMAaQBvAG4A"
    "IgAKACQAcwBlAGEAcgBjAGgAZQByAD0AJAB1AHAAZABhAHQAZQBTAGUAcwBzAGkAbwBuAC4AQwByAGUAYQB0AGUA"
    "dQBwAGQAYQB0AGUAUwBlAGEAcgBjAGgAZQByACgAKQAuAFMAZQBhAHIAYwBoACgAKAAiAEkAcwBJAG4AcwB0AGEA"
    "bABsAGUAZAA9ADAAIABhAG4AZAAgAFQAeQBwAGUAPQAnAFMAbwBmAHQAdwBhAHIAZQAnACIAKQApAAoAJAB1AHAA"
    "ZABhAHQAZQBzACAAPQAgACQAcwBlAGEAcgBjAGgAZQByAC4AVQBwAGQAYQB0AGUAcwAgAHwAIABGAG8AcgBFAGEA"
    "YwBoAC0ATwBiAGoAZQBjAHQAIAB7AAoACQAkAHUAcABkAGEAdABlACAAPQAgACQAXwAKAAkAJAB2AGEAbAB1AGUA"
    "IAA9ACAATgBlAHcALQBPAGIAagBlAGMAdAAgAHAAcwBvAGIAagBlAGMAdAAgAC0AUAByAG8AcABlAHIAdAB5ACAA"
    "QAB7AAoACQAJACIAVQBwAGQAYQB0AGUASQBEACIAIAA9ACAAIAAkAHUAcABkAGEAdABlAC4ASQBkAGUAbgB0AGkA"
    "dAB5AC4AVQBwAGQAYQB0AGUASQBEADsACgAJAAkAIgBUAGkAdABsAGUAIgAgAD0AIAAkAHUAcABkAGEAdABlAC4A"
    "VABpAHQAbABlAAoACQAJACIATQBzAHIAYwBTAGUAdgBlAHIAaQB0AHkAIgAgAD0AIAAkAHUAcABkAGEAdABlAC4A"
    "TQBzAHIAYwBTAGUAdgBlAHIAaQB0AHkACgAJAAkAIgBSAGUAdgBpAHMAaQBvAG4ATgB1AG0AYgBlAHIAIgAgAD0A"
    "IAAgACQAdQBwAGQAYQB0AGUALgBJAGQAZQBuAHQAaQB0AHkALgBSAGUAdgBpAHMAaQBvAG4ATgB1AG0AYgBlAHIA"
    "OwAKAAkACQAiAEMAYQB0AGUAZwBvAHIAeQBJAEQAcwAiACAAPQAgAEAAKAAkAHUAcABkAGEAdABlAC4AQwBhAHQA"
    "ZQBnAG8AcgBpAGUAcwAgAHwAIAAlACAAewAgACQAXwAuAEMAYQB0AGUAZwBvAHIAeQBJAEQAIAB9ACkACgAJAAkA"
    "IgBTAGUAYwB1AHIAaQB0AHkAQgB1AGwAbABlAHQAaQBuAEkARABzACIAIAA9ACAAJAB1AHAAZABhAHQAZQAuAFMA"
    "ZQBjAHUAcgBpAHQAeQBCAHUAbABsAGUAdABpAG4ASQBEAHMACgAJAAkAIgBSAGUAYgBvAG8AdABSAGUAcQB1AGkA"
    "cgBlAGQAIgAgAD0AIAAkAHUAcABkAGEAdABlAC4AUgBlAGIAbwBvAHQAUgBlAHEAdQBpAHIAZQBkAAoACQAJACIA"
    "SwBCAEEAcgB0AGkAYwBsAGUASQBEAHMAIgAgAD0AIAAkAHUAcABkAGEAdABlAC4ASwBCAEEAcgB0AGkAYwBsAGUA"
    "SQBEAHMACgAJAAkAIgBDAHYAZQBJAEQAcwAiACAAPQAgAEAAKAAkAHUAcABkAGEAdABlAC4AQwB2AGUASQBEAHMA"
    "KQAKAAkAfQAKAAkAJAB2AGEAbAB1AGUACgB9AAoAQAAoACQAdQBwAGQAYQB0AGUAcwApACAAfAAgAEMAbwBuAHYA"
    "ZQByAHQAVABvAC0ASgBzAG8AbgA="
)


def text(name: str) -> str:
    return decode_output(fixture(name), "cp437")


def search(stdout: str, stderr: str = "") -> list[tuple[str, bool]]:
    result = parse_update_search(stdout, stderr)
    assert result.failure == ""
    return [(u.name, u.security) for u in result.updates]


# --- the command ---------------------------------------------------------------------------


def test_the_probe_runs_exactly_the_recorded_command() -> None:
    assert cmd.UPDATE_SEARCH == ("powershell.exe", "-EncodedCommand", RECORDED)
    script = base64.b64decode(RECORDED).decode("utf-16-le")
    assert "CreateupdateSearcher().Search((\"IsInstalled=0 and Type='Software'\"))" in script
    assert script.endswith("@($updates) | ConvertTo-Json")


# --- parser --------------------------------------------------------------------------------


def test_server_2019_six_pending_two_of_them_security() -> None:
    assert search(text(SIX)) == [
        ("KB4462930", False),  # Update for Adobe Flash Player: classification "Updates"
        ("KB4537759", True),  # 2020-02 Security Update for Adobe Flash Player: Critical
        ("KB4538156", False),  # 2020-02 Cumulative Update for .NET Framework: "Updates"
        ("KB4494174", False),  # 2020-01 Update for Windows Server 2019
        ("KB890830", False),  # Malicious Software Removal Tool: "Update Rollups"
        ("KB4538461", True),  # 2020-03 Cumulative Update for Windows Server 2019
    ]
    result = parse_update_search(text(SIX), "")
    flash, cumulative = security_updates(result.updates)
    assert flash.msrc_severity == "Critical" and flash.title.startswith("2020-02 Security Update")
    # The monthly cumulative update has no MSRC rating: only its classification says security.
    assert cumulative.msrc_severity is None
    assert cumulative.title == (
        "2020-03 Cumulative Update for Windows Server 2019 (1809) for x64-based Systems (KB4538461)"
    )


def test_crlf_copy_reads_the_same() -> None:
    data = fixture(SIX_CRLF)
    assert b"\r\n" in data
    assert decode_output(data, "cp437") == text(SIX)


def test_cumulative_update_is_security_though_no_update_has_a_severity() -> None:
    result = parse_update_search(text(TWO), "")
    assert [u.msrc_severity for u in result.updates] == [None, None]
    assert [(u.name, u.security) for u in result.updates] == [
        ("KB2267602", False),  # Defender definition update: "Definition Updates"
        ("KB4487044", True),  # 2019-02 Cumulative Update: "Security Updates"
    ]


def test_one_update_printed_as_a_bare_object() -> None:
    # ConvertTo-Json in PowerShell 5.1 unwraps a single input (dev-sec/windows-patch-baseline#10):
    # one recorded entry, serialised the way that run prints it.
    entry = json.loads(text(SIX))[1]
    assert search(json.dumps(entry, indent=4)) == [("KB4537759", True)]


def test_failed_search_leaves_an_all_null_update_which_is_a_failure_not_one_update() -> None:
    result = parse_update_search(text(PHANTOM), "")
    assert result.updates == ()
    assert "failed" in result.failure and "without UpdateID or Title" in result.failure


def test_error_on_stderr_is_the_failure_and_wins_over_any_stdout() -> None:
    reason = search_failure(text(TIMEOUT_STDERR))
    assert reason == (
        "the Windows Update Agent search failed with 0x8024401C"
        " (WU_E_PT_HTTP_STATUS_REQUEST_TIMEOUT: the update server timed out)"
    )
    # Whatever stdout holds, a search that reported an error is not read as a count.
    result = parse_update_search(text(SIX), text(TIMEOUT_STDERR))
    assert (result.updates, result.failure) == ((), reason)


def test_progress_records_on_stderr_are_not_an_error() -> None:
    assert search_failure(text(PROGRESS_STDERR)) == ""
    assert len(search(text(SIX), text(PROGRESS_STDERR))) == 6


def test_error_record_inside_clixml_is_an_error() -> None:
    # Constructed: the recorded 0x8024401C message as PowerShell's CLIXML error stream writes
    # it (<S S="Error">, CR LF as _x000D__x000A_), next to the recorded progress record.
    clixml = text(PROGRESS_STDERR).replace(
        "</Objs>", '<S S="Error">Exception from HRESULT: 0x8024401C_x000D__x000A_</S></Objs>'
    )
    assert "0x8024401C" in search_failure(clixml)


def test_nothing_pending_is_an_empty_output_without_error() -> None:
    # Not a recording: PowerShell 5.1's ConvertTo-Json prints nothing when it gets no object,
    # which is what the script hands it when the search finds nothing. Only with an error-free
    # stderr is that "0 pending".
    assert parse_update_search("", "").updates == ()
    assert parse_update_search("\n", "").failure == ""
    assert parse_update_search("", text(TIMEOUT_STDERR)).failure


@pytest.mark.parametrize(
    "stdout",
    [
        "powershell.exe : The term is not recognized",  # not JSON
        '{"UpdateID": "0b669361-bcf2-4c1c-b4fb-e5629cfdc3c0", "Title": null}',
        '{"UpdateID": "u", "Title": "t", "MsrcSeverity": "Severe"}',
        '{"UpdateID": "u", "Title": "t", "CategoryIDs": {"id": 1}}',
        '["KB4537759"]',
    ],
)
def test_output_that_is_neither_updates_nor_a_failure_is_rejected(stdout: str) -> None:
    with pytest.raises(ParseError):
        parse_update_search(stdout, "")


# --- probe ---------------------------------------------------------------------------------


def host_with(search: tuple[int, bytes, bytes], console: str = "cp437") -> WindowsReplayHost:
    host = WindowsReplayHost(console_encoding=console)
    host.record(cmd.UPDATE_SEARCH, search)
    host.record(cmd.HOTFIX, output("hotfix/get-hotfix-json-ws2019-cnquery.txt"))
    host.record(cmd.REG_AU, output("reg_query/not-found-en.txt", REG_MISSING))
    return host


def run(host: WindowsReplayHost) -> tuple[pb.OsUpdatesFact, FactOutcome]:
    ctx = ProbeContext(host, ProbeConfig(), pb.PostureReport())
    outcome = run_probe(pb.FACT_OS_UPDATES, updates.probe, ctx)
    assert isinstance(outcome.fact, pb.OsUpdatesFact)
    return outcome.fact, outcome


def codes(outcome: FactOutcome) -> list[tuple[str, int]]:
    return [(e.source, e.code) for e in outcome.errors]


def test_probe_reports_pending_and_security_updates() -> None:
    fact, outcome = run(host_with(output(SIX)))
    assert outcome.errors == []
    assert (fact.pending_total, fact.pending_security) == (6, 2)
    assert list(fact.pending_security_names) == ["KB4537759", "KB4538461"]
    assert fact.automatic_updates  # no policy key: the default
    assert fact.last_installed.ToDatetime().isoformat() == "2020-09-09T00:00:00"
    # The output has no dates, and nothing here tells a restart owed now: left unknown.
    assert not fact.HasField("oldest_pending_since")
    assert not fact.HasField("reboot_required")


@dataclass
class BudgetHost(WindowsReplayHost):
    budgets: dict[tuple[str, ...], float] = field(default_factory=dict)

    def run(
        self, argv: Sequence[str], timeout: float, ok_codes: Collection[int] = OK_ONLY
    ) -> CommandResult:
        self.budgets[tuple(argv)] = timeout
        return super().run(argv, timeout, ok_codes)


def test_the_online_search_gets_a_longer_time_budget_than_other_commands() -> None:
    host = BudgetHost()
    host.record(cmd.UPDATE_SEARCH, output(SIX))
    host.record(cmd.HOTFIX, output("hotfix/get-hotfix-json-ws2022-cnquery-reserialized.txt"))
    host.record(cmd.REG_AU, output("reg_query/not-found-en.txt", REG_MISSING))
    run(host)
    assert host.budgets[tuple(cmd.UPDATE_SEARCH)] == 300.0
    assert host.budgets[tuple(cmd.HOTFIX)] == ProbeConfig().command_timeout


def test_failed_search_is_command_failed_with_the_hresult_never_zero_pending() -> None:
    # Composite of two recordings of a failed search: the stdout the script leaves (mql#10380)
    # and the COM error PowerShell prints (akunzai/windows-secure-auditor#29); exit 0, as
    # measured in mql#10380.
    fact, outcome = run(host_with((0, fixture(PHANTOM), fixture(TIMEOUT_STDERR)), "cp936"))
    (err,) = outcome.errors
    assert (err.source, err.code) == ("windows-update-agent", pb.PROBE_ERROR_CODE_COMMAND_FAILED)
    assert "0x8024401C" in err.message and "timed out" in err.message
    assert not fact.HasField("pending_total") and not fact.HasField("pending_security")
    assert fact.HasField("automatic_updates")  # the other sources still count


def test_failed_search_without_stderr_is_still_a_failure() -> None:
    fact, outcome = run(host_with((0, fixture(PHANTOM), b"")))
    assert codes(outcome) == [("windows-update-agent", pb.PROBE_ERROR_CODE_COMMAND_FAILED)]
    assert not fact.HasField("pending_security")


def test_progress_noise_on_stderr_does_not_hide_the_updates() -> None:
    fact, outcome = run(host_with((0, fixture(SIX_CRLF), fixture(PROGRESS_STDERR))))
    assert outcome.errors == []
    assert (fact.pending_total, fact.pending_security) == (6, 2)


def test_nothing_pending_is_zero_and_known() -> None:
    # Not a recording (see the parser test): an empty stdout and stderr, exit 0.
    fact, outcome = run(host_with((0, b"", b"")))
    assert outcome.errors == []
    assert fact.HasField("pending_security") and fact.pending_security == 0
    assert fact.HasField("pending_total") and fact.pending_total == 0


def test_powershell_failing_itself_is_command_failed() -> None:
    _, outcome = run(host_with((1, b"", b"")))
    (err,) = outcome.errors
    assert err.code == pb.PROBE_ERROR_CODE_COMMAND_FAILED
    assert err.message == "powershell.exe exited with status 1"


def test_search_timing_out_or_powershell_missing() -> None:
    host = host_with(output(SIX))
    host.timeouts.add(tuple(cmd.UPDATE_SEARCH))
    assert codes(run(host)[1]) == [("windows-update-agent", pb.PROBE_ERROR_CODE_TIMEOUT)]

    missing = WindowsReplayHost()
    missing.record(cmd.HOTFIX, output("hotfix/get-hotfix-json-ws2022-cnquery-reserialized.txt"))
    missing.record(cmd.REG_AU, output("reg_query/not-found-en.txt", REG_MISSING))
    fact, outcome = run(missing)
    assert codes(outcome) == [("windows-update-agent", pb.PROBE_ERROR_CODE_COMMAND_NOT_FOUND)]
    assert fact.automatic_updates and not fact.HasField("pending_security")


def test_nothing_readable_is_no_fact() -> None:
    outcome = run_probe(
        pb.FACT_OS_UPDATES,
        updates.probe,
        ProbeContext(WindowsReplayHost(), ProbeConfig(), pb.PostureReport()),
    )
    assert outcome.fact is None
    assert [e.source for e in outcome.errors] == [
        "windows-update-agent",
        "Get-HotFix",
        "reg AU policy",
    ]
    assert {e.code for e in outcome.errors} == {pb.PROBE_ERROR_CODE_COMMAND_NOT_FOUND}
