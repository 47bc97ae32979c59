"""``python -m pytest_dockernet``: the same as the ``pytest-dockernet`` command."""

from __future__ import annotations

import sys

from .runs.cli import main

sys.exit(main())
