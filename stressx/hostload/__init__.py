"""Load on the host itself, beside the requests, and what the host did meanwhile.

    burners/       CPU, memory and IO burner processes, their group and a burn session
    hostmetrics.py the host sampler (host.arrows)

This __init__ is empty: a burner process starts without the load engine.
"""
