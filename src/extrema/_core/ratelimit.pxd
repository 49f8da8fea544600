from libc.stdint cimport int64_t, uint8_t

cdef enum:
    MAX_BUDGETS = 16


cdef struct Window:
    int64_t w                  # window number: server ms // interval
    int64_t confirmed          # highest count the server reported / we counted
    int64_t pending            # cost of requests sent and not answered
    uint8_t has_confirmed      # the dicts' "key present" (a reported 0 is a count, not an absence)
    uint8_t has_pending


cdef class Budget:
    cdef readonly object limit
    cdef readonly int64_t step
    cdef readonly int64_t cap
    cdef readonly int cost_of
    cdef readonly object ident           # (kind, key): a reservation's key for this budget
    cdef readonly object header_ident    # (USED-WEIGHT | ORDER-COUNT, key): what headers report for it
    cdef public int64_t pruned           # the oldest live window at the last prune (EX_NO_WINDOW: never)
    cdef Window *_win
    cdef Py_ssize_t _n, _cap

    cdef Window *_find(self, int64_t w) noexcept
    cdef Window *_slot(self, int64_t w) except NULL
    cdef void _compact(self) noexcept
    cdef int64_t _used(self, int64_t w) noexcept
    cdef int _add_pending(self, int64_t w, int64_t cost) except -1
    cdef int _release(self, int64_t w, int64_t cost, bint count_it) except -1
    cdef int _prune(self, int64_t now_ms, int64_t margin_ms) except -1


cdef class Reservation:
    cdef public object weight
    cdef public object orders
    cdef public bint settled
    cdef list _budgets                    # the limiter's budget list when it was made
    cdef int _n
    cdef int _idx[MAX_BUDGETS]            # budget positions in _budgets
    cdef int64_t _cost[MAX_BUDGETS]
    cdef int64_t _first[MAX_BUDGETS]
    cdef int64_t _last[MAX_BUDGETS]


cdef class LimiterCore:
    cdef public list _budgets
    cdef public int64_t window_margin_ms
    cdef public int64_t in_flight               # reservations not yet settled (requests being sent / awaited)
    cdef public double _blocked_until           # loop time; all requests wait (429)
    cdef public double _banned_until            # loop time; all requests wait or fail (418)
    cdef public double _order_blocked_until     # loop time; order requests wait (order-count 429)
    cdef public object _now_ms

    cdef Reservation acquire_now(self, int64_t weight, int64_t orders, str endpoint, int64_t now_ms)
    cdef int64_t warm(self, int64_t weight, int64_t orders, int64_t now_ms) noexcept
