"""Reporters: turn a run's summary (and results files) into something people read."""
