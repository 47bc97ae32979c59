"""A run's life on the engine, beside core/ and never importing it.

The run's directory (:mod:`.rundir`), the inventory, removal and sweep of runs
(:mod:`.sweeper`), leases (:mod:`.lease`), the crash reaper (:mod:`.reaper`) and the
``pytest-dockernet`` command (:mod:`.cli`).
"""

from __future__ import annotations

from ..moved import MOVED_NAMES, forwarder

# 0.1's pytest_dockernet.runs was a module: its names, now in .sweeper, still work.
__getattr__ = forwarder(__name__, *MOVED_NAMES[__name__])
