"""The pytest glue: the only floor that imports pytest. Registered as the ``dockernet`` plugin."""

from .hooks import *  # noqa: F403
