"""The system's words for the common failures (a file missing, a connection refused), in the
reader's language, where an OSError's text goes into a worded sentence.

Python's OSError text is the C library's English ("[Errno 111] Connection refused"), which a
Chinese sentence would otherwise carry as it is. The errno is the same on every system for
these, so a small table words them; an English reader still gets the system's own text (so
`str(exc)` of an error built around it, the logs and older tests, read as before), and an
errno not in the table keeps the system's text in every language.
"""

from __future__ import annotations

import errno
import sys

from devposture.policy.cli_messages import Said, said

# The failures a person meets: files and folders, a full or read-only disk, the network.
WORDS: dict[int, Said] = {
    errno.ENOENT: said("no such file or folder"),
    errno.EACCES: said("permission denied"),
    errno.EPERM: said("operation not permitted"),
    errno.ECONNREFUSED: said("connection refused: nothing listens on that port"),
    errno.ETIMEDOUT: said("the connection timed out"),
    errno.EHOSTUNREACH: said("no route to the host"),
    errno.ENETUNREACH: said("the network is unreachable"),
    errno.EADDRINUSE: said("the address is already in use"),
    errno.ENOSPC: said("no space left on the disk"),
    errno.EEXIST: said("it exists already"),
    errno.EISDIR: said("it is a folder, not a file"),
    errno.ENOTDIR: said("a part of the path is not a folder"),
    errno.EROFS: said("the file system is read-only"),
}


def os_error(exc: OSError, plain: str | None = None) -> Said | str:
    """`exc` as words: the table's, with the file it names, or the system's text (`plain`
    when given: a sentence that names the file itself shows `exc.strerror`). A TLS error's
    number is the TLS library's, not an errno: its text stays."""
    text = str(exc) if plain is None else plain
    # ssl is looked up, not imported: only a process that loaded it can hold its error, and
    # every command that words an OSError (most of them, which never touch TLS) paid its
    # import (about 8 ms of each command's start).
    ssl = sys.modules.get("ssl")
    tls_error = ssl is not None and isinstance(exc, ssl.SSLError)
    words = None if tls_error else WORDS.get(exc.errno or 0)
    if words is None:
        return text
    if exc.filename is not None and plain is None:
        words = said("{problem}: {path}", problem=words, path=exc.filename)
    return Said(words.english, words.params, plain=text)
