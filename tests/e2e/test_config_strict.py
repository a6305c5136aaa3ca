"""A collector.toml with a misspelt key or a wrong value stops every command that reads it,
`serve` first, with the line and the fix; nothing starts on a default the operator did not
choose. Real `devposture-collector` processes."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.databases import init_arguments
from tests.e2e.conftest import COLLECTOR, run


@pytest.fixture(scope="module")
def misspelt(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int, int]:
    """A data folder whose [server] says drain_second and whose [web] port is a text."""
    data = tmp_path_factory.mktemp("strict") / "collector"
    assert run(COLLECTOR, "init", "--data", str(data), *init_arguments()).returncode == 0
    path = data / "collector.toml"
    text = path.read_text()
    text = text.replace("drain_seconds = 5\n", "drain_second = 5\n", 1)
    text = text.replace("port = 7446\n", 'port = "7446"\n', 1)
    path.write_text(text)
    lines = text.splitlines()
    return data, lines.index("drain_second = 5") + 1, lines.index('port = "7446"') + 1


@pytest.mark.parametrize(
    "command",
    [
        ["serve", "--enroll-port", "0", "--report-port", "0", "--admin-port", "0",
         "--metrics-port", "0", "--web-port", "0", "--drain-seconds", "0"],
        ["token", "create"],
        ["ca", "fingerprint"],
        ["device", "list"],
        ["report", "fleet"],
        ["tls", "rotate"],
    ],
    ids=lambda c: " ".join(c[:2]),
)  # fmt: skip
def test_every_command_refuses_a_bad_collector_toml_with_lines_and_fixes(
    misspelt: tuple[Path, int, int], command: list[str], tmp_path: Path
) -> None:
    data, drain_line, port_line = misspelt
    ready = tmp_path / "ready.json"
    extra = ["--ready-file", str(ready)] if command[0] == "serve" else []
    done = run(COLLECTOR, *command, "--data", str(data), *extra)
    path = data / "collector.toml"
    assert done.returncode == 1, done.stdout
    assert f"{path}:{drain_line}: [server] drain_second is not a setting of [server]: did you" \
        " mean drain_seconds?" in done.stderr  # fmt: skip
    assert f"{path}:{port_line}: [web] port must be a whole number, not '7446': write e.g." \
        " `port = 7446`" in done.stderr  # fmt: skip
    assert "Traceback" not in done.stderr
    assert not ready.exists() and done.stdout == ""
