"""What a run leaves, and how to read it back: the results directory's format.

    hdr.py        HDR histograms: percentiles, merging, the standard encoding
    censoring.py  what a timeout recorded at its deadline leaves unknown
    files.py      the results directory: Arrow streams, latency logs, JSON files, readers
    summary.py    summary.json's figures, the saturation verdict, figures over a time range

Imports the leaves and the compiled core's layout constants; the engine writes with it.
Importing a module here loads no other (this __init__ is empty), so a shard reading
histograms does not load pyarrow.
"""
