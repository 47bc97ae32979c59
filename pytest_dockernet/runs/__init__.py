"""A run's life on the engine: run directory, sweep, lease, reaper, the command line."""
