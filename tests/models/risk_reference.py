"""Plain-Python reference of the pre-trade risk chain (the oracle for extrema._core.risk.RiskEngine and
ExecutionCore.submit). Nothing here imports extrema.

It reads a ReferenceOrderTable (open orders) and a ReferencePortfolio (positions, marks, equity) and
applies the rules of risk.pyx's module doc in the same order, strategy scope before the global one.
Integer rules (tick, lot, min notional, band, sizes, positions, buckets) are exact; the money rules use
the same float expressions as the compiled code, evaluated in the same order, so results are equal bit
for bit. Results are (rule, scope, value, limit) with value / limit in user units.
"""
from __future__ import annotations

import dataclasses
import math

from models.order_state_reference import ALL, EXTERNAL, OK, ReferenceOrderTable
from models.pnl_reference import ReferencePortfolio

(PASSED, KILL_SWITCH, CIRCUIT_BREAKER, INVALID_ORDER, TICK_SIZE, LOT_SIZE, MIN_NOTIONAL, MAX_ORDER_SIZE,
 MAX_ORDER_NOTIONAL, PRICE_BAND, MAX_OPEN_ORDERS, REDUCE_ONLY, MAX_POSITION, MAX_EXPOSURE, DAILY_LOSS,
 RATE_LIMIT) = range(16)
BREAKER_NONE, BREAKER_DRAWDOWN, BREAKER_REJECTS, BREAKER_MANUAL = range(4)
MARKET, LIMIT, STOP_MARKET, STOP_LIMIT, TP_MARKET, TP_LIMIT, LIMIT_MAKER, TRAILING = range(1, 9)
PRICED = {LIMIT, STOP_LIMIT, TP_LIMIT, LIMIT_MAKER}
STOPS = {STOP_MARKET, STOP_LIMIT, TP_MARKET, TP_LIMIT, TRAILING}
DAY_US = 86_400_000_000
INF = math.inf
REASON_BASE = 1000


@dataclasses.dataclass
class Instrument:
    tick: int
    lot: int
    min_notional: int      # raw at price precision
    market: int


@dataclasses.dataclass
class Limits:
    max_open_orders: int | None = None
    max_exposure: float = INF
    max_order_notional: float = INF
    daily_loss: float = INF
    max_drawdown: float = INF
    price_band_bps: int = 0
    reject_burst: int = 0
    reject_window_us: int = 0
    breaker_cooldown_us: int = 0


@dataclasses.dataclass
class State:
    killed: bool = False
    breaker: int = BREAKER_NONE
    breaker_until: int = 0
    breaker_value: float = 0.0
    breaker_limit: float = 0.0
    day: int = -1
    day_start: float = 0.0
    peak: float = 0.0
    peak_set: bool = False
    rejects: list = dataclasses.field(default_factory=list)   # the last reject_burst reject times


def user(raw, precision):
    return float(raw) / float(10 ** precision)


class ReferenceRisk:
    def __init__(self, table: ReferenceOrderTable, pf: ReferencePortfolio, instruments: dict[int, Instrument],
                 day_offset_us=0):
        self.table = table
        self.pf = pf
        self.instruments = instruments
        self.day_offset_us = day_offset_us
        self.limits = {s: Limits() for s in range(66)}
        self.state = {s: State() for s in range(66)}
        self.max_position: dict[tuple[int, int], int] = {}     # (iid, scope) -> raw
        self.max_order_qty: dict[tuple[int, int], int] = {}
        self.buckets: dict[int, list] = {}                       # market -> [[orders, per_us, units, last_us]]

    # ---- configuration -----------------------------------------------------------------------------

    def set_limit(self, name, value, scope, iid=None, now=0):
        lim, st = self.limits[scope], self.state[scope]
        if name == "max_position":
            self.max_position[(iid, scope)] = value
        elif name == "max_order_size":
            self.max_order_qty[(iid, scope)] = value
        elif name == "max_open_orders":
            lim.max_open_orders = value
        elif name == "daily_loss":
            lim.daily_loss = INF if value is None else float(value)
            if value is not None and st.day < 0:
                self._roll_day(scope, now)
        elif name == "max_drawdown":
            lim.max_drawdown = INF if value is None else float(value)
            if value is not None:
                st.peak, st.peak_set = self.pf.equity(scope), True
        elif name in ("max_exposure", "max_order_notional"):
            setattr(lim, name, INF if value is None else float(value))
        elif name == "price_band_bps":
            lim.price_band_bps = value or 0
        elif name == "reject_burst":
            lim.reject_burst, lim.reject_window_us = (0, 0) if value is None else (value[0], int(value[1] * 1e6))
            st.rejects = []
        elif name == "breaker_cooldown":
            lim.breaker_cooldown_us = 0 if value is None else int(float(value) * 1e6)
        else:
            raise ValueError(name)

    def add_bucket(self, market, orders, per_seconds, now):
        per_us = int(round(per_seconds * 1e6))
        self.buckets.setdefault(market, []).append([orders, per_us, orders * per_us, now])

    # ---- breakers, days, buckets -------------------------------------------------------------------

    def _trip(self, scope, reason, value, limit, now):
        st, lim = self.state[scope], self.limits[scope]
        st.breaker, st.breaker_value, st.breaker_limit = reason, value, limit
        st.breaker_until = now + lim.breaker_cooldown_us if reason == BREAKER_REJECTS and lim.breaker_cooldown_us > 0 else 0

    def _breaker(self, scope, now):
        st, lim = self.state[scope], self.limits[scope]
        if st.breaker and st.breaker_until and now >= st.breaker_until:
            st.breaker = BREAKER_NONE
            st.rejects = []
        if not st.breaker and lim.max_drawdown != INF:
            eq = self.pf.equity(scope)
            if not st.peak_set or eq > st.peak:
                st.peak, st.peak_set = eq, True
            dd = st.peak - eq
            if dd >= lim.max_drawdown:
                self._trip(scope, BREAKER_DRAWDOWN, dd, lim.max_drawdown, now)
        if st.breaker:
            return (CIRCUIT_BREAKER, scope, st.breaker_value, st.breaker_limit)
        return None

    def _roll_day(self, scope, now):
        today = (now + self.day_offset_us) // DAY_US
        st = self.state[scope]
        if st.day != today:
            st.day, st.day_start = today, self.pf.equity(scope)

    def venue_reject(self, owner, now):
        for scope in (owner, ALL):
            lim, st = self.limits[scope], self.state[scope]
            if lim.reject_burst <= 0:
                continue
            st.rejects.append(now)
            st.rejects = st.rejects[-lim.reject_burst:]
            if len(st.rejects) == lim.reject_burst and now - st.rejects[0] <= lim.reject_window_us and not st.breaker:
                self._trip(scope, BREAKER_REJECTS, float(lim.reject_burst), float(lim.reject_burst), now)
                st.rejects = []

    def _rate_ok(self, market, now):
        buckets = self.buckets.get(market, [])
        for b in buckets:
            orders, per_us, units, last = b
            elapsed = now - last
            if elapsed > 0:
                units = min(units + min(elapsed, per_us) * orders, orders * per_us)
                b[2], b[3] = units, now
            if b[2] < per_us:
                return (RATE_LIMIT, ALL, float(b[2]) / float(per_us), float(orders) / (float(per_us) / 1e6))
        for b in buckets:
            b[2] -= b[1]
        return None

    # ---- exposure ----------------------------------------------------------------------------------

    def _exposure(self, scope, iid, side, qty, ref2):
        order = list(self.pf.touch_order.get(scope, []))
        if iid not in order:
            order.append(iid)
        before = after = 0.0
        for j in order:
            p = self.pf.positions.get((scope, j))
            pos = p.qty if p else 0
            ob, os_ = self.table.open_quantity(scope, j)
            eb = qty if (j == iid and side == 0) else 0
            es = qty if (j == iid and side == 1) else 0
            m2 = self.pf.mark2(j)
            if m2 is None:
                if j != iid:
                    continue
                m2 = ref2
            spec = self.pf.specs[j]
            f = spec.value_factor * self.pf.rate(spec.quote) * 0.5
            wb = max(abs(pos + ob), abs(pos - os_))
            wa = max(abs(pos + ob + eb), abs(pos - os_ - es))
            before += float(wb * m2) * f
            after += float(wa * m2) * f
        return before, after

    # ---- the chain ---------------------------------------------------------------------------------

    def check(self, owner, iid, side, order_type, price, qty, now, *, stop_price=0, reduce_only=False):
        """(rule, scope, value, limit); PASSED takes a rate-limit token."""
        if not 0 <= owner < EXTERNAL:
            return (INVALID_ORDER, owner, float(owner), 0.0)
        scopes = (owner, ALL)
        for s in scopes:
            if self.state[s].killed:
                return (KILL_SWITCH, s, 1.0, 0.0)
        for s in scopes:
            r = self._breaker(s, now)
            if r:
                return r
        inst = self.instruments.get(iid)
        if inst is None:
            return (INVALID_ORDER, owner, float(iid), 0.0)
        spec = self.pf.specs[iid]
        pp, sp = spec.price_precision, spec.size_precision
        if qty <= 0 or side not in (0, 1) or not MARKET <= order_type <= TRAILING:
            return (INVALID_ORDER, owner, user(qty, sp), 0.0)
        if (order_type in PRICED) != (price > 0) or price < 0:
            return (INVALID_ORDER, owner, user(price, pp), 0.0)
        if order_type in STOPS and order_type != TRAILING and stop_price <= 0:
            return (INVALID_ORDER, owner, user(stop_price, pp), 0.0)
        if price % inst.tick:
            return (TICK_SIZE, owner, user(price, pp), user(inst.tick, pp))
        if stop_price > 0 and stop_price % inst.tick:
            return (TICK_SIZE, owner, user(stop_price, pp), user(inst.tick, pp))
        if qty % inst.lot:
            return (LOT_SIZE, owner, user(qty, sp), user(inst.lot, sp))
        m2 = self.pf.mark2(iid)
        ref2 = 2 * price if price > 0 else (m2 or 0)
        if inst.min_notional > 0 and ref2 > 0 and ref2 * qty < 2 * inst.min_notional * 10 ** sp:
            return (MIN_NOTIONAL, owner, float(ref2 * qty) * 0.5 / float(10 ** (pp + sp)), user(inst.min_notional, pp))
        for s in scopes:
            mq = self.max_order_qty.get((iid, s))
            if mq is not None and qty > mq:
                return (MAX_ORDER_SIZE, s, user(qty, sp), user(mq, sp))
        fac = spec.value_factor * self.pf.rate(spec.quote) * 0.5
        for s in scopes:
            lim = self.limits[s]
            if lim.max_order_notional != INF:
                if not ref2:
                    return (MAX_ORDER_NOTIONAL, s, math.nan, lim.max_order_notional)
                v = float(ref2 * qty) * fac
                if v > lim.max_order_notional:
                    return (MAX_ORDER_NOTIONAL, s, v, lim.max_order_notional)
        if order_type not in STOPS:
            for s in scopes:
                band = self.limits[s].price_band_bps
                if band > 0:
                    r = self._band(iid, side, price, qty, m2, band)
                    if r is not None:
                        return (PRICE_BAND, s, r, float(band))
        for s in scopes:
            lim = self.limits[s]
            n = self.table.open_count(s)
            if lim.max_open_orders is not None and n + 1 > lim.max_open_orders:
                return (MAX_OPEN_ORDERS, s, float(n + 1), float(lim.max_open_orders))
        if reduce_only:
            p = self.pf.positions.get((owner, iid))
            pos = p.qty if p else 0
            held = -pos if side == 0 else pos
            if held < qty:
                return (REDUCE_ONLY, owner, user(qty, sp), user(max(held, 0), sp))
        for s in scopes:
            mp = self.max_position.get((iid, s))
            if mp is None:
                continue
            p = self.pf.positions.get((s, iid))
            pos = p.qty if p else 0
            ob, os_ = self.table.open_quantity(s, iid)
            before = pos + ob if side == 0 else pos - os_
            after = before + qty if side == 0 else before - qty
            if abs(after) > mp and abs(after) > abs(before):
                return (MAX_POSITION, s, user(abs(after), sp), user(mp, sp))
        for s in scopes:
            lim = self.limits[s]
            if lim.max_exposure == INF:
                continue
            if m2 is None and not ref2:
                return (MAX_EXPOSURE, s, math.nan, lim.max_exposure)
            before, after = self._exposure(s, iid, side, qty, ref2)
            if after > lim.max_exposure and after > before:
                return (MAX_EXPOSURE, s, after, lim.max_exposure)
        for s in scopes:
            lim = self.limits[s]
            if lim.daily_loss == INF:
                continue
            self._roll_day(s, now)
            v = self.pf.equity(s) - self.state[s].day_start
            if v <= -lim.daily_loss:
                p = self.pf.positions.get((s, iid))
                pos = p.qty if p else 0
                if not ((pos > 0 and side == 1 and qty <= pos) or (pos < 0 and side == 0 and qty <= -pos)):
                    return (DAILY_LOSS, s, -v, lim.daily_loss)
        r = self._rate_ok(inst.market, now)
        if r:
            return r
        return (PASSED, owner, 0.0, 0.0)

    def _band(self, iid, side, price, qty, m2, band):
        """The deviation (bps) if the order is outside the band, else None."""
        if m2 is None:
            return math.nan
        if price > 0:
            dev = abs(2 * price - m2) * 10000
            return float(dev) / float(m2) if dev > band * m2 else None
        book = self.pf.books.get(iid)
        if book is None:
            return math.nan
        levels = book.levels(1 if side == 0 else 0)
        rem, notional = qty, 0
        for px, size in levels:
            if rem == 0:
                break
            take = min(size, rem)
            notional += px * take
            rem -= take
        if rem or not levels:
            return math.inf
        dev = abs(2 * notional - m2 * qty)
        return float(dev * 10000) / (float(m2) * float(qty)) if dev * 10000 > band * m2 * qty else None


class ReferenceCore:
    """ExecutionCore's submit / feed, over the three references."""

    def __init__(self, specs, instruments, method="average"):
        self.table = ReferenceOrderTable()
        self.pf = ReferencePortfolio(specs, method)
        self.risk = ReferenceRisk(self.table, self.pf, instruments)

    def submit(self, coid, owner, iid, side, order_type, price, qty, now, *, stop_price=0, reduce_only=False):
        r = self.risk.check(owner, iid, side, order_type, price, qty, now, stop_price=stop_price,
                            reduce_only=reduce_only)
        if r[0] == PASSED:
            if self.table.register(coid, iid, side, qty, price, stop_price=stop_price, owner=owner,
                                   submitted=True) != OK:
                return (INVALID_ORDER, owner, float(coid), 0.0)
            self.pf.pos(owner, iid)
            self.pf.pos(ALL, iid)
            return r
        if self.table.register(coid, iid, side, qty, price, stop_price=stop_price, owner=owner) == OK:
            self.table.reject(coid, REASON_BASE + r[0])
        return r

    def update(self, coid, iid, side, status, now, **kw):
        code = self.table.update(coid, iid, side, status, **kw)
        o = self.table.orders.get(coid)
        if code in (OK, 7) and o is not None:
            if code == 7:
                self.pf.pos(o.owner, iid)
                self.pf.pos(ALL, iid)
            if o.status == 6 and o.owner < EXTERNAL:
                self.risk.venue_reject(o.owner, now)
        return code

    def fill(self, coid, iid, side, price, qty, trade_id, fee=0):
        code, owner = self.table.fill(coid, iid, side, price, qty, trade_id)
        if code in (OK, 4):
            self.pf.fill(owner, iid, side, price, qty, fee=fee)
        return code
