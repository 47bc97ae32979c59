"""Networks and services on one engine: no pytest, no run lifecycle."""
