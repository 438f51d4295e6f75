"""How the load is sent: the compiled core, the shard processes and the coordinator.

    _core.pyx     the compiled core (_core.pxd declares it; the _*.pxi files are its parts)
    spawn.py      the argv that starts a child process on exactly this stressx
    shm.py        a shard's shared-memory segment, as the coordinator reads it
    shard.py      one shard process: uvloop + the core's Engine
    coordinator.py  spawn -> common start -> 1 s intervals -> drain -> summary; companions

Imports load (the RunConfig) and results (the format it writes). This __init__ is empty:
a burner process imports the core's helpers without the rest of the engine.
"""
