"""The ops test app as a module-level App, for ``agentstream run`` in a subprocess.

Configured by environment: ``OPS_TEST_DB`` (the SQLite file) and ``OPS_TEST_WORK`` (a folder
for the simulator's call log and the effect log).
"""

from __future__ import annotations

import os
from pathlib import Path

from tests.ops.apps import make_app

app = make_app(
    f"sqlite:///{os.environ['OPS_TEST_DB']}", Path(os.environ["OPS_TEST_WORK"]), fixed=False
)
