"""`devposture-collector`'s entry point: the command line loaded with Python's garbage
collector paused (`devposture.command_start`: 30-45 ms less CPU for every command), then run."""

from __future__ import annotations

from devposture.command_start import loading


def main(argv: list[str] | None = None) -> int:
    with loading():
        from devposture.collector.cli import main as command_line  # noqa: PLC0415 (paused)
    return command_line(argv)
