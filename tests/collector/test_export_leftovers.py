"""A remote `audit export` writes its bundle into a folder of the data folder and removes it
once streamed. A collector killed mid-export (SIGKILL, the OOM killer, a power cut) leaves
that folder: a partial bundle holding report bodies, which retention never reaches. The
collector serving administration removes such folders as it starts again."""

from __future__ import annotations

import asyncio
from pathlib import Path

from devposture.collector.admin.service import start_admin_server
from devposture.collector.datadir import EXPORT_FOLDER_PREFIX, initialize
from tests.databases import collector_database


def test_folders_a_killed_remote_export_left_are_removed_when_administration_starts(
    tmp_path: Path,
) -> None:
    config, _ = initialize(tmp_path / "collector", "127.0.0.1", database=collector_database())
    data = config.data_dir
    # What `Export` leaves when its process is killed: its mkdtemp folder, a partial bundle.
    left = [data / f"{EXPORT_FOLDER_PREFIX}k1ll3d0", data / f"{EXPORT_FOLDER_PREFIX}x9_2ab"]
    for folder in left:
        folder.mkdir(mode=0o700)
        (folder / "bundle.zip").write_bytes(b"PK\x03\x04" + b"\x00" * 4096)
    # Not an export's folder: a file of that name, and the site's own folders, stay.
    note = data / f"{EXPORT_FOLDER_PREFIX}notes.txt"
    note.write_text("kept")
    before = {p.name for p in data.iterdir()} - {p.name for p in left}

    async def start_and_stop() -> None:
        admin = await start_admin_server(config, port=0)
        await admin.stop(0)

    asyncio.run(start_and_stop())
    assert not any(folder.exists() for folder in left)
    assert note.read_text() == "kept"
    assert {p.name for p in data.iterdir()} >= before
