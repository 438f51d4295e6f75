"""What to send: the run's options, load shapes, workloads and plans, before anything runs.

    config.py     options -> a validated RunConfig, and each scenario's request bytes
    shapes.py     load shapes (rate or users over time) and the named patterns
    schedule.py   the Python twin of the compiled send schedule (the tests' oracle)
    workload.py   workload files: a weighted mix of scenarios
    plan.py       flags, STRESSX_* variables, a config file and a profile -> the runs to make
    profiles.py   the named profiles
    workloads/    the built-in workloads (package data)

Imports only the leaves (errors, units, system).
"""
