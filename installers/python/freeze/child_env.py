"""PyInstaller runtime hook: the programs the agent runs see the computer's libraries, not ours.

Linux: the frozen program's loader path (LD_LIBRARY_PATH) points into its own folder so that it
finds the libraries it carries; a child inheriting it (apt-get, dpkg-query, nmcli, iptables ...)
would load our copies of libssl, libz or libffi instead of the system's, and a newer system's
tool can then fail to start. The loader read the path when this process started, so putting
the original back here changes only what children inherit.

Windows: PyInstaller's bootloader points SetDllDirectoryW at the program's folder, and children
inherit that (PyInstaller's "Launching External Programs from the Frozen Application"): a
PowerShell, netsh or manage-bde started by the agent would look for a DLL it does not find
beside itself in our folder (our vcruntime140.dll, libcrypto) before System32. The folder is
added with AddDllDirectory instead (os.add_dll_directory), which this process's extension
modules still search (Python loads them with LOAD_LIBRARY_SEARCH_DEFAULT_DIRS) and children do
not inherit, then SetDllDirectoryW(NULL) restores the standard search for children.

macOS: nothing to undo; PyInstaller rewrites the collected libraries' load paths instead of
setting DYLD_LIBRARY_PATH.
"""

import os
import sys

if getattr(sys, "frozen", False):
    if sys.platform == "win32":
        import ctypes

        # Kept for the life of the process: closing it would remove the directory again.
        _BUNDLE_DLLS = os.add_dll_directory(sys._MEIPASS)  # type: ignore[attr-defined]
        ctypes.windll.kernel32.SetDllDirectoryW(None)
    elif sys.platform != "darwin":
        _original = os.environ.pop("LD_LIBRARY_PATH_ORIG", None)
        if _original is None:
            os.environ.pop("LD_LIBRARY_PATH", None)
        else:
            os.environ["LD_LIBRARY_PATH"] = _original
