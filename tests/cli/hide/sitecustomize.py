"""Makes the modules named in ``$AGENTSTREAM_TEST_HIDE`` (comma-separated) impossible to import.

Put this folder first on ``PYTHONPATH`` of a subprocess to run it as on a machine where an
extra is not installed: the import fails with the same ModuleNotFoundError pip's absence gives.
"""

from __future__ import annotations

import importlib.abc
import os
import sys

_HIDDEN = {m for m in os.environ.get("AGENTSTREAM_TEST_HIDE", "").split(",") if m}


class _Hide(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        if fullname.split(".")[0] in _HIDDEN:
            raise ModuleNotFoundError(f"No module named {fullname!r}", name=fullname)
        return None


if _HIDDEN:
    sys.meta_path.insert(0, _Hide())
