"""PyInstaller runtime hook: the programs the agent runs see the computer's libraries, not ours.

The frozen program's loader path (LD_LIBRARY_PATH) points into its own folder so that it finds
the libraries it carries; a child inheriting it (apt-get, dpkg-query, nmcli, iptables ...) would
load our copies of libssl, libz or libffi instead of the system's, and a newer system's tool can
then fail to start. The loader read the path when this process started, so putting the
original back here changes only what children inherit.
"""

import os
import sys

if getattr(sys, "frozen", False):
    _original = os.environ.pop("LD_LIBRARY_PATH_ORIG", None)
    if _original is None:
        os.environ.pop("LD_LIBRARY_PATH", None)
    else:
        os.environ["LD_LIBRARY_PATH"] = _original
