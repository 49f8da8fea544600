"""Plain-Python reference of the order state machine and order table (the oracle for
extrema._core.orders.OrderTable). Nothing here imports extrema.

The rules are the ones written in orders.pyx's module doc, restated here as plainly as possible:
dicts of orders, a set of seen trades, no eviction (tests stay below the retention limits), exact ints.

Statuses (extrema.OrderStatus numbers): INITIALIZED 0, SUBMITTED 1, ACCEPTED 2, PARTIALLY_FILLED 3,
FILLED 4, CANCELLED 5, REJECTED 6, EXPIRED 7, PENDING_CANCEL 8, PENDING_REPLACE 9.
Codes (extrema.OrderEventCode): OK 0, DUPLICATE 1, STALE 2, ILLEGAL 3, UNKNOWN_ORDER 4, OVERFILL 5,
INVALID 6, ADOPTED 7.
"""
from __future__ import annotations

import dataclasses

INITIALIZED, SUBMITTED, ACCEPTED, PARTIALLY_FILLED, FILLED, CANCELLED, REJECTED, EXPIRED, \
    PENDING_CANCEL, PENDING_REPLACE = range(10)
OK, DUPLICATE, STALE, ILLEGAL, UNKNOWN_ORDER, OVERFILL, INVALID, ADOPTED = range(8)

TERMINAL = {FILLED, CANCELLED, REJECTED, EXPIRED}
PENDING = {PENDING_CANCEL, PENDING_REPLACE}
EXTERNAL, ALL = 64, 65
FOREIGN_BASE = 1 << 62


def owner_of(coid):
    return coid & 63 if 0 < coid < FOREIGN_BASE else EXTERNAL


@dataclasses.dataclass
class Order:
    coid: int
    owner: int
    instrument_id: int
    side: int                 # 0 buy, 1 sell
    quantity: int
    price: int = 0
    stop_price: int = 0
    status: int = INITIALIZED
    base_status: int = INITIALIZED
    filled: int = 0
    venue_filled: int = 0
    filled_notional: int = 0
    pending_price: int = 0
    pending_quantity: int = 0
    venue_order_id: int = 0
    ts_venue: int = 0
    reason: int = 0
    n_fills: int = 0

    def remaining(self):
        if self.status in TERMINAL:
            return 0
        size = self.quantity
        if self.status == PENDING_REPLACE:
            size = max(size, self.pending_quantity)
        return max(size - self.filled, 0)


class ReferenceOrderTable:
    def __init__(self):
        self.orders: dict[int, Order] = {}
        self.trades: set = set()
        self.update_codes: list[int] = []
        self.fill_codes: list[int] = []

    # ---- engine requests ---------------------------------------------------------------------------

    def register(self, coid, instrument_id, side, quantity, price=0, *, stop_price=0, owner=None, submitted=False):
        owner = owner_of(coid) if owner is None else owner
        if coid == 0 or quantity <= 0 or price < 0 or instrument_id == 0 or coid in self.orders:
            return INVALID
        st = SUBMITTED if submitted else INITIALIZED
        self.orders[coid] = Order(coid, owner, instrument_id, side, quantity, price, stop_price, st, st)
        return OK

    def submitted(self, coid):
        o = self.orders.get(coid)
        if o is None:
            return UNKNOWN_ORDER
        if o.status == INITIALIZED:
            o.status = o.base_status = SUBMITTED
            return OK
        return DUPLICATE if o.status == SUBMITTED else STALE

    def cancel(self, coid):
        o = self.orders.get(coid)
        if o is None:
            return UNKNOWN_ORDER
        if o.status == INITIALIZED:
            o.status = CANCELLED
            return OK
        if o.status == PENDING_CANCEL:
            return DUPLICATE
        if o.status in TERMINAL:
            return ILLEGAL
        if o.status != PENDING_REPLACE:
            o.base_status = o.status
        o.pending_price = o.pending_quantity = 0
        o.status = PENDING_CANCEL
        return OK

    def replace(self, coid, price=0, quantity=0):
        o = self.orders.get(coid)
        if o is None:
            return UNKNOWN_ORDER
        price = price or o.price
        quantity = quantity or o.quantity
        if price < 0 or quantity <= o.filled:
            return INVALID
        if o.status in TERMINAL or o.status in PENDING:
            return ILLEGAL
        if o.status == INITIALIZED:
            o.price, o.quantity = price, quantity
            return OK
        o.base_status = o.status
        o.pending_price, o.pending_quantity = price, quantity
        o.status = PENDING_REPLACE
        return OK

    def reject(self, coid, reason=0):
        o = self.orders.get(coid)
        if o is None:
            return UNKNOWN_ORDER
        if o.status not in (INITIALIZED, SUBMITTED):
            return ILLEGAL
        o.status = REJECTED
        o.reason = reason
        return OK

    # ---- venue input -------------------------------------------------------------------------------

    def update(self, coid, instrument_id, side, to, *, price=0, quantity=0, cum_filled=0, reason=0, ts=0,
               venue_order_id=0, stop_price=0):
        code = self._update(coid, instrument_id, side, to, price, quantity, cum_filled, reason, ts,
                            venue_order_id, stop_price)
        self.update_codes.append(code)
        return code

    def _update(self, coid, iid, side, to, price, qty, cum, reason, ts, venue_order_id, stop_price):
        if (coid == 0 or iid == 0 or not 0 <= to <= 9 or qty < 0 or cum < 0 or price < 0
                or (qty > 0 and cum > qty) or to == INITIALIZED):
            return INVALID
        o = self.orders.get(coid)
        if o is None:
            o = Order(coid, owner_of(coid), iid, side, qty, price, stop_price, to,
                      ACCEPTED if to in PENDING else to)
            o.venue_filled = cum
            o.venue_order_id = venue_order_id
            o.reason = reason
            o.ts_venue = ts
            if to == PENDING_REPLACE:
                o.pending_price, o.pending_quantity = price, qty
            self.orders[coid] = o
            return ADOPTED
        cur = o.status
        live_price_size_change = price != o.price or (qty != 0 and qty != o.quantity)
        if o.instrument_id != iid or o.side != side or 0 < qty < o.filled:
            return INVALID
        if cur in TERMINAL:
            return DUPLICATE if to == cur else ILLEGAL
        if to in TERMINAL:
            not_yet_accepted = cur in (INITIALIZED, SUBMITTED) or (cur in PENDING and o.base_status in (INITIALIZED, SUBMITTED))
            if to == REJECTED and not not_yet_accepted:
                return ILLEGAL
            o.status = to
            o.pending_price = o.pending_quantity = 0
            return self._applied(o, cum, reason, ts, venue_order_id, stop_price)
        if ts and o.ts_venue and ts < o.ts_venue:
            return STALE
        if to == SUBMITTED:
            if cur == INITIALIZED:
                o.status = o.base_status = SUBMITTED
                return self._applied(o, cum, reason, ts, venue_order_id, stop_price)
            return DUPLICATE if cur == SUBMITTED else STALE
        if to == PENDING_CANCEL:
            if cur == PENDING_CANCEL:
                return DUPLICATE
            if cur != PENDING_REPLACE:
                o.base_status = cur
            o.pending_price = o.pending_quantity = 0
            o.status = PENDING_CANCEL
            return self._applied(o, cum, reason, ts, venue_order_id, stop_price)
        if to == PENDING_REPLACE:
            if cur == PENDING_REPLACE:
                return DUPLICATE
            if cur == PENDING_CANCEL:
                return ILLEGAL
            o.base_status = cur
            o.pending_price, o.pending_quantity = price, qty
            o.status = PENDING_REPLACE
            return self._applied(o, cum, reason, ts, venue_order_id, stop_price)
        # ACCEPTED or PARTIALLY_FILLED
        live = max(to, ACCEPTED)
        if cur in PENDING:
            if reason != 0:
                o.status = o.base_status = max(o.base_status, live)
                o.pending_price = o.pending_quantity = 0
            elif cur == PENDING_REPLACE and (price, qty) == (o.pending_price, o.pending_quantity):
                o.price, o.quantity = price, qty
                o.status = o.base_status = max(o.base_status, live)
                o.pending_price = o.pending_quantity = 0
            else:
                news = max(o.base_status, to) != o.base_status or cum > o.venue_filled
                o.base_status = max(o.base_status, to)
                if not news:
                    return DUPLICATE
                return self._applied(o, cum, reason, ts, venue_order_id, stop_price)
        elif cur in (INITIALIZED, SUBMITTED):
            o.status = o.base_status = to
        elif cur == ACCEPTED:
            if to == ACCEPTED and not live_price_size_change:
                return DUPLICATE
            o.status = o.base_status = to
        else:  # PARTIALLY_FILLED
            if to == ACCEPTED:
                return STALE
            if not (cum > o.venue_filled or live_price_size_change):
                return DUPLICATE
        # the update is applied and the order is live, not pending: it carries the current price / size
        o.price = price
        if qty:
            o.quantity = qty
        return self._applied(o, cum, reason, ts, venue_order_id, stop_price)

    @staticmethod
    def _applied(o, cum, reason, ts, venue_order_id, stop_price):
        o.venue_filled = max(o.venue_filled, cum)
        if venue_order_id:
            o.venue_order_id = venue_order_id
        if stop_price:
            o.stop_price = stop_price
        o.ts_venue = max(o.ts_venue, ts)
        o.reason = reason
        return OK

    def fill(self, coid, instrument_id, side, price, quantity, trade_id):
        """Returns (code, owner the fill belongs to)."""
        code, owner = self._fill(coid, instrument_id, side, price, quantity, trade_id)
        self.fill_codes.append(code)
        return code, owner

    def _fill(self, coid, iid, side, price, qty, trade_id):
        owner = owner_of(coid)
        if qty <= 0 or iid == 0:
            return INVALID, owner
        key = (iid, trade_id, side)
        if trade_id and key in self.trades:
            return DUPLICATE, owner
        o = self.orders.get(coid) if coid else None
        if o is None:
            if trade_id:
                self.trades.add(key)
            return UNKNOWN_ORDER, owner
        owner = o.owner
        if o.instrument_id != iid or o.side != side:
            return INVALID, owner
        cur = o.status
        if cur in TERMINAL:
            if o.filled + qty > o.venue_filled:
                return (OVERFILL if cur == FILLED else ILLEGAL), owner
        else:
            limit = o.quantity
            if cur == PENDING_REPLACE:
                limit = max(limit, o.pending_quantity)
            if o.filled + qty > limit:
                return OVERFILL, owner
        o.filled += qty
        o.filled_notional += price * qty
        o.n_fills += 1
        o.venue_filled = max(o.venue_filled, o.filled)
        if cur not in TERMINAL:
            if o.filled >= o.quantity and not (cur == PENDING_REPLACE and o.filled < o.pending_quantity):
                o.status = FILLED
                o.pending_price = o.pending_quantity = 0
            elif cur in PENDING:
                o.base_status = PARTIALLY_FILLED
            else:
                o.status = o.base_status = PARTIALLY_FILLED
        if trade_id:
            self.trades.add(key)
        return OK, owner

    # ---- reading -----------------------------------------------------------------------------------

    def open_quantity(self, owner, instrument_id):
        buy = sell = 0
        for o in self.orders.values():
            if o.instrument_id != instrument_id or (owner != ALL and o.owner != owner):
                continue
            if o.side == 0:
                buy += o.remaining()
            else:
                sell += o.remaining()
        return buy, sell

    def open_count(self, owner=ALL):
        return sum(1 for o in self.orders.values()
                   if o.status not in TERMINAL and (owner == ALL or o.owner == owner))
