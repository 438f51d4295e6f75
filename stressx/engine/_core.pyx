# cython: language_level=3, boundscheck=False, wraparound=False
"""The compiled core of stressx: everything that runs once per request.

One extension, split into included files (as uvloop does) so the pieces call each other
through C at no cost; _core.pxd declares its classes (their fields and C methods) and the C
functions it calls from outside, so every file can use every class:

- ``_clock.pxi``     CLOCK_MONOTONIC in integer nanoseconds, timerfd, prctl
- ``_layout.pxi``    the shared-memory slot layout one shard writes and the coordinator reads
- ``_histogram.pxi`` the HdrHistogram-layout recorder writing into shared memory
- ``_snapshot.pxi``  consistent snapshots of a shard's slots (sequence locks, C11 atomics)
- ``_schedule.pxi``  the open-model send schedule (pure arithmetic)
- ``_http.pxi``      the HTTP/1.1 keep-alive connection protocol
- ``_tls.pxi``       TLS driven inside that protocol (ssl.SSLObject over memory BIOs)
- ``_engine.pxi``    one shard's load engine: lifecycle, scheduler ticks, timeouts, ending
- ``_pool.pxi``      ... its connection pool
- ``_open.pxi``      ... its open model (the schedule, the queue of waiting sends)
- ``_batched.pxi``   ... with a timer slack: responses read on the send wake-ups, kernel-timed
- ``_closed.pxi``    ... its closed model
- ``_flow.pxi``      Python scenarios: a virtual user's connection, recording steps and iterations
- ``_burn.pxi``      the host-load burners' inner loops

Everything per run (configuration, orchestration, results) stays in plain Python.

Compiler directives are set here and nowhere else: no bounds checks and no negative indexing
(the first line). C division (no zero check, C rounding) is set only on the functions whose
divisors cannot be zero by construction, each with the reason beside it.
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
include "_tls.pxi"
include "_engine.pxi"
include "_pool.pxi"
include "_open.pxi"
include "_batched.pxi"
include "_closed.pxi"
include "_flow.pxi"
include "_burn.pxi"
