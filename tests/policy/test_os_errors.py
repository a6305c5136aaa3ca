"""The system's words for the common OSErrors inside a worded sentence (issue 19 item 3): in
Chinese from the catalog, in English the system's own text (so logs and `str(exc)` read as
before); an errno not in the table, and a TLS error's number, keep the system's text."""

from __future__ import annotations

import errno
import json
import os
import ssl

from devposture.policy.cli_messages import Said, Worded, said
from devposture.policy.os_errors import WORDS, os_error


def test_a_refused_connection_inside_a_sentence() -> None:
    refused = ConnectionRefusedError(errno.ECONNREFUSED, os.strerror(errno.ECONNREFUSED))
    sentence = said("cannot reach the collector at {target} ({problem})", target="h:1",
                    problem=refused)  # fmt: skip
    assert sentence.worded("zh").endswith(" (连接被拒绝，该端口上没有程序在监听)")
    assert sentence.worded("en") == f"cannot reach the collector at h:1 ({refused})"


def test_a_missing_file_names_the_file_and_strerror_stays_alone() -> None:
    missing = FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), "/etc/x.toml")
    assert isinstance(os_error(missing), Said)
    assert os_error(missing).worded("zh") == "文件或目录不存在：/etc/x.toml"  # type: ignore[union-attr]
    assert os_error(missing).worded("en") == str(missing)  # type: ignore[union-attr]
    alone = os_error(missing, missing.strerror)
    assert isinstance(alone, Said)
    assert alone.worded("zh") == "文件或目录不存在" and alone.worded("en") == missing.strerror


def test_an_errno_not_in_the_table_and_a_tls_error_keep_the_systems_text() -> None:
    odd = OSError(errno.EXDEV, os.strerror(errno.EXDEV))
    assert os_error(odd) == str(odd)
    tls = ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number")
    assert os_error(tls) == str(tls)  # its number 1 is the TLS library's, not EPERM


def test_the_words_travel_to_a_remote_reader_with_the_systems_english() -> None:
    error = Worded("cannot read {path}: {problem}", path="/x",
                   problem=PermissionError(errno.EACCES, "Permission denied", "/x"))  # fmt: skip
    back = Worded.from_wire(error.wire())
    assert back is not None and back.worded("zh") == "无法读取 /x：没有权限：/x"
    assert str(back) == str(error) == "cannot read /x: [Errno 13] Permission denied: '/x'"
    assert "plain" in json.dumps(json.loads(error.wire()))


def test_the_table_covers_the_errnos_a_person_meets() -> None:
    wanted = {errno.ENOENT, errno.EACCES, errno.EPERM, errno.ECONNREFUSED, errno.ETIMEDOUT,
              errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EADDRINUSE, errno.ENOSPC,
              errno.EEXIST, errno.EISDIR, errno.ENOTDIR, errno.EROFS}  # fmt: skip
    assert set(WORDS) == wanted
