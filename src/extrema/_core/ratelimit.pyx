# cython: cdivision=False
# (Python floor division: windows of times before the epoch or of a negative margin must match the Python limiter.)
"""The per-request part of the Binance rate limiter (extrema.adapters.binance.ratelimit), compiled: the
counts per window, the reservation a request takes and its release when the answer comes.

Why (issue 5, tick-to-order): RateLimiter.try_acquire runs inside every WebSocket API order. Written over
Python dicts (window -> count) it cost ~1.2 µs in a warm loop and ~3.5 µs inside the tick-to-order path
(cold caches after a frame's decode and dispatch): each order boxed window numbers and touched a dozen dict
entries over the three or four budgets. Here a budget keeps its live windows in a small C table (a
handful at a time: the current window, the next near a boundary, older ones with answers still owed) and
the whole check-then-reserve pass, the reservation and the release are C; the limiter's rarer work
(answers' `rateLimits`, REST headers, 429 / 418, set_limits) calls the table's methods from Python.

The rule is the Python limiter's (tests/models/binance_ratelimit_reference.py keeps it over dicts;
tests/adapters/test_binance_ratelimit_compiled.py drives both with hypothesis): a request is counted in
every fixed window it may land in - those of (now - margin) and (now + margin), margin the error of our
server-clock estimate - and fits when `confirmed + pending + cost <= cap` in each, or the window is still
empty (a cost above the whole cap is let through rather than held forever).
https://developers.binance.com/docs/binance-spot-api-docs/rest-api/limits
"""
cimport cython
from libc.stdint cimport int64_t
from libc.stdlib cimport realloc, free

cdef extern from *:
    """
    #define EX_NO_WINDOW ((int64_t)INT64_MIN)
    """
    int64_t EX_NO_WINDOW

COST_WEIGHT = 0       # REQUEST_WEIGHT: the request's weight
COST_ORDERS = 1       # ORDERS: its order count
COST_ONE = 2          # RAW_REQUESTS: every request counts once

# MAX_BUDGETS (ratelimit.pxd): Binance has three or four limiters per client; more is a configuration error


@cython.final
cdef class Budget:
    """One limiter's counts per window (see the module doc). Budget(limit, step_ms, cap, cost_of, ident,
    header_ident): `limit` the RateLimit it stands for, `cost_of` COST_WEIGHT / COST_ORDERS / COST_ONE.
    `confirmed` / `pending` are {window: count} copies, for reading."""

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

    def __dealloc__(self):
        free(self._win)

    # ---- the window table ----

    cdef Window *_find(self, int64_t w) noexcept:
        cdef Py_ssize_t i
        for i in range(self._n):
            if self._win[i].w == w:
                return &self._win[i]
        return NULL

    cdef Window *_slot(self, int64_t w) except NULL:
        """The entry of window w, added (empty) when missing."""
        cdef Window *e = self._find(w)
        cdef Window *grown
        if e != NULL:
            return e
        if self._n == self._cap:
            grown = <Window *>realloc(self._win, (self._cap * 2 + 4) * sizeof(Window))
            if grown == NULL:
                raise MemoryError()
            self._win = grown
            self._cap = self._cap * 2 + 4
        e = &self._win[self._n]
        self._n += 1
        e.w = w
        e.confirmed = 0
        e.pending = 0
        e.has_confirmed = 0
        e.has_pending = 0
        return e

    cdef void _compact(self) noexcept:
        # drop entries that hold neither a confirmed nor a pending count
        cdef Py_ssize_t i, k = 0
        for i in range(self._n):
            if self._win[i].has_confirmed or self._win[i].has_pending:
                if k != i:
                    self._win[k] = self._win[i]
                k += 1
        self._n = k

    cdef int64_t _used(self, int64_t w) noexcept:
        cdef Window *e = self._find(w)
        return 0 if e == NULL else e.confirmed + e.pending

    cdef int _add_pending(self, int64_t w, int64_t cost) except -1:
        cdef Window *e = self._slot(w)
        e.pending += cost
        e.has_pending = 1
        return 0

    cdef int _release(self, int64_t w, int64_t cost, bint count_it) except -1:
        """An answered (or lost) request's cost leaves `pending`; count_it: it reached the server and no
        header reported this budget, so we count it in `confirmed` ourselves."""
        cdef Window *e = self._find(w)
        if e != NULL and e.has_pending:
            e.pending -= cost
            if e.pending <= 0:
                e.pending = 0
                e.has_pending = 0
        if count_it:
            e = self._slot(w)
            e.confirmed += cost
            e.has_confirmed = 1
        elif e != NULL and not e.has_confirmed and not e.has_pending:
            self._compact()
        return 0

    cdef int _prune(self, int64_t now_ms, int64_t margin_ms) except -1:
        cdef int64_t oldest = (now_ms - margin_ms) // self.step
        cdef Py_ssize_t i
        if oldest == self.pruned:
            return 0                      # nothing has aged out since the last prune
        self.pruned = oldest
        for i in range(self._n):
            if self._win[i].w < oldest:
                self._win[i].has_confirmed = 0
                self._win[i].confirmed = 0
                if self._win[i].pending <= 0:     # a window with requests still in flight stays until settled
                    self._win[i].has_pending = 0
                    self._win[i].pending = 0
        self._compact()
        return 0

    # ---- Python-facing ----

    def windows(self, int64_t now_ms, int64_t margin_ms):
        cdef int64_t first = (now_ms - margin_ms) // self.step, last = (now_ms + margin_ms) // self.step
        if first == last:
            return (first,)
        return (first, last)

    def prune(self, int64_t now_ms, int64_t margin_ms):
        """Forget windows older than (now - margin): confirmed counts, and pending ones already settled
        (a window with requests still in flight is kept until they are)."""
        self._prune(now_ms, margin_ms)

    def used(self, int64_t window):
        return self._used(window)

    def confirmed_at(self, int64_t window):
        cdef Window *e = self._find(window)
        return 0 if e == NULL else e.confirmed

    def set_confirmed(self, int64_t window, int64_t count):
        cdef Window *e = self._slot(window)
        e.confirmed = count
        e.has_confirmed = 1

    def raise_confirmed(self, int64_t window, int64_t count):
        """confirmed = max(confirmed, count): a server report never lowers a count (a smaller number is
        an older answer)."""
        cdef Window *e = self._slot(window)
        if count > e.confirmed:           # an absent count reads as 0 (the entry holds 0 then)
            e.confirmed = count
        e.has_confirmed = 1

    def adopt(self, Budget other not None):
        """Take over another budget's counts (a limiter replaced by one of the same interval)."""
        cdef Window *grown
        if other._n > self._cap:
            grown = <Window *>realloc(self._win, other._n * sizeof(Window))
            if grown == NULL:
                raise MemoryError()
            self._win = grown
            self._cap = other._n
        for i in range(other._n):
            self._win[i] = other._win[i]
        self._n = other._n

    @property
    def confirmed(self):
        return {self._win[i].w: self._win[i].confirmed for i in range(self._n) if self._win[i].has_confirmed}

    @property
    def pending(self):
        return {self._win[i].w: self._win[i].pending for i in range(self._n) if self._win[i].has_pending}

    def wait_ms(self, int64_t now_ms, int64_t margin_ms, int64_t cost):
        """How long until `cost` fits (0 = now)."""
        cdef int64_t wait = 0, first, last, w, used
        if cost <= 0:
            return 0
        self._prune(now_ms, margin_ms)
        first, last = (now_ms - margin_ms) // self.step, (now_ms + margin_ms) // self.step
        w = first
        while True:             # the windows of (now - margin) and (now + margin): one or two
            used = self._used(w)
            if not (used + cost <= self.cap or (used == 0 and cost > self.cap)):
                # Window w stops mattering once (now - margin) is past its end; a settle may free it sooner.
                wait = max(wait, (w + 1) * self.step + margin_ms - now_ms)
            if w == last:
                break
            w = last
        return wait


@cython.final
@cython.freelist(16)          # one per request in flight: reused rather than allocated (the order hot path)
cdef class Reservation:
    """Costs taken from the budgets for one request; released by RateLimiter.settle. `windows`:
    {budget ident: (cost, (window, ...))}, for reading."""

    def __init__(self):
        raise TypeError("Reservations are made by RateLimiter.try_acquire / acquire")

    @property
    def windows(self):
        out = {}
        for i in range(self._n):
            b = <Budget>self._budgets[self._idx[i]]
            if self._first[i] == self._last[i]:
                out[b.ident] = (self._cost[i], (self._first[i],))
            else:
                out[b.ident] = (self._cost[i], (self._first[i], self._last[i]))
        return out

    def __repr__(self):
        return (f"Reservation(weight={self.weight}, orders={self.orders}, windows={self.windows}, "
                f"settled={self.settled})")


cdef inline int64_t _cost_of(Budget b, int64_t weight, int64_t orders) noexcept:
    return weight if b.cost_of == 0 else (orders if b.cost_of == 1 else 1)


cdef object reserve(list budgets, int64_t weight, int64_t orders, int64_t now, int64_t margin, bint check):
    """Check every budget (check=True) and, when the request fits all of them, reserve its costs: the
    Reservation. When it does not fit, nothing is reserved and the result is the wait in ms (an int > 0)
    until it would. check=False reserves without looking (the caller has waited until it fits)."""
    cdef int64_t lo = now - margin, hi = now + margin, worst = 0
    cdef int64_t cost, step, first, last, w, used, wait
    cdef Budget b
    cdef Py_ssize_t i, n = len(budgets)
    cdef Reservation res
    if n > MAX_BUDGETS:
        raise ValueError(f"{n} rate limiters: at most {MAX_BUDGETS} are supported")
    if check:
        for i in range(n):
            b = <Budget?>budgets[i]
            cost = _cost_of(b, weight, orders)
            if cost <= 0:
                continue
            step = b.step
            first = lo // step
            last = hi // step
            if first != b.pruned:
                b._prune(now, margin)
            w = first
            while True:             # the windows of (now - margin) and (now + margin): one or two
                used = b._used(w)
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
    res = Reservation.__new__(Reservation)
    res.weight = weight
    res.orders = orders
    res.settled = False
    res._budgets = budgets
    res._n = 0
    for i in range(n):
        b = <Budget?>budgets[i]
        cost = _cost_of(b, weight, orders)
        if cost <= 0:
            continue
        first = lo // b.step
        last = hi // b.step
        b._add_pending(first, cost)
        if last != first:
            b._add_pending(last, cost)
        res._idx[res._n] = <int>i
        res._cost[res._n] = cost
        res._first[res._n] = first
        res._last[res._n] = last
        res._n += 1
    return res


def reserve_now(list budgets not None, int64_t weight, int64_t orders, int64_t now, int64_t margin, *,
                bint check=True):
    """reserve() from Python (see there)."""
    return reserve(budgets, weight, orders, now, margin, check)


def release(list budgets not None, Reservation res not None, reported, bint reached_server):
    """Give back a reservation's pending costs; when the request reached the server, count its costs in
    `confirmed` for the budgets whose count `reported` (the header idents the answer reported) lacks.
    `budgets` is the limiter's list now: if set_limits replaced it since, budgets are matched by ident."""
    cdef Py_ssize_t i, j
    cdef Budget b, was
    cdef bint same = budgets is res._budgets
    for i in range(res._n):
        if same:
            b = <Budget>budgets[res._idx[i]]
        else:
            was = <Budget>res._budgets[res._idx[i]]
            b = None
            for j in range(len(budgets)):
                if (<Budget>budgets[j]).ident == was.ident:
                    b = <Budget>budgets[j]
                    break
            if b is None:
                continue                   # that limiter is gone
        count_it = reached_server and b.header_ident not in reported
        b._release(res._first[i], res._cost[i], count_it)
        if res._last[i] != res._first[i]:
            b._release(res._last[i], res._cost[i], count_it)


cdef class LimiterCore:
    """The compiled base of RateLimiter: its budgets, blocks and the reservation without waiting. The
    rest (configuration, answers, headers, 429 / 418, waiting) is the Python subclass's."""

    def try_acquire(self, weight, orders, *, str endpoint, now_ms=None):
        """Reserve the costs now, without waiting: for callers that must send at once or not at all (the
        WebSocket API order path). Raises RateLimitError (IPBannedError during a ban) with `retry_after`
        when the request does not fit a budget now or a 429 / 418 block is active. `now_ms`: the server
        clock estimate when the caller already has it (the request's timestamp)."""
        return self.acquire_now(weight, orders, endpoint, self._now_ms() if now_ms is None else now_ms)

    cdef Reservation acquire_now(self, int64_t weight, int64_t orders, str endpoint, int64_t now_ms):
        """try_acquire for compiled callers (the WebSocket API order sink)."""
        if self._banned_until or self._blocked_until or (orders and self._order_blocked_until):
            self._check_blocks(weight, orders, endpoint)
        res = reserve(self._budgets, weight, orders, now_ms, self.window_margin_ms, True)
        if type(res) is int:
            raise self._refusal(None, res / 1000.0, endpoint)
        self.in_flight += 1
        return <Reservation>res

    cdef int64_t warm(self, int64_t weight, int64_t orders, int64_t now_ms) noexcept:
        """Read what acquire_now reads (each budget's window of now_ms), changing nothing: the engine's
        warm-up between events (extrema.engine.warm says why). Returns the highest count read."""
        cdef Budget b
        cdef int64_t used, most = 0
        for b in self._budgets:
            if _cost_of(b, weight, orders) > 0:
                used = b._used(now_ms // b.step)
                if used > most:
                    most = used
        return most

    def _reserve(self, weight, orders):
        """Reserve without checking (acquire() has waited until the request fits)."""
        res = reserve(self._budgets, weight, orders, self._now_ms(), self.window_margin_ms, False)
        self.in_flight += 1
        return res
