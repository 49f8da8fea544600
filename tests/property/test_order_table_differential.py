"""Differential test: the compiled OrderTable against tests/models/order_state_reference.py.

A hypothesis state machine sends both tables the same engine requests (register, submitted, cancel,
replace, local reject), venue updates (every status, with prices / sizes / cumulative sizes / reasons /
venue times drawn from small sets so that repeats, stale and conflicting updates are common) and fills
(trade ids from a small set, so duplicates and self-trade halves happen). After every step the codes
must be equal and so must every order's state, the open quantities and the open-order counts.
"""
import inspect

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

import extrema
from extrema._core.orders import OrderTable
from models import order_state_reference as R
from order_records import fill, order_update

IIDS = (1, 2)
OWNERS = (0, 1, 63)
# engine ids (owner in the low 6 bits) and one foreign id
COIDS = [(k << 6) | o for k in (1, 2, 3) for o in OWNERS] + [(1 << 62) + 5]
PRICES = (0, 100, 105)
SIZES = (0, 5, 10, 20)


def test_the_compiled_table_is_what_runs():
    assert extrema._core.orders.__file__.endswith(".so")
    assert not inspect.isfunction(OrderTable.apply)


class OrderTableMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.compiled = OrderTable(keep_terminal=10_000, keep_trades=10_000)
        self.ref = R.ReferenceOrderTable()

    @rule(coid=st.sampled_from(COIDS), iid=st.sampled_from(IIDS), side=st.integers(0, 1),
          qty=st.sampled_from((0, 5, 10, 20)), price=st.sampled_from(PRICES), submitted=st.booleans())
    def register(self, coid, iid, side, qty, price, submitted):
        want = self.ref.register(coid, iid, side, qty, price, submitted=submitted)
        try:
            got = self.compiled.register(coid, iid, side, qty, price, submitted=submitted, ts=1)
        except ValueError:
            got = R.INVALID
        assert got == want

    @rule(coid=st.sampled_from(COIDS))
    def submitted(self, coid):
        assert self.compiled.submitted(coid, ts=1) == self.ref.submitted(coid)

    @rule(coid=st.sampled_from(COIDS))
    def cancel(self, coid):
        assert self.compiled.cancel(coid, ts=1) == self.ref.cancel(coid)

    @rule(coid=st.sampled_from(COIDS), price=st.sampled_from(PRICES), qty=st.sampled_from(SIZES))
    def replace(self, coid, price, qty):
        assert self.compiled.replace(coid, price, qty, ts=1) == self.ref.replace(coid, price, qty)

    @rule(coid=st.sampled_from(COIDS), reason=st.sampled_from((0, 7)))
    def reject(self, coid, reason):
        assert self.compiled.reject(coid, reason, ts=1) == self.ref.reject(coid, reason)

    @rule(coid=st.sampled_from(COIDS), iid=st.sampled_from(IIDS), side=st.integers(0, 1),
          status=st.integers(0, 10), price=st.sampled_from(PRICES), qty=st.sampled_from(SIZES),
          cum=st.sampled_from((0, 5, 10, 20)), reason=st.sampled_from((0, 0, -2011)),
          ts=st.sampled_from((0, 10, 20, 30)), venue_id=st.sampled_from((0, 9)), stop=st.sampled_from((0, 95)),
          consistent=st.integers(0, 3))
    def update(self, coid, iid, side, status, price, qty, cum, reason, ts, venue_id, stop, consistent):
        iid, side = self._mostly_consistent(coid, iid, side, consistent)
        rec = order_update(iid, coid, status, side=side, price=price, quantity=qty, cum_filled=cum,
                           reason=reason, ts_exchange=ts, venue_order_id=venue_id, stop_price=stop)
        (got,) = self.compiled.apply(rec, ts=1)
        want = self.ref.update(coid, iid, side, status, price=price, quantity=qty, cum_filled=cum, reason=reason,
                               ts=ts, venue_order_id=venue_id, stop_price=stop)
        assert got == want, (status, got, want)

    @rule(coid=st.sampled_from(COIDS + [0]), iid=st.sampled_from(IIDS), side=st.integers(0, 1),
          price=st.sampled_from((100, 101, 99)), qty=st.sampled_from((0, 1, 5, 10)),
          trade_id=st.sampled_from((0, 1, 2, 3, 4)), consistent=st.integers(0, 3))
    def fill(self, coid, iid, side, price, qty, trade_id, consistent):
        iid, side = self._mostly_consistent(coid, iid, side, consistent)
        (got,) = self.compiled.apply(fill(iid, coid, trade_id, price, qty, side=side), ts=1)
        want, _owner = self.ref.fill(coid, iid, side, price, qty, trade_id)
        assert got == want

    def _mostly_consistent(self, coid, iid, side, consistent):
        # most inputs name the order's own instrument and side (else nearly everything is INVALID)
        o = self.ref.orders.get(coid)
        if o is not None and consistent:
            return o.instrument_id, o.side
        return iid, side

    @invariant()
    def same_orders(self):
        assert len(self.compiled) == len(self.ref.orders)
        for coid, o in self.ref.orders.items():
            c = self.compiled.get(coid)
            assert c is not None, coid
            got = (c["status"], c["base_status"], c["owner"], c["instrument_id"], c["side"], c["price_raw"],
                   c["quantity_raw"], c["filled_raw"], c["venue_filled_raw"], c["filled_notional_raw"],
                   c["pending_price_raw"], c["pending_quantity_raw"], c["venue_order_id"], c["stop_price_raw"],
                   c["reason"], c["fills"], c["remaining_raw"], c["ts_venue"])
            want = (o.status, o.base_status, o.owner, o.instrument_id, "sell" if o.side else "buy", o.price,
                    o.quantity, o.filled, o.venue_filled, o.filled_notional, o.pending_price, o.pending_quantity,
                    o.venue_order_id, o.stop_price, o.reason, o.n_fills, o.remaining(), o.ts_venue)
            assert got == want, (coid, got, want)

    @invariant()
    def same_open_quantities(self):
        for owner in (*OWNERS, R.EXTERNAL, R.ALL):
            assert self.compiled.open_count(owner) == self.ref.open_count(owner)
            for iid in IIDS:
                assert self.compiled.open_quantity(owner, iid) == self.ref.open_quantity(owner, iid)


OrderTableMachine.TestCase.settings = settings(max_examples=300, stateful_step_count=60, deadline=None)
TestOrderTable = OrderTableMachine.TestCase
