"""The worker: a few small loops, one job each (see main.py for how they fit)."""
