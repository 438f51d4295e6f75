# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The compiled core of stressx: everything that runs once per request.

One extension, split into included files (as uvloop does) so the pieces call each other
through C at no cost:

- ``_clock.pxi``     CLOCK_MONOTONIC in integer nanoseconds, timerfd, prctl
- ``_layout.pxi``    the shared-memory slot layout one shard writes and the coordinator reads
- ``_histogram.pxi`` the HdrHistogram-layout recorder writing into shared memory
- ``_snapshot.pxi``  consistent snapshots of a shard's slots (sequence locks, C11 atomics)
- ``_schedule.pxi``  the open-model send schedule (pure arithmetic)
- ``_http.pxi``      the HTTP/1.1 keep-alive connection protocol
- ``_engine.pxi``    one shard's load engine: scheduler ticks, connection pool, timeouts

Everything per run (configuration, orchestration, results) stays in plain Python.
"""
cimport cython
from libc.stdint cimport int64_t, uint64_t
from libc.stdlib cimport malloc, calloc, free
from cpython.list cimport PyList_GET_ITEM

include "_clock.pxi"
include "_layout.pxi"
include "_histogram.pxi"
include "_snapshot.pxi"
include "_schedule.pxi"
include "_http.pxi"
include "_engine.pxi"
include "_burn.pxi"
