"""Pre-trade risk: every check runs, compiled, before an order is encoded; per strategy and global.

RiskEngine(orders, portfolio) reads the order table (open orders and their remaining sizes) and the
portfolio (positions, marks, equity). `check(...)` runs the chain below and stops at the first rule that
refuses the order, filling a RiskResult with the rule, the scope whose limit it was (a strategy index, or
ALL = 65 for a global limit) and the numbers (value vs limit, in user units). Each scoped rule is checked
for the strategy first, then globally.

  1  KILL_SWITCH        the engine (ALL) or the strategy is killed: no new orders at all
  2  CIRCUIT_BREAKER    a tripped breaker: drawdown (equity >= max_drawdown below its peak, evaluated at
                        every check and evaluate(); stays until reset) or a burst of venue rejects
                        (reject_burst within reject_window; clears after breaker_cooldown if set)
  3  INVALID_ORDER      unknown instrument, size <= 0, bad side / type, a priced type without a price
                        (LIMIT, STOP_LIMIT, TAKE_PROFIT_LIMIT, LIMIT_MAKER) or a market type with one,
                        a stop type without a stop price
  4  TICK_SIZE          price or stop price not a multiple of the instrument's tick
  5  LOT_SIZE           size not a multiple of the lot
  6  MIN_NOTIONAL       price x size below the instrument's min notional (market orders: at the mark;
                        without any reference price the venue is left to check it, counted)
  7  MAX_ORDER_SIZE     per (scope, instrument), raw size
  8  MAX_ORDER_NOTIONAL per scope, account currency, at the order price (market: the mark)
  9  PRICE_BAND         per scope, basis points from the mark (the engine's book mid, see Portfolio):
                        a limit price outside mid +- band; a market order whose average fill price
                        walking the book is outside it, or that the book cannot fill. Stop / take-profit
                        / trailing types are not banded (they trigger later). Without a mark: refused.
 10  MAX_OPEN_ORDERS    live orders of the scope + 1 > limit
 11  REDUCE_ONLY        a reduce-only order that would not reduce the strategy's position
 12  MAX_POSITION       per (scope, instrument): the worst case position on the order's side (position
                        + open orders of that side + this order) beyond the limit, unless the order
                        brings it closer to zero
 13  MAX_EXPOSURE       per scope: sum over instruments of max(|pos + open buys|, |pos - open sells|) x
                        mark x multiplier x rate(quote), with this order, beyond the limit and larger
                        than without it
 14  DAILY_LOSS         per scope: equity - equity at the start of the day (UTC + day_offset) at or
                        below -limit: only orders that reduce the scope's position pass
 15  RATE_LIMIT         per venue: token buckets (orders per window); a passing order takes a token

Limits are changed at run time with set_limit (each change is logged on "extrema.risk" and kept in
`changes`). Call it on the engine thread (or marshal it there): the checks read the limits unlocked.
"""
cimport cython
from libc.stdint cimport int64_t, uint32_t, int32_t, uint8_t, INT64_MAX
from libc.stdlib cimport malloc, realloc, free
from libc.string cimport memset
from libc.math cimport INFINITY, NAN, isinf, isnan

import enum
import logging
import math
from decimal import Decimal

from extrema._core.orders cimport (OrderTable, OpenCell, N_OWNERS, OWNER_ALL, OWNER_EXTERNAL,
                                   MAX_STRATEGY_OWNERS, OT_MARKET, OT_LIMIT, OT_STOP_MARKET, OT_STOP_LIMIT,
                                   OT_TAKE_PROFIT_MARKET, OT_TAKE_PROFIT_LIMIT, OT_LIMIT_MAKER,
                                   OT_TRAILING_STOP_MARKET, ORDER_REDUCE_ONLY)
from extrema._core.portfolio cimport Portfolio, Position, InstrumentSpec, MAX_MARKETS
from extrema._core.book cimport OrderBook
from extrema._core.ex_money cimport ex_i128, ex_mul64
from extrema._core.ex_fixed cimport ex_raw_to_f64
from extrema._core.clock cimport now_us
from extrema._core.fixedpoint cimport value_to_raw

cdef int64_t DAY_US = 86_400_000_000


class RiskRule(enum.IntEnum):
    """The pre-trade rule that refused an order (PASSED: none); see the module doc."""
    PASSED = RULE_PASSED
    KILL_SWITCH = RULE_KILL_SWITCH
    CIRCUIT_BREAKER = RULE_CIRCUIT_BREAKER
    INVALID_ORDER = RULE_INVALID_ORDER
    TICK_SIZE = RULE_TICK_SIZE
    LOT_SIZE = RULE_LOT_SIZE
    MIN_NOTIONAL = RULE_MIN_NOTIONAL
    MAX_ORDER_SIZE = RULE_MAX_ORDER_SIZE
    MAX_ORDER_NOTIONAL = RULE_MAX_ORDER_NOTIONAL
    PRICE_BAND = RULE_PRICE_BAND
    MAX_OPEN_ORDERS = RULE_MAX_OPEN_ORDERS
    REDUCE_ONLY = RULE_REDUCE_ONLY
    MAX_POSITION = RULE_MAX_POSITION
    MAX_EXPOSURE = RULE_MAX_EXPOSURE
    DAILY_LOSS = RULE_DAILY_LOSS
    RATE_LIMIT = RULE_RATE_LIMIT


_RULES = tuple(RiskRule(r) for r in range(N_RULES))


class BreakerReason(enum.IntEnum):
    NONE = BREAKER_NONE
    DRAWDOWN = BREAKER_DRAWDOWN
    REJECTS = BREAKER_REJECTS
    MANUAL = BREAKER_MANUAL


REJECT_REASON_BASE = RISK_REJECT_REASON_BASE
GLOBAL = OWNER_ALL

_WHAT = {
    RULE_KILL_SWITCH: "the kill switch is on",
    RULE_CIRCUIT_BREAKER: "the circuit breaker is tripped",
    RULE_INVALID_ORDER: "the order is invalid",
    RULE_TICK_SIZE: "price {value} is not a multiple of the tick {limit}",
    RULE_LOT_SIZE: "size {value} is not a multiple of the lot {limit}",
    RULE_MIN_NOTIONAL: "notional {value} is below the minimum {limit}",
    RULE_MAX_ORDER_SIZE: "size {value} exceeds the max order size {limit}",
    RULE_MAX_ORDER_NOTIONAL: "notional {value} exceeds the max order notional {limit}",
    RULE_PRICE_BAND: "the price is {value} bps from the mark, the band is {limit} bps",
    RULE_MAX_OPEN_ORDERS: "{value} open orders would exceed the max {limit}",
    RULE_REDUCE_ONLY: "a reduce-only order of {value} can reduce at most {limit}",
    RULE_MAX_POSITION: "position {value} would exceed the max position {limit}",
    RULE_MAX_EXPOSURE: "exposure {value} would exceed the max exposure {limit}",
    RULE_DAILY_LOSS: "the day's loss {value} reached the daily loss limit {limit}; only reducing orders pass",
    RULE_RATE_LIMIT: "{value} tokens left in the venue's order rate limit of {limit} orders/s",
}


class RiskRejection:
    """An order the pre-trade checks refused: the rule, whose limit (strategy index or "global"), the
    instrument, and the numbers (value vs limit)."""

    __slots__ = ("rule", "scope", "instrument_id", "value", "limit", "client_order_id", "strategy", "instrument")

    def __init__(self, rule, scope, instrument_id, value, limit, client_order_id=0, strategy=None, instrument=None):
        self.rule = _RULES[rule]
        self.scope = "global" if scope == OWNER_ALL else scope
        self.instrument_id = instrument_id
        self.value = value
        self.limit = limit
        self.client_order_id = client_order_id
        self.strategy = strategy
        self.instrument = instrument

    @property
    def reason_code(self):
        """The reason code an ORDER_UPDATE of this rejection carries (REJECT_REASON_BASE + rule)."""
        return RISK_REJECT_REASON_BASE + int(self.rule)

    @property
    def message(self):
        if int(self.rule) in (RULE_INVALID_ORDER, RULE_TICK_SIZE, RULE_LOT_SIZE, RULE_MIN_NOTIONAL, RULE_REDUCE_ONLY):
            who = "order check"
        elif int(self.rule) == RULE_RATE_LIMIT:
            who = "venue rate limit"
        elif self.scope == "global":
            who = "global limit"
        else:
            who = f"limit of strategy {self.strategy or self.scope}"
        what = _WHAT.get(int(self.rule), self.rule.name).format(value=_num(self.value), limit=_num(self.limit))
        where = f" on {self.instrument or self.instrument_id}" if self.instrument_id else ""
        return f"{self.rule.name} ({who}){where}: {what}"

    def as_dict(self):
        return {"rule": self.rule.name, "scope": self.scope, "instrument_id": self.instrument_id,
                "instrument": self.instrument, "value": self.value, "limit": self.limit,
                "client_order_id": self.client_order_id, "strategy": self.strategy, "message": self.message}

    def __repr__(self):
        return f"<RiskRejection {self.message}>"


def _num(x):
    if isinstance(x, float) and x.is_integer() and abs(x) < 1e15:
        return str(int(x))
    return f"{x:.10g}" if isinstance(x, float) else str(x)


cdef inline bint _priced(int t) noexcept nogil:
    return t == OT_LIMIT or t == OT_STOP_LIMIT or t == OT_TAKE_PROFIT_LIMIT or t == OT_LIMIT_MAKER


cdef inline bint _stop_type(int t) noexcept nogil:
    return (t == OT_STOP_MARKET or t == OT_STOP_LIMIT or t == OT_TAKE_PROFIT_MARKET or t == OT_TAKE_PROFIT_LIMIT
            or t == OT_TRAILING_STOP_MARKET)


cdef inline int64_t _abs64(int64_t x) noexcept nogil:
    return -x if x < 0 else x


cdef inline int _refuse(RiskResult *out, int rule, int scope, double value, double limit) noexcept nogil:
    out.rule = rule
    out.scope = scope
    out.value = value
    out.limit = limit
    return rule


cdef int book_walk(OrderBook book, int side, int64_t qty, ex_i128 *notional, int64_t *touch,
                   int64_t *worst) except -1:
    """Walk the book as an order of `side` (0 buy: asks) for qty raw: notional of what it fills (exact),
    the touch and the worst level price reached. Returns 1 if the book fills all of qty, else 0."""
    cdef int bs = 1 if side == 0 else 0
    cdef Py_ssize_t n = book._sides[bs].count
    cdef int64_t stack[64]
    cdef int64_t *lv = stack
    cdef Py_ssize_t k = n if n < 32 else 32
    cdef Py_ssize_t i = 0
    cdef int64_t rem = qty, take
    notional[0] = 0
    if n == 0 or qty <= 0:
        return 0
    book._fill_levels_raw(bs, lv, k)
    touch[0] = lv[0]
    try:
        while rem > 0:
            if i == k:
                if k == n:
                    break
                # deeper than the stack copy: take every level once
                lv = <int64_t *>malloc(2 * n * sizeof(int64_t))
                if lv == NULL:
                    raise MemoryError()
                book._fill_levels_raw(bs, lv, n)
                k = n
            take = lv[2 * i + 1] if lv[2 * i + 1] < rem else rem
            notional[0] += ex_mul64(lv[2 * i], take)
            worst[0] = lv[2 * i]
            rem -= take
            i += 1
    finally:
        if lv != stack:
            free(lv)
    return 1 if rem == 0 else 0


@cython.final
cdef class RiskEngine:
    """The pre-trade check chain and its limits (see the module doc).

    RiskEngine(orders, portfolio, day_offset_s=0): day boundaries at UTC midnight + day_offset_s.
    """

    def __cinit__(self, OrderTable orders, Portfolio portfolio, day_offset_s=0):
        cdef int s
        self.orders = orders
        self.portfolio = portfolio
        self.day_offset_us = int(day_offset_s * 1_000_000)
        self.changes = []
        self._log = logging.getLogger("extrema.risk")
        for s in range(N_OWNERS):
            self._limits[s].max_open_orders = -1
            self._limits[s].max_exposure = INFINITY
            self._limits[s].max_order_notional = INFINITY
            self._limits[s].daily_loss = INFINITY
            self._limits[s].max_drawdown = INFINITY
            self._state[s].day = -1
        self._grow(16)

    def __dealloc__(self):
        free(self._inst)

    cdef int _grow(self, uint32_t iid) except -1:
        cdef uint32_t n = self._inst_n
        cdef uint32_t new_n = 16 if n == 0 else n
        cdef Py_ssize_t i
        while new_n <= iid:
            new_n *= 2
        cdef InstrumentLimits *p = <InstrumentLimits *>realloc(self._inst, <Py_ssize_t>new_n * N_OWNERS * sizeof(InstrumentLimits))
        if p == NULL:
            raise MemoryError()
        for i in range(<Py_ssize_t>n * N_OWNERS, <Py_ssize_t>new_n * N_OWNERS):
            p[i].max_position = INT64_MAX
            p[i].max_order_qty = INT64_MAX
        self._inst = p
        self._inst_n = new_n
        return 0

    cdef void _event(self, int kind, int scope, int reason, double value, double limit, int64_t ts) noexcept:
        cdef RiskEvent *e
        if self._ev_n == 256:
            self._ev_head = (self._ev_head + 1) % 256
            self._ev_n -= 1
            self.events_lost += 1
        e = &self._events[(self._ev_head + self._ev_n) % 256]
        self._ev_n += 1
        e.kind = kind
        e.scope = scope
        e.reason = reason
        e.value = value
        e.limit = limit
        e.ts = ts

    # ---- breakers, days, buckets -------------------------------------------------------------------

    cdef void _trip(self, int scope, int reason, double value, double limit, int64_t now) noexcept:
        cdef ScopeState *st = &self._state[scope]
        st.breaker = <uint8_t>reason
        st.breaker_since = now
        st.breaker_value = value
        st.breaker_limit = limit
        st.breaker_until = 0
        if reason == BREAKER_REJECTS and self._limits[scope].breaker_cooldown_us > 0:
            st.breaker_until = now + self._limits[scope].breaker_cooldown_us
        self._event(RISK_EV_BREAKER_TRIP, scope, reason, value, limit, now)

    cdef double _equity(self, int scope, double *cache) noexcept:
        """The scope's equity, computed once per check (cache starts NaN)."""
        if isnan(cache[0]):
            cache[0] = self.portfolio.equity_of(scope)
        return cache[0]

    cdef int _breaker(self, int scope, int64_t now, RiskResult *out, double *eq_cache) noexcept:
        """Expire / evaluate the scope's breaker; 1 (and out filled) if it is tripped."""
        cdef ScopeState *st = &self._state[scope]
        cdef ScopeLimits *lim = &self._limits[scope]
        cdef double eq, dd
        if st.breaker and st.breaker_until != 0 and now >= st.breaker_until:
            st.breaker = BREAKER_NONE
            st.reject_n = 0
            self._event(RISK_EV_BREAKER_RESET, scope, 0, 0.0, 0.0, now)
        if not st.breaker and not isinf(lim.max_drawdown):
            eq = self._equity(scope, eq_cache)
            if not st.peak_set or eq > st.peak_equity:
                st.peak_equity = eq
                st.peak_set = 1
            dd = st.peak_equity - eq
            if dd >= lim.max_drawdown:
                self._trip(scope, BREAKER_DRAWDOWN, dd, lim.max_drawdown, now)
        if st.breaker:
            _refuse(out, RULE_CIRCUIT_BREAKER, scope, st.breaker_value, st.breaker_limit)
            return 1
        return 0

    cdef void _roll_day(self, int scope, int64_t now, double *eq_cache) noexcept:
        cdef int64_t today = (now + self.day_offset_us) // DAY_US
        cdef ScopeState *st = &self._state[scope]
        if st.day != today:
            st.day = today
            st.day_start_equity = self._equity(scope, eq_cache)
            self._event(RISK_EV_DAY_START, scope, 0, st.day_start_equity, 0.0, now)

    cdef int _rate_ok(self, int market, int64_t now, RiskResult *out) noexcept:
        """Refill the venue's buckets; 1 if each holds a token (then one is taken from each)."""
        cdef int k, n = self._n_buckets[market]
        cdef Bucket *b
        cdef int64_t elapsed
        for k in range(n):
            b = &self._buckets[market][k]
            elapsed = now - b.last_us
            if elapsed > 0:
                if elapsed > b.per_us:
                    elapsed = b.per_us            # a full refill takes per_us; no overflow past it
                b.units += elapsed * b.orders
                if b.units > b.orders * b.per_us:
                    b.units = b.orders * b.per_us
                b.last_us = now
            if b.units < b.per_us:
                _refuse(out, RULE_RATE_LIMIT, OWNER_ALL, <double>b.units / <double>b.per_us,
                        <double>b.orders / (<double>b.per_us / 1e6))
                return 0
        for k in range(n):
            self._buckets[market][k].units -= self._buckets[market][k].per_us
        return 1

    cdef int on_venue_reject(self, int owner, int64_t now) noexcept:
        """A venue rejected an order of owner: count it toward the reject-burst breakers. Returns 1 if
        a breaker tripped."""
        cdef int scopes[2]
        cdef int j, scope, burst, tripped = 0
        cdef ScopeState *st
        scopes[0] = owner
        scopes[1] = OWNER_ALL
        for j in range(2):
            scope = scopes[j]
            if scope >= OWNER_ALL and j == 0:
                continue
            burst = self._limits[scope].reject_burst
            if burst <= 0:
                continue
            st = &self._state[scope]
            if st.reject_n < burst:
                st.reject_ts[(st.reject_head + st.reject_n) % burst] = now
                st.reject_n += 1
            else:
                st.reject_ts[st.reject_head] = now
                st.reject_head = (st.reject_head + 1) % burst
            if (st.reject_n == burst and now - st.reject_ts[st.reject_head] <= self._limits[scope].reject_window_us
                    and not st.breaker):
                self._trip(scope, BREAKER_REJECTS, burst, burst, now)
                st.reject_n = 0
                st.reject_head = 0
                tripped = 1
        return tripped

    cdef int evaluate_scope(self, int scope, int64_t now) noexcept:
        """Periodic evaluation (the engine's timer): expire / trip the breaker, start a new day. Returns
        1 if the scope's breaker is tripped."""
        cdef RiskResult r
        cdef double eq = NAN
        if not isinf(self._limits[scope].daily_loss):
            self._roll_day(scope, now, &eq)
        return self._breaker(scope, now, &r, &eq)

    cdef Py_ssize_t kill_ids(self, int scope, int64_t *out, Py_ssize_t cap) noexcept:
        return self.orders.open_ids(scope, out, cap)

    # ---- exposure --------------------------------------------------------------------------------

    cdef double _exposure(self, int scope, uint32_t iid, int side, int64_t qty, int64_t ref2, double *before) noexcept:
        """Exposure of the scope with this order added (returned) and without it (before)."""
        cdef Portfolio pf = self.portfolio
        cdef Py_ssize_t k, n = pf.active_count(scope)
        cdef uint32_t j
        cdef bint seen = False, last = False
        cdef double total_b = 0.0, total_a = 0.0, vb, va, f
        cdef int64_t pos, ob, os, m2, wb, wa, eb, es
        cdef Position *p
        cdef OpenCell *c
        cdef InstrumentSpec *s
        k = 0
        while True:
            if k < n:
                j = pf.active_at(scope, k)
            elif not seen:
                j = iid
                last = True
            else:
                break
            k += 1
            if j == iid:
                seen = True
            p = pf.position_ptr(j, scope)
            pos = p.qty if p != NULL else 0
            c = self.orders.cell(j, scope)
            ob = c.buy if c != NULL else 0
            os = c.sell if c != NULL else 0
            eb = qty if (j == iid and side == 0) else 0
            es = qty if (j == iid and side == 1) else 0
            if not pf.mark2(j, &m2):
                if j != iid:
                    continue                      # nothing to value it at (no book, no trade, no fill)
                m2 = ref2
            s = pf.spec(j)
            f = s.value_factor * pf.rate(s.quote_asset) * 0.5
            wb = _abs64(pos + ob)
            if _abs64(pos - os) > wb:
                wb = _abs64(pos - os)
            wa = _abs64(pos + ob + eb)
            if _abs64(pos - os - es) > wa:
                wa = _abs64(pos - os - es)
            vb = (<double>ex_mul64(wb, m2)) * f
            va = (<double>ex_mul64(wa, m2)) * f
            total_b += vb
            total_a += va
            if last:
                break
        before[0] = total_b
        return total_a

    # ---- the check chain -------------------------------------------------------------------------

    cdef int check(self, int owner, uint32_t iid, int side, int order_type, int flags, int64_t price,
                   int64_t stop_price, int64_t qty, int64_t now, RiskResult *out) except -1:
        """Run the chain for a new order of strategy `owner` (0..63); returns the refusing rule (out
        filled) or PASSED (a rate-limit token has then been taken)."""
        cdef int rule
        out.rule = RULE_PASSED
        out.scope = owner
        out.instrument_id = iid
        out.value = 0.0
        out.limit = 0.0
        if not 0 <= owner < OWNER_EXTERNAL:
            return _refuse(out, RULE_INVALID_ORDER, owner, owner, 0.0)
        self._state[owner].checks += 1
        self._state[OWNER_ALL].checks += 1
        self.portfolio.mark_cache_on()
        try:
            rule = self._check(owner, iid, side, order_type, flags, price, stop_price, qty, now, out)
        finally:
            self.portfolio.mark_cache_off()
        out.rule = rule
        if rule != RULE_PASSED:
            self._state[out.scope].rejected[rule] += 1
        else:
            self._state[owner].passed += 1
            self._state[OWNER_ALL].passed += 1
        return rule

    cdef int _check(self, int owner, uint32_t iid, int side, int order_type, int flags, int64_t price,
                    int64_t stop_price, int64_t qty, int64_t now, RiskResult *out) except -1:
        cdef Portfolio pf = self.portfolio
        cdef InstrumentSpec *s
        cdef ScopeLimits *lim
        cdef ScopeState *st
        cdef InstrumentLimits *il
        cdef int scopes[2]
        cdef int j, scope
        cdef int64_t ref2 = 0, m2 = 0, pos, before_w, after_w
        cdef bint has_ref, has_mark
        cdef ex_i128 notional
        cdef int64_t touch = 0, worst = 0
        cdef double value, before, fac
        cdef OpenCell *c
        cdef Position *p
        cdef int sp, pp
        cdef double eq[2]
        eq[0] = NAN
        eq[1] = NAN
        scopes[0] = owner
        scopes[1] = OWNER_ALL
        # 1, 2: kill switch, breakers
        for j in range(2):
            if self._state[scopes[j]].killed:
                return _refuse(out, RULE_KILL_SWITCH, scopes[j], 1.0, 0.0)
        for j in range(2):
            if self._breaker(scopes[j], now, out, &eq[j]):
                return out.rule
        # 3: the order itself
        if iid == 0 or iid >= pf._n_instruments or not pf.spec(iid).loaded:
            try:
                pf.ensure_instrument(iid)
            except Exception:
                return _refuse(out, RULE_INVALID_ORDER, owner, iid, 0.0)
        s = pf.spec(iid)
        pp = s.price_precision
        sp = s.size_precision
        if qty <= 0 or (side != 0 and side != 1) or not OT_MARKET <= order_type <= OT_TRAILING_STOP_MARKET:
            return _refuse(out, RULE_INVALID_ORDER, owner, ex_raw_to_f64(qty, sp), 0.0)
        if _priced(order_type) != (price > 0) or price < 0:
            return _refuse(out, RULE_INVALID_ORDER, owner, ex_raw_to_f64(price, pp), 0.0)
        if (_stop_type(order_type) and order_type != OT_TRAILING_STOP_MARKET) and stop_price <= 0:
            return _refuse(out, RULE_INVALID_ORDER, owner, ex_raw_to_f64(stop_price, pp), 0.0)
        # 4, 5, 6: the venue's filters
        if price % s.tick != 0:
            return _refuse(out, RULE_TICK_SIZE, owner, ex_raw_to_f64(price, pp), ex_raw_to_f64(s.tick, pp))
        if stop_price > 0 and stop_price % s.tick != 0:
            return _refuse(out, RULE_TICK_SIZE, owner, ex_raw_to_f64(stop_price, pp), ex_raw_to_f64(s.tick, pp))
        if qty % s.lot != 0:
            return _refuse(out, RULE_LOT_SIZE, owner, ex_raw_to_f64(qty, sp), ex_raw_to_f64(s.lot, sp))
        has_mark = pf.mark2(iid, &m2)
        if price > 0:
            ref2 = 2 * price
        elif has_mark:
            ref2 = m2
        has_ref = ref2 > 0
        if s.min_notional > 0:
            if has_ref:
                # price x size (pp + sp decimals) against min_notional (pp decimals)
                if ex_mul64(ref2, qty) < 2 * ex_mul64(s.min_notional, _pow10(sp)):
                    return _refuse(out, RULE_MIN_NOTIONAL, owner,
                                   (<double>ex_mul64(ref2, qty)) * 0.5 / _pow10f(pp + sp),
                                   ex_raw_to_f64(s.min_notional, pp))
            else:
                self.min_notional_unchecked += 1
        # 7, 8, 9: size, notional, band
        for j in range(2):
            scope = scopes[j]
            il = self._il(iid, scope)
            if il != NULL and qty > il.max_order_qty:
                return _refuse(out, RULE_MAX_ORDER_SIZE, scope, ex_raw_to_f64(qty, sp),
                               ex_raw_to_f64(il.max_order_qty, sp))
        fac = s.value_factor * pf.rate(s.quote_asset) * 0.5
        for j in range(2):
            lim = &self._limits[scopes[j]]
            if not isinf(lim.max_order_notional):
                if not has_ref:
                    return _refuse(out, RULE_MAX_ORDER_NOTIONAL, scopes[j], NAN, lim.max_order_notional)
                value = (<double>ex_mul64(ref2, qty)) * fac
                if value > lim.max_order_notional:
                    return _refuse(out, RULE_MAX_ORDER_NOTIONAL, scopes[j], value, lim.max_order_notional)
        if not _stop_type(order_type):
            for j in range(2):
                lim = &self._limits[scopes[j]]
                if lim.price_band_bps > 0:
                    if self._band(iid, side, order_type, price, qty, has_mark, m2, lim.price_band_bps, out):
                        out.scope = scopes[j]
                        return RULE_PRICE_BAND
        # 10: open orders
        for j in range(2):
            lim = &self._limits[scopes[j]]
            if lim.max_open_orders >= 0 and self.orders.open_orders_of(scopes[j]) + 1 > lim.max_open_orders:
                return _refuse(out, RULE_MAX_OPEN_ORDERS, scopes[j], self.orders.open_orders_of(scopes[j]) + 1,
                               lim.max_open_orders)
        # 11: reduce-only against the strategy's own position
        if flags & ORDER_REDUCE_ONLY:
            p = pf.position_ptr(iid, owner)
            pos = p.qty if p != NULL else 0
            held = -pos if side == 0 else pos          # what this side can reduce
            if held < qty:
                return _refuse(out, RULE_REDUCE_ONLY, owner, ex_raw_to_f64(qty, sp),
                               ex_raw_to_f64(held if held > 0 else 0, sp))
        # 12: position
        for j in range(2):
            scope = scopes[j]
            il = self._il(iid, scope)
            if il == NULL or il.max_position == INT64_MAX:
                continue
            p = pf.position_ptr(iid, scope)
            pos = p.qty if p != NULL else 0
            c = self.orders.cell(iid, scope)
            if side == 0:
                before_w = pos + (c.buy if c != NULL else 0)
                after_w = before_w + qty
            else:
                before_w = pos - (c.sell if c != NULL else 0)
                after_w = before_w - qty
            if _abs64(after_w) > il.max_position and _abs64(after_w) > _abs64(before_w):
                return _refuse(out, RULE_MAX_POSITION, scope, ex_raw_to_f64(_abs64(after_w), sp),
                               ex_raw_to_f64(il.max_position, sp))
        # 13: exposure
        for j in range(2):
            lim = &self._limits[scopes[j]]
            if isinf(lim.max_exposure):
                continue
            if not has_mark and not has_ref:
                return _refuse(out, RULE_MAX_EXPOSURE, scopes[j], NAN, lim.max_exposure)
            value = self._exposure(scopes[j], iid, side, qty, ref2, &before)
            if value > lim.max_exposure and value > before:
                return _refuse(out, RULE_MAX_EXPOSURE, scopes[j], value, lim.max_exposure)
        # 14: daily loss
        for j in range(2):
            scope = scopes[j]
            lim = &self._limits[scope]
            if isinf(lim.daily_loss):
                continue
            self._roll_day(scope, now, &eq[j])
            value = self._equity(scope, &eq[j]) - self._state[scope].day_start_equity
            if value <= -lim.daily_loss:
                p = pf.position_ptr(iid, scope)
                pos = p.qty if p != NULL else 0
                if not ((pos > 0 and side == 1 and qty <= pos) or (pos < 0 and side == 0 and qty <= -pos)):
                    return _refuse(out, RULE_DAILY_LOSS, scope, -value, lim.daily_loss)
        # 15: venue rate limit (takes a token when it passes)
        if not self._rate_ok(s.market, now, out):
            return RULE_RATE_LIMIT
        return RULE_PASSED

    cdef int _band(self, uint32_t iid, int side, int order_type, int64_t price, int64_t qty, bint has_mark,
                   int64_t m2, int64_t band, RiskResult *out) except -1:
        """1 (out filled: rule, value, limit) if the order is outside the price band around the mark."""
        cdef InstrumentSpec *s = self.portfolio.spec(iid)
        cdef ex_i128 notional, dev
        cdef int64_t touch = 0, worst = 0
        cdef bint full
        cdef object book
        cdef double value
        if not has_mark:
            value = NAN                            # nothing to measure the price against
        elif price > 0:
            dev = ex_mul64(2 * price - m2 if 2 * price > m2 else m2 - 2 * price, 10000)
            if dev <= ex_mul64(band, m2):
                return 0
            value = (<double>dev) / <double>m2
        elif s.book == NULL:
            value = NAN                            # a market order needs the book to be priced
        else:
            # a market order: its average fill price walking the engine's book
            book = <object>s.book
            full = book_walk(<OrderBook>book, side, qty, &notional, &touch, &worst)
            if not full:
                value = INFINITY                   # the book cannot fill it
            else:
                dev = 2 * notional - m2 * <ex_i128>qty
                if dev < 0:
                    dev = -dev
                if dev * 10000 <= <ex_i128>band * m2 * qty:
                    return 0
                value = (<double>(dev * 10000)) / (<double>m2 * <double>qty)
        out.rule = RULE_PRICE_BAND
        out.value = value
        out.limit = <double>band
        return 1

    # ---- Python API ------------------------------------------------------------------------------

    def check_order(self, int owner, uint32_t instrument_id, side, int64_t quantity_raw, int64_t price_raw=0, *,
                    int order_type=0, int64_t stop_price_raw=0, bint reduce_only=False, bint post_only=False,
                    now=None):
        """Run the chain; None when the order passes (a rate-limit token is taken), else a RiskRejection.
        order_type 0 means LIMIT with a price, MARKET without."""
        cdef RiskResult r
        cdef int s = 0 if side == 0 or side == "buy" else (1 if side == 1 or side == "sell" else -1)
        if order_type == 0:
            order_type = OT_LIMIT if price_raw > 0 else OT_MARKET
        self.check(owner, instrument_id, s, order_type, ORDER_REDUCE_ONLY if reduce_only else 0, price_raw,
                   stop_price_raw, quantity_raw, now_us() if now is None else now, &r)
        if r.rule == RULE_PASSED:
            return None
        return RiskRejection(r.rule, r.scope, instrument_id, r.value, r.limit)

    def _scope(self, strategy):
        if strategy is None:
            return OWNER_ALL
        if not 0 <= strategy < OWNER_EXTERNAL:
            raise ValueError(f"strategy index must be 0..{OWNER_EXTERNAL - 1} (None: global), got {strategy}")
        return strategy

    def set_limit(self, str name, value, *, strategy=None, instrument_id=None, who="", now=None):
        """Change one limit at run time; value None removes it. Names and units:
            max_position, max_order_size   per instrument (instrument_id=...), decimal size
            max_open_orders                int
            max_exposure, max_order_notional, daily_loss, max_drawdown   account currency
            price_band_bps                 int basis points
            reject_burst                   (count, window seconds)
            breaker_cooldown               seconds
        strategy: an index (None: the global limit). Logged on "extrema.risk" and kept in `changes`.
        Returns the previous value."""
        cdef int scope = self._scope(strategy)
        cdef ScopeLimits *lim = &self._limits[scope]
        cdef InstrumentLimits *il
        cdef int64_t raw
        cdef int64_t t = now_us() if now is None else now
        if name in ("max_position", "max_order_size"):
            if instrument_id is None:
                raise ValueError(f"{name} is per instrument: pass instrument_id=")
            self.portfolio.ensure_instrument(instrument_id)
            if instrument_id >= self._inst_n:
                self._grow(instrument_id)
            il = self._il(instrument_id, scope)
            sp = self.portfolio.spec(instrument_id).size_precision
            old_raw = il.max_position if name == "max_position" else il.max_order_qty
            old = None if old_raw == INT64_MAX else Decimal(old_raw).scaleb(-sp)
            raw = INT64_MAX if value is None else value_to_raw(str(value), sp, False)
            if name == "max_position":
                il.max_position = raw
            else:
                il.max_order_qty = raw
        elif instrument_id is not None:
            raise ValueError(f"{name} is not a per-instrument limit")
        elif name == "max_open_orders":
            old = None if lim.max_open_orders < 0 else lim.max_open_orders
            if value is not None and int(value) < 0:
                raise ValueError("max_open_orders must be >= 0")
            lim.max_open_orders = -1 if value is None else int(value)
        elif name in ("max_exposure", "max_order_notional", "daily_loss", "max_drawdown"):
            v = INFINITY if value is None else float(value)
            if not v > 0:
                raise ValueError(f"{name} must be > 0, got {value!r}")
            if name == "max_exposure":
                old, lim.max_exposure = lim.max_exposure, v
            elif name == "max_order_notional":
                old, lim.max_order_notional = lim.max_order_notional, v
            elif name == "daily_loss":
                old, lim.daily_loss = lim.daily_loss, v
                if value is not None and self._state[scope].day < 0:
                    self._state[scope].day = (t + self.day_offset_us) // DAY_US
                    self._state[scope].day_start_equity = self.portfolio.equity_of(scope)
                    self._event(RISK_EV_DAY_START, scope, 0, self._state[scope].day_start_equity, 0.0, t)
            else:
                old, lim.max_drawdown = lim.max_drawdown, v
                if value is not None:
                    self._state[scope].peak_equity = self.portfolio.equity_of(scope)
                    self._state[scope].peak_set = 1
            old = None if math.isinf(old) else old
        elif name == "price_band_bps":
            old = lim.price_band_bps or None
            if value is not None and int(value) <= 0:
                raise ValueError("price_band_bps must be > 0")
            lim.price_band_bps = 0 if value is None else int(value)
        elif name == "reject_burst":
            old = (lim.reject_burst, lim.reject_window_us / 1e6) if lim.reject_burst else None
            if value is None:
                lim.reject_burst = 0
            else:
                count, window = value
                if not 1 <= int(count) <= MAX_REJECT_BURST or not window > 0:
                    raise ValueError(f"reject_burst is (count 1..{MAX_REJECT_BURST}, window seconds > 0)")
                lim.reject_burst = int(count)
                lim.reject_window_us = int(window * 1e6)
            self._state[scope].reject_n = 0
            self._state[scope].reject_head = 0
        elif name == "breaker_cooldown":
            old = lim.breaker_cooldown_us / 1e6 or None
            lim.breaker_cooldown_us = 0 if value is None else int(float(value) * 1e6)
        else:
            raise ValueError(f"unknown risk limit {name!r}")
        where = "global" if scope == OWNER_ALL else f"strategy {scope}"
        if instrument_id is not None:
            where += f", instrument {instrument_id}"
        self.changes.append({"ts": t, "limit": name, "scope": "global" if scope == OWNER_ALL else scope,
                             "instrument_id": instrument_id, "old": old, "new": value, "who": who})
        self._log.warning("risk limit %s (%s) changed from %s to %s%s", name, where, old, value,
                          f" by {who}" if who else "")
        return old

    def limits(self, strategy=None):
        """The scope's limits (None: not set) and its per-instrument limits."""
        cdef int scope = self._scope(strategy)
        cdef ScopeLimits *lim = &self._limits[scope]
        cdef uint32_t i
        cdef InstrumentLimits *il
        per = {}
        for i in range(1, self._inst_n):
            il = self._il(i, scope)
            if il.max_position != INT64_MAX or il.max_order_qty != INT64_MAX:
                sp = self.portfolio.spec(i).size_precision
                per[i] = {"max_position": None if il.max_position == INT64_MAX else Decimal(il.max_position).scaleb(-sp),
                          "max_order_size": None if il.max_order_qty == INT64_MAX else Decimal(il.max_order_qty).scaleb(-sp)}
        inf = lambda v: None if math.isinf(v) else v
        return {"max_open_orders": None if lim.max_open_orders < 0 else lim.max_open_orders,
                "max_exposure": inf(lim.max_exposure), "max_order_notional": inf(lim.max_order_notional),
                "daily_loss": inf(lim.daily_loss), "max_drawdown": inf(lim.max_drawdown),
                "price_band_bps": lim.price_band_bps or None,
                "reject_burst": (lim.reject_burst, lim.reject_window_us / 1e6) if lim.reject_burst else None,
                "breaker_cooldown": lim.breaker_cooldown_us / 1e6 or None, "instruments": per}

    def set_rate_limit(self, market, int orders, per_seconds):
        """Add a token bucket to a venue: at most `orders` new orders per `per_seconds` (up to 4 buckets
        per venue, e.g. Binance's 10 s and daily ORDERS limits). Starts full."""
        cdef int m = int(market)
        cdef Bucket *b
        if not 0 <= m < MAX_MARKETS:
            raise ValueError(f"market {market} out of range")
        if orders < 1 or not per_seconds > 0:
            raise ValueError("a rate limit is orders >= 1 per per_seconds > 0")
        if self._n_buckets[m] == MAX_BUCKETS:
            raise ValueError(f"at most {MAX_BUCKETS} rate limits per venue")
        b = &self._buckets[m][self._n_buckets[m]]
        b.orders = orders
        b.per_us = int(round(per_seconds * 1e6))
        b.units = b.orders * b.per_us
        b.last_us = now_us()
        self._n_buckets[m] += 1
        self.changes.append({"ts": b.last_us, "limit": "rate_limit", "scope": int(m), "instrument_id": None,
                             "old": None, "new": (orders, per_seconds), "who": ""})
        self._log.warning("risk rate limit added for market %s: %d orders per %s s", m, orders, per_seconds)

    def clear_rate_limits(self, market):
        self._n_buckets[int(market)] = 0
        self._log.warning("risk rate limits of market %s removed", int(market))

    def rate_tokens(self, market, now=None):
        """Tokens left in each bucket of a venue (floats), after refilling to `now`."""
        cdef int m = int(market), k
        cdef Bucket *b
        cdef int64_t t = now_us() if now is None else now
        cdef int64_t elapsed
        out = []
        for k in range(self._n_buckets[m]):
            b = &self._buckets[m][k]
            elapsed = t - b.last_us
            if elapsed > b.per_us:
                elapsed = b.per_us
            units = min(b.units + max(elapsed, 0) * b.orders, b.orders * b.per_us)
            out.append(units / b.per_us)
        return out

    def _set_bucket_clock(self, market, int64_t t):
        """Tests: restart a venue's buckets full at time t (µs)."""
        cdef int k
        for k in range(self._n_buckets[int(market)]):
            self._buckets[int(market)][k].last_us = t
            self._buckets[int(market)][k].units = self._buckets[int(market)][k].orders * self._buckets[int(market)][k].per_us

    def kill(self, strategy=None, reason="", bint include_external=False, now=None):
        """Kill switch: block every new order of the strategy (None: of the engine). Returns the client
        order ids of its live orders, which the engine must cancel now (EXTERNAL orders only with
        include_external=True)."""
        cdef int scope = self._scope(strategy)
        self._state[scope].killed = 1
        cdef int64_t t = now_us() if now is None else now
        self._event(RISK_EV_KILL, scope, 0, 0.0, 0.0, t)
        self._log.error("KILL SWITCH on (%s)%s", "global" if scope == OWNER_ALL else f"strategy {scope}",
                        f": {reason}" if reason else "")
        ids = self.orders.open_orders(None if scope == OWNER_ALL else scope)
        if scope == OWNER_ALL and not include_external:
            ids = [i for i in ids if self.orders.get(i)["owner"] != OWNER_EXTERNAL]
        return ids

    def release(self, strategy=None, now=None):
        """Turn a kill switch off."""
        cdef int scope = self._scope(strategy)
        self._state[scope].killed = 0
        self._event(RISK_EV_RELEASE, scope, 0, 0.0, 0.0, now_us() if now is None else now)
        self._log.warning("kill switch off (%s)", "global" if scope == OWNER_ALL else f"strategy {scope}")

    def is_killed(self, strategy=None):
        return bool(self._state[self._scope(strategy)].killed)

    def trip(self, strategy=None, reason="manual", now=None):
        """Trip a breaker by hand (stays until reset_breaker)."""
        cdef int scope = self._scope(strategy)
        self._trip(scope, BREAKER_MANUAL, 0.0, 0.0, now_us() if now is None else now)
        self._log.error("circuit breaker tripped by hand (%s): %s",
                        "global" if scope == OWNER_ALL else f"strategy {scope}", reason)

    def reset_breaker(self, strategy=None, now=None):
        cdef int scope = self._scope(strategy)
        cdef ScopeState *st = &self._state[scope]
        st.breaker = BREAKER_NONE
        st.reject_n = 0
        st.reject_head = 0
        st.peak_equity = self.portfolio.equity_of(scope)      # the drawdown is measured afresh
        st.peak_set = 1
        self._event(RISK_EV_BREAKER_RESET, scope, 0, 0.0, 0.0, now_us() if now is None else now)
        self._log.warning("circuit breaker reset (%s)", "global" if scope == OWNER_ALL else f"strategy {scope}")

    def breaker(self, strategy=None):
        """(BreakerReason, value, limit) of the scope's breaker."""
        cdef ScopeState *st = &self._state[self._scope(strategy)]
        return BreakerReason(st.breaker), st.breaker_value, st.breaker_limit

    def venue_reject(self, int owner, now=None):
        """Count a venue rejection of an order of owner (the engine calls this on REJECTED updates)."""
        return bool(self.on_venue_reject(owner, now_us() if now is None else now))

    def evaluate(self, now=None):
        """Periodic evaluation of every scope (drawdown, breaker expiry, day start); returns the events
        since the last call (also logged)."""
        cdef int s
        cdef int64_t t = now_us() if now is None else now
        for s in range(N_OWNERS):
            if s != OWNER_EXTERNAL:
                self.evaluate_scope(s, t)
        return self.events()

    def events(self):
        """Kill / release / breaker trip / reset / day start events since the last call, oldest first."""
        cdef int i
        cdef RiskEvent *e
        kinds = {RISK_EV_KILL: "kill", RISK_EV_RELEASE: "release", RISK_EV_BREAKER_TRIP: "breaker_trip",
                 RISK_EV_BREAKER_RESET: "breaker_reset", RISK_EV_DAY_START: "day_start"}
        out = []
        for i in range(self._ev_n):
            e = &self._events[(self._ev_head + i) % 256]
            d = {"event": kinds[e.kind], "scope": "global" if e.scope == OWNER_ALL else e.scope, "ts": e.ts,
                 "value": e.value, "limit": e.limit}
            if e.kind == RISK_EV_BREAKER_TRIP:
                d["reason"] = BreakerReason(e.reason).name
                self._log.error("circuit breaker tripped (%s): %s %s >= %s", d["scope"], d["reason"],
                                _num(e.value), _num(e.limit))
            out.append(d)
        self._ev_head = 0
        self._ev_n = 0
        return out

    def state(self, strategy=None):
        """The scope's state: kill switch, breaker, day P&L, drawdown, checks and rejections per rule."""
        cdef int scope = self._scope(strategy)
        cdef ScopeState *st = &self._state[scope]
        eq = self.portfolio.equity_of(scope)
        return {"killed": bool(st.killed), "breaker": BreakerReason(st.breaker).name,
                "equity": eq, "day_pnl": eq - st.day_start_equity if st.day >= 0 else None,
                "drawdown": st.peak_equity - eq if st.peak_set else None,
                "checks": st.checks, "passed": st.passed,
                "rejected": {RiskRule(r).name: st.rejected[r] for r in range(N_RULES) if st.rejected[r]},
                "min_notional_unchecked": self.min_notional_unchecked}


cdef inline int64_t _pow10(int e) noexcept nogil:
    cdef int64_t r = 1
    while e > 0:
        r *= 10
        e -= 1
    return r


cdef inline double _pow10f(int e) noexcept nogil:
    cdef double r = 1.0
    while e > 0:
        r *= 10.0
        e -= 1
    return r


def estimate_fill(OrderBook book, side, int64_t quantity_raw):
    """What filling `quantity_raw` as a market order of `side` (0 / "buy" consumes asks) would cost on
    the book now: {"fillable": bool, "filled_raw", "vwap", "touch", "worst", "slippage" (price distance
    from the touch, >= 0), "slippage_bps"}; prices as floats, NaN where the book is empty."""
    cdef int s = 0 if side == 0 or side == "buy" else (1 if side == 1 or side == "sell" else -1)
    cdef ex_i128 notional
    cdef int64_t touch = 0, worst = 0
    cdef int full
    cdef int bs
    if s < 0:
        raise ValueError(f"side must be 0 / 'buy' or 1 / 'sell', got {side!r}")
    if quantity_raw <= 0:
        raise ValueError(f"quantity must be > 0, got {quantity_raw}")
    full = book_walk(book, s, quantity_raw, &notional, &touch, &worst)
    bs = 1 if s == 0 else 0
    if book._sides[bs].count == 0:
        nan = float("nan")
        return {"fillable": False, "filled_raw": 0, "vwap": nan, "touch": nan, "worst": nan, "slippage": nan,
                "slippage_bps": nan}
    filled = quantity_raw if full else book._depth_raw(bs, book._sides[bs].count)
    scale = 10.0 ** book.price_precision
    vwap = (<double>notional) / filled / scale
    t = touch / scale
    slip = max(vwap - t if s == 0 else t - vwap, 0.0)
    return {"fillable": bool(full), "filled_raw": filled, "vwap": vwap, "touch": t, "worst": worst / scale,
            "slippage": slip, "slippage_bps": slip / t * 1e4 if t else float("nan")}
