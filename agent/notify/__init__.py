"""Desktop notifications for the person at the computer: when a check starts failing, and a
day before its grace period ends, in the words `status` uses.

The agent runs as a system service (root, LocalSystem), outside anyone's desktop session, so
each OS has its own way into the logged-in user's session (`linux.py`, `macos.py`,
`windows.py`; every program they run is in `commands.py`). What to tell and when is decided
apart from how (`decide.py`), and what was told is kept in the state folder (`memory.py`) so
that the same failure is not told again at every collection.
"""
