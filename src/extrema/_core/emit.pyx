"""The engine's record path, compiled: every batch a source hands the engine goes through here.

    emit = Emitter(engine)       # Engine._emit; sources call emit(records), compiled ones emit_ptr()

For each batch, on the engine thread: the execution core applies order updates, fills and marks (the
order table and positions are current before any strategy sees the batch), the records are published
into the ring (other consumers: recorders, other processes), the dispatcher delivers what the engine's
own consumer now has to the strategies' hooks, book-sourced stops are checked against the books just
updated, and stops that fired are submitted.

Why compiled (issue 5, tick-to-order): in Python this was five calls that each took a numpy array
(argument checks, buffer access) - about a microsecond of every frame's way to the strategy. A compiled
source (the Binance stream sink) calls emit_ptr() with the records it decoded, without a Python object.
"""
cimport cython
from libc.stdint cimport int64_t
cimport numpy as cnp

from extrema._core.types cimport Record
from extrema._core.records cimport as_record_array, record_data
from extrema._core.clock cimport now_us
from extrema._core.ring cimport whole_events

cnp.import_array()


@cython.final
cdef class Emitter:
    """See the module doc. Emitter(engine) reads the engine's execution_core, ring, the engine's own ring
    consumer (_consumer) and dispatcher, and calls back the engine for the rare Python steps
    (_submit_fired_stops, _request_stop)."""

    def __init__(self, engine):
        self._engine = engine
        self._core = engine.execution_core
        self._ring = engine.ring
        self._consumer = engine._consumer
        self._dispatcher = engine.dispatcher
        self.published = 0
        self.stopping = False

    def __call__(self, records):
        """Emit a RECORD_DTYPE array (or one record) - what sources call."""
        cdef cnp.ndarray arr = as_record_array(records, "emit")
        return self.emit_ptr(record_data(arr), cnp.PyArray_DIM(arr, 0))

    cdef int emit_ptr(self, const Record *recs, Py_ssize_t n) except -1:
        cdef Py_ssize_t done, k, m, cap
        if self.stopping and self._dispatcher.stop_requested:
            return 0                       # a strategy stopped the engine: nothing more goes in
        if n <= 0:
            return 0
        if self._ring._closed:
            self._ring.publish(_array_of(recs, n))                   # raises the ring's own error
        self._core.process_ptr(recs, n)
        # The engine's own consumer holds the ring back (back-pressure) and only this thread drains it, so a
        # batch goes in as pieces of whole events of at most the ring's capacity, the dispatcher draining
        # the ring after each: a batch larger than the ring does not wait for itself. Only another
        # back-pressure consumer a full ring behind makes a piece wait (without the GIL).
        cap = <Py_ssize_t>(self._ring._mask + 1)
        done = 0
        while done < n:
            m = n - done
            if m > cap:
                m = whole_events(recs + done, cap)       # never a multi-slot event cut in two
                if m == 0:
                    raise ValueError(f"an event of more than {cap} slots cannot pass a ring of {cap}")
            k = self._ring.publish_ptr(recs + done, m, 0)
            if k < m:
                with nogil:
                    self._ring.publish_ptr(recs + done + k, m - k, -1)
            done += m
            self._dispatcher.pump(self._consumer)
        self.published += n
        self._core.after_dispatch_c(now_us())
        if self._core.stops._fired_n:
            self._engine._submit_fired_stops()
        if self._dispatcher.stop_requested:
            self._engine._request_stop("a strategy's error policy is 'stop'")
        return 0


cdef object _array_of(const Record *recs, Py_ssize_t n):
    # a numpy copy of records (the slow path of a publish that has to wait)
    from extrema._core.records import empty_records
    out = empty_records(n)
    cdef Record *dst = <Record *>cnp.PyArray_DATA(out)
    cdef Py_ssize_t i
    for i in range(n):
        dst[i] = recs[i]
    return out
