"""The package's version, in one place: setup.cfg, ``--version`` and ``__version__`` read it here."""

__version__ = "0.2.0.dev0"
