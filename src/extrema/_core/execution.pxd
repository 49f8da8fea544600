from libc.stdint cimport int64_t, uint32_t
from extrema._core.types cimport Record
from extrema._core.orders cimport OrderTable
from extrema._core.portfolio cimport Portfolio
from extrema._core.risk cimport RiskEngine, RiskResult
from extrema._core.stops cimport StopManager


cdef class ExecutionCore:
    cdef readonly object registry
    cdef readonly OrderTable orders
    cdef readonly Portfolio portfolio
    cdef readonly RiskEngine risk
    cdef readonly StopManager stops
    cdef readonly int64_t processed
    cdef readonly int64_t venue_rejects
    cdef readonly int64_t truncated          # multi-slot heads whose continuation was missing from a batch
    cdef uint32_t *_dirty                    # instruments whose book changed in the batch (stops to check)
    cdef Py_ssize_t _dirty_n
    cdef Py_ssize_t _dirty_cap

    # The engine's two calls (compiled): the pre-trade chain + registration, and the record feed.
    cdef int submit_check(self, int64_t coid, int owner, uint32_t iid, int side, int order_type, int tif,
                          int flags, int64_t price, int64_t stop_price, int64_t qty, int64_t now,
                          RiskResult *out) except -1
    cdef object submit_order(self, int64_t coid, int owner, uint32_t iid, int side, int order_type, int tif,
                             int flags, int64_t price, int64_t stop_price, int64_t qty, int64_t now)
    cdef Py_ssize_t process_ptr(self, const Record *recs, Py_ssize_t n) except -1
    cdef int after_dispatch_c(self, int64_t now) except -1
    cdef int apply_record(self, const Record *r, int64_t now) except -1
    cdef int _mark_dirty(self, uint32_t iid) except -1
