from libc.stdint cimport int64_t

from extrema._core.types cimport Record
from extrema._core.execution cimport ExecutionCore
from extrema._core.ring cimport Ring, RingConsumer
from extrema._core.dispatch cimport Dispatcher


cdef class Emitter:
    cdef ExecutionCore _core
    cdef Ring _ring
    cdef RingConsumer _consumer
    cdef Dispatcher _dispatcher
    cdef object _engine
    cdef public int64_t published        # records published (Engine.published)
    cdef public bint stopping            # the engine is stopping: records after a strategy's stop are dropped
    # The engine's record path for compiled sources (Binance streams): process, publish, dispatch.
    cdef int emit_ptr(self, const Record *recs, Py_ssize_t n) except -1
