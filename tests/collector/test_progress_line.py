"""Progress on standard error: in place on a terminal, a line per update into a log."""

from __future__ import annotations

import io

import pytest

from devposture.collector.admin.progress_line import ProgressLine

# Never reaches the run's database engine: the PostgreSQL leg leaves it out (Makefile).
pytestmark = pytest.mark.engine_free


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_the_line_is_rewritten_and_ended_by_the_last_update() -> None:
    out = Terminal()
    line = ProgressLine(out)
    line.show("1/3")
    line.show("2/3")
    line.show("3/3", last=True)
    line.close()  # nothing left open: nothing more written
    assert out.getvalue() == "\r1/3\r2/3\r3/3\n"


def test_a_command_stopped_early_ends_the_line_before_its_error() -> None:
    out = Terminal()
    line = ProgressLine(out)
    line.show("1/3")
    line.close()
    out.write("error: the disk is full\n")
    assert out.getvalue() == "\r1/3\nerror: the disk is full\n"


def test_into_a_log_each_update_is_a_line_of_its_own() -> None:
    # A log (or CI) got one "line" holding every update behind carriage returns, unended.
    out = io.StringIO()
    line = ProgressLine(out)
    line.show("1/3")
    line.show("2/3")
    line.close()
    assert out.getvalue() == "1/3\n2/3\n"
