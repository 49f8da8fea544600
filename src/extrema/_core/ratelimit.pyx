# cython: cdivision=False
# (Python floor division: windows of times before the epoch or of a negative margin must match the Python limiter.)
"""The per-request part of the Binance rate limiter (extrema.adapters.binance.ratelimit), compiled.

Why (issue 5, tick-to-order): RateLimiter.try_acquire runs inside every WebSocket API order; written in
Python over three budgets (request weight / minute, orders / 10 s, orders / day) it cost 3-4 µs of the
~24 µs tick-to-order p50. Here a budget's interval, cap and cost kind are C integers and the check-then-
reserve pass is one C loop; the counts per window stay in dicts (window -> count) because everything
else the limiter does - the corrections from every answer's `rateLimits` and from REST headers, 429 /
418 handling, set_limits - reads and writes them from Python, rarely.

The rule is the Python limiter's (tests/models/binance_ratelimit_reference.py is that code, kept as the
reference; tests/adapters/test_binance_ratelimit_compiled.py compares the two with hypothesis): a request
is counted in every fixed window it may land in - those of (now - margin) and (now + margin), margin the
error of our server-clock estimate - and fits when `confirmed + pending + cost <= cap` in each, or the
window is still empty (a cost above the whole cap is let through rather than held forever).
https://developers.binance.com/docs/binance-spot-api-docs/rest-api/limits
"""
cimport cython
from libc.stdint cimport int64_t
from cpython.dict cimport PyDict_GetItem, PyDict_SetItem
from cpython.object cimport PyObject

cdef extern from *:
    """
    #define EX_NO_WINDOW ((int64_t)INT64_MIN)
    """
    int64_t EX_NO_WINDOW

COST_WEIGHT = 0       # REQUEST_WEIGHT: the request's weight
COST_ORDERS = 1       # ORDERS: its order count
COST_ONE = 2          # RAW_REQUESTS: every request counts once


cdef inline int64_t _get(dict d, object key) except? -1:
    cdef PyObject *v = PyDict_GetItem(d, key)
    return 0 if v == NULL else <int64_t><object>v


@cython.final
cdef class Budget:
    """One limiter's counts per window (see the module doc). Budget(limit, step_ms, cap, cost_of, ident,
    header_ident): `limit` the RateLimit it stands for, `cost_of` COST_WEIGHT / COST_ORDERS / COST_ONE."""
    cdef readonly object limit
    cdef readonly int64_t step
    cdef readonly int64_t cap
    cdef readonly int cost_of
    cdef readonly object ident           # (kind, key): a reservation's key for this budget
    cdef readonly object header_ident    # (USED-WEIGHT | ORDER-COUNT, key): what headers report for it
    cdef public int64_t pruned           # the oldest live window at the last prune (EX_NO_WINDOW: never)
    cdef public dict confirmed           # window -> highest count the server reported / we counted
    cdef public dict pending             # window -> cost of requests sent and not answered

    def __init__(self, limit, int64_t step, int64_t cap, int cost_of, ident, header_ident):
        if step <= 0:
            raise ValueError(f"a rate-limit interval must be positive, got {step} ms")
        if cost_of < 0 or cost_of > 2:
            raise ValueError(f"unknown cost kind {cost_of}")
        self.limit = limit
        self.step = step
        self.cap = cap
        self.cost_of = cost_of
        self.ident = ident
        self.header_ident = header_ident
        self.pruned = EX_NO_WINDOW
        self.confirmed = {}
        self.pending = {}

    def windows(self, int64_t now_ms, int64_t margin_ms):
        cdef int64_t first = (now_ms - margin_ms) // self.step, last = (now_ms + margin_ms) // self.step
        if first == last:
            return (first,)
        return (first, last)

    cpdef prune(self, int64_t now_ms, int64_t margin_ms):
        """Forget windows older than (now - margin): confirmed counts, and pending ones already settled
        (a window with requests still in flight is kept until they are)."""
        cdef int64_t oldest = (now_ms - margin_ms) // self.step
        if oldest == self.pruned:
            return                          # nothing has aged out since the last prune
        self.pruned = oldest
        for w in [w for w in self.confirmed if w < oldest]:
            del self.confirmed[w]
        for w in [w for w in self.pending if w < oldest and self.pending[w] <= 0]:
            del self.pending[w]

    def used(self, window):
        return _get(self.confirmed, window) + _get(self.pending, window)

    def wait_ms(self, int64_t now_ms, int64_t margin_ms, int64_t cost):
        """How long until `cost` fits (0 = now)."""
        cdef int64_t wait = 0, first, last, w, used
        if cost <= 0:
            return 0
        self.prune(now_ms, margin_ms)
        first, last = (now_ms - margin_ms) // self.step, (now_ms + margin_ms) // self.step
        w = first
        while True:             # the windows of (now - margin) and (now + margin): one or two
            used = _get(self.confirmed, w) + _get(self.pending, w)
            if not (used + cost <= self.cap or (used == 0 and cost > self.cap)):
                # Window w stops mattering once (now - margin) is past its end; a settle may free it sooner.
                wait = max(wait, (w + 1) * self.step + margin_ms - now_ms)
            if w == last:
                break
            w = last
        return wait


@cython.final
cdef class Reservation:
    """Costs taken from the budgets for one request; released by RateLimiter.settle. `windows`:
    {budget ident: (cost, (window, ...))}."""
    cdef public object weight
    cdef public object orders
    cdef public dict windows
    cdef public bint settled

    def __init__(self, weight, orders, windows=None, bint settled=False):
        self.weight = weight
        self.orders = orders
        self.windows = {} if windows is None else windows
        self.settled = settled

    def __repr__(self):
        return (f"Reservation(weight={self.weight}, orders={self.orders}, windows={self.windows}, "
                f"settled={self.settled})")


def reserve_now(list budgets not None, weight, orders, int64_t now, int64_t margin):
    """Check every budget and, when the request fits all of them, reserve its costs: returns the
    Reservation. When it does not fit, nothing is reserved and the result is the wait in ms (an int > 0)
    until it would. (RateLimiter.try_acquire: blocks and the error are the caller's.)"""
    cdef int64_t w_cost = weight, o_cost = orders
    cdef int64_t lo = now - margin, hi = now + margin, worst = 0
    cdef int64_t cost, step, first, last, w, used, wait
    cdef Budget b
    cdef Py_ssize_t i, n = len(budgets)
    cdef int64_t costs[16]
    cdef int64_t firsts[16]
    cdef int64_t lasts[16]
    cdef dict reserved, pending
    cdef Reservation res
    if n > 16:
        # Binance has three or four limiters per client; more would be a configuration error.
        raise ValueError(f"{n} rate limiters: at most 16 are supported")
    for i in range(n):
        b = <Budget?>budgets[i]
        cost = w_cost if b.cost_of == 0 else (o_cost if b.cost_of == 1 else 1)
        costs[i] = cost
        if cost <= 0:
            continue
        step = b.step
        first = lo // step
        last = hi // step
        if first != b.pruned:
            b.prune(now, margin)
        firsts[i] = first
        lasts[i] = last
        w = first
        while True:             # the windows of (now - margin) and (now + margin): one or two
            used = _get(b.confirmed, w) + _get(b.pending, w)
            # over the cap, unless the window is empty (a cost above the whole limit is let through)
            if used + cost > b.cap and used:
                wait = (w + 1) * step + margin - now
                if wait > worst:
                    worst = wait
            if w == last:
                break
            w = last
    if worst > 0:
        return worst
    reserved = {}
    res = Reservation.__new__(Reservation)
    res.weight = weight
    res.orders = orders
    res.windows = reserved
    res.settled = False
    for i in range(n):
        cost = costs[i]
        if cost <= 0:
            continue
        b = <Budget>budgets[i]
        pending = b.pending
        first = firsts[i]
        last = lasts[i]
        PyDict_SetItem(pending, first, _get(pending, first) + cost)
        if last != first:
            PyDict_SetItem(pending, last, _get(pending, last) + cost)
        if first == last:
            reserved[b.ident] = (cost, (first,))
        else:
            reserved[b.ident] = (cost, (first, last))
    return res
