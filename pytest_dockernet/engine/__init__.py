"""What the plugin says to one engine and keeps on one host.

The client and its errors (:mod:`.connection`), podman's ways (:mod:`.podman`), names and
labels (:mod:`.naming`), process identity (:mod:`.processes`), addresses, subnets, locks,
the state directory, images, and the removal of labelled resources (:mod:`.cleanup`).
"""

from __future__ import annotations

from ..moved import MOVED_NAMES, forwarder

# 0.1's pytest_dockernet.engine was a module: its names, now in .connection, still work.
__getattr__ = forwarder(__name__, *MOVED_NAMES[__name__])
