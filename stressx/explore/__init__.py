"""Runs that steer or repeat runs to find something out.

    capacity.py   the highest rate within an SLO (double, then bisect)
    scaling.py    the same load per instance over several instance counts
    adaptive.py   a ramp that steps up while the SLO holds and backs off when it breaks
"""
